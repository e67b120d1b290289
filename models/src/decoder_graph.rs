//! The trained burn decoder as an ONNX graph (`decoder.onnx`): inputs `z: [batch, Z]` and
//! `genre: [batch, G]`, output `mel: [batch, 1, n_mels, frames]` in normalised units, batch dynamic.
//!
//! The graph mirrors [`Decoder::forward`] operator for operator. Every
//! `conv → BatchNorm` pair (the 1×1 expansion, both 3×3 convolutions of each upsampling block and
//! every projection shortcut) is folded into one `Conv` at export, since inference-mode BatchNorm
//! is a fixed per-channel affine map; nothing else is fused. Operators used: Concat, Gemm, Reshape,
//! Conv, Relu, Resize (nearest ×2), Add, Sigmoid. A latent map ([`crate::LatentHead::Map`]) keeps
//! the `z: [batch, Z]` interface: the graph reshapes it to `[batch, C, n_mels/d, frames/d]`
//! (see `latent_map_projection`).
//!
//! # A dynamic time axis for latent maps
//!
//! Every layer after a latent map's per-cell projection is a convolution or a ×2 upsampling, so
//! the graph of a map decoder leaves the time axis open: `z: [batch, latent]` holds any whole
//! number of latent columns (channel-major `[C][n_mels/d][columns]`, the reshape infers the
//! width) and `mel: [batch, 1, n_mels, frames]` follows, `d` frames per column. One model
//! segment's `Z` values decode exactly as before; a longer map, e.g. the bank's tiles of one
//! stretch of track joined by `melfuse_proto::manifest::join_latent_maps`, decodes as one clip in
//! one pass, with no segments to cross-fade. The manifest says so with `latent_time_cells`
//! ([`latent_time_cells`]).
//!
//! # Why here, behind the `onnx` feature
//!
//! It must change whenever [`Decoder::forward`] does, so it lives beside it. It writes
//! through `melfuse-proto`'s [`GraphBuilder`] (prost messages), which is why it sits behind this
//! crate's `onnx` feature: by default `melfuse-models` stays free of protobuf, and
//! `melfuse-proto` stays free of burn — which matters, since `melfuse-serve` depends on proto and
//! a burn feature there would be unified into the service's build in every workspace build.
//! `melfuse-train export` and `tests/onnx_roundtrip`'s build script turn the feature on; the
//! latter so no longer compiles the trainer before it can generate code.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use melfuse_proto::manifest::{decoder_interface, INPUT_GENRE, INPUT_Z, OUTPUT_MEL};
use melfuse_proto::onnx::{self as onnx, DataType, GraphBuilder, GraphError};

use crate::{Decoder, Projection, UpBlock};

/// The ONNX `producer_name` of the exported decoder: the command users run to make it.
pub const PRODUCER: &str = "melfuse-train";

/// Why the decoder could not be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum DecoderGraphError {
    /// A parameter tensor could not be read back from the device.
    #[error("cannot read decoder parameter `{name}`: {detail}")]
    Parameter {
        /// Which parameter.
        name: String,
        /// The backend's message.
        detail: String,
    },
    /// The graph builder refused a node (a shape or naming inconsistency).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Shapes of the exported decoder's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderShape {
    /// Latent size `Z`.
    pub latent_dim: usize,
    /// Genres `G` of the conditioning vector.
    pub n_genres: usize,
    /// Mel bands of the output.
    pub n_mels: usize,
    /// Frames of the output.
    pub frames: usize,
}

