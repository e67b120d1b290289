//! The `melfuse-train` binary end to end: what a user types, what lands on
//! disk, and what a mistake prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Array2;
use ndarray_npy::read_npy;

fn melfuse_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_melfuse-train")).args(args).env_remove("RUST_BACKTRACE").output().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn mel_of_compressed_fixtures_writes_npy_and_png() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tone_44k.mp3", "tone_44k.ogg", "tone_44k.flac"] {
        let npy = dir.path().join(format!("{name}.npy"));
        let png = dir.path().join(format!("{name}.png"));
        let output = melfuse_train(&[
            "mel",
            fixture(name).to_str().unwrap(),
            "--out",
            npy.to_str().unwrap(),
            "--out",
            png.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let db: Array2<f32> = read_npy(&npy).unwrap();
        // 3 s at 44.1 kHz, hop 512 → 259 frames.
        assert_eq!(db.dim(), (128, 259), "{name}");
        assert!(db.iter().all(|v| v.is_finite()));
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "{name}");
    }
}

#[test]
fn mel_honours_signal_flags() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("a.npy");
    let output = melfuse_train(&[
        "mel",
        fixture("tone_44k_stereo_s16.wav").to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
        "--sample-rate",
        "22050",
        "--n-mels",
        "64",
        "--n-fft",
        "1024",
        "--hop-length",
        "256",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let db: Array2<f32> = read_npy(&npy).unwrap();
    assert_eq!(db.dim(), (64, 3 * 22_050 / 256 + 1));
}

#[test]
fn mistakes_fail_with_a_message_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let out = out.to_str().unwrap();
    let (absurd_rate, empty, silence, ogg) = (
        fixture("broken/absurd_rate.wav").display().to_string(),
        fixture("broken/zero_bytes.wav").display().to_string(),
        fixture("broken/silence.wav").display().to_string(),
        fixture("tone_44k.ogg").display().to_string(),
    );
    let cases: &[(&[&str], &str)] = &[
        (&["mel", &absurd_rate, "--out", out], "unsupported sample rate 1000000 Hz"),
        (&["mel", &empty, "--out", out], "no audio"),
        (&["mel", &silence, "--out", out], "silent"),
        (&["mel", &ogg, "--out", out, "--segment", "0"], "segment 0 does not exist"),
        (&["mel", &ogg, "--out", "x.jpg"], ".npy or .png"),
        (&["mel", &ogg, "--out", out, "--n-mels", "0"], "n_mels"),
        (&["mel", "/nonexistent/a.wav", "--out", out], "/nonexistent/a.wav"),
    ];
    for (args, expected) in cases {
        let output = melfuse_train(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let message = stderr(&output);
        assert!(message.contains(expected), "{args:?}: expected {expected:?} in {message}");
        assert!(!message.contains("panicked"), "{args:?} panicked: {message}");
    }
    assert!(!Path::new(out).exists(), "a failed run leaves no output");
}

#[test]
fn synth_corpus_then_mel_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let output = melfuse_train(&[
        "synth-corpus",
        "--out",
        corpus.to_str().unwrap(),
        "--clips-per-genre",
        "1",
        "--seconds",
        "4",
        "--seed",
        "3",
        "--sample-rate",
        "22050",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for genre in ["cn", "edm", "orchestral", "cn_edm"] {
        let clip = corpus.join(genre).join(format!("{genre}_000.wav"));
        let npy = dir.path().join(format!("{genre}.npy"));
        let output = melfuse_train(&[
            "mel",
            clip.to_str().unwrap(),
            "--out",
            npy.to_str().unwrap(),
            "--sample-rate",
            "22050",
            "--segment-seconds",
            "2",
            "--overlap-seconds",
            "1",
            "--segment",
            "2",
        ]);
        assert!(output.status.success(), "{genre}: {}", stderr(&output));
        let db: Array2<f32> = read_npy(&npy).unwrap();
        assert_eq!(db.dim(), (128, 2 * 22_050 / 512 + 1), "{genre}");
        let loudest = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(loudest > 0.0, "{genre}: the segment is not silent (peak {loudest} dB)");
    }
    let again = melfuse_train(&["synth-corpus", "--out", corpus.to_str().unwrap(), "--clips-per-genre", "1"]);
    assert!(!again.status.success(), "a non-empty corpus directory needs --force");
}
