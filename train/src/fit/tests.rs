//! Training runs on a small synthetic cache: overfitting, exact resume, the non-finite guard,
//! interruption, fine-tuning on a genre subset, and the preset files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;

use super::checkpoint::{list_checkpoints, read_checkpoint};
use super::metrics::{NonfiniteAction, TrainMetrics};
use super::run_dir::checkpoints_dir;
use super::*;
use crate::config_file::load_config;
use crate::prepare::tiny::tiny_cache;
use crate::prepare::PrepareConfig;

/// The tiny cache (`prepare::tiny`): 32 mels × 64 frames, two genres, `clips` clips of 2.5 s
/// each → 4 segments per clip; `validation_fraction` of the tracks held out.
pub(super) fn small_cache(root: &Path, clips: usize, validation_fraction: f64) -> PathBuf {
    tiny_cache(root, clips, validation_fraction).expect("tiny cache")
}

/// The tiny preset narrowed to the size of the model crate's unit tests, so a step takes
/// milliseconds.
pub(super) fn small_config(steps: u64) -> FitConfig {
    let model = ModelSettings {
        preset: ModelPreset::Tiny,
        latent_dim: Some(16),
        widths: Some(vec![8, 16, 16, 32]),
        head_channels: Some(8),
        decoder_base_channels: Some(32),
        decoder_widths: Some(vec![32, 16, 16, 8, 8]),
        ..Default::default()
    };
    FitConfig {
        model,
        batch_size: 8,
        steps,
        learning_rate: 3e-3,
        warmup_steps: 5,
        min_learning_rate: 1e-4,
        beta: 1e-4,
        beta_warmup_steps: 20,
        checkpoint_every: 1000,
        keep_checkpoints: 100,
        validate_every: 0,
        ..Default::default()
    }
}

pub(super) fn request(cache: &Path, run_dir: &Path, config: FitConfig) -> FitRequest {
    FitRequest {
        cache_dir: cache.to_path_buf(),
        run_dir: run_dir.to_path_buf(),
        config,
        device: DeviceSpec::Cpu,
        resume: false,
        init: None,
        genres: None,
        stop_at: None,
        handle_signals: false,
        progress: false,
    }
}

