//! `synth-corpus`: a genre-labelled corpus of synthetic music, rendered from
//! pure-Rust DSP voices so that tests and demos need no copyrighted audio
//! and no downloads, and every genre comes from the same kind of source
//! (see `shared/CORPUS.md`: mixing synthetic and recorded genres teaches a
//! model "synthetic vs recorded" instead of genre).
//!
//! Layout written by [`write_corpus`]:
//!
//! ```text
//! OUT/cn/cn_000.wav  OUT/edm/edm_000.wav  OUT/orchestral/…  OUT/cn_edm/…
//! OUT/corpus.json    (settings, seed, source, one record per file)
//! ```
//!
//! Overwrite policy: a non-empty output directory is refused unless
//! `force` is set; with `force`, clip files this generator owns
//! (`<genre>/<genre>_<digits>.wav`) from an earlier run are deleted first so
//! no stale clip survives, and nothing else is touched. Every file is
//! written to a `.partial` sibling and renamed into place, and `corpus.json`
//! is written last, so its presence marks a complete corpus.
//!
//! Determinism: each clip's RNG is derived from `(seed, genre, index)` only,
//! so clips render in parallel and the bytes never depend on scheduling.
//!
//! A crate of its own (`melfuse-synth`), not a module of the trainer: it is a dataset generator
//! that knows nothing of training (no burn, no mel), used by tests, benchmarks and the demo
//! recipe of several crates; `melfuse-train synth-corpus` is its command line.

mod args;
pub mod effects;
pub mod genres;
pub mod music;
pub mod voices;

pub use args::SynthCorpusArgs;

use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::effects::{normalize_peak, remove_dc};
use self::genres::{compose, RenderTarget};
use self::music::{pitch_class_name, Mode};

/// Longest clip accepted, in seconds: anything longer is almost certainly a
/// unit mistake (milliseconds?) and would need gigabytes of memory.
pub const MAX_SECONDS: f64 = 3600.0;
/// Sample rates accepted, in Hz (the range the decoder supports).
pub const SAMPLE_RATE_RANGE: RangeInclusive<u32> = 8_000..=192_000;
/// Normalisation targets accepted, in dBFS.
pub const PEAK_DBFS_RANGE: RangeInclusive<f64> = -24.0..=-0.5;
/// Version of the `corpus.json` layout.
pub const CORPUS_FORMAT_VERSION: u32 = 1;
/// Name of the corpus description file.
pub const CORPUS_FILE: &str = "corpus.json";
/// Bits per PCM sample in the written WAVs.
pub const BITS_PER_SAMPLE: u16 = 16;
/// Channels in the written WAVs (the voices are mono; the model is mono).
pub const CHANNELS: u16 = 1;
/// Minimum digits in a clip file's index, so names sort naturally.
const MIN_INDEX_DIGITS: usize = 3;
/// Suffix of files being written, renamed away when complete.
const PARTIAL_SUFFIX: &str = "partial";
/// Domain tag mixed into every clip seed, so these streams never collide
/// with RNG streams other melfuse tools derive from the same user seed.
const SEED_DOMAIN: &[u8; 8] = b"mfsynth1";

/// The genres this generator can render. Serialised in `snake_case`, which
/// is also the folder and file-name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Genre {
    /// Chinese folk: pentatonic plucked string and bamboo flute, rubato.
    Cn,
    /// Four-on-the-floor electronic dance music.
    Edm,
    /// Strings, brass and timpani on slow diatonic progressions.
    Orchestral,
    /// `cn` melodies over the `edm` beat.
    CnEdm,
}

impl Genre {
    /// Every genre, in the order folders and `corpus.json` list them.
    pub const ALL: [Genre; 4] = [Genre::Cn, Genre::Edm, Genre::Orchestral, Genre::CnEdm];

    /// Folder and file-name prefix, equal to the serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Genre::Cn => "cn",
            Genre::Edm => "edm",
            Genre::Orchestral => "orchestral",
            Genre::CnEdm => "cn_edm",
        }
    }

    /// Stable number mixed into clip seeds; fixed per genre so adding or
    /// reordering genres never changes existing genres' audio.
    fn seed_id(self) -> u64 {
        match self {
            Genre::Cn => 1,
            Genre::Edm => 2,
            Genre::Orchestral => 3,
            Genre::CnEdm => 4,
        }
    }
}

impl std::fmt::Display for Genre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of a synthetic corpus. Every field has a default, a TOML file
/// may set any subset (unknown keys are rejected), and CLI flags override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthCorpusConfig {
    /// Clips rendered per genre (≥ 1).
    pub clips_per_genre: usize,
    /// Length of every clip in seconds, in (0, [`MAX_SECONDS`]]. The default
    /// of 30 s gives two 15 s training segments at the default 10 s hop.
    pub seconds: f64,
    /// Master seed; the same seed gives byte-identical files.
    pub seed: u64,
    /// Output sample rate in Hz, within [`SAMPLE_RATE_RANGE`].
    pub sample_rate: u32,
    /// Peak level every clip is normalised to, in dBFS.
    pub peak_dbfs: f64,
    /// Genres to render (each at most once).
    pub genres: Vec<Genre>,
}

