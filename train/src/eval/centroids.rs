//! Per-genre latent centroids — the mean posterior mean `mu` of a genre's training clips —
//! which generation starts from (DESIGN.md: `z = Σ w_g·centroid_g + temperature·ε`) and
//! `export` copies into the bundle manifest; plus how far apart they lie, a quick sign of
//! whether the genres occupy different parts of the latent space at all.

use crate::file_error::io_error;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

/// Name of the centroid file in the evaluation folder.
pub const CENTROIDS_FILE: &str = "centroids.json";

/// The content of `centroids.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Centroids {
    /// Genre names, in the model's conditioning order.
    pub genres: Vec<String>,
    /// Latent size `Z`.
    pub latent_dim: usize,
    /// `[G][Z]`: the mean `mu` of each genre's training clips (zeros, the prior's mean, for a
    /// genre without training clips — see `clips_per_genre`).
    pub centroids: Vec<Vec<f32>>,
    /// Training clips averaged into each centroid.
    pub clips_per_genre: Vec<usize>,
}

impl Centroids {
    /// Reads a `centroids.json`, checking that its shape is `[G][Z]` and its values finite.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
        let centroids: Self =
            serde_json::from_str(&text).map_err(|source| EvalError::Json { path: path.to_path_buf(), source })?;
        centroids.validate().map_err(|detail| EvalError::InvalidCentroids { path: path.to_path_buf(), detail })?;
        Ok(centroids)
    }

    /// Checks the shape (`[G][Z]`, one count per genre) and that every value is finite.
    pub fn validate(&self) -> Result<(), String> {
        let g = self.genres.len();
        if self.centroids.len() != g || self.clips_per_genre.len() != g {
            return Err(format!(
                "{g} genres but {} centroids and {} clip counts",
                self.centroids.len(),
                self.clips_per_genre.len()
            ));
        }
        if let Some((i, row)) = self.centroids.iter().enumerate().find(|(_, row)| row.len() != self.latent_dim) {
            return Err(format!("centroid {i} has {} values, latent_dim is {}", row.len(), self.latent_dim));
        }
        if self.centroids.iter().flatten().any(|v| !v.is_finite()) {
            return Err("a centroid value is not finite".into());
        }
        Ok(())
    }

    /// The blend's starting point `Σ w_g·centroid_g` (weights as given, not renormalised).
    pub fn blend(&self, weights: &[f32]) -> Vec<f32> {
        melfuse_proto::generation::blend_centroids(&self.centroids, weights, self.latent_dim)
    }
}

/// Running per-genre sums of `mu` rows, in f64 so that long runs of clips do not lose digits.
#[derive(Debug, Clone)]
pub struct CentroidAccumulator {
    latent_dim: usize,
    sums: Vec<Vec<f64>>,
    squared_norms: Vec<f64>,
    counts: Vec<usize>,
}

impl CentroidAccumulator {
    /// Empty sums for `n_genres` genres of `latent_dim`-long codes.
    pub fn new(n_genres: usize, latent_dim: usize) -> Self {
        Self {
            latent_dim,
            sums: vec![vec![0.0; latent_dim]; n_genres],
            squared_norms: vec![0.0; n_genres],
            counts: vec![0; n_genres],
        }
    }

    /// Adds `mu` rows (row-major, `genres.len() × latent_dim`), row `i` of genre `genres[i]`.
    pub fn add(&mut self, mu: &[f32], genres: &[usize]) {
        for (row, &genre) in mu.chunks_exact(self.latent_dim).zip(genres) {
            for (sum, &v) in self.sums[genre].iter_mut().zip(row) {
                *sum += f64::from(v);
            }
            self.squared_norms[genre] += row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            self.counts[genre] += 1;
        }
    }

