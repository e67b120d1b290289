//! Signal and vocoder parameters: one serde struct per stage, with the seed
//! study's defaults, loadable from TOML and stored verbatim in model bundles.

use serde::{Deserialize, Serialize};

use crate::error::AudioError;
use crate::initial_phase::PhaseInit;

/// Every parameter that turns audio into the model's mel spectrogram.
///
/// A model is only valid for the signal parameters it was trained with, so
/// this struct is written into the bundle manifest and read back by the
/// service; defaults follow DESIGN.md ("Signal").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Rate every file is resampled to, in Hz.
    pub sample_rate: u32,
    /// Length of one training segment, in seconds.
    pub segment_seconds: f32,
    /// Overlap between consecutive segments, in seconds (hop = length − overlap).
    pub overlap_seconds: f32,
    /// FFT size (and window length) of the STFT, in samples.
    pub n_fft: usize,
    /// Samples between successive STFT frames.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest mel filter edge, in Hz.
    pub fmin: f32,
    /// Highest mel filter edge in Hz; `None` means the Nyquist frequency.
    pub fmax: Option<f32>,
    /// Floor applied to power before taking dB (`10·log10(max(amin, S))`).
    pub amin: f32,
    /// Model inputs are cropped to a whole multiple of this many frames
    /// (the encoder halves the time axis five times).
    pub frame_multiple: usize,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            sample_rate: 44_100,
            segment_seconds: 15.0,
            overlap_seconds: 5.0,
            n_fft: 2048,
            hop_length: 512,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            amin: 1e-10,
            frame_multiple: 32,
        }
    }
}

/// Lowest and highest sample rates accepted from a file, in Hz.
pub const SUPPORTED_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

impl SignalConfig {
    /// Upper mel edge actually used: `fmax` or the Nyquist frequency.
    pub fn fmax_hz(&self) -> f32 {
        self.fmax.unwrap_or(self.sample_rate as f32 / 2.0)
    }

    /// Number of frequency bins of the one-sided STFT.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Samples in one segment.
    pub fn segment_samples(&self) -> usize {
        (self.segment_seconds as f64 * self.sample_rate as f64).round() as usize
    }

    /// Samples between the starts of consecutive segments.
    pub fn segment_hop_samples(&self) -> usize {
        ((self.segment_seconds - self.overlap_seconds) as f64 * self.sample_rate as f64).round() as usize
    }

    /// Frames the centred STFT yields for `n_samples` samples.
    pub fn frames_for_samples(&self, n_samples: usize) -> usize {
        n_samples / self.hop_length + 1
    }

    /// Frames of one segment once cropped to a multiple of `frame_multiple`
    /// (15 s at the defaults → 1280).
    pub fn model_frames(&self) -> usize {
        let frames = self.frames_for_samples(self.segment_samples());
        frames - frames % self.frame_multiple.max(1)
    }

    /// Checks that the parameters describe a computable transform, naming the
    /// first field that does not.
    pub fn validate(&self) -> Result<(), AudioError> {
        let bad = |name: &'static str, detail: String| Err(AudioError::InvalidParameter { name, detail });
        if !SUPPORTED_RATES.contains(&self.sample_rate) {
            return bad("sample_rate", format!("{} Hz is outside {:?}", self.sample_rate, SUPPORTED_RATES));
        }
        if self.n_fft < 16 || self.n_fft > 1 << 16 {
            return bad("n_fft", format!("{} is outside 16..=65536", self.n_fft));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad("hop_length", format!("{} must be in 1..=n_fft ({})", self.hop_length, self.n_fft));
        }
        if self.n_mels == 0 || self.n_mels > self.n_freqs() {
            return bad("n_mels", format!("{} must be in 1..={}", self.n_mels, self.n_freqs()));
        }
        let fmax = self.fmax_hz();
        if !(self.fmin.is_finite() && self.fmin >= 0.0 && fmax.is_finite() && self.fmin < fmax) {
            return bad("fmin", format!("need 0 <= fmin ({}) < fmax ({fmax})", self.fmin));
        }
        if fmax > self.sample_rate as f32 / 2.0 {
            return bad("fmax", format!("{fmax} Hz is above Nyquist ({} Hz)", self.sample_rate / 2));
        }
        if !(self.amin.is_finite() && self.amin > 0.0) {
            return bad("amin", format!("{} must be a positive number", self.amin));
        }
        if !(self.segment_seconds.is_finite() && self.segment_seconds > 0.0) {
            return bad("segment_seconds", format!("{} must be positive", self.segment_seconds));
        }
        if !(self.overlap_seconds.is_finite()
            && self.overlap_seconds >= 0.0
            && self.overlap_seconds < self.segment_seconds)
        {
            return bad("overlap_seconds", format!("{} must be in [0, segment_seconds)", self.overlap_seconds));
        }
        if self.frame_multiple == 0 || self.model_frames() == 0 {
            return bad(
                "frame_multiple",
                format!("{} leaves no frames in a {} s segment", self.frame_multiple, self.segment_seconds),
            );
        }
        Ok(())
    }
}

