//! The latent bank as *tiles* (`latent_bank.hop_frames` = one model segment), for a decoder with a
//! dynamic time axis (a latent map; `melfuse_models::decoder_graph`).
//!
//! # Why tiles
//!
//! A bank of overlapping segments (2 s apart at the demo's signal, 21.5 latent columns) cannot be
//! joined in latent space: every join would shift the beat by up to half a column. So the service
//! decoded one segment per code and cross-faded them, and every clip had a seam every 2 s. Here
//! each kept stretch of a track is encoded *once*, as one contiguous mel (the cached segments of
//! the stretch laid end to end at their own start times), and the encoder's map is cut into
//! consecutive tiles of one model segment each. Joining a walk's tiles
//! (`melfuse_proto::manifest::join_latent_maps`) gives back the stretch's own map, which the
//! decoder draws in one pass: a clip of any length with no seam, and every latent column
//! encoded with its neighbours on both sides (the encoder sees across the tiles' borders).
//!
//! A stretch is about `stretch` tiles (the export's `--bank-stretch`; 8 asks for 16 segments,
//! which cover 9 tiles of 3.7 s at the demo's signal, so a 15 s walk of 5 tiles has 5 starting
//! places in each), and a genre gets as many stretches as its room holds whole
//! ([`stretch_budget`]), spread over every track as the segment bank's are
//! ([`super::bank::select_runs`]) or, with `--bank-choice faithful`, each track's share taken
//! from the stretches the decoder renders closest to the music ([`super::faithful`]). Given a
//! `melfuse_audio::postfilter::PostfilterStats`, each kept stretch is also decoded with its genre,
//! as a walk over it is, and the music and its rendering go into the postfilter's sums.
//!
//! Measured on the demo's weights (`models/demo/README.md`, "one pass over tiles" and "where a
//! walk starts"): judged with 96 clips per genre, tiles and segments read alike (accuracy 0.86 /
//! 0.87, harmonic 0.90 / 0.88, edm's 0.83 / 0.82), the segments better on diversity (0.69 /
//! 0.76) and distance (1.8× / 1.6×). The gains first measured for tiles with 32 clips (edm's
//! harmonic lines 0.79 → 0.95) were which stretches those seeds met: a genre's 32-clip figure
//! moves by up to 0.14 with the draw alone. Tiles stay the default for what they add: a clip of
//! any length decoded in one pass without a seam, and a morph whose tiles each hear their own
//! mixture (`melfuse_serve::tile_windows`). The same tiles decoded apart, or each encoded alone,
//! judged as the one pass did.

use burn::prelude::*;
use melfuse_audio::postfilter::PostfilterStats;
use ndarray::ArrayView2;

use melfuse_proto::manifest::latent_map_columns;

