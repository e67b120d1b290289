//! `melfuse-train fit` as a user runs it: killed at random moments (what is left always loads and
//! resumes), stopped with SIGTERM (a checkpoint at the current step, exit 0), and the mistakes a
//! user can make.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use melfuse_train::fit::checkpoint::list_checkpoints;
use melfuse_train::fit::run_dir::{checkpoints_dir, metrics_path};
use melfuse_train::fit::{load_model, read_metrics, MetricRecord};
use rand::{RngExt, SeedableRng};
use support::{binary, path, run, small_cache};

mod support;

/// A small model (the tiny preset narrowed) so a step takes milliseconds.
const FIT_TOML: &str = "batch_size = 4\nlearning_rate = 1e-3\nwarmup_steps = 2\nvalidate_every = 0\n\
keep_checkpoints = 2\n\n[model]\npreset = \"tiny\"\nlatent_dim = 16\nwidths = [8, 16, 16, 32]\n\
head_channels = 8\ndecoder_base_channels = 32\ndecoder_widths = [32, 16, 16, 8, 8]\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A 32 × 64 cache of two genres and the fit.toml above, under `root`.
fn setup(root: &Path) -> (PathBuf, PathBuf) {
    let cache = small_cache(root, 1, 0.0);
    let toml = root.join("fit.toml");
    std::fs::write(&toml, FIT_TOML).expect("write fit.toml");
    (cache, toml)
}

fn spawn(args: &[&str]) -> Child {
    binary().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn melfuse-train")
}

/// Waits until the run has a checkpoint at a step ≥ `step`.
fn wait_for_checkpoint(run_dir: &Path, step: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while list_checkpoints(&checkpoints_dir(run_dir)).unwrap_or_default().first().copied().unwrap_or(0) < step
        || !checkpoints_dir(run_dir).join("latest").exists()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("fit exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no checkpoint at step {step} within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_at_random_moments_leaves_a_loadable_run_that_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, toml) = setup(dir.path());
    let run_dir = dir.path().join("run");
    let base = ["fit", path(&cache), "--out", path(&run_dir), "--config", path(&toml), "--checkpoint-every", "1"];
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    println!("kill-timing seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for round in 0..4 {
        let mut args = base.to_vec();
        args.extend(["--steps", "100000"]);
        if round > 0 {
            args.push("--resume");
        }
        let mut child = spawn(&args);
        wait_for_checkpoint(&run_dir, 0, &mut child);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let (model, info, step) = load_model(&run_dir, &Device::flex()).expect("load_model after SIGKILL");
        println!("round {round}: killed; newest loadable checkpoint at step {step}");
        assert_eq!((info.genres.len(), model.latent_dim()), (2, 16));
        read_metrics(&metrics_path(&run_dir)).expect("metrics readable after SIGKILL");
    }
    let (_, _, step) = load_model(&run_dir, &Device::flex()).expect("load_model");
    let target = (step + 3).to_string();
    let mut args = base.to_vec();
    args.extend(["--steps", &target, "--resume"]);
    let resumed = run(&args);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stdout).contains(&format!("finished at step {target}")), "{}", text(&resumed.stdout));
    let steps: Vec<u64> = read_metrics(&metrics_path(&run_dir))
        .expect("metrics")
        .iter()
        .filter_map(|r| match r {
            MetricRecord::Train(m) => Some(m.step),
            _ => None,
        })
        .collect();
    let expected: Vec<u64> = (1..=step + 3).collect();
    assert_eq!(steps, expected, "the metrics log must describe one trajectory");
}

#[test]
fn sigterm_writes_a_checkpoint_at_the_current_step_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, toml) = setup(dir.path());
    let run_dir = dir.path().join("run");
    let args = ["fit", path(&cache), "--out", path(&run_dir), "--config", path(&toml), "--steps", "100000"];
    let child = spawn(&[&args[..], &["--checkpoint-every", "1000000"]].concat());
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for a few training steps (metrics lines), then SIGTERM.
    while read_metrics(&metrics_path(&run_dir)).map_or(0, |m| m.len()) < 3 {
        assert!(Instant::now() < deadline, "no training steps within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("interrupted, checkpoint written"), "{}", text(&output.stdout));
    let last_step = read_metrics(&metrics_path(&run_dir)).expect("metrics").last().map(MetricRecord::step);
    let checkpoints = list_checkpoints(&checkpoints_dir(&run_dir)).expect("list");
    assert_eq!(checkpoints.first().copied(), last_step, "checkpoint at the step the loop stopped at");
    assert!(checkpoints.first().copied().unwrap_or(0) >= 3);
}

#[test]
fn user_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, toml) = setup(dir.path());
    let out = dir.path().join("run");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--device", "cuda"], "built without CUDA support: rebuild with --features cuda"),
        (vec!["--device", "cuda:0,cuda:1"], "multi-device"),
        (vec!["--steps", "0"], "steps"),
        (vec!["--resume"], "no run to resume"),
        (vec!["--genres", "jazz"], "`jazz`"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["fit", path(&cache), "--out", path(&out), "--config", path(&toml), "--steps", "2"];
        args.extend(extra.iter().copied());
        let output = run(&args);
        assert!(!output.status.success(), "{extra:?} should fail");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{extra:?}: `{expected}` missing from:\n{stderr}");
        let _ = std::fs::remove_dir_all(&out);
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "batch_sise = 4\n").expect("write");
    let output = run(&["fit", path(&cache), "--out", path(&out), "--config", path(&bad)]);
    assert!(text(&output.stderr).contains("batch_sise"), "{}", text(&output.stderr));
}
