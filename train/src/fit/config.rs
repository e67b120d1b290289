//! [`FitConfig`]: every setting of a training run, with serde defaults so a TOML file may set any
//! subset (unknown keys are rejected), and [`ModelSettings`]: a model preset plus overrides.

use melfuse_models::{LatentHead, ReconstructionWeights, Stem, VaeConfig};
use serde::{Deserialize, Serialize};

use super::adversarial::AdversarialConfig;
use super::augment::AugmentConfig;
use super::balance::SamplingConfig;
use super::FitError;

/// The architecture preset a run starts from; [`ModelSettings`] may override single fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelPreset {
    /// [`VaeConfig::tiny`]: CPU-sized, for tests, demos and the synthetic corpus.
    Tiny,
    /// [`VaeConfig::paper`]: the full-size ResNet18 model of the design.
    Paper,
}

/// The model part of a [`FitConfig`]: a preset plus optional overrides of [`VaeConfig`] fields.
/// `n_mels`, `frames` and `n_genres` are not settable: they always come from the cache (or, when
/// fine-tuning, from the pretrained run), so a config can never disagree with the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The preset the overrides apply to.
    pub preset: ModelPreset,
    /// Latent size `Z`.
    pub latent_dim: Option<usize>,
    /// Channels of the four encoder stages.
    pub widths: Option<Vec<usize>>,
    /// BasicBlocks per encoder stage.
    pub blocks: Option<Vec<usize>>,
    /// Encoder stem (`"Wide"` or `"Narrow"`).
    pub stem: Option<Stem>,
    /// Latent head (`"Flatten"`, `"GlobalAveragePool"` or `"Map"`).
    pub latent_head: Option<LatentHead>,
    /// Channels of the map between the convolutions and the latent linears.
    pub head_channels: Option<usize>,
    /// Decoder channels after the 1×1 expansion of the projected latent.
    pub decoder_base_channels: Option<usize>,
    /// Output channels of the decoder upsampling blocks (five at ÷32, four at ÷16, three at ÷8).
    pub decoder_widths: Option<Vec<usize>>,
    /// Down-sampling of the latent grid: 32, 16 or 8.
    pub latent_downsampling: Option<usize>,
    /// Lower clamp of the encoder's `logvar`.
    pub logvar_min: Option<f64>,
    /// Upper clamp of the encoder's `logvar`.
    pub logvar_max: Option<f64>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            preset: ModelPreset::Paper,
            latent_dim: None,
            widths: None,
            blocks: None,
            stem: None,
            latent_head: None,
            head_channels: None,
            decoder_base_channels: None,
            decoder_widths: None,
            latent_downsampling: None,
            logvar_min: None,
            logvar_max: None,
        }
    }
}

impl ModelSettings {
    /// The preset with the overrides applied, for data of `n_mels × frames` and `n_genres`
    /// conditioning genres. Not validated here: [`VaeConfig::validate`] names a bad field.
    pub fn vae_config(&self, n_mels: usize, frames: usize, n_genres: usize) -> VaeConfig {
        let mut config = match self.preset {
            ModelPreset::Tiny => VaeConfig::tiny(n_genres),
            ModelPreset::Paper => VaeConfig::paper(n_genres),
        };
        config.n_mels = n_mels;
        config.frames = frames;
        macro_rules! override_with {
            ($($field:ident),*) => { $(if let Some(v) = &self.$field { config.$field = v.clone(); })* };
        }
        override_with!(
            latent_dim,
            widths,
            blocks,
            stem,
            latent_head,
            head_channels,
            decoder_base_channels,
            decoder_widths,
            latent_downsampling,
            logvar_min,
            logvar_max
        );
        config
    }
}

