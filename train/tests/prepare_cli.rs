//! `melfuse-train prepare` as a user runs it: a synthetic corpus with a few
//! broken files in, a cache and a report out, then a second run that finds
//! the cache up to date, and the mistakes a user can make.

use std::path::Path;
use std::process::{Command, Output};

use melfuse_train::prepare::cache::{Cache, INDEX_FILE};
use melfuse_train::prepare::report::{PrepareReport, REPORT_FILE};
use melfuse_train::prepare::split::Split;
use melfuse_train::synth::{write_corpus, Genre, SynthCorpusConfig};

fn melfuse_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_melfuse-train"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("MELFUSE_SIGNAL_CONFIG")
        .output()
        .expect("run melfuse-train")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Small signal so that the test takes seconds; n_mels comes from a flag to
/// show that flags override the file's `[signal]` table.
const PREPARE_TOML: &str = "validation_fraction = 0.2\nsegments_per_shard = 4\n\n[signal]\nsample_rate = 22050\n\
n_fft = 1024\nhop_length = 256\nn_mels = 32\nsegment_seconds = 2.0\noverlap_seconds = 1.0\nframe_multiple = 8\n";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn prepare_writes_a_cache_and_report_then_finds_it_up_to_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("corpus");
    let config = SynthCorpusConfig {
        clips_per_genre: 3,
        seconds: 5.0,
        sample_rate: 22_050,
        genres: vec![Genre::Cn, Genre::Edm, Genre::CnEdm],
        ..Default::default()
    };
    write_corpus(&corpus, &config, false).expect("corpus");
    std::fs::write(corpus.join("cn/empty.wav"), b"").expect("write");
    std::fs::write(corpus.join("edm/tone.wma"), b"not a media file, only text ".repeat(64)).expect("write");
    let toml = dir.path().join("prepare.toml");
    std::fs::write(&toml, PREPARE_TOML).expect("write toml");
    let out = dir.path().join("cache");
    let args = ["prepare", path(&corpus), "--out", path(&out), "--config", path(&toml), "--n-mels", "64"];

    let first = melfuse_train(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    for expected in ["cn_edm", "skipped cn/empty.wav", "skipped edm/tone.wma", "dB range", "segments/s"] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
    let cache = Cache::open(&out).expect("open cache");
    cache.verify_checksums().expect("checksums");
    assert_eq!(cache.genres(), ["cn", "cn_edm", "edm"]);
    assert_eq!(cache.n_mels(), 64);
    // 5 s clips, 2 s segments every 1 s → 4 per clip, 9 clips.
    let segments = cache.segments(Split::Train).len() + cache.segments(Split::Validation).len();
    assert_eq!(segments, 36);
    let report: PrepareReport =
        serde_json::from_slice(&std::fs::read(out.join(REPORT_FILE)).expect("report")).expect("parse report");
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.total_train.segments + report.total_validation.segments, 36);
    let index_time = std::fs::metadata(out.join(INDEX_FILE)).and_then(|m| m.modified()).expect("mtime");

    let second = melfuse_train(&args);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("cache is up to date"), "{}", text(&second.stdout));
    assert_eq!(std::fs::metadata(out.join(INDEX_FILE)).and_then(|m| m.modified()).expect("mtime"), index_time);

    let forced = melfuse_train(&[&args[..], &["--force"]].concat());
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).contains("dB range"));
}

#[test]
fn prepare_mistakes_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).expect("mkdir");
    std::fs::write(flat.join("song.wav"), b"RIFF").expect("write");
    let output = melfuse_train(&["prepare", path(&flat), "--out", path(&dir.path().join("c"))]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no genre folders"), "{}", text(&output.stderr));

    std::fs::create_dir_all(flat.join("rock")).expect("mkdir");
    let output = melfuse_train(&["prepare", path(&flat), "--out", path(&flat)]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("not empty"), "{}", text(&output.stderr));

    let output =
        melfuse_train(&["prepare", path(&flat), "--out", path(&dir.path().join("c")), "--validation-fraction", "2"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("validation_fraction"), "{}", text(&output.stderr));
}
