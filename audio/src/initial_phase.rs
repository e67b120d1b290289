//! Starting phases for Griffin-Lim. Random phases (librosa's default) make
//! the algorithm spend its first iterations discovering that partials are
//! continuous in time; a phase-locked estimate from the magnitude alone —
//! each spectral peak's phase advanced by its instantaneous frequency, the
//! bins of its main lobe locked to it (Laroche & Dolson's identity phase
//! locking) — starts much closer, so the same iteration count ends cleaner.

use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};
use std::f32::consts::{PI, TAU};

/// How Griffin-Lim's phases are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseInit {
    /// Uniformly random phases from the seed (librosa's `init='random'`).
    Random,
    /// Phase-locked estimate from the magnitude's peaks; the seed sets the
    /// phase each partial starts with.
    #[default]
    PhaseLocked,
}

/// Peaks quieter than this many dB below the frame's loudest bin are not
/// tracked; their bins join the nearest louder peak's lobe.
const PEAK_FLOOR_DB: f32 = 60.0;

/// Unit phasors `[frames, n_freqs]` to start Griffin-Lim from.
pub fn initial_phases(
    init: PhaseInit,
    magnitude: ArrayView2<'_, f32>,
    n_fft: usize,
    hop_length: usize,
    seed: u64,
) -> Array2<Complex32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match init {
        PhaseInit::Random => {
            Array2::from_shape_simple_fn(magnitude.dim(), || Complex32::from_polar(1.0, TAU * rng.random::<f32>()))
        }
        PhaseInit::PhaseLocked => phase_locked(magnitude, n_fft, hop_length, &mut rng),
    }
}

fn phase_locked(
    magnitude: ArrayView2<'_, f32>,
    n_fft: usize,
    hop_length: usize,
    rng: &mut ChaCha8Rng,
) -> Array2<Complex32> {
    let (n_frames, n_freqs) = magnitude.dim();
    let mut phases = Array2::<Complex32>::zeros((n_frames, n_freqs));
    // Phase at the frame centre of the partial each bin belonged to in the
    // previous frame; starts random so that partials do not all start aligned.
    let mut centre_phase: Vec<f32> = (0..n_freqs).map(|_| TAU * rng.random::<f32>()).collect();
    let mut peaks = Vec::new();
    for (frame, row) in magnitude.outer_iter().enumerate() {
        let row = row.as_slice().map(<[f32]>::to_vec).unwrap_or_else(|| row.to_vec());
        find_peaks(&row, &mut peaks);
        let mut next_centre = centre_phase.clone();
        for (i, &peak) in peaks.iter().enumerate() {
            // Region of this peak: up to the lowest bin between it and its neighbours.
            let low = if i == 0 { 0 } else { lowest_between(&row, peaks[i - 1], peak) + 1 };
            let high = if i + 1 == peaks.len() { n_freqs - 1 } else { lowest_between(&row, peak, peaks[i + 1]) };
            let frequency = TAU * (peak as f32 + interpolated_offset(&row, peak)) / n_fft as f32;
            let centre =
                if frame == 0 { centre_phase[peak] } else { wrap(centre_phase[peak] + frequency * hop_length as f32) };
            for k in low..=high {
                // Across a centred window's main lobe, adjacent bins differ by π.
                phases[[frame, k]] = Complex32::from_polar(1.0, centre - PI * k as f32);
                next_centre[k] = centre;
            }
        }
        if peaks.is_empty() {
            for k in 0..n_freqs {
                phases[[frame, k]] = Complex32::from_polar(1.0, centre_phase[k] - PI * k as f32);
            }
        }
        centre_phase = next_centre;
    }
    phases
}

/// Local maxima of one frame's magnitude within [`PEAK_FLOOR_DB`] of its maximum.
fn find_peaks(row: &[f32], peaks: &mut Vec<usize>) {
    peaks.clear();
    let loudest = row.iter().copied().fold(0.0f32, f32::max);
    if loudest <= 0.0 {
        return;
    }
    let floor = loudest * 10f32.powf(-PEAK_FLOOR_DB / 20.0);
    for k in 0..row.len() {
        let left = if k == 0 { 0.0 } else { row[k - 1] };
        let right = if k + 1 == row.len() { 0.0 } else { row[k + 1] };
        if row[k] >= floor && row[k] > left && row[k] >= right {
            peaks.push(k);
        }
    }
}

/// Bin of the smallest magnitude in `from..to`.
fn lowest_between(row: &[f32], from: usize, to: usize) -> usize {
    (from..to).min_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(from)
}

/// Fractional bin offset of a peak by parabolic interpolation of log magnitude.
fn interpolated_offset(row: &[f32], k: usize) -> f32 {
    if k == 0 || k + 1 >= row.len() {
        return 0.0;
    }
    let log = |v: f32| v.max(1e-20).ln();
    let (a, b, c) = (log(row[k - 1]), log(row[k]), log(row[k + 1]));
    let denominator = a - 2.0 * b + c;
    if denominator.abs() < 1e-12 {
        0.0
    } else {
        (0.5 * (a - c) / denominator).clamp(-0.5, 0.5)
    }
}

/// Wraps a phase to (−π, π] so it keeps its precision over long clips.
fn wrap(phase: f32) -> f32 {
    phase - TAU * ((phase + PI) / TAU).floor()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stft::Stft;

    #[test]
    fn predicts_the_phase_of_a_steady_tone() {
        // For a stationary sinusoid the estimate should match the true STFT
        // phase advance from frame to frame at the peak bin.
        let (n_fft, hop) = (1024, 256);
        let stft = Stft::new(n_fft, hop).unwrap();
        let frequency_bins = 40.3f32;
        let x: Vec<f32> = (0..20_000).map(|i| (TAU * frequency_bins * i as f32 / n_fft as f32 + 0.7).cos()).collect();
        let spectrum = stft.forward(&x);
        let magnitude = spectrum.mapv(|c| c.norm());
        let phases = initial_phases(PhaseInit::PhaseLocked, magnitude.view(), n_fft, hop, 0);
        for frame in 5..15 {
            let truth = (spectrum[[frame + 1, 40]] * spectrum[[frame, 40]].conj()).arg();
            let estimate = (phases[[frame + 1, 40]] * phases[[frame, 40]].conj()).arg();
            assert!(wrap(truth - estimate).abs() < 0.05, "frame {frame}: {truth} vs {estimate}");
            let truth_lobe = (spectrum[[frame, 41]] * spectrum[[frame, 40]].conj()).arg();
            let estimate_lobe = (phases[[frame, 41]] * phases[[frame, 40]].conj()).arg();
            assert!(wrap(truth_lobe - estimate_lobe).abs() < 0.3, "lobe {truth_lobe} vs {estimate_lobe}");
        }
    }

    #[test]
    fn unit_magnitude_and_seeded() {
        let magnitude = Array2::from_shape_fn((6, 33), |(t, k)| ((k as f32 - 10.0 - t as f32).abs() + 1.0).recip());
        for init in [PhaseInit::Random, PhaseInit::PhaseLocked] {
            let a = initial_phases(init, magnitude.view(), 64, 16, 9);
            assert!(a.iter().all(|c| (c.norm() - 1.0).abs() < 1e-5));
            assert_eq!(a, initial_phases(init, magnitude.view(), 64, 16, 9));
            assert_ne!(a, initial_phases(init, magnitude.view(), 64, 16, 10));
        }
        let silent = Array2::<f32>::zeros((3, 33));
        assert!(initial_phases(PhaseInit::PhaseLocked, silent.view(), 64, 16, 1).iter().all(|c| c.norm() > 0.99));
    }
}
