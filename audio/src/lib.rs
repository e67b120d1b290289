//! melfuse-audio: the signal chain between music files and the model — decode,
//! resample, segment, mel spectrogram, and the way back to a WAV file.
//!
//! Every transform follows librosa's definitions and parameter names (`n_fft`,
//! `hop_length`, `n_mels`, `fmin`, `fmax`) so that spectrograms computed here
//! match the reference tools; the parameters themselves live in
//! [`SignalConfig`] and [`VocoderConfig`], never as literals in the code.

pub mod atomic_file;
pub mod config;
pub mod decode;
pub mod error;
pub mod griffin_lim;
pub mod initial_phase;
pub mod inverse_mel;
pub mod load;
pub mod mel;
pub mod mel_filterbank;
pub mod normalization;
pub mod postfilter;
pub mod resample;
pub mod segment;
pub mod spectrogram_image;
pub mod stft;
pub mod vocoder;
pub mod wav;

pub use config::{SignalConfig, VocoderConfig};
pub use error::AudioError;
pub use mel::MelSpectrogram;
pub use normalization::DbRange;
pub use vocoder::Vocoder;
