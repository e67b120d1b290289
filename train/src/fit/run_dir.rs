//! The run folder: `run.json` ([`RunInfo`], everything `eval` and `export` need), the metrics
//! log and the checkpoints folder.
//!
//! ```text
//! RUN_DIR/
//!   run.json                 RunInfo: format, cache, genres, signal, dB range, FitConfig, VaeConfig
//!   metrics.jsonl            one JSON object per line (see `metrics`)
//!   checkpoints/
//!     step-00001234.model.bpk   model parameters and BatchNorm statistics (burnpack)
//!     step-00001234.optim.bpk   Adam state (burnpack)
//!     step-00001234.json        CheckpointState, written last, with the SHA-256 of both files
//!     latest                    the newest checkpoint's stem, e.g. `step-00001234`
//! ```

use crate::file_error::{io_error, write_file};
use std::path::{Path, PathBuf};

use melfuse_audio::{DbRange, SignalConfig};
use melfuse_models::VaeConfig;
use serde::{Deserialize, Serialize};

use super::{FitConfig, FitError};

/// `format` of `run.json`.
pub const RUN_FORMAT: &str = "melfuse-run";
/// Version of the run-folder layout and of `run.json`; bumped on incompatible changes.
pub const RUN_FORMAT_VERSION: u32 = 1;
/// The run description file.
pub const RUN_FILE: &str = "run.json";
/// The metrics log.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The checkpoints folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Where a fine-tuned run's weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSource {
    /// The pretrained run folder (absolute).
    pub run_dir: PathBuf,
    /// Its checkpoint step the weights were taken from.
    pub step: u64,
}

/// `run.json`: what a run trained on and with what, written when the run starts (and rewritten
/// when `--resume` changes an operational setting such as `steps`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// Always [`RUN_FORMAT`].
    pub format: String,
    /// [`RUN_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// `melfuse-train <version>` that wrote it.
    pub generator: String,
    /// The prepared cache trained on (absolute path).
    pub cache_dir: PathBuf,
    /// The cache's fingerprint at the start of the run.
    pub cache_fingerprint: String,
    /// The genres of the model's conditioning vector, in order: index `g` of `genre: [B, G]`.
    pub genres: Vec<String>,
    /// The genres whose segments were trained on (all of `genres` unless fine-tuning a subset).
    pub train_genres: Vec<String>,
    /// Signal parameters of the cache (mel ↔ audio).
    pub signal: SignalConfig,
    /// The dB range that maps mel dB to the model's `[0, 1]`.
    pub db_range: DbRange,
    /// The resolved training settings.
    pub fit: FitConfig,
    /// The resolved architecture (`n_mels`, `frames`, `n_genres` included).
    #[serde(deserialize_with = "vae_config_of_any_version")]
    pub model: VaeConfig,
    /// The pretrained run the weights started from, for `--init`.
    pub init: Option<InitSource>,
}

impl RunInfo {
    /// Reads and checks `RUN_DIR/run.json`.
    pub fn read(run_dir: &Path) -> Result<Self, FitError> {
        let path = run_dir.join(RUN_FILE);
        let bytes = std::fs::read(&path).map_err(io_error("read", &path))?;
        let info: Self =
            serde_json::from_slice(&bytes).map_err(|source| FitError::Json { path: path.clone(), source })?;
        if info.format != RUN_FORMAT || info.format_version != RUN_FORMAT_VERSION {
            return Err(FitError::RunFormat {
                path,
                found: format!("{} v{}", info.format, info.format_version),
                expected: format!("{RUN_FORMAT} v{RUN_FORMAT_VERSION}"),
            });
        }
        Ok(info)
    }

    /// Writes `RUN_DIR/run.json` atomically.
    pub fn write(&self, run_dir: &Path) -> Result<(), FitError> {
        let path = run_dir.join(RUN_FILE);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| FitError::Json { path: path.clone(), source })?;
        text.push('\n');
        Ok(write_file(&path, text.as_bytes())?)
    }
}

/// `RUN_DIR/checkpoints`.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINTS_DIR)
}

/// `RUN_DIR/metrics.jsonl`.
pub fn metrics_path(run_dir: &Path) -> PathBuf {
    run_dir.join(METRICS_FILE)
}

/// Creates the run folder for a fresh run: it may exist only if empty, so an earlier run is never
/// overwritten by accident (`--resume` continues one).
pub fn create_fresh(run_dir: &Path) -> Result<(), FitError> {
    if run_dir.exists() {
        let mut entries = std::fs::read_dir(run_dir).map_err(io_error("list", run_dir))?;
        if entries.next().is_some() {
            return Err(FitError::RunDirInUse { dir: run_dir.to_path_buf() });
        }
    }
    let checkpoints = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&checkpoints).map_err(io_error("create directory", &checkpoints))?;
    Ok(())
}

/// A run's `model`, also from runs written before a [`VaeConfig`] field existed: burn's config
/// derive gives serde no defaults, so each later field is filled here with the value that
/// reproduces the older model (`latent_downsampling`: ResNet18's own ÷32).
fn vae_config_of_any_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<VaeConfig, D::Error> {
    let mut value = serde_json::Value::deserialize(deserializer)?;
    if let Some(fields) = value.as_object_mut() {
        fields.entry("latent_downsampling").or_insert_with(|| melfuse_models::DOWNSAMPLING.into());
    }
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Model {
        #[serde(deserialize_with = "vae_config_of_any_version")]
        model: VaeConfig,
    }

    #[test]
    fn a_model_written_before_latent_downsampling_reads_as_the_32_grid() {
        let mut written = serde_json::to_value(VaeConfig::tiny(4).with_latent_downsampling(16)).expect("serialises");
        let read: Model = serde_json::from_value(serde_json::json!({ "model": written.clone() })).expect("reads");
        assert_eq!(read.model.latent_downsampling, 16, "a written value is kept");
        written.as_object_mut().expect("an object").remove("latent_downsampling");
        let read: Model = serde_json::from_value(serde_json::json!({ "model": written })).expect("an old run reads");
        assert_eq!(read.model.latent_downsampling, 32);
        read.model.validate().expect("and is the vector model it was");
    }
}
