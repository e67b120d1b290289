//! Learning rate and KL weight as functions of the step: linear warm-up then cosine or step
//! decay for the rate; β from `melfuse_models::VaeLossConfig::beta_at`, so training and the
//! model crate agree on one definition.

use melfuse_models::VaeLossConfig;

use super::{FitConfig, Schedule};

/// The learning rate of 0-based step `index` before any non-finite back-off: linear warm-up
/// `learning_rate · (index + 1) / warmup_steps`, then the configured decay down to
/// `min_learning_rate` (cosine reaches it at the last step, `steps − 1`).
pub fn learning_rate_at(config: &FitConfig, index: u64) -> f64 {
    let peak = config.learning_rate;
    if index < config.warmup_steps {
        return peak * (index + 1) as f64 / config.warmup_steps as f64;
    }
    let after = index - config.warmup_steps;
    let floor = config.min_learning_rate;
    match config.schedule {
        Schedule::Cosine => {
            let span = config.steps.saturating_sub(config.warmup_steps).saturating_sub(1).max(1);
            let progress = (after as f64 / span as f64).min(1.0);
            floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        Schedule::Step { every, gamma } => {
            let decays = (after / every.max(1)).min(i32::MAX as u64) as i32;
            (peak * gamma.powi(decays)).max(floor)
        }
    }
}

/// The loss weights of the run: β and its warm-up.
pub fn loss_config(config: &FitConfig) -> VaeLossConfig {
    VaeLossConfig::new()
        .with_beta(config.beta)
        .with_warmup_steps(config.beta_warmup_steps as usize)
        .with_reconstruction(config.reconstruction.weights())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(schedule: Schedule) -> FitConfig {
        FitConfig {
            steps: 110,
            learning_rate: 1e-3,
            min_learning_rate: 1e-5,
            warmup_steps: 10,
            schedule,
            ..FitConfig::default()
        }
    }

    #[test]
    fn warm_up_is_linear_then_cosine_reaches_the_floor_at_the_last_step() {
        let config = config(Schedule::Cosine);
        assert!((learning_rate_at(&config, 0) - 1e-4).abs() < 1e-12);
        assert!((learning_rate_at(&config, 4) - 5e-4).abs() < 1e-12);
        assert!((learning_rate_at(&config, 10) - 1e-3).abs() < 1e-12);
        let middle = learning_rate_at(&config, 10 + 99 / 2);
        assert!(middle < 1e-3 && middle > 1e-5);
        assert!((learning_rate_at(&config, 109) - 1e-5).abs() < 1e-12);
        assert!((learning_rate_at(&config, 500) - 1e-5).abs() < 1e-12);
        let rates: Vec<f64> = (10..110).map(|i| learning_rate_at(&config, i)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn step_decay_multiplies_by_gamma_and_stops_at_the_floor() {
        let config = config(Schedule::Step { every: 20, gamma: 0.1 });
        assert!((learning_rate_at(&config, 29) - 1e-3).abs() < 1e-12);
        assert!((learning_rate_at(&config, 30) - 1e-4).abs() < 1e-12);
        assert!((learning_rate_at(&config, 50) - 1e-5).abs() < 1e-12);
        assert!((learning_rate_at(&config, 1000) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn beta_uses_the_model_crate_warm_up() {
        let config = FitConfig { beta: 0.5, beta_warmup_steps: 100, ..FitConfig::default() };
        assert_eq!(loss_config(&config).beta_at(50), 0.25);
    }
}
