//! The VAE objective: MSE reconstruction + β·KL, with a linear β warm-up.
//!
//! KL convention: for each clip the KL divergence of its posterior `N(mu, exp(logvar))` from
//! `N(0, I)` is **summed over the latent dimensions** (the true KL of the whole code), then
//! **averaged over the batch**. Summing keeps β's meaning tied to the information in the code: a
//! larger `latent_dim` is not silently regularised less per dimension. Because the
//! reconstruction is a *mean* over pixels (≈ 1e-2 for a decent model), β is small; the default
//! 1e-4 weighs a 100-nat code about like 1e-2 of MSE.

use burn::prelude::*;

use crate::vae::{VaeOutput, DEFAULT_LOGVAR_MAX, DEFAULT_LOGVAR_MIN};

/// Loss weights and the β warm-up.
#[derive(Config, Debug)]
pub struct VaeLossConfig {
    /// Final KL weight β.
    #[config(default = 1e-4)]
    pub beta: f64,
    /// Steps over which β rises linearly from 0 to `beta`; 0 applies `beta` from the first
    /// step. Warm-up lets the decoder learn to use the code before the KL pulls it to the prior.
    #[config(default = 5000)]
    pub warmup_steps: usize,
}

impl VaeLossConfig {
    /// β at optimiser step `step` (0-based): `beta · min(1, step / warmup_steps)`.
    pub fn beta_at(&self, step: usize) -> f64 {
        if self.warmup_steps == 0 || step >= self.warmup_steps {
            self.beta
        } else {
            self.beta * step as f64 / self.warmup_steps as f64
        }
    }

    /// The loss of one forward pass against its `target` image, at training step `step`.
    pub fn loss(&self, output: &VaeOutput, target: Tensor<4>, step: usize) -> VaeLoss {
        let reconstruction = reconstruction_loss(output.reconstruction.clone(), target);
        let kl = kl_divergence(output.mu.clone(), output.logvar.clone());
        let beta = self.beta_at(step);
        let total = reconstruction.clone() + kl.clone().mul_scalar(beta);
        VaeLoss { reconstruction, kl, total, beta }
    }
}

/// The parts of the objective; each tensor has shape `[1]`.
#[derive(Debug, Clone)]
pub struct VaeLoss {
    /// Mean squared error over every element of the batch.
    pub reconstruction: Tensor<1>,
    /// KL divergence, summed over latent dims, averaged over the batch.
    pub kl: Tensor<1>,
    /// `reconstruction + beta · kl`: the value to call `backward()` on.
    pub total: Tensor<1>,
    /// The β used for `total`.
    pub beta: f64,
}

/// Mean squared error over all elements: `mean((reconstruction - target)²)`, shape `[1]`.
pub fn reconstruction_loss(reconstruction: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (reconstruction - target).square().mean()
}

/// `KL(N(mu, exp(logvar)) ‖ N(0, I))` summed over latent dims, averaged over the batch, `[1]`:
/// `mean_b( -½ Σ_z (1 + logvar - mu² - exp(logvar)) )`.
///
/// `logvar` is clamped to `[DEFAULT_LOGVAR_MIN, DEFAULT_LOGVAR_MAX]` before `exp` so a diverging
/// encoder cannot turn the loss into inf; the model's own clamp normally makes this a no-op.
pub fn kl_divergence(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    let logvar = logvar.clamp(DEFAULT_LOGVAR_MIN, DEFAULT_LOGVAR_MAX);
    let per_dim = logvar.clone().add_scalar(1.0) - mu.square() - logvar.exp();
    per_dim.sum_dim(1).mul_scalar(-0.5).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{device, values};

    fn scalar(tensor: Tensor<1>) -> f32 {
        values(tensor)[0]
    }

    #[test]
    fn kl_is_zero_at_the_prior() {
        let device = device();
        let kl = kl_divergence(Tensor::zeros([3, 8], &device), Tensor::zeros([3, 8], &device));
        assert!(scalar(kl).abs() < 1e-7);
    }

    #[test]
    fn kl_is_positive_away_from_the_prior_and_sums_over_dims() {
        let device = device();
        // mu = 1, logvar = 0: ½·mu² = 0.5 per dim, 4 dims → 2 per clip, mean over clips → 2.
        let kl = scalar(kl_divergence(Tensor::ones([2, 4], &device), Tensor::zeros([2, 4], &device)));
        assert!((kl - 2.0).abs() < 1e-5, "{kl}");
        // mu = 0, logvar = 1: -½(1 + 1 - e) per dim.
        let kl = scalar(kl_divergence(Tensor::zeros([1, 1], &device), Tensor::ones([1, 1], &device)));
        assert!((kl - 0.5 * (1f32.exp() - 2.0)).abs() < 1e-5, "{kl}");
        let kl = scalar(kl_divergence(Tensor::zeros([1, 1], &device), Tensor::full([1, 1], -3.0, &device)));
        assert!(kl > 0.0);
    }

    #[test]
    fn kl_stays_finite_for_extreme_logvar() {
        let device = device();
        let logvar = Tensor::<2>::from_floats([[500.0, -500.0]], &device);
        let kl = scalar(kl_divergence(Tensor::zeros([1, 2], &device), logvar));
        assert!(kl.is_finite() && kl > 0.0);
    }

    #[test]
    fn reconstruction_is_the_mean_squared_error() {
        let device = device();
        let target = Tensor::<4>::zeros([2, 1, 2, 2], &device);
        let reconstruction =
            Tensor::<4>::from_floats([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 2.0]]]], &device);
        let mse = scalar(reconstruction_loss(reconstruction, target));
        assert!((mse - 5.0 / 8.0).abs() < 1e-6);
    }

    #[test]
    fn beta_warms_up_linearly() {
        let config = VaeLossConfig::new().with_beta(0.5).with_warmup_steps(100);
        assert_eq!(config.beta_at(0), 0.0);
        assert!((config.beta_at(25) - 0.125).abs() < 1e-12);
        assert!((config.beta_at(50) - 0.25).abs() < 1e-12);
        assert_eq!(config.beta_at(100), 0.5);
        assert_eq!(config.beta_at(10_000), 0.5);
        assert_eq!(VaeLossConfig::new().with_beta(0.5).with_warmup_steps(0).beta_at(0), 0.5);
    }
}
