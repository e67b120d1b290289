//! The prepared-data cache that `fit` reads: dB mel segments as raw
//! little-endian f16 arrays `[segments, n_mels, frames]` in shards of at most
//! `segments_per_shard` segments, one folder per split, described by
//! `index.json`.
//!
//! The values are dB, not normalised: normalisation with the measured
//! [`DbRange`] happens when reading, so the range can be re-measured without
//! decoding the corpus again. f16 keeps ~0.03 dB at these magnitudes and
//! halves the size of f32.
//!
//! ```text
//! CACHE_DIR/index.json               written last: its presence means complete
//! CACHE_DIR/report.json              what `prepare` found (see report.rs)
//! CACHE_DIR/train/shard_00000.bin    f16le [segments, n_mels, frames]
//! CACHE_DIR/validation/shard_00000.bin
//! ```

use crate::file_error::{io_error, FileError};
use std::path::{Path, PathBuf};

use half::f16;
use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::{AudioError, DbRange, SignalConfig};
use melfuse_proto::manifest::sha256_hex;
use memmap2::Mmap;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::split::Split;
use super::PrepareConfig;

/// Value of the `format` field of every melfuse cache index.
pub const CACHE_FORMAT: &str = "melfuse-prepare-cache";
/// Layout version; bumped whenever the files change meaning.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// Name of the index file, written last.
pub const INDEX_FILE: &str = "index.json";
/// Encoding of every stored value.
pub const VALUE_ENCODING: &str = "f16le";
/// Bytes per stored value.
pub const BYTES_PER_VALUE: usize = 2;

/// Why the cache could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Writing a shard or index atomically failed.
    #[error(transparent)]
    Write(#[from] AudioError),
    /// `index.json` is not valid JSON for this format.
    #[error("invalid cache index {path}: {source}")]
    Json {
        /// The index file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// The index is not a melfuse cache or has another layout version.
    #[error("{path} is format {found:?} version {found_version}, expected {CACHE_FORMAT:?} version {CACHE_FORMAT_VERSION}; run `melfuse-train prepare` again")]
    Version {
        /// The index file.
        path: PathBuf,
        /// Format name found.
        found: String,
        /// Version found.
        found_version: u32,
    },
    /// The index and the files on disk disagree.
    #[error("inconsistent cache {dir}: {detail}; run `melfuse-train prepare --force` to rebuild it")]
    Inconsistent {
        /// The cache folder.
        dir: PathBuf,
        /// What does not match.
        detail: String,
    },
    /// A shard's content does not match its recorded SHA-256.
    #[error("shard {path} is corrupt: sha256 {found}, index says {expected}")]
    Checksum {
        /// The shard.
        path: PathBuf,
        /// Hash of the file.
        found: String,
        /// Hash in the index.
        expected: String,
    },
    /// A segment index past the end of the split.
    #[error("segment {index} does not exist: the {split} split has {len} segments")]
    NoSuchSegment {
        /// The split asked for.
        split: Split,
        /// The index asked for.
        index: usize,
        /// Segments in the split.
        len: usize,
    },
    /// A caller's buffer of the wrong length.
    #[error("buffer holds {found} values, a segment has {expected} (n_mels × frames)")]
    BufferSize {
        /// Values the buffer holds.
        found: usize,
        /// `n_mels × frames`.
        expected: usize,
    },
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `values` to `out` as little-endian f16 (round to nearest).
pub fn encode_f16le(values: impl IntoIterator<Item = f32>, out: &mut Vec<u8>) {
    for v in values {
        out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
    }
}

/// Decodes little-endian f16 `bytes` into `out` (one value per 2 bytes; the
/// lengths must agree).
fn decode_f16le(bytes: &[u8], out: &mut [f32]) {
    for (value, pair) in out.iter_mut().zip(bytes.chunks_exact(BYTES_PER_VALUE)) {
        *value = f16::from_le_bytes([pair[0], pair[1]]).to_f32();
    }
}

/// One segment of a split, in shard order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Index of its genre in [`CacheIndex::genres`].
    pub genre: usize,
    /// Index of its track in [`CacheIndex::tracks`].
    pub track: usize,
    /// Position of the segment within its track (0 = first).
    pub index: usize,
    /// Start of the segment in the track, in seconds.
    pub start_seconds: f64,
}

/// One track that yielded segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// Index of its genre in [`CacheIndex::genres`].
    pub genre: usize,
    /// The side its segments are on.
    pub split: Split,
    /// Segments it yielded.
    pub segments: usize,
    /// Its length after decoding and resampling, in seconds.
    pub seconds: f64,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Path relative to the cache folder, `/`-separated.
    pub file: String,
    /// The split its segments belong to.
    pub split: Split,
    /// Segments it holds.
    pub segments: usize,
    /// Its length in bytes (`segments × n_mels × frames × 2`).
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// The shards and segments of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitIndex {
    /// Shards in order; segment `i` of the split is in the shard whose
    /// cumulative range covers `i`.
    pub shards: Vec<ShardInfo>,
    /// Every segment, in shard order.
    pub segments: Vec<SegmentInfo>,
}

