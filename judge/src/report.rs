//! `judge.json` and the table on stdout: every measure per genre and overall, each given for the
//! held-out reference, the ceiling (the reference through mel → the service's vocoder: what a
//! perfect model could reach) and the generated clips, with the two ratios that matter —
//! generated / reference and ceiling / reference.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::JudgeConfig;

/// One measure for the three sets and its ratios to the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measure {
    /// Mean over the held-out reference excerpts.
    pub reference: f64,
    /// Mean over the same excerpts through mel → vocoder.
    pub ceiling: f64,
    /// Mean over the generated clips.
    pub generated: f64,
    /// `ceiling / reference`.
    pub ceiling_ratio: f64,
    /// `generated / reference`.
    pub generated_ratio: f64,
}

impl Measure {
    /// The measure from the three means.
    pub fn new(reference: f64, ceiling: f64, generated: f64) -> Self {
        Self {
            reference,
            ceiling,
            generated,
            ceiling_ratio: ratio(ceiling, reference),
            generated_ratio: ratio(generated, reference),
        }
    }
}

/// `a / b`, NaN (written as `null`) when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// Fréchet distances in the classifier's embedding, and their scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distance {
    /// Between the two halves of the held-out reference: what "as close as real audio" means.
    pub split_half: f64,
    /// Ceiling clips to the held-out reference.
    pub ceiling: f64,
    /// Generated clips to the held-out reference.
    pub generated: f64,
    /// `ceiling / split_half`.
    pub ceiling_ratio: f64,
    /// `generated / split_half`: ≤ 3 is the product's target.
    pub generated_ratio: f64,
}

/// Mean pairwise embedding distance within a set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diversity {
    /// Among the held-out reference excerpts.
    pub reference: f64,
    /// Among the generated clips.
    pub generated: f64,
    /// `generated / reference`: near 0 is a collapse onto one clip.
    pub ratio: f64,
}

/// Classifier accuracy on the three sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// On the held-out reference excerpts.
    pub reference: f64,
    /// On the ceiling clips.
    pub ceiling: f64,
    /// On the generated clips (`blend=g:1` recognised as `g`).
    pub generated: f64,
    /// Where the generated clips went: the share the classifier assigned to each of the bundle's
    /// genres, in manifest order (the row of a confusion matrix). It tells a genre that is not
    /// recognised from one mistaken for a particular other — the first needs a better decoder,
    /// the second may be music the two genres share.
    pub generated_heard_as: Vec<f64>,
}

/// Every measure of one genre (or of all genres together in [`JudgeReport::overall`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenreReport {
    /// Genre name, or `overall`.
    pub genre: String,
    /// Held-out reference excerpts measured.
    pub reference_excerpts: usize,
    /// Generated clips measured.
    pub generated_clips: usize,
    /// Genre recognition.
    pub accuracy: Accuracy,
    /// Onset pulse strength.
    pub pulse: Measure,
    /// Mean spectral flux (onset strength).
    pub flux: Measure,
    /// Mid-range harmonic peak over median, dB.
    pub harmonic_peak_db: Measure,
    /// Fréchet distance to the reference.
    pub distance: Distance,
    /// Spread of the set.
    pub diversity: Diversity,
}

/// `P(b)` along a blend sweep from genre `a` to genre `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlendCurve {
    /// The genre at weight 0.
    pub a: String,
    /// The genre at weight 1.
    pub b: String,
    /// Weights of `b`.
    pub weights: Vec<f64>,
    /// Mean over seeds of `P(b) / (P(a) + P(b))` at each weight.
    pub p_b: Vec<f64>,
    /// Mean over seeds of every genre's probability at each weight, `[weights][genres]`.
    pub probabilities: Vec<Vec<f64>>,
    /// Pearson correlation of `p_b` with the weight (≥ 0.95 is the target).
    pub correlation: f64,
    /// The weight at which `p_b` first crosses 0.5 (linear between sweep points), if it does.
    pub crossing: Option<f64>,
}

/// `P(b)` along a morph from genre `a` to genre `b`, per window of the clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MorphCurve {
    /// The opening genre.
    pub a: String,
    /// The closing genre.
    pub b: String,
    /// Window centres in seconds.
    pub window_seconds: Vec<f64>,
    /// `P(b) / (P(a) + P(b))` per window, the mean over the morph clips.
    pub p_b: Vec<f64>,
    /// Morph clips averaged (one per seed of `morph_seeds`).
    pub clips: usize,
}

/// One generated `blend=g:1` clip as the classifier heard it: which clips of a genre are missed
/// (and so which bank stretches, by seed) rather than only how many.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipVerdict {
    /// The genre asked for.
    pub genre: String,
    /// The clip's seed (`blend=genre:1&seed=…` makes it again).
    pub seed: u64,
    /// The genre the classifier heard.
    pub heard_as: String,
    /// Its probability of the genre asked for.
    pub probability: f64,
}

/// The classifier's training and its held-out check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierSummary {
    /// Clips it was trained on: each training excerpt as recorded and through mel → vocoder.
    pub train_excerpts: usize,
    /// Held-out reference excerpts it was checked on.
    pub held_out_excerpts: usize,
    /// Its accuracy on them (the judge refuses to report below 0.95).
    pub held_out_accuracy: f64,
    /// Features per clip.
    pub features: usize,
    /// Dimensions of the embedding the distances use.
    pub embedding_dims: usize,
}

