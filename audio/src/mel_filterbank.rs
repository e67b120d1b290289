//! The Slaney mel filterbank (librosa's `filters.mel` with `htk=False`,
//! `norm='slaney'`), stored sparsely: each band touches only a few FFT bins,
//! so applying it costs a few thousand multiply-adds per frame, not n_mels ×
//! n_freqs.

use crate::error::AudioError;

/// Hz below which the Slaney mel scale is linear.
const SLANEY_LINEAR_LIMIT_HZ: f64 = 1000.0;
/// Hz per mel on the linear part of the Slaney scale.
const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;

/// Step of the logarithmic part of the Slaney scale, in log-Hz per mel.
fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Frequency in Hz → mel on the Slaney scale (linear below 1 kHz, log above).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= SLANEY_LINEAR_LIMIT_HZ {
        SLANEY_LINEAR_LIMIT_HZ / SLANEY_HZ_PER_MEL + (hz / SLANEY_LINEAR_LIMIT_HZ).ln() / slaney_log_step()
    } else {
        hz / SLANEY_HZ_PER_MEL
    }
}

/// Mel on the Slaney scale → frequency in Hz (inverse of [`hz_to_mel`]).
pub fn mel_to_hz(mel: f64) -> f64 {
    let linear_limit_mel = SLANEY_LINEAR_LIMIT_HZ / SLANEY_HZ_PER_MEL;
    if mel >= linear_limit_mel {
        SLANEY_LINEAR_LIMIT_HZ * (slaney_log_step() * (mel - linear_limit_mel)).exp()
    } else {
        mel * SLANEY_HZ_PER_MEL
    }
}

/// One mel band: its weights over a contiguous run of FFT bins.
#[derive(Debug, Clone, PartialEq)]
pub struct MelBand {
    /// First FFT bin with a non-zero weight.
    pub first_bin: usize,
    /// Weights of bins `first_bin..first_bin + weights.len()`.
    pub weights: Vec<f32>,
}

/// A mel filterbank of `n_mels` triangular, area-normalised bands over the
/// `n_fft / 2 + 1` bins of a one-sided spectrum.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    bands: Vec<MelBand>,
    n_freqs: usize,
}