/// Contents of `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    /// Always [`CACHE_FORMAT`].
    pub format: String,
    /// [`CACHE_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The program that wrote it.
    pub generator: String,
    /// Hash of the configuration and of every corpus file's path, size and
    /// modification time: equal fingerprints mean the cache is up to date.
    pub fingerprint: String,
    /// The full configuration the cache was built with.
    pub config: PrepareConfig,
    /// The range measured on the training split.
    pub db_range: DbRange,
    /// Mel bands per segment.
    pub n_mels: usize,
    /// Frames per segment.
    pub frames: usize,
    /// Encoding of the values, [`VALUE_ENCODING`].
    pub value_encoding: String,
    /// Genre labels, in label order.
    pub genres: Vec<String>,
    /// Every track that yielded segments, sorted by (genre, path).
    pub tracks: Vec<TrackInfo>,
    /// The training split.
    pub train: SplitIndex,
    /// The validation split.
    pub validation: SplitIndex,
}

impl CacheIndex {
    /// The index of `split`.
    pub fn split(&self, split: Split) -> &SplitIndex {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        }
    }

    /// Values per segment: `n_mels × frames`.
    pub fn segment_values(&self) -> usize {
        self.n_mels * self.frames
    }

    /// Reads `index.json` from `dir` without checking the shards.
    pub fn read(dir: &Path) -> Result<Self, CacheError> {
        let path = dir.join(INDEX_FILE);
        let bytes = std::fs::read(&path).map_err(io_error("read", &path))?;
        #[derive(Deserialize)]
        struct Header {
            format: String,
            format_version: u32,
        }
        let header: Header =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Json { path: path.clone(), source })?;
        if header.format != CACHE_FORMAT || header.format_version != CACHE_FORMAT_VERSION {
            return Err(CacheError::Version { path, found: header.format, found_version: header.format_version });
        }
        serde_json::from_slice(&bytes).map_err(|source| CacheError::Json { path, source })
    }

    /// Writes the index into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), CacheError> {
        let path = dir.join(INDEX_FILE);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| CacheError::Json { path: path.clone(), source })?;
        text.push('\n');
        Ok(write_atomically(&path, text.as_bytes())?)
    }
}

/// Relative path of shard `number` of `split`.
pub fn shard_file_name(split: Split, number: usize) -> String {
    format!("{}/shard_{number:05}.bin", split.as_str())
}

/// Collects the segments of one split into shards of at most
/// `segments_per_shard` segments, writing each full shard atomically.
#[derive(Debug)]
pub struct ShardWriter {
    dir: PathBuf,
    split: Split,
    segments_per_shard: usize,
    segment_bytes: usize,
    buffer: Vec<u8>,
    buffered: usize,
    shards: Vec<ShardInfo>,
}

