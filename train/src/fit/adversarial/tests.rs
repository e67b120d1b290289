//! The adversarial stage on the tiny synthetic cache: it needs `--init`, keeps the encoder,
//! moves the decoder, logs the critic, checkpoints both networks, resumes exactly and guards
//! against non-finite values.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Distribution, Tensor};

use super::super::checkpoint::read_checkpoint;
use super::super::run_dir::{checkpoints_dir, METRICS_FILE};
use super::super::tests::{request, small_cache, small_config, train_records};
use super::super::*;
use super::AdversarialConfig;

fn stage(steps: u64) -> FitConfig {
    let settings = AdversarialConfig { critic_warmup_steps: 2, critic_widths: vec![8, 16], ..Default::default() };
    FitConfig { adversarial: Some(settings), checkpoint_every: 2, learning_rate: 1e-3, ..small_config(steps) }
}

/// A spectral stage of 4 steps on the tiny cache under `dir`: `(cache, run)`, what an adversarial
/// stage starts from with `--init run`.
fn spectral_run(dir: &Path) -> (PathBuf, PathBuf) {
    let cache = small_cache(dir, 1, 0.0);
    let pretrained = dir.join("spectral");
    fit(&request(&cache, &pretrained, small_config(4)), &FitHooks::default()).expect("spectral stage");
    (cache, pretrained)
}

#[test]
fn the_stage_needs_a_trained_run_and_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let error = fit(&request(&cache, &dir.path().join("run"), stage(2)), &FitHooks::default()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("adversarial") && message.contains("--init"), "{message}");
    let bad = FitConfig {
        adversarial: Some(AdversarialConfig { critic_widths: vec![], ..Default::default() }),
        ..small_config(2)
    };
    let message = bad.validate().unwrap_err().to_string();
    assert!(message.contains("adversarial.critic_widths"), "{message}");
}

#[test]
fn the_stage_tunes_the_decoder_only_checkpoints_the_critic_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, pretrained) = spectral_run(dir.path());
    let init = Some(InitRequest { source: pretrained.clone() });

    let straight = dir.path().join("straight");
    let outcome = fit(&FitRequest { init: init.clone(), ..request(&cache, &straight, stage(6)) }, &FitHooks::default())
        .expect("adversarial stage");
    assert_eq!((outcome.step, outcome.nonfinite_total), (6, 0));

    // The critic is logged every step; the decoder feels it only after the warm-up.
    let records = train_records(&straight);
    assert_eq!(records.len(), 6);
    for record in &records {
        let critic = record.adversarial.as_ref().expect("adversarial numbers");
        assert!(critic.critic.is_finite() && critic.feature_matching > 0.0, "{critic:?}");
        assert_eq!(critic.balance == 0.0, record.step <= 2, "step {}: {critic:?}", record.step);
    }

    // Encoder frozen, decoder moved.
    let device = Device::flex();
    let (before, _, _) = load_model(&pretrained, &device).unwrap();
    let (after, _, _) = load_model(&straight, &device).unwrap();
    let input = Tensor::<4>::random([2, 1, 32, 64], Distribution::Uniform(0.0, 1.0), &device);
    let (mu_before, _) = before.encode(input.clone());
    let (mu_after, _) = after.encode(input);
    mu_before.clone().into_data().assert_eq(&mu_after.into_data(), true);
    let genre = Tensor::<2>::from_data([[1.0f32, 0.0], [0.0, 1.0]], &device);
    let moved = (before.decode(mu_before.clone(), genre.clone()) - after.decode(mu_before, genre))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(moved > 1e-5, "the decoder did not change ({moved})");

    // A bundle of the stage counts the spectral stage's steps too.
    let info = RunInfo::read(&straight).unwrap();
    assert_eq!(crate::export::training_stages(&info, 6), [(6, 8), (4, 8)]);

    // Both networks are in the checkpoints.
    let state = read_checkpoint(&checkpoints_dir(&straight), 6).expect("checkpoint").state;
    assert!(state.critic_sha256.is_some() && state.critic_optimizer_sha256.is_some());

    // A stop and a resume give the uninterrupted trajectory, critic included.
    let paused = dir.path().join("paused");
    let first = FitRequest { init: init.clone(), stop_at: Some(3), ..request(&cache, &paused, stage(6)) };
    fit(&first, &FitHooks::default()).expect("first half");
    fit(&FitRequest { resume: true, ..request(&cache, &paused, stage(6)) }, &FitHooks::default()).expect("resume");
    let strip = |run: &std::path::Path| -> Vec<MetricRecord> {
        read_metrics(&run.join(METRICS_FILE))
            .unwrap()
            .into_iter()
            .map(|r| match r {
                MetricRecord::Train(m) => MetricRecord::Train(metrics::TrainMetrics { samples_per_second: 0.0, ..m }),
                other => other,
            })
            .collect()
    };
    // The critic's scores after the resume are in these lines: a fresh critic would differ.
    assert_eq!(strip(&straight), strip(&paused), "the resumed adversarial run differs");

    // A non-finite batch updates neither network.
    let guarded = dir.path().join("guarded");
    let hooks = FitHooks { nonfinite_steps: [4].into(), ..Default::default() };
    let config = FitConfig { checkpoint_every: 1, ..stage(5) };
    fit(&FitRequest { init, ..request(&cache, &guarded, config) }, &hooks).expect("guarded run");
    let at = |step| read_checkpoint(&checkpoints_dir(&guarded), step).unwrap().state;
    assert_eq!(at(4).model_sha256, at(3).model_sha256);
    assert_eq!(at(4).critic_sha256, at(3).critic_sha256);
    assert_ne!(at(5).critic_sha256, at(4).critic_sha256);
}

