//! `melfuse-train prepare`: the first step of training. Walks the genre
//! folders of a corpus, decodes and resamples every file, cuts it into
//! segments and turns each into a dB mel spectrogram (in parallel), splits
//! train/validation by track, measures the dB range on the training split,
//! and writes the shard cache that `fit` memory-maps (see [`cache`]), plus a
//! report of what was used and what was skipped and why.
//!
//! Undecodable files are skipped and counted, never fatal. Re-running with
//! an unchanged corpus and configuration finds the cache up to date and
//! decodes nothing.

mod args;
pub mod cache;
pub mod corpus;
pub mod db_range;
pub mod loudness;
pub mod report;
pub mod split;
pub mod tiny;

use crate::file_error::{io_error, FileError};
use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::decode::AUDIO_EXTENSIONS;
use melfuse_audio::load::{for_each_segment, SegmentError};
use melfuse_audio::{AudioError, MelSpectrogram, SignalConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use args::PrepareArgs;
use cache::{
    encode_f16le, hex, Cache, CacheError, CacheIndex, SegmentInfo, ShardWriter, SplitIndex, TrackInfo, CACHE_FORMAT,
    CACHE_FORMAT_VERSION, INDEX_FILE, VALUE_ENCODING,
};
use corpus::{scan_corpus, Corpus, CorpusError, CorpusFile};
use db_range::{measure_db_range, DbRangeError, DbRangeSettings, F16Histogram};
use report::{FormatCounts, GenreReport, PrepareReport, ShortFile, SkippedFile, REPORT_FILE};
use split::{assign_splits, Split, SplitCandidate};

use crate::config_file::ConfigFileError;
use crate::signal_args::SignalArgsError;

/// File that marks a folder as a melfuse cache from the start of a build, so
/// that an interrupted build can be replaced without `--force`.
pub const MARKER_FILE: &str = ".melfuse-cache";
/// Folder of per-track intermediate files during a build.
pub const STAGING_DIR: &str = ".melfuse-staging";

/// Settings of `prepare`. Every field has a default; a TOML file may set any
/// subset (unknown keys are rejected), the signal under `[signal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareConfig {
    /// Signal parameters: rate, segmenting, STFT and mel.
    pub signal: SignalConfig,
    /// Target fraction of tracks held out for validation, in `[0, 1)`.
    pub validation_fraction: f64,
    /// Seed of the track split; the same seed gives the same split.
    pub split_seed: u64,
    /// Segments per shard file (a full shard at the default signal is ~80 MiB).
    pub segments_per_shard: usize,
    /// How the dB range is measured.
    pub db_range: DbRangeSettings,
    /// File extensions (lower case, no dot) treated as audio. Formats the
    /// decoder does not support are listed on purpose, so that such files are
    /// reported as skipped with the reason instead of silently ignored.
    pub extensions: Vec<String>,
    /// Decoded tracks shorter than this many seconds are left out, counted as `excluded` with the
    /// reason ([`loudness`]); 0 (the default) keeps every track that yields a segment.
    #[serde(default, skip_serializing_if = "loudness::is_zero")]
    pub min_track_seconds: f64,
    /// Segments whose RMS level is below this many dBFS are dropped and counted as
    /// `quiet_segments` ([`loudness`]); absent (the default) keeps every segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_segment_rms_dbfs: Option<f32>,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        Self {
            signal: SignalConfig::default(),
            validation_fraction: 0.1,
            split_seed: 0,
            segments_per_shard: 256,
            db_range: DbRangeSettings::default(),
            // The decoder's formats, then `wma` on purpose: reported as skipped, not silently ignored.
            extensions: AUDIO_EXTENSIONS.iter().chain(&["wma"]).map(|e| e.to_string()).collect(),
            min_track_seconds: 0.0,
            min_segment_rms_dbfs: None,
        }
    }
}

