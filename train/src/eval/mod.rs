//! `melfuse-train eval`: how good is a trained model, and what does it produce?
//!
//! - reconstruction metrics on the validation split, per genre and overall ([`metrics`]);
//! - per-genre latent centroids from the training split, which generation and `export` use, and
//!   their separation ([`centroids`]);
//! - `curves.png`, the training history ([`curves`]), and `grid.png`, real / reconstructed /
//!   generated spectrograms per genre ([`grid`]).
//!
//! The steps work on plain inputs — an inference-mode [`Vae`], an open [`Cache`], a burn
//! [`Device`] ([`run`] with [`EvalInputs`]) — so they are testable with a freshly initialised
//! model; [`evaluate_run`] loads a `fit` run folder (newest checkpoint, `run.json`) and calls
//! [`run`].
//!
//! ```text
//! OUT/eval.json        EvalReport: metrics, separation, what was drawn
//! OUT/centroids.json   Centroids: genres, latent_dim, centroids [G][Z], clips_per_genre
//! OUT/curves.png       loss / reconstruction / KL / learning rate against step
//! OUT/grid.png         rows real, reconstruction, generated; one column per genre + a blend
//! ```
//!
//! `eval` looks at the model's own mels. What the *exported bundle* generates — through the
//! service, vocoded, against held-out reference audio (genre accuracy, pulse, flux, harmonic
//! bands, distance, diversity, blend curves) — is `melfuse-judge`'s job (crate `judge/`); a
//! bundle's README carries its judge table.

mod args;
pub mod centroids;
pub mod curves;
pub mod fonts;
pub mod grid;
pub mod metrics;

use crate::file_error::{io_error, FileError};
use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::{ImageFormat, RgbImage};
use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::{AudioError, DbRange};
use melfuse_models::{Vae, VaeConfig};
use serde::{Deserialize, Serialize};

pub use args::EvalArgs;
use centroids::{centroid_separation, CentroidSeparation, CENTROIDS_FILE};
use curves::{write_curves_png, HistorySummary, MetricsHistory, CURVES_SIZE};
use fonts::TextRendering;
use grid::{render_grid, GridLayout};
use metrics::ReconstructionMetrics;

use crate::fit::run_dir::metrics_path;
use crate::fit::{load_model, FitError};
use crate::prepare::cache::{Cache, CacheError};
use crate::prepare::split::Split;

/// Default output folder inside a run folder.
pub const EVAL_DIR: &str = "eval";
/// Name of the report file.
pub const EVAL_FILE: &str = "eval.json";
/// Name of the training-curve picture.
pub const CURVES_FILE: &str = "curves.png";
/// Name of the spectrogram grid picture.
pub const GRID_FILE: &str = "grid.png";
/// Default clips per forward pass: big enough to amortise the call, small enough for the paper
/// model on a CPU (16 × 128 × 1280 inputs).
pub const DEFAULT_BATCH_SIZE: usize = 16;
/// Default temperature of the generated grid clips (the HTTP API's default).
pub const DEFAULT_TEMPERATURE: f32 = 1.0;

/// Why evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A setting is out of range.
    #[error("invalid eval setting `{name}`: {detail}")]
    InvalidSetting {
        /// The flag.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// The model and the cache do not fit together.
    #[error("the model does not match the cache {cache}: {detail}")]
    Mismatch {
        /// The cache folder.
        cache: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The run folder or its checkpoint could not be loaded.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// Reading a segment from the cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Writing an output file failed.
    #[error(transparent)]
    Write(#[from] AudioError),
    /// A JSON file could not be parsed.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// A `centroids.json` has the wrong shape.
    #[error("invalid centroids file {path}: {detail}")]
    InvalidCentroids {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A tensor's values could not be read back as `f32`.
    #[error("cannot read tensor values: {0}")]
    TensorData(String),
    /// Values of an unexpected shape.
    #[error("unexpected shape: {0}")]
    Shape(String),
    /// plotters could not draw.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    /// PNG encoding failed.
    #[error("cannot encode PNG: {0}")]
    Png(#[from] image::ImageError),
    /// A report could not be serialised.
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        /// Which report.
        what: &'static str,
        /// serde's message.
        #[source]
        source: serde_json::Error,
    },
}

/// Knobs of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Clips per forward pass.
    pub batch_size: usize,
    /// Temperature of the generated grid clips, 0–2 like the HTTP API.
    pub temperature: f32,
    /// Seed of the generated clips' noise.
    pub seed: u64,
    /// Evaluate at most this many clips per genre; `None`: all.
    pub max_clips_per_genre: Option<usize>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { batch_size: DEFAULT_BATCH_SIZE, temperature: DEFAULT_TEMPERATURE, seed: 0, max_clips_per_genre: None }
    }
}

impl EvalSettings {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |name, detail: String| Err(EvalError::InvalidSetting { name, detail });
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return bad("temperature", format!("{} must be in [0, 2]", self.temperature));
        }
        if self.max_clips_per_genre == Some(0) {
            return bad("max_clips_per_genre", "must be at least 1".into());
        }
        Ok(())
    }
}