impl Default for SynthCorpusConfig {
    fn default() -> Self {
        Self {
            clips_per_genre: 16,
            seconds: 30.0,
            seed: 0,
            sample_rate: 44_100,
            peak_dbfs: -3.0,
            genres: Genre::ALL.to_vec(),
        }
    }
}

/// Why a corpus could not be configured or written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// `clips_per_genre` was zero.
    #[error("clips per genre must be at least 1")]
    NoClips,
    /// `seconds` was not a positive, finite, sane length.
    #[error("clip length must be a finite number of seconds in (0, {MAX_SECONDS}], got {0}")]
    BadSeconds(f64),
    /// The sample rate is outside [`SAMPLE_RATE_RANGE`].
    #[error("sample rate {0} Hz is outside the supported 8000–192000 Hz")]
    BadSampleRate(u32),
    /// The normalisation peak is outside [`PEAK_DBFS_RANGE`].
    #[error("peak level {0} dBFS is outside the supported -24…-0.5 dBFS")]
    BadPeak(f64),
    /// The genre list was empty or repeated a genre.
    #[error("genre list must be non-empty without repeats, got {0:?}")]
    BadGenres(Vec<Genre>),
    /// The output directory has content and `force` was not given.
    #[error("output directory {0} is not empty; choose an empty one or pass --force to replace the corpus in it")]
    OutDirNotEmpty(PathBuf),
    /// The output path exists but is not a directory.
    #[error("output path {0} exists and is not a directory")]
    OutNotADirectory(PathBuf),
    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being attempted ("create directory", "write", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing a WAV failed.
    #[error("cannot write WAV {path}: {source}")]
    Wav {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        source: hound::Error,
    },
    /// The TOML config file could not be read.
    #[error("cannot read config {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TOML config is not valid for [`SynthCorpusConfig`] (unknown field, wrong type…).
    #[error("invalid config {path}: {source}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the field and line.
        #[source]
        source: toml::de::Error,
    },
    /// `corpus.json` could not be serialised.
    #[error("cannot serialise {CORPUS_FILE}: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SynthError + 'a {
    move |source| SynthError::Io { action, path: path.to_path_buf(), source }
}

impl SynthCorpusConfig {
    /// Reads a config from a TOML file; missing keys take defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self, SynthError> {
        let text =
            fs::read_to_string(path).map_err(|source| SynthError::ConfigRead { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|source| SynthError::ConfigParse { path: path.to_path_buf(), source })
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.clips_per_genre == 0 {
            return Err(SynthError::NoClips);
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= MAX_SECONDS) {
            return Err(SynthError::BadSeconds(self.seconds));
        }
        if !SAMPLE_RATE_RANGE.contains(&self.sample_rate) {
            return Err(SynthError::BadSampleRate(self.sample_rate));
        }
        if !PEAK_DBFS_RANGE.contains(&self.peak_dbfs) {
            return Err(SynthError::BadPeak(self.peak_dbfs));
        }
        let repeated = self.genres.iter().enumerate().any(|(i, g)| self.genres[..i].contains(g));
        if self.genres.is_empty() || repeated {
            return Err(SynthError::BadGenres(self.genres.clone()));
        }
        if self.frames() == 0 {
            return Err(SynthError::BadSeconds(self.seconds));
        }
        Ok(())
    }

    /// Samples per clip: `round(seconds × sample_rate)`.
    pub fn frames(&self) -> usize {
        (self.seconds * f64::from(self.sample_rate)).round() as usize
    }
}

/// The RNG of clip `index` of `genre`: a ChaCha8 stream keyed by the master
/// seed, the genre's fixed id, the index and a domain tag.
pub fn clip_rng(seed: u64, genre: Genre, index: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&genre.seed_id().to_le_bytes());
    key[16..24].copy_from_slice(&(index as u64).to_le_bytes());
    key[24..].copy_from_slice(SEED_DOMAIN);
    ChaCha8Rng::from_seed(key)
}

/// One rendered clip: normalised mono samples plus its musical facts.
#[derive(Debug, Clone)]
pub struct RenderedClip {
    /// Mono samples, peak at the configured dBFS, length [`SynthCorpusConfig::frames`].
    pub samples: Vec<f32>,
    /// Tempo in BPM.
    pub tempo_bpm: f64,
    /// Tonic pitch class (0 = C).
    pub tonic: i32,
    /// Major or minor.
    pub mode: Mode,
}

