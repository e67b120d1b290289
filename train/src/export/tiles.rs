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
//! A stretch is `stretch` tiles (the export's `--bank-stretch`; 8 tiles of 3.7 s at the demo's
//! signal, so a 15 s walk of 5 tiles has 4 starting places in each), selected by
//! [`super::bank::select_runs`] over the segments that cover it, so the stretches spread over
//! every track as the segment bank's do.
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

use melfuse_proto::manifest::latent_map_columns;

use super::bank::{genre_runs, per_genre_bound, select_runs, BankCodes};
use crate::eval::{tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

impl Evaluator<'_> {
    /// Encodes stretches of training tracks as contiguous maps cut into tiles of `cells` latent
    /// columns (one model segment each): at most `max_per_genre` tiles per genre (lowered by
    /// `max_bytes` as for the segment bank), in stretches of `stretch` tiles (0: whole tracks).
    pub fn latent_bank_tiles(
        &self,
        max_per_genre: usize,
        stretch: usize,
        max_bytes: u64,
        cells: usize,
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
        // Segments a stretch of `stretch` tiles needs: the last one must start within a segment's
        // reach of the stretch's end (plus one for rounding of the start times).
        let segments_per_stretch = match stretch {
            0 => 0,
            n => (((n - 1) * frames) as f64 / hop).ceil() as usize + 2,
        };
        let budget = match stretch {
            0 => bound,
            n => (bound / n).max(1) * segments_per_stretch,
        };
        let rows = latent_dim / cells;
        let mut codes = Vec::new();
        let mut runs = Vec::with_capacity(n_genres);
        let mut variance_sum = vec![0.0f64; latent_dim];
        let mut tiles_kept = 0usize;
        for genre in 0..n_genres {
            let mut lengths = Vec::new();
            let mut genre_tiles = 0;
            for run in select_runs(&genre_runs(segments, genre), budget, segments_per_stretch) {
                // Every whole tile a kept run covers: a stretch's segments cover about `stretch`
                // tiles, and a genre small enough to keep whole tracks keeps them whole.
                let room = bound.saturating_sub(genre_tiles);
                if room == 0 {
                    break;
                }
                let (mel, tiles) = self.contiguous_mel(&run, frames_per_second, room)?;
                if tiles == 0 {
                    continue;
                }
                let width = tiles * frames;
                let input = Tensor::from_data(TensorData::new(mel, [1, 1, self.cache.n_mels(), width]), self.device);
                let (mu, logvar) = self.model.encode(input);
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

#[cfg(test)]
mod tests {
    use melfuse_proto::manifest::{join_latent_maps, latent_map_columns};

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