/// A model, the cache it is evaluated on, and how to feed it: the receiver of every
/// evaluation step ([`Evaluator::reconstruction`], [`Evaluator::accumulate_centroids`],
/// [`Evaluator::grid_content`]).
#[derive(Debug, Clone, Copy)]
pub struct Evaluator<'a> {
    /// The model, in inference mode (`model.valid()`, or built on a non-autodiff device) so
    /// BatchNorm uses running statistics and clips do not influence each other.
    pub model: &'a Vae,
    /// The prepared cache.
    pub cache: &'a Cache,
    /// The range the model was trained with: normalises inputs and turns errors into dB.
    pub db_range: DbRange,
    /// Where the tensors live.
    pub device: &'a Device,
    /// Clips per forward pass.
    pub batch_size: usize,
}

/// One encoded batch, handed to the caller of [`Evaluator::encode_batches`].
pub struct EncodedBatch {
    /// Segment indices (in the split) of the rows.
    pub indices: Vec<usize>,
    /// The normalised inputs, row-major `[rows, n_mels × frames]`.
    pub inputs: Vec<f32>,
    /// `n_mels × frames`.
    pub values_per_clip: usize,
    /// Posterior means `[rows, Z]`.
    pub mu: Tensor<2>,
    /// Posterior log-variances `[rows, Z]`.
    pub logvar: Tensor<2>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator using the cache's own dB range and [`DEFAULT_BATCH_SIZE`].
    pub fn new(model: &'a Vae, cache: &'a Cache, device: &'a Device) -> Self {
        Self { model, cache, db_range: cache.db_range(), device, batch_size: DEFAULT_BATCH_SIZE }
    }

    /// Segment `index` of `split`, normalised with [`Evaluator::db_range`].
    pub fn clip(&self, split: Split, index: usize) -> Result<Vec<f32>, EvalError> {
        let mut values = vec![0.0; self.cache.n_mels() * self.cache.frames()];
        self.cache.normalized_segment_into(split, index, &self.db_range, &mut values)?;
        Ok(values)
    }

    /// Encodes the segments `indices` of `split`, [`Evaluator::batch_size`] at a time, and hands
    /// each batch to `each`.
    pub fn encode_batches(
        &self,
        split: Split,
        indices: &[usize],
        mut each: impl FnMut(EncodedBatch) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        let values_per_clip = self.cache.n_mels() * self.cache.frames();
        for chunk in indices.chunks(self.batch_size.max(1)) {
            let mut inputs = Vec::with_capacity(chunk.len() * values_per_clip);
            for &index in chunk {
                inputs.extend(self.clip(split, index)?);
            }
            let (mu, logvar) = self.model.encode(batch_tensor(inputs.clone(), chunk.len(), self.cache, self.device));
            each(EncodedBatch { indices: chunk.to_vec(), inputs, values_per_clip, mu, logvar })?;
        }
        Ok(())
    }
}

/// `rows` normalised clips (row-major values) as the model's input `[rows, 1, n_mels, frames]`.
fn batch_tensor(values: Vec<f32>, rows: usize, cache: &Cache, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [rows, 1, cache.n_mels(), cache.frames()]), device)
}

/// One-hot genre rows `[genres.len(), n_genres]`.
pub(crate) fn one_hot(genres: &[usize], n_genres: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; genres.len() * n_genres];
    for (row, &genre) in genres.iter().enumerate() {
        values[row * n_genres + genre] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [genres.len(), n_genres]), device)
}

/// Row-major `f32` values of a tensor.
pub(crate) fn tensor_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, EvalError> {
    tensor.into_data().try_into_vec::<f32>().map_err(|e| EvalError::TensorData(format!("{e:?}")))
}

/// Encodes `image` as PNG and writes it to `path` atomically.
fn write_png(image: &RgbImage, path: &Path) -> Result<(), EvalError> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png)?;
    write_atomically(path, bytes.get_ref())?;
    Ok(())
}

/// Pretty JSON of `value` with a trailing newline, written to `path` atomically.
fn write_json<T: Serialize>(value: &T, what: &'static str, path: &Path) -> Result<(), EvalError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| EvalError::Serialize { what, source })?;
    text.push('\n');
    write_atomically(path, text.as_bytes())?;
    Ok(())
}

