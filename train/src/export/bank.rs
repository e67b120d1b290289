//! The bundle's latent bank (`latent_bank.bin`, see `melfuse_proto::latent_bank`): the encoder's
//! `mu` of training segments, per genre, at most `max_per_genre` of each, plus the posterior's
//! scale per latent dimension for `temperature`.
//!
//! Codes are kept as runs of consecutive segments of one track, so that the service can walk
//! along a real track for clips longer than a segment (`melfuse_proto::latent_bank`). When a genre
//! has more segments than the bound, whole tracks are kept, evenly spaced over the genre's tracks
//! in cache order, so that every part of the collection contributes rather than the first few
//! tracks (the bank's diversity is the generated clips' diversity); a track longer than the
//! whole bound contributes its first `max_per_genre` segments.
//!
//! Tried and measured against this rule: an equal stretch from the middle of *every* track (the
//! longest share that fits the bound, at least a 15 s walk), since the demo's bank held `cn` codes
//! from 2 tracks and `edm` from 6 of 63. Judged on the demo (same model, same judge command as
//! `models/demo/README.md`), it was worse: diversity 0.61 → 0.43 overall (edm 0.45 → 0.25, rock
//! 0.77 → 0.27), distance 14.1× → 16.0×, pulse/flux/harmonic unchanged. The middles of tracks are
//! their most alike parts; whole tracks bring their intros, breaks and endings, which is where the
//! generated clips' variety came from. Several short stretches spread over each track are the next
//! thing to try.

use melfuse_audio::segment::evenly_spaced;

use crate::eval::{tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

/// Default bound on codes per genre: 512 × Z = 256 × 2 bytes is 256 KiB per genre at the paper
/// size, well under the design's 8 MB for a dozen genres.
pub const DEFAULT_BANK_PER_GENRE: usize = 512;

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
    /// Encodes the kept training segments of every genre (at most `max_per_genre` each) and returns
    /// their `mu` codes and the posterior scale.
    pub fn latent_bank(&self, max_per_genre: usize) -> Result<BankCodes, EvalError> {
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
            let mut lengths = Vec::new();
            let mut budget = max_per_genre;
            // As many runs as the bound holds at the average run length, evenly spaced, then the
            // others in order while room is left.
            let total: usize = genre_runs.iter().map(Vec::len).sum();
            let fitting = (budget * genre_runs.len()).div_ceil(total.max(1)).max(1);
            let spread = evenly_spaced(genre_runs.len(), fitting);
            let rest = (0..genre_runs.len()).filter(|r| !spread.contains(r));
            for r in spread.iter().copied().chain(rest) {
                if budget == 0 {
                    break;
                }
                let run = &genre_runs[r];
                let take = run.len().min(budget);
                kept.extend_from_slice(&run[..take]);
                lengths.push(take);
                budget -= take;
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
