//! `melfuse-train export` end to end: a short run becomes a bundle that passes
//! `onnx.checker.check_model(full_check=True)`, that Python's ONNX Runtime runs with outputs equal
//! to the burn decoder's (DESIGN.md: within 1e-4 max abs, batch 1 and 7) — and so does the `ort`
//! crate with the same runtime loaded dynamically, as the service will — and that the manifest
//! loader accepts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::prelude::*;
use melfuse_proto::manifest::Manifest;
use melfuse_train::fit::load_model;
use support::{path, run, trained_run};

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

/// The ONNX Runtime library the service loads: `$ORT_DYLIB_PATH`, else the one inside the project
/// venv's `onnxruntime` wheel (where `tests/run` puts it).
fn onnxruntime_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let venv_lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    let found = std::fs::read_dir(&venv_lib).ok().into_iter().flatten().flatten().find_map(|python| {
        let capi = python.path().join("site-packages/onnxruntime/capi");
        std::fs::read_dir(capi)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
    });
    found.unwrap_or_else(|| {
        panic!("no libonnxruntime.so under {}: run `tests/run` or set ORT_DYLIB_PATH", venv_lib.display())
    })
}

/// Runs `decoder.onnx` through the `ort` crate (ONNX Runtime loaded dynamically, as the service
/// does) and returns `mel` as a flat vector with its shape.
fn run_with_ort(model: &Path, z: (Vec<f32>, [usize; 2]), genre: (Vec<f32>, [usize; 2])) -> (Vec<usize>, Vec<f32>) {
    // ONNX Runtime allows one environment per process.
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    let environment = ENVIRONMENT.get_or_init(|| {
        ort::init_from(onnxruntime_library()).expect("load ONNX Runtime").build().expect("environment")
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
    let run_dir = trained_run(root.path());
    let bundle = root.path().join("bundle");
    let export = run(&["export", path(&run_dir), "--out", path(&bundle), "--name", "parity"]);
    assert!(export.status.success(), "export failed: {}", String::from_utf8_lossy(&export.stderr));
    for file in ["decoder.onnx", "manifest.json", "preview.png"] {
        assert!(bundle.join(file).exists(), "{file} missing");
    }
    let loaded = Manifest::load(&bundle).expect("the bundle validates");
    assert_eq!(loaded.manifest.name, "parity");
    assert_eq!(loaded.manifest.genres, vec!["cn", "edm"]);

    let device = Device::flex();
    let (model, info, _) = load_model(&run_dir, &device).expect("load the run");
    let latent = info.model.latent_dim;
    for batch in [1usize, 7] {
        let z: Vec<f32> = (0..batch * latent).map(|i| noise(i + batch * 1000)).collect();
        let genre = blends(batch);
        let ours = model
            .decode(
                Tensor::<2>::from_data(TensorData::new(z.clone(), [batch, latent]), &device),
                Tensor::<2>::from_data(TensorData::new(genre.clone(), [batch, 2]), &device),
            )
            .into_data()
            .try_into_vec::<f32>()
            .expect("decoder output");
        let inputs = serde_json::json!({
            "z": {"shape": [batch, latent], "data": &z},
            "genre": {"shape": [batch, 2], "data": &genre},
        });
        let inputs_path = root.path().join(format!("inputs_{batch}.json"));
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
}
