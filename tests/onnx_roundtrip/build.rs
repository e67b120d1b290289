//! Builds a small melfuse decoder with a fixed seed, saves its burn record, exports it to ONNX with
//! the project's own writer (`melfuse_models::decoder_graph`, the code `melfuse-train export`
//! runs) at several opsets, and turns each ONNX file into Rust with burn-onnx's importer
//! (`ModelGen`). The tests then compare the imported models with the original burn decoder.

use std::path::PathBuf;

use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn_onnx::{LoadStrategy, ModelGen};
use melfuse_models::decoder_graph::{decoder_to_onnx, DecoderShape};
use melfuse_models::Decoder;

#[path = "src/spec.rs"]
mod spec;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/spec.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));

    let device = Device::flex();
    device.seed(spec::SEED);
    let decoder = with_random_batch_norms(spec::decoder_config().init(&device), &device);

    let record = decoder.clone().into_record().into_bytes().expect("serialise the decoder record");
    std::fs::write(out_dir.join(spec::RECORD_FILE), &*record).expect("write the decoder record");
    for opset in spec::OPSETS {
        export_and_import(&decoder, spec::LATENT_DIM, opset, &out_dir.join(spec::onnx_file(opset)));
    }

    let map_config = spec::map_decoder_config();
    let map_decoder = with_random_batch_norms(map_config.init(&device), &device);
    let record = map_decoder.clone().into_record().into_bytes().expect("serialise the map decoder record");
    std::fs::write(out_dir.join(spec::MAP_RECORD_FILE), &*record).expect("write the map decoder record");
    export_and_import(&map_decoder, map_config.latent_dim, 17, &out_dir.join(spec::MAP_ONNX_FILE));
}

/// Writes `decoder` as ONNX at `opset` to `path` and generates burn-onnx's Rust for it.
fn export_and_import(decoder: &Decoder, latent_dim: usize, opset: i64, path: &std::path::Path) {
    let shape = DecoderShape { latent_dim, n_genres: spec::N_GENRES, n_mels: spec::N_MELS, frames: spec::FRAMES };
    let onnx = decoder_to_onnx(decoder, shape, opset).expect("export the decoder to ONNX");
    std::fs::write(path, onnx).expect("write decoder.onnx");
    // No loader code: it would need `burn-store` as a normal dependency, whose features change
    // the rest of the workspace's dependency graph and rebuild burn in CI. The tests read the
    // weights burn-onnx wrote (burnpack) with burn's own `ModuleRecord` instead.
    ModelGen::new()
        .input(path.to_str().expect("OUT_DIR is UTF-8"))
        .out_dir("model/")
        .load_strategy(LoadStrategy::None)
        .run_from_script();
}

/// A freshly initialised BatchNorm is the identity (γ 1, β 0, mean 0, variance 1), which would
/// let an exporter that drops or misfolds it pass. Every BatchNorm gets random statistics and
/// affine parameters instead, as after training.
fn with_random_batch_norms(mut decoder: Decoder, device: &Device) -> Decoder {
    decoder.expand.norm = randomise(decoder.expand.norm, device);
    decoder.blocks = decoder
        .blocks
        .into_iter()
        .map(|mut block| {
            block.norm1 = randomise(block.norm1, device);
            block.norm2 = randomise(block.norm2, device);
            block.shortcut = block.shortcut.map(|mut shortcut| {
                shortcut.norm = randomise(shortcut.norm, device);
                shortcut
            });
            block
        })
        .collect();
    decoder
}

fn randomise(norm: BatchNorm, device: &Device) -> BatchNorm {
    let channels = norm.gamma.dims()[0];
    let uniform = |low: f64, high: f64| Tensor::<1>::random([channels], Distribution::Uniform(low, high), device);
    BatchNorm {
        gamma: Param::from_tensor(uniform(0.5, 1.5)),
        beta: Param::from_tensor(uniform(-0.3, 0.3)),
        running_mean: RunningState::new(uniform(-0.5, 0.5)),
        running_var: RunningState::new(uniform(0.3, 2.0)),
        ..norm
    }
}
