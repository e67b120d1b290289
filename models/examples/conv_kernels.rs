//! The training kernels against burn's own operations, layer by layer: forward + backward of one
//! convolution (input and weights tracked) and of one training-mode BatchNorm, on the shapes
//! where the presets spend their time. Run in release:
//!
//! ```text
//! cargo run --release -p melfuse-models --example conv_kernels -- [REPEATS]
//! ```
//!
//! Prints, per shape, the median milliseconds of burn's path and of `melfuse_models::kernels`
//! and the speed-up; `step_profile` shows what they add up to in a whole step.

use std::time::{Duration, Instant};

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use melfuse_models::kernels::{batch_norm, conv2d};

/// Median wall time of `repeats` runs of `work` after a warm-up.
fn median(repeats: usize, mut work: impl FnMut()) -> Duration {
    work();
    let mut times: Vec<Duration> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn row(name: &str, repeats: usize, burn_path: impl FnMut(), kernels_path: impl FnMut()) {
    let theirs = median(repeats, burn_path).as_secs_f64() * 1e3;
    let ours = median(repeats, kernels_path).as_secs_f64() * 1e3;
    println!("| {name} | {theirs:.1} | {ours:.1} | {:.1}× |", theirs / ours);
}

fn main() {
    let repeats = std::env::args().nth(1).and_then(|value| value.parse().ok()).unwrap_or(5);
    let device = Device::flex().autodiff();
    println!("threads: {}, median of {repeats}, ms per forward + backward\n", threads());
    println!("| layer | burn | kernels | speed-up |\n|---|---:|---:|---:|");
    let padding = PaddingConfig2d::Explicit(1, 1, 1, 1);
    // (name, in, out, stride, input [B, C, H, W]): the tiny preset at batch 8 (decoder's last
    // two stages, encoder's first), the paper preset at batch 2 (decoder's last stage, encoder's
    // first and last stages).
    let convs = [
        ("tiny up-block 16→8, 64×320", 16, 8, 1, [8, 16, 64, 320]),
        ("tiny up-block 32→16, 32×160", 32, 16, 1, [8, 32, 32, 160]),
        ("tiny encoder 16→16 /2, 32×160", 16, 16, 2, [8, 16, 32, 160]),
        ("paper up-block 32→32, 128×1280", 32, 32, 1, [2, 32, 128, 1280]),
        ("paper encoder 64→64, 32×320", 64, 64, 1, [2, 64, 32, 320]),
        ("paper encoder 512→512, 4×40", 512, 512, 1, [2, 512, 4, 40]),
    ];
    for (name, input_channels, output_channels, stride, shape) in convs {
        let conv = Conv2dConfig::new([input_channels, output_channels], [3, 3])
            .with_stride([stride, stride])
            .with_padding(padding.clone())
            .with_bias(false)
            .init(&device);
        let input = Tensor::<4>::random(shape, Distribution::Default, &device);
        let step = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = input.clone().detach().require_grad();
            let _ = forward(x).sum().backward();
        };
        row(name, repeats, || step(&|x| conv.forward(x)), || step(&|x| conv2d(&conv, x)));
    }
    for (name, shape) in
        [("tiny BatchNorm 8 × 64×320", [8, 8, 64, 320]), ("paper BatchNorm 32 × 128×1280", [2, 32, 128, 1280])]
    {
        let norm: BatchNorm = BatchNormConfig::new(shape[1]).init(&device);
        let norm = BatchNorm { gamma: Param::from_tensor(norm.gamma.val().detach()), ..norm };
        let input = Tensor::<4>::random(shape, Distribution::Default, &device);
        let step = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = input.clone().detach().require_grad();
            let _ = forward(x).sum().backward();
        };
        row(name, repeats, || step(&|x| norm.forward(x)), || step(&|x| batch_norm(&norm, x)));
    }
}

/// The cores rayon's global pool uses by default (what both paths run on).
fn threads() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}