/// Everything `judge` measured: the content of `judge.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeReport {
    /// The bundle judged.
    pub bundle: String,
    /// Its name in the manifest.
    pub model: String,
    /// The reference folder.
    pub reference: String,
    /// The settings.
    pub settings: JudgeConfig,
    /// Whether the generated clips went through the bundle's postfilter (false when the bundle
    /// has none or the judge was told to leave it out).
    pub postfilter: bool,
    /// The classifier.
    pub classifier: ClassifierSummary,
    /// Per genre.
    pub genres: Vec<GenreReport>,
    /// All genres together.
    pub overall: GenreReport,
    /// Blend sweeps.
    pub blends: Vec<BlendCurve>,
    /// Morphs.
    pub morphs: Vec<MorphCurve>,
    /// Every `blend=g:1` clip's verdict, genre by genre in seed order.
    pub clips: Vec<ClipVerdict>,
    /// Wall time of the whole judgement.
    pub seconds_taken: f64,
}

/// Pearson correlation of two equally long series; NaN when either is constant.
pub fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        f64::NAN
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Where the series `y` over `x` first reaches 0.5 from below (linear between points), if it does.
pub fn crossing(x: &[f64], y: &[f64]) -> Option<f64> {
    if y.first().is_some_and(|&v| v >= 0.5) {
        return x.first().copied();
    }
    x.windows(2).zip(y.windows(2)).find(|(_, w)| w[0] < 0.5 && w[1] >= 0.5).map(|(xs, w)| {
        let t = (0.5 - w[0]) / (w[1] - w[0]);
        xs[0] + t * (xs[1] - xs[0])
    })
}

/// A number for the table: two decimals, `-` for NaN.
fn cell(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "-".into()
    }
}

impl JudgeReport {
    /// The human-readable table: per genre and overall, `generated / ceiling` ratios to the
    /// reference (the reference itself is 1.00 by definition), then the blend curves.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "classifier: trained on {} reference excerpts, held-out accuracy {:.3} on {} excerpts",
            self.classifier.train_excerpts, self.classifier.held_out_accuracy, self.classifier.held_out_excerpts
        );
        let through = if self.postfilter { "through the bundle's postfilter" } else { "without a postfilter" };
        let _ = writeln!(out, "generated clips: {through}");
        let _ =
            writeln!(out, "each cell: generated / ceiling (ceiling = reference through mel → the service's vocoder)");
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>11} {:>11} {:>13} {:>9}",
            "genre", "accuracy", "pulse", "flux", "harmonic", "distance ×", "diversity"
        );
        for row in self.genres.iter().chain(std::iter::once(&self.overall)) {
            let pair = |a: f64, b: f64| format!("{} / {}", cell(a), cell(b));
            let _ = writeln!(
                out,
                "{:<14} {:>11} {:>11} {:>11} {:>11} {:>13} {:>9}",
                row.genre,
                pair(row.accuracy.generated, row.accuracy.ceiling),
                pair(row.pulse.generated_ratio, row.pulse.ceiling_ratio),
                pair(row.flux.generated_ratio, row.flux.ceiling_ratio),
                pair(row.harmonic_peak_db.generated_ratio, row.harmonic_peak_db.ceiling_ratio),
                pair(row.distance.generated_ratio, row.distance.ceiling_ratio),
                cell(row.diversity.ratio),
            );
        }
        let _ = writeln!(out, "(pulse, flux, harmonic: ratio to the held-out reference; distance: Fréchet distance over the reference's split-half distance)");
        for row in &self.genres {
            let shares: Vec<String> = self
                .genres
                .iter()
                .zip(&row.accuracy.generated_heard_as)
                .filter(|(_, &share)| share > 0.0)
                .map(|(other, share)| format!("{} {:.2}", other.genre, share))
                .collect();
            let _ = writeln!(out, "{} clips heard as: {}", row.genre, shares.join(", "));
        }
        for curve in &self.blends {
            let points: Vec<String> =
                curve.weights.iter().zip(&curve.p_b).map(|(w, p)| format!("{w:.2}→{p:.2}")).collect();
            let _ = writeln!(
                out,
                "blend {} → {}: P({}) {}  correlation {}  crosses 0.5 at {}",
                curve.a,
                curve.b,
                curve.b,
                points.join(" "),
                cell(curve.correlation),
                curve.crossing.map_or_else(|| "never".to_string(), |c| format!("{c:.2}"))
            );
        }
        for morph in &self.morphs {
            let points: Vec<String> = morph.p_b.iter().map(|p| format!("{p:.2}")).collect();
            let _ = writeln!(
                out,
                "morph {} → {}: P({}) per window {} ({} clip{})",
                morph.a,
                morph.b,
                morph.b,
                points.join(" "),
                morph.clips,
                if morph.clips == 1 { "" } else { "s" }
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_and_crossing_of_a_rising_curve() {
        let w = [0.0, 0.25, 0.5, 0.75, 1.0];
        let rising = [0.0, 0.2, 0.4, 0.8, 1.0];
        assert!(correlation(&w, &rising) > 0.95);
        let c = crossing(&w, &rising).unwrap();
        assert!((c - 0.5625).abs() < 1e-12, "{c}");
        assert_eq!(crossing(&w, &[0.1; 5]), None);
        assert_eq!(crossing(&w, &[0.6; 5]), Some(0.0));
        assert!(correlation(&w, &[0.3; 5]).is_nan());
        assert!((correlation(&w, &[1.0, 0.75, 0.5, 0.25, 0.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ratios_are_nan_when_the_reference_is_zero() {
        let m = Measure::new(2.0, 1.0, 0.5);
        assert_eq!((m.ceiling_ratio, m.generated_ratio), (0.5, 0.25));
        assert!(Measure::new(0.0, 1.0, 1.0).generated_ratio.is_nan());
        assert_eq!(cell(f64::NAN), "-");
    }
}
