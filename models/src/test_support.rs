//! Shared helpers for the unit tests: the CPU device and small configs.

use burn::prelude::*;

use crate::{Stem, VaeConfig};

/// The pure-Rust `flex` CPU backend without autodiff (inference-mode BatchNorm).
pub fn device() -> Device {
    Device::flex()
}

/// The `flex` backend with autodiff (training-mode BatchNorm, gradients).
pub fn autodiff_device() -> Device {
    Device::flex().autodiff()
}

/// A non-square, narrow config (32 mels × 64 frames → a 1×2 latent grid) that trains in seconds.
pub fn small_config(n_genres: usize) -> VaeConfig {
    VaeConfig::new(32, 64, n_genres)
        .with_latent_dim(16)
        .with_widths(vec![8, 16, 16, 32])
        .with_stem(Stem::Narrow)
        .with_head_channels(8)
        .with_decoder_base_channels(32)
        .with_decoder_widths(vec![32, 16, 16, 8, 8])
}

/// One-hot rows `[indices.len(), n_genres]`.
pub fn one_hot(indices: &[usize], n_genres: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; indices.len() * n_genres];
    for (row, &genre) in indices.iter().enumerate() {
        values[row * n_genres + genre] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [indices.len(), n_genres]), device)
}

/// Row-major `f32` copy of a tensor's values.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("float tensor")
}

/// Largest absolute element-wise difference of two tensors.
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
