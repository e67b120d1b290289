//! Where one training step's time goes, by layer type and direction, on the `flex` CPU backend.
//! Run in release:
//!
//! ```text
//! cargo run --release -p melfuse-models --example step_profile -- [tiny|paper] [BATCH] [REPEATS]
//! ```
//!
//! Without arguments it profiles the tiny preset at batch 8 and the paper preset at batch 2 (the
//! shapes of `tests/bench/train_vs_pytorch`). Every layer of the model is run on its real input
//! shape, in forward order (this file walks `Encoder::forward` and `Decoder::forward` layer by
//! layer, through the same `melfuse_models::kernels` operations), and each operation is timed on
//! its own — the median of `REPEATS` runs after a warm-up:
//!
//! - convolution forward; its input gradient alone (parameters frozen, input tracked); its weight
//!   gradient alone (parameters tracked, input not) — the backward computes each only when it is
//!   needed, so the two add up to the convolution's backward;
//! - BatchNorm (training mode, batch statistics) forward and backward; nearest ×2 upsampling,
//!   max-pooling, linear layers, and the element-wise rest (ReLU, residual add, sigmoid) forward
//!   and backward;
//! - the loss with its backward, and one Adam step over every parameter.
//!
//! The table prints milliseconds per training step per row, its share of the sum, and the sum
//! beside a whole measured step: the difference is what isolated timing cannot attribute
//! (allocation, the autodiff graph's bookkeeping, cache effects between layers).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::Distribution;
use melfuse_models::block::upsample_nearest_2x;
use melfuse_models::kernels::{batch_norm, conv2d};
use melfuse_models::{BasicBlock, Projection, UpBlock, Vae, VaeConfig, VaeLossConfig, VaeOutput};

/// Milliseconds per step, by row of the table.
#[derive(Default)]
struct Profile {
    rows: BTreeMap<&'static str, Duration>,
    repeats: usize,
}

impl Profile {
    /// Median time of `repeats` runs of `work` after one warm-up run, added to `row`.
    fn time(&mut self, row: &'static str, mut work: impl FnMut() -> Duration) {
        work();
        let mut times: Vec<Duration> = (0..self.repeats).map(|_| work()).collect();
        times.sort();
        *self.rows.entry(row).or_default() += times[times.len() / 2];
    }

    /// Times the forward pass of `op` on `input` (row `forward`) and the backward pass alone of
    /// `op` with the input tracked (row `backward`); returns the output for the next layer.
    fn forward_backward<const D: usize, const E: usize>(
        &mut self,
        forward: &'static str,
        backward: &'static str,
        input: &Tensor<D>,
        op: impl Fn(Tensor<D>) -> Tensor<E>,
    ) -> Tensor<E> {
        self.time(forward, || timed(|| op(input.clone().detach())).1);
        self.time(backward, || {
            let output = op(input.clone().detach().require_grad()).sum();
            timed(|| output.backward()).1
        });
        op(input.clone().detach()).detach()
    }

    /// A convolution: forward, input gradient alone, weight gradient alone.
    fn conv(&mut self, conv: &Conv2d, input: &Tensor<4>) -> Tensor<4> {
        // A separate copy with fresh parameters: `set_require_grad(false)` on a clone would freeze
        // the parameters it shares with `conv` (and the model) too.
        let frozen = Conv2d {
            weight: Param::from_tensor(conv.weight.val().detach()),
            bias: conv.bias.as_ref().map(|bias| Param::from_tensor(bias.val().detach())),
            ..conv.clone()
        }
        .set_require_grad(false);
        self.time("conv forward", || timed(|| conv2d(conv, input.clone().detach())).1);
        self.time("conv backward: input gradient", || {
            let output = conv2d(&frozen, input.clone().detach().require_grad()).sum();
            timed(|| output.backward()).1
        });
        self.time("conv backward: weight gradient", || {
            let output = conv2d(conv, input.clone().detach()).sum();
            timed(|| output.backward()).1
        });
        conv2d(conv, input.clone().detach()).detach()
    }

    fn batch_norm(&mut self, norm: &BatchNorm, input: &Tensor<4>) -> Tensor<4> {
        self.forward_backward("batch norm forward", "batch norm backward", input, |x| batch_norm(norm, x))
    }