impl PrepareConfig {
    /// Checks every field, naming the first invalid one.
    pub fn validate(&self) -> Result<(), PrepareError> {
        let bad = |name: &'static str, detail: String| Err(PrepareError::InvalidConfig { name, detail });
        self.signal.validate()?;
        if !(self.validation_fraction.is_finite() && (0.0..1.0).contains(&self.validation_fraction)) {
            return bad("validation_fraction", format!("{} must be in [0, 1)", self.validation_fraction));
        }
        if self.segments_per_shard == 0 {
            return bad("segments_per_shard", "must be at least 1".into());
        }
        let db = &self.db_range;
        for (name, p) in [("ceiling_percentile", db.ceiling_percentile), ("floor_percentile", db.floor_percentile)] {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return bad(name, format!("{p} must be in [0, 100]"));
            }
        }
        if db.floor_percentile >= db.ceiling_percentile {
            return bad(
                "floor_percentile",
                format!("{} must be below ceiling_percentile ({})", db.floor_percentile, db.ceiling_percentile),
            );
        }
        if !(db.max_dynamic_range_db.is_finite() && db.max_dynamic_range_db > 0.0) {
            return bad("max_dynamic_range_db", format!("{} must be positive", db.max_dynamic_range_db));
        }
        if let Err((name, detail)) = loudness::check_gates(self) {
            return bad(name, detail);
        }
        if self.extensions.is_empty() || self.extensions.iter().any(|e| e.is_empty() || e.contains('.')) {
            return bad("extensions", format!("{:?} must be non-empty names without dots", self.extensions));
        }
        Ok(())
    }
}

/// Why `prepare` failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A setting is out of range.
    #[error("invalid prepare setting `{name}`: {detail}")]
    InvalidConfig {
        /// The field, as in the TOML file.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// The configuration file was unusable.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The signal flags or file were unusable.
    #[error(transparent)]
    SignalArgs(#[from] SignalArgsError),
    /// The signal parameters are invalid.
    #[error(transparent)]
    Signal(#[from] AudioError),
    /// The corpus could not be listed or has no genre folder.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// No file of the corpus yielded a segment.
    #[error(
        "no usable audio in {corpus}: {candidates} audio files, {skipped} could not be decoded, \
         {too_short} are shorter than one {segment_seconds} s segment"
    )]
    NoUsableAudio {
        /// The corpus root.
        corpus: PathBuf,
        /// Files with an audio extension.
        candidates: usize,
        /// Of which undecodable.
        skipped: usize,
        /// Of which too short.
        too_short: usize,
        /// The segment length.
        segment_seconds: f32,
    },
    /// The cache folder has other content; refusing to mix or delete it.
    #[error(
        "cache directory {0} is not empty and holds no melfuse cache; choose an empty or new directory, \
         or pass --force to write into it anyway"
    )]
    OutDirNotEmpty(PathBuf),
    /// The cache path is a file.
    #[error("cache path {0} exists and is not a directory")]
    OutNotADirectory(PathBuf),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Writing or checking the cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The dB range could not be measured.
    #[error("cannot measure the dB range: {0}")]
    DbRange(#[from] DbRangeError),
    /// The report could not be serialised.
    #[error("cannot serialise the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a `prepare` run did.
#[derive(Debug)]
pub enum PrepareOutcome {
    /// The cache already matched the corpus and configuration; nothing was
    /// decoded or written. Holds the existing index.
    UpToDate(Box<CacheIndex>),
    /// The cache was (re)built; holds the report that was also saved.
    Built(Box<PrepareReport>),
}

/// Hash of everything the cache depends on: the format version, the whole
/// configuration, and each candidate file's relative path, size and
/// modification time. Content is not hashed, so checking costs one `stat`
/// per file.
pub fn fingerprint(config: &PrepareConfig, corpus: &Corpus) -> Result<String, PrepareError> {
    let mut hasher = Sha256::new();
    hasher.update(CACHE_FORMAT.as_bytes());
    hasher.update(CACHE_FORMAT_VERSION.to_le_bytes());
    // A decoder that yields other samples for the same file invalidates the cache.
    hasher.update(melfuse_audio::decode::DECODER_REVISION.to_le_bytes());
    hasher.update(serde_json::to_vec(config)?);
    for file in &corpus.files {
        hasher.update(file.relative_path.as_bytes());
        hasher.update([0]);
        hasher.update(file.size.to_le_bytes());
        let modified = file.modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let (secs, nanos) = modified.map_or((u64::MAX, u32::MAX), |d| (d.as_secs(), d.subsec_nanos()));
        hasher.update(secs.to_le_bytes());
        hasher.update(nanos.to_le_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// What the cache folder holds before a run.
enum OutState {
    /// Missing or empty.
    Fresh,
    /// An index or marker of a melfuse cache (complete or not).
    Ours,
    /// Anything else.
    Foreign,
}

fn out_state(out: &Path) -> Result<OutState, PrepareError> {
    match std::fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutState::Fresh),
        Err(e) => return Err(io_error("inspect", out)(e).into()),
        Ok(meta) if !meta.is_dir() => return Err(PrepareError::OutNotADirectory(out.to_path_buf())),
        Ok(_) => {}
    }
    if out.join(INDEX_FILE).is_file() || out.join(MARKER_FILE).is_file() {
        return Ok(OutState::Ours);
    }
    let mut entries = std::fs::read_dir(out).map_err(io_error("list", out))?;
    Ok(if entries.next().is_none() { OutState::Fresh } else { OutState::Foreign })
}

/// Removes what a previous build left in `out`: the index first (so a crash
/// from here on never leaves an index naming missing shards), the report,
/// shard files and the staging folder. Other files are left alone.
fn remove_previous_cache(out: &Path) -> Result<(), PrepareError> {
    for name in [INDEX_FILE, REPORT_FILE] {
        let path = out.join(name);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(io_error("remove", &path))?;
        }
    }
    for split in Split::ALL {
        let dir = out.join(split.as_str());
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let shard = name.starts_with("shard_") && name.ends_with(".bin");
            let partial = name.starts_with(".shard_") && name.ends_with(".partial");
            if shard || partial {
                std::fs::remove_file(entry.path()).map_err(io_error("remove", &entry.path()))?;
            }
        }
        // Left in place if the user keeps something of their own there.
        let _ = std::fs::remove_dir(&dir);
    }
    let staging = out.join(STAGING_DIR);
    if staging.is_dir() {
        std::fs::remove_dir_all(&staging).map_err(io_error("remove", &staging))?;
    }
    Ok(())
}