pub(super) fn train_records(run_dir: &Path) -> Vec<TrainMetrics> {
    read_metrics(&run_dir.join(run_dir::METRICS_FILE))
        .expect("metrics")
        .into_iter()
        .filter_map(|r| match r {
            MetricRecord::Train(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn presets_parse_and_validate() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo");
    for (dir, frames, n_mels) in [(configs.join("tiny"), 320, 64), (configs.join("paper"), 1280, 128), (demo, 320, 64)]
    {
        let preset = dir.display();
        let prepare: PrepareConfig = load_config(Some(&dir.join("prepare.toml"))).expect("prepare.toml");
        prepare.validate().expect("prepare.toml validates");
        assert_eq!((prepare.signal.n_mels, prepare.signal.model_frames()), (n_mels, frames), "{preset}");
        let fit: FitConfig = load_config(Some(&dir.join("fit.toml"))).expect("fit.toml");
        fit.validate().expect("fit.toml validates");
        fit.model.vae_config(n_mels, frames, 4).validate().expect("model fits the preset's data");
        let stage = dir.join("adversarial.toml");
        if stage.is_file() {
            let tune: FitConfig = load_config(Some(&stage)).expect("adversarial.toml");
            tune.validate().expect("adversarial.toml validates");
            assert!(tune.adversarial.is_some(), "{preset}/adversarial.toml has no [adversarial] section");
        }
    }
}

#[test]
fn bad_settings_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fit.toml");
    for (text, field) in [
        ("batch_sise = 8\n", "batch_sise"),
        ("steps = 0\n", "steps"),
        ("lr_backoff = 1.5\n", "lr_backoff"),
        ("learning_rate = -1.0\n", "learning_rate"),
        ("min_learning_rate = 1.0\n", "min_learning_rate"),
        ("schedule = { kind = \"step\", every = 10, gamma = 2.0 }\n", "schedule.gamma"),
        ("schedule = { kind = \"step\", every = 0, gamma = 0.5 }\n", "schedule.every"),
        ("schedule = { kind = \"linear\" }\n", "linear"),
        ("grad_clip_norm = 0.0\n", "grad_clip_norm"),
        ("[model]\npreset = \"tiny\"\nwidths = [8, 16]\n", "widths"),
        ("[model]\nn_mels = 64\n", "n_mels"),
    ] {
        std::fs::write(&path, text).unwrap();
        let message = load_config::<FitConfig>(Some(&path))
            .map_err(FitError::from)
            .and_then(|config| config.validate())
            .expect_err(text)
            .to_string();
        assert!(message.contains(field), "`{text}` → `{message}` does not name {field}");
    }
    std::fs::write(&path, "schedule = { kind = \"step\", every = 100, gamma = 0.5 }\n").unwrap();
    let config: FitConfig = load_config(Some(&path)).unwrap();
    assert_eq!(config.schedule, Schedule::Step { every: 100, gamma: 0.5 });
}

#[test]
fn overfits_eight_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let run_dir = dir.path().join("run");
    let config = small_config(200);
    let outcome = fit(&request(&cache, &run_dir, config), &FitHooks::default()).expect("fit");
    let records = train_records(&run_dir);
    assert_eq!(records.len(), 200);
    let first = records[0].reconstruction;
    let last = records[records.len() - 5..].iter().map(|m| m.reconstruction).sum::<f64>() / 5.0;
    println!(
        "overfit 8 segments: mse {first:.5} → {last:.5} ({:.1} % lower) in {:.1} s, {:.1} steps/s",
        100.0 * (1.0 - last / first),
        outcome.elapsed.as_secs_f64(),
        outcome.steps_per_second
    );
    assert!(last <= 0.1 * first, "reconstruction {first} → {last} dropped less than 90 %");
    let (model, info, step) = load_model(&run_dir, &Device::flex()).expect("load_model");
    assert_eq!((step, info.genres.clone()), (200, vec!["cn".to_string(), "edm".to_string()]));
    assert_eq!(model.latent_dim(), 16);
}

#[test]
fn resuming_reproduces_the_uninterrupted_run_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 2, 0.25);
    let config = FitConfig { checkpoint_every: 3, validate_every: 4, ..small_config(12) };

    let straight = dir.path().join("straight");
    fit(&request(&cache, &straight, config.clone()), &FitHooks::default()).expect("straight run");

    let paused = dir.path().join("paused");
    let first = fit(&FitRequest { stop_at: Some(7), ..request(&cache, &paused, config.clone()) }, &FitHooks::default())
        .expect("first half");
    assert_eq!(first.step, 7);
    let resumed = fit(&FitRequest { resume: true, ..request(&cache, &paused, config) }, &FitHooks::default())
        .expect("second half");
    assert_eq!((resumed.step, resumed.steps_run), (12, 5));

    let a = read_metrics(&straight.join(run_dir::METRICS_FILE)).unwrap();
    let b = read_metrics(&paused.join(run_dir::METRICS_FILE)).unwrap();
    let strip = |records: Vec<MetricRecord>| -> Vec<MetricRecord> {
        records
            .into_iter()
            .map(|r| match r {
                MetricRecord::Train(m) => MetricRecord::Train(TrainMetrics { samples_per_second: 0.0, ..m }),
                other => other,
            })
            .collect()
    };
    assert_eq!(strip(a), strip(b), "losses of the resumed run differ from the uninterrupted run");
}

