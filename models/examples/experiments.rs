//! Measurements behind the crate's defaults, on the `flex` CPU backend. Run in release:
//!
//! ```text
//! cargo run --release -p melfuse-models --example experiments -- latent-head [steps]
//! cargo run --release -p melfuse-models --example experiments -- step-timing
//! cargo run --release -p melfuse-models --example experiments -- step-timing tiny 8 10   # one JSON line
//! ```
//!
//! `latent-head` trains the tiny preset with each [`LatentHead`] on one batch of 8 synthetic
//! spectrograms that share a genre (so only the latent can tell them apart) and prints the
//! reconstruction MSE; `step-timing` times forward + backward + Adam for the tiny preset at
//! batch 8 and the paper preset at batch 2.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use melfuse_models::{reconstruction_loss, LatentHead, Vae, VaeConfig, VaeLossConfig};

/// Learning rate of both experiments.
const LEARNING_RATE: f64 = 3e-3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latent-head") => {
            let steps = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(150);
            latent_head(steps);
        }
        Some("step-timing") if args.len() == 4 => {
            let (preset, batch, steps) = (&args[1], args[2].parse(), args[3].parse());
            let config = match preset.as_str() {
                "tiny" => VaeConfig::tiny(4),
                "paper" => VaeConfig::paper(4),
                other => return eprintln!("unknown preset {other}: tiny or paper"),
            };
            match (batch, steps) {
                (Ok(batch), Ok(steps)) => {
                    let seconds = time_steps(preset, config, batch, steps);
                    println!(
                        "{{\"implementation\": \"melfuse\", \"preset\": \"{preset}\", \"batch\": {batch}, \"steps\": {steps}, \
                         \"seconds\": {seconds}, \"samples_per_second\": {}}}",
                        (batch * steps) as f64 / seconds
                    );
                }
                _ => eprintln!("batch and steps must be whole numbers"),
            }
        }
        Some("step-timing") => step_timing(),
        _ => eprintln!("usage: experiments latent-head [steps] | step-timing [tiny|paper BATCH STEPS]"),
    }
}

/// `count` images, each a faint noise floor with two tones (horizontal stripes) at
/// pseudo-random heights that start and stop at pseudo-random times: the content a time-aware
/// latent has to carry.
fn synthetic_batch(config: &VaeConfig, count: usize, seed: u64, device: &Device) -> Tensor<4> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let (height, width) = (config.n_mels, config.frames);
    let mut pixels = vec![0.05f32; count * height * width];
    for image in 0..count {
        for _tone in 0..2 {
            let row = next(height - 4);
            let start = next(width / 2);
            let end = start + width / 8 + next(width / 2);
            for r in row..row + 3 {
                for c in start..end.min(width) {
                    pixels[(image * height + r) * width + c] = 0.9;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(pixels, [count, 1, height, width]), device)
}

/// One optimiser step; returns the updated model and the reconstruction MSE before the step.
fn train_step(
    model: Vae,
    optimizer: &mut burn::optim::ModuleOptimizer,
    loss_config: &VaeLossConfig,
    images: &Tensor<4>,
    genre: &Tensor<2>,
    step: usize,
) -> (Vae, f32) {
    let device = images.device();
    let eps = model.sample_eps(images.dims()[0], &device);
    let output = model.forward(images.clone(), genre.clone(), eps);
    let loss = loss_config.loss(&output, images.clone(), step);
    let reconstruction = loss.reconstruction.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);
    (optimizer.step(LEARNING_RATE, model, grads), reconstruction)
}

fn latent_head(steps: usize) {
    let batch = 8;
    for head in [LatentHead::Flatten, LatentHead::GlobalAveragePool] {
        let device = Device::flex().autodiff();
        device.seed(7);
        let config = VaeConfig::tiny(2).with_latent_head(head);
        let mut model = config.init(&device).expect("the tiny preset is valid");
        let images = synthetic_batch(&config, batch, 11, &device);
        let genre = Tensor::<2>::zeros([batch, 2], &device).slice_fill(s![.., 0..1], 1.0);
        let loss_config = VaeLossConfig::new().with_warmup_steps(steps / 3);
        let mut optimizer = AdamConfig::new().init();
        let started = Instant::now();
        let mut trace = Vec::new();
        for step in 0..steps {
            let (updated, reconstruction) = train_step(model, &mut optimizer, &loss_config, &images, &genre, step);
            model = updated;
            if step % (steps / 5).max(1) == 0 || step + 1 == steps {
                trace.push(format!("{step}:{reconstruction:.4}"));
            }
        }
        let plain = Device::flex();
        let inference = model.valid();
        let images = synthetic_batch(&config, batch, 11, &plain);
        let (mu, _) = inference.encode(images.clone());
        let genre = Tensor::<2>::zeros([batch, 2], &plain).slice_fill(s![.., 0..1], 1.0);
        let mse = reconstruction_loss(inference.decode(mu, genre), images).into_scalar::<f32>();
        println!(
            "{head:?}: {} params, training MSE {} | inference MSE (z = mu) {mse:.5} | {:.1?}",
            inference.num_params(),
            trace.join(" "),
            started.elapsed()
        );
    }
}

/// Times `repeats` training steps after one warm-up step; prints a summary and returns the total
/// seconds of the timed steps.
fn time_steps(name: &str, config: VaeConfig, batch: usize, repeats: usize) -> f64 {
    let device = Device::flex().autodiff();
    let mut model = config.init(&device).expect("presets are valid");
    let images = Tensor::<4>::random([batch, 1, config.n_mels, config.frames], Distribution::Default, &device);
    let genre = Tensor::<2>::zeros([batch, config.n_genres], &device).slice_fill(s![.., 0..1], 1.0);
    let loss_config = VaeLossConfig::new();
    let mut optimizer = AdamConfig::new().init();
    let mut times = Vec::new();
    for step in 0..=repeats {
        let started = Instant::now();
        let (updated, _) = train_step(model, &mut optimizer, &loss_config, &images, &genre, step);
        model = updated;
        // Step 0 allocates the optimiser state and warms the allocator; it is not counted.
        if step > 0 {
            times.push(started.elapsed());
        }
    }
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let best = times.iter().min().copied().unwrap_or_default();
    eprintln!("{name} (batch {batch}): mean {mean:.3?}, best {best:.3?} per step over {repeats} steps");
    times.iter().sum::<Duration>().as_secs_f64()
}

fn step_timing() {
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    time_steps("tiny", VaeConfig::tiny(4), 8, 5);
    time_steps("paper", VaeConfig::paper(4), 2, 3);
}