/// What became of one corpus file in the decoding pass.
enum FileResult {
    /// Segments were written to the staging file.
    Track {
        /// Length after resampling, in seconds.
        seconds: f64,
        /// Start of each segment, in seconds.
        starts: Vec<f64>,
        /// `container/codec`.
        format: String,
        /// Segments dropped as quieter than `min_segment_rms_dbfs`.
        quiet: usize,
    },
    /// Decoded, but left out by a setting (`min_track_seconds`, every segment quiet).
    Excluded {
        /// Why.
        reason: String,
        /// `container/codec`.
        format: String,
        /// Segments dropped as quiet.
        quiet: usize,
    },
    /// Decoded but shorter than one segment.
    TooShort {
        /// Length after resampling, in seconds.
        seconds: f64,
        /// `container/codec`.
        format: String,
    },
    /// Could not be decoded.
    Skipped {
        /// The decoder's message.
        reason: String,
        /// `container/codec` when the headers could be read, else the extension.
        format: String,
    },
}

fn staging_path(out: &Path, file_number: usize) -> PathBuf {
    out.join(STAGING_DIR).join(format!("{file_number:07}.f16"))
}

/// The format key of a file whose stream could not be opened: its extension.
fn unknown_format(file: &CorpusFile) -> String {
    let extension = file.path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    format!("unrecognised .{extension}")
}