/// The reconstruction terms of the loss (`[reconstruction]` in fit.toml), each a weight on a mean
/// over elements; see [`melfuse_models::ReconstructionWeights`] for what each term rewards. The
/// default is MSE alone, the objective of every run before these terms existed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconstructionSettings {
    /// Weight of the mean squared error.
    pub mse: f64,
    /// Weight of the mean absolute error, at full resolution and at each pooled scale.
    pub l1: f64,
    /// Average-pooling factors at which the L1 term is repeated (e.g. `[2, 4]`).
    pub pooled_scales: Vec<usize>,
    /// Weight of the L1 distance between first differences along time (onsets).
    pub time_difference: f64,
    /// Weight of the L1 distance between first differences along frequency (harmonic edges).
    pub frequency_difference: f64,
    /// Weight of the L1 distance between onset envelopes (the band-averaged rise per frame: the
    /// beat's attacks).
    pub onset_envelope: f64,
    /// Weight of the L1 distance between contrast profiles (each frame's spread over the bands,
    /// each band's over the frames: what a wash lowers). Not written when 0, so runs from before
    /// the term keep their settings hash and resume.
    #[serde(skip_serializing_if = "is_default")]
    pub contrast: f64,
}

/// Whether a setting is at its default, for `skip_serializing_if` on settings added after runs
/// were made with the file: a default left unwritten keeps those runs' settings hash, so they resume.
pub(super) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Default for ReconstructionSettings {
    fn default() -> Self {
        let weights = ReconstructionWeights::new();
        Self {
            mse: weights.mse,
            l1: weights.l1,
            pooled_scales: weights.pooled_scales,
            time_difference: weights.time_difference,
            frequency_difference: weights.frequency_difference,
            onset_envelope: weights.onset_envelope,
            contrast: weights.contrast,
        }
    }
}

impl ReconstructionSettings {
    /// The model crate's weights for these settings.
    pub fn weights(&self) -> ReconstructionWeights {
        ReconstructionWeights::new()
            .with_mse(self.mse)
            .with_l1(self.l1)
            .with_pooled_scales(self.pooled_scales.clone())
            .with_time_difference(self.time_difference)
            .with_frequency_difference(self.frequency_difference)
            .with_onset_envelope(self.onset_envelope)
            .with_contrast(self.contrast)
    }
}

/// How the learning rate decays after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// Half a cosine from `learning_rate` down to `min_learning_rate` at the last step.
    Cosine,
    /// Multiply by `gamma` every `every` steps after the warm-up, never below `min_learning_rate`.
    Step {
        /// Steps between decays (≥ 1).
        every: u64,
        /// Factor applied at each decay, in (0, 1].
        gamma: f64,
    },
}

/// Every setting of `fit`. Defaults are the seed study's full-size run (paper model, batch 16,
/// Adam 1e-4); `train/configs/*/fit.toml` are the presets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// The architecture: a preset plus overrides.
    pub model: ModelSettings,
    /// Segments per optimiser step.
    pub batch_size: usize,
    /// Total optimiser steps of the run (the length of the learning-rate schedule).
    pub steps: u64,
    /// Peak Adam learning rate, reached at the end of the warm-up.
    pub learning_rate: f64,
    /// Steps of linear learning-rate warm-up from `learning_rate / warmup_steps`.
    pub warmup_steps: u64,
    /// Decay after the warm-up.
    pub schedule: Schedule,
    /// Floor of the decayed learning rate (before any non-finite back-off).
    pub min_learning_rate: f64,
    /// Final KL weight β.
    pub beta: f64,
    /// Steps over which β rises linearly from 0 (see `VaeLossConfig::beta_at`).
    pub beta_warmup_steps: u64,
    /// The reconstruction terms of the loss.
    pub reconstruction: ReconstructionSettings,
    /// Gradients are clipped to this L2 norm (burn clips each parameter tensor separately);
    /// absent disables clipping.
    pub grad_clip_norm: Option<f32>,
    /// A checkpoint every this many steps (also one at the end and on Ctrl-C / SIGTERM).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// A validation pass every this many steps (and at the end); 0 validates only at the end.
    pub validate_every: u64,
    /// A `train` metrics line every this many steps.
    pub log_every: u64,
    /// Seed of the weight initialisation, the batch order and the reparameterisation noise.
    pub seed: u64,
    /// Non-finite losses in a row that make the run reload its last checkpoint.
    pub max_consecutive_nonfinite: u32,
    /// Factor the learning rate is multiplied by at each such reload, in (0, 1).
    pub lr_backoff: f64,
    /// How often each genre is drawn (`[sampling]`, see `fit::balance`); left out of run.json
    /// (and of the checkpoint's config hash) while it is the default, so older runs resume.
    #[serde(skip_serializing_if = "SamplingConfig::is_default")]
    pub sampling: SamplingConfig,
    /// Training-batch augmentation (`[augment]`, see `fit::augment`); off by default, left out of
    /// run.json while off.
    #[serde(skip_serializing_if = "AugmentConfig::is_off")]
    pub augment: AugmentConfig,
    /// The adversarial stage (`[adversarial]`, see `fit::adversarial`): absent for the spectral
    /// stage (and then left out of run.json); present, the run fine-tunes the decoder of the
    /// `--init` run against a critic with the encoder frozen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            model: ModelSettings::default(),
            batch_size: 16,
            steps: 100_000,
            learning_rate: 1e-4,
            warmup_steps: 1000,
            schedule: Schedule::Cosine,
            min_learning_rate: 1e-6,
            beta: 1e-4,
            beta_warmup_steps: 5000,
            reconstruction: ReconstructionSettings::default(),
            grad_clip_norm: Some(1.0),
            checkpoint_every: 1000,
            keep_checkpoints: 3,
            validate_every: 1000,
            log_every: 1,
            seed: 0,
            max_consecutive_nonfinite: 3,
            lr_backoff: 0.5,
            sampling: SamplingConfig::default(),
            augment: AugmentConfig::default(),
            adversarial: None,
        }
    }
}

