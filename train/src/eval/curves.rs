//! `curves.png`: the training history in `metrics.jsonl` as four panels — total loss
//! (training and validation), reconstruction, KL, and the learning rate (with β) — against the
//! optimiser step.
//!
//! Losses span orders of magnitude over a run, so the loss, KL and rate panels use a log₁₀
//! axis (values ≤ 0 cannot be shown there and are left out); reconstruction uses one too. A
//! non-finite value (a skipped step, logged as `null`) is left out of its line rather than
//! dropping the record, and a line that is not JSON (a crash mid-write, a literal `NaN`) is
//! counted and skipped, so a damaged log still gives a plot.

use std::path::Path;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::fonts::TextRendering;
use super::EvalError;
use crate::fit::metrics::{MetricRecord, MetricsLines, TrainMetrics, ValidationMetrics};

/// Default size of `curves.png` in pixels (four 800 × 450 panels).
pub const CURVES_SIZE: (u32, u32) = (1600, 900);

/// Everything of `metrics.jsonl` the curves need, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsHistory {
    /// Training records.
    pub train: Vec<TrainMetrics>,
    /// Validation records.
    pub validation: Vec<ValidationMetrics>,
    /// Steps whose loss was not finite (`{"kind":"nonfinite", …}` lines).
    pub nonfinite_steps: Vec<u64>,
    /// Lines that were not JSON records of a known kind (skipped).
    pub unreadable_lines: usize,
}

/// How many lines of a history were usable, for `eval.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySummary {
    /// Training records read.
    pub train_records: usize,
    /// Validation records read.
    pub validation_records: usize,
    /// Non-finite losses logged.
    pub nonfinite_steps: usize,
    /// Lines skipped as unreadable.
    pub unreadable_lines: usize,
}

impl MetricsHistory {
    /// The history in parsed `metrics.jsonl` lines; never fails, it counts the lines it cannot
    /// use (not JSON, an unknown kind, a torn last line).
    pub fn from_lines(lines: MetricsLines) -> Self {
        let mut history = Self::default();
        for (_, parsed) in lines.lines {
            match parsed {
                Ok(MetricRecord::Train(record)) => history.train.push(record),
                Ok(MetricRecord::Validation(record)) => history.validation.push(record),
                Ok(MetricRecord::Nonfinite(event)) => history.nonfinite_steps.push(event.step),
                Err(_) => history.unreadable_lines += 1,
            }
        }
        history
    }

    /// Parses `metrics.jsonl` text.
    pub fn parse(text: &str) -> Self {
        Self::from_lines(MetricsLines::parse(text))
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        Ok(Self::from_lines(MetricsLines::read(path)?))
    }

    /// Record counts for the report.
    pub fn summary(&self) -> HistorySummary {
        HistorySummary {
            train_records: self.train.len(),
            validation_records: self.validation.len(),
            nonfinite_steps: self.nonfinite_steps.len(),
            unreadable_lines: self.unreadable_lines,
        }
    }
}

/// One line of a panel.
struct Series {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn new(name: &'static str, color: RGBColor, points: impl Iterator<Item = (u64, f64)>) -> Self {
        // log₁₀ of the positive, finite values: the panels' y axes are logarithmic.
        let points = points.filter(|(_, v)| v.is_finite() && *v > 0.0).map(|(s, v)| (s as f64, v.log10())).collect();
        Self { name, color, points }
    }
}

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOR: RGBColor = RGBColor(214, 39, 40);
const RATE_COLOR: RGBColor = RGBColor(44, 160, 44);
const BETA_COLOR: RGBColor = RGBColor(148, 103, 189);

