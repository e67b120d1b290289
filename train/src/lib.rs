//! melfuse-train: everything that happens before a model is served — the
//! synthetic demo corpus, spectrogram inspection, and (later) preparation,
//! training and export.

pub mod config_file;
pub mod inspect;
pub mod signal_args;
pub mod synth;