#[test]
fn a_nonfinite_batch_leaves_the_weights_untouched_and_repeated_ones_reload_with_a_lower_rate() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let run_dir = dir.path().join("run");
    let config = FitConfig { checkpoint_every: 1, warmup_steps: 0, ..small_config(10) };
    let hooks = FitHooks { nonfinite_steps: BTreeSet::from([3, 6, 7, 8]), ..Default::default() };
    let outcome = fit(&request(&cache, &run_dir, config.clone()), &hooks).expect("fit");
    assert_eq!((outcome.step, outcome.nonfinite_total, outcome.restores), (10, 4, 1));

    let checkpoints = checkpoints_dir(&run_dir);
    let state = |step| read_checkpoint(&checkpoints, step).expect("checkpoint").state;
    // Step 3 was skipped: model and optimiser bit-identical to step 2; step 4 trained again.
    assert_eq!(state(3).model_sha256, state(2).model_sha256);
    assert_eq!(state(3).optimizer_sha256, state(2).optimizer_sha256);
    assert_ne!(state(4).model_sha256, state(3).model_sha256);
    // Steps 6, 7 skipped, step 8 the third in a row: reload of checkpoint 7 (= the weights of 5).
    assert_eq!(state(7).model_sha256, state(5).model_sha256);
    assert_eq!(state(8).model_sha256, state(5).model_sha256);
    assert_eq!((state(7).lr_scale, state(8).lr_scale, state(8).restores), (1.0, 0.5, 1));

    let records = read_metrics(&run_dir.join(run_dir::METRICS_FILE)).unwrap();
    let events: Vec<(u64, NonfiniteAction)> = records
        .iter()
        .filter_map(|r| match r {
            MetricRecord::Nonfinite(e) => Some((e.step, e.action)),
            _ => None,
        })
        .collect();
    use NonfiniteAction::{Restored, Skipped};
    assert_eq!(events, [(3, Skipped), (6, Skipped), (7, Skipped), (8, Restored)]);
    let train = train_records(&run_dir);
    let at = |step| train.iter().find(|m| m.step == step).expect("train record");
    assert!(at(4).loss.is_finite() && at(4).nonfinite_skipped == 1);
    let scheduled = schedule::learning_rate_at(&config, 8);
    assert!((at(9).lr - 0.5 * scheduled).abs() < 1e-15, "{} vs {}", at(9).lr, scheduled);
    assert_eq!(at(10).nonfinite_skipped, 4);
}

#[test]
fn an_interrupt_checkpoints_the_current_step_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let run_dir = dir.path().join("run");
    let config = FitConfig { checkpoint_every: 100, ..small_config(8) };
    let hooks = FitHooks { interrupt_at: Some(3), ..Default::default() };
    let outcome = fit(&request(&cache, &run_dir, config.clone()), &hooks).expect("fit");
    assert!(outcome.interrupted);
    assert_eq!(list_checkpoints(&checkpoints_dir(&run_dir)).unwrap(), [3, 0]);
    let error = fit(&request(&cache, &run_dir, config.clone()), &FitHooks::default()).unwrap_err();
    assert!(matches!(error, FitError::RunDirInUse { .. }), "{error}");
    let changed = FitConfig { learning_rate: 1e-2, ..config.clone() };
    let error = fit(&FitRequest { resume: true, ..request(&cache, &run_dir, changed) }, &FitHooks::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("learning_rate"), "{error}");
    let outcome =
        fit(&FitRequest { resume: true, ..request(&cache, &run_dir, config) }, &FitHooks::default()).expect("resume");
    assert!(!outcome.interrupted);
    assert_eq!(outcome.step, 8);
    let steps: Vec<u64> = train_records(&run_dir).iter().map(|m| m.step).collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
}

#[test]
fn fine_tuning_keeps_the_pretrained_conditioning_and_names_unknown_genres() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let pretrained = dir.path().join("pretrained");
    fit(&request(&cache, &pretrained, small_config(3)), &FitHooks::default()).expect("pretrain");

    let tuned = dir.path().join("tuned");
    let init = Some(InitRequest { source: pretrained.clone() });
    let tune =
        FitRequest { init: init.clone(), genres: Some(vec!["edm".into()]), ..request(&cache, &tuned, small_config(2)) };
    fit(&tune, &FitHooks::default()).expect("fine-tune");
    let info = RunInfo::read(&tuned).unwrap();
    assert_eq!(info.genres, ["cn", "edm"]);
    assert_eq!(info.train_genres, ["edm"]);
    assert_eq!(info.model.n_genres, 2);
    assert_eq!(info.init.as_ref().map(|i| i.step), Some(3));

    let bad = FitRequest {
        init,
        genres: Some(vec!["jazz".into()]),
        ..request(&cache, &dir.path().join("bad"), small_config(2))
    };
    let message = fit(&bad, &FitHooks::default()).unwrap_err().to_string();
    assert!(message.contains("`jazz`"), "{message}");
}