impl ShardWriter {
    /// A writer of `split`'s shards under the cache folder `dir` (its split
    /// folder is created); each segment is `segment_values` f16 values.
    pub fn new(dir: &Path, split: Split, segments_per_shard: usize, segment_values: usize) -> Result<Self, CacheError> {
        let folder = dir.join(split.as_str());
        std::fs::create_dir_all(&folder).map_err(io_error("create folder", &folder))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            split,
            segments_per_shard: segments_per_shard.max(1),
            segment_bytes: segment_values * BYTES_PER_VALUE,
            buffer: Vec::new(),
            buffered: 0,
            shards: Vec::new(),
        })
    }

    /// Appends segments given as f16le bytes (a whole number of segments).
    pub fn push(&mut self, segments: &[u8]) -> Result<(), CacheError> {
        for segment in segments.chunks(self.segment_bytes) {
            if segment.len() != self.segment_bytes {
                return Err(CacheError::BufferSize {
                    found: segment.len() / BYTES_PER_VALUE,
                    expected: self.segment_bytes / BYTES_PER_VALUE,
                });
            }
            self.buffer.extend_from_slice(segment);
            self.buffered += 1;
            if self.buffered == self.segments_per_shard {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CacheError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let file = shard_file_name(self.split, self.shards.len());
        write_atomically(&self.dir.join(&file), &self.buffer)?;
        self.shards.push(ShardInfo {
            file,
            split: self.split,
            segments: self.buffered,
            bytes: self.buffer.len() as u64,
            sha256: sha256_hex(&self.buffer),
        });
        self.buffer.clear();
        self.buffered = 0;
        Ok(())
    }

    /// Writes the last, partial shard and returns every shard written.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>, CacheError> {
        self.flush()?;
        Ok(self.shards)
    }
}

/// A split's shards, memory-mapped, and where each begins.
#[derive(Debug)]
struct MappedSplit {
    maps: Vec<Mmap>,
    /// Index of the first segment of each shard, plus the total at the end.
    starts: Vec<usize>,
}

/// A prepared cache opened for reading: the index plus every shard mapped
/// into memory, for cheap random access by `fit`'s batcher.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    index: CacheIndex,
    train: MappedSplit,
    validation: MappedSplit,
}

impl Cache {
    /// Opens the cache in `dir`: reads the index, checks its version and that
    /// every shard exists with the recorded size and that the segment lists
    /// agree with the shards, and maps the shards. (Checksums are verified
    /// only by [`Cache::verify_checksums`], which reads everything.)
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let index = CacheIndex::read(dir)?;
        let inconsistent = |detail: String| CacheError::Inconsistent { dir: dir.to_path_buf(), detail };
        let segment_bytes = (index.segment_values() * BYTES_PER_VALUE) as u64;
        if segment_bytes == 0 || index.value_encoding != VALUE_ENCODING {
            return Err(inconsistent(format!(
                "{} × {} values of encoding {:?}",
                index.n_mels, index.frames, index.value_encoding
            )));
        }
        let expected = (index.config.signal.n_mels, index.config.signal.model_frames());
        if (index.n_mels, index.frames) != expected {
            return Err(inconsistent(format!(
                "segments are {} × {} but the signal config gives {} × {}",
                index.n_mels, index.frames, expected.0, expected.1
            )));
        }
        for track in &index.tracks {
            if track.genre >= index.genres.len() {
                return Err(inconsistent(format!(
                    "track {} has genre {} of {}",
                    track.path,
                    track.genre,
                    index.genres.len()
                )));
            }
        }
        let mut mapped = Vec::with_capacity(2);
        for split in Split::ALL {
            let part = index.split(split);
            let mut maps = Vec::with_capacity(part.shards.len());
            let mut starts = vec![0];
            for shard in &part.shards {
                let path = dir.join(&shard.file);
                let file = std::fs::File::open(&path).map_err(io_error("open shard", &path))?;
                let len = file.metadata().map_err(io_error("inspect shard", &path))?.len();
                if shard.split != split
                    || len != shard.bytes
                    || len != shard.segments as u64 * segment_bytes
                    || len == 0
                {
                    return Err(inconsistent(format!(
                        "{} is {len} bytes; the index says {} bytes, {} {} segments of {segment_bytes} bytes",
                        shard.file, shard.bytes, shard.segments, shard.split
                    )));
                }
                // SAFETY: shards are written once, through a temporary file
                // renamed into place, and never modified by melfuse; the map
                // is read-only. Another program truncating a shard while it
                // is mapped is the hazard every memory-mapped reader accepts.
                let map = unsafe { Mmap::map(&file) }.map_err(io_error("memory-map", &path))?;
                maps.push(map);
                starts.push(starts[starts.len() - 1] + shard.segments);
            }
            let total = starts[starts.len() - 1];
            if total != part.segments.len() {
                return Err(inconsistent(format!(
                    "the {split} shards hold {total} segments, the index lists {}",
                    part.segments.len()
                )));
            }
            if let Some(bad) =
                part.segments.iter().find(|s| s.genre >= index.genres.len() || s.track >= index.tracks.len())
            {
                return Err(inconsistent(format!("a {split} segment names genre {} track {}", bad.genre, bad.track)));
            }
            mapped.push(MappedSplit { maps, starts });
        }
        let validation = mapped.pop().expect("two splits were mapped");
        let train = mapped.pop().expect("two splits were mapped");
        Ok(Self { dir: dir.to_path_buf(), index, train, validation })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The whole index.
    pub fn index(&self) -> &CacheIndex {
        &self.index
    }

