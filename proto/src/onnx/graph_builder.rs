//! A small typed builder for ONNX inference graphs: declare inputs, add weights and operators,
//! declare outputs, get a [`ModelProto`].
//!
//! Every value a node reads must already exist (a graph input, an initializer or an earlier node's
//! output), so the graph comes out topologically sorted and a typo fails at the call that made it,
//! naming the node. Names are made unique on demand (`conv`, `conv_1`, …) so that exporters can use
//! the module path of each weight (`blocks.0.conv1`) without tracking collisions.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use super::fold::{fold_batch_norm_into_conv, BatchNorm};
use super::shape::Dim;
use super::types::{
    tensor_shape_proto, type_proto, AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::GraphError;

/// Opset written unless another is asked for: ONNX 1.12's, run by every ONNX Runtime since 1.12.
pub const DEFAULT_OPSET: i64 = 17;

/// Opsets the builder writes: from 13 (where `Unsqueeze` axes and `Resize` scales became inputs, the
/// forms the helpers emit) to 21 (ONNX 1.16), all run by ONNX Runtime 1.2x.
pub const SUPPORTED_OPSETS: RangeInclusive<i64> = 13..=21;

/// The IR version ONNX released together with `opset`, which is what `onnx.checker` expects beside it.
pub fn ir_version_for_opset(opset: i64) -> Result<i64, GraphError> {
    match opset {
        13 | 14 => Ok(7),
        15..=18 => Ok(8),
        19 | 20 => Ok(9),
        21 => Ok(10),
        _ => Err(GraphError::UnsupportedOpset { opset, supported: SUPPORTED_OPSETS }),
    }
}

impl AttributeProto {
    /// An `INT` attribute, e.g. `axis`.
    pub fn int(name: &str, value: i64) -> Self {
        Self { name: name.into(), r#type: AttributeType::Int as i32, i: Some(value), ..Default::default() }
    }

    /// An `INTS` attribute, e.g. `kernel_shape`.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        Self { name: name.into(), r#type: AttributeType::Ints as i32, ints: values.to_vec(), ..Default::default() }
    }

    /// A `FLOAT` attribute, e.g. `epsilon`.
    pub fn float(name: &str, value: f32) -> Self {
        Self { name: name.into(), r#type: AttributeType::Float as i32, f: Some(value), ..Default::default() }
    }

    /// A `STRING` attribute, e.g. `mode`.
    pub fn string(name: &str, value: &str) -> Self {
        Self {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: Some(value.as_bytes().to_vec()),
            ..Default::default()
        }
    }
}

impl ModelProto {
    /// The model in protobuf wire format, as written to a `.onnx` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    /// Parses a `.onnx` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        prost::Message::decode(bytes)
    }
}

/// A fully connected layer `y = x·W + b` for [`GraphBuilder::gemm`].
#[derive(Debug, Clone, Copy)]
pub struct Linear<'a> {
    /// Row-major `[in_features, out_features]` (burn's `Linear` layout, ONNX `Gemm`'s `B` untransposed).
    pub weight: &'a [f32],
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// `[out_features]`, or no bias.
    pub bias: Option<&'a [f32]>,
}

/// A 2-D convolution for [`GraphBuilder::conv`] (no groups, no dilation).
#[derive(Debug, Clone, Copy)]
pub struct Conv2d<'a> {
    /// Row-major `[out_channels, in_channels, kernel_height, kernel_width]`.
    pub weight: &'a [f32],
    /// `[out_channels, in_channels, kernel_height, kernel_width]`.
    pub weight_dims: [usize; 4],
    /// `[out_channels]`, or no bias.
    pub bias: Option<&'a [f32]>,
    /// Step along height and width.
    pub strides: [usize; 2],
    /// Zero padding `[top, left, bottom, right]` (ONNX's `pads` order).
    pub pads: [usize; 4],
}

impl<'a> Conv2d<'a> {
    /// A stride-1 convolution padded by `kernel / 2` on every side: "same" size for odd kernels,
    /// as melfuse's decoder uses throughout.
    pub fn same(weight: &'a [f32], weight_dims: [usize; 4], bias: Option<&'a [f32]>) -> Self {
        let [_, _, kh, kw] = weight_dims;
        Self { weight, weight_dims, bias, strides: [1, 1], pads: [kh / 2, kw / 2, kh / 2, kw / 2] }
    }
}

