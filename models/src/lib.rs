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
//!   `mu, logvar: [B, Z]` (logvar clamped to `[logvar_min, logvar_max]`); for
//!   [`LatentHead::Map`] a 1×1 projection of every cell, `[B, C, n_mels/32, frames/32]`
//!   flattened channel-major to `Z = C · cells`.
//! - Reparameterisation `z = mu + eps·exp(logvar/2)` with a caller-supplied `eps`
//!   ([`Vae::sample_eps`] draws one from the device's seeded RNG).
//! - [`Decoder`]: `[z, genre]` → Linear → reshape `[B, head_channels, n_mels/32, frames/32]`
//!   (for a latent map: reshape `z` to its cells, `Linear([z_cell, genre])` at every cell) →
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
//! # Latent map with a time axis, on a ÷8 grid (the demo's)
//!
//! On real music the Flatten vector (tiny: Z = 64 for 4 s) reconstructed every clip as a smooth
//! wash: edm's kick columns, melody lines and guitar texture gone. [`LatentHead::Map`] keeps one
//! code per cell instead (`mu`/`logvar` are 1×1 projections of each cell, the decoder projects
//! each cell back; no fully connected layer spans the grid, so the model is convolutional in time
//! and a code reaches only its neighbouring cells' frames), and `latent_downsampling` puts the
//! grid at ÷32, ÷16 or ÷8 (the last encoder stages keep their resolution, the decoder drops
//! upsampling blocks). The demo recipe (`models/demo/fit.toml`, 4 000 steps of batch 8 on the
//! Debian free-music cache, 2 CPU cores), validation reconstruction loss (five L1 terms) at step
//! 500 / 4 000:
//!
//! | latent | Z | β | step 500 | step 4 000 | samples/s |
//! |---|---|---|---|---|---|
//! | Flatten vector | 64 | 1e-5 | 0.2631 | 0.2152 | 18.8 |
//! | map, ÷32 grid (2 × 10 cells × 64 channels) | 1 280 | 1e-5 | 0.2813 | 0.1993 | 21.9 |
//! | map, ÷32 grid | 1 280 | 1e-9 | 0.2397 | (stopped at 1 770: 0.2178 at 1 500 against 0.2146) | – |
//! | map, ÷16 grid (4 × 20 cells × 16 channels) | 1 280 | 1e-5 | 0.2091 | 0.1734 | 22.2 |
//! | **map, ÷8 grid (8 × 40 cells × 8 channels)**, encoder's last stage 64 wide | 2 560 | 1e-5 | **0.2049** | **0.1363** | 24.3 |
//!
//! (samples/s: median of the run's log; the vector model's from its first 400 steps on another
//! day.) Raising the code's capacity alone (β 1e-5 → 1e-9: KL 240 →
//! 8 700 nats) did not sharpen anything; shortening the distance from a code to the pixels it
//! describes did, at every halving, and the judge agrees (`models/demo/README.md`: pulse 0.14 →
//! 0.23 → 0.50 → 0.74, distance 14.1× → 12.5× → 9.6× → 6.2× for the four judged rows). The finer
//! grids cost little step time: the encoder's last stages work on larger maps (at ÷8 the last
//! one is 64 wide instead of 128, a quarter of the operations), the decoder has fewer upsampling
//! blocks. The `z: [B, Z]` interface stays (the map flattened channel-major), so the bundle,
//! bank, service and judge are unchanged; the ONNX graph reshapes `z` to its cells
//! (`decoder_graph`, behind the `onnx` feature).
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
pub mod discriminator;
pub mod encoder;
pub mod error;
pub mod kernels;
pub mod loss;
pub mod vae;

pub use block::{BasicBlock, BasicBlockConfig, Projection, UpBlock, UpBlockConfig};
pub use decoder::{Decoder, DecoderConfig};
pub use discriminator::{
    feature_matching_loss, hinge_critic_loss, hinge_generator_loss, CriticOutput, Discriminator, DiscriminatorConfig,
};
pub use encoder::{Encoder, EncoderConfig, LatentHead, Stem};
pub use error::VaeConfigError;
pub use loss::{
    contrast_profiles, kl_divergence, l1_loss, reconstruction_loss, ReconstructionWeights, VaeLoss, VaeLossConfig,
};
pub use vae::{Vae, VaeConfig, VaeOutput, DECODER_STAGES, ENCODER_STAGES, LATENT_DOWNSAMPLINGS};

/// `(height, width)` of the latent grid of an `n_mels × frames` image at `latent_downsampling`:
/// the encoder's last feature map, the decoder's first, and a latent map's cells. One formula for
/// the encoder, the decoder and config validation, which must agree.
pub fn latent_grid(n_mels: usize, frames: usize, latent_downsampling: usize) -> (usize, usize) {
    (n_mels / latent_downsampling, frames / latent_downsampling)
}

/// Total down-sampling of the encoder and up-sampling of the decoder (2⁵) at the default latent
/// grid (`VaeConfig::latent_downsampling` may make it 16 or 8): `n_mels` and `frames` must be
/// multiples of it whatever the grid.
pub const DOWNSAMPLING: usize = 32;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod training_tests;
