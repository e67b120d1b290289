//! Checkpoints: the model's parameters (with BatchNorm running statistics), the Adam state and a
//! small JSON [`CheckpointState`], under `RUN_DIR/checkpoints/step-00001234.*`; in the
//! adversarial stage also the critic and its Adam state (`*.critic.bpk`, `*.critic-optim.bpk`).
//!
//! # Crash safety
//!
//! Each file is written to a temporary name in the same folder, synced and renamed, so a file
//! under its final name is always complete. The state file is written last and records the
//! SHA-256 of the two record files, so a checkpoint whose state file exists and whose hashes
//! match is whole; anything else (a kill between the files, a truncated disk) is skipped by
//! [`newest_loadable`]. The `latest` pointer is written (atomically) after the state; loading
//! tries it first and falls back to the newest checkpoint that loads when it is missing, corrupt
//! or names a broken checkpoint. Old checkpoints are pruned only after `latest` moved on.

use crate::file_error::{io_error, write_file, FileError};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use melfuse_models::Vae;
use melfuse_proto::manifest::sha256_hex;
use serde::{Deserialize, Serialize};

use super::adversarial::Critic;
use super::run_dir::{checkpoints_dir, RunInfo};
use super::FitError;

/// Version of [`CheckpointState`].
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// The pointer file naming the newest checkpoint.
pub const LATEST_FILE: &str = "latest";
const MODEL_SUFFIX: &str = "model.bpk";
const OPTIMIZER_SUFFIX: &str = "optim.bpk";
const STATE_SUFFIX: &str = "json";
const CRITIC_SUFFIX: &str = "critic.bpk";
const CRITIC_OPTIMIZER_SUFFIX: &str = "critic-optim.bpk";

/// The training loop's own state at a checkpoint: enough, with the two records, to continue as if
/// the run had never stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Optimiser steps taken (batches consumed, skipped ones included) when it was written.
    pub step: u64,
    /// Product of the `lr_backoff` factors applied so far (1 until a non-finite reload).
    pub lr_scale: f64,
    /// Non-finite losses (skipped steps) over the whole run.
    pub nonfinite_total: u64,
    /// Non-finite losses in a row at this step.
    pub consecutive_nonfinite: u32,
    /// Reloads of a checkpoint after too many non-finite losses in a row.
    pub restores: u32,
    /// SHA-256 of the trajectory-shaping settings (`FitConfig::trajectory_fields`).
    pub config_hash: String,
    /// SHA-256 of the model record file.
    pub model_sha256: String,
    /// SHA-256 of the optimiser record file.
    pub optimizer_sha256: String,
    /// SHA-256 of the critic's record file (adversarial stage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_sha256: Option<String>,
    /// SHA-256 of the critic optimiser's record file (adversarial stage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_optimizer_sha256: Option<String>,
}

/// The file stem of the checkpoint at `step`: `step-00001234`.
pub fn checkpoint_stem(step: u64) -> String {
    format!("step-{step:08}")
}

fn stem_step(stem: &str) -> Option<u64> {
    let digits = stem.strip_prefix("step-")?;
    (digits.len() >= 8 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

fn file(dir: &Path, step: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.{suffix}", checkpoint_stem(step)))
}

pub(super) fn record_error(path: &Path, error: impl std::fmt::Display) -> FitError {
    FitError::Record { path: path.to_path_buf(), detail: error.to_string() }
}

/// Steps of the checkpoints in `dir` that have a state file, newest first (whether they load is
/// checked by [`read_checkpoint`]).
pub fn list_checkpoints(dir: &Path) -> Result<Vec<u64>, FitError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(FileError::new("list", dir, source).into()),
    };
    let mut steps: Vec<u64> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            stem_step(name.strip_suffix(&format!(".{STATE_SUFFIX}"))?)
        })
        .collect();
    steps.sort_unstable_by(|a, b| b.cmp(a));
    Ok(steps)
}