/// Renders clip `index` of `genre` under `config` (validated first).
pub fn render_clip(genre: Genre, index: usize, config: &SynthCorpusConfig) -> Result<RenderedClip, SynthError> {
    config.validate()?;
    let sample_rate = config.sample_rate as f32;
    let mut rng = clip_rng(config.seed, genre, index);
    let composition = compose(genre, &mut rng, RenderTarget { sample_rate, frames: config.frames() });
    let mut samples = composition.samples;
    remove_dc(&mut samples, sample_rate);
    normalize_peak(&mut samples, config.peak_dbfs);
    Ok(RenderedClip { samples, tempo_bpm: composition.tempo_bpm, tonic: composition.tonic, mode: composition.mode })
}

/// Converts normalised `f32` samples to 16-bit PCM, rounding and saturating.
pub fn to_pcm16(samples: &[f32]) -> Vec<i16> {
    let scale = f32::from(i16::MAX);
    samples.iter().map(|&x| (x * scale).round().clamp(f32::from(i16::MIN), scale) as i16).collect()
}

/// Where the audio came from, recorded so a trainer can refuse to mix
/// corpora from different kinds of source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoundSource {
    /// `"dsp"`: every voice synthesised in code (no SoundFont, no samples).
    pub kind: String,
    /// Human-readable list of the voices used.
    pub description: String,
}

/// One written clip, as listed in `corpus.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecord {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// Genre label.
    pub genre: Genre,
    /// Index within the genre.
    pub index: usize,
    /// Samples per channel.
    pub frames: usize,
    /// Duration in seconds.
    pub seconds: f64,
    /// Tempo in BPM (the centre tempo where the genre plays rubato).
    pub tempo_bpm: f64,
    /// Key tonic name, e.g. `"D"`.
    pub key: String,
    /// Major or minor.
    pub mode: Mode,
    /// Peak level of the written PCM in dBFS.
    pub peak_dbfs: f64,
}

/// Per-genre totals in `corpus.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreSummary {
    /// Genre label.
    pub genre: Genre,
    /// Clips written.
    pub clips: usize,
    /// Total seconds of audio.
    pub seconds: f64,
}

/// Contents of `corpus.json`: everything needed to reproduce or audit the
/// corpus. Deliberately free of timestamps and timings so the same seed
/// gives a byte-identical file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusReport {
    /// Layout version, [`CORPUS_FORMAT_VERSION`].
    pub format_version: u32,
    /// The tool that wrote it.
    pub generator: String,
    /// What produced the sound.
    pub source: SoundSource,
    /// The effective settings (after TOML and CLI overrides).
    pub settings: SynthCorpusConfig,
    /// Container format of the clips.
    pub format: String,
    /// Channels per file.
    pub channels: u16,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Totals per genre, in `settings.genres` order.
    pub genres: Vec<GenreSummary>,
    /// Every clip, genre by genre, index ascending.
    pub files: Vec<ClipRecord>,
    /// Seconds of audio in the whole corpus.
    pub total_seconds: f64,
}

/// Description of the DSP voices, recorded as the corpus' sound source.
const DSP_SOURCE_DESCRIPTION: &str =
    "pure-Rust DSP voices: Karplus-Strong plucked string, additive bamboo flute with breath noise, \
swept-sine kick, filtered-noise hats and clap, supersaw pads/stabs, sine sub-bass, detuned-saw string ensemble, \
brightness-enveloped brass, inharmonic timpani; Schroeder reverb";

fn file_name(genre: Genre, index: usize, digits: usize) -> String {
    format!("{genre}_{index:0digits$}.wav")
}

/// Deletes `<genre>_<digits>.wav` files left in a genre folder by an earlier
/// run; anything else in the folder is left alone.
fn remove_stale_clips(dir: &Path, genre: Genre) -> Result<(), SynthError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let prefix = format!("{genre}_");
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let owned = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".wav"))
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
        if owned {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_error("remove stale clip", &path))?;
        }
    }
    Ok(())
}

