//! Mel power → linear power: the least-squares, non-negative inverse of the
//! mel filterbank (what librosa's `feature.inverse.mel_to_stft` computes),
//! solved per frame with accelerated projected gradient descent.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::mel_filterbank::MelFilterbank;

/// Inverts one mel filterbank; built once per bundle and shared.
#[derive(Debug, Clone)]
pub struct InverseMel {
    filterbank: MelFilterbank,
    /// `Σ_k M[m,k]`: each band's total weight.
    band_sums: Vec<f32>,
    /// `Σ_m M[m,k]`: each bin's total weight (0 for bins no band covers).
    bin_sums: Vec<f32>,
    /// `1 / λmax(MᵀM)`: the largest step that keeps gradient descent stable.
    step: f32,
    iterations: usize,
}

impl InverseMel {
    /// Prepares the inverse of `filterbank`, refining the initial estimate
    /// with `iterations` steps of non-negative least squares (0: the
    /// interpolating estimate alone, which is cheaper and smoother).
    pub fn new(filterbank: &MelFilterbank, iterations: usize) -> Self {
        let band_sums: Vec<f32> = filterbank.bands().iter().map(|b| b.weights.iter().sum()).collect();
        let mut bin_sums = vec![0.0f32; filterbank.n_freqs()];
        filterbank.apply_transpose_frame(&vec![1.0; filterbank.n_mels()], &mut bin_sums);
        let lipschitz = largest_eigenvalue(filterbank);
        let step = if lipschitz > 0.0 { 1.0 / lipschitz } else { 0.0 };
        Self { filterbank: filterbank.clone(), band_sums, bin_sums, step, iterations }
    }

    /// Linear power `[frames, n_freqs]` (frame-major, as the STFT wants it)
    /// from mel power `[n_mels, frames]`. Negative inputs are treated as 0.
    pub fn power(&self, mel_power: ArrayView2<'_, f32>) -> Array2<f32> {
        let (n_mels, n_frames) = mel_power.dim();
        assert_eq!(
            n_mels,
            self.filterbank.n_mels(),
            "mel input has {n_mels} bands, filterbank {}",
            self.filterbank.n_mels()
        );
        let n_freqs = self.filterbank.n_freqs();
        let mut out = Array2::<f32>::zeros((n_frames, n_freqs));
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(
            || FrameScratch::new(n_mels, n_freqs),
            |scratch, (frame, mut row)| {
                scratch.target.iter_mut().zip(mel_power.column(frame)).for_each(|(t, &m)| *t = m.max(0.0));
                let row = row.as_slice_mut().expect("rows of a standard-layout array are contiguous");
                self.solve_frame(scratch, row);
            },
        );
        out
    }

    /// Solves one frame: interpolating estimate, then FISTA on
    /// `min ½‖Mx − y‖²` subject to `x ≥ 0`.
    fn solve_frame(&self, s: &mut FrameScratch, x: &mut [f32]) {
        // Each band's energy spread evenly over its bins, then each bin takes
        // the weighted mean of the bands covering it.
        for ((d, &y), &sum) in s.band_density.iter_mut().zip(&s.target).zip(&self.band_sums) {
            *d = if sum > 0.0 { y / sum } else { 0.0 };
        }
        self.filterbank.apply_transpose_frame(&s.band_density, x);
        for (v, &sum) in x.iter_mut().zip(&self.bin_sums) {
            *v = if sum > 0.0 { *v / sum } else { 0.0 };
        }
        if self.iterations == 0 {
            return;
        }
        s.momentum_point.copy_from_slice(x);
        let mut t = 1.0f32;
        for _ in 0..self.iterations {
            self.filterbank.apply_frame(&s.momentum_point, &mut s.residual);
            s.residual.iter_mut().zip(&s.target).for_each(|(r, y)| *r -= y);
            self.filterbank.apply_transpose_frame(&s.residual, &mut s.gradient);
            s.previous.copy_from_slice(x);
            for ((xi, vi), gi) in x.iter_mut().zip(&s.momentum_point).zip(&s.gradient) {
                *xi = (vi - self.step * gi).max(0.0);
            }
            let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
            let beta = (t - 1.0) / t_next;
            for ((vi, xi), pi) in s.momentum_point.iter_mut().zip(x.iter()).zip(&s.previous) {
                *vi = xi + beta * (xi - pi);
            }
            t = t_next;
        }
    }
}

