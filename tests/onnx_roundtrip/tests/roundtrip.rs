//! burn-onnx's import of the exported decoder computes what the burn decoder computes: within
//! DESIGN.md's export bound of 1e-4 max abs, for random latents and several genre blends, at batch
//! sizes 1 and 7, for every exported opset.

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use melfuse_models::Decoder;
use melfuse_onnx_roundtrip::{map_opset17, opset13, opset17, opset21, spec, DECODER_RECORD, MAP_DECODER_RECORD};

/// DESIGN.md's bound between the exported decoder and the burn decoder.
const MAX_ABS_ERROR: f32 = 1e-4;

/// The decoder `build.rs` exported, rebuilt from its saved record.
fn original(device: &Device) -> Decoder {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(DECODER_RECORD.to_vec())).expect("decoder record");
    spec::decoder_config().init(device).try_load_record(record).expect("record fits the spec's decoder")
}

/// The latent-map decoder `build.rs` exported, rebuilt from its saved record.
fn original_map(device: &Device) -> Decoder {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(MAP_DECODER_RECORD.to_vec())).expect("map record");
    spec::map_decoder_config().init(device).try_load_record(record).expect("record fits the map decoder")
}

/// Deterministic standard-normal-ish values (sum of uniforms, SplitMix64), so inputs do not depend
/// on the backend's RNG.
fn normals(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = state;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((x ^ (x >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..count).map(|_| (0..12).map(|_| uniform()).sum::<f32>() - 6.0).collect()
}

/// `batch` genre mixtures cycling through one-hot rows, a 50/50 blend, an even three-way blend and
/// skewed ones — every row non-negative and summing to 1.
fn blends(batch: usize) -> Vec<f32> {
    let patterns: [[f32; spec::N_GENRES]; 7] = [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.5, 0.5, 0.0],
        [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        [0.7, 0.2, 0.1],
        [0.05, 0.15, 0.8],
    ];
    (0..batch).flat_map(|row| patterns[row % patterns.len()]).collect()
}

fn inputs(batch: usize, seed: u64, device: &Device) -> (Tensor<2>, Tensor<2>) {
    inputs_of(spec::LATENT_DIM, batch, seed, device)
}

fn inputs_of(latent_dim: usize, batch: usize, seed: u64, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let z = TensorData::new(normals(batch * latent_dim, seed), [batch, latent_dim]);
    let genre = TensorData::new(blends(batch), [batch, spec::N_GENRES]);
    (Tensor::from_data(z, device), Tensor::from_data(genre, device))
}

fn values(tensor: Tensor<4>) -> Vec<f32> {
    tensor.into_data().try_into_vec::<f32>().expect("f32 output")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// One opset's imported model against the burn decoder, batch 1 and 7, two latent draws each.
fn check(opset: i64, forward: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<4>, device: &Device) {
    check_against(&original(device), spec::LATENT_DIM, opset, forward, device);
}

/// `forward` (an imported model) against `decoder`, whose latent has `latent_dim` values.
fn check_against(
    decoder: &Decoder,
    latent_dim: usize,
    opset: i64,
    forward: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<4>,
    device: &Device,
) {
    for batch in [1, 7] {
        for seed in [1, 2] {
            let (z, genre) = inputs_of(latent_dim, batch, seed * 100 + batch as u64, device);
            let expected = decoder.forward(z.clone(), genre.clone());
            let imported = forward(z, genre);
            assert_eq!(imported.dims(), [batch, 1, spec::N_MELS, spec::FRAMES], "opset {opset}, batch {batch}");
            let error = max_abs_diff(&values(imported), &values(expected));
            println!("opset {opset}, batch {batch}, seed {seed}: max |burn-onnx import − burn| = {error:e}");
            assert!(error <= MAX_ABS_ERROR, "opset {opset}, batch {batch}: max abs error {error} > {MAX_ABS_ERROR}");
        }
    }
}

#[test]
fn opset_13_import_equals_the_burn_decoder() {
    let device = Device::flex();
    let model = opset13::load(&device);
    check(13, |z, genre| model.forward(z, genre), &device);
}

#[test]
fn opset_17_import_equals_the_burn_decoder() {
    let device = Device::flex();
    let model = opset17::load(&device);
    check(17, |z, genre| model.forward(z, genre), &device);
}

#[test]
fn opset_21_import_equals_the_burn_decoder() {
    let device = Device::flex();
    let model = opset21::load(&device);
    check(21, |z, genre| model.forward(z, genre), &device);
}

#[test]
fn latent_map_import_equals_the_burn_decoder() {
    let device = Device::flex();
    let decoder = original_map(&device);
    assert_eq!(decoder.latent_channels, spec::MAP_CHANNELS);
    let model = map_opset17::load(&device);
    check_against(&decoder, spec::map_decoder_config().latent_dim, 17, |z, genre| model.forward(z, genre), &device);
    // The per-cell projection is not a relabelled vector projection: swapping the two time cells
    // of every channel changes the output (latents at 10× the unit scale, so the random decoder's
    // small response to its latent stands far above the bound).
    let (z, genre) = inputs_of(2 * spec::MAP_CHANNELS, 3, 9, &device);
    let z = z.mul_scalar(10.0);
    let swapped = z.clone().reshape([3, spec::MAP_CHANNELS, 2]).flip([2]).reshape([3, 2 * spec::MAP_CHANNELS]);
    let moved = max_abs_diff(&values(decoder.forward(z, genre.clone())), &values(decoder.forward(swapped, genre)));
    assert!(moved > 100.0 * MAX_ABS_ERROR, "swapping time cells moves the output by only {moved}");
}

/// The comparison above can fail: the fixture's BatchNorms are not the identity (so a dropped or
/// misfolded BatchNorm changes the output), and the decoder's output moves far more than the
/// bound when the genre or latent changes (so an importer that ignored an input, or a sigmoid
/// stuck at 0 or 1, would show).
#[test]
fn the_fixture_is_sensitive_enough_for_the_bound_to_mean_something() {
    let device = Device::flex();
    let decoder = original(&device);
    let variance = decoder.expand.norm.running_var.value().into_data().try_into_vec::<f32>().expect("f32 stats");
    let furthest = variance.iter().map(|v| (v - 1.0).abs()).fold(0.0, f32::max);
    assert!(furthest > 0.1, "running variances still at their initial 1: {variance:?}");

    let (z, genre) = inputs(7, 3, &device);
    let base = values(decoder.forward(z.clone(), genre.clone()));
    let rolled_genre = Tensor::cat(vec![genre.clone().slice(s![1..7, ..]), genre.clone().slice(s![0..1, ..])], 0);
    let other_genre = values(decoder.forward(z.clone(), rolled_genre));
    let other_z = values(decoder.forward(z.mul_scalar(-1.0), genre));
    for (what, other) in [("genre", &other_genre), ("latent", &other_z)] {
        let moved = max_abs_diff(&base, other);
        assert!(moved > 100.0 * MAX_ABS_ERROR, "changing the {what} moves the output by only {moved}");
    }
    let (low, high) = base.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(low > 1e-3 && high < 1.0 - 1e-3 && high - low > 0.05, "output range {low}..{high} is degenerate");
}

#[test]
fn latent_map_import_decodes_any_number_of_columns_in_one_pass() {
    // The map graph's time axis is dynamic: a map of 1, 3 or 5 latent columns (the training
    // segment has 2) decodes to 32 frames per column, as the burn decoder draws it.
    let device = Device::flex();
    let decoder = original_map(&device);
    let model = map_opset17::load(&device);
    for columns in [1, 3, 5] {
        let (z, genre) = inputs_of(columns * spec::MAP_CHANNELS, 2, 40 + columns as u64, &device);
        let expected = decoder.forward(z.clone(), genre.clone());
        let imported = model.forward(z, genre);
        assert_eq!(imported.dims(), [2, 1, spec::N_MELS, 32 * columns], "{columns} columns");
        let error = max_abs_diff(&values(imported), &values(expected));
        println!("{columns} columns: max |burn-onnx import − burn| = {error:e}");
        assert!(error <= MAX_ABS_ERROR, "{columns} columns: max abs error {error} > {MAX_ABS_ERROR}");
    }
}
