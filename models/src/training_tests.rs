//! End-to-end training checks on the autodiff `flex` backend: gradients reach every part of the
//! model, and Adam overfits a handful of structured images.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use crate::test_support::{autodiff_device, one_hot, small_config, values};
use crate::{reconstruction_loss, VaeConfig, VaeLossConfig};

/// `count` images `[count, 1, n_mels, frames]`: image `i` is dark except a bright horizontal
/// stripe (a sustained tone) whose height depends on `i`, plus a short vertical onset whose
/// position in time also depends on `i`.
fn stripe_images(config: &VaeConfig, count: usize, device: &Device) -> Tensor<4> {
    let (height, width) = (config.n_mels, config.frames);
    let mut pixels = vec![0.05f32; count * height * width];
    for image in 0..count {
        let row_start = (image * 2 + 1) * height / (count * 2 + 2);
        let column = (image + 1) * width / (count + 1);
        for row in 0..height {
            for col in 0..width {
                let in_stripe = (row_start..row_start + 3).contains(&row);
                let in_onset = (column..column + 2).contains(&col) && row < height / 2;
                if in_stripe || in_onset {
                    pixels[(image * height + row) * width + col] = 0.9;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(pixels, [count, 1, height, width]), device)
}

#[test]
fn gradients_reach_the_encoder_stem_and_the_decoder_genre_bias() {
    let device = autodiff_device();
    let config = small_config(2);
    let model = config.init(&device).expect("valid config");
    let input = stripe_images(&config, 2, &device);
    let eps = model.sample_eps(2, &device);
    let output = model.forward(input.clone(), one_hot(&[0, 1], 2, &device), eps);
    let loss = VaeLossConfig::new().with_warmup_steps(0).loss(&output, input, 0);
    let grads = loss.total.backward();
    let stem = model.encoder.stem_conv.weight.grad(&grads).expect("stem gradient");
    let genre = model.decoder.blocks[0].genre_bias.weight.grad(&grads).expect("genre-bias gradient");
    assert!(values(stem.abs().sum())[0] > 0.0);
    assert!(values(genre.abs().sum())[0] > 0.0);
}

#[test]
fn adam_overfits_four_structured_images() {
    let device = autodiff_device();
    let config = small_config(4);
    let mut model = config.init(&device).expect("valid config");
    let images = stripe_images(&config, 4, &device);
    let genre = one_hot(&[0, 1, 2, 3], 4, &device);
    let loss_config = VaeLossConfig::new().with_beta(1e-4).with_warmup_steps(100);
    let mut optimizer = AdamConfig::new().init();

    let started = Instant::now();
    let steps = 200;
    let mut first = None;
    let mut last = f32::INFINITY;
    for step in 0..steps {
        let eps = model.sample_eps(4, &device);
        let output = model.forward(images.clone(), genre.clone(), eps);
        let loss = loss_config.loss(&output, images.clone(), step);
        let reconstruction = values(loss.reconstruction.clone())[0];
        assert!(reconstruction.is_finite(), "step {step}: non-finite loss");
        first.get_or_insert(reconstruction);
        last = reconstruction;
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optimizer.step(3e-3, model, grads);
    }
    let first = first.expect("at least one step");

    // The trained model in inference mode (running BatchNorm statistics, z = mu) also reconstructs.
    let inference = model.valid();
    let plain = Device::flex();
    let images = stripe_images(&config, 4, &plain);
    let (mu, _) = inference.encode(images.clone());
    let decoded = inference.decode(mu, one_hot(&[0, 1, 2, 3], 4, &plain));
    let inference_loss = values(reconstruction_loss(decoded, images))[0];

    let elapsed = started.elapsed();
    println!("overfit: {first:.5} → {last:.5} (training mode), {inference_loss:.5} (inference) in {elapsed:?}");
    assert!(last <= 0.2 * first, "reconstruction fell only from {first} to {last}");
    assert!(inference_loss <= 0.2 * first, "inference reconstruction {inference_loss} vs initial {first}");
}
