//! Command-line overrides of [`SignalConfig`], shared by every subcommand
//! that turns audio into mel spectrograms.

use std::path::PathBuf;

use clap::Args;
use melfuse_audio::{AudioError, SignalConfig};

use crate::config_file::{load_config, ConfigFileError};

/// Signal parameters: `--signal-config FILE` (TOML, any subset of the
/// fields), then each flag given overrides the file and the defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct SignalArgs {
    /// TOML file with signal parameters (sample_rate, n_fft, hop_length, n_mels, ...).
    #[arg(long, value_name = "FILE", env = "MELFUSE_SIGNAL_CONFIG")]
    pub signal_config: Option<PathBuf>,
    /// Rate audio is resampled to, in Hz [default: 44100].
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// FFT size [default: 2048].
    #[arg(long)]
    pub n_fft: Option<usize>,
    /// Samples between frames [default: 512].
    #[arg(long)]
    pub hop_length: Option<usize>,
    /// Mel bands [default: 128].
    #[arg(long)]
    pub n_mels: Option<usize>,
    /// Lowest mel frequency in Hz [default: 0].
    #[arg(long)]
    pub fmin: Option<f32>,
    /// Highest mel frequency in Hz [default: sample_rate / 2].
    #[arg(long)]
    pub fmax: Option<f32>,
    /// Segment length in seconds [default: 15].
    #[arg(long)]
    pub segment_seconds: Option<f32>,
    /// Overlap of consecutive segments in seconds [default: 5].
    #[arg(long)]
    pub overlap_seconds: Option<f32>,
}

/// Why the signal parameters could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum SignalArgsError {
    /// The TOML file was unusable.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// The combined parameters are invalid.
    #[error(transparent)]
    Invalid(#[from] AudioError),
}

impl SignalArgs {
    /// Defaults, then the file, then the flags; validated.
    pub fn resolve(&self) -> Result<SignalConfig, SignalArgsError> {
        self.resolve_over(SignalConfig::default())
    }

    /// `base` (for example a stage config's `[signal]` table), replaced by
    /// the `--signal-config` file when one is given, then the flags;
    /// validated.
    pub fn resolve_over(&self, base: SignalConfig) -> Result<SignalConfig, SignalArgsError> {
        let mut config = match &self.signal_config {
            Some(path) => load_config(Some(path))?,
            None => base,
        };
        macro_rules! override_with {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { config.$field = v; })* };
        }
        override_with!(sample_rate, n_fft, hop_length, n_mels, fmin, segment_seconds, overlap_seconds);
        if let Some(fmax) = self.fmax {
            config.fmax = Some(fmax);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "sample_rate = 22050\nn_mels = 64\n").unwrap();
        let args = SignalArgs { signal_config: Some(file), n_mels: Some(80), ..Default::default() };
        let cfg = args.resolve().unwrap();
        assert_eq!((cfg.sample_rate, cfg.n_mels, cfg.n_fft), (22_050, 80, 2048));
    }

    #[test]
    fn flags_override_a_stage_base() {
        let base = SignalConfig { n_mels: 64, frame_multiple: 8, ..Default::default() };
        let cfg = SignalArgs { n_fft: Some(1024), ..Default::default() }.resolve_over(base).unwrap();
        assert_eq!((cfg.n_mels, cfg.frame_multiple, cfg.n_fft), (64, 8, 1024));
    }

    #[test]
    fn invalid_combinations_name_the_field() {
        let args = SignalArgs { sample_rate: Some(16_000), fmax: Some(12_000.0), ..Default::default() };
        let message = args.resolve().unwrap_err().to_string();
        assert!(message.contains("fmax"), "{message}");
    }
}
