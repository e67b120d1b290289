//! Reconstruction quality on held-out clips, per genre and overall, in inference mode
//! (`z = mu`, BatchNorm running statistics): mean squared error in the model's normalised
//! units (the training objective's term, so it compares with the logged validation loss), mean
//! absolute error in dB (what a listener's ear roughly tracks, independent of the dB range), and
//! the KL of each clip's posterior from the prior (how much of the latent the code uses).

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
}

/// The errors of `reconstruction` against `target` (same length, normalised `[0, 1]` values).
///
/// Both sides go through [`DbRange`]'s denormalisation (clip to `[0, 1]`, then
/// `db_floor + v·span`), exactly what the vocoder would hear, so an overshooting decoder is not
/// charged for dB it would never produce.
pub fn clip_errors(target: &[f32], reconstruction: &[f32], range: &DbRange) -> ClipErrors {
    debug_assert_eq!(target.len(), reconstruction.len());
    let span = f64::from(range.span());
    let (mut squared, mut absolute) = (0.0f64, 0.0f64);
    for (&t, &r) in target.iter().zip(reconstruction) {
        let diff = f64::from(r) - f64::from(t);
        squared += diff * diff;
        let db_t = f64::from(range.db_floor) + f64::from(t.clamp(0.0, 1.0)) * span;
        let db_r = f64::from(range.db_floor) + f64::from(r.clamp(0.0, 1.0)) * span;
        absolute += (db_r - db_t).abs();
    }
    let n = target.len().max(1) as f64;
    ClipErrors { mse: squared / n, mean_abs_db: absolute / n }
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
}

/// Running sums behind an [`Aggregate`].
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    clips: usize,
    mse: f64,
    db: f64,
    kl: f64,
}

impl Sums {
    fn add(&mut self, errors: ClipErrors, kl: f64) {
        self.clips += 1;
        self.mse += errors.mse;
        self.db += errors.mean_abs_db;
        self.kl += kl;
    }

    fn merge(&mut self, other: &Sums) {
        self.clips += other.clips;
        self.mse += other.mse;
        self.db += other.db;
        self.kl += other.kl;
    }

    fn aggregate(&self) -> Aggregate {
        let mean = |sum: f64| (self.clips > 0).then(|| sum / self.clips as f64);
        Aggregate { clips: self.clips, mse: mean(self.mse), mean_abs_db_error: mean(self.db), kl: mean(self.kl) }
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
