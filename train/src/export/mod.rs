//! `melfuse-train export RUN_DIR --out models/NAME`: a trained run as a model bundle the service
//! loads — `decoder.onnx` (written by [`melfuse_models::decoder_graph`]), `manifest.json` (every
//! field DESIGN.md lists, validated by reading the bundle back with `Manifest::load`) and
//! `preview.png` (one generated spectrogram per genre, top to bottom in genre order: the bank's
//! code for `blend=g:1` at seed 0, or the genre's centroid without a bank) and `latent_bank.bin`
//! (the training codes the default `bank` sampler draws from, see [`bank`]; `--bank-per-genre 0`
//! leaves it out). A tiled bank's export also renders each of the bank's stretches with its
//! genre and measures the manifest's `postfilter` on them (`melfuse_audio::postfilter`;
//! `--no-postfilter` leaves it out). With `--triton DIR` it also writes the
//! decoder as an NVIDIA Triton model repository (see [`triton`]).
//!
//! What a bundle generates is measured by `melfuse-judge` (crate `judge/`); a bundle's README
//! carries its judge table.

pub mod bank;
pub mod faithful;
mod tiles;
pub mod triton;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::postfilter::{Postfilter, PostfilterStats};
use melfuse_audio::spectrogram_image::render_spectrogram;
use melfuse_models::decoder_graph::{decoder_to_onnx, latent_time_cells, DecoderGraphError, DecoderShape};
use melfuse_models::Vae;
use melfuse_proto::latent_bank::{bank_info, LatentBank, LATENT_BANK_FILE};
use melfuse_proto::manifest::{
    decoder_interface, sha256_hex, GenreDataset, Manifest, ManifestError, OnnxInfo, TrainingSummary, DECODER_FILE,
    FORMAT_VERSION,
};
use melfuse_proto::onnx::{DEFAULT_OPSET, SUPPORTED_OPSETS};

use crate::eval::centroids::Centroids;
use crate::eval::{EvalError, Evaluator};
use crate::fit::checkpoint::load_model;
use crate::fit::metrics::{read_metrics, MetricRecord};
use crate::fit::run_dir::metrics_path;
use crate::fit::{FitError, RunInfo};
use crate::prepare::cache::{Cache, CacheError};
use crate::prepare::split::Split;
use faithful::BankChoice;
use triton::{write_repository, TritonArgs, TritonError, TritonRepository};

/// The manifest file of a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The preview picture of a bundle.
pub const PREVIEW_FILE: &str = "preview.png";
/// Pixel rows between genres in the preview.
const PREVIEW_GAP: u32 = 2;

/// Flags of `export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The training run (written by `fit`; `eval` first if you want its centroids reused).
    pub run_dir: PathBuf,
    /// Bundle directory to write (created if missing), e.g. `models/demo`.
    #[arg(long)]
    pub out: PathBuf,
    /// Bundle name in the manifest [default: the out directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// ONNX opset of decoder.onnx (13–21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// The prepared cache, if it moved since training [default: the one in run.json].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Most training codes per genre in the latent bank; 0 writes no bank (the service then
    /// samples from the prior only).
    #[arg(long, default_value_t = bank::DEFAULT_BANK_PER_GENRE)]
    pub bank_per_genre: usize,
    /// Largest latent bank file in megabytes (10⁶ bytes): lowers `--bank-per-genre` where the
    /// latent is too large for it.
    #[arg(long, default_value_t = bank::DEFAULT_BANK_MAX_MB)]
    pub bank_max_mb: f64,
    /// Keep the bank's codes as stretches of this many consecutive segments (tiles, with
    /// `--bank-layout tiles`) spread over every training track; 0 keeps whole tracks (see
    /// `export::bank::select_runs`).
    #[arg(long, default_value_t = bank::DEFAULT_BANK_STRETCH)]
    pub bank_stretch: usize,
    /// How the bank holds a latent map's codes: `segments` (one per training segment, the
    /// service decodes them apart and cross-fades) or `tiles` (each stretch encoded in one pass
    /// and cut into consecutive segments' worth of columns, `--bank-stretch` of them, which the
    /// service joins and decodes in one pass; see `export::tiles`).
    #[arg(long, value_enum, default_value_t = BankLayout::Segments)]
    pub bank_layout: BankLayout,
    /// Where in each track the bank's stretches come from: `spread` (evenly from the track's
    /// start to its end) or `faithful` (the track's stretches the decoder renders closest to the
    /// music, scored in one pass each; tiles only, see `export::faithful`). Each track keeps the
    /// same number of stretches either way [default: faithful for tiles, spread for segments].
    #[arg(long, value_enum)]
    pub bank_choice: Option<BankChoice>,
    /// Leave out the postfilter (`melfuse_audio::postfilter`): by default a tiled bank's export
    /// also measures, on the bank's own stretches, how much contrast and dynamics the decoder's
    /// rendering loses per genre and mel band, and the service gives them back.
    #[arg(long)]
    pub no_postfilter: bool,
    /// The optional Triton model repository.
    #[command(flatten)]
    pub triton: TritonArgs,
}