    fn relu(&mut self, input: &Tensor<4>) -> Tensor<4> {
        self.forward_backward("element-wise forward", "element-wise backward", input, relu)
    }

    fn linear(&mut self, linear: &Linear, input: &Tensor<2>) -> Tensor<2> {
        self.forward_backward("linear forward", "linear backward", input, |x| linear.forward(x))
    }

    fn pool(&mut self, pool: &MaxPool2d, input: &Tensor<4>) -> Tensor<4> {
        self.forward_backward("max-pool forward", "max-pool backward", input, |x| pool.forward(x))
    }

    fn upsample(&mut self, input: &Tensor<4>) -> Tensor<4> {
        self.forward_backward("upsample forward", "upsample backward", input, upsample_nearest_2x)
    }

    /// The residual sum and its ReLU.
    fn residual(&mut self, hidden: &Tensor<4>, skip: &Tensor<4>) -> Tensor<4> {
        let skip = skip.clone();
        self.forward_backward("element-wise forward", "element-wise backward", hidden, move |x| relu(x + skip.clone()))
    }

    fn projection(&mut self, projection: &Projection, input: &Tensor<4>) -> Tensor<4> {
        let hidden = self.conv(&projection.conv, input);
        self.batch_norm(&projection.norm, &hidden)
    }

    /// Mirrors `BasicBlock::forward`.
    fn basic_block(&mut self, block: &BasicBlock, input: &Tensor<4>) -> Tensor<4> {
        let skip = match &block.shortcut {
            Some(projection) => self.projection(projection, input),
            None => input.clone(),
        };
        let hidden = self.conv(&block.conv1, input);
        let hidden = self.batch_norm(&block.norm1, &hidden);
        let hidden = self.relu(&hidden);
        let hidden = self.conv(&block.conv2, &hidden);
        let hidden = self.batch_norm(&block.norm2, &hidden);
        self.residual(&hidden, &skip)
    }

    /// Mirrors `UpBlock::forward`.
    fn up_block(&mut self, block: &UpBlock, input: &Tensor<4>, genre: &Tensor<2>) -> Tensor<4> {
        let upsampled = self.upsample(input);
        let skip = match &block.shortcut {
            Some(projection) => self.projection(projection, &upsampled),
            None => upsampled.clone(),
        };
        let [batch, channels] = [genre.dims()[0], block.norm1.gamma.dims()[0]];
        let bias = self.linear(&block.genre_bias, genre).reshape([batch, channels, 1, 1]);
        let hidden = self.conv(&block.conv1, &upsampled);
        let hidden = self.batch_norm(&block.norm1, &hidden);
        let hidden =
            self.forward_backward("element-wise forward", "element-wise backward", &hidden, |x| relu(x + bias.clone()));
        let hidden = self.conv(&block.conv2, &hidden);
        let hidden = self.batch_norm(&block.norm2, &hidden);
        self.residual(&hidden, &skip)
    }

    /// Every layer of one forward pass of `model` on `images`, in order.
    fn model(&mut self, model: &Vae, images: &Tensor<4>, genre: &Tensor<2>) {
        let encoder = &model.encoder;
        let hidden = self.conv(&encoder.stem_conv, images);
        let hidden = self.batch_norm(&encoder.stem_norm, &hidden);
        let mut hidden = self.relu(&hidden);
        if let Some(pool) = &encoder.stem_pool {
            hidden = self.pool(pool, &hidden);
        }
        for block in &encoder.blocks {
            hidden = self.basic_block(block, &hidden);
        }
        let features: Tensor<2> = match &encoder.head_reduce {
            Some(reduce) => {
                let reduced = self.projection(reduce, &hidden);
                self.relu(&reduced).flatten(1, 3)
            }
            None => hidden.mean_dims(&[2, 3]).flatten(1, 3),
        };
        let mu = self.linear(&encoder.mu, &features);
        self.linear(&encoder.logvar, &features);

        let decoder = &model.decoder;
        let joined = Tensor::cat(vec![mu, genre.clone()], 1);
        let projected = self.linear(&decoder.project, &joined);
        let batch = images.dims()[0];
        let grid = projected.reshape([batch, decoder.head_channels, decoder.grid_height, decoder.grid_width]);
        let hidden = self.projection(&decoder.expand, &grid);
        let mut hidden = self.relu(&hidden);
        for block in &decoder.blocks {
            hidden = self.up_block(block, &hidden, genre);
        }
        let logits = self.conv(&decoder.output, &hidden);
        self.forward_backward("element-wise forward", "element-wise backward", &logits, sigmoid);
    }
}