/// How normalised mel spectrograms are turned back into audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VocoderConfig {
    /// Griffin-Lim iterations; more is cleaner and slower.
    pub griffin_lim_iters: usize,
    /// Momentum of fast Griffin-Lim (Perraudin et al.); 0 is plain Griffin-Lim.
    pub momentum: f32,
    /// Seed of the initial phases, so that output is reproducible.
    pub seed: u64,
    /// How Griffin-Lim's phases start: phase-locked from the magnitude's
    /// peaks (cleaner at equal iterations) or random (librosa's default).
    pub initial_phase: PhaseInit,
    /// Iterations of the projected-gradient non-negative least squares that
    /// inverts the mel filterbank; 0 keeps the interpolating first estimate.
    pub inverse_mel_iters: usize,
    /// Highest peak of the produced audio in dBFS: louder clips are scaled
    /// down to it so that 16-bit output never clips; quieter ones keep the
    /// level the model generated.
    pub max_peak_dbfs: f32,
}

impl Default for VocoderConfig {
    fn default() -> Self {
        Self {
            griffin_lim_iters: 32,
            momentum: 0.99,
            seed: 0,
            initial_phase: PhaseInit::PhaseLocked,
            inverse_mel_iters: 30,
            max_peak_dbfs: -1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let cfg = SignalConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.segment_samples(), 661_500);
        assert_eq!(cfg.segment_hop_samples(), 441_000);
        assert_eq!(cfg.frames_for_samples(cfg.segment_samples()), 1292);
        assert_eq!(cfg.model_frames(), 1280);
        assert_eq!(cfg.fmax_hz(), 22_050.0);
    }

    #[test]
    fn loads_partial_toml_and_rejects_unknown_fields() {
        let cfg: SignalConfig = toml::from_str("sample_rate = 22050\nn_mels = 64").unwrap();
        assert_eq!(cfg.sample_rate, 22_050);
        assert_eq!(cfg.n_fft, 2048);
        assert!(toml::from_str::<SignalConfig>("n_mel = 64").is_err());
    }

    #[test]
    fn validation_names_the_bad_field() {
        let cases: Vec<(SignalConfig, &str)> = vec![
            (SignalConfig { sample_rate: 1000, ..Default::default() }, "sample_rate"),
            (SignalConfig { hop_length: 0, ..Default::default() }, "hop_length"),
            (SignalConfig { n_mels: 5000, ..Default::default() }, "n_mels"),
            (SignalConfig { fmax: Some(30_000.0), ..Default::default() }, "fmax"),
            (SignalConfig { overlap_seconds: 15.0, ..Default::default() }, "overlap_seconds"),
            (SignalConfig { amin: 0.0, ..Default::default() }, "amin"),
        ];
        for (cfg, field) in cases {
            match cfg.validate() {
                Err(AudioError::InvalidParameter { name, .. }) => assert_eq!(name, field),
                other => panic!("{field}: expected InvalidParameter, got {other:?}"),
            }
        }
    }
}
