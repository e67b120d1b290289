//! Criterion benchmarks of melfuse's signal chain at DESIGN.md's defaults:
//!
//! * `preprocess/*`: decode + resample + dB mel of a 3-minute 16-bit stereo
//!   WAV, once at 44.1 kHz (no resampling) and once at 48 kHz (exercises the
//!   resampler) — the per-file cost of building a training corpus;
//! * `griffin_lim/*`: 32 iterations of fast Griffin-Lim (momentum 0.99) on
//!   the magnitude of a 15 s clip, from random and from phase-locked initial
//!   phases — the per-clip cost of the vocoder.
//!
//! The input audio is synthesised deterministically into a temporary
//! directory (see `support/test_music.rs`), never committed. Sample counts
//! and measurement times are small so that `cargo bench -p melfuse-audio`
//! finishes in a few minutes on a 2-core machine; `tests/bench/` compares
//! the same work against librosa.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use melfuse_audio::griffin_lim::GriffinLim;
use melfuse_audio::initial_phase::PhaseInit;
use melfuse_audio::stft::Stft;
use melfuse_audio::{load, MelSpectrogram, SignalConfig};

#[path = "support/test_music.rs"]
mod test_music;

/// Length of the preprocessing benchmark's file (a typical song).
const SONG_SECONDS: f64 = 180.0;
/// Griffin-Lim iterations and momentum, fixed here (not read from
/// `VocoderConfig`) so that results stay comparable if the defaults move.
const GL_ITERS: usize = 32;
const GL_MOMENTUM: f32 = 0.99;
/// Seed of the initial phases.
const GL_SEED: u64 = 0;

/// The whole per-file preprocessing path: decode, downmix, resample, dB mel.
fn preprocess(path: &Path, config: &SignalConfig) -> ndarray::Array2<f32> {
    let samples = load::load_mono(path, config.sample_rate).expect("the generated file loads");
    MelSpectrogram::new(config).expect("default config is valid").db(&samples)
}

fn bench_preprocess(c: &mut Criterion) {
    let config = SignalConfig::default();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("preprocess");
    // Flat sampling: each iteration takes ~0.1-0.2 s, too long for
    // Criterion's linear ramp to fit 10 samples into a short measurement.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for rate in [44_100u32, 48_000] {
        let path = dir.path().join(format!("song_{rate}.wav"));
        test_music::write_music_wav(&path, rate, SONG_SECONDS).expect("writing the test WAV");
        group.bench_function(format!("3min_stereo_s16_{}k", rate / 1000), |b| {
            b.iter(|| black_box(preprocess(black_box(&path), &config)))
        });
    }
    group.finish();
}

fn bench_griffin_lim(c: &mut Criterion) {
    let config = SignalConfig::default();
    let stft = Stft::new(config.n_fft, config.hop_length).expect("default STFT");
    let clip = test_music::mono_music(config.sample_rate, f64::from(config.segment_seconds));
    let magnitude = stft.forward(&clip).mapv(|c| c.norm());
    let mut group = c.benchmark_group("griffin_lim");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, init) in [("random", PhaseInit::Random), ("phase_locked", PhaseInit::PhaseLocked)] {
        let gl = GriffinLim::new(stft.clone(), GL_ITERS, GL_MOMENTUM).with_init(init);
        group.bench_function(format!("15s_{}iters_{name}", GL_ITERS), |b| {
            b.iter(|| black_box(gl.reconstruct(magnitude.view(), clip.len(), GL_SEED)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_preprocess, bench_griffin_lim);
criterion_main!(benches);