/// Serialised ONNX model of `decoder` (which must be in inference mode: [`burn::module::Module::valid`],
/// as `melfuse-train`'s checkpoint loader returns it) at the given opset.
pub fn decoder_to_onnx(decoder: &Decoder, shape: DecoderShape, opset: i64) -> Result<Vec<u8>, DecoderGraphError> {
    let mut graph = GraphBuilder::new("melfuse_decoder")
        .with_opset(opset)?
        .with_producer(PRODUCER, env!("CARGO_PKG_VERSION"))
        .with_doc_string("melfuse genre-conditioned VAE decoder: mel = decoder(z, genre), values in [0, 1]");
    // The shapes the manifest will check against: one place decides which axes are dynamic.
    let (inputs, outputs) = decoder_interface(
        shape.latent_dim,
        shape.n_genres,
        shape.n_mels,
        shape.frames,
        latent_time_cells(decoder).is_some(),
    );
    for spec in &inputs {
        graph.input(&spec.name, DataType::Float, &spec.shape)?;
    }
    let (z, genre) = (INPUT_Z.to_string(), INPUT_GENRE.to_string());

    let grid = if decoder.latent_channels == 0 {
        let joined = graph.concat("latent_and_genre", &[&z, &genre], 1)?;
        let projected = linear(&mut graph, "project", &joined, &decoder.project)?;
        graph.reshape(
            "grid",
            &projected,
            &[-1, decoder.head_channels as i64, decoder.grid_height as i64, decoder.grid_width as i64],
        )?
    } else {
        latent_map_projection(&mut graph, &z, &genre, decoder)?
    };
    let expanded = projection(&mut graph, "expand", &grid, &decoder.expand)?;
    let mut hidden = graph.relu("expand_relu", &expanded)?;
    for (index, block) in decoder.blocks.iter().enumerate() {
        hidden = up_block(&mut graph, &format!("up{index}"), &hidden, &genre, block)?;
    }
    let logits = conv(&mut graph, "output", &hidden, &decoder.output, None)?;
    // Node outputs are named after their node, so the final Sigmoid is the interface's `mel`.
    let mel = graph.sigmoid(OUTPUT_MEL, &logits)?;
    debug_assert_eq!(mel, OUTPUT_MEL);
    for spec in &outputs {
        graph.output(&spec.name, DataType::Float, &spec.shape)?;
    }
    Ok(graph.to_bytes()?)
}

/// Latent columns in one model segment when `decoder` draws a latent map, whose exported graph
/// then has a dynamic time axis (module docs); `None` for a one-vector latent, whose graph is
/// fixed to one segment.
pub fn latent_time_cells(decoder: &Decoder) -> Option<usize> {
    (decoder.latent_channels > 0).then_some(decoder.grid_width)
}

/// The per-cell projection of a latent map (`Decoder::project_latent`): the burn `Linear(C + G →
/// head)` applied to `[z_cell, genre]` at every cell is split into a 1×1 Conv on the reshaped `z`
/// (its first `C` rows, with the bias) plus a per-channel genre bias (its last `G` rows, as Gemm),
/// so the graph needs no Expand or Transpose.
fn latent_map_projection(
    graph: &mut GraphBuilder,
    z: &str,
    genre: &str,
    decoder: &Decoder,
) -> Result<String, DecoderGraphError> {
    let channels = decoder.latent_channels;
    let head = decoder.head_channels;
    // `0` keeps the batch, `-1` takes whatever number of columns `z` holds.
    let map = graph.reshape("latent_map", z, &[0, channels as i64, decoder.grid_height as i64, -1])?;
    let weight = values("project.weight", decoder.project.weight.val())?;
    let n_genres = weight.len() / head - channels;
    // burn's Linear weight is [in, out] row-major; a Conv kernel is [out, in, 1, 1].
    let mut kernel = vec![0.0f32; head * channels];
    for (input, row) in weight.chunks_exact(head).take(channels).enumerate() {
        for (output, &value) in row.iter().enumerate() {
            kernel[output * channels + input] = value;
        }
    }
    let bias = decoder.project.bias.as_ref().map(|b| param_values("project.bias", b)).transpose()?;
    let layer = onnx::Conv2d {
        weight: &kernel,
        weight_dims: [head, channels, 1, 1],
        bias: bias.as_deref(),
        strides: [1, 1],
        pads: [0, 0, 0, 0],
    };
    let cells = graph.conv("project_cells", &map, &layer)?;
    let genre_rows = &weight[channels * head..];
    let genre_bias = graph.gemm(
        "project_genre",
        genre,
        &onnx::Linear { weight: genre_rows, in_features: n_genres, out_features: head, bias: None },
    )?;
    let genre_bias = graph.reshape("project_genre_nchw", &genre_bias, &[-1, head as i64, 1, 1])?;
    Ok(graph.add("grid", &cells, &genre_bias)?)
}

