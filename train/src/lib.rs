//! melfuse-train: everything that happens before a model is served — the
//! recorded-music corpus recipe, the synthetic demo corpus, spectrogram inspection, data preparation (the
//! shard cache `fit` reads), training, evaluation and export to a model bundle.

pub mod config_file;
pub mod corpus;
pub mod eval;
pub mod export;
pub mod fit;
pub mod inspect;
pub mod prepare;
pub mod signal_args;
pub mod synth;

#[cfg(test)]
mod test_args;
