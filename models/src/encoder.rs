//! The ResNet18-style encoder: mel image `[B, 1, n_mels, frames]` → `mu, logvar: [B, Z]`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::block::{BasicBlock, BasicBlockConfig, Projection};
use crate::kernels::{batch_norm, conv2d};
use crate::{latent_grid, DOWNSAMPLING};

/// How the encoder's first layer reduces the input; both choices reach the same total ÷32
/// (`DOWNSAMPLING`) over the stem plus four stages.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum Stem {
    /// ResNet18's own stem: 7×7 stride-2 convolution + BatchNorm + ReLU + 3×3 stride-2 max-pool
    /// (÷4); the first stage then keeps the resolution and the other three halve it.
    /// Sees wide context early; the right choice for wide (64–512) models on 128-mel inputs.
    Wide,
    /// 3×3 stride-2 convolution + BatchNorm + ReLU (÷2), no max-pool; every stage halves.
    /// Far cheaper than the 7×7 for narrow models and keeps more detail of small inputs.
    Narrow,
}

/// How the final feature map `[B, C, n_mels/d, frames/d]` (`d` = `latent_downsampling`, 32 by
/// default) becomes the latent.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum LatentHead {
    /// 1×1 convolution down to `head_channels` + BatchNorm + ReLU, then flatten the whole map
    /// into the `mu`/`logvar` linears. Keeps *where* in time and frequency each feature is,
    /// which a spectrogram decoder needs; costs `head_channels · n_mels/d · frames/d · Z`
    /// weights per linear. The default (see the crate docs for the experiment behind it).
    Flatten,
    /// Global average pooling over the map, then the linears. Translation invariant and tiny,
    /// but throws away the time structure the decoder must rebuild.
    GlobalAveragePool,
    /// A latent *map* with a time axis: `mu` and `logvar` are 1×1 projections of every cell of
    /// the last feature map (`n_mels/d × frames/d` cells for `latent_downsampling` d) to
    /// `C = latent_dim / cells` channels, flattened channel-major (`[B, C, n_mels/d, frames/d]` →
    /// `[B, Z]`). No fully connected layer spans the grid, so a code says what happens in and
    /// around its own stretch of time, and the decoder mirrors it with a per-cell projection: the
    /// model is convolutional in time end to end. `latent_dim` must be a multiple of the cell
    /// count (the crate docs give the measurement behind choosing it).
    Map,
}

impl LatentHead {
    /// Whether this head keeps a map (one code per cell) rather than one vector per clip.
    pub fn is_map(self) -> bool {
        matches!(self, Self::Map)
    }
}

/// Configuration of an [`Encoder`]; normally derived from [`crate::VaeConfig`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Mel bands of the input (height), a multiple of 32.
    pub n_mels: usize,
    /// Frames of the input (width), a multiple of 32.
    pub frames: usize,
    /// Latent size `Z`.
    pub latent_dim: usize,
    /// Channels of the four stages.
    pub widths: Vec<usize>,
    /// BasicBlocks per stage.
    pub blocks: Vec<usize>,
    /// Stem variant.
    pub stem: Stem,
    /// Feature map → vector reduction.
    pub latent_head: LatentHead,
    /// Channels kept by the 1×1 reduction of [`LatentHead::Flatten`].
    pub head_channels: usize,
    /// Lower bound `logvar` is clamped to, so `exp(logvar)` cannot underflow to 0.
    pub logvar_min: f64,
    /// Upper bound `logvar` is clamped to, so `exp(logvar)` cannot overflow to inf.
    pub logvar_max: f64,
    /// Total down-sampling of the latent grid: 32 (every stage after the stem's halves), 16 or 8
    /// (the last one or two stages keep their resolution; see [`crate::VaeConfig`]).
    #[config(default = 32)]
    pub latent_downsampling: usize,
}

