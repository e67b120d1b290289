//! The bundle's latent bank (`latent_bank.bin`, see `melfuse_proto::latent_bank`): the encoder's
//! `mu` of training segments, per genre, at most `max_per_genre` of each, plus the posterior's
//! scale per latent dimension for `temperature`.
//!
//! Codes are kept as runs of consecutive segments of one track, so that the service can walk
//! along a real track for clips longer than a segment (`melfuse_proto::latent_bank`).
//!
//! # Which segments: an equal share of every track
//!
//! When a genre has more segments than the bound, every track gets the same share — the longest
//! stretch `c` such that keeping `min(length, c)` segments of each track fits the bound, taken
//! from the middle of the track — but never less than `min_run` segments (what a default-length
//! clip walks through), in which case as many tracks as fit are kept, evenly spaced in cache
//! order. The bank's diversity is the generated clips' diversity, and the walk's start is drawn
//! uniformly over codes, so each kept track is as likely as any other. Keeping whole tracks
//! instead (the first rule) let a few long tracks fill the bound: the first demo bank on recorded
//! music held `cn` codes from 2 of its 27 training tracks and `edm` from 6 of 63.

use melfuse_audio::segment::evenly_spaced;

use crate::eval::{tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

/// Default bound on codes per genre: 512 × Z = 256 × 2 bytes is 256 KiB per genre at the paper
/// size, well under the design's 8 MB for a dozen genres.
pub const DEFAULT_BANK_PER_GENRE: usize = 512;

/// Default length of the shortest stretch of one track the bank keeps, in seconds of audio: the
/// service's default clip length, so a default clip walks along one track.
pub const DEFAULT_BANK_RUN_SECONDS: f32 = 15.0;

/// Segments a walk of `seconds` of audio passes through, for segments `segment_seconds` long
/// starting every `hop_seconds` (at least one).
pub fn segments_for_seconds(seconds: f32, segment_seconds: f32, hop_seconds: f32) -> usize {
    if !(seconds > segment_seconds && hop_seconds > 0.0) {
        return 1;
    }
    ((seconds - segment_seconds) / hop_seconds).ceil() as usize + 1
}

/// Which consecutive segments of each run (by index into `runs`, a range within the run) the bank
/// keeps, at most `budget` in all: the rule of the module docs. Runs come back in cache order.
pub fn select_windows(runs: &[usize], budget: usize, min_run: usize) -> Vec<(usize, std::ops::Range<usize>)> {
    if budget == 0 {
        return Vec::new();
    }
    let total: usize = runs.iter().sum();
    let share = |cap: usize| runs.iter().map(|&length| length.min(cap)).sum::<usize>();
    let longest = runs.iter().copied().max().unwrap_or(0);
    // The largest per-run cap that fits the budget (share is monotone in the cap).
    let cap = if total <= budget {
        longest
    } else {
        let (mut low, mut high) = (0, longest);
        while low < high {
            let middle = (low + high).div_ceil(2);
            if share(middle) <= budget {
                low = middle
            } else {
                high = middle - 1
            }
        }
        low
    };
    let cap = cap.max(min_run.max(1)).min(budget);
    let window = |length: usize| {
        let take = length.min(cap);
        let start = (length - take) / 2;
        start..start + take
    };
    // Evenly spaced runs first (as many as fit at the cap), then the others while room is left.
    let fitting = if share(cap) <= budget { runs.len() } else { (budget / cap.max(1)).max(1) };
    let spread = evenly_spaced(runs.len(), fitting.min(runs.len()));
    let rest = (0..runs.len()).filter(|r| !spread.contains(r));
    let mut left = budget;
    let mut kept = Vec::new();
    for r in spread.iter().copied().chain(rest) {
        if left == 0 {
            break;
        }
        let mut range = window(runs[r]);
        range.end = range.end.min(range.start + left);
        left -= range.len();
        kept.push((r, range));
    }
    kept.sort_by_key(|(r, _)| *r);
    kept
}

/// The bank's content before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct BankCodes {
    /// `[N][Z]` row-major, genre by genre in the cache's genre order.
    pub codes: Vec<f32>,
    /// Per genre, the lengths of its runs (consecutive segments of one track) in stored order.
    pub runs: Vec<Vec<usize>>,
    /// RMS over all encoded training segments of `exp(logvar / 2)`, per latent dimension.
    pub sigma: Vec<f32>,
}

