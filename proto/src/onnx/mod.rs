//! Writing (and reading back) ONNX models: protobuf message types, a graph builder with the operators
//! melfuse's decoder needs, and BatchNorm folding.

mod fold;
mod graph_builder;
mod shape;
pub mod types;

use std::ops::RangeInclusive;

use thiserror::Error;

pub use fold::{fold_batch_norm_into_conv, BatchNorm, FoldError};
pub use graph_builder::{ir_version_for_opset, Conv2d, GraphBuilder, Linear, DEFAULT_OPSET, SUPPORTED_OPSETS};
pub use shape::{declared_tensor, format_shape, Dim};
pub use types::{DataType, ModelProto};

/// Why a graph could not be built. The builder should be dropped after an error: the values added
/// before the failing call stay in it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    /// The requested opset is outside what the builder writes.
    #[error("opset {opset} is not supported (supported: {supported:?})")]
    UnsupportedOpset {
        /// The opset asked for.
        opset: i64,
        /// What is supported.
        supported: RangeInclusive<i64>,
    },
    /// A node reads a value that no input, initializer or earlier node defines.
    #[error("node `{node}` ({op_type}) reads `{input}`, which is not a graph input, initializer or earlier output")]
    UnknownInput {
        /// The node, named after its first output.
        node: String,
        /// Its operator.
        op_type: String,
        /// The unknown input name.
        input: String,
    },
    /// A name given explicitly is already used by another value.
    #[error("the name `{name}` is already used in this graph")]
    DuplicateName {
        /// The clashing name.
        name: String,
    },
    /// A constant's value count does not match its shape.
    #[error("initializer `{name}` has shape {dims:?} ({expected} values) but {actual} values were given")]
    TensorSize {
        /// Initializer name.
        name: String,
        /// Its declared shape.
        dims: Vec<usize>,
        /// Values the shape holds.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// An operator helper's parameters do not fit together (e.g. a bias of the wrong length).
    #[error("node `{node}`: {detail}")]
    ParameterMismatch {
        /// The node.
        node: String,
        /// What does not fit.
        detail: String,
    },
    /// A node was given no outputs.
    #[error("a `{op_type}` node was given no outputs")]
    NoNodeOutputs {
        /// Its operator.
        op_type: String,
    },
    /// A declared graph output is produced by no node.
    #[error("graph output `{name}` is not produced by any node")]
    UndefinedOutput {
        /// The output name.
        name: String,
    },
    /// The graph declares no outputs.
    #[error("the graph declares no outputs")]
    NoGraphOutputs,
}
