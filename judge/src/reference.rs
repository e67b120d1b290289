//! The reference: genre folders of real audio the bundle was not trained on
//! (`REFERENCE/<genre>/*.wav|flac|ogg|mp3`), cut into excerpts as long as the generated clips.
//!
//! Tracks, not excerpts, are split (excerpts of one track are alike, so splitting them would let
//! the classifier recognise the track instead of the genre): per genre, in file-name order,
//! even-numbered tracks train the classifier ([`Role::Train`]) and odd-numbered ones are the
//! held-out reference every measure compares with ([`Role::HeldOut`]); the held-out tracks are
//! split once more, alternately, into the two halves whose distance is the scale of the Fréchet
//! distance.
//!
//! A recorded corpus may have too few tracks of a genre to give both roles from one folder (the
//! Debian recipe has three `cn` recordings: two train the model, one is held out). Then a second
//! folder of other tracks trains the classifier (`--classifier-reference`, typically the
//! model's own training tracks: the classifier learns genres, not the model's outputs), and every
//! track of the reference is held out ([`ReferenceTracks::separate`]).

use std::path::{Path, PathBuf};

use melfuse_audio::decode::AUDIO_EXTENSIONS;
use melfuse_audio::load::load_mono;
use melfuse_audio::segment::evenly_spaced;
use rayon::prelude::*;

use crate::JudgeError;

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

/// The reference tracks of each genre (in the bundle's genre order), each with its role.
#[derive(Debug, Clone)]
pub struct ReferenceTracks {
    /// Per genre: `(file, role)`, sorted by file name within a role.
    pub genres: Vec<Vec<(PathBuf, Role)>>,
}

impl ReferenceTracks {
    /// One folder for both roles: per genre, in file-name order, even-numbered tracks train the
    /// classifier, odd-numbered ones are held out (alternately in half 0 and 1). Every genre needs
    /// at least two tracks.
    pub fn split(root: &Path, genres: &[String]) -> Result<Self, JudgeError> {
        let genres = genre_files(root, genres, 2, "one trains the classifier, one is held out")?
            .into_iter()
            .map(|files| {
                files
                    .into_iter()
                    .enumerate()
                    .map(|(i, path)| (path, if i % 2 == 0 { Role::Train } else { Role::HeldOut(((i / 2) % 2) as u8) }))
                    .collect()
            })
            .collect();
        Ok(Self { genres })
    }

    /// Two folders: every track under `held_out` is held out (alternately in half 0 and 1), every
    /// track under `classifier` trains the classifier. Each genre needs a track in both.
    pub fn separate(held_out: &Path, classifier: &Path, genres: &[String]) -> Result<Self, JudgeError> {
        let held = genre_files(held_out, genres, 1, "it is the held-out reference")?;
        let train = genre_files(classifier, genres, 1, "it trains the classifier")?;
        let genres = held
            .into_iter()
            .zip(train)
            .map(|(held, train)| {
                let held = held.into_iter().enumerate().map(|(i, path)| (path, Role::HeldOut((i % 2) as u8)));
                train.into_iter().map(|path| (path, Role::Train)).chain(held).collect()
            })
            .collect();
        Ok(Self { genres })
    }
}

