//! melfuse-e2e: end-to-end tests across the melfuse crates (`tests/*.rs`)
//! and the paths they share — committed fixtures and the reference files
//! that `tests/reference/make_reference.py` regenerates with librosa.

use std::path::PathBuf;

/// Directory of the committed audio fixtures (`tests/fixtures/`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Path of one committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// Directory of the librosa reference files: `$MELFUSE_REFERENCE_DIR`, or
/// `.reference/` at the workspace root, where `tests/run` writes them.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("MELFUSE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(".reference"))
}

/// One reference file, or a panic that says how to produce it: a parity test
/// without its reference must fail, never pass vacuously.
pub fn reference_file(relative: &str) -> PathBuf {
    let path = reference_dir().join(relative);
    assert!(
        path.exists(),
        "missing reference file {}: run `tests/run` (or `python tests/reference/make_reference.py --out .reference` \
         in a venv with tests/reference/requirements.txt) first",
        path.display()
    );
    path
}

/// The cases shared by the reference script and the Rust tests.
pub fn reference_cases() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference").join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ONNX Runtime library for tests that load it through the `ort` crate: `$ORT_DYLIB_PATH` (which
/// `tests/run` exports), else the pinned wheel's library that `serve/onnxruntime` installs (on first
/// use) into `.onnxruntime/` and prints.
pub fn onnxruntime_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../serve/onnxruntime");
    let output = std::process::Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(output.status.success(), "{} failed: set ORT_DYLIB_PATH to a libonnxruntime.so", script.display());
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