/// Builds one ONNX model. See the module docs for the validation it does.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    name: String,
    doc_string: String,
    opset: i64,
    producer_name: String,
    producer_version: String,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    /// Values that exist so far: inputs, initializers and node outputs.
    values: HashSet<String>,
    /// Every name handed out (values and nodes), so that generated names never collide.
    names: HashSet<String>,
}

impl GraphBuilder {
    /// An empty graph called `name`, at [`DEFAULT_OPSET`], produced by `melfuse-proto` at this crate's version.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            doc_string: String::new(),
            opset: DEFAULT_OPSET,
            producer_name: env!("CARGO_PKG_NAME").into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            nodes: Vec::new(),
            values: HashSet::new(),
            names: HashSet::new(),
        }
    }

    /// Writes `opset` (one of [`SUPPORTED_OPSETS`]) and its IR version instead of the default.
    pub fn with_opset(mut self, opset: i64) -> Result<Self, GraphError> {
        ir_version_for_opset(opset)?;
        self.opset = opset;
        Ok(self)
    }

    /// Records which tool wrote the model (e.g. `melfuse-train`, its version).
    pub fn with_producer(mut self, name: &str, version: &str) -> Self {
        self.producer_name = name.into();
        self.producer_version = version.into();
        self
    }

    /// A human-readable description stored on the model and its graph.
    pub fn with_doc_string(mut self, doc: &str) -> Self {
        self.doc_string = doc.into();
        self
    }

    /// The opset this builder writes.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// `base` if no value or node has that name yet, else `base_1`, `base_2`, …; the name is then taken.
    pub fn unique_name(&mut self, base: &str) -> String {
        let name = self.free_name(base);
        self.names.insert(name.clone());
        name
    }

    /// Declares a graph input with element type `dtype` and `shape` (symbolic axes such as `"batch"`
    /// stay dynamic). The name is used as given, since callers feed inputs by name.
    pub fn input(&mut self, name: &str, dtype: DataType, shape: &[Dim]) -> Result<String, GraphError> {
        self.claim(name)?;
        self.values.insert(name.into());
        self.inputs.push(value_info(name, dtype, shape));
        Ok(name.into())
    }

    /// Declares a graph output; some node must produce a value called `name` before [`Self::build`].
    pub fn output(&mut self, name: &str, dtype: DataType, shape: &[Dim]) -> Result<(), GraphError> {
        if self.outputs.iter().any(|o| o.name == name) {
            return Err(GraphError::DuplicateName { name: name.into() });
        }
        self.outputs.push(value_info(name, dtype, shape));
        Ok(())
    }

    /// Adds a float32 constant `name` of shape `dims`, stored as little-endian `raw_data`.
    pub fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) -> Result<String, GraphError> {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_initializer(name, dims, values.len(), DataType::Float, raw)
    }

    /// Adds an int64 constant `name` of shape `dims` (shapes, axes), stored as little-endian `raw_data`.
    pub fn initializer_i64(&mut self, name: &str, dims: &[usize], values: &[i64]) -> Result<String, GraphError> {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_initializer(name, dims, values.len(), DataType::Int64, raw)
    }

    /// Appends a node `op_type(inputs) -> outputs`, named after its first output. Every non-empty input
    /// must already exist (an empty name skips an optional input); outputs must be new names.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> Result<(), GraphError> {
        if let Some(taken) = outputs.iter().find(|o| self.names.contains(**o)) {
            return Err(GraphError::DuplicateName { name: (*taken).into() });
        }
        self.push_node(op_type, inputs, outputs, attributes)?;
        self.names.extend(outputs.iter().map(|o| o.to_string()));
        Ok(())
    }

    /// `Gemm(input, W, b)`: `[B, in] → [B, out]` with `W` stored `[in, out]`. Weights are named `{name}.weight`
    /// and `{name}.bias`; the output is named `name` (made unique).
    pub fn gemm(&mut self, name: &str, input: &str, linear: &Linear<'_>) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let weight = self.initializer(
            &self.free_name(&format!("{out}.weight")),
            &[linear.in_features, linear.out_features],
            linear.weight,
        )?;
        let mut inputs = vec![input.to_string(), weight];
        if let Some(bias) = linear.bias {
            check_len(&out, "bias", bias.len(), linear.out_features)?;
            inputs.push(self.initializer(&self.free_name(&format!("{out}.bias")), &[linear.out_features], bias)?);
        }
        self.unique_node("Gemm", &inputs, &out, vec![])
    }

    /// `Reshape(input, shape)` with `shape` as an int64 initializer; `0` copies that axis from the input
    /// (so a dynamic batch stays dynamic) and one `-1` is inferred.
    pub fn reshape(&mut self, name: &str, input: &str, shape: &[i64]) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let shape = self.initializer_i64(&self.free_name(&format!("{out}.shape")), &[shape.len()], shape)?;
        self.unique_node("Reshape", &[input.into(), shape], &out, vec![])
    }

    /// `Conv(input, W, b)` over NCHW with the given kernel, strides and pads; weights are named
    /// `{name}.weight` and `{name}.bias`.
    pub fn conv(&mut self, name: &str, input: &str, conv: &Conv2d<'_>) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let [out_channels, _, kh, kw] = conv.weight_dims;
        let weight = self.initializer(&self.free_name(&format!("{out}.weight")), &conv.weight_dims, conv.weight)?;
        let mut inputs = vec![input.to_string(), weight];
        if let Some(bias) = conv.bias {
            check_len(&out, "bias", bias.len(), out_channels)?;
            inputs.push(self.initializer(&self.free_name(&format!("{out}.bias")), &[out_channels], bias)?);
        }
        let attributes = vec![
            AttributeProto::ints("kernel_shape", &[kh as i64, kw as i64]),
            AttributeProto::ints("strides", &conv.strides.map(|s| s as i64)),
            AttributeProto::ints("pads", &conv.pads.map(|p| p as i64)),
            AttributeProto::ints("dilations", &[1, 1]),
            AttributeProto::int("group", 1),
        ];
        self.unique_node("Conv", &inputs, &out, attributes)
    }

    /// A convolution followed by inference-mode BatchNorm, written as one `Conv` whose weights have the
    /// normalisation folded in (see [`fold_batch_norm_into_conv`]): what the decoder export uses.
    pub fn conv_batch_norm(
        &mut self,
        name: &str,
        input: &str,
        conv: &Conv2d<'_>,
        norm: &BatchNorm<'_>,
    ) -> Result<String, GraphError> {
        let (weight, bias) = fold_batch_norm_into_conv(conv.weight, conv.bias, norm)
            .map_err(|detail| GraphError::ParameterMismatch { node: name.into(), detail: detail.to_string() })?;
        self.conv(name, input, &Conv2d { weight: &weight, bias: Some(&bias), ..*conv })
    }

    /// `BatchNormalization` in inference mode over NCHW channels; parameters are named `{name}.scale`,
    /// `{name}.bias`, `{name}.mean`, `{name}.var`.
    pub fn batch_norm(&mut self, name: &str, input: &str, norm: &BatchNorm<'_>) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        norm.check()
            .map_err(|detail| GraphError::ParameterMismatch { node: out.clone(), detail: detail.to_string() })?;
        let channels = [norm.gamma.len()];
        let mut inputs = vec![input.to_string()];
        for (suffix, values) in [("scale", norm.gamma), ("bias", norm.beta), ("mean", norm.mean), ("var", norm.var)] {
            inputs.push(self.initializer(&self.free_name(&format!("{out}.{suffix}")), &channels, values)?);
        }
        self.unique_node("BatchNormalization", &inputs, &out, vec![AttributeProto::float("epsilon", norm.epsilon)])
    }

    /// `Relu(input)`.
    pub fn relu(&mut self, name: &str, input: &str) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        self.unique_node("Relu", &[input.into()], &out, vec![])
    }

    /// `Sigmoid(input)`.
    pub fn sigmoid(&mut self, name: &str, input: &str) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        self.unique_node("Sigmoid", &[input.into()], &out, vec![])
    }

    /// `Add(a, b)` with numpy broadcasting (e.g. a `[B, C, 1, 1]` bias onto `[B, C, H, W]`).
    pub fn add(&mut self, name: &str, a: &str, b: &str) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        self.unique_node("Add", &[a.into(), b.into()], &out, vec![])
    }

    /// `Mul(a, b)` with numpy broadcasting.
    pub fn mul(&mut self, name: &str, a: &str, b: &str) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        self.unique_node("Mul", &[a.into(), b.into()], &out, vec![])
    }

    /// `Concat(inputs, axis)`.
    pub fn concat(&mut self, name: &str, inputs: &[&str], axis: i64) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        self.unique_node("Concat", &inputs, &out, vec![AttributeProto::int("axis", axis)])
    }

    /// `Unsqueeze(input, axes)` in the opset-13 form, with `axes` as an int64 initializer input.
    pub fn unsqueeze(&mut self, name: &str, input: &str, axes: &[i64]) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let axes = self.initializer_i64(&self.free_name(&format!("{out}.axes")), &[axes.len()], axes)?;
        self.unique_node("Unsqueeze", &[input.into(), axes], &out, vec![])
    }

    /// Nearest-neighbour upsampling of an NCHW tensor by an integer `factor` in height and width:
    /// `Resize` (opset-13 form) with no `roi`, `scales = [1, 1, factor, factor]`, `mode = nearest`,
    /// `coordinate_transformation_mode = asymmetric`, `nearest_mode = floor`. With those settings
    /// output pixel `(y, x)` reads input `(y / factor, x / factor)`: plain repetition, as burn's
    /// nearest interpolation and PyTorch's `Upsample(mode="nearest")` do.
    pub fn resize_nearest(&mut self, name: &str, input: &str, factor: usize) -> Result<String, GraphError> {
        let out = self.unique_name(name);
        let f = factor as f32;
        let scales = self.initializer(&self.free_name(&format!("{out}.scales")), &[4], &[1.0, 1.0, f, f])?;
        let attributes = vec![
            AttributeProto::string("mode", "nearest"),
            AttributeProto::string("coordinate_transformation_mode", "asymmetric"),
            AttributeProto::string("nearest_mode", "floor"),
        ];
        self.unique_node("Resize", &[input.into(), String::new(), scales], &out, attributes)
    }

    /// The finished model: checks that every declared output is produced and that there is one.
    pub fn build(self) -> Result<ModelProto, GraphError> {
        if self.outputs.is_empty() {
            return Err(GraphError::NoGraphOutputs);
        }
        if let Some(missing) = self.outputs.iter().find(|o| !self.values.contains(&o.name)) {
            return Err(GraphError::UndefinedOutput { name: missing.name.clone() });
        }
        let ir_version = ir_version_for_opset(self.opset)?;
        Ok(ModelProto {
            ir_version,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: self.opset }],
            producer_name: self.producer_name,
            producer_version: self.producer_version,
            doc_string: self.doc_string.clone(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: self.name,
                initializer: self.initializers,
                doc_string: self.doc_string,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// [`Self::build`], then the wire-format bytes of a `.onnx` file.
    pub fn to_bytes(self) -> Result<Vec<u8>, GraphError> {
        Ok(self.build()?.to_bytes())
    }

    /// The name [`Self::unique_name`] would hand out, without taking it.
    fn free_name(&self, base: &str) -> String {
        let mut candidate = base.to_string();
        let mut suffix = 0;
        while self.names.contains(&candidate) {
            suffix += 1;
            candidate = format!("{base}_{suffix}");
        }
        candidate
    }

    /// Takes `name` for a value the caller names explicitly, refusing a name already in use.
    fn claim(&mut self, name: &str) -> Result<(), GraphError> {
        if !self.names.insert(name.into()) {
            return Err(GraphError::DuplicateName { name: name.into() });
        }
        Ok(())
    }

    fn add_initializer(
        &mut self,
        name: &str,
        dims: &[usize],
        len: usize,
        dtype: DataType,
        raw_data: Vec<u8>,
    ) -> Result<String, GraphError> {
        let expected: usize = dims.iter().product();
        if expected != len {
            return Err(GraphError::TensorSize { name: name.into(), dims: dims.to_vec(), expected, actual: len });
        }
        self.claim(name)?;
        self.values.insert(name.into());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: dtype as i32,
            name: name.into(),
            raw_data,
            ..Default::default()
        });
        Ok(name.into())
    }

    /// Appends a node whose single output `out` was already reserved with [`Self::unique_name`].
    fn unique_node(
        &mut self,
        op_type: &str,
        inputs: &[String],
        out: &str,
        attributes: Vec<AttributeProto>,
    ) -> Result<String, GraphError> {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.push_node(op_type, &inputs, &[out], attributes)?;
        Ok(out.into())
    }

    /// Validates a node's inputs and appends it; its outputs' names are already taken.
    fn push_node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> Result<(), GraphError> {
        let Some(first_output) = outputs.first() else {
            return Err(GraphError::NoNodeOutputs { op_type: op_type.into() });
        };
        if let Some(missing) = inputs.iter().find(|i| !i.is_empty() && !self.values.contains(**i)) {
            return Err(GraphError::UnknownInput {
                node: (*first_output).into(),
                op_type: op_type.into(),
                input: (*missing).into(),
            });
        }
        self.values.extend(outputs.iter().map(|o| o.to_string()));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: (*first_output).into(),
            op_type: op_type.into(),
            attribute: attributes,
            ..Default::default()
        });
        Ok(())
    }
}

