//! melfuse-models: the genre-conditioned VAE on mel spectrograms, written as burn modules.
//!
//! (Architecture docs are filled in below once the latent-head experiment has run.)

pub mod block;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod loss;
pub mod vae;

pub use block::{BasicBlock, BasicBlockConfig, Projection, UpBlock, UpBlockConfig};
pub use decoder::{Decoder, DecoderConfig};
pub use encoder::{Encoder, EncoderConfig, LatentHead, Stem};
pub use error::VaeConfigError;
pub use loss::{kl_divergence, reconstruction_loss, VaeLoss, VaeLossConfig};
pub use vae::{Vae, VaeConfig, VaeOutput, DECODER_STAGES, ENCODER_STAGES};

/// Total down-sampling of the encoder and up-sampling of the decoder (2⁵): `n_mels` and
/// `frames` must be multiples of it.
pub const DOWNSAMPLING: usize = 32;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod training_tests;
