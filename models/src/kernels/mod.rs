//! Training kernels: the model's convolutions and BatchNorms as single differentiable operations
//! whose backward passes this crate chooses, with fast CPU kernels for the `flex` backend.
//!
//! # Why
//!
//! On `flex` (burn's CPU backend) the forward convolution is im2col + GEMM, but its backward is
//! burn's generic decomposition: the weight gradient is a convolution of swapped tensors whose
//! "kernel" is the whole output map (poor GEMM shapes), and training-mode BatchNorm is about ten
//! tensor operations forward and fifteen backward, each a full pass over the activation, several
//! of them strided reductions. `cargo run --release -p melfuse-models --example step_profile`
//! measured, tiny preset at batch 8 on 2 cores: conv weight gradient 38 % of the step, input
//! gradient 21 %, forward 19 %, BatchNorm 17 % (paper preset at batch 2: 42 / 21 / 18 / 13 %).
//!
//! # How
//!
//! burn 0.22 picks the backend at run time, so custom operations are a backend extension
//! ([`TrainOps`], routed by `#[backend_extension]` to `Flex`, `Cube` with the `cuda` feature, and
//! their `Autodiff` wrappers). Its autodiff implementation ([`autodiff`]) records one node per
//! convolution and per BatchNorm and computes their gradients with the backend's
//! [`TrainKernels`]:
//!
//! - convolution: forward and input gradient are the backend's own (`conv2d`,
//!   `conv2d_x_backward`); the **weight gradient** on `flex` ([`flex`]) is one GEMM per tile of
//!   output rows, `dW[O, I·kh·kw] += grad[O, tile] · im2col(x)[tile, I·kh·kw]`, the tiles spread
//!   over the cores with one accumulator per thread;
//! - BatchNorm: on `flex` one pass for the statistics and one to normalise forward, one for the
//!   two per-channel sums and one for the input gradient backward, parallel over channels.
//!
//! Every other backend (CUDA) keeps burn's kernels through the traits' default bodies, so the
//! same model code trains there unchanged. The gradients equal burn's own within float rounding
//! (this module's tests compare both paths on every convolution shape the model uses).
//!
//! The 3×3 stride-1 convolutions — nearly all of the model's arithmetic — are computed directly
//! ([`direct_conv`], [`direct_weight_grad`]) rather than by im2col + GEMM: their finest layers
//! have 8–32 channels, where copying the input nine times costs more than the products. Other
//! convolutions (strided, 1×1, the 7×7 stem, maps under 16 wide) use burn-flex's forward and
//! input gradient and the GEMM weight gradient.
//!
//! # Measured
//!
//! 2 cores (AVX-512), release. Layer by layer, forward + backward with input and weights tracked
//! (`cargo run --release -p melfuse-models --example conv_kernels`, median of 5, ms):
//!
//! | layer | burn | kernels | speed-up |
//! |---|---:|---:|---:|
//! | tiny up-block conv 16→8, 64×320, batch 8 | 196.5 | 34.9 | 5.6× |
//! | tiny up-block conv 32→16, 32×160, batch 8 | 91.2 | 22.7 | 4.0× |
//! | tiny encoder conv 16→16 stride 2, 32×160, batch 8 | 24.8 | 11.6 | 2.1× |
//! | paper up-block conv 32→32, 128×1280, batch 2 | 1194.6 | 313.1 | 3.8× |
//! | paper encoder conv 64→64, 32×320, batch 2 | 141.4 | 46.4 | 3.0× |
//! | paper encoder conv 512→512, 4×40, batch 2 | 118.7 | 81.5 | 1.5× |
//! | tiny BatchNorm 8 ch, 64×320, batch 8 | 15.6 | 3.6 | 4.3× |
//! | paper BatchNorm 32 ch, 128×1280, batch 2 | 358.2 | 97.1 | 3.7× |
//!
//! A whole training step (`tests/bench/train_vs_pytorch`, forward + backward + Adam, samples/s
//! against PyTorch on the same cores; seven runs after, three before, on a machine whose speed
//! moved by up to 2× between runs): tiny at batch 8 from 0.26–0.31× to 0.71–0.94× (median 0.87),
//! paper at batch 2 from 0.17–0.28× to 0.36–0.89× (median 0.78; five of seven runs ≥ 0.75).
//! The paper preset at batch 8 peaks at 3.3 GB RSS (3.7 GB before).
//!
//! Use [`conv2d`] and [`batch_norm`] in place of `Conv2d::forward` and `BatchNorm::forward`:
//! they take burn's modules (parameters, records and the ONNX export are unchanged) and behave
//! exactly as those methods do, running statistics included.

