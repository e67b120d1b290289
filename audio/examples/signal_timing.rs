//! Wall-clock timing of melfuse's signal chain for comparisons with librosa
//! (`tests/bench/preprocess_vs_librosa` drives it). Each subcommand prints
//! one JSON line with the best and median seconds over `--repeat` runs.
//!
//! ```text
//! signal_timing synth OUT.wav [--rate 44100] [--seconds 180]
//! signal_timing preprocess FILE... [--repeat 5] [--stages]
//! signal_timing griffin-lim MAGNITUDE.npy [--iters 32] [--momentum 0.99]
//!               [--init random|phase-locked] [--seed 0] [--length N]
//!               [--repeat 3] [--write OUT.npy]
//! ```
//!
//! `synth` writes the deterministic test music of `benches/support/` so that
//! both sides of a comparison read the very same file. `preprocess` times
//! what a corpus build does per file — decode, downmix, resample to the
//! configured rate, dB mel — and, per file, each stage; `--stages` also
//! times the bare STFT (power spectrum, no mel) to split the mel stage into
//! FFT and filterbank. `griffin-lim` reads a `[frames, n_freqs]` float32
//! magnitude (as `tests/reference/make_reference.py` writes it) so that it
//! runs on exactly the input librosa gets, and reports melfuse's spectral
//! convergence; `--write` saves the reconstruction for an outside check.
//! Threads: rayon's global pool, so `RAYON_NUM_THREADS=1` pins one core.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use melfuse_audio::decode::decode_file;
use melfuse_audio::griffin_lim::{spectral_convergence, GriffinLim};
use melfuse_audio::initial_phase::PhaseInit;
use melfuse_audio::load::{peak_dbfs, SILENCE_THRESHOLD_DBFS};
use melfuse_audio::mel::power_to_db;
use melfuse_audio::resample::resample;
use melfuse_audio::stft::Stft;
use melfuse_audio::{MelSpectrogram, SignalConfig};
use ndarray::{Array1, Array2};
use serde_json::{json, Value};

#[path = "../benches/support/test_music.rs"]
mod test_music;