fn prepare_out_dir(out: &Path, genres: &[Genre], force: bool) -> Result<(), SynthError> {
    match fs::metadata(out) {
        Ok(meta) if !meta.is_dir() => return Err(SynthError::OutNotADirectory(out.to_path_buf())),
        Ok(_) => {
            let mut entries = fs::read_dir(out).map_err(io_error("list", out))?;
            if entries.next().is_some() && !force {
                return Err(SynthError::OutDirNotEmpty(out.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect", out)(e)),
    }
    fs::create_dir_all(out).map_err(io_error("create directory", out))?;
    if force {
        let report = out.join(CORPUS_FILE);
        match fs::remove_file(&report) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error("remove", &report)(e)),
            _ => {}
        }
        for genre in Genre::ALL {
            remove_stale_clips(&out.join(genre.as_str()), genre)?;
        }
    }
    for genre in genres {
        let dir = out.join(genre.as_str());
        fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
    }
    Ok(())
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(PARTIAL_SUFFIX);
    path.with_file_name(name)
}

/// Writes 16-bit mono PCM to `path` via a `.partial` file and a rename.
fn write_wav(path: &Path, sample_rate: u32, pcm: &[i16]) -> Result<(), SynthError> {
    let spec = hound::WavSpec {
        channels: CHANNELS,
        sample_rate,
        bits_per_sample: BITS_PER_SAMPLE,
        sample_format: hound::SampleFormat::Int,
    };
    let partial = partial_path(path);
    let wav_error = |source| SynthError::Wav { path: path.to_path_buf(), source };
    let mut writer = hound::WavWriter::create(&partial, spec).map_err(wav_error)?;
    let mut samples = writer.get_i16_writer(pcm.len() as u32);
    for &s in pcm {
        samples.write_sample(s);
    }
    samples.flush().map_err(wav_error)?;
    writer.finalize().map_err(wav_error)?;
    fs::rename(&partial, path).map_err(io_error("rename into place", path))
}

/// Decimal places kept for tempo and peak in `corpus.json`: enough to
/// audit, short enough that the JSON text round-trips exactly.
const REPORT_DECIMALS: i32 = 3;

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn pcm_peak_dbfs(pcm: &[i16]) -> f64 {
    let peak = pcm.iter().map(|&s| i32::from(s).unsigned_abs()).max().unwrap_or(0);
    20.0 * (f64::from(peak.max(1)) / f64::from(i16::MAX)).log10()
}

/// Renders and writes the whole corpus into `out` (see the module docs for
/// the layout and overwrite policy) and returns what `corpus.json` says.
/// Clips are rendered in parallel on rayon's pool.
pub fn write_corpus(out: &Path, config: &SynthCorpusConfig, force: bool) -> Result<CorpusReport, SynthError> {
    config.validate()?;
    prepare_out_dir(out, &config.genres, force)?;
    let digits = MIN_INDEX_DIGITS.max((config.clips_per_genre - 1).to_string().len());
    let jobs: Vec<(Genre, usize)> =
        config.genres.iter().flat_map(|&g| (0..config.clips_per_genre).map(move |i| (g, i))).collect();
    let started = Instant::now();
    let files = jobs
        .par_iter()
        .map(|&(genre, index)| {
            let clip = render_clip(genre, index, config)?;
            let pcm = to_pcm16(&clip.samples);
            let name = file_name(genre, index, digits);
            write_wav(&out.join(genre.as_str()).join(&name), config.sample_rate, &pcm)?;
            tracing::debug!(%genre, index, "wrote clip");
            Ok(ClipRecord {
                path: format!("{genre}/{name}"),
                genre,
                index,
                frames: pcm.len(),
                seconds: pcm.len() as f64 / f64::from(config.sample_rate),
                tempo_bpm: round_to(clip.tempo_bpm, REPORT_DECIMALS),
                key: pitch_class_name(clip.tonic).to_string(),
                mode: clip.mode,
                peak_dbfs: round_to(pcm_peak_dbfs(&pcm), REPORT_DECIMALS),
            })
        })
        .collect::<Result<Vec<_>, SynthError>>()?;

    let genres: Vec<GenreSummary> = config
        .genres
        .iter()
        .map(|&genre| {
            let mine = files.iter().filter(|f| f.genre == genre);
            GenreSummary { genre, clips: mine.clone().count(), seconds: mine.map(|f| f.seconds).sum() }
        })
        .collect();
    let total_seconds = genres.iter().map(|g| g.seconds).sum();
    let elapsed = started.elapsed().as_secs_f64();
    tracing::info!(
        clips = files.len(),
        audio_seconds = total_seconds,
        wall_seconds = elapsed,
        realtime_factor = total_seconds / elapsed.max(f64::EPSILON),
        threads = rayon::current_num_threads(),
        "rendered synthetic corpus"
    );
    let report = CorpusReport {
        format_version: CORPUS_FORMAT_VERSION,
        generator: format!("melfuse-train synth-corpus {}", env!("CARGO_PKG_VERSION")),
        source: SoundSource { kind: "dsp".into(), description: DSP_SOURCE_DESCRIPTION.into() },
        settings: config.clone(),
        format: "wav".into(),
        channels: CHANNELS,
        bits_per_sample: BITS_PER_SAMPLE,
        genres,
        files,
        total_seconds,
    };
    let json_path = out.join(CORPUS_FILE);
    let partial = partial_path(&json_path);
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    fs::write(&partial, text).map_err(io_error("write", &partial))?;
    fs::rename(&partial, &json_path).map_err(io_error("rename into place", &json_path))?;
    Ok(report)
}

#[cfg(test)]
mod tests;
