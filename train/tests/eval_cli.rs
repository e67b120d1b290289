//! `melfuse-train eval` as a user runs it: a short `fit` run, then `eval RUN_DIR` writes the four
//! files into `RUN_DIR/eval` (or `--out`) and prints the metrics table; bad flags are refused.

use melfuse_train::eval::centroids::Centroids;
use support::{path, run, trained_run};

mod support;

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
