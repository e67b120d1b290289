//! What `prepare` found: per genre, the tracks, segments and hours on each
//! side of the split, and every file it could not use with the reason. Saved
//! as `report.json` beside the cache and printed as a table.

use std::fmt;

use melfuse_audio::DbRange;
use serde::{Deserialize, Serialize};

use super::corpus::IgnoredFile;
use super::split::Split;

/// Name of the report file in the cache folder.
pub const REPORT_FILE: &str = "report.json";

/// Tracks, segments and duration of one side of the split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Tracks that yielded segments.
    pub tracks: usize,
    /// Segments.
    pub segments: usize,
    /// Total length of those tracks, in seconds.
    pub seconds: f64,
}

impl SplitCounts {
    /// Total length in hours.
    pub fn hours(&self) -> f64 {
        self.seconds / 3600.0
    }

    fn add(&mut self, other: &SplitCounts) {
        self.tracks += other.tracks;
        self.segments += other.segments;
        self.seconds += other.seconds;
    }
}

/// One genre's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreReport {
    /// The genre label.
    pub name: String,
    /// Training side.
    pub train: SplitCounts,
    /// Validation side.
    pub validation: SplitCounts,
    /// Files that could not be decoded.
    pub skipped: usize,
    /// Files shorter than one segment.
    pub too_short: usize,
    /// Files with other extensions or otherwise unusable entries.
    pub ignored: usize,
    /// Decoded files left out by a setting (`min_track_seconds`, every segment quiet).
    #[serde(default)]
    pub excluded: usize,
    /// Segments dropped as quieter than `min_segment_rms_dbfs`.
    #[serde(default)]
    pub quiet_segments: usize,
    /// Minutes of the tracks used, both sides of the split (set by `compute_totals`).
    #[serde(default)]
    pub minutes: f64,
}

impl GenreReport {
    /// A genre with nothing counted yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            train: SplitCounts::default(),
            validation: SplitCounts::default(),
            skipped: 0,
            too_short: 0,
            ignored: 0,
            excluded: 0,
            quiet_segments: 0,
            minutes: 0.0,
        }
    }

    /// The counts of `split`, for updating.
    pub fn side_mut(&mut self, split: Split) -> &mut SplitCounts {
        match split {
            Split::Train => &mut self.train,
            Split::Validation => &mut self.validation,
        }
    }
}

/// Files of one format (`container/codec`, e.g. `ogg/vorbis`, `isomp4/aac`;
/// `unrecognised .ext` when not even the container could be read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatCounts {
    /// Files that yielded segments.
    pub used: usize,
    /// Files that decoded but are shorter than one segment.
    pub too_short: usize,
    /// Files that could not be used (reasons under `skipped`).
    pub skipped: usize,
    /// Files that decoded but were left out by a gate (reasons under `excluded`).
    #[serde(default, skip_serializing_if = "super::loudness::is_zero_count")]
    pub excluded: usize,
}

/// A file that could not be decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Path relative to the corpus root.
    pub path: String,
    /// Its genre.
    pub genre: String,
    /// The decoder's message.
    pub reason: String,
}

/// A file that decoded but is shorter than one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortFile {
    /// Path relative to the corpus root.
    pub path: String,
    /// Its genre.
    pub genre: String,
    /// Its length in seconds.
    pub seconds: f64,
}

/// Everything `prepare` measured and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// The corpus folder, as given.
    pub corpus: String,
    /// The cache folder, as given.
    pub cache: String,
    /// Per genre, in label order.
    pub genres: Vec<GenreReport>,
    /// Sum over genres, training side.
    pub total_train: SplitCounts,
    /// Sum over genres, validation side.
    pub total_validation: SplitCounts,
    /// Files per format, by `container/codec`.
    #[serde(default)]
    pub formats: std::collections::BTreeMap<String, FormatCounts>,
    /// Files that could not be decoded, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Files shorter than one segment.
    pub too_short: Vec<ShortFile>,
    /// Entries not considered at all (outside genre folders, other extensions).
    pub ignored: Vec<IgnoredFile>,
    /// The range measured on the training split.
    pub db_range: DbRange,
    /// Lowest and highest dB value stored in the training split.
    pub train_db_min: f32,
    /// Highest dB value stored in the training split.
    pub train_db_max: f32,
    /// Shard files written.
    pub shards: usize,
    /// Bytes of shard data written.
    pub bytes: u64,
    /// Wall time of the whole run, in seconds.
    pub elapsed_seconds: f64,
    /// Segments produced per second of wall time.
    pub segments_per_second: f64,
    /// Decoded files left out by a setting, with the reason.
    #[serde(default)]
    pub excluded: Vec<SkippedFile>,
    /// Segments dropped as quiet, over all genres (set by `compute_totals`).
    #[serde(default)]
    pub quiet_segments: usize,
}

