//! The mel spectrogram equals librosa's on the same samples (DESIGN.md:
//! within 1e-3 relative or 0.01 dB), for every case in
//! `tests/reference/cases.json`.

use melfuse_audio::decode::decode_file;
use melfuse_audio::load::load_mono;
use melfuse_audio::{MelSpectrogram, SignalConfig};
use melfuse_e2e::{fixture, reference_cases, reference_file};
use ndarray::Array2;
use ndarray_npy::read_npy;

/// Largest allowed difference in dB (DESIGN.md "Signal").
const MAX_DB_ERROR: f32 = 0.01;

fn signal_of(case: &serde_json::Value) -> SignalConfig {
    serde_json::from_value(case["signal"].clone()).expect("case signal parses as SignalConfig")
}

/// Largest |Δ dB| between two spectrograms of the same shape.
fn max_db_error(ours: &Array2<f32>, reference: &Array2<f32>) -> f32 {
    assert_eq!(ours.dim(), reference.dim(), "shape differs from librosa's");
    ours.iter().zip(reference.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn mel_equals_librosa_on_the_same_samples() {
    let cases = reference_cases();
    let cases = cases["mel"].as_array().expect("mel cases");
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let signal = signal_of(case);
        let audio = decode_file(&fixture(case["input"].as_str().unwrap())).unwrap();
        assert_eq!(audio.sample_rate, signal.sample_rate, "{name}: the fixture must not need resampling");
        let ours = MelSpectrogram::new(&signal).unwrap().db(&audio.samples);
        let reference: Array2<f32> = read_npy(reference_file(&format!("mel/{name}.npy"))).unwrap();
        let error = max_db_error(&ours, &reference);
        println!("{name}: {:?} max |Δ| = {error:.5} dB", ours.dim());
        assert!(error <= MAX_DB_ERROR, "{name}: max |Δ| {error} dB > {MAX_DB_ERROR} dB");
    }
}

/// After decoding and resampling (rubato here, soxr in librosa) the two
/// pipelines are different filters, so only the audible part must agree:
/// bins within 60 dB of the peak, on average to a fraction of a dB.
#[test]
fn resampled_mel_is_close_to_librosa_load() {
    let cases = reference_cases();
    for case in cases["resampled_mel"].as_array().expect("resampled_mel cases") {
        let name = case["name"].as_str().unwrap();
        let signal = signal_of(case);
        let samples = load_mono(&fixture(case["input"].as_str().unwrap()), signal.sample_rate).unwrap();
        let ours = MelSpectrogram::new(&signal).unwrap().db(&samples);
        let reference: Array2<f32> = read_npy(reference_file(&format!("resampled_mel/{name}.npy"))).unwrap();
        assert_eq!(ours.dim(), reference.dim(), "{name}: shape");
        let peak = reference.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let audible: Vec<f32> =
            ours.iter().zip(reference.iter()).filter(|(_, r)| **r > peak - 60.0).map(|(a, b)| (a - b).abs()).collect();
        let mean = audible.iter().sum::<f32>() / audible.len() as f32;
        println!("{name}: {} audible bins, mean |Δ| = {mean:.4} dB", audible.len());
        assert!(mean < 0.5, "{name}: mean |Δ| {mean} dB over audible bins");
    }
}
