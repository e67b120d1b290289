//! What the CLI tests of the training stages share: running the binary and a short training run
//! on a generated corpus.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use melfuse_train::prepare::tiny::tiny_cache;

/// A small model (the tiny preset narrowed) so a step takes milliseconds; validation each 2 steps
/// so the curves have a validation line. The decoder's widths are [`DECODER_WIDTHS`] unless the
/// caller's `[model]` lines give their own (a finer latent grid has fewer blocks).
const FIT_TOML: &str = "batch_size = 4\nlearning_rate = 1e-3\nwarmup_steps = 2\nvalidate_every = 2\n\
[model]\npreset = \"tiny\"\nlatent_dim = 16\nwidths = [8, 16, 16, 32]\n\
head_channels = 8\ndecoder_base_channels = 32\n";

/// The small model's five decoder widths (a ÷32 latent grid).
const DECODER_WIDTHS: &str = "decoder_widths = [32, 16, 16, 8, 8]\n";

/// The `melfuse-train` binary with quiet logs and no backtraces in its messages.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_melfuse-train"));
    command.env_remove("RUST_BACKTRACE").env("RUST_LOG", "warn");
    command
}

/// Runs `melfuse-train ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    binary().args(args).output().expect("run melfuse-train")
}

/// A temp path as the `&str` a command line takes.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A 32-mel cache (1 s segments) of `cn` and `edm` with `clips_per_genre` 2.5 s tracks each, under
/// `root/cache` (`melfuse_train::prepare::tiny`).
pub fn small_cache(root: &Path, clips_per_genre: usize, validation_fraction: f64) -> PathBuf {
    tiny_cache(root, clips_per_genre, validation_fraction).expect("tiny cache")
}

/// A 4-step run on a [`small_cache`] of two tracks per genre (so both genres have validation clips).
pub fn trained_run(root: &Path) -> PathBuf {
    trained_run_with(root, "")
}

/// [`trained_run`] with `model_lines` (TOML lines of `[model]`, e.g. `latent_head = "Map"`) added.
pub fn trained_run_with(root: &Path, model_lines: &str) -> PathBuf {
    let cache = small_cache(root, 2, 0.4);
    let toml = root.join("fit.toml");
    let widths = if model_lines.contains("decoder_widths") { "" } else { DECODER_WIDTHS };
    std::fs::write(&toml, format!("{FIT_TOML}{widths}{model_lines}")).expect("write fit.toml");
    let run_dir = root.join("run");
    let fit = run(&["fit", path(&cache), "--out", path(&run_dir), "--config", path(&toml), "--steps", "4"]);
    assert!(fit.status.success(), "fit failed: {}", String::from_utf8_lossy(&fit.stderr));
    run_dir
}
