//! `judge.png`: one row per genre — a held-out reference excerpt, the same excerpt through mel →
//! the service's vocoder (the ceiling), and a generated `blend=g:1` clip, side by side as dB mel
//! spectrograms (the analysis transform, one shared colour scale per row, low frequencies at the
//! bottom) — and below them the blend curves: `P(b)` against the weight of `b` from 0 (left) to 1
//! (right), one colour per genre pair in the order of `judge.json`'s `blends`, on a grid at
//! quarter steps with the ideal diagonal in grey.
//!
//! No text is drawn (the binary loads no font); the table and `judge.json` carry the numbers.

use image::{Rgb, RgbImage};
use melfuse_audio::spectrogram_image::render_spectrogram;

use crate::judge::{Judged, Judgement};

/// Pixels between panels.
const GAP: u32 = 6;
/// Size of the blend-curve plot.
const PLOT: u32 = 320;
/// Dynamic range of each spectrogram row, in dB below its loudest bin.
const RANGE_DB: f32 = 80.0;
/// Colours of successive blend curves.
const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [128, 128, 0],
];

/// Draws the picture of `judgement` for `genres` genres.
pub fn judge_picture(judgement: &Judgement, genres: usize) -> RgbImage {
    let first = |set: &[Judged], g: usize| set.iter().find(|c| c.genre == g).cloned();
    let rows: Vec<[Option<Judged>; 3]> = (0..genres)
        .map(|g| [first(&judgement.reference, g), first(&judgement.ceiling, g), first(&judgement.generated, g)])
        .collect();
    let (panel_w, panel_h) = rows
        .iter()
        .flatten()
        .flatten()
        .map(|c| (c.analysis.mel_db.ncols() as u32, c.analysis.mel_db.nrows() as u32 * 2))
        .fold((1, 1), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let width = (3 * panel_w + 4 * GAP).max(PLOT + 2 * GAP);
    let height = genres as u32 * (panel_h + GAP) + GAP + PLOT + GAP;
    let mut image = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        let loudest =
            row.iter().flatten().flat_map(|c| c.analysis.mel_db.iter().copied()).fold(f32::NEG_INFINITY, f32::max);
        for (k, clip) in row.iter().enumerate() {
            let Some(clip) = clip else { continue };
            let panel = render_spectrogram(clip.analysis.mel_db.view(), loudest - RANGE_DB, loudest);
            let (x0, y0) = (GAP + k as u32 * (panel_w + GAP), GAP + r as u32 * (panel_h + GAP));
            // Each mel band two pixels tall, so the picture is readable at its natural width.
            for (x, y, pixel) in panel.enumerate_pixels() {
                for dy in 0..2 {
                    let (px, py) = (x0 + x, y0 + 2 * y + dy);
                    if px < width && py < height {
                        image.put_pixel(px, py, *pixel);
                    }
                }
            }
        }
    }
    draw_curves(&mut image, judgement, GAP, genres as u32 * (panel_h + GAP) + GAP);
    image
}

/// The blend-curve plot with its top-left corner at `(x0, y0)`.
fn draw_curves(image: &mut RgbImage, judgement: &Judgement, x0: u32, y0: u32) {
    let grid = Rgb([220, 220, 220]);
    let to_pixel = |w: f64, p: f64| {
        let x = x0 as f64 + w.clamp(0.0, 1.0) * f64::from(PLOT - 1);
        let y = y0 as f64 + (1.0 - p.clamp(0.0, 1.0)) * f64::from(PLOT - 1);
        (x, y)
    };
    for k in 0..=4 {
        let t = f64::from(k) / 4.0;
        line(image, to_pixel(t, 0.0), to_pixel(t, 1.0), grid);
        line(image, to_pixel(0.0, t), to_pixel(1.0, t), grid);
    }
    line(image, to_pixel(0.0, 0.0), to_pixel(1.0, 1.0), Rgb([150, 150, 150]));
    for (i, curve) in judgement.report.blends.iter().enumerate() {
        let colour = Rgb(PALETTE[i % PALETTE.len()]);
        let points: Vec<(f64, f64)> = curve
            .weights
            .iter()
            .zip(&curve.p_b)
            .filter(|(_, p)| p.is_finite())
            .map(|(&w, &p)| to_pixel(w, p))
            .collect();
        for pair in points.windows(2) {
            for offset in [-1.0, 0.0, 1.0] {
                line(image, (pair[0].0, pair[0].1 + offset), (pair[1].0, pair[1].1 + offset), colour);
            }
        }
    }
}

/// A straight line, sampled densely enough to leave no gaps.
fn line(image: &mut RgbImage, from: (f64, f64), to: (f64, f64), colour: Rgb<u8>) {
    let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (from.0 + t * (to.0 - from.0), from.1 + t * (to.1 - from.1));
        if x >= 0.0 && y >= 0.0 && (x as u32) < image.width() && (y as u32) < image.height() {
            image.put_pixel(x as u32, y as u32, colour);
        }
    }
}
