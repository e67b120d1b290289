//! Short-time Fourier transform and its inverse, defined as librosa defines
//! them (`center=True`, periodic Hann window, reflect padding), so that
//! spectrograms computed here can be compared with the reference tools.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::error::AudioError;

/// A planned STFT of one size: forward and inverse real FFTs plus the window.
///
/// Planning is the expensive part, so one `Stft` is built per configuration
/// and shared (it is `Send + Sync`); every call allocates only its output.
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    hop_length: usize,
    window: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("n_fft", &self.n_fft).field("hop_length", &self.hop_length).finish()
    }
}

/// The periodic Hann window of length `n` (scipy's `get_window('hann', n)`).
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32).collect()
}

/// Index of sample `i` (possibly outside `0..len`) under numpy's `reflect`
/// padding, which mirrors around the edge samples without repeating them.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m < len as isize { m } else { period - m }) as usize
}

impl Stft {
    /// Plans an STFT with window length `n_fft` and frame step `hop_length`.
    pub fn new(n_fft: usize, hop_length: usize) -> Result<Self, AudioError> {
        if n_fft < 2 || !n_fft.is_multiple_of(2) {
            return Err(AudioError::InvalidParameter {
                name: "n_fft",
                detail: format!("{n_fft} must be even and ≥ 2"),
            });
        }
        if hop_length == 0 || hop_length > n_fft {
            return Err(AudioError::InvalidParameter {
                name: "hop_length",
                detail: format!("{hop_length} must be in 1..=n_fft ({n_fft})"),
            });
        }
        let mut planner = RealFftPlanner::<f32>::new();
        Ok(Self {
            n_fft,
            hop_length,
            window: hann_window(n_fft),
            forward: planner.plan_fft_forward(n_fft),
            inverse: planner.plan_fft_inverse(n_fft),
        })
    }

    /// FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Samples between frames.
    pub fn hop_length(&self) -> usize {
        self.hop_length
    }

    /// Frequency bins of the one-sided spectrum (`n_fft / 2 + 1`).
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames produced for a signal of `n_samples` samples (centred).
    pub fn n_frames(&self, n_samples: usize) -> usize {
        n_samples / self.hop_length + 1
    }

    /// Copies frame `frame` of the centred, reflect-padded signal into `buf`
    /// and applies the window.
    fn windowed_frame(&self, samples: &[f32], frame: usize, buf: &mut [f32]) {
        let start = (frame * self.hop_length) as isize - (self.n_fft / 2) as isize;
        let len = samples.len();
        let inside = start >= 0 && start as usize + self.n_fft <= len;
        if inside {
            let s = &samples[start as usize..start as usize + self.n_fft];
            for ((b, x), w) in buf.iter_mut().zip(s).zip(&self.window) {
                *b = x * w;
            }
        } else {
            for (k, (b, w)) in buf.iter_mut().zip(&self.window).enumerate() {
                *b = samples[reflect_index(start + k as isize, len)] * w;
            }
        }
    }

    /// Runs `per_frame(spectrum, row)` on every frame's one-sided
    /// spectrum, in parallel, writing one row of `out` per frame. This is the
    /// building block of every forward transform: no full complex
    /// spectrogram is kept unless the caller asks for one.
    pub fn map_frames<T, F>(&self, samples: &[f32], row_len: usize, per_frame: F) -> Array2<T>
    where
        T: Clone + Default + Send + Sync,
        F: Fn(&[Complex32], &mut [T]) + Sync,
    {
        let n_frames = if samples.is_empty() { 0 } else { self.n_frames(samples.len()) };
        let mut out = Array2::<T>::default((n_frames, row_len));
        self.map_frames_into(samples, out.view_mut(), per_frame);
        out
    }

