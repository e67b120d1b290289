//! Command-line flags of `melfuse-train eval`.

use std::path::PathBuf;

use clap::Args;

use crate::fit::DeviceSpec;

use super::{EvalError, EvalSettings, DEFAULT_BATCH_SIZE, DEFAULT_TEMPERATURE};

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
    /// Device to run the model on: `cpu`, or `cuda:N` with the `cuda` feature (as for `fit`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
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