/// Runs `work`, returning its result and how long it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = work();
    (result, started.elapsed())
}

fn profile(preset: &str, batch: usize, repeats: usize) {
    let config = match preset {
        "tiny" => VaeConfig::tiny(4),
        "paper" => VaeConfig::paper(4),
        other => return eprintln!("unknown preset {other}: tiny or paper"),
    };
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = config.init(&device).expect("presets are valid");
    let images = Tensor::<4>::random([batch, 1, config.n_mels, config.frames], Distribution::Default, &device);
    let genre = Tensor::<2>::zeros([batch, config.n_genres], &device).slice_fill(s![.., 0..1], 1.0);
    let loss_config = VaeLossConfig::new();
    let mut profile = Profile { repeats, ..Profile::default() };
    profile.model(&model, &images, &genre);

    // The loss and its backward, on the model's real output detached from the model.
    let output = model.forward(images.clone(), genre.clone(), model.sample_eps(batch, &device));
    let tracked = |tensor: &Tensor<2>| tensor.clone().detach().require_grad();
    profile.time("loss forward + backward", || {
        let leaves = VaeOutput {
            reconstruction: output.reconstruction.clone().detach().require_grad(),
            mu: tracked(&output.mu),
            logvar: tracked(&output.logvar),
            z: tracked(&output.z),
        };
        timed(|| loss_config.loss(&leaves, images.clone(), 0).total.backward()).1
    });

    // Adam over every parameter, with the gradients of a real step (computed untimed each time).
    let mut optimizer = AdamConfig::new().init();
    let mut stepped = Some(model.clone());
    profile.time("Adam step", || {
        let current = stepped.take().expect("the model is put back after each step");
        let output = current.forward(images.clone(), genre.clone(), current.sample_eps(batch, &device));
        let grads =
            GradientsParams::from_grads(loss_config.loss(&output, images.clone(), 0).total.backward(), &current);
        let (next, took) = timed(|| optimizer.step(1e-3, current, grads));
        stepped = Some(next);
        took
    });

    // Whole steps, as `experiments step-timing` measures them.
    let mut model = stepped.expect("the model is put back after each step");
    let mut whole = Vec::new();
    for step in 0..=repeats {
        let started = Instant::now();
        let output = model.forward(images.clone(), genre.clone(), model.sample_eps(batch, &device));
        let grads =
            GradientsParams::from_grads(loss_config.loss(&output, images.clone(), step).total.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
        if step > 0 {
            whole.push(started.elapsed());
        }
    }
    whole.sort();
    let whole = whole[whole.len() / 2];

    let sum: Duration = profile.rows.values().sum();
    println!("\n{preset} preset, batch {batch}, {} parameters, median of {repeats}", model.num_params());
    println!("| part | ms per step | share |");
    println!("|---|---:|---:|");
    let mut rows: Vec<_> = profile.rows.iter().collect();
    rows.sort_by_key(|(_, took)| std::cmp::Reverse(**took));
    for (row, took) in rows {
        println!("| {row} | {:.1} | {:.1} % |", ms(*took), 100.0 * took.as_secs_f64() / sum.as_secs_f64());
    }
    println!("| **sum of the parts** | **{:.1}** | 100 % |", ms(sum));
    println!(
        "| whole step, measured | {:.1} | {:.0} % of the sum |",
        ms(whole),
        100.0 * whole.as_secs_f64() / sum.as_secs_f64()
    );
}

fn ms(took: Duration) -> f64 {
    took.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    match args.first() {
        Some(preset) => {
            let default_batch = if preset == "paper" { 2 } else { 8 };
            let batch = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(default_batch);
            let repeats = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
            profile(preset, batch, repeats);
        }
        None => {
            profile("tiny", 8, 5);
            profile("paper", 2, 3);
        }
    }
}