    /// [`map_frames`](Self::map_frames) into a caller-owned `[frames, row_len]`
    /// array (standard layout), so that iterative algorithms reuse one buffer.
    pub fn map_frames_into<T, F>(&self, samples: &[f32], mut out: ArrayViewMut2<'_, T>, per_frame: F)
    where
        T: Send + Sync,
        F: Fn(&[Complex32], &mut [T]) + Sync,
    {
        const FRAMES_PER_TASK: usize = 32;
        assert!(
            samples.is_empty() || out.nrows() == self.n_frames(samples.len()),
            "output has the wrong number of frames"
        );
        out.axis_chunks_iter_mut(Axis(0), FRAMES_PER_TASK).into_par_iter().enumerate().for_each_init(
            || (self.forward.make_input_vec(), self.forward.make_output_vec(), self.forward.make_scratch_vec()),
            |(input, spectrum, scratch), (chunk_index, mut rows)| {
                for (r, mut row) in rows.axis_iter_mut(Axis(0)).enumerate() {
                    self.windowed_frame(samples, chunk_index * FRAMES_PER_TASK + r, input);
                    // Lengths match the plan, so the FFT cannot fail.
                    let _ = self.forward.process_with_scratch(input, spectrum, scratch);
                    per_frame(spectrum, row.as_slice_mut().expect("rows of a standard-layout array are contiguous"));
                }
            },
        );
    }

    /// Complex spectrum into a caller-owned `[frames, n_freqs]` array.
    pub fn forward_into(&self, samples: &[f32], out: ArrayViewMut2<'_, Complex32>) {
        self.map_frames_into(samples, out, |spectrum, row| row.copy_from_slice(spectrum));
    }

    /// Complex spectrum, `[frames, n_freqs]` (frame-major: each row is one
    /// frame, as the FFT produces it).
    pub fn forward(&self, samples: &[f32]) -> Array2<Complex32> {
        self.map_frames(samples, self.n_freqs(), |spectrum, row| row.copy_from_slice(spectrum))
    }

    /// Power spectrum `|X|²`, `[frames, n_freqs]`.
    pub fn power(&self, samples: &[f32]) -> Array2<f32> {
        self.map_frames(samples, self.n_freqs(), |spectrum, row| {
            for (p, c) in row.iter_mut().zip(spectrum) {
                *p = c.norm_sqr();
            }
        })
    }

    /// Inverse STFT by weighted overlap-add (librosa's `istft` with
    /// `center=True`): frames `[frames, n_freqs]` back to `length` samples.
    pub fn inverse(&self, spectrum: ArrayView2<'_, Complex32>, length: usize) -> Vec<f32> {
        let mut workspace = self.inverse_workspace(spectrum.nrows(), length);
        let mut out = vec![0.0; length];
        self.inverse_into(spectrum, &mut workspace, &mut out);
        out
    }

    /// Buffers and window normalisation for repeated inverse STFTs of
    /// `n_frames` frames into `length` samples.
    pub fn inverse_workspace(&self, n_frames: usize, length: usize) -> InverseWorkspace {
        // The padded signal spans (n_frames - 1) * hop + n_fft samples; the
        // first n_fft/2 are the centring pad.
        let padded_len = n_frames.saturating_sub(1) * self.hop_length + self.n_fft;
        let mut window_sum = vec![0.0f32; padded_len];
        for f in 0..n_frames {
            let start = f * self.hop_length;
            for (s, w) in window_sum[start..start + self.n_fft].iter_mut().zip(&self.window) {
                *s += w * w;
            }
        }
        let half = self.n_fft / 2;
        let inverse_norm = (0..length)
            .map(|i| match window_sum.get(i + half) {
                Some(&sum) if sum > f32::MIN_POSITIVE => 1.0 / sum,
                Some(_) => 1.0,
                None => 0.0,
            })
            .collect();
        InverseWorkspace {
            n_frames,
            frames: Array2::zeros((n_frames, self.n_fft)),
            padded: vec![0.0; padded_len],
            inverse_norm,
        }
    }

    /// [`inverse`](Self::inverse) into `out` (`length` samples) using a
    /// workspace from [`inverse_workspace`](Self::inverse_workspace).
    pub fn inverse_into(&self, spectrum: ArrayView2<'_, Complex32>, workspace: &mut InverseWorkspace, out: &mut [f32]) {
        assert_eq!(spectrum.nrows(), workspace.n_frames, "workspace was planned for another frame count");
        assert_eq!(out.len(), workspace.inverse_norm.len(), "workspace was planned for another length");
        self.inverse_frames_into(spectrum, &mut workspace.frames);
        workspace.padded.iter_mut().for_each(|v| *v = 0.0);
        for (f, frame) in workspace.frames.axis_iter(Axis(0)).enumerate() {
            let start = f * self.hop_length;
            for (s, v) in workspace.padded[start..start + self.n_fft].iter_mut().zip(frame.iter()) {
                *s += v;
            }
        }
        let half = self.n_fft / 2;
        for (i, (o, scale)) in out.iter_mut().zip(&workspace.inverse_norm).enumerate() {
            *o = workspace.padded.get(i + half).map_or(0.0, |v| v * scale);
        }
    }

    /// Windowed time-domain frames of an inverse STFT, `[frames, n_fft]`,
    /// computed in parallel; the caller overlap-adds them.
    fn inverse_frames_into(&self, spectrum: ArrayView2<'_, Complex32>, frames: &mut Array2<f32>) {
        let n_freqs = self.n_freqs();
        assert_eq!(spectrum.ncols(), n_freqs, "spectrum has {} bins, STFT expects {n_freqs}", spectrum.ncols());
        let scale = 1.0 / self.n_fft as f32;
        frames.axis_iter_mut(Axis(0)).into_par_iter().zip(spectrum.axis_iter(Axis(0)).into_par_iter()).for_each_init(
            || (self.inverse.make_input_vec(), self.inverse.make_scratch_vec()),
            |(input, scratch), (mut frame, bins)| {
                input.iter_mut().zip(bins.iter()).for_each(|(d, s)| *d = *s);
                // The inverse real FFT requires real DC and Nyquist bins.
                input[0].im = 0.0;
                input[n_freqs - 1].im = 0.0;
                let out = frame.as_slice_mut().expect("rows of a standard-layout array are contiguous");
                let _ = self.inverse.process_with_scratch(input, out, scratch);
                for (v, w) in out.iter_mut().zip(&self.window) {
                    *v *= w * scale;
                }
            },
        );
    }
}

/// Buffers and window normalisation of repeated inverse STFTs of one shape,
/// so that iterative algorithms (Griffin-Lim) allocate and normalise once.
#[derive(Debug, Clone)]
pub struct InverseWorkspace {
    n_frames: usize,
    frames: Array2<f32>,
    padded: Vec<f32>,
    /// Reciprocal of the summed squared window at each output sample.
    inverse_norm: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chirp(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.01 + (i as f32 * 1e-5).powi(2)).sin() * 0.5).collect()
    }

    #[test]
    fn reflect_padding_matches_numpy() {
        // np.pad([0,1,2,3], 3, mode='reflect') == [3,2,1,0,1,2,3,2,1,0]
        let idx: Vec<usize> = (-3..7).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(idx, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn frame_count_and_dc_of_a_constant() {
        let stft = Stft::new(16, 4).unwrap();
        let p = stft.power(&[1.0; 40]);
        assert_eq!(p.dim(), (11, 9));
        // Sum of the periodic Hann window of length 16 is 8 → DC power 64.
        assert!((p[[5, 0]] - 64.0).abs() < 1e-3, "{}", p[[5, 0]]);
        assert!(p[[5, 3]].abs() < 1e-6);
    }

    #[test]
    fn sine_peaks_at_its_bin() {
        let n_fft = 256;
        let stft = Stft::new(n_fft, 64).unwrap();
        let bin = 20.0;
        let x: Vec<f32> =
            (0..4000).map(|i| (2.0 * std::f32::consts::PI * bin * i as f32 / n_fft as f32).sin()).collect();
        let p = stft.power(&x);
        let row = p.row(10);
        let peak = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(peak, 20);
    }

    #[test]
    fn inverse_reconstructs_the_signal() {
        let stft = Stft::new(512, 128).unwrap();
        let x = chirp(10_000);
        let y = stft.inverse(stft.forward(&x).view(), x.len());
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn short_signals_do_not_panic() {
        let stft = Stft::new(64, 16).unwrap();
        assert_eq!(stft.power(&[0.5; 3]).nrows(), 1);
        assert_eq!(stft.power(&[]).nrows(), 0);
        assert!(Stft::new(63, 16).is_err());
        assert!(Stft::new(64, 0).is_err());
    }
}
