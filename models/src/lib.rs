//! melfuse-models: the genre-conditioned VAE on mel spectrograms, written as burn modules.
//!
//! # Backends
//!
//! burn 0.22 has no `Backend` type parameter: tensors are `Tensor<D>` and the [`burn::tensor::Device`]
//! chooses the backend at run time, and every `init` takes a `&Device`. Binaries pick the backend
//! (`Device::flex()` on CPU, `Device::cuda(0)` with burn's `cuda` feature, which this crate's
//! `cuda` feature forwards) and wrap it with `.autodiff()` to train. The model code is the same on
//! every backend; only [`kernels`] — the convolutions' and BatchNorms' training operations, a
//! backend extension with its own backward passes and CPU kernels — names backends, which is why
//! this crate depends on burn's `flex`, `autodiff` and `extension` features.
//!
//! # Architecture
//!
//! Input `x: [B, 1, n_mels, frames]` in `[0, 1]`, `n_mels` and `frames` multiples of 32;
//! conditioning `genre: [B, G]`, a mixture (rows ≥ 0 summing to 1; one-hot for training clips).
//!
//! - [`Encoder`] (ResNet18): stem ([`Stem::Wide`]: 7×7/2 conv + BN + ReLU + 3×3/2 max-pool;
//!   [`Stem::Narrow`]: 3×3/2 conv + BN + ReLU), four stages of [`BasicBlock`]s
//!   (`blocks` = [2, 2, 2, 2], `widths` e.g. 64–512), stride 2 and a 1×1 projection shortcut
//!   where a stage halves the map; total ÷32. Then the latent head ([`LatentHead`]) →
//!   `mu, logvar: [B, Z]` (logvar clamped to `[logvar_min, logvar_max]`).
//! - Reparameterisation `z = mu + eps·exp(logvar/2)` with a caller-supplied `eps`
//!   ([`Vae::sample_eps`] draws one from the device's seeded RNG).
//! - [`Decoder`]: `[z, genre]` → Linear → reshape `[B, head_channels, n_mels/32, frames/32]` →
//!   1×1 conv + BN + ReLU to `decoder_base_channels` → five [`UpBlock`]s (nearest ×2 upsample,
//!   residual pair of 3×3 conv + BN, a per-stage `Linear(genre)` bias after the first BN, so
//!   the mixture steers every resolution) → 3×3 conv to one channel → sigmoid. Only ONNX
//!   `Concat, Gemm, Reshape, Conv, BatchNormalization, Relu, Add, Resize(nearest), Sigmoid`,
//!   and the parameters are pub fields for the hand-written exporter (`decoder_graph`, behind
//!   the `onnx` feature).
//! - Loss ([`VaeLossConfig`]): reconstruction ([`ReconstructionWeights`]: MSE, L1, pooled L1,
//!   time- and frequency-difference L1; each a mean over elements) + β·KL (sum over latent dims,
//!   mean over the batch), β warmed up linearly over `warmup_steps`.
//!
//! BatchNorm uses batch statistics only on an autodiff device in training state; call
//! [`burn::module::Module::valid`] on a trained model before inference or export so it uses the
//! running statistics and every row of a batch is independent.
//!
//! # Latent: a flattened map, 256 wide
//!
//! The seed study blamed its blurry output on a too-small latent, so `latent_dim` is config and
//! large by default (256 paper, 64 tiny). How the last feature map becomes that vector matters
//! as much: global average pooling (the ImageNet ResNet head) discards *when* and *at which
//! pitch* a feature occurs, which a spectrogram decoder must then guess. [`LatentHead::Flatten`]
//! (the default) reduces the map to `head_channels` with a 1×1 conv and flattens all
//! `n_mels/32 × frames/32` cells (paper: 32 × 4 × 40 = 5120 features) into the linears.
//! Experiment (`cargo run --release -p melfuse-models --example experiments -- latent-head 120`):
//! tiny preset, 8 synthetic clips of one genre with two tones each at random pitches and times,
//! Adam 3e-3, β = 1e-4 warmed up over 40 steps, 120 steps, flex on 2 CPU cores:
//!
//! | head | parameters | train MSE step 0 → 119 | inference MSE (z = mu) |
//! |---|---|---|---|
//! | Flatten | 948 225 | 0.2498 → 0.0118 | **0.0116** |
//! | GlobalAveragePool | 921 537 | 0.2652 → 0.0123 | 0.0141 |
//!
//! Flatten reconstructs 18 % better for 3 % more parameters (one seed, a short run: the
//! direction agrees with the argument, the size of the gap is not a measurement to quote).
//!
//! # Presets
//!
//! | preset | input | encoder | decoder | total parameters |
//! |---|---|---|---|---|
//! | [`VaeConfig::tiny`] | 64 × 320 | 16–128, 3×3 stem, Z = 64 | 128 → 64, 32, 32, 16, 8 | 949 169 (4 genres) |
//! | [`VaeConfig::paper`] | 128 × 1280 | 64–512, 7×7 stem, Z = 256 | 512 → 256, 128, 64, 32, 32 | 17 724 513 (4 genres) |
//!
//! The paper encoder is ResNet18's 11.2 M convolution weights plus 2.6 M in the flatten head;
//! its decoder is 3.9 M. One training step (forward + backward + Adam) in release on the flex
//! backend with this crate's [`kernels`], 2 CPU cores: tiny at batch 8 0.30–0.48 s (median 0.39),
//! paper at batch 2 2.8–6.9 s (median 3.3) over seven runs of `tests/bench/train_vs_pytorch`.

pub mod block;
pub mod decoder;
#[cfg(feature = "onnx")]
pub mod decoder_graph;
pub mod encoder;
pub mod error;
pub mod kernels;
pub mod loss;
pub mod vae;

pub use block::{BasicBlock, BasicBlockConfig, Projection, UpBlock, UpBlockConfig};
pub use decoder::{Decoder, DecoderConfig};
pub use encoder::{Encoder, EncoderConfig, LatentHead, Stem};
pub use error::VaeConfigError;
pub use loss::{kl_divergence, l1_loss, reconstruction_loss, ReconstructionWeights, VaeLoss, VaeLossConfig};
pub use vae::{Vae, VaeConfig, VaeOutput, DECODER_STAGES, ENCODER_STAGES};

/// Total down-sampling of the encoder and up-sampling of the decoder (2⁵): `n_mels` and
/// `frames` must be multiples of it.
pub const DOWNSAMPLING: usize = 32;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod training_tests;
