//! melfuse's ONNX decoder export read back by a second, independent implementation: burn-onnx's
//! importer turns the exported graph into Rust at build time, and the tests run that code against
//! the burn decoder it came from.
//!
//! The export is already checked against ONNX Runtime (`train/tests/export_cli.rs`); this crate
//! checks that the graph means the same thing to a second consumer — the operator forms and
//! attributes the writer emits (Gemm with an `[in, out]` weight, Reshape with `-1`, opset-13
//! `Resize` with a `scales` initializer, BatchNorm folded into `Conv`), read by code that shares
//! nothing with ONNX Runtime — at the lowest, default and highest opset the writer supports.
//!
//! `build.rs` builds a small decoder ([`spec`]) with random weights and random BatchNorm
//! statistics, saves its burn record, exports it with `melfuse_models::decoder_graph`
//! and runs `burn_onnx::ModelGen` on each ONNX file; the modules below include the generated code.

pub mod spec;

/// Includes the code burn-onnx generated for one exported opset. Generated code is not held to
/// this workspace's lints.
macro_rules! generated {
    ($(#[$doc:meta])* $module:ident, $file:literal) => {
        $(#[$doc])*
        #[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
        pub mod $module {
            include!(concat!(env!("OUT_DIR"), "/model/", $file, ".rs"));

            /// The generated model with the weights burn-onnx extracted from the ONNX file.
            pub fn load(device: &burn::prelude::Device) -> Model {
                let weights = include_bytes!(concat!(env!("OUT_DIR"), "/model/", $file, ".bpk"));
                $crate::load_weights(Model::new(device), weights)
            }
        }
    };
}

generated!(
    /// The decoder exported at opset 13, as burn-onnx imports it.
    opset13,
    "decoder_opset13"
);
generated!(
    /// The decoder exported at opset 17 (the export default), as burn-onnx imports it.
    opset17,
    "decoder_opset17"
);
generated!(
    /// The decoder exported at opset 21, as burn-onnx imports it.
    opset21,
    "decoder_opset21"
);

generated!(
    /// The latent-map decoder ([`spec::map_decoder_config`]) exported at opset 17, as burn-onnx
    /// imports it.
    map_opset17,
    "map_decoder_opset17"
);

/// `module` with the burnpack `weights` applied (burn-onnx's weight file, or a burn record).
fn load_weights<M: burn::module::Module>(module: M, weights: &[u8]) -> M {
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(weights.to_vec()))
        .expect("a burnpack weight file");
    module.try_load_record(record).expect("the weights fit the module")
}

/// The burn record of the decoder `build.rs` exported (weights and BatchNorm statistics).
pub const DECODER_RECORD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/decoder.bpk"));

/// The burn record of the latent-map decoder `build.rs` exported.
pub const MAP_DECODER_RECORD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/map_decoder.bpk"));
