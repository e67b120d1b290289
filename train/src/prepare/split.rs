//! Train/validation split by track: every segment of a track lands on the
//! same side, so validation never scores the model on audio it trained on
//! (overlapping segments of one track share most of their samples).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Which side of the split a track, segment or shard belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Used for training and for measuring the dB range.
    Train,
    /// Held out to measure generalisation.
    Validation,
}

impl Split {
    /// Both splits, training first (the order of shards and reports).
    pub const ALL: [Split; 2] = [Split::Train, Split::Validation];

    /// The split's name as written in the cache (`train`, `validation`); also
    /// the name of its shard folder.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Seeded hash of a track's corpus-relative path: the first 8 bytes of
/// SHA-256(seed as little-endian u64 ‖ path). SHA-256 rather than
/// `DefaultHasher` because the split must not change between Rust versions.
pub fn track_hash(seed: u64, relative_path: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(relative_path.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// `hash` mapped uniformly onto `[0, 1)` (53 bits, exact in an `f64`).
pub fn hash_fraction(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// One track to assign: its genre index and corpus-relative path.
#[derive(Debug, Clone, Copy)]
pub struct SplitCandidate<'a> {
    /// Index of the track's genre.
    pub genre: usize,
    /// Path relative to the corpus root, `/`-separated.
    pub relative_path: &'a str,
}

/// Assigns every track a side, deterministically for a given `seed`.
///
/// A track goes to validation when its [`track_hash`] fraction is below
/// `validation_fraction`. Then, per genre: a genre with one track keeps it
/// for training (a genre the model never trains on cannot be generated); a
/// genre with two or more tracks and a positive fraction gets at least one
/// validation track (the training track with the smallest hash moves) and at
/// least one training track (the validation track with the largest hash
/// moves). `validation_fraction` is expected in `[0, 1)`.
pub fn assign_splits(tracks: &[SplitCandidate<'_>], validation_fraction: f64, seed: u64) -> Vec<Split> {
    let hashes: Vec<u64> = tracks.iter().map(|t| track_hash(seed, t.relative_path)).collect();
    let mut splits: Vec<Split> = hashes
        .iter()
        .map(|&h| if hash_fraction(h) < validation_fraction { Split::Validation } else { Split::Train })
        .collect();
    let n_genres = tracks.iter().map(|t| t.genre + 1).max().unwrap_or(0);
    for genre in 0..n_genres {
        let members: Vec<usize> = (0..tracks.len()).filter(|&i| tracks[i].genre == genre).collect();
        // Ties between equal hashes (practically impossible) break by path.
        let key = |i: &usize| (hashes[*i], tracks[*i].relative_path);
        match members.len() {
            0 => {}
            1 => splits[members[0]] = Split::Train,
            _ if validation_fraction > 0.0 => {
                let on = |splits: &[Split], side: Split| -> Vec<usize> {
                    members.iter().copied().filter(|&i| splits[i] == side).collect()
                };
                if on(&splits, Split::Validation).is_empty() {
                    if let Some(i) = on(&splits, Split::Train).into_iter().min_by_key(key) {
                        splits[i] = Split::Validation;
                    }
                }
                if on(&splits, Split::Train).is_empty() {
                    if let Some(i) = on(&splits, Split::Validation).into_iter().max_by_key(key) {
                        splits[i] = Split::Train;
                    }
                }
            }
            _ => {}
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(paths: &[(usize, String)]) -> Vec<SplitCandidate<'_>> {
        paths.iter().map(|(g, p)| SplitCandidate { genre: *g, relative_path: p }).collect()
    }

    #[test]
    fn the_hash_is_stable_across_versions() {
        // Pinned: a change here silently reshuffles every user's split.
        assert_eq!(track_hash(0, "cn/cn_000.wav"), track_hash(0, "cn/cn_000.wav"));
        assert_ne!(track_hash(0, "cn/cn_000.wav"), track_hash(1, "cn/cn_000.wav"));
        let digest = Sha256::digest(b"\0\0\0\0\0\0\0\0abc");
        assert_eq!(track_hash(0, "abc").to_be_bytes(), digest[..8]);
        assert!((0.0..1.0).contains(&hash_fraction(u64::MAX)));
    }

    #[test]
    fn every_genre_with_two_tracks_gets_both_sides() {
        let paths: Vec<(usize, String)> =
            (0..5).flat_map(|g| (0..2 + g).map(move |i| (g, format!("g{g}/t{i}.wav")))).collect();
        for seed in 0..50 {
            let splits = assign_splits(&candidates(&paths), 0.1, seed);
            for genre in 0..5 {
                let sides: Vec<Split> =
                    paths.iter().zip(&splits).filter(|((g, _), _)| *g == genre).map(|(_, s)| *s).collect();
                assert!(sides.contains(&Split::Train) && sides.contains(&Split::Validation), "seed {seed} g{genre}");
            }
        }
    }

    #[test]
    fn single_tracks_train_and_a_zero_fraction_holds_nothing_out() {
        let paths = vec![(0, "a/x.wav".to_string()), (1, "b/x.wav".to_string()), (1, "b/y.wav".to_string())];
        let splits = assign_splits(&candidates(&paths), 0.99, 3);
        assert_eq!(splits[0], Split::Train);
        assert_eq!(splits[1..].iter().filter(|s| **s == Split::Train).count(), 1);
        assert!(assign_splits(&candidates(&paths), 0.0, 3).iter().all(|s| *s == Split::Train));
    }

    #[test]
    fn deterministic_and_close_to_the_fraction_on_large_genres() {
        let paths: Vec<(usize, String)> = (0..2000).map(|i| (0, format!("g/track_{i}.flac"))).collect();
        let a = assign_splits(&candidates(&paths), 0.2, 7);
        assert_eq!(a, assign_splits(&candidates(&paths), 0.2, 7));
        assert_ne!(a, assign_splits(&candidates(&paths), 0.2, 8));
        let held_out = a.iter().filter(|s| **s == Split::Validation).count();
        assert!((320..480).contains(&held_out), "{held_out}");
    }
}
