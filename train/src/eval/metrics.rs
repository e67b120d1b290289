//! Reconstruction quality on held-out clips, per genre and overall, in inference mode
//! (`z = mu`, BatchNorm running statistics): mean squared error in the model's normalised
//! units (the training objective's term, so it compares with the logged validation loss), mean
//! absolute error in dB (what a listener's ear roughly tracks, independent of the dB range), and
//! the KL of each clip's posterior from the prior (how much of the latent the code uses).
//!
//! # Why the quietest and loudest fifths are reported apart
//!
//! A mean absolute error cannot tell a decoder that misses detail in both directions from one
//! that compresses the clip's contrast — fills the gaps between hits and the silence under a note
//! (the "soft wash") and shaves the peaks. The signed mean error over each clip's quietest fifth
//! of bins and over its loudest fifth tells them apart: a wash shows as a quiet-fifth bias well
//! above zero and a loud-fifth bias below it. Measured on the real corpus (`models/demo/README.md`,
//! "the reconstruction terms"): a spectral stage trained with L1 terms comes back about 2.5 dB
//! too loud in its held-out segments' quiet fifth and 2.2 dB too quiet in the loud fifth, the
//! same stage trained with MSE +5.3 and −1.6 dB, at overall errors (3.4–3.6 against 5.0 dB) that
//! do not say which way either one errs.

use melfuse_audio::DbRange;
use serde::{Deserialize, Serialize};

use super::{one_hot, tensor_values, EvalError, Evaluator};
use crate::prepare::cache::Cache;
use crate::prepare::split::Split;

/// Errors of one reconstructed clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipErrors {
    /// Mean of `(reconstruction − target)²` over every bin, in normalised units.
    pub mse: f64,
    /// Mean of `|dB(reconstruction) − dB(target)|`, both denormalised with the cache's range.
    pub mean_abs_db: f64,
    /// Mean of `dB(reconstruction) − dB(target)` over the bins whose target is among the clip's
    /// quietest fifth ([`CONTRAST_FRACTION`]): positive when the decoder fills the quiet parts in.
    pub quiet_bias_db: f64,
    /// The same over the clip's loudest fifth: negative when the decoder shaves the peaks.
    pub loud_bias_db: f64,
}

/// The share of a clip's bins, its quietest and its loudest, over which
/// [`ClipErrors::quiet_bias_db`] and [`ClipErrors::loud_bias_db`] are taken.
pub const CONTRAST_FRACTION: f64 = 0.2;

/// The errors of `reconstruction` against `target` (same length, normalised `[0, 1]` values).
///
/// Both sides go through [`DbRange`]'s denormalisation (clip to `[0, 1]`, then
/// `db_floor + v·span`), exactly what the vocoder would hear, so an overshooting decoder is not
/// charged for dB it would never produce.
pub fn clip_errors(target: &[f32], reconstruction: &[f32], range: &DbRange) -> ClipErrors {
    debug_assert_eq!(target.len(), reconstruction.len());
    let span = f64::from(range.span());
    let db = |v: f32| f64::from(range.db_floor) + f64::from(v.clamp(0.0, 1.0)) * span;
    let mut squared = 0.0f64;
    let mut db_errors = Vec::with_capacity(target.len());
    for (&t, &r) in target.iter().zip(reconstruction) {
        let diff = f64::from(r) - f64::from(t);
        squared += diff * diff;
        db_errors.push(db(r) - db(t));
    }
    let n = target.len().max(1) as f64;
    let absolute: f64 = db_errors.iter().map(|e| e.abs()).sum();
    let (quiet_bias_db, loud_bias_db) = contrast_biases(target, &db_errors);
    ClipErrors { mse: squared / n, mean_abs_db: absolute / n, quiet_bias_db, loud_bias_db }
}

/// Mean of `db_errors` (signed, per bin) over the quietest and the loudest [`CONTRAST_FRACTION`]
/// of the target's bins (at least one bin each; ties at the cut are split by position, so the
/// counts are exact).
fn contrast_biases(target: &[f32], db_errors: &[f64]) -> (f64, f64) {
    if target.is_empty() {
        return (0.0, 0.0);
    }
    let mut order: Vec<usize> = (0..target.len()).collect();
    order.sort_unstable_by(|&a, &b| target[a].total_cmp(&target[b]).then(a.cmp(&b)));
    let count = ((target.len() as f64 * CONTRAST_FRACTION).round() as usize).clamp(1, target.len());
    let bias = |bins: &[usize]| bins.iter().map(|&i| db_errors[i]).sum::<f64>() / bins.len() as f64;
    (bias(&order[..count]), bias(&order[order.len() - count..]))
}

/// `KL(N(mu, exp(logvar)) ‖ N(0, I))` of one clip, summed over the latent dimensions — the
/// convention of `melfuse_models::kl_divergence`, so the mean over clips equals its value.
pub fn clip_kl(mu: &[f32], logvar: &[f32]) -> f64 {
    mu.iter()
        .zip(logvar)
        .map(|(&m, &lv)| {
            let (m, lv) = (f64::from(m), f64::from(lv));
            -0.5 * (1.0 + lv - m * m - lv.exp())
        })
        .sum()
}

/// Mean errors over a set of clips; `None` when it holds no clip.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Aggregate {
    /// Clips averaged.
    pub clips: usize,
    /// Mean per-clip MSE (normalised units); every clip has the same size, so this is also the
    /// MSE over all their bins.
    pub mse: Option<f64>,
    /// Mean absolute dB error.
    pub mean_abs_db_error: Option<f64>,
    /// Mean per-clip KL (nats).
    pub kl: Option<f64>,
    /// Mean per-clip [`ClipErrors::quiet_bias_db`] (absent in reports written before it existed).
    #[serde(default)]
    pub quiet_bias_db: Option<f64>,
    /// Mean per-clip [`ClipErrors::loud_bias_db`].
    #[serde(default)]
    pub loud_bias_db: Option<f64>,
}

