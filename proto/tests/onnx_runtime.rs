//! Graphs written by the builder pass `onnx.checker.check_model(full_check=True)` and compute, in
//! Python's onnxruntime, what a naive Rust implementation of the same operators computes; and BatchNorm
//! folding equals convolution followed by BatchNorm.
//!
//! The Python side runs in the project venv (`.venv/`, made by `tests/run`); without it these tests
//! fail with a message saying so, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use melfuse_proto::onnx::{fold_batch_norm_into_conv, BatchNorm, Conv2d, DataType, GraphBuilder, Linear};
use serde_json::{json, Value};

/// A dense row-major tensor for the reference computation.
#[derive(Debug, Clone)]
struct Tensor {
    dims: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    fn new(dims: &[usize], data: Vec<f32>) -> Self {
        assert_eq!(dims.iter().product::<usize>(), data.len());
        Self { dims: dims.to_vec(), data }
    }

    fn nchw(&self) -> [usize; 4] {
        [self.dims[0], self.dims[1], self.dims[2], self.dims[3]]
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        Self::new(&self.dims, self.data.iter().map(|&v| f(v)).collect())
    }
}

/// Deterministic values in [-1, 1) from a 64-bit LCG, so the test needs no RNG crate.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn concat_features(a: &Tensor, b: &Tensor) -> Tensor {
    let (batch, n, m) = (a.dims[0], a.dims[1], b.dims[1]);
    let mut data = Vec::new();
    for row in 0..batch {
        data.extend_from_slice(&a.data[row * n..(row + 1) * n]);
        data.extend_from_slice(&b.data[row * m..(row + 1) * m]);
    }
    Tensor::new(&[batch, n + m], data)
}

/// `x [B, K] · w [K, N] + b [N]`.
fn gemm(x: &Tensor, w: &[f32], n: usize, b: &[f32]) -> Tensor {
    let (batch, k) = (x.dims[0], x.dims[1]);
    let mut data = vec![0.0; batch * n];
    for row in 0..batch {
        for col in 0..n {
            data[row * n + col] = b[col] + (0..k).map(|i| x.data[row * k + i] * w[i * n + col]).sum::<f32>();
        }
    }
    Tensor::new(&[batch, n], data)
}

/// Stride-1 convolution with symmetric zero padding `pad`.
fn conv(x: &Tensor, w: &[f32], w_dims: [usize; 4], b: &[f32], pad: usize) -> Tensor {
    let [batch, channels, height, width] = x.nchw();
    let [out_channels, _, kh, kw] = w_dims;
    let (out_h, out_w) = (height + 2 * pad - kh + 1, width + 2 * pad - kw + 1);
    let mut data = vec![0.0; batch * out_channels * out_h * out_w];
    for n in 0..batch {
        for m in 0..out_channels {
            for y in 0..out_h {
                for x_ in 0..out_w {
                    let mut acc = b[m];
                    for c in 0..channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (iy, ix) = ((y + i) as isize - pad as isize, (x_ + j) as isize - pad as isize);
                                if iy < 0 || ix < 0 || iy >= height as isize || ix >= width as isize {
                                    continue;
                                }
                                let input = x.data[((n * channels + c) * height + iy as usize) * width + ix as usize];
                                acc += input * w[((m * channels + c) * kh + i) * kw + j];
                            }
                        }
                    }
                    data[((n * out_channels + m) * out_h + y) * out_w + x_] = acc;
                }
            }
        }
    }
    Tensor::new(&[batch, out_channels, out_h, out_w], data)
}

fn batch_norm(x: &Tensor, norm: &BatchNorm<'_>) -> Tensor {
    let [_, channels, height, width] = x.nchw();
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(idx, &v)| {
            let c = (idx / (height * width)) % channels;
            (v - norm.mean[c]) / (norm.var[c] + norm.epsilon).sqrt() * norm.gamma[c] + norm.beta[c]
        })
        .collect();
    Tensor::new(&x.dims, data)
}

fn upsample_nearest_2x(x: &Tensor) -> Tensor {
    let [batch, channels, height, width] = x.nchw();
    let mut data = Vec::with_capacity(x.data.len() * 4);
    for plane in 0..batch * channels {
        for y in 0..height * 2 {
            for x_ in 0..width * 2 {
                data.push(x.data[(plane * height + y / 2) * width + x_ / 2]);
            }
        }
    }
    Tensor::new(&[batch, channels, height * 2, width * 2], data)
}

