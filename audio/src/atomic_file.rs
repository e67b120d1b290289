//! Writing output files so that a crash or a full disk never leaves a
//! half-written file under the final name.

use std::io::Write;
use std::path::Path;

use crate::error::AudioError;

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// synced and then renamed over the destination.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AudioError> {
    let io_error = |source| AudioError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")))?;
    let temporary = dir.join(format!(".{}.{}.partial", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.bin");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert!(matches!(err, AudioError::Io { .. }));
        assert!(err.to_string().contains("out.bin"));
    }
}
