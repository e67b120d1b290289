//! What can go wrong: [`ServeError`] while starting (library, bundle, configuration) and
//! [`GenerateError`] per request, each mapped onto an HTTP status by the handlers.

use melfuse_audio::error::AudioError;
use melfuse_proto::api::RequestError;
use melfuse_proto::manifest::ManifestError;
use thiserror::Error;

/// A failure to start or run the service.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The ONNX Runtime shared library could not be found; the message says how to get it.
    #[error("{0}")]
    RuntimeMissing(String),
    /// The library was found but could not be loaded or initialised.
    #[error("cannot load ONNX Runtime from {path}: {detail}")]
    RuntimeLoad {
        /// The library tried.
        path: String,
        /// ONNX Runtime's or the loader's message.
        detail: String,
    },
    /// The model bundle was refused.
    #[error("model bundle refused")]
    Bundle(#[from] ManifestError),
    /// ONNX Runtime refused the decoder or failed to run it.
    #[error("decoder: {0}")]
    Decoder(String),
    /// The signal or vocoder settings are unusable.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A configuration value is out of bounds; the message names it.
    #[error("configuration: {0}")]
    Config(String),
}

/// Why one generation request did not produce a clip.
#[derive(Debug, Error)]
pub enum GenerateError {
    /// A request field is invalid (400).
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// Every admission slot is taken (503 + Retry-After).
    #[error("the service is at capacity ({capacity} requests in progress); retry shortly")]
    Overloaded {
        /// The configured `queue_capacity`.
        capacity: usize,
    },
    /// The request ran past its deadline (504).
    #[error("the request exceeded its deadline of {timeout_ms} ms")]
    DeadlineExceeded {
        /// The configured `request_timeout_ms`.
        timeout_ms: u64,
    },
    /// The decoder or the worker pool stopped (the service is shutting down) (503).
    #[error("the service is shutting down")]
    ShuttingDown,
    /// Something failed inside the service (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ServeError> for GenerateError {
    fn from(error: ServeError) -> Self {
        GenerateError::Internal(error.to_string())
    }
}
