//! The subset of ONNX's protobuf messages that melfuse writes and reads, declared with prost derives.
//!
//! Field numbers and types follow the official `onnx/onnx.proto` (IR version 10, ONNX 1.16); only the
//! messages and fields a dense inference graph needs are declared. Protobuf readers skip fields they
//! do not know, so parsing a model that uses more (training info, functions, sparse tensors) still
//! works: those fields are ignored, not rejected.
//!
//! Why hand-declared rather than a crate: `onnx-protobuf` 0.2 (the maintained-looking candidate)
//! carries rust-protobuf 3.4.0 generated code that only compiles against exactly protobuf 3.4.0
//! (`protobuf::VERSION_3_4_0` check), and `prost-build` would need `protoc` at build time. prost's
//! derive macros give plain structs with no build step, and prost is already in the workspace's
//! dependency graph. The official proto is proto2; the scalar attribute values (`f`, `i`, `s`) are
//! declared `optional` so that a zero value is still written, as a proto2 writer would.

/// A whole model file: IR version, operator sets, producer and the graph (`ModelProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// ONNX IR version the file follows.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator sets (domain + version) the graph's nodes refer to.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Name of the tool that wrote the model.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Version of the tool that wrote the model.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Reverse-DNS namespace of the model.
    #[prost(string, tag = "4")]
    pub domain: String,
    /// Version of the model itself.
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// Human-readable description.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The computation.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Free-form key/value metadata.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// One key/value string pair (`StringStringEntryProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// An operator set a model imports (`OperatorSetIdProto`); the empty domain is the default `ai.onnx`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Operator domain; empty for the default ONNX operators.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Operator-set version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A graph: nodes in topological order, constant initializers, and typed inputs and outputs (`GraphProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Nodes, topologically sorted.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights), referenced by name from nodes.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Human-readable description.
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// Graph inputs, with types and shapes.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs, with types and shapes.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Optional type information about intermediate values.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    /// Free-form key/value metadata.
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// One operator application (`NodeProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Names of the values the node reads; an empty string skips an optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the values the node produces.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name, unique in the graph.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator, e.g. `Conv`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Operator domain; empty for the default ONNX operators.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// Operator attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Human-readable description.
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

/// The `AttributeProto.AttributeType` discriminator values this crate writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// `f` holds the value.
    Float = 1,
    /// `i` holds the value.
    Int = 2,
    /// `s` holds the value.
    String = 3,
    /// `t` holds the value.
    Tensor = 4,
    /// `floats` holds the value.
    Floats = 6,
    /// `ints` holds the value.
    Ints = 7,
    /// `strings` holds the value.
    Strings = 8,
}

/// A named operator attribute (`AttributeProto`); `type` says which value field is in use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name, e.g. `kernel_shape`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Human-readable description.
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// Which value field is in use (an [`AttributeType`]).
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
    /// Float value.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// Integer value.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// UTF-8 string value.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// Tensor value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Float list value.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Integer list value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// UTF-8 string list value.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

/// `TensorProto.DataType` values this crate writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    Undefined = 0,
    /// 32-bit IEEE float.
    Float = 1,
    /// 32-bit signed integer.
    Int32 = 6,
    /// 64-bit signed integer.
    Int64 = 7,
}

/// A constant tensor (`TensorProto`); melfuse always fills `raw_data` (little-endian).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (a [`DataType`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Values as floats, for `FLOAT` tensors not using `raw_data`.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Values as int32, for `INT32` (and narrower) tensors not using `raw_data`.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// Values as int64, for `INT64` tensors not using `raw_data`.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Name, by which nodes refer to the tensor.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Human-readable description.
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// Values as little-endian bytes, row-major.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// A named, typed value: a graph input, output or annotated intermediate (`ValueInfoProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Type and shape.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Human-readable description.
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// A value's type (`TypeProto`); only dense tensors are declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The kind of value.
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
    /// Optional semantic denotation.
    #[prost(string, tag = "6")]
    pub denotation: String,
}

/// Nested messages of [`TypeProto`].
pub mod type_proto {
    /// A dense tensor's element type and shape (`TypeProto.Tensor`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// Element type (a [`super::DataType`]).
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// Shape; absent means unknown rank.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    /// The `TypeProto.value` oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A dense tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

/// A tensor shape: one entry per axis (`TensorShapeProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Axes, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// Nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One axis: a fixed size, a symbolic name, or unknown (`TensorShapeProto.Dimension`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The size or its symbolic name.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        /// Optional semantic denotation.
        #[prost(string, tag = "3")]
        pub denotation: String,
    }

    /// The `Dimension.value` oneof.
    pub mod dimension {
        /// A fixed size or a symbolic name.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// Fixed size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// Symbolic name, e.g. `batch`; equal names mean equal sizes.
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}