use super::bank::{genre_runs, per_genre_bound, select_runs, share_out, track_shares, BankCodes};
use super::faithful::{candidate_starts, pick_faithful, relative_error, BankChoice};
use crate::eval::{one_hot, tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

impl Evaluator<'_> {
    /// Encodes stretches of training tracks as contiguous maps cut into tiles of `cells` latent
    /// columns (one model segment each): at most `max_per_genre` tiles per genre (lowered by
    /// `max_bytes` as for the segment bank), in stretches of `stretch` tiles (0: whole tracks),
    /// placed in each track as `choice` says.
    pub fn latent_bank_tiles(
        &self,
        max_per_genre: usize,
        stretch: usize,
        max_bytes: u64,
        cells: usize,
        choice: BankChoice,
        mut postfilter: Option<&mut PostfilterStats>,
    ) -> Result<BankCodes, EvalError> {
        let segments = self.cache.segments(Split::Train);
        let n_genres = self.cache.genres().len();
        let latent_dim = self.model.latent_dim();
        let frames = self.cache.frames();
        let signal = self.cache.signal();
        let frames_per_second = f64::from(signal.sample_rate) / signal.hop_length as f64;
        let hop = (f64::from(signal.segment_seconds) - f64::from(signal.overlap_seconds)) * frames_per_second;
        if cells == 0
            || !latent_dim.is_multiple_of(cells)
            || !frames.is_multiple_of(cells)
            || hop.is_nan()
            || hop <= 0.0
        {
            return Err(EvalError::InvalidSetting {
                name: "bank-stretch",
                detail: format!(
                    "tiles need a latent map whose {cells} columns divide Z = {latent_dim} and {frames} frames, \
                     and segments that step forward"
                ),
            });
        }
        let per_genre: Vec<usize> =
            (0..n_genres).map(|genre| segments.iter().filter(|s| s.genre == genre).count()).collect();
        let bound = per_genre_bound(&per_genre, latent_dim, max_per_genre, max_bytes).max(1);
        let (segments_per_stretch, budget) = stretch_budget(stretch, bound, frames, hop);
        let rows = latent_dim / cells;
        let mut codes = Vec::new();
        let mut runs = Vec::with_capacity(n_genres);
        let mut variance_sum = vec![0.0f64; latent_dim];
        let mut tiles_kept = 0usize;
        for genre in 0..n_genres {
            let mut lengths = Vec::new();
            let mut genre_tiles = 0;
            let tracks = genre_runs(segments, genre);
            let chosen = match choice {
                BankChoice::Spread => select_runs(&tracks, budget, segments_per_stretch),
                BankChoice::Faithful => {
                    self.faithful_runs(&tracks, budget, segments_per_stretch, genre, frames_per_second)?
                }
            };
            for run in chosen {
                // Every whole tile a kept run covers (the tiles `stretch_budget` counted for a
                // stretch; a genre small enough to keep whole tracks keeps them whole), never
                // more than the genre's room.
                let room = bound.saturating_sub(genre_tiles);
                if room == 0 {
                    break;
                }
                let (mel, tiles) = self.contiguous_mel(&run, frames_per_second, room)?;
                if tiles == 0 {
                    continue;
                }
                let width = tiles * frames;
                let n_mels = self.cache.n_mels();
                let input = Tensor::from_data(TensorData::new(mel.clone(), [1, 1, n_mels, width]), self.device);
                let (mu, logvar) = self.model.encode(input);
                if let Some(stats) = postfilter.as_deref_mut() {
                    // The stretch as a `blend=genre:1` walk over it renders it: the whole map, one pass.
                    let rendered = self.render(mu.clone(), genre)?;
                    let shape_error = |e: ndarray::ShapeError| EvalError::InvalidSetting {
                        name: "postfilter",
                        detail: format!("the rendering of a {tiles}-tile stretch: {e}"),
                    };
                    let music = ArrayView2::from_shape((n_mels, width), mel.as_slice()).map_err(shape_error)?;
                    let rendered = ArrayView2::from_shape((n_mels, width), rendered.as_slice()).map_err(shape_error)?;
                    stats.add(genre, music, rendered);
                }
                let (mu, logvar) = (tensor_values(mu)?, tensor_values(logvar)?);
                let columns = mu.len() / rows;
                if columns != tiles * cells {
                    return Err(EvalError::InvalidSetting {
                        name: "bank-stretch",
                        detail: format!("the encoder gave {columns} latent columns for {tiles} tiles of {cells}"),
                    });
                }
                for tile in 0..tiles {
                    codes.extend(latent_map_columns(&mu, columns, tile * cells, cells));
                    let spread = latent_map_columns(&logvar, columns, tile * cells, cells);
                    for (sum, value) in variance_sum.iter_mut().zip(spread) {
                        *sum += f64::from(value).exp();
                    }
                }
                lengths.push(tiles);
                genre_tiles += tiles;
            }
            tiles_kept += genre_tiles;
            runs.push(lengths);
        }
        let count = tiles_kept.max(1) as f64;
        let sigma = variance_sum.iter().map(|&s| (s / count).sqrt() as f32).collect();
        Ok(BankCodes { codes, runs, sigma })
    }

    /// The stretches of `segments_per_stretch` segments a faithful choice keeps of one genre's
    /// `tracks` within `budget` segments (`export::faithful`): each track's share of the even
    /// placement, taken from its stretches with the lowest rendering error.
    fn faithful_runs(
        &self,
        tracks: &[Vec<usize>],
        budget: usize,
        segments_per_stretch: usize,
        genre: usize,
        frames_per_second: f64,
    ) -> Result<Vec<Vec<usize>>, EvalError> {
        let Some(shares) = track_shares(tracks, budget, segments_per_stretch) else {
            return Ok(select_runs(tracks, budget, segments_per_stretch));
        };
        let (mut scored_all, mut scored_kept) = (Vec::new(), Vec::new());
        let best_rendered = |_: usize, track: &[usize], count: usize| {
            let mut scored = Vec::new();
            for start in candidate_starts(track.len(), segments_per_stretch) {
                let stretch = &track[start..start + segments_per_stretch];
                scored.push((start, self.rendering_error(stretch, genre, frames_per_second)?));
            }
            scored_all.extend(scored.iter().map(|&(_, error)| error));
            let picks = pick_faithful(&scored, count, segments_per_stretch);
            scored_kept.extend(picks.iter().map(|&pick| scored[pick].1));
            Ok::<_, EvalError>(picks.into_iter().map(|pick| scored[pick].0).collect())
        };
        let kept = share_out(tracks, &shares, segments_per_stretch, best_rendered)?;
        let mean = |errors: &[f64]| errors.iter().sum::<f64>() / errors.len().max(1) as f64;
        tracing::info!(
            "latent bank, {}: kept {} of {} scored stretches, relative rendering error {:.3} (all {:.3})",
            self.cache.genres()[genre],
            scored_kept.len(),
            scored_all.len(),
            mean(&scored_kept),
            mean(&scored_all)
        );
        Ok(kept)
    }

    /// [`relative_error`] of the decoder's rendering of the segments `run` laid end to end
    /// (whole tiles only), encoded in one pass and decoded with `genre`'s one-hot, as a
    /// `blend=genre:1` clip walking it would be.
    fn rendering_error(&self, run: &[usize], genre: usize, frames_per_second: f64) -> Result<f64, EvalError> {
        let (mel, tiles) = self.contiguous_mel(run, frames_per_second, usize::MAX)?;
        if tiles == 0 {
            return Ok(f64::INFINITY);
        }
        let n_mels = self.cache.n_mels();
        let width = tiles * self.cache.frames();
        let input = Tensor::from_data(TensorData::new(mel.clone(), [1, 1, n_mels, width]), self.device);
        let (mu, _) = self.model.encode(input);
        Ok(relative_error(&mel, &self.render(mu, genre)?, n_mels))
    }

    /// The decoder's drawing of the latent map `mu` with `genre`'s one-hot, as a `blend=genre:1`
    /// walk over it is drawn: `[n_mels][frames]` row-major, normalised.
    fn render(&self, mu: Tensor<2>, genre: usize) -> Result<Vec<f32>, EvalError> {
        tensor_values(self.model.decode(mu, one_hot(&[genre], self.cache.genres().len(), self.device)))
    }

    /// The normalised mel of the consecutive segments `run` laid end to end at their start times,
    /// `[n_mels][tiles · frames]` row-major, and its whole tiles (at most `max_tiles`): each frame
    /// is taken from the latest segment that starts at or before it.
    fn contiguous_mel(
        &self,
        run: &[usize],
        frames_per_second: f64,
        max_tiles: usize,
    ) -> Result<(Vec<f32>, usize), EvalError> {
        let segments = self.cache.segments(Split::Train);
        let (Some(&first), Some(&last)) = (run.first(), run.last()) else { return Ok((Vec::new(), 0)) };
        let frames = self.cache.frames();
        let n_mels = self.cache.n_mels();
        let offset_of = |i: usize| {
            ((segments[i].start_seconds - segments[first].start_seconds) * frames_per_second).round() as usize
        };
        let covered = offset_of(last) + frames;
        let tiles = (covered / frames).min(max_tiles);
        let width = tiles * frames;
        let mut mel = vec![0.0f32; n_mels * width];
        let mut next = 0; // position in `run` of the segment that supplies the current frame
        let mut values = self.clip(Split::Train, first)?;
        for frame in 0..width {
            while next + 1 < run.len() && offset_of(run[next + 1]) <= frame {
                next += 1;
                values = self.clip(Split::Train, run[next])?;
            }
            let source = frame - offset_of(run[next]);
            for band in 0..n_mels {
                mel[band * width + frame] = values[band * frames + source.min(frames - 1)];
            }
        }
        Ok((mel, tiles))
    }
}