#[test]
fn load_model_returns_an_inference_model_that_matches_the_trained_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(dir.path(), 1, 0.0);
    let run_dir = dir.path().join("run");
    fit(&request(&cache, &run_dir, small_config(4)), &FitHooks::default()).expect("fit");
    let device = Device::flex();
    let (first, _, _) = load_model(&run_dir, &device).unwrap();
    // Falls back to an older checkpoint when `latest` is garbage and the newest one is torn.
    let checkpoints = checkpoints_dir(&run_dir);
    std::fs::write(checkpoints.join(checkpoint::LATEST_FILE), "nonsense").unwrap();
    std::fs::write(checkpoints.join("step-00000004.model.bpk"), b"torn").unwrap();
    let (older, _, step) = load_model(&run_dir, &device).unwrap();
    assert_eq!(step, 0);
    assert_ne!(first.num_params(), 0);
    assert_eq!(first.num_params(), older.num_params());
}

#[test]
fn balanced_augmented_runs_record_their_settings_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Two tracks per genre, four windows each; edm's weight doubled so the shares differ.
    let cache = small_cache(dir.path(), 2, 0.0);
    let mut config = FitConfig { checkpoint_every: 3, ..small_config(6) };
    config.sampling.balance = balance::Balance::Uniform;
    config.sampling.genre_weights.insert("edm".into(), 3.0);
    config.augment = augment::AugmentConfig { gain_db: 6.0, shift_frames: 8, pitch_semitones: 1.0 };

    let straight = dir.path().join("straight");
    fit(&request(&cache, &straight, config.clone()), &FitHooks::default()).expect("straight run");
    let info = RunInfo::read(&straight).unwrap();
    assert_eq!(
        (info.fit.sampling.clone(), info.fit.augment.clone()),
        (config.sampling.clone(), config.augment.clone())
    );
    let report: balance::SamplingReport =
        serde_json::from_slice(&std::fs::read(straight.join(balance::SAMPLING_FILE)).unwrap()).unwrap();
    let slots: Vec<(String, usize, usize)> =
        report.genres.iter().map(|g| (g.genre.clone(), g.segments, g.slots)).collect();
    assert_eq!(slots, [("cn".to_string(), 8, 4), ("edm".to_string(), 8, 12)]);

    let paused = dir.path().join("paused");
    fit(&FitRequest { stop_at: Some(4), ..request(&cache, &paused, config.clone()) }, &FitHooks::default())
        .expect("first part");
    fit(&FitRequest { resume: true, ..request(&cache, &paused, config.clone()) }, &FitHooks::default())
        .expect("second part");
    let losses = |run: &Path| -> Vec<f64> { train_records(run).iter().map(|m| m.loss).collect() };
    assert_eq!(losses(&straight), losses(&paused), "a balanced, augmented run must resume exactly");

    // Without augmentation the same seed trains on other values: the augmentation is in effect.
    let plain = dir.path().join("plain");
    let unaugmented = FitConfig { augment: augment::AugmentConfig::default(), ..config.clone() };
    fit(&request(&cache, &plain, unaugmented), &FitHooks::default()).expect("plain run");
    assert_ne!(losses(&plain), losses(&straight));
    // A resume with other sampling is refused.
    let mut changed = config;
    changed.sampling.balance = balance::Balance::Proportional;
    let error = fit(&FitRequest { resume: true, ..request(&cache, &paused, changed) }, &FitHooks::default())
        .expect_err("changed sampling");
    assert!(error.to_string().contains("sampling"), "{error}");
}
