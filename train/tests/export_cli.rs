//! `melfuse-train export` end to end: a short run becomes a bundle that passes
//! `onnx.checker.check_model(full_check=True)`, that Python's ONNX Runtime runs with outputs equal
//! to the burn decoder's (DESIGN.md: within 1e-4 max abs, batch 1 and 7) — and so does the `ort`
//! crate with the same runtime loaded dynamically, as the service will — and that the manifest
//! loader accepts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::prelude::*;
use melfuse_proto::manifest::{sha256_hex, Manifest};
use melfuse_train::eval::Evaluator;
use melfuse_train::fit::load_model;
use melfuse_train::prepare::cache::Cache;
use melfuse_train::prepare::split::Split;
use serde_json::{json, Value};
use support::{path, run, trained_run, trained_run_with};

mod support;

/// DESIGN.md's parity bound between ONNX Runtime and burn.
const MAX_ABS_ERROR: f32 = 1e-4;

/// The project venv's Python (made by `tests/run`), or a failure that says how to get it.
fn reference_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `tests/run` (it creates the venv with onnx and onnxruntime)",
        python.display()
    );
    python
}

/// Runs `decoder.onnx` through the `ort` crate (ONNX Runtime loaded dynamically, as the service
/// does) and returns `mel` as a flat vector with its shape.
fn run_with_ort(model: &Path, z: (Vec<f32>, [usize; 2]), genre: (Vec<f32>, [usize; 2])) -> (Vec<usize>, Vec<f32>) {
    // ONNX Runtime allows one environment per process.
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    let environment = ENVIRONMENT.get_or_init(|| {
        ort::init_from(melfuse_e2e::onnxruntime_library()).expect("load ONNX Runtime").build().expect("environment")
    });
    let mut session = ort::session::Session::builder(environment)
        .expect("session builder")
        .commit_from_file(model)
        .expect("load decoder.onnx");
    let z = ort::value::Tensor::from_array((z.1, z.0)).expect("z tensor");
    let genre = ort::value::Tensor::from_array((genre.1, genre.0)).expect("genre tensor");
    let outputs = session.run(ort::inputs!["z" => z, "genre" => genre]).expect("run");
    let (shape, data) = outputs["mel"].try_extract_tensor::<f32>().expect("mel output");
    (shape.iter().map(|&d| d as usize).collect(), data.to_vec())
}

/// A deterministic pseudo-random value in [-1, 1) for test inputs.
fn noise(i: usize) -> f32 {
    let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    x as f32 / (1u64 << 23) as f32 - 1.0
}

/// Blends over two genres for `batch` rows: one-hot, 50/50, and skewed mixes.
fn blends(batch: usize) -> Vec<f32> {
    (0..batch)
        .flat_map(|row| {
            let w = [1.0, 0.0, 0.5, 0.25, 0.9, 0.1, 0.7][row % 7];
            [w, 1.0 - w]
        })
        .collect()
}

#[test]
fn exported_decoder_runs_in_onnx_runtime_with_burn_equal_outputs() {
    let root = tempfile::tempdir().expect("tempdir");
    check_export_parity(root.path(), &trained_run(root.path()), &[]);
}

/// The same checks for a model whose latent is a map with a time axis (`latent_head = "Map"`) on
/// a ÷16 grid: the graph reshapes `z`, projects each cell (`decoder_graph::latent_map_projection`)
/// and has four upsampling blocks.
#[test]
fn exported_latent_map_decoder_runs_in_onnx_runtime_with_burn_equal_outputs() {
    let root = tempfile::tempdir().expect("tempdir");
    let model_lines = "latent_head = \"Map\"\nlatent_downsampling = 16\ndecoder_widths = [32, 16, 8, 8]\n";
    let run_dir = trained_run_with(root.path(), model_lines);
    let (model, _, _) = load_model(&run_dir, &Device::flex()).expect("load the run");
    assert!(model.decoder.latent_channels > 0, "the run's decoder takes a latent map");
    assert_eq!(model.decoder.blocks.len(), 4, "a ÷16 grid has four upsampling blocks");
    check_export_parity(root.path(), &run_dir, &["--bank-layout", "tiles"]);
}

