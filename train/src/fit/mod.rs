//! `melfuse-train fit`: trains the VAE on a prepared cache and writes a run folder
//! ([`run_dir`]) with `run.json`, a metrics log ([`metrics`]) and checkpoints ([`checkpoint`]).
//!
//! # The loop
//!
//! Each step draws a batch of training segments ([`batches`]: a seeded permutation per epoch, so
//! the batch of step `s` depends only on `(seed, s)`), normalises them with the cache's dB range,
//! draws the reparameterisation noise on the host from a ChaCha RNG seeded with `(seed, s)`,
//! computes the reconstruction loss + β·KL (`melfuse_models::VaeLossConfig`, β warmed up) and takes an Adam step at the
//! scheduled learning rate ([`schedule`]) with gradients clipped by norm. Everything that
//! influences a step is a function of the seed, the step and the checkpointed state, so `--resume`
//! reproduces an uninterrupted run exactly.
//!
//! # Real data
//!
//! Genres are drawn in proportion to their segments unless `[sampling]` balances them
//! ([`balance`]; the shares are written to `sampling.json`), and training batches may be
//! augmented in the mel domain ([`augment`]: gain, time shift along the track, mild pitch),
//! both deterministic per `(seed, step)`.
//!
//! # Two stages
//!
//! The spectral stage above trains the whole VAE. A run whose config has an `[adversarial]`
//! section is the second stage ([`adversarial`]): started with `--init` from a spectral run, it
//! freezes the encoder and fine-tunes the decoder against a PatchGAN critic, balancing the
//! critic's gradient against the reconstruction terms'. Checkpoints then hold the critic too, and
//! `eval` and `export` read the result like any run.
//!
//! # Non-finite losses
//!
//! The loss is read back every step. A NaN or infinite loss skips the optimiser step (and undoes
//! the BatchNorm running-statistics update of that forward pass), so the weights are untouched;
//! it is counted, logged as a warning and recorded in the metrics. After
//! `max_consecutive_nonfinite` in a row the last checkpoint (model + optimiser) is reloaded and
//! the learning rate multiplied by `lr_backoff` (the accumulated factor is checkpointed). The
//! step counter keeps counting batches forward, so a bad stretch of data is not replayed.
//!
//! # Interruption
//!
//! Ctrl-C and SIGTERM ([`interrupt`]) finish the current step, write a checkpoint and return
//! normally (the command exits 0); a second Ctrl-C exits at once with code 130.
//!
//! # Devices
//!
//! `cpu` is burn's `flex` backend; `cuda[:N]` needs the crate feature `cuda`. Multi-device
//! data-parallel training is not supported: burn 0.22 has the pieces (`ModuleOptimizer::step_multi`)
//! but no way to test it here without GPUs, so `--device` takes a single device.

pub mod adversarial;
mod args;
pub mod augment;
pub mod balance;
pub mod batches;
pub mod checkpoint;
mod config;
pub mod interrupt;
pub mod metrics;
pub mod run_dir;
mod running_statistics;
pub mod schedule;
mod trainer;

use crate::file_error::FileError;
use std::path::PathBuf;

pub use adversarial::AdversarialConfig;
pub use args::{DeviceSpec, FitArgs};
pub use checkpoint::load_model;
pub use config::{FitConfig, ModelPreset, ModelSettings, Schedule};
pub use metrics::{read_metrics, MetricRecord};
pub use run_dir::RunInfo;
pub use trainer::{fit, FitHooks, FitOutcome, FitRequest, InitRequest};

use crate::config_file::ConfigFileError;
use crate::prepare::cache::CacheError;

/// Why a training run could not start, continue or finish.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// A setting is out of range.
    #[error("invalid fit setting `{field}`: {detail}")]
    InvalidConfig {
        /// The field, as in the TOML file.
        field: &'static str,
        /// Why.
        detail: String,
    },
    /// The configuration file was unusable.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The model architecture is invalid.
    #[error("invalid model settings: {0}")]
    Model(#[from] melfuse_models::VaeConfigError),
    /// The prepared cache could not be opened or read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `--device` names a backend this binary was built without.
    #[error("--device {device}: built without CUDA support: rebuild with --features cuda")]
    CudaUnavailable {
        /// The requested device.
        device: String,
    },
    /// `--device` is not `cpu`, `cuda` or `cuda:N`.
    #[error("--device {device}: {detail}")]
    BadDevice {
        /// The requested device.
        device: String,
        /// Why.
        detail: String,
    },
    /// A fresh run was asked for in a folder that already holds files.
    #[error("run folder {dir} is not empty: pass --resume to continue the run in it, or choose another --out")]
    RunDirInUse {
        /// The folder.
        dir: PathBuf,
    },
    /// `--resume` in a folder without a run.
    #[error("{dir} holds no run to resume (no run.json); start one without --resume")]
    NothingToResume {
        /// The folder.
        dir: PathBuf,
    },
    /// `--resume` with settings that would change the training trajectory.
    #[error("cannot resume: `{field}` differs from the run's ({was} → {now}); start a new run to change it")]
    ConfigChanged {
        /// The top-level field that differs.
        field: String,
        /// The run's value.
        was: String,
        /// The requested value.
        now: String,
    },
    /// `--resume` against a different cache.
    #[error("cannot resume: {detail}")]
    ResumeMismatch {
        /// What differs.
        detail: String,
    },
    /// `run.json` has another format or version.
    #[error("{path} is {found}, expected {expected}")]
    RunFormat {
        /// The file.
        path: PathBuf,
        /// What it declares.
        found: String,
        /// What this version reads.
        expected: String,
    },
    /// A folder holds no loadable checkpoint.
    #[error("no loadable checkpoint in {dir}")]
    NoCheckpoint {
        /// The checkpoints folder.
        dir: PathBuf,
    },
    /// A record file is corrupt or does not fit the model.
    #[error("unusable checkpoint file {path}: {detail}")]
    Record {
        /// The file (or folder).
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A genre asked for is missing from the cache or from the pretrained checkpoint.
    #[error("genre `{genre}` is unknown to the {source_name} (it has: {known})")]
    UnknownGenre {
        /// The genre.
        genre: String,
        /// `cache` or `checkpoint`.
        source_name: &'static str,
        /// The genres it has, comma-separated.
        known: String,
    },
    /// The pretrained model does not fit the cache's segments.
    #[error("the pretrained model takes {model_mels} × {model_frames} inputs but the cache has {cache_mels} × {cache_frames}")]
    ShapeMismatch {
        /// Mel bands of the model.
        model_mels: usize,
        /// Frames of the model.
        model_frames: usize,
        /// Mel bands of the cache.
        cache_mels: usize,
        /// Frames of the cache.
        cache_frames: usize,
    },
    /// No training segment to draw batches from.
    #[error("the cache's training split has no segment of the selected genres")]
    NoTrainingData,
    /// The signal handler could not be installed.
    #[error("cannot install the Ctrl-C/SIGTERM handler: {0}")]
    Signal(String),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A JSON file could not be read or written.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// A metrics line is not a record.
    #[error("{path} line {line}: {source}")]
    MetricsLine {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests;
