//! Command-line flags of `melfuse-train eval`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EvalError, EvalSettings, DEFAULT_BATCH_SIZE, DEFAULT_TEMPERATURE};

/// Where the model runs during evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalDevice {
    /// burn's pure-Rust `flex` CPU backend.
    Cpu,
}

impl EvalDevice {
    /// The burn device for this choice.
    pub fn device(self) -> burn::tensor::Device {
        match self {
            EvalDevice::Cpu => burn::tensor::Device::flex(),
        }
    }
}

/// `melfuse-train eval RUN_DIR [--cache DIR] [--out DIR] [--device cpu] [--seed K]`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Training run folder (holds run.json, the checkpoint and metrics.jsonl).
    pub run_dir: PathBuf,
    /// Prepared cache to evaluate on; default: the cache the run was trained on (run.json).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output folder; default: RUN_DIR/eval.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to run the model on.
    #[arg(long, value_enum, default_value_t = EvalDevice::Cpu)]
    pub device: EvalDevice,
    /// Seed of the noise behind the generated clips in grid.png.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Temperature of the generated clips (0–2): `z = centroid + temperature·ε`.
    #[arg(long, default_value_t = DEFAULT_TEMPERATURE)]
    pub temperature: f32,
    /// Clips per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Evaluate at most this many clips per genre (default: all).
    #[arg(long)]
    pub max_clips_per_genre: Option<usize>,
}

impl EvalArgs {
    /// The checked settings.
    pub fn settings(&self) -> Result<EvalSettings, EvalError> {
        let settings = EvalSettings {
            batch_size: self.batch_size,
            temperature: self.temperature,
            seed: self.seed,
            max_clips_per_genre: self.max_clips_per_genre,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// The output folder: `--out`, or `RUN_DIR/eval`.
    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| self.run_dir.join(super::EVAL_DIR))
    }
}
