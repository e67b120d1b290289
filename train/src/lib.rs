//! melfuse-train: everything that happens before a model is served — the
//! recorded-music corpus recipe, spectrogram inspection, data preparation (the
//! shard cache `fit` reads), training, evaluation and export to a model bundle. The synthetic
//! demo corpus is the `melfuse-synth` crate, re-exported as [`synth`] (`melfuse-train
//! synth-corpus` is its command).

pub mod config_file;
pub mod corpus;
pub mod eval;
pub mod export;
pub mod file_error;
pub mod fit;
pub mod inspect;
pub mod prepare;
pub mod signal_args;
/// The synthetic corpus generator (crate `melfuse-synth`), under its old path.
pub use melfuse_synth as synth;

#[cfg(test)]
mod test_args;
