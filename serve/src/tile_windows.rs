//! Morphs over a tiled bank, each tile conditioned on its own mixture.
//!
//! A tiled bank's walk decodes in one pass ([`crate::generator`]), but the decoder's genre input
//! is one mixture per row: a morph drawn that way moves its latent from tile to tile while the
//! decoder hears the clip's mean mixture throughout, so a `cn → edm` morph's first window is half
//! edm-conditioned. Here each tile of such a walk gets a decoder row of its own: a window of the
//! joined map, the tile plus context columns on either side, conditioned on that tile's mixture.
//! The rows' tiles (each with the fade after it) are then joined with the walk's short fade.
//!
//! # Why windows are exact
//!
//! A decoded column depends on at most [`DECODER_REACH_COLUMNS`] columns either side
//! (checked on the trainer's decoders in `melfuse-models`). A window keeps every frame it
//! contributes at least that far from its own edge — or its edge is the map's own, with the same
//! zero padding — so a row decodes its tile exactly as a one-pass decode of the whole map with
//! that tile's mixture would. The rows are of one width, so the batcher decodes them in one call:
//! for the demo's tiles of 40 columns, windows of 40 + 2 × 5 columns cost 1.25× the one pass.
//!
//! Constant blends keep the single row: every tile's mixture is the same, and the one-pass decode
//! is already each tile's.

use melfuse_proto::manifest::{latent_map_columns, DECODER_REACH_COLUMNS};

use crate::segments::SegmentPlan;

/// Which columns of a joined map each tile's decoder row reads, and how its frames are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileWindows {
    /// Latent columns per tile.
    cells: usize,
    /// Mel frames per latent column.
    frames_per_column: usize,
    /// Frames each tile keeps past its end, for the fade into the next.
    fade_frames: usize,
    /// Columns in every row's window.
    window: usize,
    /// First column of each tile's window, one per tile (row) of the walk.
    starts: Vec<usize>,
}

impl TileWindows {
    /// Windows over a map of `tiles × cells` columns, `frames_per_column` mel frames each, whose
    /// tiles hand over to the next across `fade_frames` (at most one tile).
    pub fn new(tiles: usize, cells: usize, frames_per_column: usize, fade_frames: usize) -> Self {
        let (tiles, cells, frames_per_column) = (tiles.max(1), cells.max(1), frames_per_column.max(1));
        let fade_frames = fade_frames.min(cells * frames_per_column);
        let total = tiles * cells;
        let context = DECODER_REACH_COLUMNS + fade_frames.div_ceil(frames_per_column);
        let window = (cells + 2 * context).min(total);
        let starts = (0..tiles).map(|tile| (tile * cells).saturating_sub(context).min(total - window)).collect();
        Self { cells, frames_per_column, fade_frames, window, starts }
    }

    /// Decoder rows: one per tile.
    pub fn rows(&self) -> usize {
        self.starts.len()
    }

    /// Latent columns of every row.
    pub fn window_columns(&self) -> usize {
        self.window
    }

    /// Each row's window of `joined` (channel-major `[values][tiles · cells]`, as
    /// `melfuse_proto::manifest::join_latent_maps` writes it): `[rows, values · window]`, each row
    /// channel-major `[values][window]` as the decoder reads it.
    pub fn latents(&self, joined: &[f32]) -> Vec<f32> {
        let total = self.rows() * self.cells;
        self.starts.iter().flat_map(|&start| latent_map_columns(joined, total, start, self.window)).collect()
    }

    /// The plan that joins the kept pieces: one per tile, a tile long plus the fade, a tile apart,
    /// each handing over to the next across the fade just after their border.
    pub fn plan(&self, total_frames: usize) -> SegmentPlan {
        let tile = self.cells * self.frames_per_column;
        SegmentPlan::with_hop(total_frames, tile + self.fade_frames, tile, self.fade_frames)
    }

    /// Cuts each decoded row (`[n_mels, window × frames_per_column]`, row-major, rows in order) to
    /// its tile and the fade after it: `[rows, n_mels, tile + fade]`, the pieces [`Self::plan`]
    /// joins. Frames past the map's end (only the last tile's fade, which the plan never reaches)
    /// repeat the row's last frame.
    pub fn keep(&self, decoded: &[f32], n_mels: usize) -> Vec<f32> {
        let row_frames = self.window * self.frames_per_column;
        let tile = self.cells * self.frames_per_column;
        let kept = tile + self.fade_frames;
        let mut pieces = Vec::with_capacity(self.rows() * n_mels * kept);
        for (index, (row, &start)) in decoded.chunks_exact(n_mels * row_frames).zip(&self.starts).enumerate() {
            let offset = (index * self.cells - start) * self.frames_per_column;
            for band in row.chunks_exact(row_frames) {
                for frame in offset..offset + kept {
                    pieces.push(band[frame.min(row_frames - 1)]);
                }
            }
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_the_reach_and_the_fade_inside_the_map() {
        // The demo's tiles: 40 columns of 8 frames, a 22-frame fade → 2 + 3 columns of context.
        let windows = TileWindows::new(5, 40, 8, 22);
        assert_eq!((windows.rows(), windows.window_columns()), (5, 50));
        assert_eq!(windows.starts, vec![0, 35, 75, 115, 150]);
        for (tile, &start) in windows.starts.iter().enumerate() {
            let (from, to) = (tile * 40, (tile + 1) * 40 + 3);
            let left_ok = from == 0 || from >= start + DECODER_REACH_COLUMNS;
            let right_ok = to.min(200) == 200 || to + DECODER_REACH_COLUMNS <= start + 50;
            assert!(left_ok && right_ok, "tile {tile}: window {start}..{}", start + 50);
        }
        // A map narrower than a window is read whole by every row.
        let short = TileWindows::new(2, 4, 8, 22);
        assert_eq!((short.window_columns(), short.starts.clone()), (8, vec![0, 0]));
    }

    #[test]
    fn rows_read_their_windows_and_keep_their_tiles() {
        // Two values per column, three tiles of four columns, one frame per column, no fade.
        let windows = TileWindows::new(3, 4, 1, 0);
        assert_eq!(windows.window_columns(), 8);
        let joined: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let rows = windows.latents(&joined);
        assert_eq!(rows.len(), 3 * 2 * 8);
        // Row 1 starts at column 4 − 2 = 2: values 0 and 1 read columns 2..10.
        assert_eq!(&rows[16..24], &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(&rows[24..32], &[14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0]);
        // Decoding as identity (one band, the first value's line): each row keeps its own tile.
        let decoded: Vec<f32> = rows.chunks_exact(16).flat_map(|row| row[..8].to_vec()).collect();
        assert_eq!(windows.keep(&decoded, 1), (0..12).map(|c| c as f32).collect::<Vec<_>>());
    }

    #[test]
    fn the_plan_joins_pieces_a_tile_apart_with_the_fade_after_each_border() {
        let windows = TileWindows::new(3, 4, 8, 6);
        let plan = windows.plan(90);
        assert_eq!((plan.len(), plan.segment_frames()), (3, 38));
        assert_eq!(plan.positions().first(), Some(&0.0));
    }
}