/// Per-thread buffers of [`InverseMel::solve_frame`].
struct FrameScratch {
    target: Vec<f32>,
    band_density: Vec<f32>,
    residual: Vec<f32>,
    gradient: Vec<f32>,
    previous: Vec<f32>,
    momentum_point: Vec<f32>,
}

impl FrameScratch {
    fn new(n_mels: usize, n_freqs: usize) -> Self {
        Self {
            target: vec![0.0; n_mels],
            band_density: vec![0.0; n_mels],
            residual: vec![0.0; n_mels],
            gradient: vec![0.0; n_freqs],
            previous: vec![0.0; n_freqs],
            momentum_point: vec![0.0; n_freqs],
        }
    }
}

/// `λmax(MᵀM)` by power iteration on `MMᵀ` (small: n_mels × n_mels).
fn largest_eigenvalue(filterbank: &MelFilterbank) -> f32 {
    let mut v = vec![1.0f32; filterbank.n_mels()];
    let mut spectrum = vec![0.0f32; filterbank.n_freqs()];
    let mut next = vec![0.0f32; filterbank.n_mels()];
    let mut eigenvalue = 0.0f32;
    for _ in 0..100 {
        filterbank.apply_transpose_frame(&v, &mut spectrum);
        filterbank.apply_frame(&spectrum, &mut next);
        let norm = next.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        eigenvalue = norm / v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().zip(&next).for_each(|(a, b)| *a = b / norm);
    }
    // A little margin: power iteration approaches λmax from below.
    eigenvalue * 1.01
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filterbank() -> MelFilterbank {
        MelFilterbank::new(22_050, 1024, 64, 0.0, 11_025.0).unwrap()
    }

    /// A smooth, non-negative, spectrum-like test signal.
    fn spectrum(n: usize, frame: usize) -> Vec<f32> {
        (0..n).map(|k| 1.0 / (1.0 + k as f32 * 0.05) * (1.0 + 0.5 * ((k + frame * 3) as f32 * 0.2).sin())).collect()
    }

    fn mel_of(fb: &MelFilterbank, frames: &[Vec<f32>]) -> Array2<f32> {
        let mut mel = Array2::zeros((fb.n_mels(), frames.len()));
        let mut buf = vec![0.0; fb.n_mels()];
        for (j, s) in frames.iter().enumerate() {
            fb.apply_frame(s, &mut buf);
            mel.column_mut(j).iter_mut().zip(&buf).for_each(|(d, v)| *d = *v);
        }
        mel
    }

    fn relative_mel_error(fb: &MelFilterbank, inverse: &Array2<f32>, mel: &Array2<f32>) -> f32 {
        let rows: Vec<Vec<f32>> = inverse.axis_iter(Axis(0)).map(|r| r.to_vec()).collect();
        let again = mel_of(fb, &rows);
        let num: f32 = (&again - mel).iter().map(|d| d * d).sum();
        let den: f32 = mel.iter().map(|d| d * d).sum();
        (num / den).sqrt()
    }

    #[test]
    fn refinement_reduces_the_mel_residual_and_stays_non_negative() {
        let fb = filterbank();
        let frames: Vec<Vec<f32>> = (0..5).map(|f| spectrum(fb.n_freqs(), f)).collect();
        let mel = mel_of(&fb, &frames);
        let rough = InverseMel::new(&fb, 0).power(mel.view());
        let refined = InverseMel::new(&fb, 50).power(mel.view());
        assert_eq!(refined.dim(), (5, fb.n_freqs()));
        assert!(refined.iter().all(|v| *v >= 0.0));
        let (e0, e1) = (relative_mel_error(&fb, &rough, &mel), relative_mel_error(&fb, &refined, &mel));
        assert!(e1 < e0 * 0.5, "refinement should halve the residual: {e0} → {e1}");
        assert!(e1 < 0.02, "residual {e1}");
    }

    #[test]
    fn silence_and_negative_input_give_zero() {
        let fb = filterbank();
        let mel = Array2::from_elem((fb.n_mels(), 3), -1.0f32);
        assert!(InverseMel::new(&fb, 10).power(mel.view()).iter().all(|v| *v == 0.0));
    }
}