/// Writes the checkpoint at `state.step` (filling in the hashes), moves `latest` to it and
/// deletes all but the newest `keep` checkpoints. The model's pending BatchNorm updates are
/// folded into its running statistics first, so the record holds the current ones.
pub fn save(
    dir: &Path,
    model: &Vae,
    optimizer: &ModuleOptimizer,
    critic: Option<&Critic>,
    mut state: CheckpointState,
    keep: usize,
) -> Result<(), FitError> {
    let step = state.step;
    // `valid()` synchronises every RunningState (shared with `model`), see `RunningState::sync`.
    drop(model.valid());
    let model_path = file(dir, step, MODEL_SUFFIX);
    let model_bytes = model.clone().into_record().into_bytes().map_err(|e| record_error(&model_path, e))?;
    let optimizer_path = file(dir, step, OPTIMIZER_SUFFIX);
    let optimizer_bytes = optimizer.to_record().into_bytes().map_err(|e| record_error(&optimizer_path, e))?;
    state.model_sha256 = sha256_hex(&model_bytes);
    state.optimizer_sha256 = sha256_hex(&optimizer_bytes);
    write_file(&model_path, &model_bytes)?;
    write_file(&optimizer_path, &optimizer_bytes)?;
    (state.critic_sha256, state.critic_optimizer_sha256) = (None, None);
    if let Some(critic) = critic {
        let critic_path = file(dir, step, CRITIC_SUFFIX);
        let critic_bytes =
            critic.model.clone().into_record().into_bytes().map_err(|e| record_error(&critic_path, e))?;
        let adam_path = file(dir, step, CRITIC_OPTIMIZER_SUFFIX);
        let adam_bytes = critic.optimizer.to_record().into_bytes().map_err(|e| record_error(&adam_path, e))?;
        state.critic_sha256 = Some(sha256_hex(&critic_bytes));
        state.critic_optimizer_sha256 = Some(sha256_hex(&adam_bytes));
        write_file(&critic_path, &critic_bytes)?;
        write_file(&adam_path, &adam_bytes)?;
    }
    let state_path = file(dir, step, STATE_SUFFIX);
    let json =
        serde_json::to_vec_pretty(&state).map_err(|source| FitError::Json { path: state_path.clone(), source })?;
    write_file(&state_path, &json)?;
    write_file(&dir.join(LATEST_FILE), format!("{}\n", checkpoint_stem(step)).as_bytes())?;
    if let Ok(handle) = std::fs::File::open(dir) {
        // Make the renames durable; a failure here only weakens durability, never correctness.
        let _ = handle.sync_all();
    }
    prune(dir, keep, step)
}

/// Deletes checkpoints beyond the newest `keep` (never `current`), state file first so that a
/// partly deleted checkpoint no longer counts as one, and stale temporary files of this process.
fn prune(dir: &Path, keep: usize, current: u64) -> Result<(), FitError> {
    for step in list_checkpoints(dir)?.into_iter().skip(keep).filter(|&s| s != current) {
        for suffix in [STATE_SUFFIX, MODEL_SUFFIX, OPTIMIZER_SUFFIX, CRITIC_SUFFIX, CRITIC_OPTIMIZER_SUFFIX] {
            let path = file(dir, step, suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(FileError::new("delete", path, source).into()),
            }
        }
    }
    Ok(())
}

/// A checkpoint read from disk and checked against its hashes, not yet applied to a model.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// The loop state.
    pub state: CheckpointState,
    /// The model parameters.
    pub model: ModuleRecord,
    /// The optimiser state.
    pub optimizer: OptimizerRecord,
    /// The critic and its optimiser state, in a checkpoint of the adversarial stage.
    pub critic: Option<(ModuleRecord, OptimizerRecord)>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, FitError> {
    Ok(std::fs::read(path).map_err(io_error("read", path))?)
}