/// Exports `run_dir` under `root` and checks the bundle: files, manifest, bank codes equal to the
/// encoder's `mu`, and the decoder's outputs in Python's and the `ort` crate's ONNX Runtime equal
/// to burn's.
fn check_export_parity(root: &Path, run_dir: &Path, options: &[&str]) {
    let run_dir = run_dir.to_path_buf();
    let bundle = root.join("bundle");
    let mut arguments = vec!["export", path(&run_dir), "--out", path(&bundle), "--name", "parity"];
    arguments.extend_from_slice(options);
    let export = run(&arguments);
    assert!(export.status.success(), "export failed: {}", String::from_utf8_lossy(&export.stderr));
    for file in ["decoder.onnx", "manifest.json", "preview.png", "latent_bank.bin"] {
        assert!(bundle.join(file).exists(), "{file} missing");
    }
    let loaded = Manifest::load(&bundle).expect("the bundle validates");
    assert_eq!(loaded.manifest.name, "parity");
    assert_eq!(loaded.manifest.genres, vec!["cn", "edm"]);

    let device = Device::flex();
    let (model, info, _) = load_model(&run_dir, &device).expect("load the run");
    let latent = info.model.latent_dim;

    // The bank holds the encoder's mu of real training segments: encoding the first cn training
    // segment again gives the bank's first code (to f16 precision).
    let bank = loaded.latent_bank.as_ref().expect("a latent bank by default");
    let bank_info = loaded.manifest.latent_bank.as_ref().expect("manifest names the bank");
    assert!(bank.count(0) > 0 && bank.count(1) > 0, "{:?}", bank_info.runs);
    assert_eq!(bank_info.sigma.len(), latent);
    assert!(bank_info.sigma.iter().all(|s| s.is_finite() && *s > 0.0 && *s < 2.0), "{:?}", bank_info.sigma);
    let cache = Cache::open(&info.cache_dir).expect("cache");
    let first_cn = cache.segments(Split::Train).iter().position(|s| s.genre == 0).expect("a cn training segment");
    let mut mu = Vec::new();
    Evaluator::new(&model, &cache, &device)
        .encode_batches(Split::Train, &[first_cn], |batch| {
            mu = batch.mu.into_data().try_into_vec::<f32>().expect("mu");
            Ok(())
        })
        .expect("encode");
    let code = bank.code(0, 0);
    let error = mu.iter().zip(code).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
    match bank_info.hop_frames {
        // Segment codes: the segment's own encoding.
        None => assert!(error < 2e-3, "bank code 0 differs from the encoder's mu by {error}"),
        // Tiles of a stretch encoded in one pass: the same music, seen with what follows it, so
        // close to the lone segment's code but not equal where the encoder looks past its end.
        Some(hop) => {
            assert_eq!(hop, info.model.frames, "a tiled bank steps one model segment");
            let cells = loaded.manifest.latent_time_cells.expect("tiles need a dynamic time axis");
            assert_eq!(latent % cells, 0, "{cells} latent columns per segment");
            let mean: f32 = mu.iter().zip(code).map(|(a, b)| (a - b).abs()).sum::<f32>() / mu.len() as f32;
            let scale: f32 = mu.iter().map(|a| a.abs()).sum::<f32>() / mu.len() as f32;
            println!("tile 0 against the lone segment's mu: mean |Δ| {mean:.4} on a mean |mu| of {scale:.4}");
            assert!(mean < 0.5 * scale, "bank tile 0 is not the first cn segment's music: mean |Δ| {mean}");
        }
    }

    // A tiled bank's export measures the postfilter on the bank's own stretches (the untrained
    // decoder renders them far from the music, so gains move off 1); `--no-postfilter` leaves it
    // out and changes nothing else. A segment bank has none.
    match (&loaded.manifest.postfilter, bank_info.hop_frames) {
        (Some(postfilter), Some(_)) => {
            let moved =
                postfilter.contrast.iter().chain(&postfilter.dynamics).flatten().any(|g| (g - 1.0).abs() > 0.01);
            assert!(moved, "{postfilter:?}");
            let plain = root.join("no-postfilter");
            let mut flags = vec!["export", path(&run_dir), "--out", path(&plain), "--name", "parity"];
            flags.extend_from_slice(options);
            flags.push("--no-postfilter");
            let export = run(&flags);
            assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
            assert!(Manifest::load(&plain).expect("valid").manifest.postfilter.is_none());
            for file in ["latent_bank.bin", "decoder.onnx"] {
                assert_eq!(std::fs::read(plain.join(file)).ok(), std::fs::read(bundle.join(file)).ok(), "{file}");
            }
        }
        (None, None) => {}
        (postfilter, hop) => panic!("postfilter {:?} with a bank hop of {hop:?}", postfilter.is_some()),
    }

    let without = root.join("no-bank");
    let export = run(&["export", path(&run_dir), "--out", path(&without), "--bank-per-genre", "0"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert!(!without.join("latent_bank.bin").exists());
    assert!(Manifest::load(&without).expect("valid").latent_bank.is_none());
    for batch in [1usize, 7] {
        let z: Vec<f32> = (0..batch * latent).map(|i| noise(i + batch * 1000)).collect();
        let genre = blends(batch);
        let ours = burn_decode(&model, &z, &genre, batch, &device);
        let inputs = serde_json::json!({
            "z": {"shape": [batch, latent], "data": &z},
            "genre": {"shape": [batch, 2], "data": &genre},
        });
        let inputs_path = root.join(format!("inputs_{batch}.json"));
        std::fs::write(&inputs_path, inputs.to_string()).expect("write inputs");
        let checked = Command::new(reference_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/check_onnx.py"))
            .arg(bundle.join("decoder.onnx"))
            .arg("--inputs")
            .arg(&inputs_path)
            .output()
            .expect("run check_onnx.py");
        let report: serde_json::Value = serde_json::from_slice(&checked.stdout)
            .unwrap_or_else(|e| panic!("check_onnx.py: {e}: {}", String::from_utf8_lossy(&checked.stderr)));
        assert_eq!(report["checker"], "ok", "{report}");
        let mel = &report["outputs"]["mel"];
        let shape: Vec<usize> = serde_json::from_value(mel["shape"].clone()).expect("shape");
        assert_eq!(shape, vec![batch, 1, info.model.n_mels, info.model.frames]);
        let theirs: Vec<f32> = serde_json::from_value(mel["data"].clone()).expect("data");
        let error = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("batch {batch}: max |python onnxruntime − burn| = {error:e}");
        assert!(error <= MAX_ABS_ERROR, "batch {batch}: python onnxruntime max abs error {error}");

        let (ort_shape, ort_mel) =
            run_with_ort(&bundle.join("decoder.onnx"), (z, [batch, latent]), (genre, [batch, 2]));
        assert_eq!(ort_shape, shape);
        let error = ours.iter().zip(&ort_mel).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("batch {batch}: max |ort crate − burn| = {error:e}");
        assert!(error <= MAX_ABS_ERROR, "batch {batch}: ort crate max abs error {error}");
    }
    // A latent map's graph has a dynamic time axis: three segments' columns decode in one pass to
    // three segments' frames, in ONNX Runtime as in burn.
    if loaded.manifest.latent_time_cells.is_some() {
        let (batch, width) = (2, 3 * latent);
        let z: Vec<f32> = (0..batch * width).map(|i| noise(i + 77)).collect();
        let genre = blends(batch);
        let ours = burn_decode(&model, &z, &genre, batch, &device);
        let (ort_shape, ort_mel) = run_with_ort(&bundle.join("decoder.onnx"), (z, [batch, width]), (genre, [batch, 2]));
        assert_eq!(ort_shape, vec![batch, 1, info.model.n_mels, 3 * info.model.frames]);
        let error = ours.iter().zip(&ort_mel).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("three segments in one pass: max |ort crate − burn| = {error:e}");
        assert!(error <= MAX_ABS_ERROR, "one pass of three segments: ort crate max abs error {error}");
    }
}

/// The burn decoder's output for `batch` rows of `z` (any whole number of latent columns for a
/// map) and two-genre mixtures `genre`.
fn burn_decode(model: &melfuse_models::Vae, z: &[f32], genre: &[f32], batch: usize, device: &Device) -> Vec<f32> {
    model
        .decode(
            Tensor::<2>::from_data(TensorData::new(z.to_vec(), [batch, z.len() / batch]), device),
            Tensor::<2>::from_data(TensorData::new(genre.to_vec(), [batch, 2]), device),
        )
        .into_data()
        .try_into_vec::<f32>()
        .expect("decoder output")
}

#[test]
fn export_refuses_bad_settings_and_missing_runs() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = root.path().join("bundle");
    let missing = run(&["export", path(&root.path().join("nothing")), "--out", path(&out)]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing"), "names the run dir");
    let run_dir = trained_run(root.path());
    let bad = run(&["export", path(&run_dir), "--out", path(&out), "--opset", "9"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("opset"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(!out.exists(), "nothing is written for a refused export");

    let triton = root.path().join("triton");
    let refusals: [(&[&str], &str); 6] = [
        (&["--bank-max-mb", "0"], "bank-max-mb"),
        (&["--bank-layout", "tiles"], "tiles need a latent map"),
        (&["--bank-choice", "faithful"], "it needs `--bank-layout tiles`"),
        (&["--bank-max-mb", "0.000001"], "not one code per genre"),
        (&["--triton", path(&triton), "--triton-max-batch", "0"], "triton-max-batch"),
        (&["--triton", path(&triton), "--name", "a b"], "cannot name a Triton model"),
    ];
    for (flags, expected) in refusals {
        let bad = run(&[&["export", path(&run_dir), "--out", path(&out)], flags].concat());
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success(), "{flags:?} accepted");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!out.exists() && !triton.exists(), "{flags:?}: nothing is written for a refused export");
    }
}

#[test]
fn triton_repository_serves_the_bundle_decoder_with_the_manifest_interface() {
    let root = tempfile::tempdir().expect("tempdir");
    let run_dir = trained_run(root.path());
    let (bundle, repository) = (root.path().join("bundle"), root.path().join("triton"));
    let export = run(&[
        "export",
        path(&run_dir),
        "--out",
        path(&bundle),
        "--name",
        "fusion",
        "--triton",
        path(&repository),
        "--triton-max-batch",
        "12",
        "--triton-max-queue-delay-us",
        "2500",
    ]);
    assert!(export.status.success(), "export failed: {}", String::from_utf8_lossy(&export.stderr));
    assert!(String::from_utf8_lossy(&export.stdout).contains("wrote Triton model `fusion`"));
    let manifest = Manifest::load(&bundle).expect("the bundle validates").manifest;

    // Version 1 holds the bundle's decoder, byte for byte.
    let model = std::fs::read(repository.join("fusion/1/model.onnx")).expect("model.onnx");
    assert_eq!(sha256_hex(&model), manifest.onnx.sha256);
    assert_eq!(model, std::fs::read(bundle.join("decoder.onnx")).expect("decoder.onnx"));

    // The configuration, field by field, against the manifest; dims leave out the batch axis.
    let text = std::fs::read_to_string(repository.join("fusion/config.pbtxt")).expect("config.pbtxt");
    let config = parse_pbtxt(&text);
    let tensor = |name: &str, dims: Vec<usize>| json!({"name": name, "data_type": "TYPE_FP32", "dims": dims});
    let frames = manifest.signal.model_frames();
    assert_eq!(config["name"], json!(manifest.name), "{text}");
    assert_eq!(config["backend"], "onnxruntime");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(config["max_batch_size"], 12);
    assert_eq!(
        config["input"],
        json!([tensor("z", vec![manifest.latent_dim]), tensor("genre", vec![manifest.genres.len()])])
    );
    assert_eq!(config["output"], json!([tensor("mel", vec![1, manifest.signal.n_mels, frames])]));
    assert_eq!(
        config["dynamic_batching"],
        json!({"preferred_batch_size": [2, 4, 8, 12], "max_queue_delay_microseconds": 2500})
    );
    let names = |side: &[melfuse_proto::manifest::TensorSpec]| side.iter().map(|t| json!(t.name)).collect::<Vec<_>>();
    let config_names = |side: &Value| side.as_array().unwrap().iter().map(|t| t["name"].clone()).collect::<Vec<_>>();
    assert_eq!(config_names(&config["input"]), names(&manifest.onnx.inputs));
    assert_eq!(config_names(&config["output"]), names(&manifest.onnx.outputs));
}

/// A small reader of protobuf text format (what `config.pbtxt` is) into JSON: `key: scalar`,
/// `key { … }`, `key [ … ]`; numbers become JSON numbers, enum names and quoted strings strings.
/// Written here rather than reusing the exporter so the test checks the text Triton will read.
fn parse_pbtxt(text: &str) -> Value {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let mut chars = line.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '#' => break,
                c if c.is_whitespace() || c == ',' || c == ':' => {
                    chars.next();
                    if c == ',' {
                        tokens.push(",".to_string());
                    }
                }
                '{' | '}' | '[' | ']' => {
                    tokens.push(c.to_string());
                    chars.next();
                }
                '"' => {
                    chars.next();
                    let quoted: String = chars.by_ref().take_while(|&c| c != '"').collect();
                    tokens.push(format!("\"{quoted}"));
                }
                _ => {
                    let mut word = String::new();
                    while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-')) {
                        word.push(c);
                        chars.next();
                    }
                    assert!(!word.is_empty(), "unexpected character {c:?} in config.pbtxt");
                    tokens.push(word);
                }
            }
        }
    }
    let mut position = 0;
    let message = parse_message(&tokens, &mut position);
    assert_eq!(position, tokens.len(), "trailing tokens in config.pbtxt");
    message
}

fn parse_message(tokens: &[String], position: &mut usize) -> Value {
    let mut fields = serde_json::Map::new();
    while *position < tokens.len() && tokens[*position] != "}" {
        let key = tokens[*position].clone();
        *position += 1;
        let value = parse_value(tokens, position);
        assert!(fields.insert(key.clone(), value).is_none(), "field {key} repeated outside a list");
    }
    Value::Object(fields)
}

fn parse_value(tokens: &[String], position: &mut usize) -> Value {
    let token = tokens[*position].clone();
    *position += 1;
    match token.as_str() {
        "{" => {
            let message = parse_message(tokens, position);
            assert_eq!(tokens[*position], "}");
            *position += 1;
            message
        }
        "[" => {
            let mut items = Vec::new();
            while tokens[*position] != "]" {
                if tokens[*position] == "," {
                    *position += 1;
                    continue;
                }
                items.push(parse_value(tokens, position));
            }
            *position += 1;
            Value::Array(items)
        }
        quoted if quoted.starts_with('"') => Value::String(quoted[1..].to_string()),
        word => word.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(word.to_string())),
    }
}
