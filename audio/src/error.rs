//! The typed errors of the signal chain: each says what went wrong with which
//! input, so that callers can skip and count a bad file instead of dying.

use std::path::PathBuf;

/// Everything that can go wrong between a file on disk and a WAV on the wire.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The container format is not one melfuse decodes (WAV, AIFF, CAF, FLAC, OGG, MP3, MP4/M4A,
    /// Matroska/WebM).
    #[error("unsupported audio format: {detail}")]
    UnsupportedFormat {
        /// What was recognised, or not.
        detail: String,
    },
    /// The container is known but its codec is not (for example an ambisonic Opus stream, or a
    /// codec inside MP4 or Matroska that symphonia has no decoder for).
    #[error("unsupported codec: {detail}")]
    UnsupportedCodec {
        /// The codec, as far as it is known.
        detail: String,
    },
    /// The stream is damaged: undecodable packets or an inconsistent header.
    #[error("corrupt audio stream: {detail}")]
    Corrupt {
        /// What the decoder found.
        detail: String,
    },
    /// The stream ends before its header says it should.
    #[error("truncated audio stream: decoded {decoded} of {expected} frames")]
    Truncated {
        /// Frames actually decoded.
        decoded: u64,
        /// Frames the header announced.
        expected: u64,
    },
    /// The file holds no audio samples at all.
    #[error("the file contains no audio samples")]
    Empty,
    /// Every sample is (near) zero: nothing to learn from or to look at.
    #[error("the audio is silent (peak {peak_dbfs:.1} dBFS)")]
    Silent {
        /// Peak level found, in dBFS.
        peak_dbfs: f32,
    },
    /// The file's sample rate is outside what melfuse accepts.
    #[error("unsupported sample rate {rate} Hz (supported: 8000 to 192000 Hz)")]
    UnsupportedSampleRate {
        /// The rate the file declares.
        rate: u32,
    },
    /// Resampling failed.
    #[error("resampling failed: {detail}")]
    Resample {
        /// The resampler's reason.
        detail: String,
    },
    /// A parameter (configuration or argument) is out of range.
    #[error("invalid parameter `{name}`: {detail}")]
    InvalidParameter {
        /// The field's name, as in the configuration.
        name: &'static str,
        /// Why it is invalid.
        detail: String,
    },
    /// Writing a WAV file or buffer failed.
    #[error("cannot write WAV: {0}")]
    Wav(#[from] hound::Error),
    /// Encoding a PNG image failed.
    #[error("cannot write PNG: {0}")]
    Image(#[from] image::ImageError),
}