/// Streams one file through decode → resample → segments and appends the
/// f16 dB mel of each segment, cropped to the model's frame count, to its
/// staging file: memory is about one segment whatever the file's length. A
/// decoder panic on a malformed file counts as a skip like any decode error.
/// Segments below `min_segment_rms_dbfs` are dropped as they stream past, and
/// a track shorter than `min_track_seconds` is left out once its length is
/// known ([`loudness`]).
fn process_file(
    file: &CorpusFile,
    transform: &MelSpectrogram,
    config: &PrepareConfig,
    staging: &Path,
) -> Result<FileResult, PrepareError> {
    let signal = transform.config();
    let rate = f64::from(signal.sample_rate);
    let frames = signal.model_frames();
    let mut writer: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut starts = Vec::new();
    let mut quiet = 0;
    let mut bytes = Vec::with_capacity(signal.n_mels * frames * cache::BYTES_PER_VALUE);
    let streamed = catch_unwind(AssertUnwindSafe(|| {
        for_each_segment(&file.path, signal, |start, segment| {
            if !loudness::is_loud_enough(segment, config.min_segment_rms_dbfs) {
                quiet += 1;
                return Ok(());
            }
            let db = transform.db(segment);
            bytes.clear();
            encode_f16le(db.slice(ndarray::s![.., ..frames]).iter().copied(), &mut bytes);
            let out = match writer.as_mut() {
                Some(out) => out,
                None => writer.insert(std::io::BufWriter::new(
                    std::fs::File::create(staging).map_err(io_error("create", staging))?,
                )),
            };
            std::io::Write::write_all(out, &bytes).map_err(io_error("write", staging))?;
            starts.push(start as f64 / rate);
            Ok::<_, PrepareError>(())
        })
    }));
    let discard = |writer: Option<std::io::BufWriter<std::fs::File>>| {
        if writer.is_some() {
            drop(writer);
            let _ = std::fs::remove_file(staging);
        }
    };
    match streamed {
        Ok(Ok(summary)) => {
            let format = summary.info.format_label();
            let seconds = summary.samples as f64 / rate;
            match writer {
                Some(mut out) => {
                    if let Some(reason) = loudness::exclusion(seconds, config.min_track_seconds) {
                        discard(Some(out));
                        return Ok(FileResult::Excluded { reason, format, quiet });
                    }
                    std::io::Write::flush(&mut out).map_err(io_error("write", staging))?;
                    Ok(FileResult::Track { seconds, starts, format, quiet })
                }
                None if quiet > 0 => {
                    let threshold = config.min_segment_rms_dbfs.unwrap_or(loudness::SILENCE_DBFS);
                    let reason =
                        format!("all {quiet} segments are quieter than min_segment_rms_dbfs = {threshold} dBFS");
                    Ok(FileResult::Excluded { reason, format, quiet })
                }
                None => Ok(FileResult::TooShort { seconds, format }),
            }
        }
        Ok(Err(SegmentError::Audio { error, info })) => {
            discard(writer);
            let format = info.map_or_else(|| unknown_format(file), |info| info.format_label());
            Ok(FileResult::Skipped { reason: error.to_string(), format })
        }
        Ok(Err(SegmentError::Callback(error))) => Err(error),
        Err(panic) => {
            discard(writer);
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Ok(FileResult::Skipped {
                reason: format!("the decoder crashed on this file: {message}"),
                format: unknown_format(file),
            })
        }
    }
}

fn progress_bar(files: usize) -> ProgressBar {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(files as u64), target);
    let style = ProgressStyle::with_template(
        "decoding {bar:40.cyan/blue} {pos}/{len} files [{elapsed_precise}, eta {eta}] {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn read_staging(path: &Path) -> Result<Vec<u8>, PrepareError> {
    Ok(std::fs::read(path).map_err(io_error("read", path))?)
}