/// Draws the four panels of `history` into an RGB image of `size` pixels.
pub fn render_curves(history: &MetricsHistory, size: (u32, u32), text: &TextRendering) -> Result<RgbImage, EvalError> {
    let (width, height) = size;
    let mut image = RgbImage::new(width, height);
    {
        let root = BitMapBackend::with_buffer(image.as_mut(), size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let panels = root.split_evenly((2, 2));
        let train = &history.train;
        let validation = &history.validation;
        let contents = [
            (
                "loss",
                vec![
                    Series::new("train", TRAIN_COLOR, train.iter().map(|r| (r.step, r.loss))),
                    Series::new("validation", VALIDATION_COLOR, validation.iter().map(|r| (r.step, r.loss))),
                ],
            ),
            (
                "reconstruction (MSE)",
                vec![
                    Series::new("train", TRAIN_COLOR, train.iter().map(|r| (r.step, r.reconstruction))),
                    Series::new("validation", VALIDATION_COLOR, validation.iter().map(|r| (r.step, r.reconstruction))),
                ],
            ),
            (
                "KL",
                vec![
                    Series::new("train", TRAIN_COLOR, train.iter().map(|r| (r.step, r.kl))),
                    Series::new("validation", VALIDATION_COLOR, validation.iter().map(|r| (r.step, r.kl))),
                ],
            ),
            (
                "learning rate and beta",
                vec![
                    Series::new("lr", RATE_COLOR, train.iter().map(|r| (r.step, r.lr))),
                    Series::new("beta", BETA_COLOR, train.iter().map(|r| (r.step, r.beta))),
                ],
            ),
        ];
        for (area, (title, series)) in panels.iter().zip(contents) {
            draw_panel(area, title, &series, text)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(image)
}

/// Renders [`render_curves`] and writes it as a PNG to `path`, atomically.
pub fn write_curves_png(
    history: &MetricsHistory,
    size: (u32, u32),
    text: &TextRendering,
    path: &Path,
) -> Result<(), EvalError> {
    let image = render_curves(history, size, text)?;
    super::write_png(&image, path)
}

fn plot_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> EvalError {
    EvalError::Plot(error.to_string())
}

/// `lo..hi` covering `values` with a margin, never empty.
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * margin).max(margin.max(1e-3));
    (lo - pad)..(hi + pad)
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    series: &[Series],
    text: &TextRendering,
) -> Result<(), EvalError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_range = padded_range(points().map(|p| p.0), 0.02);
    let y_range = padded_range(points().map(|p| p.1), 0.05);
    let labelled = text.enabled();
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if let Some(style) = text.style(22.0, BLACK) {
        builder.caption(title, style);
        builder.x_label_area_size(36).y_label_area_size(64);
    }
    let mut chart = builder.build_cartesian_2d(x_range, y_range).map_err(plot_error)?;
    {
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(235, 235, 235));
        if let Some(style) = text.style(14.0, BLACK) {
            mesh.label_style(style.clone())
                .axis_desc_style(style)
                .x_desc("step")
                .y_desc("log10 scale")
                .x_label_formatter(&step_label)
                .y_label_formatter(&log_label);
        } else {
            // No label areas: the grid lines are drawn, their tick labels are not (no text is
            // attempted, which the no-font tests check).
            mesh.x_labels(10).y_labels(10);
        }
        mesh.draw().map_err(plot_error)?;
    }
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let style = ShapeStyle::from(s.color).stroke_width(2);
        let line = chart.draw_series(LineSeries::new(s.points.iter().copied(), style)).map_err(plot_error)?;
        if labelled {
            let color = s.color;
            line.label(s.name).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        if s.points.len() == 1 {
            // A lone point (e.g. one validation pass) is invisible as a line.
            chart.draw_series(std::iter::once(Circle::new(s.points[0], 4, s.color.filled()))).map_err(plot_error)?;
        }
    }
    if let Some(style) = text.style(14.0, BLACK) {
        chart
            .configure_series_labels()
            .label_font(style)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Tick label of a step axis: the whole step number.
fn step_label(step: &f64) -> String {
    format!("{step:.0}")
}

/// Tick label of a log₁₀ axis: the value itself, `10^v`, in scientific notation.
fn log_label(log10: &f64) -> String {
    format!("{:.1e}", 10f64.powf(*log10))
}