#[derive(Parser)]
#[command(about = "Times melfuse's preprocessing and Griffin-Lim; prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the deterministic 16-bit stereo test music as a WAV file.
    Synth {
        out: PathBuf,
        #[arg(long, default_value_t = 44_100)]
        rate: u32,
        #[arg(long, default_value_t = 180.0)]
        seconds: f64,
    },
    /// Time decode + resample + dB mel of every FILE (all files = one run).
    Preprocess {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Also time the bare STFT power spectrum (a diagnostic, not counted
        /// in the total).
        #[arg(long)]
        stages: bool,
    },
    /// Time fast Griffin-Lim on a [frames, n_freqs] float32 .npy magnitude.
    GriffinLim {
        magnitude: PathBuf,
        #[arg(long, default_value_t = 32)]
        iters: usize,
        #[arg(long, default_value_t = 0.99)]
        momentum: f32,
        #[arg(long, value_enum, default_value_t = Init::PhaseLocked)]
        init: Init,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output length in samples; default (frames − 1) · hop_length.
        #[arg(long)]
        length: Option<usize>,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Save the (last) reconstruction as a float32 .npy file.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// Command-line spelling of [`PhaseInit`].
#[derive(Clone, Copy, ValueEnum)]
enum Init {
    Random,
    PhaseLocked,
}

impl From<Init> for PhaseInit {
    fn from(init: Init) -> Self {
        match init {
            Init::Random => PhaseInit::Random,
            Init::PhaseLocked => PhaseInit::PhaseLocked,
        }
    }
}

/// Best and median of a set of durations in seconds.
fn summary(times: &[f64]) -> Value {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    json!({ "best_s": sorted.first().copied().unwrap_or(f64::NAN), "median_s": median, "runs_s": times })
}

/// Seconds `f` takes, and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let value = f();
    (started.elapsed().as_secs_f64(), value)
}

/// Per-stage durations of one file's preprocessing, in seconds.
#[derive(Default, Clone, Copy)]
struct Stages {
    decode: f64,
    resample: f64,
    mel: f64,
    db: f64,
    stft_only: f64,
}

/// Preprocesses one file exactly as `load::load_mono` + `MelSpectrogram::db`
/// do (decode and downmix, silence check, resample, mel power, dB), timing
/// each stage; returns the dB mel so that nothing is optimised away.
fn preprocess_file(path: &Path, config: &SignalConfig, stft_only: bool) -> Result<(Stages, Array2<f32>)> {
    let mut stages = Stages::default();
    // The silence check belongs to load_mono, so it is counted with decoding.
    let (t, decoded) = timed(|| decode_file(path).map(|d| (peak_dbfs(&d.samples), d)));
    stages.decode = t;
    let (peak, decoded) = decoded?;
    if peak < SILENCE_THRESHOLD_DBFS {
        bail!("{} is silent", path.display());
    }
    let (t, samples) = timed(|| resample(&decoded.samples, decoded.sample_rate, config.sample_rate));
    stages.resample = t;
    let samples = samples?;
    let (t, power) = timed(|| MelSpectrogram::new(config).map(|mel| mel.power(&samples)));
    stages.mel = t;
    let (t, db) = timed(|| power_to_db(&power.expect("default config is valid"), config.amin));
    stages.db = t;
    if stft_only {
        let stft = Stft::new(config.n_fft, config.hop_length)?;
        let (t, spectrum) = timed(|| stft.power(&samples));
        std::hint::black_box(spectrum);
        stages.stft_only = t;
    }
    Ok((stages, db))
}

fn run_preprocess(files: &[PathBuf], repeat: usize, stft_only: bool) -> Result<Value> {
    let config = SignalConfig::default();
    let mut totals = Vec::with_capacity(repeat);
    let mut per_file: Vec<Vec<Stages>> = vec![Vec::with_capacity(repeat); files.len()];
    let mut frames = vec![0usize; files.len()];
    for _ in 0..repeat.max(1) {
        let mut total = 0.0;
        for (i, file) in files.iter().enumerate() {
            let (stages, db) = preprocess_file(file, &config, stft_only)?;
            total += stages.decode + stages.resample + stages.mel + stages.db;
            frames[i] = std::hint::black_box(db).ncols();
            per_file[i].push(stages);
        }
        totals.push(total);
    }
    let files_json: Vec<Value> = files
        .iter()
        .zip(&per_file)
        .zip(&frames)
        .map(|((path, runs), &frames)| {
            let stage = |f: fn(&Stages) -> f64| summary(&runs.iter().map(f).collect::<Vec<_>>());
            let total = runs.iter().map(|s| s.decode + s.resample + s.mel + s.db).collect::<Vec<_>>();
            let mut entry = json!({
                "path": path.display().to_string(),
                "frames": frames,
                "total": summary(&total),
                "decode": stage(|s| s.decode),
                "resample": stage(|s| s.resample),
                "mel": stage(|s| s.mel),
                "db": stage(|s| s.db),
            });
            if stft_only {
                entry["stft_only"] = stage(|s| s.stft_only);
            }
            entry
        })
        .collect();
    let mut out = summary(&totals);
    out["task"] = json!("preprocess");
    out["threads"] = json!(rayon::current_num_threads());
    out["files"] = json!(files_json);
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn run_griffin_lim(
    magnitude_path: &Path,
    iters: usize,
    momentum: f32,
    init: Init,
    seed: u64,
    length: Option<usize>,
    repeat: usize,
    write: Option<&Path>,
) -> Result<Value> {
    let config = SignalConfig::default();
    let magnitude: Array2<f32> = ndarray_npy::read_npy(magnitude_path)?;
    let (frames, n_freqs) = magnitude.dim();
    if n_freqs != config.n_freqs() {
        bail!(
            "{} has {n_freqs} bins per frame; n_fft {} needs {}",
            magnitude_path.display(),
            config.n_fft,
            config.n_freqs()
        );
    }
    let length = length.unwrap_or(frames.saturating_sub(1) * config.hop_length);
    let stft = Stft::new(config.n_fft, config.hop_length)?;
    let gl = GriffinLim::new(stft.clone(), iters, momentum).with_init(init.into());
    let mut times = Vec::with_capacity(repeat);
    let mut signal = Vec::new();
    for _ in 0..repeat.max(1) {
        let (t, y) = timed(|| gl.reconstruct(magnitude.view(), length, seed));
        times.push(t);
        signal = y;
    }
    let sc = spectral_convergence(&stft, magnitude.view(), &signal);
    if let Some(path) = write {
        ndarray_npy::write_npy(path, &Array1::from(signal))?;
    }
    let mut out = summary(&times);
    out["task"] = json!("griffin_lim");
    out["init"] = json!(PhaseInit::from(init));
    out["iters"] = json!(iters);
    out["momentum"] = json!(momentum);
    out["frames"] = json!(frames);
    out["length"] = json!(length);
    out["threads"] = json!(rayon::current_num_threads());
    out["spectral_convergence"] = json!(sc);
    Ok(out)
}

fn main() -> Result<()> {
    let out = match Cli::parse().command {
        Command::Synth { out, rate, seconds } => {
            test_music::write_music_wav(&out, rate, seconds)?;
            json!({ "task": "synth", "path": out.display().to_string(), "rate": rate, "seconds": seconds })
        }
        Command::Preprocess { files, repeat, stages } => run_preprocess(&files, repeat, stages)?,
        Command::GriffinLim { magnitude, iters, momentum, init, seed, length, repeat, write } => {
            run_griffin_lim(&magnitude, iters, momentum, init, seed, length, repeat, write.as_deref())?
        }
    };
    println!("{out}");
    Ok(())
}