pub mod autodiff;
pub mod direct_conv;
pub mod direct_weight_grad;
pub mod flex;
#[cfg(test)]
mod tests;

use burn::backend::ops::{BatchNormTrain, BatchNormTrainBackward, ConvOptions};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

/// The kernels behind [`TrainOps`]' backward passes, per concrete backend.
///
/// The default bodies are burn's own operations; `flex` overrides them with the kernels of
/// [`flex`]. Called on the inner backend of `Autodiff`, never through dispatch.
pub trait TrainKernels: Backend {
    /// `conv2d(x, weight, None, options)`.
    fn conv2d_forward(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// Gradient of `conv2d(x, weight, None, options)` with respect to `x`, given the output's
    /// gradient. Same shape as `x`.
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// Gradient of `conv2d(x, weight, None, options)` with respect to `weight`, given the output's
    /// gradient. Same shape as `weight`.
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    /// BatchNorm with the batch's own statistics: the output, and the batch mean and biased
    /// variance per channel.
    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormTrain<Self> {
        Self::batch_norm_train(x, gamma, beta, epsilon)
    }

    /// Gradients of [`TrainKernels::batch_norm_forward`] for its input, `gamma` and `beta`.
    fn batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> BatchNormTrainBackward<Self> {
        Self::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad)
    }
}

/// The model's differentiable training operations, dispatched to the tensor's backend.
///
/// On a plain backend they are the forward operations (burn's, or [`flex`]'s kernels); on an
/// autodiff backend ([`autodiff`]) each is one graph node whose backward calls [`TrainKernels`].
#[backend_extension(Flex, Cube: cfg(feature = "cuda"), Autodiff)]
pub trait TrainOps: Backend {
    /// `conv2d(x, weight)` without bias.
    fn conv2d_no_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// Training-mode BatchNorm: `(output, batch mean, batch biased variance)`.
    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let result = Self::batch_norm_train(x, gamma, beta, epsilon);
        (result.output, result.mean, result.variance)
    }
}

impl TrainKernels for burn::backend::Flex {
    fn conv2d_forward(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        flex::conv2d_forward(x, weight, options)
    }

    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        flex::conv2d_input_grad(x, weight, output_grad, options)
    }

    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        flex::conv2d_weight_grad(x, weight, output_grad, options)
    }

    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormTrain<Self> {
        flex::batch_norm_forward(x, gamma, beta, epsilon)
    }

    fn batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> BatchNormTrainBackward<Self> {
        flex::batch_norm_backward(x, gamma, mean, variance, epsilon, output_grad)
    }
}

/// Without autodiff, flex's forward operations are its [`TrainKernels`].
impl TrainOps for burn::backend::Flex {
    fn conv2d_no_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        <Self as TrainKernels>::conv2d_forward(x, weight, options)
    }

    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let result = <Self as TrainKernels>::batch_norm_forward(x, gamma, beta, epsilon);
        (result.output, result.mean, result.variance)
    }
}

#[cfg(feature = "cuda")]
impl TrainKernels for burn::backend::Cube {}

#[cfg(feature = "cuda")]
impl TrainOps for burn::backend::Cube {}

/// `conv.forward(input)` through [`TrainOps`]: the same result, with the kernels' forward and
/// backward passes.
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // Input-dependent padding (burn computes it privately): burn's own path, unchanged.
        PaddingConfig2d::Same => return conv.forward(input),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    let output = Tensor::<4>::from_dispatch(<Dispatch as TrainOps>::conv2d_no_bias(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
    ));
    match &conv.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            output + bias.val().reshape([1, channels, 1, 1])
        }
        None => output,
    }
}

/// `norm.forward(input)` through [`TrainOps`]: batch statistics (and the running-statistics
/// update, momentum as configured) on an autodiff device when the layer trains, running
/// statistics otherwise — the same rule and arithmetic as burn's `BatchNorm::forward`.
pub fn batch_norm(norm: &BatchNorm, input: Tensor<4>) -> Tensor<4> {
    if !(input.device().is_autodiff() && norm.training.is_enabled()) {
        return norm.forward(input);
    }
    let (output, mean, variance) = <Dispatch as TrainOps>::batch_norm_batch_stats(
        input.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
    );
    let output = Tensor::<4>::from_dispatch(output);
    let mean = Tensor::<1>::from_dispatch(mean).detach();
    let variance = Tensor::<1>::from_dispatch(variance).detach();
    let device = output.device();
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - norm.momentum).add(mean.mul_scalar(norm.momentum));
    let running_var = running_var.mul_scalar(1.0 - norm.momentum).add(variance.mul_scalar(norm.momentum));
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
    output
}
