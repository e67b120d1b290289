//! The round-trip decoder's shape and seed, shared by `build.rs` (which builds, exports and
//! imports it) and the tests (which rebuild it from the saved record).
//!
//! Small enough to initialise, export and import in a build script without optimisation, yet
//! with every kind of node the real decoder has: a projection whose output is reshaped to a
//! non-square grid, identity *and* projected residual shortcuts, a genre bias in every block,
//! five nearest-neighbour upsamplings and the sigmoid head.

use melfuse_models::DecoderConfig;

/// Seed of the backend RNG before the decoder's weights and BatchNorm statistics are drawn.
pub const SEED: u64 = 20_240_611;
/// Latent size `Z`.
pub const LATENT_DIM: usize = 8;
/// Genres `G`.
pub const N_GENRES: usize = 3;
/// Mel bands of the output (one 32-row grid cell).
pub const N_MELS: usize = 32;
/// Frames of the output (two 32-frame grid cells, so height ≠ width everywhere).
pub const FRAMES: usize = 64;
/// ONNX opsets the decoder is exported at: the lowest, default and highest the writer supports.
pub const OPSETS: [i64; 3] = [13, 17, 21];

/// The decoder's architecture. Widths 16 → 16 → 16 → 8 → 8 → 4 give identity shortcuts in
/// blocks 0, 1 and 3 and 1×1 projection shortcuts in blocks 2 and 4.
pub fn decoder_config() -> DecoderConfig {
    DecoderConfig::new(N_MELS, FRAMES, LATENT_DIM, N_GENRES, 4, 16, vec![16, 16, 8, 8, 4])
}

/// File name (in `OUT_DIR`) of the decoder's burn record.
pub const RECORD_FILE: &str = "decoder.bpk";

/// Channels of the latent-map decoder's latent: `z` is `[B, 5 · 1 · 2]`, reshaped to `[B, 5, 1, 2]`.
pub const MAP_CHANNELS: usize = 5;

/// The same decoder taking a latent map (`melfuse_models::LatentHead::Map`): its projection is
/// per cell, exported as a 1×1 Conv on the reshaped `z` plus a Gemm genre bias. Exported at the
/// default opset only (the operators are the ones the vector decoder already covers at all three).
pub fn map_decoder_config() -> DecoderConfig {
    DecoderConfig::new(
        N_MELS,
        FRAMES,
        MAP_CHANNELS * (N_MELS / 32) * (FRAMES / 32),
        N_GENRES,
        6,
        16,
        vec![16, 16, 8, 8, 4],
    )
    .with_latent_map(true)
}

/// File name (in `OUT_DIR`) of the latent-map decoder's burn record.
pub const MAP_RECORD_FILE: &str = "map_decoder.bpk";

/// File name (in `OUT_DIR`) of the latent-map decoder exported at opset 17.
pub const MAP_ONNX_FILE: &str = "map_decoder_opset17.onnx";

/// File name (in `OUT_DIR`) of the decoder exported at `opset`.
pub fn onnx_file(opset: i64) -> String {
    format!("decoder_opset{opset}.onnx")
}