impl FitConfig {
    /// Checks every field (the model's too, for `n_mels × frames` data with `n_genres` genres);
    /// the error names the first bad one.
    pub fn validate(&self) -> Result<(), FitError> {
        let bad = |field: &'static str, detail: String| Err(FitError::InvalidConfig { field, detail });
        for (field, value) in [
            ("batch_size", self.batch_size as u64),
            ("steps", self.steps),
            ("checkpoint_every", self.checkpoint_every),
            ("keep_checkpoints", self.keep_checkpoints as u64),
            ("log_every", self.log_every),
            ("max_consecutive_nonfinite", u64::from(self.max_consecutive_nonfinite)),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("{} must be positive", self.learning_rate));
        }
        if !(self.min_learning_rate.is_finite() && (0.0..=self.learning_rate).contains(&self.min_learning_rate)) {
            return bad(
                "min_learning_rate",
                format!("{} must be in [0, learning_rate = {}]", self.min_learning_rate, self.learning_rate),
            );
        }
        if let Schedule::Step { every, gamma } = self.schedule {
            if every == 0 {
                return bad("schedule.every", "must be at least 1".into());
            }
            if !(gamma.is_finite() && gamma > 0.0 && gamma <= 1.0) {
                return bad("schedule.gamma", format!("{gamma} must be in (0, 1]"));
            }
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return bad("beta", format!("{} must be finite and ≥ 0", self.beta));
        }
        if let Err(detail) = self.reconstruction.weights().validate() {
            return bad("reconstruction", detail);
        }
        if let Some(norm) = self.grad_clip_norm {
            if !(norm.is_finite() && norm > 0.0) {
                return bad("grad_clip_norm", format!("{norm} must be positive (omit it to disable clipping)"));
            }
        }
        if !(self.lr_backoff.is_finite() && self.lr_backoff > 0.0 && self.lr_backoff < 1.0) {
            return bad("lr_backoff", format!("{} must be in (0, 1)", self.lr_backoff));
        }
        let adversarial = self.adversarial.as_ref().map_or(Ok(()), AdversarialConfig::validate);
        for checked in [self.sampling.validate(), self.augment.validate(), adversarial] {
            if let Err((field, detail)) = checked {
                return bad(field, detail);
            }
        }
        // The architecture on a placeholder shape: catches bad widths etc. before a cache is opened.
        self.model.vae_config(32, 32, 1).validate()?;
        Ok(())
    }

    /// The settings that shape the training trajectory, as canonical JSON: two configs with equal
    /// trajectories (operational fields such as `checkpoint_every` or `steps` aside) give equal
    /// strings. Its SHA-256 is the `config_hash` of checkpoints; `--resume` refuses a change.
    pub fn trajectory_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut value = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("FitConfig serialises to a JSON object"),
        };
        for operational in ["steps", "checkpoint_every", "keep_checkpoints", "validate_every", "log_every"] {
            value.remove(operational);
        }
        value
    }
}