/// The latent bank's layout (`--bank-layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BankLayout {
    /// One code per training segment, segments a training hop apart.
    Segments,
    /// Stretches encoded in one pass and cut into tiles of one model segment; needs a latent map.
    Tiles,
}

/// The stretch choice a bank of `layout` gets: the one asked for, else `faithful` for tiles (each
/// track's best-rendered stretches, `export::faithful`) and `spread` for segments; `faithful`
/// scores stretches decoded in one pass, so a segment bank refuses it.
fn bank_choice_for(layout: BankLayout, requested: Option<BankChoice>) -> Result<BankChoice, ExportError> {
    match (layout, requested) {
        (BankLayout::Segments, Some(BankChoice::Faithful)) => Err(ExportError::InvalidSetting {
            name: "bank-choice",
            detail: "`faithful` scores stretches decoded in one pass; it needs `--bank-layout tiles`".into(),
        }),
        (_, Some(choice)) => Ok(choice),
        (BankLayout::Tiles, None) => Ok(BankChoice::Faithful),
        (BankLayout::Segments, None) => Ok(BankChoice::Spread),
    }
}

/// Why a bundle could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run or its checkpoint could not be loaded.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// The cache (for centroids and the dataset summary) could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Computing centroids failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The decoder could not be written as ONNX.
    #[error(transparent)]
    Graph(#[from] DecoderGraphError),
    /// The written bundle does not validate (a bug in the exporter, reported rather than shipped).
    #[error("the exported bundle does not validate: {0}")]
    Manifest(#[from] ManifestError),
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] melfuse_audio::AudioError),
    /// A setting is out of range.
    #[error("invalid `{name}`: {detail}")]
    InvalidSetting {
        /// The flag.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// Reading the model's output failed.
    #[error("cannot read the decoder output: {0}")]
    TensorData(String),
    /// The Triton model repository could not be written.
    #[error("Triton model repository: {0}")]
    Triton(#[from] TritonError),
}

/// What `export` wrote.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// The bundle directory.
    pub bundle_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// Size of decoder.onnx in bytes.
    pub decoder_bytes: usize,
    /// Whether the centroids came from `RUN_DIR/eval/centroids.json` (else computed now).
    pub reused_eval_centroids: bool,
    /// The Triton model repository, when `--triton` asked for one.
    pub triton: Option<TritonRepository>,
}

