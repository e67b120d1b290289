//! `prepare` streams long files (issue 14): a long generated track prepares
//! with a peak resident memory bounded by a few segments, far below what
//! loading the file whole would take.
//!
//! The preparation runs in a child process (this test binary re-run with
//! `MELFUSE_MEMORY_CHILD` set), which reports its own peak resident set
//! (`VmHWM` in `/proc/self/status`), so the parent's memory does not count.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use melfuse_train::prepare::{run, PrepareConfig, PrepareOutcome};

/// The long track: 20 minutes of 16-bit stereo at 48 kHz (230 MB on disk).
const MINUTES: u32 = 20;
const RATE: u32 = 48_000;
const CHILD_ENV: &str = "MELFUSE_MEMORY_CHILD";
/// Peak RSS the streamed preparation must stay under, in MiB. Measured with
/// melfuse-audio alone on this file: decode → resample → segments → dB mel
/// streamed peaks at 9 MiB; `load_mono` + the same mels peaks at 646 MiB
/// (decoded mono, resampled copy, buffers).
const MAX_PEAK_MIB: u64 = 100;

/// Writes the track sample by sample (never whole in memory): a slow chirp
/// with a tremolo, loud enough not to be silence.
fn write_long_track(path: &Path) {
    let spec =
        hound::WavSpec { channels: 2, sample_rate: RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    let frames = u64::from(MINUTES) * 60 * u64::from(RATE);
    let mut phase = 0.0f64;
    for i in 0..frames {
        let t = i as f64 / f64::from(RATE);
        phase += 2.0 * std::f64::consts::PI * (220.0 + 200.0 * (t * 0.01).sin()) / f64::from(RATE);
        let x = 0.3 * phase.sin() * (0.6 + 0.4 * (t * 3.0).sin());
        let sample = (x * 32767.0) as i16;
        writer.write_sample(sample).expect("write");
        writer.write_sample(sample).expect("write");
    }
    writer.finalize().expect("finalize");
}

/// Peak resident set of this process in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The child: prepares the corpus at `dir` and prints its peak RSS.
fn child(dir: &Path) {
    let config = PrepareConfig { validation_fraction: 0.0, ..PrepareConfig::default() };
    let before = peak_rss_kib();
    let outcome = run(&dir.join("corpus"), &dir.join("cache"), &config, true).expect("prepare");
    let PrepareOutcome::Built(report) = outcome else { panic!("expected a fresh build") };
    let segments = report.total_train.segments + report.total_validation.segments;
    println!("MELFUSE_MEMORY segments={segments} before_kib={before} peak_kib={}", peak_rss_kib());
    std::io::stdout().flush().expect("flush");
}

#[test]
fn preparing_a_long_file_keeps_memory_bounded() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let genre = dir.path().join("corpus").join("mix");
    std::fs::create_dir_all(&genre).expect("corpus folder");
    write_long_track(&genre.join("long_mix.wav"));

    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "preparing_a_long_file_keeps_memory_bounded", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // libtest prints "test <name> ... " before the child's own output on the same line.
    let line = stdout.lines().find_map(|l| l.find("MELFUSE_MEMORY").map(|i| &l[i..])).expect("the child's report");
    println!("{line}");
    let field = |name: &str| -> u64 {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(name)).and_then(|v| v.parse().ok()).expect(name)
    };
    // 20 min at 10 s hops: 119 segments of 15 s.
    assert_eq!(field("segments="), 119);
    let peak_mib = field("peak_kib=") / 1024;
    println!("peak RSS preparing {MINUTES} min of 48 kHz stereo: {peak_mib} MiB (limit {MAX_PEAK_MIB} MiB)");
    assert!(peak_mib < MAX_PEAK_MIB, "peak RSS {peak_mib} MiB ≥ {MAX_PEAK_MIB} MiB: is a file loaded whole?");
}
