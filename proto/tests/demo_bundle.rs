//! The committed demo bundle (`models/demo/`, the service's default model) passes the checks the
//! service makes when it loads a bundle — decoder hash, opset, input and output shapes, manifest
//! fields — so a commit that replaces `decoder.onnx` without re-exporting the manifest (or edits
//! either by hand) fails CI instead of the service's start-up.

use std::path::{Path, PathBuf};

use melfuse_proto::manifest::Manifest;

/// The size budget for the bundled decoder.
const MAX_DECODER_BYTES: usize = 20 * 1024 * 1024;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo")
}

#[test]
fn demo_bundle_loads_with_the_services_checks() {
    let dir = demo_dir();
    let bundle = Manifest::load(&dir).unwrap_or_else(|error| panic!("{} does not load: {error}", dir.display()));
    let manifest = &bundle.manifest;
    assert_eq!(manifest.name, "demo");
    assert_eq!(manifest.genres, ["cn", "edm", "orchestral", "rock"], "the Debian recipe's genres, in order");
    assert!(bundle.latent_bank.is_some(), "the demo generates from its latent bank by default");
    assert!(
        bundle.decoder_bytes.len() <= MAX_DECODER_BYTES,
        "decoder.onnx is {} bytes, over the {MAX_DECODER_BYTES}-byte budget",
        bundle.decoder_bytes.len()
    );
}

#[test]
fn demo_bundle_is_the_documented_tiny_model() {
    let manifest = Manifest::load(&demo_dir()).expect("the demo bundle loads").manifest;
    // The tiny signal of models/demo/prepare.toml and models/demo/README.md.
    let signal = &manifest.signal;
    assert_eq!(
        (signal.sample_rate, signal.n_fft, signal.hop_length, signal.n_mels, signal.segment_seconds),
        (22_050, 1024, 256, 64, 4.0)
    );
    assert_eq!(signal.model_frames(), 320);
    // models/demo/fit.toml: a latent map of 8 channels on the 8 × 40 grid (÷8) of 64 × 320.
    assert_eq!(manifest.latent_dim, 8 * 8 * 40, "the demo's latent map size");
    let training = &manifest.training;
    assert!(training.steps > 0, "a trained model, not an initialisation");
    assert!(
        training.final_train_loss.is_finite() && training.final_validation_loss.is_finite(),
        "final losses {} / {}",
        training.final_train_loss,
        training.final_validation_loss
    );
    for genre in &manifest.genres {
        let data = training.dataset.iter().find(|d| &d.genre == genre);
        assert!(data.is_some_and(|d| d.segments > 0), "no training data recorded for {genre}");
    }
}

#[test]
fn demo_bundle_has_its_preview_picture() {
    let path = demo_dir().join("preview.png");
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
}