/// `x [B, C, H, W] + bias [B, C]` broadcast over H and W.
fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Tensor {
    let [_, _, height, width] = x.nchw();
    let data = x.data.iter().enumerate().map(|(idx, &v)| v + bias.data[idx / (height * width)]).collect();
    Tensor::new(&x.dims, data)
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `tests/reference/check_onnx.py` on `model` in the project venv and returns its JSON report.
fn check_onnx(model: &Path, inputs: Option<&Value>) -> Value {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `tests/run` (it creates .venv from tests/reference/requirements.txt, which pins onnx \
         and onnxruntime)",
        python.display()
    );
    let mut command = Command::new(&python);
    command.arg(root.join("tests/reference/check_onnx.py")).arg(model);
    let dir = model.parent().expect("the model lies in a temporary directory");
    if let Some(inputs) = inputs {
        let path = dir.join("inputs.json");
        std::fs::write(&path, inputs.to_string()).expect("write inputs.json");
        command.arg("--inputs").arg(path);
    }
    let output = command.output().expect("run check_onnx.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "check_onnx.py failed ({}):\n{stdout}\n{}\n(if onnx or onnxruntime is missing, run `tests/run`)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("check_onnx.py printed no JSON ({e}): {stdout}"))
}

/// Weights of the small test network, kept so the reference can use the same numbers.
struct Weights {
    project_w: Vec<f32>,
    project_b: Vec<f32>,
    conv_w: Vec<f32>,
    conv_b: Vec<f32>,
    bn: [Vec<f32>; 4],
    genre_w: Vec<f32>,
    genre_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    out_bn: [Vec<f32>; 4],
}

const LATENT: usize = 3;
const GENRES: usize = 2;
const CHANNELS: usize = 3;
const EPS: f32 = 1e-5;

impl Weights {
    fn new() -> Self {
        let positive = |seed, n| values(seed, n).into_iter().map(|v| v + 1.5).collect::<Vec<_>>();
        Self {
            project_w: values(1, (LATENT + GENRES) * 8),
            project_b: values(2, 8),
            conv_w: values(3, CHANNELS * 2 * 9),
            conv_b: values(4, CHANNELS),
            bn: [positive(5, CHANNELS), values(6, CHANNELS), values(7, CHANNELS), positive(8, CHANNELS)],
            genre_w: values(9, GENRES * CHANNELS),
            genre_b: values(10, CHANNELS),
            out_w: values(11, CHANNELS * 9),
            out_b: values(12, 1),
            out_bn: [positive(13, 1), values(14, 1), values(15, 1), positive(16, 1)],
        }
    }

    fn bn(&self) -> BatchNorm<'_> {
        BatchNorm { gamma: &self.bn[0], beta: &self.bn[1], mean: &self.bn[2], var: &self.bn[3], epsilon: EPS }
    }

    fn out_bn(&self) -> BatchNorm<'_> {
        let [gamma, beta, mean, var] = &self.out_bn;
        BatchNorm { gamma, beta, mean, var, epsilon: EPS }
    }
}

/// `z [B, 3], genre [B, 2]` → Concat → Gemm → Reshape `[B, 2, 2, 2]` → Conv 3×3 → BatchNormalization →
/// Relu → Resize ×2 → + Unsqueeze(Gemm(genre)) → Conv 3×3 with a folded BatchNorm → Sigmoid →
/// `mel [B, 1, 4, 4]`: the decoder's operators at toy size, with a dynamic batch.
fn build_model(weights: &Weights, opset: i64) -> Vec<u8> {
    let mut g = GraphBuilder::new("toy_decoder").with_opset(opset).unwrap().with_doc_string("melfuse-proto test graph");
    let z = g.input("z", DataType::Float, &["batch".into(), LATENT.into()]).unwrap();
    let genre = g.input("genre", DataType::Float, &["batch".into(), GENRES.into()]).unwrap();
    let input = g.concat("input", &[&z, &genre], 1).unwrap();
    let linear = Linear {
        weight: &weights.project_w,
        in_features: LATENT + GENRES,
        out_features: 8,
        bias: Some(&weights.project_b),
    };
    let projected = g.gemm("project", &input, &linear).unwrap();
    let grid = g.reshape("grid", &projected, &[0, 2, 2, 2]).unwrap();
    let conv = Conv2d::same(&weights.conv_w, [CHANNELS, 2, 3, 3], Some(&weights.conv_b));
    let convolved = g.conv("conv", &grid, &conv).unwrap();
    let normed = g.batch_norm("bn", &convolved, &weights.bn()).unwrap();
    let activated = g.relu("relu", &normed).unwrap();
    let upsampled = g.resize_nearest("up", &activated, 2).unwrap();
    let genre_linear =
        Linear { weight: &weights.genre_w, in_features: GENRES, out_features: CHANNELS, bias: Some(&weights.genre_b) };
    let genre_bias = g.gemm("genre_bias", &genre, &genre_linear).unwrap();
    let genre_bias = g.unsqueeze("genre_bias", &genre_bias, &[2, 3]).unwrap();
    let conditioned = g.add("conditioned", &upsampled, &genre_bias).unwrap();
    let out_conv = Conv2d::same(&weights.out_w, [1, CHANNELS, 3, 3], Some(&weights.out_b));
    let logits = g.conv_batch_norm("out", &conditioned, &out_conv, &weights.out_bn()).unwrap();
    let half = g.initializer("half", &[1], &[0.5]).unwrap();
    let scaled = g.mul("scaled", &logits, &half).unwrap();
    g.sigmoid("mel", &scaled).unwrap();
    g.output("mel", DataType::Float, &["batch".into(), 1usize.into(), 4usize.into(), 4usize.into()]).unwrap();
    g.to_bytes().unwrap()
}

