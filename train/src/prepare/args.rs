//! Command-line flags of `melfuse-train prepare`.

use std::path::PathBuf;

use clap::Args;

use super::{PrepareConfig, PrepareError};
use crate::config_file::load_config;
use crate::signal_args::SignalArgs;

/// Flags of `prepare`. Settings resolve as defaults < `--config` TOML
/// (signal under `[signal]`) < `--signal-config` TOML < flags given here.
#[derive(Debug, Clone, Args)]
pub struct PrepareArgs {
    /// Corpus folder: one subfolder per genre (the folder name is the genre
    /// label), audio files at any depth inside.
    pub corpus: PathBuf,
    /// Cache folder (created if missing; must be empty or an earlier cache
    /// unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any `PrepareConfig` fields.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Fraction of tracks held out for validation, in [0, 1) [default: 0.1].
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Seed of the track split [default: 0].
    #[arg(long)]
    pub split_seed: Option<u64>,
    /// Segments per shard file [default: 256].
    #[arg(long)]
    pub segments_per_shard: Option<usize>,
    /// Leave out decoded tracks shorter than this many seconds [default: 0, keep all].
    #[arg(long)]
    pub min_track_seconds: Option<f64>,
    /// Drop segments whose RMS level is below this many dBFS [default: keep all].
    #[arg(long, allow_hyphen_values = true)]
    pub min_segment_rms_dbfs: Option<f32>,
    #[command(flatten)]
    pub signal: SignalArgs,
    /// Rebuild even if the cache is up to date, and write into a non-empty
    /// folder that holds no melfuse cache (only cache files are replaced).
    #[arg(long)]
    pub force: bool,
}

impl PrepareArgs {
    /// The effective configuration; validated.
    pub fn resolve(&self) -> Result<PrepareConfig, PrepareError> {
        let mut config: PrepareConfig = load_config(self.config.as_deref())?;
        config.signal = self.signal.resolve_over(config.signal)?;
        if let Some(fraction) = self.validation_fraction {
            config.validation_fraction = fraction;
        }
        if let Some(seed) = self.split_seed {
            config.split_seed = seed;
        }
        if let Some(n) = self.segments_per_shard {
            config.segments_per_shard = n;
        }
        if let Some(seconds) = self.min_track_seconds {
            config.min_track_seconds = seconds;
        }
        if let Some(db) = self.min_segment_rms_dbfs {
            config.min_segment_rms_dbfs = Some(db);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_args::parse_args;

    fn parse(args: &[&str]) -> PrepareArgs {
        parse_args(args)
    }

    #[test]
    fn flags_override_the_toml_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("prepare.toml");
        std::fs::write(
            &toml,
            "validation_fraction = 0.25\nsplit_seed = 4\n[signal]\nn_mels = 64\nframe_multiple = 8\n[db_range]\nfloor_percentile = 2.0\n",
        )
        .expect("write toml");
        let path = toml.to_str().expect("utf-8 path");
        let config = parse(&["corpus", "--out", "c", "--config", path, "--split-seed", "9", "--n-mels", "80"])
            .resolve()
            .expect("valid config");
        assert_eq!((config.validation_fraction, config.split_seed), (0.25, 9));
        assert_eq!((config.signal.n_mels, config.signal.frame_multiple), (80, 8));
        assert_eq!(config.db_range.floor_percentile, 2.0);
        assert_eq!(config.segments_per_shard, PrepareConfig::default().segments_per_shard);
        assert_eq!((config.min_track_seconds, config.min_segment_rms_dbfs), (0.0, None));
        let gated = parse(&["c", "--out", "o", "--min-track-seconds", "45", "--min-segment-rms-dbfs", "-45"])
            .resolve()
            .expect("valid gates");
        assert_eq!((gated.min_track_seconds, gated.min_segment_rms_dbfs), (45.0, Some(-45.0)));
        let message = parse(&["c", "--out", "o", "--min-segment-rms-dbfs", "3"]).resolve().unwrap_err().to_string();
        assert!(message.contains("min_segment_rms_dbfs"), "{message}");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let message = parse(&["c", "--out", "o", "--validation-fraction", "1"]).resolve().unwrap_err().to_string();
        assert!(message.contains("validation_fraction"), "{message}");
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("prepare.toml");
        std::fs::write(&toml, "[db_range]\nceiling_percent = 99\n").expect("write toml");
        let message =
            parse(&["c", "--out", "o", "--config", toml.to_str().expect("utf-8")]).resolve().unwrap_err().to_string();
        assert!(message.contains("ceiling_percent"), "{message}");
    }
}