/// Checks that `vae_config` (trained on `genres`) can read the cache's segments: the same
/// genres in the same order, the same image size.
pub fn check_compatible(genres: &[String], vae_config: &VaeConfig, cache: &Cache) -> Result<(), EvalError> {
    let mismatch = |detail: String| Err(EvalError::Mismatch { cache: cache.dir().to_path_buf(), detail });
    if genres != cache.genres() {
        return mismatch(format!("the model's genres are {genres:?}, the cache's {:?}", cache.genres()));
    }
    if vae_config.n_genres != genres.len() {
        return mismatch(format!(
            "the model conditions on {} genres, the run lists {}",
            vae_config.n_genres,
            genres.len()
        ));
    }
    if (vae_config.n_mels, vae_config.frames) != (cache.n_mels(), cache.frames()) {
        return mismatch(format!(
            "the model takes {} mels × {} frames, the cache holds {} × {}",
            vae_config.n_mels,
            vae_config.frames,
            cache.n_mels(),
            cache.frames()
        ));
    }
    Ok(())
}

/// Everything an evaluation run needs, loaded by the caller.
#[derive(Debug, Clone, Copy)]
pub struct EvalInputs<'a> {
    /// The model in inference mode.
    pub model: &'a Vae,
    /// Its architecture (checked against the cache).
    pub vae_config: &'a VaeConfig,
    /// The genres it was trained on, in conditioning order.
    pub genres: &'a [String],
    /// The dB range it was trained with.
    pub db_range: DbRange,
    /// The optimiser step of the checkpoint, for the report.
    pub step: Option<u64>,
    /// The cache to evaluate on.
    pub cache: &'a Cache,
    /// The run's `metrics.jsonl`, for the curves.
    pub metrics: &'a Path,
    /// Where the tensors live.
    pub device: &'a Device,
}

/// What the curves picture was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvesReport {
    /// The metrics file read.
    pub metrics: String,
    /// Its record counts; `None` when it could not be read (then no `curves.png`).
    pub history: Option<HistorySummary>,
    /// Why there is no picture, when there is none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// The content of `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Optimiser step of the evaluated checkpoint.
    pub step: Option<u64>,
    /// The cache evaluated on.
    pub cache: String,
    /// The dB range used for normalisation and dB errors.
    pub db_range: DbRange,
    /// The settings used.
    pub settings: EvalSettings,
    /// Reconstruction metrics.
    pub reconstruction: ReconstructionMetrics,
    /// Distances between the genre centroids (those written to `centroids.json`).
    pub centroid_separation: CentroidSeparation,
    /// Training clips per centroid.
    pub centroid_clips: Vec<usize>,
    /// The training curves.
    pub curves: CurvesReport,
    /// The grid's geometry.
    pub grid: GridLayout,
    /// Whether the pictures have text (a font was found).
    pub labelled_plots: bool,
    /// Seconds the evaluation took.
    pub elapsed_seconds: f64,
}

