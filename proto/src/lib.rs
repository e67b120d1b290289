//! melfuse wire formats: the ONNX model writer, the model-bundle manifest and the HTTP API types.
//!
//! This crate carries no ML framework: `melfuse-train` uses it to write `decoder.onnx` and
//! `manifest.json` from the burn model's weights, and `melfuse-serve` uses it to load and check a
//! bundle and to parse requests, so both sides agree on one definition of each format.
//!
//! - [`onnx`]: protobuf message types and [`onnx::GraphBuilder`] (opset 17 by default; BatchNorm is
//!   folded into the convolution before it on export, see [`onnx::fold_batch_norm_into_conv`]).
//! - [`manifest`]: `manifest.json` and [`manifest::Manifest::load`], which refuses a bundle whose
//!   parts disagree.
//! - [`generation`]: the generation rules (`prior`: `z = Σ w_g·centroid_g + temperature·ε`;
//!   `bank`: real codes, spherically interpolated), seeded.
//! - [`latent_bank`]: the bundle's optional bank of training codes (`latent_bank.bin`);
//!   [`walk_start`]: where a seed's walk through it starts.
//! - [`api`]: the `blend` parameter ([`api::BlendSpec`]) and the error body ([`api::ErrorBody`]).

#![warn(missing_docs)]

pub mod api;
pub mod generation;
pub mod latent_bank;
pub mod manifest;
pub mod onnx;
pub mod walk_start;
