//! The reference: genre folders of real audio the bundle was not trained on
//! (`REFERENCE/<genre>/*.wav|flac|ogg|mp3`), cut into excerpts as long as the generated clips.
//!
//! Tracks, not excerpts, are split (excerpts of one track are alike, so splitting them would let
//! the classifier recognise the track instead of the genre): per genre, in file-name order,
//! even-numbered tracks train the classifier ([`Role::Train`]) and odd-numbered ones are the
//! held-out reference every measure compares with ([`Role::HeldOut`]); the held-out tracks are
//! split once more, alternately, into the two halves whose distance is the scale of the Fréchet
//! distance.

use std::path::{Path, PathBuf};

use melfuse_audio::load::load_mono;
use melfuse_audio::segment::evenly_spaced;
use rayon::prelude::*;

use crate::JudgeError;

/// Extensions read from a genre folder.
pub const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "flac", "ogg", "mp3"];

/// What an excerpt is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Trains the classifier.
    Train,
    /// Held out: the reference of every measure, in half `0` or `1`.
    HeldOut(u8),
}

/// One reference excerpt.
#[derive(Debug, Clone)]
pub struct Excerpt {
    /// Index of its genre in the bundle's genre order.
    pub genre: usize,
    /// The file it was cut from.
    pub track: PathBuf,
    /// Its role in the judge.
    pub role: Role,
    /// Mono samples at the bundle's rate.
    pub samples: Vec<f32>,
}

/// The files of each of `genres` under `root`, sorted by name. Every genre must have a folder
/// with at least two tracks (one to train the classifier, one held out).
pub fn reference_tracks(root: &Path, genres: &[String]) -> Result<Vec<Vec<PathBuf>>, JudgeError> {
    genres
        .iter()
        .map(|genre| {
            let dir = root.join(genre);
            let entries = std::fs::read_dir(&dir).map_err(|source| JudgeError::Io { path: dir.clone(), source })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    path.is_file()
                        && path
                            .extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            files.sort();
            if files.len() < 2 {
                return Err(JudgeError::Reference(format!(
                    "{} holds {} audio file(s): each genre needs at least 2 tracks (one trains the classifier, \
                     one is held out)",
                    dir.display(),
                    files.len()
                )));
            }
            Ok(files)
        })
        .collect()
}

/// Loads every track at `sample_rate` and cuts it into non-overlapping excerpts of
/// `excerpt_samples`, at most `max_per_track` of them evenly spaced along the track (a track
/// shorter than one excerpt gives none and is reported). Files that cannot be decoded are errors:
/// a reference must be what the user says it is.
pub fn load_excerpts(
    tracks: &[Vec<PathBuf>],
    sample_rate: u32,
    excerpt_samples: usize,
    max_per_track: usize,
) -> Result<Vec<Excerpt>, JudgeError> {
    let jobs: Vec<(usize, usize, &PathBuf)> = tracks
        .iter()
        .enumerate()
        .flat_map(|(genre, files)| files.iter().enumerate().map(move |(i, path)| (genre, i, path)))
        .collect();
    let loaded: Vec<Vec<Excerpt>> = jobs
        .par_iter()
        .map(|&(genre, index, path)| {
            let samples =
                load_mono(path, sample_rate).map_err(|e| JudgeError::Reference(format!("{}: {e}", path.display())))?;
            let role = if index % 2 == 0 { Role::Train } else { Role::HeldOut(((index / 2) % 2) as u8) };
            let available = samples.len() / excerpt_samples.max(1);
            if available == 0 {
                tracing::warn!(path = %path.display(), "shorter than one excerpt: not used");
            }
            let starts = evenly_spaced(available, max_per_track);
            Ok(starts
                .into_iter()
                .map(|k| Excerpt {
                    genre,
                    track: path.clone(),
                    role,
                    samples: samples[k * excerpt_samples..(k + 1) * excerpt_samples].to_vec(),
                })
                .collect())
        })
        .collect::<Result<_, JudgeError>>()?;
    let excerpts: Vec<Excerpt> = loaded.into_iter().flatten().collect();
    for (genre, _) in tracks.iter().enumerate() {
        for (role, name) in [(false, "training"), (true, "held-out")] {
            let count =
                excerpts.iter().filter(|e| e.genre == genre && matches!(e.role, Role::HeldOut(_)) == role).count();
            if count == 0 {
                return Err(JudgeError::Reference(format!(
                    "genre {} has no {name} excerpt: its tracks are shorter than one excerpt",
                    tracks[genre]
                        .first()
                        .and_then(|p| p.parent())
                        .map_or_else(String::new, |p| p.display().to_string())
                )));
            }
        }
    }
    Ok(excerpts)
}