/// Runs every evaluation step and writes `eval.json`, `centroids.json`, `curves.png` and
/// `grid.png` into `out_dir` (created if needed), atomically. A missing or unreadable
/// `metrics.jsonl` only skips `curves.png` (noted in the report); a missing font only drops
/// the text from the pictures.
pub fn run(
    inputs: &EvalInputs<'_>,
    settings: &EvalSettings,
    out_dir: &Path,
    text: &TextRendering,
) -> Result<EvalReport, EvalError> {
    let started = std::time::Instant::now();
    settings.validate()?;
    check_compatible(inputs.genres, inputs.vae_config, inputs.cache)?;
    std::fs::create_dir_all(out_dir).map_err(io_error("create folder", out_dir))?;
    let evaluator = Evaluator {
        model: inputs.model,
        cache: inputs.cache,
        db_range: inputs.db_range,
        device: inputs.device,
        batch_size: settings.batch_size,
    };

    let reconstruction = evaluator.reconstruction(settings.max_clips_per_genre)?;
    let accumulator = evaluator.accumulate_centroids()?;
    let centroids = accumulator.centroids(inputs.genres);
    let separation = centroid_separation(&centroids, accumulator.within_genre_rms());
    write_json(&centroids, "the centroids", &out_dir.join(CENTROIDS_FILE))?;

    let curves = match MetricsHistory::read(inputs.metrics) {
        Ok(history) => {
            write_curves_png(&history, CURVES_SIZE, text, &out_dir.join(CURVES_FILE))?;
            CurvesReport {
                metrics: inputs.metrics.display().to_string(),
                history: Some(history.summary()),
                error: None,
            }
        }
        Err(error) => {
            tracing::warn!("no curves.png: {error}");
            CurvesReport {
                metrics: inputs.metrics.display().to_string(),
                history: None,
                error: Some(error.to_string()),
            }
        }
    };

    let content = evaluator.grid_content(&centroids, settings.temperature, settings.seed)?;
    write_png(&render_grid(&content, text)?, &out_dir.join(GRID_FILE))?;

    let report = EvalReport {
        step: inputs.step,
        cache: inputs.cache.dir().display().to_string(),
        db_range: inputs.db_range,
        settings: settings.clone(),
        reconstruction,
        centroid_separation: separation,
        centroid_clips: centroids.clips_per_genre.clone(),
        curves,
        grid: content.layout,
        labelled_plots: text.enabled(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    write_json(&report, "the evaluation report", &out_dir.join(EVAL_FILE))?;
    Ok(report)
}

/// What [`evaluate_run`] did.
#[derive(Debug)]
pub struct EvalOutcome {
    /// The report written to `eval.json`.
    pub report: EvalReport,
    /// The folder the four files went to.
    pub out_dir: PathBuf,
}

/// `melfuse-train eval`: loads the newest checkpoint of `args.run_dir` in inference mode, opens
/// the cache (`--cache`, or the one in `run.json`), finds a font, and runs [`run`] into
/// `--out` (default `RUN_DIR/eval`).
pub fn evaluate_run(args: &EvalArgs) -> Result<EvalOutcome, EvalError> {
    let settings = args.settings()?;
    let device = args.device.device()?;
    let (model, info, step) = load_model(&args.run_dir, &device)?;
    let cache_dir = args.cache.clone().unwrap_or_else(|| info.cache_dir.clone());
    let cache = Cache::open(&cache_dir)?;
    let metrics = metrics_path(&args.run_dir);
    let inputs = EvalInputs {
        model: &model,
        vae_config: &info.model,
        genres: &info.genres,
        db_range: info.db_range,
        step: Some(step),
        cache: &cache,
        metrics: &metrics,
        device: &device,
    };
    let out_dir = args.out_dir();
    let report = run(&inputs, &settings, &out_dir, &fonts::load_font())?;
    Ok(EvalOutcome { report, out_dir })
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// `value` in dB with its sign and two decimals, or `-`.
fn signed(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:+.2}"))
}

/// The printed summary: a metrics table, the centroid distances and the spread.
impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let genres = &self.reconstruction.genres;
        let width = genres.iter().map(|g| g.genre.len()).max().unwrap_or(0).max(8);
        if let Some(step) = self.step {
            writeln!(f, "checkpoint at step {step}, cache {}", self.cache)?;
        }
        writeln!(
            f,
            "{:<width$}  {:<10}  {:>6}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}",
            "genre", "split", "clips", "MSE", "|dB err|", "quiet dB", "loud dB", "KL"
        )?;
        for g in genres {
            let m = &g.metrics;
            let flag = if g.note.is_some() { " *" } else { "" };
            writeln!(
                f,
                "{:<width$}  {:<10}  {:>6}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}{flag}",
                g.genre,
                g.split.as_str(),
                m.clips,
                optional(m.mse, 6),
                optional(m.mean_abs_db_error, 3),
                signed(m.quiet_bias_db),
                signed(m.loud_bias_db),
                optional(m.kl, 2),
            )?;
        }
        let o = &self.reconstruction.overall;
        writeln!(
            f,
            "{:<width$}  {:<10}  {:>6}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}",
            "overall",
            "",
            o.clips,
            optional(o.mse, 6),
            optional(o.mean_abs_db_error, 3),
            signed(o.quiet_bias_db),
            signed(o.loud_bias_db),
            optional(o.kl, 2),
        )?;
        for g in genres {
            if let Some(note) = &g.note {
                writeln!(f, "* {}: {note}", g.genre)?;
            }
        }
        let separation = &self.centroid_separation;
        writeln!(f, "centroid distances (training clips: {:?}):", self.centroid_clips)?;
        write!(f, "{:<width$}", "")?;
        for g in genres {
            write!(f, "  {:>9}", g.genre)?;
        }
        writeln!(f)?;
        for (g, row) in genres.iter().zip(&separation.distances) {
            write!(f, "{:<width$}", g.genre)?;
            for d in row {
                write!(f, "  {d:>9.3}")?;
            }
            writeln!(f)?;
        }
        write!(f, "{:<width$}", "spread")?;
        for spread in &separation.within_genre_rms {
            write!(f, "  {:>9}", optional(*spread, 3))?;
        }
        writeln!(f, "   (RMS distance of a genre's codes from its centroid)")?;
        writeln!(f, "separation ratio (nearest centroids / mean spread): {}", optional(separation.separation_ratio, 3))
    }
}

#[cfg(test)]
mod tests;
