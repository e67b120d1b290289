//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`): `$ORT_DYLIB_PATH`,
//! else a `libonnxruntime.so*` next to the executable, else a start-up error that says exactly how
//! to get the pinned version. One ONNX Runtime environment per process, created on first use.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::ServeError;

/// The environment variable naming the library file.
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// The workspace manifest, which pins the ONNX Runtime version in `[workspace.metadata.onnxruntime]`.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The pinned ONNX Runtime wheel version for `variant` (`cpu` → PyPI `onnxruntime`, `gpu` →
/// `onnxruntime-gpu`), read from the workspace manifest this binary was built from.
pub fn pinned_version(variant: &str) -> Option<String> {
    let manifest: toml::Table = toml::from_str(WORKSPACE_MANIFEST).ok()?;
    manifest.get("workspace")?.get("metadata")?.get("onnxruntime")?.get(variant)?.as_str().map(str::to_string)
}

/// The library to load: `$ORT_DYLIB_PATH` if set (it must exist), else the first `libonnxruntime.so*`
/// (`.dylib` on macOS) in the executable's directory.
pub fn locate_library() -> Result<PathBuf, ServeError> {
    if let Some(path) = std::env::var_os(LIBRARY_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(ServeError::RuntimeMissing(format!(
            "{LIBRARY_ENV}={} does not name a file.\n{}",
            path.display(),
            how_to_get_it()
        )));
    }
    let beside_executable = std::env::current_exe().ok().and_then(|exe| exe.parent().and_then(library_in));
    beside_executable.ok_or_else(|| {
        ServeError::RuntimeMissing(format!(
            "ONNX Runtime library not found: {LIBRARY_ENV} is not set and there is no libonnxruntime.so next to \
             the melfuse-serve executable.\n{}",
            how_to_get_it()
        ))
    })
}

/// The first ONNX Runtime library file in `dir`, if any.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so") || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The instructions printed when the library is missing.
fn how_to_get_it() -> String {
    let cpu = pinned_version("cpu").unwrap_or_else(|| "<pinned version>".into());
    let gpu = pinned_version("gpu").unwrap_or_else(|| "<pinned version>".into());
    format!(
        "Get ONNX Runtime {cpu} from PyPI and point {LIBRARY_ENV} at its library:\n  \
         in a melfuse checkout: export {LIBRARY_ENV}=$(serve/onnxruntime)        (CUDA: serve/onnxruntime --gpu)\n  \
         anywhere: python3 -m venv ort && ort/bin/pip install --no-deps onnxruntime=={cpu}   (CUDA: onnxruntime-gpu=={gpu})\n            \
         export {LIBRARY_ENV}=$(ls ort/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*)\n\
         or copy that libonnxruntime.so* next to the melfuse-serve executable."
    )
}

/// The process's ONNX Runtime environment, loading the library found by [`locate_library`] on the
/// first call. ONNX Runtime allows one environment per process, so every session shares it.
pub fn environment() -> Result<&'static ort::environment::Environment, ServeError> {
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let path = locate_library()?;
    let load_error = |detail: String| ServeError::RuntimeLoad { path: path.display().to_string(), detail };
    let environment = ort::init_from(&path)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("melfuse-serve")
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    tracing::info!(library = %path.display(), "loaded ONNX Runtime");
    Ok(ENVIRONMENT.get_or_init(|| environment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_read_from_the_workspace_and_matches_the_python_reference_tools() {
        let cpu = pinned_version("cpu").expect("[workspace.metadata.onnxruntime] cpu");
        assert!(pinned_version("gpu").is_some());
        let requirements = include_str!("../../tests/reference/requirements.txt");
        let python_pin = requirements.lines().find_map(|line| line.trim().strip_prefix("onnxruntime=="));
        assert_eq!(python_pin, Some(cpu.as_str()), "tests/reference/requirements.txt pins another onnxruntime");
    }

    #[test]
    fn library_files_are_recognised_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.txt"), b"").unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.32.0"), b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(dir.path().join("libonnxruntime.so.1.32.0")));
        assert!(how_to_get_it().contains("serve/onnxruntime"));
    }
}