/// Exports `args.run_dir` into `args.out`.
pub fn export_run(args: &ExportArgs) -> Result<ExportOutcome, ExportError> {
    if !SUPPORTED_OPSETS.contains(&args.opset) {
        return Err(ExportError::InvalidSetting {
            name: "opset",
            detail: format!("{} is outside {SUPPORTED_OPSETS:?}", args.opset),
        });
    }
    if !(args.bank_max_mb.is_finite() && args.bank_max_mb > 0.0) {
        return Err(ExportError::InvalidSetting {
            name: "bank-max-mb",
            detail: format!(
                "{} must be a positive number of megabytes (use --bank-per-genre 0 for no bank)",
                args.bank_max_mb
            ),
        });
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
    };
    // Refuse bad Triton settings before any work, so a refused export writes nothing.
    let triton_settings = match &args.triton.dir {
        Some(_) => {
            triton::check_model_name(&name)?;
            Some(args.triton.settings()?)
        }
        None => None,
    };
    let device = Device::flex();
    let (model, info, step) = load_model(&args.run_dir, &device)?;
    let cache = Cache::open(args.cache.as_deref().unwrap_or(&info.cache_dir))?;
    let (centroids, reused_eval_centroids) = centroids_for(&args.run_dir, &info, step, &model, &cache, &device)?;

    let shape = DecoderShape {
        latent_dim: info.model.latent_dim,
        n_genres: info.genres.len(),
        n_mels: info.model.n_mels,
        frames: info.model.frames,
    };
    let onnx = decoder_to_onnx(&model.decoder, shape, args.opset)?;
    // A latent map's graph decodes any number of columns in one pass (`--bank-layout tiles` uses it).
    let time_cells = latent_time_cells(&model.decoder);
    // The bank before anything is written, so a bank that cannot be made leaves no bundle behind.
    let mut postfilter_stats = (args.bank_layout == BankLayout::Tiles && !args.no_postfilter)
        .then(|| PostfilterStats::new(shape.n_genres, shape.n_mels, Postfilter::widths(shape.n_mels, shape.frames)));
    let bank_codes = if args.bank_per_genre > 0 {
        crate::eval::check_compatible(&info.genres, &info.model, &cache)?;
        let max_bytes = (args.bank_max_mb * 1e6) as u64;
        let evaluator = Evaluator::new(&model, &cache, &device);
        let choice = bank_choice_for(args.bank_layout, args.bank_choice)?;
        Some(match (args.bank_layout, time_cells) {
            (BankLayout::Tiles, Some(cells)) => evaluator.latent_bank_tiles(
                args.bank_per_genre,
                args.bank_stretch,
                max_bytes,
                cells,
                choice,
                postfilter_stats.as_mut(),
            )?,
            (BankLayout::Tiles, None) => {
                return Err(ExportError::InvalidSetting {
                    name: "bank-layout",
                    detail: "tiles need a latent map (`latent_head = \"Map\"`); this run's latent is one vector".into(),
                })
            }
            (BankLayout::Segments, _) => evaluator.latent_bank(args.bank_per_genre, args.bank_stretch, max_bytes)?,
        })
    } else {
        None
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|source| melfuse_audio::AudioError::Io { path: args.out.clone(), source })?;
    write_atomically(&args.out.join(DECODER_FILE), &onnx)?;

    let latent_bank = match bank_codes {
        Some(codes) => {
            let (mut info, bytes) = bank_info(&codes.codes, codes.runs, codes.sigma);
            info.hop_frames = (args.bank_layout == BankLayout::Tiles).then_some(shape.frames);
            write_atomically(&args.out.join(&info.file), &bytes)?;
            Some(info)
        }
        None => {
            let _ = std::fs::remove_file(args.out.join(LATENT_BANK_FILE));
            None
        }
    };
    // Measured only where the bank's stretches were rendered (a tiled bank); else none.
    let postfilter = match (&latent_bank, postfilter_stats) {
        (Some(_), Some(stats)) => {
            let postfilter = stats.finish();
            log_postfilter(&info.genres, &postfilter);
            Some(postfilter)
        }
        _ => None,
    };
    let (inputs, outputs) =
        decoder_interface(shape.latent_dim, shape.n_genres, shape.n_mels, shape.frames, time_cells.is_some());
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name,
        created: now_rfc3339(),
        genres: info.genres.clone(),
        latent_dim: shape.latent_dim,
        centroids: centroids.centroids.clone(),
        signal: info.signal.clone(),
        normalization: info.db_range,
        onnx: OnnxInfo { file: DECODER_FILE.into(), opset: args.opset, inputs, outputs, sha256: sha256_hex(&onnx) },
        training: training_summary(&args.run_dir, &info, step, &cache)?,
        latent_bank,
        latent_time_cells: time_cells,
        postfilter,
    };
    manifest.write(&args.out)?;
    // Read the bundle back exactly as the service will, so a bad export fails here, not there.
    let loaded = Manifest::load(&args.out)?;
    let preview_codes = preview_latents(&centroids.centroids, loaded.latent_bank.as_ref());
    write_atomically(
        &args.out.join(PREVIEW_FILE),
        &preview_png(&model, preview_codes, shape, loaded.manifest.postfilter.as_ref(), &device)?,
    )?;
    let triton = match (&args.triton.dir, triton_settings) {
        (Some(dir), Some(settings)) => Some(write_repository(dir, &manifest, &onnx, settings)?),
        _ => None,
    };
    Ok(ExportOutcome {
        bundle_dir: args.out.clone(),
        manifest,
        decoder_bytes: onnx.len(),
        reused_eval_centroids,
        triton,
    })
}