impl PrepareReport {
    /// Adds up the genre lines into the totals (and each genre's minutes).
    pub fn compute_totals(&mut self) {
        let mut train = SplitCounts::default();
        let mut validation = SplitCounts::default();
        self.quiet_segments = self.genres.iter().map(|g| g.quiet_segments).sum();
        for genre in &mut self.genres {
            genre.minutes = (genre.train.seconds + genre.validation.seconds) / 60.0;
            train.add(&genre.train);
            validation.add(&genre.validation);
        }
        self.total_train = train;
        self.total_validation = validation;
    }
}

/// `seconds` as `H:MM:SS`.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl fmt::Display for PrepareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.genres.iter().map(|g| g.name.len()).chain([5]).max().unwrap_or(5);
        writeln!(f, "prepared {} → {}", self.corpus, self.cache)?;
        writeln!(
            f,
            "{:<width$}  {:>6} {:>8} {:>9}  {:>6} {:>8} {:>9}  {:>7} {:>9} {:>7}",
            "genre",
            "tracks",
            "segments",
            "h:mm:ss",
            "tracks",
            "segments",
            "h:mm:ss",
            "skipped",
            "too short",
            "ignored"
        )?;
        writeln!(f, "{:<width$}  {:-^25}  {:-^25}", "", " train ", " validation ")?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, t: &SplitCounts, v: &SplitCounts, extra: [usize; 3]| {
            writeln!(
                f,
                "{name:<width$}  {:>6} {:>8} {:>9}  {:>6} {:>8} {:>9}  {:>7} {:>9} {:>7}",
                t.tracks,
                t.segments,
                clock(t.seconds),
                v.tracks,
                v.segments,
                clock(v.seconds),
                extra[0],
                extra[1],
                extra[2]
            )
        };
        for g in &self.genres {
            line(f, &g.name, &g.train, &g.validation, [g.skipped, g.too_short, g.ignored])?;
        }
        let ignored_outside = self.ignored.iter().filter(|i| i.genre.is_none()).count();
        line(
            f,
            "total",
            &self.total_train,
            &self.total_validation,
            [
                self.skipped.len(),
                self.too_short.len(),
                self.genres.iter().map(|g| g.ignored).sum::<usize>() + ignored_outside,
            ],
        )?;
        writeln!(
            f,
            "hours of audio: {:.3} train, {:.3} validation",
            self.total_train.hours(),
            self.total_validation.hours()
        )?;
        for (format, counts) in &self.formats {
            write!(
                f,
                "format {format}: {} used, {} too short, {} skipped",
                counts.used, counts.too_short, counts.skipped
            )?;
            if counts.excluded > 0 {
                write!(f, ", {} excluded", counts.excluded)?;
            }
            writeln!(f)?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped {}: {}", s.path, s.reason)?;
        }
        for s in &self.too_short {
            writeln!(f, "too short {} ({:.2} s)", s.path, s.seconds)?;
        }
        for s in &self.excluded {
            writeln!(f, "excluded {}: {}", s.path, s.reason)?;
        }
        let minutes: Vec<String> = self
            .genres
            .iter()
            .map(|g| {
                format!(
                    "{} {:.1} ({:.1} + {:.1})",
                    g.name,
                    g.minutes,
                    g.train.seconds / 60.0,
                    g.validation.seconds / 60.0
                )
            })
            .collect();
        writeln!(f, "minutes per genre (train + validation): {}", minutes.join(", "))?;
        if self.quiet_segments > 0 {
            let per_genre: Vec<String> = self
                .genres
                .iter()
                .filter(|g| g.quiet_segments > 0)
                .map(|g| format!("{} {}", g.name, g.quiet_segments))
                .collect();
            writeln!(f, "quiet segments dropped: {} ({})", self.quiet_segments, per_genre.join(", "))?;
        }
        if ignored_outside > 0 {
            let names: Vec<&str> = self.ignored.iter().filter(|i| i.genre.is_none()).map(|i| i.path.as_str()).collect();
            writeln!(f, "ignored outside genre folders: {}", names.join(", "))?;
        }
        writeln!(
            f,
            "dB range (training split): floor {:.2} dB, ceiling {:.2} dB (values seen {:.2} … {:.2} dB)",
            self.db_range.db_floor, self.db_range.db_ceiling, self.train_db_min, self.train_db_max
        )?;
        writeln!(
            f,
            "{} shards, {:.1} MiB, {:.1} s ({:.1} segments/s)",
            self.shards,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.elapsed_seconds,
            self.segments_per_second
        )
    }
}
