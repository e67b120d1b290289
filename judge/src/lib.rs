//! melfuse-judge: what a model bundle generates, measured from the audio the service returns,
//! against reference audio of each genre that the model never trained on (DESIGN.md, "Quality").
//!
//! The seed study's model failed on exactly what is measured here: its samples lacked "rhythmic
//! integrity, shown by distinct vertical bands" and "bright bands in the mid-range frequencies
//! representing the dominant notes". For each genre the judge reports, as generated / reference
//! and ceiling / reference (the ceiling: the reference through mel → the service's own vocoder,
//! what a perfect model could reach):
//!
//! - genre accuracy of a classifier trained on the reference's training tracks ([`classifier`]),
//!   which must recognise ≥ 95 % of the held-out reference or the judge refuses to report;
//! - rhythmic integrity: onset pulse and spectral flux ([`analysis`]);
//! - melodic/harmonic bands: mid-range spectral peak over median ([`analysis`]);
//! - a Fréchet distance in the classifier's embedding over the reference's own split-half
//!   distance, and diversity ([`distance`]);
//! - blend curves: `P(b)` along weight sweeps between genre pairs, and morphs ([`judge`]).
//!
//! # Why a crate of its own
//!
//! The judge must hear what users hear, so it generates through `melfuse-serve`'s [`Generator`]
//! (in-process, the same code as `/generate`), and it must never link burn (neither may the
//! service). In `melfuse-train` it would pull ONNX Runtime and actix into the trainer and turn
//! the one-way flow (train → bundle → serve) into a loop; in `melfuse-serve` it would ship a
//! classifier, plots and a corpus reader inside the service image. A small crate depending on
//! serve, audio and proto keeps every arrow pointing one way.
//!
//! [`Generator`]: melfuse_serve::generator::Generator

#![warn(missing_docs)]

pub mod analysis;
pub mod classifier;
pub mod config;
pub mod distance;
pub mod generate;
pub mod judge;
pub mod picture;
pub mod reference;
pub mod report;

use std::path::PathBuf;

/// Why a judgement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A setting is out of range; the message names it.
    #[error("invalid judge setting: {0}")]
    Config(String),
    /// The reference folder is unusable.
    #[error("reference: {0}")]
    Reference(String),
    /// The analysis transform could not be built.
    #[error("analysis: {0}")]
    Analysis(String),
    /// The bundle could not be loaded or a clip not generated.
    #[error("service: {0}")]
    Service(String),
    /// A generation request was refused (a bad `request` field).
    #[error("request refused: {0}")]
    Request(String),
    /// The classifier is not good enough on the reference to judge anything.
    #[error("cannot judge: {0}")]
    CannotJudge(String),
}