impl Evaluator<'_> {
    /// Encodes the kept training segments of every genre (at most `max_per_genre` each, an equal
    /// share of each track and at least `min_run` consecutive segments of a kept track, see the
    /// module docs) and returns their `mu` codes and the posterior scale.
    pub fn latent_bank(&self, max_per_genre: usize, min_run: usize) -> Result<BankCodes, EvalError> {
        let segments = self.cache.segments(Split::Train);
        let n_genres = self.cache.genres().len();
        let latent_dim = self.model.latent_dim();
        let mut kept = Vec::new();
        let mut runs = Vec::with_capacity(n_genres);
        for genre in 0..n_genres {
            // Runs of consecutive segments (same track, next index) of this genre, in cache order.
            let mut genre_runs: Vec<Vec<usize>> = Vec::new();
            for (i, segment) in segments.iter().enumerate().filter(|(_, s)| s.genre == genre) {
                let continues = genre_runs.last().and_then(|run| run.last()).is_some_and(|&previous| {
                    segments[previous].track == segment.track && segments[previous].index + 1 == segment.index
                });
                match genre_runs.last_mut() {
                    Some(run) if continues => run.push(i),
                    _ => genre_runs.push(vec![i]),
                }
            }
            let lengths_of_runs: Vec<usize> = genre_runs.iter().map(Vec::len).collect();
            let mut lengths = Vec::new();
            for (r, window) in select_windows(&lengths_of_runs, max_per_genre, min_run) {
                kept.extend_from_slice(&genre_runs[r][window.clone()]);
                lengths.push(window.len());
            }
            runs.push(lengths);
        }
        let mut codes = Vec::with_capacity(kept.len() * latent_dim);
        let mut variance_sum = vec![0.0f64; latent_dim];
        self.encode_batches(Split::Train, &kept, |batch| {
            codes.extend(tensor_values(batch.mu)?);
            for row in tensor_values(batch.logvar)?.chunks_exact(latent_dim) {
                for (sum, &logvar) in variance_sum.iter_mut().zip(row) {
                    *sum += f64::from(logvar).exp();
                }
            }
            Ok(())
        })?;
        let rows = kept.len().max(1) as f64;
        let sigma = variance_sum.iter().map(|&s| (s / rows).sqrt() as f32).collect();
        Ok(BankCodes { codes, runs, sigma })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(runs: &[usize], budget: usize, min_run: usize) -> Vec<(usize, usize, usize)> {
        select_windows(runs, budget, min_run).into_iter().map(|(r, w)| (r, w.start, w.end)).collect()
    }

    #[test]
    fn everything_is_kept_when_it_fits() {
        assert_eq!(kept(&[3, 5, 2], 10, 7), vec![(0, 0, 3), (1, 0, 5), (2, 0, 2)]);
    }

    #[test]
    fn long_tracks_give_up_their_excess_to_every_other_track() {
        // Two long tracks and four short ones, a budget of 40: the short ones whole (3 each), the
        // long ones 14 each from their middles, rather than the first long track filling the bank.
        let picked = kept(&[100, 3, 3, 80, 3, 3], 40, 7);
        assert_eq!(picked, vec![(0, 43, 57), (1, 0, 3), (2, 0, 3), (3, 33, 47), (4, 0, 3), (5, 0, 3)]);
        let total: usize = picked.iter().map(|(_, start, end)| end - start).sum();
        assert_eq!(total, 40);
    }

    #[test]
    fn too_many_tracks_keep_evenly_spaced_ones_at_the_shortest_walk() {
        // 20 tracks of 30 segments, room for 50 at 7 each: 7 tracks spread over the list, then the
        // remainder (1 segment) from the next track in order.
        let picked = kept(&[30; 20], 50, 7);
        let total: usize = picked.iter().map(|(_, start, end)| end - start).sum();
        assert_eq!(total, 50);
        let full: Vec<usize> = picked.iter().filter(|(_, s, e)| e - s == 7).map(|(r, _, _)| *r).collect();
        assert_eq!(full, evenly_spaced(20, 7));
        assert!(picked.iter().all(|(_, start, end)| *start == (30 - (end - start)) / 2 || end - start < 7));
    }

    #[test]
    fn a_budget_below_one_walk_keeps_one_stretch() {
        assert_eq!(kept(&[30, 30], 4, 7), vec![(0, 13, 17)]);
        assert!(kept(&[30], 0, 7).is_empty());
    }

    #[test]
    fn segments_for_a_walk() {
        // The demo's 4 s segments every 2 s: a 15 s clip passes through 7 of them.
        assert_eq!(segments_for_seconds(15.0, 4.0, 2.0), 7);
        assert_eq!(segments_for_seconds(4.0, 4.0, 2.0), 1);
        assert_eq!(segments_for_seconds(3.0, 4.0, 2.0), 1);
        assert_eq!(segments_for_seconds(15.0, 15.0, 10.0), 1);
        assert_eq!(segments_for_seconds(25.0, 15.0, 10.0), 2);
    }
}