impl EncoderConfig {
    /// Builds the encoder. Expects a config that passed [`crate::VaeConfig::validate`]
    /// (four stages, sizes multiples of 32, non-zero widths); burn panics otherwise.
    pub fn init(&self, device: &Device) -> Encoder {
        let stem_width = self.widths[0];
        let (stem_conv, stem_pool, first_stride) = match self.stem {
            Stem::Wide => (
                Conv2dConfig::new([1, stem_width], [7, 7])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                    .with_bias(false)
                    .init(device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
                1,
            ),
            Stem::Narrow => (crate::block::conv3x3(1, stem_width, 2, device), None, 2),
        };

        let mut blocks = Vec::new();
        let mut in_channels = stem_width;
        // Stages from this one on keep their resolution (none for the full ÷32; never the first).
        let kept_stages = (DOWNSAMPLING / self.latent_downsampling).trailing_zeros() as usize;
        let first_unstrided = self.widths.len().saturating_sub(kept_stages);
        for (stage, (&width, &count)) in self.widths.iter().zip(&self.blocks).enumerate() {
            for index in 0..count {
                let stride = if index > 0 || stage >= first_unstrided {
                    1
                } else if stage == 0 {
                    first_stride
                } else {
                    2
                };
                blocks.push(BasicBlockConfig::new(in_channels, width).with_stride(stride).init(device));
                in_channels = width;
            }
        }

        let (grid_height, grid_width) = latent_grid(self.n_mels, self.frames, self.latent_downsampling);
        let grid_cells = grid_height * grid_width;
        // `features` is the width each linear reads; `outputs` what it writes (per cell for a map).
        let (head_reduce, features, outputs) = match self.latent_head {
            LatentHead::Flatten => (
                Some(Projection::new(in_channels, self.head_channels, 1, device)),
                self.head_channels * grid_cells,
                self.latent_dim,
            ),
            LatentHead::GlobalAveragePool => (None, in_channels, self.latent_dim),
            LatentHead::Map => (None, in_channels, self.latent_dim / grid_cells),
        };

        Encoder {
            stem_conv,
            stem_norm: BatchNormConfig::new(stem_width).init(device),
            stem_pool,
            blocks,
            head_reduce,
            mu: LinearConfig::new(features, outputs).init(device),
            logvar: LinearConfig::new(features, outputs).init(device),
            latent_map: self.latent_head.is_map(),
            latent_dim: self.latent_dim,
            logvar_min: self.logvar_min,
            logvar_max: self.logvar_max,
        }
    }
}

/// ResNet18-style encoder: stem, BasicBlocks stage by stage (each stage after the first halves
/// the resolution with a stride-2 block and a 1×1 projection shortcut), then the latent head.
#[derive(Module, Debug)]
pub struct Encoder {
    /// First convolution (7×7 stride 2 for [`Stem::Wide`], 3×3 stride 2 for [`Stem::Narrow`]).
    pub stem_conv: Conv2d,
    /// Normalisation after the stem convolution.
    pub stem_norm: BatchNorm,
    /// 3×3 stride-2 max-pool of [`Stem::Wide`]; absent for [`Stem::Narrow`].
    pub stem_pool: Option<MaxPool2d>,
    /// All BasicBlocks in order, stage after stage.
    pub blocks: Vec<BasicBlock>,
    /// 1×1 channel reduction before flattening ([`LatentHead::Flatten`]); absent when the head
    /// pools globally.
    pub head_reduce: Option<Projection>,
    /// Features → posterior mean (per cell of the map for [`LatentHead::Map`]).
    pub mu: Linear,
    /// Features → posterior log-variance (clamped to `[logvar_min, logvar_max]`), per cell for a map.
    pub logvar: Linear,
    /// Whether the latent is a map ([`LatentHead::Map`]): `mu`/`logvar` apply to every cell.
    pub latent_map: bool,
    /// Latent size `Z` (for a map, channels × cells).
    pub latent_dim: usize,
    /// See [`EncoderConfig::logvar_min`].
    pub logvar_min: f64,
    /// See [`EncoderConfig::logvar_max`].
    pub logvar_max: f64,
}

impl Encoder {
    /// `x: [B, 1, n_mels, frames]` → `(mu, logvar)`, both `[B, Z]`.
    pub fn forward(&self, input: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut hidden = relu(batch_norm(&self.stem_norm, conv2d(&self.stem_conv, input)));
        if let Some(pool) = &self.stem_pool {
            hidden = pool.forward(hidden);
        }
        for block in &self.blocks {
            hidden = block.forward(hidden);
        }
        if self.latent_map {
            // Cells last-but-one so the linears act on each cell's channels: [B, h, w, C_in].
            let cells = hidden.permute([0, 2, 3, 1]);
            let per_cell =
                |linear: &Linear, cells: Tensor<4>| linear.forward(cells).permute([0, 3, 1, 2]).flatten(1, 3);
            let mu = per_cell(&self.mu, cells.clone());
            let logvar = per_cell(&self.logvar, cells).clamp(self.logvar_min, self.logvar_max);
            return (mu, logvar);
        }
        let features: Tensor<2> = match &self.head_reduce {
            Some(reduce) => relu(reduce.forward(hidden)).flatten(1, 3),
            None => hidden.mean_dims(&[2, 3]).flatten(1, 3),
        };
        let mu = self.mu.forward(features.clone());
        let logvar = self.logvar.forward(features).clamp(self.logvar_min, self.logvar_max);
        (mu, logvar)
    }
}