impl MelFilterbank {
    /// Builds the filterbank exactly as librosa does (computed in f64, stored
    /// as f32).
    pub fn new(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f32, fmax: f32) -> Result<Self, AudioError> {
        let nyquist = sample_rate as f32 / 2.0;
        if n_mels == 0 {
            return Err(AudioError::InvalidParameter { name: "n_mels", detail: "must be at least 1".into() });
        }
        if !(fmin >= 0.0 && fmin < fmax && fmax <= nyquist) {
            return Err(AudioError::InvalidParameter {
                name: "fmax",
                detail: format!("need 0 <= fmin ({fmin}) < fmax ({fmax}) <= Nyquist ({nyquist})"),
            });
        }
        let n_freqs = n_fft / 2 + 1;
        let bin_hz = |k: usize| k as f64 * sample_rate as f64 / n_fft as f64;
        let (mel_lo, mel_hi) = (hz_to_mel(fmin as f64), hz_to_mel(fmax as f64));
        let edges: Vec<f64> =
            (0..n_mels + 2).map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64)).collect();
        let bands = (0..n_mels)
            .map(|m| {
                let (lo, centre, hi) = (edges[m], edges[m + 1], edges[m + 2]);
                let area_norm = 2.0 / (hi - lo);
                let weight = |k: usize| {
                    let f = bin_hz(k);
                    let rising = (f - lo) / (centre - lo);
                    let falling = (hi - f) / (hi - centre);
                    (rising.min(falling).max(0.0) * area_norm) as f32
                };
                let nonzero: Vec<usize> = (0..n_freqs).filter(|&k| weight(k) > 0.0).collect();
                match (nonzero.first(), nonzero.last()) {
                    (Some(&first), Some(&last)) => {
                        MelBand { first_bin: first, weights: (first..=last).map(weight).collect() }
                    }
                    _ => MelBand { first_bin: 0, weights: Vec::new() },
                }
            })
            .collect();
        Ok(Self { bands, n_freqs })
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Number of FFT bins the filterbank expects.
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// The bands, lowest first.
    pub fn bands(&self) -> &[MelBand] {
        &self.bands
    }

    /// Projects one frame's spectrum (`n_freqs` values) onto the mel bands.
    pub fn apply_frame(&self, spectrum: &[f32], mel: &mut [f32]) {
        for (out, band) in mel.iter_mut().zip(&self.bands) {
            let bins = &spectrum[band.first_bin..band.first_bin + band.weights.len()];
            *out = bins.iter().zip(&band.weights).map(|(s, w)| s * w).sum();
        }
    }

    /// Projects one frame's complex spectrum onto the mel bands as power
    /// (`|X|²`), without materialising the power spectrum.
    pub fn apply_power_frame(&self, spectrum: &[realfft::num_complex::Complex32], mel: &mut [f32]) {
        for (out, band) in mel.iter_mut().zip(&self.bands) {
            let bins = &spectrum[band.first_bin..band.first_bin + band.weights.len()];
            *out = bins.iter().zip(&band.weights).map(|(s, w)| s.norm_sqr() * w).sum();
        }
    }

    /// Writes `Mᵀ·mel` (the transpose applied to one frame of mel values) into
    /// `spectrum`; the adjoint of [`apply_frame`](Self::apply_frame).
    pub fn apply_transpose_frame(&self, mel: &[f32], spectrum: &mut [f32]) {
        spectrum.iter_mut().for_each(|s| *s = 0.0);
        for (m, band) in mel.iter().zip(&self.bands) {
            let bins = &mut spectrum[band.first_bin..band.first_bin + band.weights.len()];
            for (s, w) in bins.iter_mut().zip(&band.weights) {
                *s += m * w;
            }
        }
    }

    /// The dense `[n_mels, n_freqs]` weight matrix, for inspection and tests.
    pub fn to_dense(&self) -> ndarray::Array2<f32> {
        let mut dense = ndarray::Array2::zeros((self.n_mels(), self.n_freqs));
        for (m, band) in self.bands.iter().enumerate() {
            for (i, w) in band.weights.iter().enumerate() {
                dense[[m, band.first_bin + i]] = *w;
            }
        }
        dense
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_matches_librosa() {
        // librosa.hz_to_mel(440) = 6.6, hz_to_mel(4000) = 35.16...
        assert!((hz_to_mel(440.0) - 6.6).abs() < 1e-9);
        assert!((hz_to_mel(4000.0) - 35.163_760_314_616_646).abs() < 1e-9);
        for hz in [0.0, 100.0, 999.0, 1000.0, 8000.0, 22_050.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6 * hz.max(1.0));
        }
    }

    #[test]
    fn bands_are_area_normalised_and_ordered() {
        let fb = MelFilterbank::new(44_100, 2048, 128, 0.0, 22_050.0).unwrap();
        assert_eq!(fb.n_mels(), 128);
        assert_eq!(fb.n_freqs(), 1025);
        let bin_hz = 44_100.0 / 2048.0;
        // Wide (upper) bands integrate to ~1/bin_hz: Slaney normalisation
        // gives each triangle unit area in Hz.
        for band in &fb.bands()[60..] {
            let area: f32 = band.weights.iter().sum::<f32>() * bin_hz;
            assert!((area - 1.0).abs() < 0.05, "area {area}");
        }
        let firsts: Vec<usize> = fb.bands().iter().map(|b| b.first_bin).collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn transpose_is_the_adjoint() {
        let fb = MelFilterbank::new(22_050, 512, 40, 30.0, 8000.0).unwrap();
        let x: Vec<f32> = (0..257).map(|i| ((i * 7919) % 13) as f32).collect();
        let y: Vec<f32> = (0..40).map(|i| ((i * 31) % 5) as f32 + 0.5).collect();
        let mut mx = vec![0.0; 40];
        fb.apply_frame(&x, &mut mx);
        let mut mty = vec![0.0; 257];
        fb.apply_transpose_frame(&y, &mut mty);
        let lhs: f32 = mx.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&mty).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() <= 1e-4 * lhs.abs());
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(MelFilterbank::new(16_000, 512, 40, 0.0, 9000.0).is_err());
        assert!(MelFilterbank::new(16_000, 512, 0, 0.0, 8000.0).is_err());
        assert!(MelFilterbank::new(16_000, 512, 40, 500.0, 100.0).is_err());
    }
}
