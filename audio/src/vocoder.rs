//! The way back from the model: normalised mel → dB → power → linear
//! magnitude → fast Griffin-Lim → samples, with a peak limit so that the
//! 16-bit output never clips.

use ndarray::{Array2, ArrayView2};

use crate::config::{SignalConfig, VocoderConfig};
use crate::error::AudioError;
use crate::griffin_lim::GriffinLim;
use crate::inverse_mel::InverseMel;
use crate::mel::{db_to_power, MelSpectrogram};
use crate::normalization::DbRange;

/// A mel-spectrogram vocoder for one signal configuration; planned once
/// (FFT plans, filterbank inverse) and shared between requests.
#[derive(Debug, Clone)]
pub struct Vocoder {
    hop_length: usize,
    inverse_mel: InverseMel,
    griffin_lim: GriffinLim,
    max_peak: f32,
}

impl Vocoder {
    /// Plans the vocoder for `signal` with the settings in `vocoder`.
    pub fn new(signal: &SignalConfig, vocoder: &VocoderConfig) -> Result<Self, AudioError> {
        if !(vocoder.momentum.is_finite() && (0.0..1.0).contains(&vocoder.momentum)) {
            return Err(AudioError::InvalidParameter {
                name: "momentum",
                detail: format!("{} must be in [0, 1)", vocoder.momentum),
            });
        }
        if !(vocoder.max_peak_dbfs.is_finite() && vocoder.max_peak_dbfs <= 0.0) {
            return Err(AudioError::InvalidParameter {
                name: "max_peak_dbfs",
                detail: format!("{} must be a finite level ≤ 0 dBFS", vocoder.max_peak_dbfs),
            });
        }
        let forward = MelSpectrogram::new(signal)?;
        Ok(Self {
            hop_length: signal.hop_length,
            inverse_mel: InverseMel::new(forward.filterbank(), vocoder.inverse_mel_iters),
            griffin_lim: GriffinLim::new(forward.stft().clone(), vocoder.griffin_lim_iters, vocoder.momentum)
                .with_init(vocoder.initial_phase),
            max_peak: 10f32.powf(vocoder.max_peak_dbfs / 20.0),
        })
    }

    /// The same vocoder with another Griffin-Lim iteration count (a
    /// per-request setting of the service).
    pub fn with_iterations(&self, griffin_lim_iters: usize) -> Self {
        let mut other = self.clone();
        other.griffin_lim = self.griffin_lim.clone().with_iterations(griffin_lim_iters);
        other
    }

    /// Samples produced for a mel spectrogram of `frames` frames.
    pub fn output_len(&self, frames: usize) -> usize {
        frames.saturating_sub(1) * self.hop_length
    }

    /// Audio from a dB mel spectrogram `[n_mels, frames]`; `seed` fixes the
    /// initial phases, so the same input and seed give the same samples.
    pub fn db_to_audio(&self, mel_db: ArrayView2<'_, f32>, seed: u64) -> Vec<f32> {
        let power = self.inverse_mel.power(db_to_power(&mel_db.to_owned()).view());
        let magnitude: Array2<f32> = power.mapv(f32::sqrt);
        let mut samples = self.griffin_lim.reconstruct(magnitude.view(), self.output_len(mel_db.ncols()), seed);
        limit_peak(&mut samples, self.max_peak);
        samples
    }

    /// Audio from the model's normalised output `[n_mels, frames]`.
    pub fn normalized_to_audio(&self, mel: ArrayView2<'_, f32>, range: &DbRange, seed: u64) -> Vec<f32> {
        self.db_to_audio(range.denormalize(&mel.to_owned()).view(), seed)
    }
}

/// Scales `samples` down so that their peak is at most `max_peak`; leaves
/// quieter audio untouched and replaces non-finite samples with silence.
pub fn limit_peak(samples: &mut [f32], max_peak: f32) {
    samples.iter_mut().filter(|s| !s.is_finite()).for_each(|s| *s = 0.0);
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak > max_peak {
        let gain = max_peak / peak;
        samples.iter_mut().for_each(|s| *s *= gain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SignalConfig {
        SignalConfig { sample_rate: 16_000, n_fft: 512, hop_length: 128, n_mels: 64, ..Default::default() }
    }

    #[test]
    fn a_tone_comes_back_as_the_same_tone() {
        let cfg = config();
        let tone: Vec<f32> =
            (0..16_000).map(|i| 0.5 * (std::f32::consts::TAU * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let mel_db = MelSpectrogram::new(&cfg).unwrap().db(&tone);
        let vocoder = Vocoder::new(&cfg, &VocoderConfig::default()).unwrap();
        let audio = vocoder.db_to_audio(mel_db.view(), 0);
        assert_eq!(audio.len(), (mel_db.ncols() - 1) * 128);
        // The loudest STFT bin of the middle of the output is at 1 kHz
        // (bin 32 of a 512-point FFT at 16 kHz), give or take one bin.
        let stft = crate::stft::Stft::new(512, 128).unwrap();
        let power = stft.power(&audio);
        let row = power.row(power.nrows() / 2);
        let peak = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!((31..=33).contains(&peak), "peak at bin {peak}");
        let peak_level = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak_level > 0.2 && peak_level <= 10f32.powf(-1.0 / 20.0) + 1e-6, "peak {peak_level}");
    }

    #[test]
    fn limiter_only_scales_down_and_removes_non_finite() {
        let mut loud = vec![2.0, -4.0, f32::NAN];
        limit_peak(&mut loud, 0.5);
        assert_eq!(loud, vec![0.25, -0.5, 0.0]);
        let mut quiet = vec![0.1, -0.2];
        limit_peak(&mut quiet, 0.5);
        assert_eq!(quiet, vec![0.1, -0.2]);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = VocoderConfig { momentum: 1.5, ..Default::default() };
        assert!(Vocoder::new(&config(), &bad).is_err());
        let bad = VocoderConfig { max_peak_dbfs: 3.0, ..Default::default() };
        assert!(Vocoder::new(&config(), &bad).is_err());
    }
}
