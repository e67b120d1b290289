//! The model bundle's `manifest.json`: what the decoder was trained on and how to drive it, and the
//! checks that refuse a bundle whose parts do not agree.
//!
//! A bundle is a directory holding `manifest.json` and `decoder.onnx` (DESIGN.md, "Model bundle").
//! [`Manifest::load`] reads both and checks the manifest against itself (version, genres, centroid
//! shape, normalisation, signal parameters) and against the decoder (sha256, input and output names,
//! element types and shapes), with one [`ManifestError`] variant per kind of mismatch.
//!
//! The signal parameters and dB range are `melfuse-audio`'s own [`SignalConfig`] and [`DbRange`]: the
//! manifest stores them verbatim, so the service rebuilds exactly the transform training used, and
//! the frames a decoder must produce come from the same [`SignalConfig::model_frames`] that crops
//! training inputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::postfilter::Postfilter;
use melfuse_audio::{AudioError, DbRange, SignalConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::latent_bank::{LatentBank, LatentBankInfo};
use crate::onnx::{declared_tensor, format_shape, DataType, Dim, ModelProto};

/// The manifest format this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the manifest inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the decoder inside a bundle directory.
pub const DECODER_FILE: &str = "decoder.onnx";
/// Name of the decoder's latent input, `float32[batch, Z]`.
pub const INPUT_Z: &str = "z";
/// Name of the decoder's genre-mixture input, `float32[batch, G]`.
pub const INPUT_GENRE: &str = "genre";
/// Name of the decoder's output, `float32[batch, 1, n_mels, frames]` in normalised units.
pub const OUTPUT_MEL: &str = "mel";
/// Symbolic name of the dynamic batch axis.
pub const BATCH_AXIS: &str = "batch";
/// Symbolic name of `z`'s axis in a decoder with a dynamic time axis (`latent_time_cells`): any
/// whole number of latent columns.
pub const LATENT_AXIS: &str = "latent";
/// Symbolic name of `mel`'s time axis in a decoder with a dynamic time axis.
pub const FRAMES_AXIS: &str = "frames";
/// How far along time a decoder with a dynamic time axis looks: the mel frames of latent column
/// `c` depend on columns `c − 2 ..= c + 2` only, never further. Each of the decoder's ×2 upsampling
/// blocks reaches two pixels of its own resolution (two 3 × 3 convolutions), half a column less at
/// every block: 1 + ½ + ¼ + … < 2 columns for any depth (`melfuse-models`' decoder test checks it
/// on ÷8 and ÷32 maps). A window of a map with this much context beyond the frames kept decodes
/// those frames as the whole map would, which lets the service condition each tile of a morph on
/// its own mixture.
pub const DECODER_REACH_COLUMNS: usize = 2;

/// The contents of `manifest.json` (field meanings in DESIGN.md, "Model bundle").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format; [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Bundle name, e.g. `demo`.
    pub name: String,
    /// When the bundle was exported, RFC 3339 (e.g. `2026-01-31T12:00:00Z`).
    pub created: String,
    /// Genre names in the order of the decoder's `genre` input axis.
    pub genres: Vec<String>,
    /// Latent size `Z`.
    pub latent_dim: usize,
    /// Mean latent of each genre's training clips, `[G][Z]` in `genres` order.
    pub centroids: Vec<Vec<f32>>,
    /// Every signal parameter the model was trained with.
    pub signal: SignalConfig,
    /// dB range mapped onto the decoder's `[0, 1]` output.
    pub normalization: DbRange,
    /// The decoder file and its interface.
    pub onnx: OnnxInfo,
    /// How the model was trained, for `/genres` and for people.
    pub training: TrainingSummary,
    /// The optional bank of training codes for the `bank` sampler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_bank: Option<LatentBankInfo>,
    /// Latent cells along time in one model segment, present when the decoder has a dynamic time
    /// axis (a latent map decoded by a fully convolutional decoder): `z` is then `[batch, latent]`
    /// for any whole number of columns of `latent_dim / latent_time_cells` values (channel-major,
    /// see [`join_latent_maps`]) and `mel` `[batch, 1, n_mels, frames]` with
    /// `model_frames / latent_time_cells` frames per column, so a clip decodes in one pass.
    /// Absent: the fixed interface, one segment per row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_time_cells: Option<usize>,
    /// Per-genre, per-band gains that give the decoded mel back the contrast and dynamics the
    /// decoder's rendering of the training music lost (`melfuse_audio::postfilter`), applied by
    /// the service before the vocoder. Absent: the decoder's output as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postfilter: Option<Postfilter>,
}

