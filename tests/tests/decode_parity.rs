//! Decoded samples equal the reference decoders' (issue 14): for every
//! format melfuse reads, a file that `tests/reference/make_parity.py`
//! encoded with Debian's ffmpeg decodes to the same length as the reference
//! decoder's output (libvorbis, libopus, ffmpeg), at zero offset (the
//! cross-correlation peaks at lag 0), with max |Δ| of the mono mix within the
//! format's tolerance; and the dB mel of melfuse's decode equals librosa's
//! on the reference decode within 0.01 dB over the bins within 60 dB of the
//! peak.
//!
//! Without ffmpeg there are no cases: that fails under `CI=true` and is
//! reported (not silently passed) elsewhere.

use std::path::{Path, PathBuf};

use melfuse_audio::decode::{decode_file, downmix_interleaved, DecodeStream};
use melfuse_audio::{MelSpectrogram, SignalConfig};
use ndarray::Array2;
use ndarray_npy::read_npy;

/// Largest |Δ dB| allowed on the audible bins (DESIGN.md "Signal").
const MAX_DB_ERROR: f32 = 0.01;
/// Bins further below the reference's peak than this are not compared.
const AUDIBLE_RANGE_DB: f32 = 60.0;
/// Lags searched for the cross-correlation peak, in samples (an MP3's
/// delay is 1105, an Opus pre-skip 312, an AAC priming 1024 or 2112).
const MAX_LAG: usize = 2400;
/// Samples from the start over which the cross-correlation is computed.
const XCORR_WINDOW: usize = 32_768;

fn parity_dir() -> PathBuf {
    std::env::var_os("MELFUSE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(".reference"))
        .join("parity")
}

/// The cases, or `None` (with the reason printed) when they cannot exist here.
fn cases() -> Option<Vec<serde_json::Value>> {
    let dir = parity_dir();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let text = match std::fs::read_to_string(dir.join("cases.json")) {
        Ok(text) => text,
        Err(error) => {
            assert!(!ci, "{}: {error}: run tests/run (it calls tests/reference/make_parity.py)", dir.display());
            eprintln!("SKIPPED decode parity: no {}/cases.json ({error}); run tests/run", dir.display());
            return None;
        }
    };
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("cases.json parses");
    if let Some(missing) = parsed.get("missing") {
        assert!(!ci, "decode parity needs {missing} (install Debian's ffmpeg: .ci/run does)");
        eprintln!("SKIPPED decode parity: {missing} not installed");
        return None;
    }
    let cases = parsed["cases"].as_array().cloned().unwrap_or_default();
    assert!(!cases.is_empty(), "no decode-parity cases in {}", dir.display());
    Some(cases)
}

/// A reference decode (float WAV) as the mono mean of its channels, and its rate.
fn reference_mono(path: &Path) -> (Vec<f32>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    let interleaved: Vec<f32> = reader.samples::<f32>().map(|s| s.expect("float sample")).collect();
    let mut mono = Vec::new();
    downmix_interleaved(&interleaved, usize::from(spec.channels), &mut mono);
    (mono, spec.sample_rate)
}

/// The lag in `-max_lag..=max_lag` at which `ours` best matches `reference`
/// (positive: ours is late).
fn xcorr_peak_lag(ours: &[f32], reference: &[f32], max_lag: usize) -> i64 {
    let n = ours.len().min(reference.len()).min(XCORR_WINDOW);
    let score = |lag: i64| -> f64 {
        (0..n)
            .filter_map(|i| {
                let j = i as i64 + lag;
                (0..n as i64).contains(&j).then(|| f64::from(ours[j as usize]) * f64::from(reference[i]))
            })
            .sum()
    };
    let max_lag = max_lag as i64;
    (-max_lag..=max_lag).max_by(|a, b| score(*a).total_cmp(&score(*b))).unwrap_or(0)
}

#[test]
fn every_format_decodes_like_its_reference_decoder() {
    let Some(cases) = cases() else { return };
    let dir = parity_dir();
    let mut failures = Vec::new();
    println!(
        "{:<22} {:>6} {:>8} {:>4} {:>10} {:>10} {:>9}",
        "case", "rate", "frames", "lag", "max|Δ|", "tolerance", "mel dB"
    );
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let tolerance = case["tolerance"].as_f64().expect("tolerance") as f32;
        let input = dir.join(case["input"].as_str().expect("input"));
        let ours = decode_file(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (reference, rate) = reference_mono(&dir.join(case["reference"].as_str().expect("reference")));
        assert_eq!(ours.sample_rate, rate, "{name}: sample rate");
        assert_eq!(ours.channels as u64, case["channels"].as_u64().expect("channels"), "{name}: channels");
        let lag = xcorr_peak_lag(&ours.samples, &reference, MAX_LAG.min(reference.len() / 4));
        let n = ours.samples.len().min(reference.len());
        let max_diff = ours.samples[..n].iter().zip(&reference[..n]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);

        let signal = SignalConfig { sample_rate: rate, ..Default::default() };
        let mel = MelSpectrogram::new(&signal).expect("signal").db(&ours.samples);
        let reference_mel: Array2<f32> = read_npy(dir.join(case["mel"].as_str().expect("mel"))).expect("mel npy");
        let peak = reference_mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mel_error = if mel.dim() == reference_mel.dim() {
            mel.iter()
                .zip(reference_mel.iter())
                .filter(|(_, r)| **r > peak - AUDIBLE_RANGE_DB)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        } else {
            f32::INFINITY
        };
        println!(
            "{name:<22} {rate:>6} {:>8} {lag:>4} {max_diff:>10.3e} {tolerance:>10.1e} {mel_error:>9.5}",
            ours.samples.len()
        );
        if ours.samples.len() != reference.len() {
            failures.push(format!("{name}: {} frames, the reference has {}", ours.samples.len(), reference.len()));
        }
        if lag != 0 {
            failures.push(format!("{name}: offset by {lag} samples"));
        }
        if max_diff > tolerance {
            failures.push(format!("{name}: max |Δ| {max_diff:e} > {tolerance:e}"));
        }
        if mel_error > MAX_DB_ERROR {
            failures.push(format!("{name}: dB mel differs by {mel_error} dB from librosa's"));
        }
    }
    assert!(failures.is_empty(), "decode parity failures:\n{}", failures.join("\n"));
}

#[test]
fn streaming_yields_the_same_samples_as_a_whole_decode() {
    let Some(cases) = cases() else { return };
    let dir = parity_dir();
    for case in &cases {
        let input = dir.join(case["input"].as_str().expect("input"));
        let whole = decode_file(&input).expect("decodes").samples;
        let mut stream = DecodeStream::open(&input).expect("opens");
        let mut streamed = Vec::new();
        while let Some(chunk) = stream.next_chunk().expect("decodes") {
            streamed.extend_from_slice(chunk);
        }
        assert_eq!(streamed, whole, "{}", case["name"]);
        assert!(stream.info().format_label().contains('/'), "{}", stream.info().format_label());
    }
}