    /// The means, labelled with `genres`.
    pub fn centroids(&self, genres: &[String]) -> Centroids {
        let centroids = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(sum, &n)| sum.iter().map(|&s| if n == 0 { 0.0 } else { (s / n as f64) as f32 }).collect())
            .collect();
        Centroids {
            genres: genres.to_vec(),
            latent_dim: self.latent_dim,
            centroids,
            clips_per_genre: self.counts.clone(),
        }
    }

    /// Root-mean-square distance of each genre's codes from their centroid
    /// (`sqrt(E‖mu‖² − ‖E mu‖²)`); `None` for a genre without clips.
    pub fn within_genre_rms(&self) -> Vec<Option<f64>> {
        self.sums
            .iter()
            .zip(&self.squared_norms)
            .zip(&self.counts)
            .map(|((sum, &sq), &n)| {
                (n > 0).then(|| {
                    let n = n as f64;
                    let mean_norm: f64 = sum.iter().map(|s| (s / n) * (s / n)).sum();
                    (sq / n - mean_norm).max(0.0).sqrt()
                })
            })
            .collect()
    }
}

/// How distinct the genre centroids are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentroidSeparation {
    /// `[G][G]` Euclidean distances between centroids.
    pub distances: Vec<Vec<f64>>,
    /// Per genre, the RMS distance of its training codes from its centroid (`null` without clips).
    pub within_genre_rms: Vec<Option<f64>>,
    /// Smallest distance between two different centroids divided by the mean within-genre RMS:
    /// well above 1 means the genres form separate clusters, near 0 that the encoder ignores the
    /// genre. `None` with fewer than two genres or no spread.
    pub separation_ratio: Option<f64>,
}

/// Pairwise distances of `centroids` and their ratio to the within-genre spread.
pub fn centroid_separation(centroids: &Centroids, within_genre_rms: Vec<Option<f64>>) -> CentroidSeparation {
    let distance = |a: &[f32], b: &[f32]| -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>().sqrt()
    };
    let rows = &centroids.centroids;
    let distances: Vec<Vec<f64>> = rows.iter().map(|a| rows.iter().map(|b| distance(a, b)).collect()).collect();
    let present: Vec<usize> = (0..rows.len()).filter(|&g| centroids.clips_per_genre[g] > 0).collect();
    let min_distance = present
        .iter()
        .flat_map(|&a| present.iter().filter(move |&&b| b > a).map(move |&b| (a, b)))
        .map(|(a, b)| distances[a][b])
        .fold(None, |acc: Option<f64>, d| Some(acc.map_or(d, |m| m.min(d))));
    let spreads: Vec<f64> = within_genre_rms.iter().flatten().copied().collect();
    let mean_spread = (!spreads.is_empty()).then(|| spreads.iter().sum::<f64>() / spreads.len() as f64);
    let separation_ratio = match (min_distance, mean_spread) {
        (Some(d), Some(s)) if s > 0.0 => Some(d / s),
        _ => None,
    };
    CentroidSeparation { distances, within_genre_rms, separation_ratio }
}

impl Evaluator<'_> {
    /// Encodes every training clip ([`Evaluator::batch_size`] per forward pass) and sums `mu`
    /// per genre; the accumulator gives the centroids and the spread around them.
    pub fn accumulate_centroids(&self) -> Result<CentroidAccumulator, EvalError> {
        let segments = self.cache.segments(Split::Train);
        let indices: Vec<usize> = (0..segments.len()).collect();
        let mut accumulator = CentroidAccumulator::new(self.cache.genres().len(), self.model.latent_dim());
        self.encode_batches(Split::Train, &indices, |batch| {
            let genres: Vec<usize> = batch.indices.iter().map(|&i| segments[i].genre).collect();
            accumulator.add(&tensor_values(batch.mu)?, &genres);
            Ok(())
        })?;
        for (genre, &n) in self.cache.genres().iter().zip(&accumulator.counts) {
            if n == 0 {
                tracing::warn!(%genre, "no training clips: its centroid is the prior's mean (zeros)");
            }
        }
        Ok(accumulator)
    }
}