/// The `onnx` section: which file holds the decoder and what it looks like from outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxInfo {
    /// Decoder file name inside the bundle, [`DECODER_FILE`].
    pub file: String,
    /// Default-domain opset the decoder imports.
    pub opset: i64,
    /// Graph inputs: `z` and `genre`.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs: `mel`.
    pub outputs: Vec<TensorSpec>,
    /// Lower-case hex SHA-256 of the decoder file.
    pub sha256: String,
}

/// One graph input or output: its name and shape, e.g. `{"name": "z", "shape": ["batch", 64]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Value name in the graph.
    pub name: String,
    /// Shape, symbolic axes as strings.
    pub shape: Vec<Dim>,
}

/// The `training` section: a summary of the run that produced the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    /// Epochs completed.
    pub epochs: usize,
    /// Optimiser steps taken, over every training stage (a fine-tuned or adversarial run counts
    /// the steps of the run it started from); the losses below are the last stage's.
    pub steps: u64,
    /// Training loss at the end (reconstruction + β·KL).
    pub final_train_loss: f64,
    /// Validation loss at the end.
    pub final_validation_loss: f64,
    /// Training data per genre, in `genres` order.
    pub dataset: Vec<GenreDataset>,
}

/// How much training data one genre had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenreDataset {
    /// Genre name, one of `genres`.
    pub genre: String,
    /// Source tracks.
    pub tracks: usize,
    /// Segments cut from them.
    pub segments: usize,
    /// Hours of audio in the tracks.
    pub hours: f64,
}

/// The time axis of a latent map, for a decoder that takes any number of columns
/// ([`Manifest::latent_column`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatentColumn {
    /// Values in one column (channels × latent rows).
    pub values: usize,
    /// Columns in one model segment.
    pub cells: usize,
}

/// A bundle that passed every check in [`Manifest::load`].
#[derive(Debug, Clone)]
pub struct LoadedBundle {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The bundle directory.
    pub dir: PathBuf,
    /// Path of the decoder file.
    pub decoder_path: PathBuf,
    /// The decoder file's bytes (already read to hash them; an ONNX Runtime session can load them).
    pub decoder_bytes: Vec<u8>,
    /// The latent bank, when the manifest names one (checked and decoded).
    pub latent_bank: Option<LatentBank>,
}

