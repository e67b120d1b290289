//! `melfuse-train eval` as a user runs it: a short `fit` run, then `eval RUN_DIR` writes the four
//! files into `RUN_DIR/eval` (or `--out`) and prints the metrics table; bad flags are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use melfuse_train::eval::centroids::Centroids;
use melfuse_train::prepare::{self, PrepareConfig};
use melfuse_train::synth::{write_corpus, Genre, SynthCorpusConfig};

/// A small model (the tiny preset narrowed) so a step takes milliseconds; validation each 2 steps
/// so the curves have a validation line.
const FIT_TOML: &str = "batch_size = 4\nlearning_rate = 1e-3\nwarmup_steps = 2\nvalidate_every = 2\n\
[model]\npreset = \"tiny\"\nlatent_dim = 16\nwidths = [8, 16, 16, 32]\n\
head_channels = 8\ndecoder_base_channels = 32\ndecoder_widths = [32, 16, 16, 8, 8]\n";

fn run(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_melfuse-train"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run melfuse-train");
    output
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A 32-mel cache of two genres (two tracks each, so both have validation clips) and a
/// 4-step run on it.
fn trained_run(root: &Path) -> PathBuf {
    let corpus = root.join("corpus");
    let synth = SynthCorpusConfig {
        clips_per_genre: 2,
        seconds: 2.5,
        sample_rate: 22_050,
        genres: vec![Genre::Cn, Genre::Edm],
        ..Default::default()
    };
    write_corpus(&corpus, &synth, false).expect("corpus");
    let mut config = PrepareConfig { validation_fraction: 0.4, ..Default::default() };
    config.signal.sample_rate = 22_050;
    config.signal.n_fft = 1024;
    config.signal.hop_length = 256;
    config.signal.n_mels = 32;
    config.signal.segment_seconds = 1.0;
    config.signal.overlap_seconds = 0.5;
    let cache = root.join("cache");
    prepare::run(&corpus, &cache, &config, false).expect("prepare");
    let toml = root.join("fit.toml");
    std::fs::write(&toml, FIT_TOML).expect("write fit.toml");
    let run_dir = root.join("run");
    let fit = run(&["fit", path(&cache), "--out", path(&run_dir), "--config", path(&toml), "--steps", "4"]);
    assert!(fit.status.success(), "fit failed: {}", String::from_utf8_lossy(&fit.stderr));
    run_dir
}

#[test]
fn eval_writes_metrics_centroids_and_pictures_of_a_fit_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = trained_run(dir.path());
    let output = run(&["eval", path(&run_dir), "--seed", "3"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "eval failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("overall") && stdout.contains("checkpoint at step 4"), "{stdout}");
    let out = run_dir.join("eval");
    for file in ["eval.json", "centroids.json", "curves.png", "grid.png"] {
        assert!(out.join(file).is_file(), "{file} missing; stdout: {stdout}");
    }
    let centroids = Centroids::read(&out.join("centroids.json")).expect("centroids");
    assert_eq!(centroids.genres, ["cn", "edm"]);
    assert_eq!((centroids.centroids.len(), centroids.latent_dim), (2, 16));
    image::open(out.join("grid.png")).expect("grid decodes");
    image::open(out.join("curves.png")).expect("curves decode");

    // --out elsewhere, and bad flags named.
    let elsewhere = dir.path().join("elsewhere");
    let output = run(&["eval", path(&run_dir), "--out", path(&elsewhere), "--max-clips-per-genre", "1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(elsewhere.join("eval.json").is_file());
    let output = run(&["eval", path(&run_dir), "--temperature", "5"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("temperature"));
    let output = run(&["eval", path(&dir.path().join("no-such-run"))]);
    assert!(!output.status.success());
}
