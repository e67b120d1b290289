//! `grid.png`: what the model does, at a glance. Columns are the genres (plus a 50/50 blend of
//! the first two); rows are a real held-out clip of the genre, its reconstruction (`z = mu`),
//! and a generated clip (`centroid_g + temperature·ε`, genre one-hot). Every tile is a
//! normalised `[0, 1]` mel through the same colour map ([`render_spectrogram`], low
//! frequencies at the bottom), so brightness compares across tiles.
//!
//! All generated tiles share one `ε` drawn from a ChaCha RNG seeded with `seed`: the columns
//! then differ only by centroid and conditioning, and the picture is the same on every run.

use burn::prelude::*;
use image::{Rgb, RgbImage};
use melfuse_audio::spectrogram_image::render_spectrogram;
use melfuse_proto::generation::seeded_normal;
use ndarray::ArrayView2;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::centroids::Centroids;
use super::fonts::TextRendering;
use super::metrics::evaluation_clips;
use super::{batch_tensor, tensor_values, EvalError, Evaluator};
use crate::prepare::split::Split;

/// Width of the row-label strip on the left, in pixels.
pub const LABEL_WIDTH: u32 = 150;
/// Height of the column-label strip on top, in pixels.
pub const HEADER_HEIGHT: u32 = 28;
/// Space between tiles (and after the last one), in pixels.
pub const GAP: u32 = 4;
/// Colour of the background and of empty cells (dark grey, unlike any colour-map value).
pub const BACKGROUND: Rgb<u8> = Rgb([40, 40, 40]);

/// Geometry of the grid: `rows × columns` tiles of `tile_width × tile_height` pixels (one pixel
/// per frame and mel band) after a label strip and header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridLayout {
    /// Tile rows.
    pub rows: u32,
    /// Tile columns.
    pub columns: u32,
    /// Tile width: the clip's frames.
    pub tile_width: u32,
    /// Tile height: the clip's mel bands.
    pub tile_height: u32,
}

impl GridLayout {
    /// The whole image's `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        (LABEL_WIDTH + self.columns * (self.tile_width + GAP), HEADER_HEIGHT + self.rows * (self.tile_height + GAP))
    }

    /// Top-left pixel of tile `(row, column)`.
    pub fn tile_origin(&self, row: u32, column: u32) -> (u32, u32) {
        (LABEL_WIDTH + column * (self.tile_width + GAP), HEADER_HEIGHT + row * (self.tile_height + GAP))
    }
}

/// What the grid shows: labels and, per cell, a normalised `[n_mels, frames]` mel (row-major)
/// or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct GridContent {
    /// Geometry.
    pub layout: GridLayout,
    /// One label per row.
    pub row_labels: Vec<String>,
    /// One label per column.
    pub column_labels: Vec<String>,
    /// `rows × columns` cells, row-major.
    pub tiles: Vec<Option<Vec<f32>>>,
}

/// Draws `content` (labels only when `text` has a font).
pub fn render_grid(content: &GridContent, text: &TextRendering) -> Result<RgbImage, EvalError> {
    let layout = content.layout;
    let (width, height) = layout.size();
    let (n_mels, frames) = (layout.tile_height as usize, layout.tile_width as usize);
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);
    for (cell, tile) in content.tiles.iter().enumerate() {
        let Some(values) = tile else { continue };
        let view = ArrayView2::from_shape((n_mels, frames), values)
            .map_err(|e| EvalError::Shape(format!("grid tile {cell}: {e}")))?;
        let (row, column) = (cell as u32 / layout.columns, cell as u32 % layout.columns);
        let (x, y) = layout.tile_origin(row, column);
        image::imageops::replace(&mut image, &render_spectrogram(view, 0.0, 1.0), i64::from(x), i64::from(y));
    }
    if let Some(style) = text.light(16.0) {
        let root = BitMapBackend::with_buffer(image.as_mut(), (width, height)).into_drawing_area();
        let draw = |label: &str, x: u32, y: u32| {
            root.draw_text(label, &style, (x as i32, y as i32)).map_err(|e| EvalError::Plot(e.to_string()))
        };
        for (column, label) in content.column_labels.iter().enumerate() {
            let (x, _) = layout.tile_origin(0, column as u32);
            draw(label, x + 2, 6)?;
        }
        for (row, label) in content.row_labels.iter().enumerate() {
            let (_, y) = layout.tile_origin(row as u32, 0);
            draw(label, 6, y + layout.tile_height / 2 - 8)?;
        }
        root.present().map_err(|e| EvalError::Plot(e.to_string()))?;
    }
    Ok(image)
}