/// Logs each genre's postfilter gains as their range over the bands, low to high quarter.
fn log_postfilter(genres: &[String], postfilter: &Postfilter) {
    let quarters = |gains: &[f32]| -> String {
        let quarter = gains.len().div_ceil(4).max(1);
        let means = gains.chunks(quarter).map(|part| format!("{:.2}", part.iter().sum::<f32>() / part.len() as f32));
        means.collect::<Vec<_>>().join(" ")
    };
    for (g, genre) in genres.iter().enumerate() {
        tracing::info!(
            "postfilter, {genre}: contrast gains by band quarter {}, dynamics {}",
            quarters(&postfilter.contrast[g]),
            quarters(&postfilter.dynamics[g])
        );
    }
}

/// The run's centroids from `eval` when they match the model, else computed now over the
/// training split.
fn centroids_for(
    run_dir: &Path,
    info: &RunInfo,
    step: u64,
    model: &Vae,
    cache: &Cache,
    device: &Device,
) -> Result<(Centroids, bool), ExportError> {
    let eval_dir = run_dir.join(crate::eval::EVAL_DIR);
    let path = eval_dir.join(crate::eval::centroids::CENTROIDS_FILE);
    // `eval` of an earlier checkpoint (the run went on with --resume, or its folder was copied
    // from another run) describes other weights.
    let evaluated_step = std::fs::read_to_string(eval_dir.join(crate::eval::EVAL_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<crate::eval::EvalReport>(&text).ok())
        .and_then(|report| report.step);
    if let Ok(centroids) = Centroids::read(&path) {
        if centroids.genres == info.genres
            && centroids.latent_dim == info.model.latent_dim
            && evaluated_step == Some(step)
        {
            return Ok((centroids, true));
        }
        tracing::warn!(
            path = %path.display(),
            "eval centroids are not of this checkpoint (step {step}) or shape; recomputing"
        );
    }
    crate::eval::check_compatible(&info.genres, &info.model, cache)?;
    let accumulator = Evaluator::new(model, cache, device).accumulate_centroids()?;
    Ok((accumulator.centroids(&info.genres), false))
}

/// `(steps, batch size)` of every stage that made a run's weights, newest first: the run itself
/// (`step` steps), then the run it was started from with `--init` (the steps of its checkpoint),
/// and so on. A fine-tuned or adversarial run's bundle then counts the spectral stage's steps too.
/// An `--init` run that is no longer on disk counts its recorded step, at this run's batch size.
pub(crate) fn training_stages(info: &RunInfo, step: u64) -> Vec<(u64, u64)> {
    let mut stages = vec![(step, info.fit.batch_size as u64)];
    let mut next = info.init.clone();
    while let Some(init) = next.take() {
        match RunInfo::read(&init.run_dir) {
            Ok(earlier) => {
                stages.push((init.step, earlier.fit.batch_size as u64));
                next = earlier.init;
            }
            Err(_) => stages.push((init.step, info.fit.batch_size as u64)),
        }
        if stages.len() > 64 {
            break; // a cycle of hand-edited run.json files; the summary is only a summary
        }
    }
    stages
}

/// Steps (over every stage, see [`training_stages`]), epochs, last losses and the dataset per genre.
fn training_summary(run_dir: &Path, info: &RunInfo, step: u64, cache: &Cache) -> Result<TrainingSummary, ExportError> {
    let records = read_metrics(&metrics_path(run_dir)).unwrap_or_default();
    let final_train_loss = records
        .iter()
        .rev()
        .find_map(|r| match r {
            MetricRecord::Train(m) if m.step <= step => Some(m.loss),
            _ => None,
        })
        .unwrap_or(f64::NAN);
    let final_validation_loss = records
        .iter()
        .rev()
        .find_map(|r| match r {
            MetricRecord::Validation(m) if m.step <= step => Some(m.loss),
            _ => None,
        })
        .unwrap_or(f64::NAN);
    let train_segments = cache.segments(Split::Train).len().max(1) as u64;
    let stages = training_stages(info, step);
    let samples: u64 = stages.iter().map(|(steps, batch)| steps * batch).sum();
    let epochs = (samples / train_segments) as usize;
    let steps = stages.iter().map(|(steps, _)| steps).sum();
    let dataset = info
        .genres
        .iter()
        .enumerate()
        .map(|(g, genre)| {
            let tracks: Vec<_> = cache.tracks().iter().filter(|t| t.genre == g).collect();
            GenreDataset {
                genre: genre.clone(),
                tracks: tracks.len(),
                segments: tracks.iter().map(|t| t.segments).sum(),
                hours: tracks.iter().map(|t| t.seconds).sum::<f64>() / 3600.0,
            }
        })
        .collect();
    Ok(TrainingSummary { epochs, steps, final_train_loss, final_validation_loss, dataset })
}

/// The latent the preview decodes for each genre, `[G][Z]` row-major: with a bank, the real code
/// the `bank` sampler draws for `blend=g:1` at seed 0 without noise (what the service generates);
/// without one, the genre's centroid (the `prior` sampler at temperature 0). A centroid is the
/// average of the genre's codes, which for a latent map is the average of every beat phase — a
/// blur no request produces where a bank exists.
fn preview_latents(centroids: &[Vec<f32>], bank: Option<&LatentBank>) -> Vec<f32> {
    let genres = centroids.len();
    (0..genres)
        .flat_map(|g| {
            let mut weights = vec![0.0f32; genres];
            weights[g] = 1.0;
            match bank {
                Some(bank) => bank.sample(centroids, &weights, 0.0, 0),
                None => centroids[g].clone(),
            }
        })
        .collect()
}

/// One spectrogram per genre, decoded from its row of `z` (`[G][Z]`, see [`preview_latents`])
/// with its one-hot genre vector, each through the bundle's `postfilter` with its genre's gains
/// where there is one, as the service draws it.
fn preview_png(
    model: &Vae,
    z: Vec<f32>,
    shape: DecoderShape,
    postfilter: Option<&Postfilter>,
    device: &Device,
) -> Result<Vec<u8>, ExportError> {
    let genres = shape.n_genres;
    let mut one_hot = vec![0.0f32; genres * genres];
    (0..genres).for_each(|g| one_hot[g * genres + g] = 1.0);
    let z = Tensor::<2>::from_data(TensorData::new(z, [genres, shape.latent_dim]), device);
    let genre = Tensor::<2>::from_data(TensorData::new(one_hot, [genres, genres]), device);
    let mel = model
        .decode(z, genre)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| ExportError::TensorData(format!("{e:?}")))?;
    let tile = shape.n_mels * shape.frames;
    let height = genres as u32 * (shape.n_mels as u32 + PREVIEW_GAP) - PREVIEW_GAP;
    let mut picture = image::RgbImage::new(shape.frames as u32, height);
    for g in 0..genres {
        let values = ndarray::ArrayView2::from_shape((shape.n_mels, shape.frames), &mel[g * tile..(g + 1) * tile])
            .map_err(|e| ExportError::TensorData(e.to_string()))?;
        let rendered = match postfilter {
            Some(postfilter) => {
                // Normalised units: the gains are ratios, and [0, 1] is the decoder's range.
                let unit = melfuse_audio::DbRange::new(0.0, 1.0)?;
                let genre_weights = |_| (0..genres).map(|k| if k == g { 1.0 } else { 0.0 }).collect();
                render_spectrogram(postfilter.apply(&values.to_owned(), genre_weights, unit).view(), 0.0, 1.0)
            }
            None => render_spectrogram(values, 0.0, 1.0),
        };
        image::imageops::replace(&mut picture, &rendered, 0, (g as u32 * (shape.n_mels as u32 + PREVIEW_GAP)) as i64);
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| ExportError::Write(melfuse_audio::AudioError::Image(e)))?;
    Ok(bytes.into_inner())
}

/// The current UTC time as RFC 3339, as the manifest's `created` wants it.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiled_bank_is_faithful_and_a_segment_bank_spread_unless_asked_otherwise() {
        let choice = |layout, requested| bank_choice_for(layout, requested).ok();
        assert_eq!(choice(BankLayout::Tiles, None), Some(BankChoice::Faithful));
        assert_eq!(choice(BankLayout::Segments, None), Some(BankChoice::Spread));
        assert_eq!(choice(BankLayout::Tiles, Some(BankChoice::Spread)), Some(BankChoice::Spread));
        assert_eq!(choice(BankLayout::Segments, Some(BankChoice::Spread)), Some(BankChoice::Spread));
        match bank_choice_for(BankLayout::Segments, Some(BankChoice::Faithful)) {
            Err(ExportError::InvalidSetting { name, .. }) => assert_eq!(name, "bank-choice"),
            other => panic!("a faithful segment bank was accepted: {other:?}"),
        }
    }
}
