//! Declared tensor shapes: each axis a fixed size or a symbolic name, shared by the graph builder
//! and the bundle manifest so that both describe `decoder.onnx`'s inputs the same way.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::tensor_shape_proto::dimension::Value;
use super::types::{type_proto, ValueInfoProto};

/// One axis of a declared shape. In JSON a number or a string: `["batch", 64]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A named dynamic size, e.g. `batch`; equal names mean equal sizes.
    Symbolic(String),
}

impl Dim {
    /// The ONNX `TensorShapeProto.Dimension` value.
    pub fn to_proto(&self) -> Value {
        match self {
            Dim::Fixed(n) => Value::DimValue(*n as i64),
            Dim::Symbolic(name) => Value::DimParam(name.clone()),
        }
    }

    /// The axis an ONNX dimension declares; `None` for an unknown (unset or negative) one.
    pub fn from_proto(value: Option<&Value>) -> Option<Dim> {
        match value? {
            Value::DimValue(n) => u64::try_from(*n).ok().map(Dim::Fixed),
            Value::DimParam(name) => Some(Dim::Symbolic(name.clone())),
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Self {
        Dim::Fixed(n)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n as u64)
    }
}

impl From<&str> for Dim {
    fn from(name: &str) -> Self {
        Dim::Symbolic(name.into())
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(name) => f.write_str(name),
        }
    }
}

/// Formats a shape as `[batch, 64]` for messages.
pub fn format_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(Dim::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The element type and shape an ONNX graph declares for a dense tensor value; `None` for a value
/// that is not a tensor or has no shape. Unknown axes read as `?`.
pub fn declared_tensor(value: &ValueInfoProto) -> Option<(i32, Vec<Dim>)> {
    let type_proto::Value::TensorType(tensor) = value.r#type.as_ref()?.value.as_ref()?;
    let shape = tensor.shape.as_ref()?;
    let dims = shape.dim.iter().map(|d| Dim::from_proto(d.value.as_ref()).unwrap_or_else(|| "?".into())).collect();
    Some((tensor.elem_type, dims))
}
