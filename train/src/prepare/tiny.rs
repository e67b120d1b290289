//! The tiny cache the trainer's tests, and anyone trying the pipeline in seconds, start from:
//! a synthetic corpus of `cn` and `edm` 2.5 s clips prepared at 22.05 kHz into 32 mels × 64
//! frames (1 s segments every 0.5 s, hop 256 → 4 segments per clip). A step of a narrowed tiny
//! model on it takes milliseconds.

use std::path::{Path, PathBuf};

use crate::synth::{write_corpus, Genre, SynthCorpusConfig, SynthError};

use super::{run, PrepareConfig, PrepareError};

/// Why the tiny cache could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TinyCacheError {
    /// Rendering the synthetic corpus failed.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// Preparing it failed.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
}

/// The settings of the tiny cache, with `validation_fraction` of the tracks held out.
pub fn tiny_prepare_config(validation_fraction: f64) -> PrepareConfig {
    let mut config = PrepareConfig { validation_fraction, ..PrepareConfig::default() };
    config.signal.sample_rate = 22_050;
    config.signal.n_fft = 1024;
    config.signal.hop_length = 256;
    config.signal.n_mels = 32;
    config.signal.segment_seconds = 1.0;
    config.signal.overlap_seconds = 0.5;
    config
}

/// Renders `clips_per_genre` clips of `cn` and `edm` into `root/corpus` and prepares them into
/// `root/cache` (returned) with [`tiny_prepare_config`].
pub fn tiny_cache(root: &Path, clips_per_genre: usize, validation_fraction: f64) -> Result<PathBuf, TinyCacheError> {
    let corpus = root.join("corpus");
    let synth = SynthCorpusConfig {
        clips_per_genre,
        seconds: 2.5,
        sample_rate: 22_050,
        genres: vec![Genre::Cn, Genre::Edm],
        ..SynthCorpusConfig::default()
    };
    write_corpus(&corpus, &synth, false)?;
    let cache = root.join("cache");
    run(&corpus, &cache, &tiny_prepare_config(validation_fraction), false)?;
    Ok(cache)
}

/// The unit tests' larger signal: 22.05 kHz, 64 mels, 2 s segments every 1 s, frames a multiple
/// of `frame_multiple`.
#[cfg(test)]
pub(crate) fn two_second_signal(frame_multiple: usize) -> melfuse_audio::SignalConfig {
    melfuse_audio::SignalConfig {
        sample_rate: 22_050,
        n_fft: 1024,
        hop_length: 256,
        n_mels: 64,
        segment_seconds: 2.0,
        overlap_seconds: 1.0,
        frame_multiple,
        ..Default::default()
    }
}