fn check_len(node: &str, what: &str, actual: usize, expected: usize) -> Result<(), GraphError> {
    if actual != expected {
        return Err(GraphError::ParameterMismatch {
            node: node.into(),
            detail: format!("{what} has {actual} values, expected {expected}"),
        });
    }
    Ok(())
}

fn value_info(name: &str, dtype: DataType, shape: &[Dim]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|d| tensor_shape_proto::Dimension { value: Some(d.to_proto()), ..Default::default() })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dtype as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder_with_input() -> GraphBuilder {
        let mut g = GraphBuilder::new("t");
        g.input("x", DataType::Float, &["batch".into(), 4usize.into()]).unwrap();
        g
    }

    #[test]
    fn an_unknown_input_names_the_node_and_the_input() {
        let mut g = builder_with_input();
        let err = g.add("sum", "x", "y").unwrap_err();
        assert_eq!(err, GraphError::UnknownInput { node: "sum".into(), op_type: "Add".into(), input: "y".into() });
        assert!(err.to_string().contains("node `sum` (Add) reads `y`"), "{err}");
    }

    #[test]
    fn names_are_made_unique_and_explicit_clashes_refused() {
        let mut g = builder_with_input();
        assert_eq!(g.relu("act", "x").unwrap(), "act");
        assert_eq!(g.relu("act", "act").unwrap(), "act_1");
        assert_eq!(g.unique_name("act"), "act_2");
        assert_eq!(g.input("x", DataType::Float, &[]).unwrap_err(), GraphError::DuplicateName { name: "x".into() });
        assert_eq!(
            g.node("Relu", &["x"], &["act"], vec![]).unwrap_err(),
            GraphError::DuplicateName { name: "act".into() }
        );
    }

    #[test]
    fn initializer_sizes_and_parameter_lengths_are_checked() {
        let mut g = builder_with_input();
        let err = g.initializer("w", &[2, 3], &[0.0; 5]).unwrap_err();
        assert_eq!(err, GraphError::TensorSize { name: "w".into(), dims: vec![2, 3], expected: 6, actual: 5 });
        let linear = Linear { weight: &[0.0; 8], in_features: 4, out_features: 2, bias: Some(&[0.0; 3]) };
        assert!(matches!(g.gemm("fc", "x", &linear), Err(GraphError::ParameterMismatch { node, .. }) if node == "fc"));
    }

    #[test]
    fn opsets_outside_the_supported_range_are_refused() {
        assert_eq!(ir_version_for_opset(DEFAULT_OPSET), Ok(8));
        for opset in [12, 22] {
            assert!(matches!(GraphBuilder::new("t").with_opset(opset), Err(GraphError::UnsupportedOpset { .. })));
        }
    }

    #[test]
    fn outputs_must_exist_and_the_model_round_trips_through_bytes() {
        let g = builder_with_input();
        assert_eq!(g.clone().build().unwrap_err(), GraphError::NoGraphOutputs);
        let mut missing = g.clone();
        missing.output("y", DataType::Float, &[]).unwrap();
        assert_eq!(missing.build().unwrap_err(), GraphError::UndefinedOutput { name: "y".into() });

        let mut g = g.with_opset(21).unwrap();
        let y = g.resize_nearest("y", "x", 2).unwrap();
        g.output(&y, DataType::Float, &["batch".into(), 8usize.into()]).unwrap();
        let model = g.build().unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (10, 21));
        let resize = &model.graph.as_ref().unwrap().node[0];
        assert_eq!(resize.input, ["x", "", "y.scales"]);
        assert_eq!(ModelProto::from_bytes(&model.to_bytes()).unwrap(), model);
    }
}