/// One upsampling block: nearest ×2, conv+BN (+ genre bias) → ReLU → conv+BN, plus the (projected)
/// skip, → ReLU. Mirrors `UpBlock::forward`.
fn up_block(
    graph: &mut GraphBuilder,
    name: &str,
    input: &str,
    genre: &str,
    block: &UpBlock,
) -> Result<String, DecoderGraphError> {
    let upsampled = graph.resize_nearest(&format!("{name}_upsample"), input, 2)?;
    let skip = match &block.shortcut {
        Some(shortcut) => projection(graph, &format!("{name}_shortcut"), &upsampled, shortcut)?,
        None => upsampled.clone(),
    };
    let first = conv(graph, &format!("{name}_conv1"), &upsampled, &block.conv1, Some(&block.norm1))?;
    let channels = block.norm1.gamma.val().dims()[0] as i64;
    let bias = linear(graph, &format!("{name}_genre_bias"), genre, &block.genre_bias)?;
    let bias = graph.reshape(&format!("{name}_genre_bias_nchw"), &bias, &[-1, channels, 1, 1])?;
    let first = graph.add(&format!("{name}_add_genre"), &first, &bias)?;
    let first = graph.relu(&format!("{name}_relu1"), &first)?;
    let second = conv(graph, &format!("{name}_conv2"), &first, &block.conv2, Some(&block.norm2))?;
    let sum = graph.add(&format!("{name}_residual"), &second, &skip)?;
    Ok(graph.relu(&format!("{name}_relu2"), &sum)?)
}

/// A 1×1 conv + BatchNorm shortcut/expansion, folded into one Conv.
fn projection(
    graph: &mut GraphBuilder,
    name: &str,
    input: &str,
    projection: &Projection,
) -> Result<String, DecoderGraphError> {
    conv(graph, name, input, &projection.conv, Some(&projection.norm))
}

/// `conv` (optionally followed by inference-mode `norm`, folded in) as one ONNX Conv.
fn conv(
    graph: &mut GraphBuilder,
    name: &str,
    input: &str,
    conv: &Conv2d,
    norm: Option<&BatchNorm>,
) -> Result<String, DecoderGraphError> {
    let weight_tensor = conv.weight.val();
    let weight_dims = weight_tensor.dims();
    let weight = values(&format!("{name}.weight"), weight_tensor)?;
    let bias = conv.bias.as_ref().map(|b| param_values(&format!("{name}.bias"), b)).transpose()?;
    let [kernel_height, kernel_width] = conv.kernel_size;
    let layer = onnx::Conv2d {
        weight: &weight,
        weight_dims,
        bias: bias.as_deref(),
        strides: conv.stride,
        pads: [kernel_height / 2, kernel_width / 2, kernel_height / 2, kernel_width / 2],
    };
    Ok(match norm {
        None => graph.conv(name, input, &layer)?,
        Some(norm) => {
            let gamma = param_values(&format!("{name}.gamma"), &norm.gamma)?;
            let beta = param_values(&format!("{name}.beta"), &norm.beta)?;
            let mean = values(&format!("{name}.running_mean"), norm.running_mean.value())?;
            let var = values(&format!("{name}.running_var"), norm.running_var.value())?;
            let norm =
                onnx::BatchNorm { gamma: &gamma, beta: &beta, mean: &mean, var: &var, epsilon: norm.epsilon as f32 };
            graph.conv_batch_norm(name, input, &layer, &norm)?
        }
    })
}

/// A burn `Linear` (`weight: [in, out]`) as Gemm.
fn linear(graph: &mut GraphBuilder, name: &str, input: &str, linear: &Linear) -> Result<String, DecoderGraphError> {
    let weight_tensor = linear.weight.val();
    let [in_features, out_features] = weight_tensor.dims();
    let weight = values(&format!("{name}.weight"), weight_tensor)?;
    let bias = linear.bias.as_ref().map(|b| param_values(&format!("{name}.bias"), b)).transpose()?;
    Ok(graph.gemm(name, input, &onnx::Linear { weight: &weight, in_features, out_features, bias: bias.as_deref() })?)
}

fn param_values<const D: usize>(name: &str, param: &Param<Tensor<D>>) -> Result<Vec<f32>, DecoderGraphError> {
    values(name, param.val())
}

/// Row-major f32 values of a tensor.
fn values<const D: usize>(name: &str, tensor: Tensor<D>) -> Result<Vec<f32>, DecoderGraphError> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| DecoderGraphError::Parameter { name: name.to_string(), detail: format!("{e:?}") })
}