/// The audio files of each of `genres` under `root`, sorted by name; each genre folder must hold
/// at least `minimum` (`why` says what for).
fn genre_files(root: &Path, genres: &[String], minimum: usize, why: &str) -> Result<Vec<Vec<PathBuf>>, JudgeError> {
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
            if files.len() < minimum {
                return Err(JudgeError::Reference(format!(
                    "{} holds {} audio file(s): each genre needs at least {minimum} ({why})",
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
    tracks: &ReferenceTracks,
    sample_rate: u32,
    excerpt_samples: usize,
    max_per_track: usize,
) -> Result<Vec<Excerpt>, JudgeError> {
    let jobs: Vec<(usize, Role, &PathBuf)> = tracks
        .genres
        .iter()
        .enumerate()
        .flat_map(|(genre, files)| files.iter().map(move |(path, role)| (genre, *role, path)))
        .collect();
    let loaded: Vec<Vec<Excerpt>> = jobs
        .par_iter()
        .map(|&(genre, role, path)| {
            let samples =
                load_mono(path, sample_rate).map_err(|e| JudgeError::Reference(format!("{}: {e}", path.display())))?;
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
    for (genre, files) in tracks.genres.iter().enumerate() {
        for (role, name) in [(false, "training"), (true, "held-out")] {
            let count =
                excerpts.iter().filter(|e| e.genre == genre && matches!(e.role, Role::HeldOut(_)) == role).count();
            if count == 0 {
                return Err(JudgeError::Reference(format!(
                    "genre {} has no {name} excerpt: its tracks are shorter than one excerpt",
                    files
                        .iter()
                        .find(|(_, r)| matches!(r, Role::HeldOut(_)) == role)
                        .and_then(|(p, _)| p.parent())
                        .map_or_else(String::new, |p| p.display().to_string())
                )));
            }
        }
    }
    Ok(excerpts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `root/<genre>/<name>` for each name (empty files: roles depend on names, not contents).
    fn folder(root: &Path, genre: &str, names: &[&str]) {
        std::fs::create_dir_all(root.join(genre)).expect("mkdir");
        for name in names {
            std::fs::write(root.join(genre).join(name), b"").expect("write");
        }
    }

    fn roles(tracks: &ReferenceTracks, genre: usize) -> Vec<(String, Role)> {
        tracks.genres[genre]
            .iter()
            .map(|(path, role)| (path.file_name().expect("name").to_string_lossy().into_owned(), *role))
            .collect()
    }

    #[test]
    fn one_folder_alternates_training_and_held_out_tracks() {
        let dir = tempfile::tempdir().expect("tempdir");
        folder(dir.path(), "cn", &["d.ogg", "a.wav", "c.flac", "b.mp3", "notes.txt"]);
        folder(dir.path(), "edm", &["x.opus", "y.m4a"]);
        let tracks = ReferenceTracks::split(dir.path(), &["cn".into(), "edm".into()]).expect("reference");
        let held = |half| Role::HeldOut(half);
        assert_eq!(
            roles(&tracks, 0),
            [
                ("a.wav".into(), Role::Train),
                ("b.mp3".into(), held(0)),
                ("c.flac".into(), Role::Train),
                ("d.ogg".into(), held(1))
            ]
        );
        assert_eq!(roles(&tracks, 1), [("x.opus".into(), Role::Train), ("y.m4a".into(), held(0))]);
        folder(dir.path(), "rock", &["only.wav"]);
        let message = ReferenceTracks::split(dir.path(), &["rock".into()]).expect_err("one track").to_string();
        assert!(message.contains("at least 2"), "{message}");
    }

    #[test]
    fn a_classifier_folder_leaves_every_reference_track_held_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (held, train) = (dir.path().join("held"), dir.path().join("train"));
        folder(&held, "cn", &["h1.ogg"]);
        folder(&held, "edm", &["e1.ogg", "e2.ogg", "e3.ogg"]);
        folder(&train, "cn", &["t1.ogg", "t2.ogg"]);
        folder(&train, "edm", &["t3.ogg"]);
        let genres = ["cn".to_string(), "edm".to_string()];
        let tracks = ReferenceTracks::separate(&held, &train, &genres).expect("reference");
        assert_eq!(
            roles(&tracks, 0),
            [("t1.ogg".into(), Role::Train), ("t2.ogg".into(), Role::Train), ("h1.ogg".into(), Role::HeldOut(0))]
        );
        let edm: Vec<Role> = roles(&tracks, 1).into_iter().map(|(_, role)| role).collect();
        assert_eq!(edm, [Role::Train, Role::HeldOut(0), Role::HeldOut(1), Role::HeldOut(0)]);
        std::fs::remove_file(train.join("edm/t3.ogg")).expect("remove");
        let message = ReferenceTracks::separate(&held, &train, &genres).expect_err("no classifier track").to_string();
        assert!(message.contains("trains the classifier"), "{message}");
    }
}