/// Reads the checkpoint at `step` of `dir`, checking the version and both hashes.
pub fn read_checkpoint(dir: &Path, step: u64) -> Result<LoadedCheckpoint, FitError> {
    let state_path = file(dir, step, STATE_SUFFIX);
    let state: CheckpointState = serde_json::from_slice(&read_bytes(&state_path)?)
        .map_err(|source| FitError::Json { path: state_path.clone(), source })?;
    if state.format_version != CHECKPOINT_FORMAT_VERSION || state.step != step {
        return Err(record_error(
            &state_path,
            format!(
                "version {} step {}, expected version {CHECKPOINT_FORMAT_VERSION} step {step}",
                state.format_version, state.step
            ),
        ));
    }
    let load = |suffix: &str, expected: &str| -> Result<(PathBuf, Bytes), FitError> {
        let path = file(dir, step, suffix);
        let bytes = read_bytes(&path)?;
        let found = sha256_hex(&bytes);
        if found != expected {
            return Err(record_error(&path, format!("SHA-256 {found} differs from the recorded {expected}")));
        }
        Ok((path, Bytes::from_bytes_vec(bytes)))
    };
    let (model_path, model_bytes) = load(MODEL_SUFFIX, &state.model_sha256)?;
    let model = ModuleRecord::from_bytes(model_bytes).map_err(|e| record_error(&model_path, e))?;
    let (optimizer_path, optimizer_bytes) = load(OPTIMIZER_SUFFIX, &state.optimizer_sha256)?;
    let optimizer = OptimizerRecord::from_bytes(optimizer_bytes).map_err(|e| record_error(&optimizer_path, e))?;
    let critic = match (&state.critic_sha256, &state.critic_optimizer_sha256) {
        (Some(critic_hash), Some(adam_hash)) => {
            let (critic_path, critic_bytes) = load(CRITIC_SUFFIX, critic_hash)?;
            let critic = ModuleRecord::from_bytes(critic_bytes).map_err(|e| record_error(&critic_path, e))?;
            let (adam_path, adam_bytes) = load(CRITIC_OPTIMIZER_SUFFIX, adam_hash)?;
            let adam = OptimizerRecord::from_bytes(adam_bytes).map_err(|e| record_error(&adam_path, e))?;
            Some((critic, adam))
        }
        (None, None) => None,
        _ => return Err(record_error(&state_path, "records one of the critic's two hashes without the other")),
    };
    Ok(LoadedCheckpoint { state, model, optimizer, critic })
}

/// The checkpoint `latest` names if it loads, else the newest one that loads; `None` when the
/// folder holds no loadable checkpoint. Broken ones are reported through `tracing` and skipped.
pub fn newest_loadable(dir: &Path) -> Result<Option<LoadedCheckpoint>, FitError> {
    let pointed = std::fs::read_to_string(dir.join(LATEST_FILE)).ok().and_then(|text| stem_step(text.trim()));
    if let Some(step) = pointed {
        match read_checkpoint(dir, step) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(error) => tracing::warn!("`latest` names an unusable checkpoint ({error}); trying the others"),
        }
    }
    for step in list_checkpoints(dir)? {
        if Some(step) == pointed {
            continue;
        }
        match read_checkpoint(dir, step) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(error) => tracing::warn!("skipping checkpoint {}: {error}", checkpoint_stem(step)),
        }
    }
    Ok(None)
}

/// Applies a model record to a freshly initialised `model`, naming `dir` on a mismatch.
pub fn apply_model_record(model: Vae, record: ModuleRecord, dir: &Path) -> Result<Vae, FitError> {
    model.try_load_record(record).map_err(|e| record_error(dir, e))
}

/// The trained model of `run_dir` from its newest loadable checkpoint, on `device`, in inference
/// mode ([`Module::valid`]: BatchNorm uses the running statistics, rows of a batch are
/// independent), with the run's description and the checkpoint's step. This is what `eval` and
/// `export` call.
pub fn load_model(run_dir: &Path, device: &Device) -> Result<(Vae, RunInfo, u64), FitError> {
    let info = RunInfo::read(run_dir)?;
    let dir = checkpoints_dir(run_dir);
    let loaded = newest_loadable(&dir)?.ok_or_else(|| FitError::NoCheckpoint { dir: dir.clone() })?;
    let model = info.model.init(device)?;
    let model = apply_model_record(model, loaded.model, &dir)?;
    Ok((model.valid(), info, loaded.state.step))
}
