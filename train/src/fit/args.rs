//! Command-line flags of `melfuse-train fit` and the `--device` syntax.

use std::path::PathBuf;
use std::str::FromStr;

use burn::tensor::Device;
use clap::Args;

use super::balance::Balance;
use super::{FitConfig, FitError, FitRequest, InitRequest, RunInfo};
use crate::config_file::load_config;

/// The device a run trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's pure-Rust `flex` CPU backend (SIMD + rayon).
    Cpu,
    /// CUDA device `N` (needs the crate feature `cuda`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = FitError;

    /// `cpu`, `cuda` (device 0) or `cuda:N`. A comma-separated list is refused: multi-device
    /// training is not supported (see the module docs).
    fn from_str(text: &str) -> Result<Self, FitError> {
        let bad = |detail: &str| FitError::BadDevice { device: text.to_string(), detail: detail.to_string() };
        if text.contains(',') {
            return Err(bad("multi-device (data-parallel) training is not supported; pass one device"));
        }
        match text.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(DeviceSpec::Cuda(index)),
                Some(Err(_)) => Err(bad("the CUDA device index must be a non-negative integer (cuda:0)")),
                None => Err(bad("expected cpu, cuda or cuda:N")),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceSpec {
    /// The burn device (without autodiff; the loop adds it), or a clear error when this binary
    /// was built without the backend.
    pub fn device(&self) -> Result<Device, FitError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(index) => Ok(Device::cuda(*index)),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(FitError::CudaUnavailable { device: self.to_string() }),
        }
    }
}

/// Flags of `fit`. Settings resolve as defaults < the run's `run.json` (with `--resume`) <
/// `--config` TOML < the flags given here.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// Prepared cache folder (written by `prepare`).
    pub cache: PathBuf,
    /// Run folder: created for a new run (must be empty), continued with --resume.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any `FitConfig` fields (see train/configs/*/fit.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start from a pretrained run's weights: its folder or one of its checkpoint files.
    #[arg(long, value_name = "RUN_DIR|CHECKPOINT")]
    pub init: Option<PathBuf>,
    /// Train only on these genres (comma-separated); with --init they must be known to the checkpoint.
    #[arg(long, value_delimiter = ',')]
    pub genres: Option<Vec<String>>,
    /// Total optimiser steps (the schedule's length).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Segments per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Seed of initialisation, batch order and noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between checkpoints.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Steps between validation passes (0: only at the end).
    #[arg(long)]
    pub validate_every: Option<u64>,
    /// Steps between `train` metrics lines.
    #[arg(long)]
    pub log_every: Option<u64>,
    /// Genre balance of the batches: proportional (every segment equally often), uniform (every
    /// genre equally often) or a power p in [0, 1] (genre weight ∝ segments^p).
    #[arg(long)]
    pub balance: Option<Balance>,
    /// Multiply one genre's sampling weight, GENRE=FACTOR (repeatable; 0 leaves it out).
    #[arg(long = "genre-weight", value_name = "GENRE=FACTOR", value_parser = parse_genre_weight)]
    pub genre_weights: Vec<(String, f64)>,
    /// Augmentation: random gain up to ± this many dB.
    #[arg(long)]
    pub augment_gain_db: Option<f32>,
    /// Augmentation: random shift of the window along its track up to ± this many frames.
    #[arg(long)]
    pub augment_shift_frames: Option<usize>,
    /// Augmentation: random pitch change up to ± this many semitones (frequency-axis resampling).
    #[arg(long)]
    pub augment_pitch_semitones: Option<f32>,
    /// Stop with a checkpoint after this many steps, keeping the schedule of --steps (continue
    /// later with --resume).
    #[arg(long)]
    pub stop_at: Option<u64>,
}

impl FitArgs {
    /// The validated request.
    pub fn resolve(&self) -> Result<FitRequest, FitError> {
        let device: DeviceSpec = self.device.parse()?;
        let mut config: FitConfig = match (&self.config, self.resume) {
            (Some(path), _) => load_config(Some(path))?,
            (None, true) if self.out.join(super::run_dir::RUN_FILE).is_file() => RunInfo::read(&self.out)?.fit,
            (None, _) => FitConfig::default(),
        };
        macro_rules! override_with {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { config.$field = v; })* };
        }
        override_with!(steps, batch_size, learning_rate, seed, checkpoint_every, validate_every, log_every);
        if let Some(balance) = self.balance {
            config.sampling.balance = balance;
        }
        config.sampling.genre_weights.extend(self.genre_weights.iter().cloned());
        if let Some(db) = self.augment_gain_db {
            config.augment.gain_db = db;
        }
        if let Some(frames) = self.augment_shift_frames {
            config.augment.shift_frames = frames;
        }
        if let Some(semitones) = self.augment_pitch_semitones {
            config.augment.pitch_semitones = semitones;
        }
        config.validate()?;
        Ok(FitRequest {
            cache_dir: self.cache.clone(),
            run_dir: self.out.clone(),
            config,
            device,
            resume: self.resume,
            init: self.init.clone().map(|source| InitRequest { source }),
            genres: self.genres.clone(),
            stop_at: self.stop_at,
            handle_signals: true,
            progress: true,
        })
    }
}

/// `GENRE=FACTOR` of `--genre-weight`.
fn parse_genre_weight(text: &str) -> Result<(String, f64), String> {
    let (genre, factor) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected GENRE=FACTOR"))?;
    let factor: f64 = factor.trim().parse().map_err(|_| format!("{text:?}: the factor must be a number"))?;
    Ok((genre.trim().to_string(), factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_args::parse_args;

    #[test]
    fn sampling_and_augmentation_flags_override_the_toml() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("fit.toml");
        std::fs::write(
            &toml,
            "[sampling]\nbalance = \"uniform\"\ngenre_weights = { cn = 3.0, edm = 0.5 }\n[augment]\ngain_db = 3.0\n",
        )
        .unwrap();
        let args: FitArgs = parse_args(&[
            "cache",
            "--out",
            "run",
            "--config",
            toml.to_str().unwrap(),
            "--balance",
            "0.5",
            "--genre-weight",
            "cn=2",
            "--augment-shift-frames",
            "32",
        ]);
        let config = args.resolve().unwrap().config;
        assert_eq!(config.sampling.balance, Balance::Power(0.5));
        assert_eq!(config.sampling.genre_weights.get("cn"), Some(&2.0));
        assert_eq!(config.sampling.genre_weights.get("edm"), Some(&0.5));
        assert_eq!(
            (config.augment.gain_db, config.augment.shift_frames, config.augment.pitch_semitones),
            (3.0, 32, 0.0)
        );
        let bad: FitArgs = parse_args(&["c", "--out", "r", "--augment-gain-db", "30"]);
        assert!(bad.resolve().unwrap_err().to_string().contains("augment.gain_db"));
        assert!(parse_genre_weight("cn").is_err() && parse_genre_weight("cn=x").is_err());
    }

    #[test]
    fn device_syntax() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["gpu", "cuda:x", "cuda:0,cuda:1"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        #[cfg(not(feature = "cuda"))]
        {
            let message = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
            assert!(message.contains("built without CUDA support: rebuild with --features cuda"), "{message}");
        }
    }
}
