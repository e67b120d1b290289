use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;
use melfuse_models::kernels::direct_conv::{conv3x3_same, SameConv3x3};
use std::time::Instant;

fn main() {
    let device = Device::flex();
    for (b, i, o, h, w) in [
        (2usize, 32usize, 32usize, 128usize, 1280usize),
        (2, 64, 64, 32, 320),
        (2, 256, 256, 8, 80),
        (8, 8, 8, 64, 320),
        (8, 16, 16, 32, 160),
    ] {
        let macs = (b * o * h * w * i * 9) as f64;
        let x = Tensor::<4>::random([b, i, h, w], Distribution::Default, &device);
        let wt = Tensor::<4>::random([o, i, 3, 3], Distribution::Default, &device);
        let xs = x.clone().into_data().to_vec::<f32>().unwrap();
        let ws = wt.clone().into_data().to_vec::<f32>().unwrap();
        let shape = SameConv3x3 { batch: b, in_channels: i, out_channels: o, height: h, width: w };
        let _ = conv3x3_same(&xs, &ws, shape);
        let t = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(conv3x3_same(&xs, &ws, shape));
        }
        let ours = t.elapsed().as_secs_f64() / 3.0;
        let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let _ = conv2d(x.clone(), wt.clone(), None, opts.clone()).into_data();
        let t = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(conv2d(x.clone(), wt.clone(), None, opts.clone()).into_data());
        }
        let theirs = t.elapsed().as_secs_f64() / 3.0;
        println!(
            "{b}x{i}->{o} {h}x{w}: direct {:.1} ms ({:.1} GFLOP/s), burn {:.1} ms ({:.1} GFLOP/s)",
            ours * 1e3,
            2.0 * macs / ours / 1e9,
            theirs * 1e3,
            2.0 * macs / theirs / 1e9
        );
    }
}