/// The genre mixture of generated column `column`: one-hot for a genre column, 50/50 of the
/// first two genres for the blend column (the last, when there are two genres or more).
pub fn column_weights(column: usize, n_genres: usize) -> Vec<f32> {
    let mut weights = vec![0.0; n_genres];
    if column < n_genres {
        weights[column] = 1.0;
    } else {
        weights[0] = 0.5;
        weights[1] = 0.5;
    }
    weights
}

impl Evaluator<'_> {
    /// Fills a [`GridContent`]: for each genre its first evaluation clip (a validation clip, or
    /// a training clip when it has none — its column says so), the reconstruction, and a
    /// generated clip at `temperature` with the shared seeded `ε`; plus the blend column.
    pub fn grid_content(&self, centroids: &Centroids, temperature: f32, seed: u64) -> Result<GridContent, EvalError> {
        let genres = self.cache.genres();
        let n_genres = genres.len();
        let columns = n_genres + usize::from(n_genres >= 2);
        let layout = GridLayout {
            rows: 3,
            columns: columns as u32,
            tile_width: self.cache.frames() as u32,
            tile_height: self.cache.n_mels() as u32,
        };
        let mut tiles: Vec<Option<Vec<f32>>> = vec![None; 3 * columns];
        let mut column_labels: Vec<String> = genres.to_vec();
        if n_genres >= 2 {
            column_labels.push(format!("{}+{} 50/50", genres[0], genres[1]));
        }

        // Row 0 and 1: one real clip per genre and its reconstruction, in one batch.
        let picks: Vec<(usize, Split, usize)> = evaluation_clips(self.cache, Some(1))
            .into_iter()
            .enumerate()
            .filter_map(|(genre, (split, indices))| indices.first().map(|&i| (genre, split, i)))
            .collect();
        if !picks.is_empty() {
            let mut inputs = Vec::new();
            for &(genre, split, index) in &picks {
                inputs.extend(self.clip(split, index)?);
                if split == Split::Train {
                    column_labels[genre].push_str(" (train clip)");
                }
            }
            let input = batch_tensor(inputs.clone(), picks.len(), self.cache, self.device);
            let (mu, _) = self.model.encode(input);
            let genre_rows: Vec<usize> = picks.iter().map(|p| p.0).collect();
            let reconstruction =
                tensor_values(self.model.decode(mu, super::one_hot(&genre_rows, n_genres, self.device)))?;
            let values = self.cache.n_mels() * self.cache.frames();
            for (row, &(genre, ..)) in picks.iter().enumerate() {
                tiles[genre] = Some(inputs[row * values..(row + 1) * values].to_vec());
                tiles[columns + genre] = Some(reconstruction[row * values..(row + 1) * values].to_vec());
            }
        }

        // Row 2: generation for every column from the centroids, one shared ε.
        let latent = centroids.latent_dim;
        let eps = seeded_normal(seed, latent);
        let mut z = Vec::with_capacity(columns * latent);
        let mut mixture = Vec::with_capacity(columns * n_genres);
        for column in 0..columns {
            let weights = column_weights(column, n_genres);
            z.extend(centroids.blend(&weights).iter().zip(&eps).map(|(c, e)| c + temperature * e));
            mixture.extend(weights);
        }
        let z = Tensor::<2>::from_data(TensorData::new(z, [columns, latent]), self.device);
        let mixture = Tensor::<2>::from_data(TensorData::new(mixture, [columns, n_genres]), self.device);
        let generated = tensor_values(self.model.decode(z, mixture))?;
        let values = self.cache.n_mels() * self.cache.frames();
        for column in 0..columns {
            tiles[2 * columns + column] = Some(generated[column * values..(column + 1) * values].to_vec());
        }

        let row_labels = vec!["real".to_string(), "reconstruction".to_string(), format!("generated T={temperature}")];
        Ok(GridContent { layout, row_labels, column_labels, tiles })
    }
}