/// Why a bundle was refused. Every variant names what does not match.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `manifest.json` is not valid JSON.
    #[error("manifest.json is not valid JSON: {message}")]
    Json {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// A required field is absent.
    #[error("manifest is missing field `{field}`")]
    MissingField {
        /// Dotted path of the field, e.g. `onnx.sha256`.
        field: String,
    },
    /// A field has the wrong type or an unknown field is present.
    #[error("manifest field `{field}`: {message}")]
    InvalidField {
        /// Dotted path of the field (`.` for the top level).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// `format_version` is not one this crate reads.
    #[error("manifest format_version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
    /// `created` is not an RFC 3339 timestamp.
    #[error("manifest `created` {value:?} is not an RFC 3339 timestamp: {reason}")]
    Created {
        /// The value found.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// `genres` is empty.
    #[error("manifest lists no genres")]
    NoGenres,
    /// A genre is listed twice.
    #[error("manifest lists genre `{genre}` twice")]
    DuplicateGenre {
        /// The repeated name.
        genre: String,
    },
    /// A genre name cannot appear in a `blend` parameter (empty, or contains `:`, `,` or whitespace).
    #[error("genre name {genre:?} is unusable in a blend: names must be non-empty, without `:`, `,` or whitespace")]
    InvalidGenreName {
        /// The name.
        genre: String,
    },
    /// `centroids` has a row count different from the genre count.
    #[error("manifest has {genres} genres but {rows} centroid rows")]
    CentroidCount {
        /// Number of genres.
        genres: usize,
        /// Number of centroid rows.
        rows: usize,
    },
    /// A centroid's length differs from `latent_dim`.
    #[error("centroid of genre `{genre}` has {found} values but latent_dim is {latent_dim}")]
    CentroidLength {
        /// The genre.
        genre: String,
        /// Its length.
        found: usize,
        /// `latent_dim`.
        latent_dim: usize,
    },
    /// A centroid holds NaN or ±∞.
    #[error("centroid of genre `{genre}` has a non-finite value at index {index}")]
    NonFiniteCentroid {
        /// The genre.
        genre: String,
        /// Index of the first bad value.
        index: usize,
    },
    /// `training.dataset` names a genre not in `genres`.
    #[error("training.dataset names genre `{genre}`, which is not in `genres`")]
    UnknownDatasetGenre {
        /// The name.
        genre: String,
    },
    /// The normalisation range is empty or not finite.
    #[error("normalization db_floor ({db_floor}) must be finite and below db_ceiling ({db_ceiling})")]
    Normalization {
        /// Lower bound found.
        db_floor: f32,
        /// Upper bound found.
        db_ceiling: f32,
    },
    /// The signal parameters describe no computable transform.
    #[error("manifest signal parameters: {0}")]
    Signal(#[source] AudioError),
    /// `onnx.file` is not a plain file name inside the bundle.
    #[error("onnx.file {file:?} must be a plain file name inside the bundle")]
    DecoderFileName {
        /// The value found.
        file: String,
    },
    /// The decoder file does not exist.
    #[error("decoder file {} does not exist", path.display())]
    DecoderMissing {
        /// Where it was expected.
        path: PathBuf,
    },
    /// The decoder's SHA-256 differs from the manifest's.
    #[error("{file} has sha256 {actual} but the manifest says {expected}")]
    HashMismatch {
        /// Decoder file name.
        file: String,
        /// `onnx.sha256`.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The decoder file is not a parseable ONNX model.
    #[error("{file} is not a valid ONNX model: {message}")]
    OnnxParse {
        /// Decoder file name.
        file: String,
        /// The protobuf decoder's description.
        message: String,
    },
    /// The decoder imports a different opset from the one the manifest records.
    #[error("manifest says opset {manifest} but {file} imports opset {model}")]
    OpsetMismatch {
        /// Decoder file name.
        file: String,
        /// `onnx.opset`.
        manifest: i64,
        /// The model's default-domain opset (0 when it imports none).
        model: i64,
    },
    /// A required input or output is absent from the decoder graph.
    #[error("{file} has no {kind} `{name}`")]
    MissingGraphValue {
        /// Decoder file name.
        file: String,
        /// `input` or `output`.
        kind: &'static str,
        /// The value name.
        name: String,
    },
    /// A required input or output is absent from the manifest's `onnx` section.
    #[error("manifest onnx.{kind}s does not declare `{name}`")]
    MissingDeclaration {
        /// `input` or `output`.
        kind: &'static str,
        /// The value name.
        name: String,
    },
    /// A decoder input or output is not a float32 tensor.
    #[error("{file} {kind} `{name}` is not a float32 tensor")]
    ElementType {
        /// Decoder file name.
        file: String,
        /// `input` or `output`.
        kind: &'static str,
        /// The value name.
        name: String,
    },
    /// The decoder's `genre` axis differs from the manifest's genre count.
    #[error("manifest says {manifest} genres but {file} input `genre` has {model}")]
    GenreCount {
        /// Decoder file name.
        file: String,
        /// `genres.len()`.
        manifest: usize,
        /// The graph's axis (as declared; may be symbolic).
        model: Dim,
    },
    /// The decoder's `z` axis differs from the manifest's latent size.
    #[error("manifest says latent_dim {manifest} but {file} input `z` has {model}")]
    LatentDim {
        /// Decoder file name.
        file: String,
        /// `latent_dim`.
        manifest: usize,
        /// The graph's axis.
        model: Dim,
    },
    /// One of the decoder's axes is dynamic where the manifest's `latent_time_cells` says it is fixed,
    /// or the other way round.
    #[error(
        "{file} {kind} `{name}` has axis {model}, but the manifest {}",
        if *manifest { "gives latent_time_cells (a dynamic time axis)" } else { "gives no latent_time_cells (a fixed time axis)" }
    )]
    TimeAxis {
        /// Decoder file name.
        file: String,
        /// `input` or `output`.
        kind: &'static str,
        /// Value name.
        name: String,
        /// Whether the manifest declares a dynamic time axis.
        manifest: bool,
        /// The graph's axis.
        model: Dim,
    },
    /// The decoder's `mel` height differs from the manifest's `signal.n_mels`.
    #[error("manifest says n_mels {manifest} but {file} output `mel` has height {model}")]
    MelBands {
        /// Decoder file name.
        file: String,
        /// `signal.n_mels`.
        manifest: usize,
        /// The graph's axis.
        model: Dim,
    },
    /// The decoder's `mel` width differs from the frames of one segment under `signal`.
    #[error("manifest signal gives {manifest} frames per segment but {file} output `mel` has width {model}")]
    MelFrames {
        /// Decoder file name.
        file: String,
        /// `signal.model_frames()`.
        manifest: usize,
        /// The graph's axis.
        model: Dim,
    },
    /// The decoder's shape for a value is otherwise wrong (rank, batch axis not dynamic, channel count).
    #[error("{file} {kind} `{name}` has shape {found}, expected {expected}")]
    GraphShape {
        /// Decoder file name.
        file: String,
        /// `input` or `output`.
        kind: &'static str,
        /// The value name.
        name: String,
        /// The expected shape, formatted (`batch` stands for any symbolic axis).
        expected: String,
        /// The graph's shape, formatted.
        found: String,
    },
    /// The manifest's declared shape for a value differs from the decoder graph's.
    #[error("manifest declares {kind} `{name}` as {manifest} but {file} has {model}")]
    DeclaredShape {
        /// Decoder file name.
        file: String,
        /// `input` or `output`.
        kind: &'static str,
        /// The value name.
        name: String,
        /// The manifest's shape, formatted.
        manifest: String,
        /// The graph's shape, formatted.
        model: String,
    },
}

/// Lower-case hex SHA-256 of `bytes`, as `onnx.sha256` stores it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The decoder interface DESIGN.md fixes, `(inputs, outputs)`: `z: [batch, Z]`, `genre: [batch, G]`
/// → `mel: [batch, 1, n_mels, frames]`; with `dynamic_time`, `z: [batch, latent]` and `mel: [batch,
/// 1, n_mels, frames]` with symbolic `latent` and `frames` ([`LATENT_AXIS`], [`FRAMES_AXIS`]).
/// The export writes these shapes; [`Manifest::load`] expects them.
pub fn decoder_interface(
    latent_dim: usize,
    n_genres: usize,
    n_mels: usize,
    frames: usize,
    dynamic_time: bool,
) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let spec = |name: &str, axes: &[Dim]| TensorSpec {
        name: name.into(),
        shape: std::iter::once(Dim::from(BATCH_AXIS)).chain(axes.iter().cloned()).collect(),
    };
    let (latent, frames) = if dynamic_time {
        (Dim::from(LATENT_AXIS), Dim::from(FRAMES_AXIS))
    } else {
        (Dim::from(latent_dim), Dim::from(frames))
    };
    (
        vec![spec(INPUT_Z, &[latent]), spec(INPUT_GENRE, &[Dim::from(n_genres)])],
        vec![spec(OUTPUT_MEL, &[Dim::from(1usize), Dim::from(n_mels), frames])],
    )
}

/// Joins the latent maps of consecutive segments along time into one row for a decoder with a
/// dynamic time axis: each `[Z]` map is channel-major `[C][H][cells]`, the result
/// `[C][H][maps · cells]`. The decoder then draws the whole stretch in one pass, with no seam
/// between the segments.
pub fn join_latent_maps(maps: &[&[f32]], cells: usize) -> Vec<f32> {
    let Some(first) = maps.first() else { return Vec::new() };
    let rows = first.len() / cells.max(1);
    let mut joined = Vec::with_capacity(first.len() * maps.len());
    for row in 0..rows {
        for map in maps {
            joined.extend_from_slice(&map[row * cells..(row + 1) * cells]);
        }
    }
    joined
}

/// Columns `from .. from + count` of a channel-major latent map of `columns` columns
/// (`[C][H][columns]`, as [`join_latent_maps`] writes it): the `[C][H][count]` map of that stretch
/// of time — a tile cut from a stretch's encoding, or a window of a joined walk.
pub fn latent_map_columns(map: &[f32], columns: usize, from: usize, count: usize) -> Vec<f32> {
    map.chunks_exact(columns.max(1)).flat_map(|row| &row[from..from + count]).copied().collect()
}

/// Which side of the graph a value is on, for messages.
#[derive(Clone, Copy)]
enum Side {
    Input,
    Output,
}

impl Side {
    fn kind(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }
}

impl Manifest {
    /// Reads `bundle_dir/manifest.json` and the decoder it names, and checks them (see the module docs).
    pub fn load(bundle_dir: &Path) -> Result<LoadedBundle, ManifestError> {
        let path = bundle_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io { path: path.clone(), source })?;
        let manifest = Self::from_json(&text)?;
        manifest.validate()?;

        if manifest.onnx.file.is_empty()
            || Path::new(&manifest.onnx.file).file_name() != Some(manifest.onnx.file.as_ref())
        {
            return Err(ManifestError::DecoderFileName { file: manifest.onnx.file.clone() });
        }
        let decoder_path = bundle_dir.join(&manifest.onnx.file);
        let decoder_bytes = std::fs::read(&decoder_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ManifestError::DecoderMissing { path: decoder_path.clone() }
            } else {
                ManifestError::Io { path: decoder_path.clone(), source }
            }
        })?;
        manifest.check_decoder(&decoder_bytes)?;
        let latent_bank = match &manifest.latent_bank {
            None => None,
            Some(info) => {
                if Path::new(&info.file).file_name() != Some(info.file.as_ref()) {
                    return Err(ManifestError::InvalidField {
                        field: "latent_bank.file".into(),
                        message: format!("`{}` must be a file name inside the bundle", info.file),
                    });
                }
                let path = bundle_dir.join(&info.file);
                let bytes = std::fs::read(&path).map_err(|source| ManifestError::Io { path: path.clone(), source })?;
                let bank =
                    LatentBank::from_bytes(info, manifest.genres.len(), manifest.latent_dim, &bytes).map_err(|e| {
                        ManifestError::InvalidField { field: format!("latent_bank.{}", e.field), message: e.message }
                    })?;
                Some(bank.with_time_columns(manifest.latent_time_cells))
            }
        };
        Ok(LoadedBundle { manifest, dir: bundle_dir.to_path_buf(), decoder_path, decoder_bytes, latent_bank })
    }

    /// Parses manifest JSON, checking `format_version` first (so that a future format is reported as
    /// such, not as a missing field) and naming any missing or mistyped field by its dotted path.
    /// Does not run [`Self::validate`].
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        let json_error = |e: serde_json::Error| ManifestError::Json { message: e.to_string() };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
        match value.get("format_version") {
            None => return Err(ManifestError::MissingField { field: "format_version".into() }),
            Some(version) => match version.as_u64() {
                Some(found) if found == u64::from(FORMAT_VERSION) => {}
                Some(found) => return Err(ManifestError::UnsupportedVersion { found, supported: FORMAT_VERSION }),
                None => {
                    return Err(ManifestError::InvalidField {
                        field: "format_version".into(),
                        message: format!("{version} is not a version number"),
                    })
                }
            },
        }
        // `SignalConfig` fills absent fields with defaults (handy for TOML configs); a manifest must
        // record every parameter, so that a bundle never silently runs with a different transform.
        let all_signal_fields = serde_json::to_value(SignalConfig::default()).map_err(json_error)?;
        if let (Some(signal), Some(all)) =
            (value.get("signal").and_then(|s| s.as_object()), all_signal_fields.as_object())
        {
            if let Some(missing) = all.keys().find(|k| !signal.contains_key(*k)) {
                return Err(ManifestError::MissingField { field: format!("signal.{missing}") });
            }
        }
        serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            match missing_field_name(&message) {
                Some(field) if path == "." => ManifestError::MissingField { field: field.into() },
                Some(field) => ManifestError::MissingField { field: format!("{path}.{field}") },
                None => ManifestError::InvalidField { field: path, message },
            }
        })
    }

    /// The manifest as pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        text.push('\n');
        text
    }

    /// Checks the manifest on its own (everything except the decoder file): the same checks
    /// [`Self::load`] makes, so that the exporter cannot write a bundle the service would refuse.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format_version != FORMAT_VERSION {
            return Err(ManifestError::UnsupportedVersion {
                found: u64::from(self.format_version),
                supported: FORMAT_VERSION,
            });
        }
        time::OffsetDateTime::parse(&self.created, &time::format_description::well_known::Rfc3339)
            .map_err(|e| ManifestError::Created { value: self.created.clone(), reason: e.to_string() })?;
        if self.genres.is_empty() {
            return Err(ManifestError::NoGenres);
        }
        for (i, genre) in self.genres.iter().enumerate() {
            if genre.is_empty() || genre.contains([':', ',']) || genre.contains(char::is_whitespace) {
                return Err(ManifestError::InvalidGenreName { genre: genre.clone() });
            }
            if self.genres[..i].contains(genre) {
                return Err(ManifestError::DuplicateGenre { genre: genre.clone() });
            }
        }
        if self.centroids.len() != self.genres.len() {
            return Err(ManifestError::CentroidCount { genres: self.genres.len(), rows: self.centroids.len() });
        }
        for (genre, centroid) in self.genres.iter().zip(&self.centroids) {
            if centroid.len() != self.latent_dim {
                return Err(ManifestError::CentroidLength {
                    genre: genre.clone(),
                    found: centroid.len(),
                    latent_dim: self.latent_dim,
                });
            }
            if let Some(index) = centroid.iter().position(|v| !v.is_finite()) {
                return Err(ManifestError::NonFiniteCentroid { genre: genre.clone(), index });
            }
        }
        if let Some(unknown) = self.training.dataset.iter().find(|d| !self.genres.contains(&d.genre)) {
            return Err(ManifestError::UnknownDatasetGenre { genre: unknown.genre.clone() });
        }
        let DbRange { db_floor, db_ceiling } = self.normalization;
        DbRange::new(db_floor, db_ceiling).map_err(|_| ManifestError::Normalization { db_floor, db_ceiling })?;
        self.signal.validate().map_err(ManifestError::Signal)?;
        if let Some(cells) = self.latent_time_cells {
            let frames = self.signal.model_frames();
            if cells == 0 || !self.latent_dim.is_multiple_of(cells) || !frames.is_multiple_of(cells) {
                return Err(ManifestError::InvalidField {
                    field: "latent_time_cells".into(),
                    message: format!(
                        "{cells} must divide both latent_dim ({}) and the segment's {frames} frames",
                        self.latent_dim
                    ),
                });
            }
        }
        if let Some(postfilter) = &self.postfilter {
            postfilter.validate(self.genres.len(), self.signal.n_mels).map_err(|e| match e {
                AudioError::InvalidParameter { name, detail } => {
                    ManifestError::InvalidField { field: name.into(), message: detail }
                }
                other => ManifestError::InvalidField { field: "postfilter".into(), message: other.to_string() },
            })?;
        }
        if let Some(hop) = self.latent_bank.as_ref().and_then(|bank| bank.hop_frames) {
            let frames = self.signal.model_frames();
            if hop == 0 || hop > frames {
                return Err(ManifestError::InvalidField {
                    field: "latent_bank.hop_frames".into(),
                    message: format!("{hop} is not a step between 1 and the segment's {frames} frames"),
                });
            }
        }
        Ok(())
    }

    /// Values per latent column (`latent_dim / latent_time_cells`) and columns per segment, when
    /// the decoder has a dynamic time axis.
    pub fn latent_column(&self) -> Option<LatentColumn> {
        let cells = self.latent_time_cells.filter(|&c| c > 0)?;
        Some(LatentColumn { values: self.latent_dim / cells, cells })
    }

    /// Checks the decoder file's bytes against the manifest: hash, opset, and the names, element
    /// types and shapes of `z`, `genre` and `mel`, both as the graph declares them and as the
    /// manifest's `onnx` section records them.
    pub fn check_decoder(&self, decoder: &[u8]) -> Result<(), ManifestError> {
        let file = self.onnx.file.clone();
        let actual = sha256_hex(decoder);
        if !actual.eq_ignore_ascii_case(&self.onnx.sha256) {
            return Err(ManifestError::HashMismatch { file, expected: self.onnx.sha256.clone(), actual });
        }
        let model = ModelProto::from_bytes(decoder)
            .map_err(|e| ManifestError::OnnxParse { file: file.clone(), message: e.to_string() })?;
        let opset =
            model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
        if opset != self.onnx.opset {
            return Err(ManifestError::OpsetMismatch { file, manifest: self.onnx.opset, model: opset });
        }
        let graph = model.graph.unwrap_or_default();
        let (inputs, outputs) = decoder_interface(
            self.latent_dim,
            self.genres.len(),
            self.signal.n_mels,
            self.signal.model_frames(),
            self.latent_time_cells.is_some(),
        );
        for (side, expected_values, graph_values, declared) in [
            (Side::Input, &inputs, &graph.input, &self.onnx.inputs),
            (Side::Output, &outputs, &graph.output, &self.onnx.outputs),
        ] {
            for expected in expected_values {
                let kind = side.kind();
                let name = &expected.name;
                let value = graph_values
                    .iter()
                    .find(|v| &v.name == name)
                    .ok_or_else(|| ManifestError::MissingGraphValue { file: file.clone(), kind, name: name.clone() })?;
                let Some((_, shape)) = declared_tensor(value).filter(|(t, _)| *t == DataType::Float as i32) else {
                    return Err(ManifestError::ElementType { file, kind, name: name.clone() });
                };
                self.check_axes(&file, side, expected, &shape)?;
                let manifest_spec = declared
                    .iter()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| ManifestError::MissingDeclaration { kind, name: name.clone() })?;
                if manifest_spec.shape != shape {
                    return Err(ManifestError::DeclaredShape {
                        file,
                        kind,
                        name: name.clone(),
                        manifest: format_shape(&manifest_spec.shape),
                        model: format_shape(&shape),
                    });
                }
            }
        }
        Ok(())
    }

    /// Compares one graph value's shape with the interface: rank and a symbolic batch axis first,
    /// then each fixed axis, reporting the axis the manifest describes by its own field.
    fn check_axes(&self, file: &str, side: Side, expected: &TensorSpec, found: &[Dim]) -> Result<(), ManifestError> {
        let shape_error = || ManifestError::GraphShape {
            file: file.into(),
            kind: side.kind(),
            name: expected.name.clone(),
            expected: format_shape(&expected.shape),
            found: format_shape(found),
        };
        if found.len() != expected.shape.len() || !matches!(found.first(), Some(Dim::Symbolic(_))) {
            return Err(shape_error());
        }
        for (axis, (want, got)) in expected.shape.iter().zip(found).enumerate().skip(1) {
            if want == got {
                continue;
            }
            let (file, model) = (file.to_string(), got.clone());
            if matches!(want, Dim::Symbolic(_)) || matches!(got, Dim::Symbolic(_)) {
                return Err(ManifestError::TimeAxis {
                    file,
                    kind: side.kind(),
                    name: expected.name.clone(),
                    manifest: self.latent_time_cells.is_some(),
                    model,
                });
            }
            return Err(match (expected.name.as_str(), axis) {
                (INPUT_Z, 1) => ManifestError::LatentDim { file, manifest: self.latent_dim, model },
                (INPUT_GENRE, 1) => ManifestError::GenreCount { file, manifest: self.genres.len(), model },
                (OUTPUT_MEL, 2) => ManifestError::MelBands { file, manifest: self.signal.n_mels, model },
                (OUTPUT_MEL, 3) => ManifestError::MelFrames { file, manifest: self.signal.model_frames(), model },
                _ => shape_error(),
            });
        }
        Ok(())
    }

    /// Writes `bundle_dir/manifest.json` atomically (temporary file, then rename) after [`Self::validate`].
    pub fn write(&self, bundle_dir: &Path) -> Result<(), ManifestError> {
        self.validate()?;
        let path = bundle_dir.join(MANIFEST_FILE);
        write_atomically(&path, self.to_json().as_bytes()).map_err(|error| match error {
            AudioError::Io { path, source } => ManifestError::Io { path, source },
            other => ManifestError::Io { path, source: std::io::Error::other(other.to_string()) },
        })
    }
}

/// The field name in serde's "missing field `x`" message.
fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}
