//! Spectrograms as pictures: low frequencies at the bottom, time from left to
//! right, values through a perceptually uniform colour map (magma), so that a
//! person can see a clip's structure at a glance.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, RgbImage};
use ndarray::ArrayView2;

use crate::atomic_file::write_atomically;
use crate::error::AudioError;

/// Renders `values` (`[n_mels, frames]`) as one pixel per bin and frame,
/// mapping `low..=high` onto the colour map (values outside are clipped).
pub fn render_spectrogram(values: ArrayView2<'_, f32>, low: f32, high: f32) -> RgbImage {
    let (n_mels, frames) = values.dim();
    let span = if high > low { high - low } else { 1.0 };
    RgbImage::from_fn(frames as u32, n_mels as u32, |x, y| {
        let v = values[[n_mels - 1 - y as usize, x as usize]];
        let t = if v.is_finite() { ((v - low) / span).clamp(0.0, 1.0) } else { 0.0 };
        let c = colorous::MAGMA.eval_continuous(t as f64);
        image::Rgb([c.r, c.g, c.b])
    })
}

/// PNG bytes of [`render_spectrogram`].
pub fn encode_spectrogram_png(values: ArrayView2<'_, f32>, low: f32, high: f32) -> Result<Vec<u8>, AudioError> {
    let mut bytes = Cursor::new(Vec::new());
    render_spectrogram(values, low, high).write_to(&mut bytes, ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

/// PNG bytes of a dB spectrogram scaled from its own maximum down
/// `dynamic_range_db` dB, as spectrogram viewers do.
pub fn encode_db_spectrogram_png(db: ArrayView2<'_, f32>, dynamic_range_db: f32) -> Result<Vec<u8>, AudioError> {
    let high = db.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let high = if high.is_finite() { high } else { 0.0 };
    encode_spectrogram_png(db, high - dynamic_range_db, high)
}

/// Writes [`encode_db_spectrogram_png`]'s output to `path` atomically.
pub fn write_db_spectrogram_png(path: &Path, db: ArrayView2<'_, f32>, dynamic_range_db: f32) -> Result<(), AudioError> {
    write_atomically(path, &encode_db_spectrogram_png(db, dynamic_range_db)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn low_bins_are_drawn_at_the_bottom_and_time_runs_right() {
        let mut v = Array2::<f32>::zeros((4, 3));
        v[[0, 2]] = 1.0; // lowest band, last frame
        let img = render_spectrogram(v.view(), 0.0, 1.0);
        assert_eq!(img.dimensions(), (3, 4));
        let bright = img.get_pixel(2, 3);
        let dark = img.get_pixel(0, 0);
        assert!(bright.0.iter().map(|&c| c as u32).sum::<u32>() > 600, "{bright:?}");
        assert!(dark.0.iter().map(|&c| c as u32).sum::<u32>() < 60, "{dark:?}");
    }

    #[test]
    fn png_decodes_with_the_image_crate() {
        let v = Array2::from_shape_fn((8, 5), |(m, f)| (m * f) as f32);
        let bytes = encode_spectrogram_png(v.view(), 0.0, 28.0).unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (5, 8));
    }
}
