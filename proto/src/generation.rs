//! The bundle's generation rules (DESIGN.md, "Model"). `prior`: for a blend `w`,
//! `z = Σ w_g·centroid_g + temperature·ε` with `ε ~ N(0, I)` drawn from a seeded stream; `bank`:
//! real codes from the bundle's latent bank, combined by spherical interpolation that gives each its
//! weight's share of the latent's energy ([`crate::latent_bank::slerp_by_share`]). [`Sampler`] names them.
//!
//! It lives beside the manifest because it is part of the bundle contract: the trainer's preview and
//! evaluation grids and the service must draw the same `z` for the same seed, or a seed printed by one
//! would not reproduce a clip in the other.

use std::f64::consts::TAU;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a clip's latent is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampler {
    /// Real training codes from the bundle's latent bank (the default where the bundle has one).
    Bank,
    /// The blended genre centroids plus `N(0, I)` noise.
    Prior,
}

impl Sampler {
    /// Every sampler, in documentation order.
    pub const ALL: [Sampler; 2] = [Sampler::Bank, Sampler::Prior];

    /// The name used in `sampler=`.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Bank => "bank",
            Sampler::Prior => "prior",
        }
    }

    /// The sampler called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `n` standard-normal values from a ChaCha8 stream seeded with `seed` (Box–Muller), identical on every
/// platform and backend.
pub fn seeded_normal(seed: u64, n: usize) -> Vec<f32> {
    normal_from(&mut ChaCha8Rng::seed_from_u64(seed), n)
}

/// `n` standard-normal values drawn from `rng` (Box–Muller), continuing its stream.
pub fn normal_from(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
            let u2 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()) as f32
        })
        .collect()
}

/// The blend's starting point `Σ w_g·centroid_g` over `[G][Z]` centroids (weights as given, not
/// renormalised); `latent_dim` is `Z`.
pub fn blend_centroids(centroids: &[Vec<f32>], weights: &[f32], latent_dim: usize) -> Vec<f32> {
    let mut z = vec![0.0f32; latent_dim];
    for (row, &w) in centroids.iter().zip(weights) {
        for (acc, &v) in z.iter_mut().zip(row) {
            *acc += w * v;
        }
    }
    z
}

/// The decoder input `z = Σ w_g·centroid_g + temperature·ε` for one clip, with `ε` =
/// [`seeded_normal`]`(seed, Z)`.
pub fn blend_latent(centroids: &[Vec<f32>], weights: &[f32], temperature: f32, seed: u64) -> Vec<f32> {
    let latent_dim = centroids.first().map_or(0, Vec::len);
    let noise = seeded_normal(seed, latent_dim);
    blend_centroids(centroids, weights, latent_dim).iter().zip(&noise).map(|(c, e)| c + temperature * e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_normal_is_reproducible_and_standard() {
        assert_eq!(seeded_normal(7, 64), seeded_normal(7, 64));
        assert_ne!(seeded_normal(7, 64), seeded_normal(8, 64));
        let values = seeded_normal(1, 20_000);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.05, "variance {variance}");
    }

    #[test]
    fn latent_is_the_weighted_centroid_plus_scaled_noise() {
        let centroids = vec![vec![1.0, 2.0], vec![3.0, -2.0]];
        assert_eq!(blend_centroids(&centroids, &[0.25, 0.75], 2), vec![2.5, -1.0]);
        assert_eq!(blend_latent(&centroids, &[0.25, 0.75], 0.0, 9), vec![2.5, -1.0]);
        let noise = seeded_normal(9, 2);
        let z = blend_latent(&centroids, &[0.25, 0.75], 0.5, 9);
        assert_eq!(z, vec![2.5 + 0.5 * noise[0], -1.0 + 0.5 * noise[1]]);
    }
}