#[test]
fn frozen_decoder_blocks_keep_the_coarse_layers_and_tune_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, pretrained) = spectral_run(dir.path());
    let init = Some(InitRequest { source: pretrained.clone() });
    let frozen = |blocks: usize| {
        let mut config = stage(4);
        if let Some(settings) = config.adversarial.as_mut() {
            settings.frozen_decoder_blocks = blocks;
        }
        config
    };

    // More blocks than the decoder has: refused by name before the run folder exists.
    let refused = dir.path().join("refused");
    let request_refused = FitRequest { init: init.clone(), ..request(&cache, &refused, frozen(6)) };
    let message = fit(&request_refused, &FitHooks::default()).unwrap_err().to_string();
    assert!(message.contains("adversarial.frozen_decoder_blocks") && message.contains("5"), "{message}");
    assert!(!refused.exists(), "a refused run must not leave a folder");

    // Four of five frozen: their features are the spectral stage's, the decoded image is not.
    let tuned = dir.path().join("tuned");
    fit(&FitRequest { init, ..request(&cache, &tuned, frozen(4)) }, &FitHooks::default()).expect("adversarial stage");
    let device = Device::flex();
    let (before, _, _) = load_model(&pretrained, &device).unwrap();
    let (after, _, _) = load_model(&tuned, &device).unwrap();
    let z = Tensor::<2>::random([2, before.latent_dim()], Distribution::Normal(0.0, 1.0), &device);
    let genre = Tensor::<2>::from_data([[1.0f32, 0.0], [0.0, 1.0]], &device);
    let coarse = |model: &melfuse_models::Vae| model.decoder.features_before_block(z.clone(), genre.clone(), 4);
    coarse(&before).into_data().assert_eq(&coarse(&after).into_data(), true);
    let moved = (before.decode(z.clone(), genre.clone()) - after.decode(z.clone(), genre.clone()))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(moved > 1e-5, "the finest block and the output layer did not change ({moved})");
}

#[test]
fn genre_weights_scale_the_critics_pull_draw_by_draw() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, pretrained) = spectral_run(dir.path());
    let init = Some(InitRequest { source: pretrained.clone() });
    let genres = RunInfo::read(&pretrained).unwrap().genres;
    let weighted = |weight: f64, factors: &[(usize, f64)]| {
        let mut config = stage(4);
        if let Some(settings) = config.adversarial.as_mut() {
            settings.weight = weight;
            settings.genre_weights = factors.iter().map(|&(g, f)| (genres[g].clone(), f)).collect();
        }
        config
    };
    // What the tuned decoder makes of fixed codes (parameter ids differ between runs, so the
    // records' hashes cannot be compared).
    let device = Device::flex();
    let z = Tensor::<2>::random([2, 16], Distribution::Normal(0.0, 1.0), &device); // small_config: latent_dim 16
    let genre = Tensor::<2>::from_data([[1.0f32, 0.0], [0.0, 1.0]], &device);
    let final_model = |name: &str, config: FitConfig| -> Vec<f32> {
        let run = dir.path().join(name);
        fit(&FitRequest { init: init.clone(), ..request(&cache, &run, config) }, &FitHooks::default())
            .expect("adversarial stage");
        let (model, _, _) = load_model(&run, &device).expect("tuned model");
        model.decode(z.clone(), genre.clone()).into_data().try_to_vec::<f32>().expect("decoded values")
    };

    // Every genre at 0: the decoder follows the reconstruction terms alone, as with weight 0.
    let silent = final_model("silent", weighted(2.0, &[(0, 0.0), (1, 0.0)]));
    assert_eq!(silent, final_model("no-critic", weighted(0.0, &[])));
    // Every genre at 1 is the plain stage; one genre at 0 is neither.
    let plain = final_model("plain", weighted(2.0, &[]));
    assert_eq!(plain, final_model("ones", weighted(2.0, &[(0, 1.0), (1, 1.0)])));
    assert_ne!(plain, silent);
    let one_off = final_model("one-off", weighted(2.0, &[(0, 0.0)]));
    assert!(one_off != plain && one_off != silent, "a genre at 0 changed nothing or everything");

    // A genre the run does not have, or a negative factor: refused by name, no folder left.
    let refused = dir.path().join("refused");
    let mut config = weighted(2.0, &[]);
    if let Some(settings) = config.adversarial.as_mut() {
        settings.genre_weights.insert("jazz".into(), 0.0);
    }
    let message =
        fit(&FitRequest { init, ..request(&cache, &refused, config) }, &FitHooks::default()).unwrap_err().to_string();
    assert!(message.contains("adversarial.genre_weights") && message.contains("jazz"), "{message}");
    assert!(!refused.exists(), "a refused run must not leave a folder");
    let mut negative = weighted(2.0, &[]);
    if let Some(settings) = negative.adversarial.as_mut() {
        settings.genre_weights.insert(genres[0].clone(), -1.0);
    }
    let message = negative.validate().unwrap_err().to_string();
    assert!(message.contains("adversarial.genre_weights"), "{message}");
}
