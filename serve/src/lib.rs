//! melfuse-serve: the generation service. It loads a model bundle (`decoder.onnx` +
//! `manifest.json`, checked by `melfuse-proto`), runs the decoder in ONNX Runtime (loaded at run
//! time, CPU or CUDA), gathers concurrent requests into decoder batches, vocodes on a bounded
//! worker pool, and answers `GET /generate?blend=cn:0.6,edm:0.4` with WAV, PNG or npy, while
//! Prometheus scrapes `/metrics`. The offline `melfuse-serve generate` uses the same code path.
//!
//! - [`config`]: [`config::ServeConfig`], from TOML, flags and `MELFUSE_*` variables.
//! - [`onnxruntime`]: finding and loading the ONNX Runtime library.
//! - [`decoder`]: the decoder's ONNX Runtime session.
//! - [`batcher`]: dynamic batching on one decoder thread.
//! - [`segments`]: clips longer than a model segment, cross-faded.
//! - [`tile_windows`]: morphs over a tiled bank, each tile decoded with its own mixture.
//! - [`generator`]: one request from latents to the encoded body.
//! - [`http`]: the actix-web application.
//! - [`ui`]: the playground page at `/`.
//! - [`metrics`]: the Prometheus registry.

#![warn(missing_docs)]

pub mod batcher;
pub mod config;
pub mod decoder;
pub mod error;
pub mod generator;
pub mod http;
pub mod metrics;
pub mod onnxruntime;
pub mod segments;
pub mod tile_windows;
pub mod ui;