    /// Genre labels; a segment's `genre` indexes this list.
    pub fn genres(&self) -> &[String] {
        &self.index.genres
    }

    /// The dB range measured on the training split.
    pub fn db_range(&self) -> DbRange {
        self.index.db_range
    }

    /// The signal parameters the segments were computed with.
    pub fn signal(&self) -> &SignalConfig {
        &self.index.config.signal
    }

    /// Mel bands per segment.
    pub fn n_mels(&self) -> usize {
        self.index.n_mels
    }

    /// Frames per segment.
    pub fn frames(&self) -> usize {
        self.index.frames
    }

    /// Every track that yielded segments.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.index.tracks
    }

    /// The segments of `split`, in storage order.
    pub fn segments(&self, split: Split) -> &[SegmentInfo] {
        &self.index.split(split).segments
    }

    /// The stored f16le bytes of segment `i` of `split`.
    fn segment_bytes(&self, split: Split, i: usize) -> Result<&[u8], CacheError> {
        let mapped = match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        };
        let len = self.segments(split).len();
        if i >= len {
            return Err(CacheError::NoSuchSegment { split, index: i, len });
        }
        let shard = mapped.starts.partition_point(|&start| start <= i) - 1;
        let size = self.index.segment_values() * BYTES_PER_VALUE;
        let offset = (i - mapped.starts[shard]) * size;
        Ok(&mapped.maps[shard][offset..offset + size])
    }

    /// Writes segment `i` of `split` into `out` (`n_mels × frames` values,
    /// mel-major) in dB.
    pub fn segment_db_into(&self, split: Split, i: usize, out: &mut [f32]) -> Result<(), CacheError> {
        let expected = self.index.segment_values();
        if out.len() != expected {
            return Err(CacheError::BufferSize { found: out.len(), expected });
        }
        decode_f16le(self.segment_bytes(split, i)?, out);
        Ok(())
    }

    /// Segment `i` of `split` in dB, `[n_mels, frames]`.
    pub fn segment_db(&self, split: Split, i: usize) -> Result<Array2<f32>, CacheError> {
        let mut out = Array2::zeros((self.index.n_mels, self.index.frames));
        let slice = out.as_slice_mut().expect("a new array is contiguous");
        self.segment_db_into(split, i, slice)?;
        Ok(out)
    }

    /// Writes segment `i` of `split` into `out` normalised to `[0, 1]` with
    /// `range` (clipped outside it): the model's input, without allocating.
    pub fn normalized_segment_into(
        &self,
        split: Split,
        i: usize,
        range: &DbRange,
        out: &mut [f32],
    ) -> Result<(), CacheError> {
        self.segment_db_into(split, i, out)?;
        for v in out.iter_mut() {
            *v = range.normalize_value(*v);
        }
        Ok(())
    }

    /// Reads every shard and compares it with its recorded SHA-256.
    pub fn verify_checksums(&self) -> Result<(), CacheError> {
        for (split, mapped) in [(Split::Train, &self.train), (Split::Validation, &self.validation)] {
            for (shard, map) in self.index.split(split).shards.iter().zip(&mapped.maps) {
                let found = sha256_hex(map);
                if found != shard.sha256 {
                    return Err(CacheError::Checksum {
                        path: self.dir.join(&shard.file),
                        found,
                        expected: shard.sha256.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}
