//! The two residual building blocks: [`BasicBlock`] (ResNet18's, used by the encoder) and
//! [`UpBlock`] (its mirror with a ×2 nearest-neighbour upsample and a genre bias, used by the
//! decoder).
//!
//! Both are written with ONNX-expressible operations only — `Conv`, `BatchNormalization`, `Relu`,
//! `Add`, `Resize` (nearest), `Gemm`, `Reshape` — so the decoder can be exported by hand.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::kernels::{batch_norm, conv2d};

/// A 3×3 convolution with padding 1 and no bias (a BatchNorm always follows, whose β is the bias).
///
/// With stride 1 it keeps the spatial size; with stride 2 it halves an even size exactly.
pub(crate) fn conv3x3(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// Upsamples `[B, C, H, W]` to `[B, C, 2H, 2W]` by repeating every pixel in a 2×2 square.
///
/// This is ONNX `Resize` with `mode = nearest`, `coordinate_transformation_mode = asymmetric` and
/// `nearest_mode = floor` (output pixel `i` reads input pixel `floor(i / 2)`), scales `[1, 1, 2, 2]`.
pub fn upsample_nearest_2x(input: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = input.dims();
    interpolate(input, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([height * 2, width * 2]))
}

/// A 1×1 convolution + BatchNorm that brings a residual shortcut to the block's output shape
/// when the block changes the channel count or the resolution.
#[derive(Module, Debug)]
pub struct Projection {
    /// 1×1 convolution (no bias) with the block's stride.
    pub conv: Conv2d,
    /// Normalisation after the convolution.
    pub norm: BatchNorm,
}

impl Projection {
    pub(crate) fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, out_channels], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(out_channels).init(device),
        }
    }

    /// Applies `norm(conv(input))`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.norm, conv2d(&self.conv, input))
    }
}

/// Configuration of a [`BasicBlock`].
#[derive(Config, Debug)]
pub struct BasicBlockConfig {
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Channels of the block's output.
    pub out_channels: usize,
    /// Stride of the first convolution: 2 halves the resolution, 1 keeps it.
    #[config(default = 1)]
    pub stride: usize,
}

impl BasicBlockConfig {
    /// Builds the block; a projection shortcut is added when the stride or the width changes.
    pub fn init(&self, device: &Device) -> BasicBlock {
        let needs_projection = self.stride != 1 || self.in_channels != self.out_channels;
        BasicBlock {
            conv1: conv3x3(self.in_channels, self.out_channels, self.stride, device),
            norm1: BatchNormConfig::new(self.out_channels).init(device),
            conv2: conv3x3(self.out_channels, self.out_channels, 1, device),
            norm2: BatchNormConfig::new(self.out_channels).init(device),
            shortcut: needs_projection
                .then(|| Projection::new(self.in_channels, self.out_channels, self.stride, device)),
        }
    }
}

/// ResNet18's basic residual block:
/// `relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))`.
///
/// `shortcut` is the identity when shapes match, a [`Projection`] otherwise.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution; carries the block's stride.
    pub conv1: Conv2d,
    /// Normalisation after `conv1`.
    pub norm1: BatchNorm,
    /// Second 3×3 convolution, stride 1.
    pub conv2: Conv2d,
    /// Normalisation after `conv2`.
    pub norm2: BatchNorm,
    /// Projection shortcut, present when the block changes width or resolution.
    pub shortcut: Option<Projection>,
}

impl BasicBlock {
    /// `[B, C_in, H, W]` → `[B, C_out, H / stride, W / stride]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let skip = match &self.shortcut {
            Some(projection) => projection.forward(input.clone()),
            None => input.clone(),
        };
        let hidden = relu(batch_norm(&self.norm1, conv2d(&self.conv1, input)));
        let hidden = batch_norm(&self.norm2, conv2d(&self.conv2, hidden));
        relu(hidden + skip)
    }
}

/// Configuration of an [`UpBlock`].
#[derive(Config, Debug)]
pub struct UpBlockConfig {
    /// Channels of the block's input (before upsampling).
    pub in_channels: usize,
    /// Channels of the block's output.
    pub out_channels: usize,
    /// Length of the genre mixture vector that conditions the block.
    pub n_genres: usize,
}

impl UpBlockConfig {
    /// Builds the block; a projection shortcut is added when the width changes.
    pub fn init(&self, device: &Device) -> UpBlock {
        UpBlock {
            conv1: conv3x3(self.in_channels, self.out_channels, 1, device),
            norm1: BatchNormConfig::new(self.out_channels).init(device),
            genre_bias: LinearConfig::new(self.n_genres, self.out_channels).init(device),
            conv2: conv3x3(self.out_channels, self.out_channels, 1, device),
            norm2: BatchNormConfig::new(self.out_channels).init(device),
            shortcut: (self.in_channels != self.out_channels)
                .then(|| Projection::new(self.in_channels, self.out_channels, 1, device)),
        }
    }
}

/// The decoder's residual upsampling block, conditioned on the genre mixture:
///
/// ```text
/// u    = upsample_nearest_2x(x)
/// h    = relu(norm1(conv1(u)) + genre_bias(genre)[:, :, None, None])
/// out  = relu(norm2(conv2(h)) + shortcut(u))
/// ```
///
/// `genre_bias` is a linear map from the mixture to one bias per channel, so a one-hot genre
/// selects a learned per-genre offset and a blend interpolates between them at every stage.
#[derive(Module, Debug)]
pub struct UpBlock {
    /// First 3×3 convolution, applied after the upsample.
    pub conv1: Conv2d,
    /// Normalisation after `conv1`.
    pub norm1: BatchNorm,
    /// `genre [B, G]` → per-channel bias `[B, C_out]`, added after `norm1`.
    pub genre_bias: Linear,
    /// Second 3×3 convolution.
    pub conv2: Conv2d,
    /// Normalisation after `conv2`.
    pub norm2: BatchNorm,
    /// Projection shortcut from the upsampled input, present when the width changes.
    pub shortcut: Option<Projection>,
}

impl UpBlock {
    /// `x: [B, C_in, H, W]`, `genre: [B, G]` → `[B, C_out, 2H, 2W]`.
    pub fn forward(&self, input: Tensor<4>, genre: Tensor<2>) -> Tensor<4> {
        let upsampled = upsample_nearest_2x(input);
        let skip = match &self.shortcut {
            Some(projection) => projection.forward(upsampled.clone()),
            None => upsampled.clone(),
        };
        let [batch, channels] = [genre.dims()[0], self.norm1.gamma.dims()[0]];
        let bias = self.genre_bias.forward(genre).reshape([batch, channels, 1, 1]);
        let hidden = relu(batch_norm(&self.norm1, conv2d(&self.conv1, upsampled)) + bias);
        let hidden = batch_norm(&self.norm2, conv2d(&self.conv2, hidden));
        relu(hidden + skip)
    }
}