/// The same network computed naively in Rust, with BatchNorm applied (not folded).
fn reference(weights: &Weights, z: &Tensor, genre: &Tensor) -> Tensor {
    let input = concat_features(z, genre);
    let projected = gemm(&input, &weights.project_w, 8, &weights.project_b);
    let grid = Tensor::new(&[z.dims[0], 2, 2, 2], projected.data);
    let convolved = conv(&grid, &weights.conv_w, [CHANNELS, 2, 3, 3], &weights.conv_b, 1);
    let activated = batch_norm(&convolved, &weights.bn()).map(|v| v.max(0.0));
    let upsampled = upsample_nearest_2x(&activated);
    let genre_bias = gemm(genre, &weights.genre_w, CHANNELS, &weights.genre_b);
    let conditioned = add_channel_bias(&upsampled, &genre_bias);
    let logits =
        batch_norm(&conv(&conditioned, &weights.out_w, [1, CHANNELS, 3, 3], &weights.out_b, 1), &weights.out_bn());
    logits.map(|v| sigmoid(v * 0.5))
}

#[test]
fn onnxruntime_matches_the_reference_computation_with_a_dynamic_batch() {
    let weights = Weights::new();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("toy.onnx");
    std::fs::write(&model, build_model(&weights, melfuse_proto::onnx::DEFAULT_OPSET)).unwrap();

    for batch in [1usize, 3] {
        let z = Tensor::new(&[batch, LATENT], values(100 + batch as u64, batch * LATENT));
        let genre =
            Tensor::new(&[batch, GENRES], values(200 + batch as u64, batch * GENRES).iter().map(|v| v.abs()).collect());
        let inputs = json!({
            "z": {"shape": z.dims, "data": z.data},
            "genre": {"shape": genre.dims, "data": genre.data},
        });
        let report = check_onnx(&model, Some(&inputs));
        assert_eq!(report["checker"], "ok", "{report}");
        assert_eq!(report["opset"], 17);
        assert_eq!(report["ir_version"], 8);
        assert_eq!(report["session_inputs"]["z"], json!(["batch", LATENT]));
        assert_eq!(report["session_outputs"]["mel"], json!(["batch", 1, 4, 4]));

        let expected = reference(&weights, &z, &genre);
        let mel = &report["outputs"]["mel"];
        assert_eq!(mel["shape"], json!(expected.dims));
        let got: Vec<f64> = serde_json::from_value(mel["data"].clone()).unwrap();
        assert_eq!(got.len(), expected.data.len());
        let max_diff = got.iter().zip(&expected.data).map(|(g, e)| (g - *e as f64).abs()).fold(0.0f64, f64::max);
        assert!(max_diff < 1e-5, "batch {batch}: onnxruntime differs from the reference by {max_diff}");
    }
}

#[test]
fn every_supported_opset_passes_the_checker() {
    let weights = Weights::new();
    let dir = tempfile::tempdir().unwrap();
    for opset in [13, 15, 19, 21] {
        let model = dir.path().join(format!("toy_{opset}.onnx"));
        std::fs::write(&model, build_model(&weights, opset)).unwrap();
        let report = check_onnx(&model, None);
        assert_eq!(report["checker"], "ok", "opset {opset}: {report}");
        assert_eq!(report["opset"], opset);
    }
}

#[test]
fn folded_batch_norm_equals_conv_then_batch_norm() {
    let weights = Weights::new();
    let x = Tensor::new(&[2, 2, 3, 4], values(300, 2 * 2 * 3 * 4));
    let dims = [CHANNELS, 2, 3, 3];
    let expected = batch_norm(&conv(&x, &weights.conv_w, dims, &weights.conv_b, 1), &weights.bn());
    let (w, b) = fold_batch_norm_into_conv(&weights.conv_w, Some(&weights.conv_b), &weights.bn()).unwrap();
    let folded = conv(&x, &w, dims, &b, 1);
    for (f, e) in folded.data.iter().zip(&expected.data) {
        assert!((f - e).abs() < 1e-5, "folded {f} vs conv+bn {e}");
    }

    // Without a convolution bias the folded bias is β − γ·μ/√(σ² + ε).
    let (_, b) = fold_batch_norm_into_conv(&weights.conv_w, None, &weights.bn()).unwrap();
    let expected = batch_norm(&conv(&x, &weights.conv_w, dims, &[0.0; CHANNELS], 1), &weights.bn());
    let folded = conv(&x, &w, dims, &b, 1);
    for (f, e) in folded.data.iter().zip(&expected.data) {
        assert!((f - e).abs() < 1e-5, "folded {f} vs conv+bn {e} (no conv bias)");
    }
}