/// Builds (or finds up to date) the cache of `corpus` in `out`.
///
/// `out` must be missing, empty or hold a melfuse cache, unless `force`;
/// `force` also rebuilds an up-to-date cache. Decoding runs on rayon's
/// global pool; the result does not depend on the number of threads.
pub fn run(corpus_dir: &Path, out: &Path, config: &PrepareConfig, force: bool) -> Result<PrepareOutcome, PrepareError> {
    let started = Instant::now();
    config.validate()?;
    let transform = MelSpectrogram::new(&config.signal)?;
    let corpus = scan_corpus(corpus_dir, &config.extensions)?;
    let fingerprint = fingerprint(config, &corpus)?;
    match out_state(out)? {
        OutState::Ours if !force => {
            if let Ok(cache) = Cache::open(out) {
                if cache.index().fingerprint == fingerprint {
                    return Ok(PrepareOutcome::UpToDate(Box::new(cache.index().clone())));
                }
            }
        }
        OutState::Foreign if !force => return Err(PrepareError::OutDirNotEmpty(out.to_path_buf())),
        _ => {}
    }
    remove_previous_cache(out)?;
    let staging = out.join(STAGING_DIR);
    std::fs::create_dir_all(&staging).map_err(io_error("create folder", &staging))?;
    write_atomically(&out.join(MARKER_FILE), b"melfuse prepare cache\n")?;

    // Pass 1: decode, segment and transform every file, in parallel.
    let bar = progress_bar(corpus.files.len());
    let results: Vec<FileResult> = corpus
        .files
        .par_iter()
        .enumerate()
        .map(|(number, file)| {
            let result = process_file(file, &transform, config, &staging_path(out, number));
            bar.inc(1);
            result
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();

    // The split, on the tracks that yielded segments.
    let mut genres: Vec<GenreReport> = corpus.genres.iter().map(|g| GenreReport::new(g)).collect();
    let mut skipped = Vec::new();
    let mut excluded = Vec::new();
    let mut too_short = Vec::new();
    let mut usable = Vec::new();
    let mut formats = std::collections::BTreeMap::<String, FormatCounts>::new();
    for (number, (file, result)) in corpus.files.iter().zip(&results).enumerate() {
        let genre = corpus.genres[file.genre].clone();
        match result {
            FileResult::Track { format, .. } => formats.entry(format.clone()).or_default().used += 1,
            FileResult::Excluded { format, .. } => formats.entry(format.clone()).or_default().excluded += 1,
            FileResult::TooShort { format, .. } => formats.entry(format.clone()).or_default().too_short += 1,
            FileResult::Skipped { format, .. } => formats.entry(format.clone()).or_default().skipped += 1,
        }
        match result {
            FileResult::Track { seconds, starts, quiet, .. } => {
                genres[file.genre].quiet_segments += quiet;
                usable.push((number, file, *seconds, starts));
            }
            FileResult::Excluded { reason, quiet, .. } => {
                genres[file.genre].excluded += 1;
                genres[file.genre].quiet_segments += quiet;
                excluded.push(SkippedFile { path: file.relative_path.clone(), genre, reason: reason.clone() });
            }
            FileResult::TooShort { seconds, .. } => {
                genres[file.genre].too_short += 1;
                too_short.push(ShortFile { path: file.relative_path.clone(), genre, seconds: *seconds });
            }
            FileResult::Skipped { reason, .. } => {
                genres[file.genre].skipped += 1;
                skipped.push(SkippedFile { path: file.relative_path.clone(), genre, reason: reason.clone() });
            }
        }
    }
    for ignored in &corpus.ignored {
        if let Some(g) = ignored.genre.as_ref().and_then(|g| corpus.genres.iter().position(|x| x == g)) {
            genres[g].ignored += 1;
        }
    }
    if usable.is_empty() {
        return Err(PrepareError::NoUsableAudio {
            corpus: corpus_dir.to_path_buf(),
            candidates: corpus.files.len(),
            skipped: skipped.len(),
            too_short: too_short.len(),
            segment_seconds: config.signal.segment_seconds,
        });
    }
    let candidates: Vec<SplitCandidate<'_>> = usable
        .iter()
        .map(|(_, file, _, _)| SplitCandidate { genre: file.genre, relative_path: &file.relative_path })
        .collect();
    let splits = assign_splits(&candidates, config.validation_fraction, config.split_seed);
    let tracks: Vec<TrackInfo> = usable
        .iter()
        .zip(&splits)
        .map(|((_, file, seconds, starts), &split)| TrackInfo {
            path: file.relative_path.clone(),
            genre: file.genre,
            split,
            segments: starts.len(),
            seconds: *seconds,
        })
        .collect();

    // Pass 2a: the dB histogram of the training split.
    let histogram = usable
        .par_iter()
        .zip(&splits)
        .filter(|(_, &split)| split == Split::Train)
        .map(|((number, ..), _)| read_staging(&staging_path(out, *number)))
        .try_fold(F16Histogram::default, |mut histogram, bytes| {
            histogram.add_f16le(&bytes?);
            Ok::<_, PrepareError>(histogram)
        })
        .try_reduce(F16Histogram::default, |a, b| Ok(a.merge(&b)))?;
    let db_range = measure_db_range(&histogram, &config.db_range)?;

    // Pass 2b: the shards, training first, tracks in (genre, path) order.
    let segment_values = config.signal.n_mels * config.signal.model_frames();
    let mut split_indexes = Vec::new();
    for side in Split::ALL {
        let mut writer = ShardWriter::new(out, side, config.segments_per_shard, segment_values)?;
        let mut segments = Vec::new();
        for (track_id, ((number, _, _, starts), track)) in usable.iter().zip(&tracks).enumerate() {
            if track.split != side {
                continue;
            }
            let path = staging_path(out, *number);
            writer.push(&read_staging(&path)?)?;
            std::fs::remove_file(&path).map_err(io_error("remove", &path))?;
            segments.extend(starts.iter().enumerate().map(|(index, &start_seconds)| SegmentInfo {
                genre: track.genre,
                track: track_id,
                index,
                start_seconds,
            }));
            let counts = genres[track.genre].side_mut(side);
            counts.tracks += 1;
            counts.segments += starts.len();
            counts.seconds += track.seconds;
        }
        split_indexes.push(SplitIndex { shards: writer.finish()?, segments });
    }
    let _ = std::fs::remove_dir(&staging);
    let validation = split_indexes.pop().unwrap_or_default();
    let train = split_indexes.pop().unwrap_or_default();

    let shards = train.shards.len() + validation.shards.len();
    let bytes = train.shards.iter().chain(&validation.shards).map(|s| s.bytes).sum();
    let total_segments = train.segments.len() + validation.segments.len();
    let index = CacheIndex {
        format: CACHE_FORMAT.into(),
        format_version: CACHE_FORMAT_VERSION,
        generator: format!("melfuse-train prepare {}", env!("CARGO_PKG_VERSION")),
        fingerprint,
        config: config.clone(),
        db_range,
        n_mels: config.signal.n_mels,
        frames: config.signal.model_frames(),
        value_encoding: VALUE_ENCODING.into(),
        genres: corpus.genres.clone(),
        tracks,
        train,
        validation,
    };
    let elapsed_seconds = started.elapsed().as_secs_f64();
    let mut report = PrepareReport {
        corpus: corpus_dir.display().to_string(),
        cache: out.display().to_string(),
        genres,
        total_train: Default::default(),
        total_validation: Default::default(),
        formats,
        skipped,
        too_short,
        ignored: corpus.ignored.clone(),
        excluded,
        quiet_segments: 0,
        db_range,
        train_db_min: histogram.percentile(0.0).unwrap_or(db_range.db_floor),
        train_db_max: histogram.percentile(100.0).unwrap_or(db_range.db_ceiling),
        shards,
        bytes,
        elapsed_seconds,
        segments_per_second: total_segments as f64 / elapsed_seconds.max(f64::EPSILON),
    };
    report.compute_totals();
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    write_atomically(&out.join(REPORT_FILE), text.as_bytes())?;
    index.write(out)?;
    tracing::info!(
        files = corpus.files.len(),
        segments = total_segments,
        wall_seconds = elapsed_seconds,
        threads = rayon::current_num_threads(),
        "prepared cache"
    );
    Ok(PrepareOutcome::Built(Box::new(report)))
}

#[cfg(test)]
mod tests;
