//! melfuse-audio: the signal chain between music files and the model — decode,
//! resample, segment, mel spectrogram, and the way back to a WAV file.
//!
//! Every transform follows librosa's definitions and parameter names (`n_fft`,
//! `hop_length`, `n_mels`, `fmin`, `fmax`) so that spectrograms computed here
//! match the reference tools; the parameters themselves live in
//! [`SignalConfig`] and [`VocoderConfig`], never as literals in the code.

pub mod config;
pub mod decode;
pub mod error;
pub mod load;
pub mod resample;

pub use config::{SignalConfig, VocoderConfig};
pub use error::AudioError;
