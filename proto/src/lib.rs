//! melfuse wire formats: the ONNX model writer, the model-bundle manifest and the HTTP API types.
//!
//! This crate carries no ML framework: `melfuse-train` uses it to write `decoder.onnx` and
//! `manifest.json` from the burn model's weights, and `melfuse-serve` uses it to load and check a
//! bundle and to parse requests, so both sides agree on one definition of each format.

pub mod api;
pub mod manifest;
pub mod onnx;