/// Running sums behind an [`Aggregate`].
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    clips: usize,
    mse: f64,
    db: f64,
    kl: f64,
    quiet: f64,
    loud: f64,
}

impl Sums {
    fn add(&mut self, errors: ClipErrors, kl: f64) {
        self.clips += 1;
        self.mse += errors.mse;
        self.db += errors.mean_abs_db;
        self.kl += kl;
        self.quiet += errors.quiet_bias_db;
        self.loud += errors.loud_bias_db;
    }

    fn merge(&mut self, other: &Sums) {
        self.clips += other.clips;
        self.mse += other.mse;
        self.db += other.db;
        self.kl += other.kl;
        self.quiet += other.quiet;
        self.loud += other.loud;
    }

    fn aggregate(&self) -> Aggregate {
        let mean = |sum: f64| (self.clips > 0).then(|| sum / self.clips as f64);
        Aggregate {
            clips: self.clips,
            mse: mean(self.mse),
            mean_abs_db_error: mean(self.db),
            kl: mean(self.kl),
            quiet_bias_db: mean(self.quiet),
            loud_bias_db: mean(self.loud),
        }
    }
}

/// The metrics of one genre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreMetrics {
    /// Genre name.
    pub genre: String,
    /// The split its clips came from: `validation`, or `train` when the genre has no
    /// validation clip (then the numbers flatter the model — it has seen these clips).
    pub split: Split,
    /// Validation clips the cache holds for this genre.
    pub validation_clips: usize,
    /// The means over the clips evaluated.
    #[serde(flatten)]
    pub metrics: Aggregate,
    /// Why the numbers are not plain validation numbers, when they are not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// Reconstruction metrics of a model on a cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionMetrics {
    /// Per genre, in the cache's genre order.
    pub genres: Vec<GenreMetrics>,
    /// Over every evaluated clip.
    pub overall: Aggregate,
    /// True when some genre was evaluated on training clips (see [`GenreMetrics::split`]).
    pub includes_training_clips: bool,
}

/// The clips evaluated for each genre: its validation clips, or its training clips when it has
/// none, at most `max_clips_per_genre` of them (in storage order).
pub fn evaluation_clips(cache: &Cache, max_clips_per_genre: Option<usize>) -> Vec<(Split, Vec<usize>)> {
    let limit = max_clips_per_genre.unwrap_or(usize::MAX);
    let of = |split: Split, genre: usize| -> Vec<usize> {
        let segments = cache.segments(split).iter().enumerate();
        segments.filter(|(_, s)| s.genre == genre).map(|(i, _)| i).take(limit).collect()
    };
    (0..cache.genres().len())
        .map(|genre| {
            let validation = of(Split::Validation, genre);
            if validation.is_empty() {
                (Split::Train, of(Split::Train, genre))
            } else {
                (Split::Validation, validation)
            }
        })
        .collect()
}

impl Evaluator<'_> {
    /// Reconstructs every evaluation clip (see [`evaluation_clips`]) with `z = mu` and its
    /// genre's one-hot, [`Evaluator::batch_size`] clips per forward pass, and averages the errors.
    pub fn reconstruction(&self, max_clips_per_genre: Option<usize>) -> Result<ReconstructionMetrics, EvalError> {
        let cache = self.cache;
        let n_genres = cache.genres().len();
        let clips = evaluation_clips(cache, max_clips_per_genre);
        let mut genres = Vec::with_capacity(n_genres);
        let mut overall = Sums::default();
        let mut includes_training_clips = false;
        for (genre, (split, indices)) in clips.iter().enumerate() {
            let mut sums = Sums::default();
            self.encode_batches(*split, indices, |batch| {
                let rows = batch.indices.len();
                let genre_rows = one_hot(&vec![genre; rows], n_genres, self.device);
                let reconstruction = tensor_values(self.model.decode(batch.mu.clone(), genre_rows))?;
                let mu = tensor_values(batch.mu)?;
                let logvar = tensor_values(batch.logvar)?;
                let (values, z) = (batch.values_per_clip, mu.len() / rows);
                for row in 0..rows {
                    let clip = row * values..(row + 1) * values;
                    let errors = clip_errors(&batch.inputs[clip.clone()], &reconstruction[clip], &self.db_range);
                    sums.add(errors, clip_kl(&mu[row * z..(row + 1) * z], &logvar[row * z..(row + 1) * z]));
                }
                Ok(())
            })?;
            overall.merge(&sums);
            let validation_clips = cache.segments(Split::Validation).iter().filter(|s| s.genre == genre).count();
            let name = &cache.genres()[genre];
            let note = match (*split, indices.is_empty()) {
                (_, true) => Some("no clips in either split; nothing to evaluate".to_string()),
                (Split::Train, false) => {
                    includes_training_clips = true;
                    Some("no validation clips; evaluated on training clips, which the model has seen".to_string())
                }
                (Split::Validation, false) => None,
            };
            if let Some(note) = &note {
                tracing::warn!(genre = %name, "{note}");
            }
            genres.push(GenreMetrics {
                genre: name.clone(),
                split: *split,
                validation_clips,
                metrics: sums.aggregate(),
                note,
            });
        }
        Ok(ReconstructionMetrics { genres, overall: overall.aggregate(), includes_training_clips })
    }
}