/// The segments one stretch of about `stretch` tiles takes, and the segments a genre may keep so
/// that its stretches' whole tiles stay within `bound` tiles, for segments of `frames` frames
/// `hop` frames apart. `stretch` 0 (whole tracks): `(0, bound)`.
///
/// A stretch's last segment must start within a segment's reach of its end, plus one for the
/// rounding of the start times; its segments laid end to end then cover `⌊((n − 1)·hop + frames)
/// / frames⌋` whole tiles — 9 for `stretch` 8 at the demo's signal — and the genre gets `bound`
/// over that many stretches. (Counting `stretch` tiles per stretch gave the demo's genres 56
/// stretches of 9 tiles for 448 tiles of room: the last 6 in cache order, the last tracks' of
/// the genre, were cut.)
fn stretch_budget(stretch: usize, bound: usize, frames: usize, hop: f64) -> (usize, usize) {
    if stretch == 0 {
        return (0, bound);
    }
    let segments = (((stretch - 1) * frames) as f64 / hop).ceil() as usize + 2;
    let covered = ((segments - 1) as f64 * hop).round() as usize + frames;
    let tiles = (covered / frames).max(1);
    (segments, (bound / tiles).max(1) * segments)
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use melfuse_models::{LatentHead, VaeConfig};
    use melfuse_proto::manifest::{join_latent_maps, latent_map_columns};

    use crate::eval::Evaluator;
    use crate::export::bank::{genre_runs, track_shares, TrackShare};
    use crate::export::faithful::candidate_starts;
    use crate::prepare::cache::Cache;
    use crate::prepare::split::Split;
    use crate::prepare::tiny::two_second_signal;
    use crate::prepare::{self, PrepareConfig};
    use crate::synth::{write_corpus, Genre, SynthCorpusConfig};

    /// A faithful choice on a real (tiny, untrained) map model: every track that has a choice
    /// keeps its share, and among the stretches it keeps is the one the decoder renders best.
    #[test]
    fn a_faithful_choice_keeps_each_track_s_share_and_its_best_rendered_stretch() {
        let root = tempfile::tempdir().expect("tempdir");
        let corpus = root.path().join("corpus");
        let synth = SynthCorpusConfig {
            clips_per_genre: 3,
            seconds: 12.0,
            sample_rate: 22_050,
            genres: vec![Genre::Cn, Genre::Edm],
            ..Default::default()
        };
        write_corpus(&corpus, &synth, false).expect("synthetic corpus");
        let config = PrepareConfig { signal: two_second_signal(32), validation_fraction: 0.3, ..Default::default() };
        prepare::run(&corpus, &root.path().join("cache"), &config, false).expect("prepare");
        let cache = Cache::open(&root.path().join("cache")).expect("open cache");
        let device = Device::flex();
        // A ÷8 latent map of 4 channels, as the demo's (8 channels) but smaller.
        let mut vae = VaeConfig::tiny(2)
            .with_latent_head(LatentHead::Map)
            .with_latent_downsampling(8)
            .with_decoder_widths(vec![16, 8, 8])
            .with_latent_dim(4 * (64 / 8) * (cache.frames() / 8));
        vae.frames = cache.frames();
        let model = vae.init(&device).expect("valid config");
        let evaluator = Evaluator::new(&model, &cache, &device);
        let signal = cache.signal();
        let frames_per_second = f64::from(signal.sample_rate) / signal.hop_length as f64;
        let segments = cache.segments(Split::Train);
        let (stretch, budget) = (3, 6);
        let mut choices = 0;
        for genre in 0..2 {
            let tracks = genre_runs(segments, genre);
            let shares = track_shares(&tracks, budget, stretch).expect("each genre is over two stretches");
            let kept = evaluator.faithful_runs(&tracks, budget, stretch, genre, frames_per_second).expect("choose");
            for (track, share) in tracks.iter().zip(shares) {
                let TrackShare::Stretches(count) = share else { continue };
                let starts = candidate_starts(track.len(), stretch);
                choices += 1;
                let kept_starts: Vec<usize> = kept
                    .iter()
                    .filter_map(|run| track.iter().position(|&s| s == run[0]))
                    .inspect(|&start| assert!(starts.contains(&start), "{start} is not a candidate: {starts:?}"))
                    .collect();
                assert_eq!(kept_starts.len(), count, "the track keeps its share");
                let errors: Vec<f64> = starts
                    .iter()
                    .map(|&start| {
                        let run = &track[start..start + stretch];
                        evaluator.rendering_error(run, genre, frames_per_second).expect("render")
                    })
                    .collect();
                assert!(errors.iter().all(|e| e.is_finite() && *e > 0.0), "{errors:?}");
                let best = errors.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| starts[i]);
                assert!(best.is_some_and(|b| kept_starts.contains(&b)), "best {best:?} not in {kept_starts:?}");
            }
        }
        assert!(choices > 0, "some track had stretches to choose from");
    }

    #[test]
    fn a_genre_s_stretches_fit_its_tiles() {
        // The demo's signal: 320-frame segments 2 s (172.27 frames) apart, 448 tiles of room.
        let hop = 2.0 * 22_050.0 / 256.0;
        let (segments, budget) = super::stretch_budget(8, 448, 320, hop);
        assert_eq!(segments, 16);
        // 16 segments cover 15 · 172.27 + 320 = 2 904 frames: 9 tiles, so 49 stretches fit.
        assert_eq!(budget, 49 * 16);
        assert_eq!(super::stretch_budget(0, 448, 320, hop), (0, 448));
        // At least one stretch even when the bound is under one.
        assert_eq!(super::stretch_budget(8, 3, 320, hop).1, 16);
    }

    #[test]
    fn joined_tiles_are_the_stretch_map_they_were_cut_from() {
        // A map of 2 rows × 6 columns cut into tiles of 3 columns, as `latent_bank_tiles` cuts it.
        let map: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let (columns, cells) = (6, 3);
        let tiles: Vec<Vec<f32>> =
            (0..columns / cells).map(|tile| latent_map_columns(&map, columns, tile * cells, cells)).collect();
        assert_eq!(tiles[0], [0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
        let views: Vec<&[f32]> = tiles.iter().map(Vec::as_slice).collect();
        assert_eq!(join_latent_maps(&views, cells), map);
    }
}
