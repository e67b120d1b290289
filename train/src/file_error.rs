//! The trainer's one file-system error: what was attempted, on which path, and the operating
//! system's reason (`cannot read /runs/a/run.json: No such file or directory`). Every stage's
//! error enum wraps it (`Io(#[from] FileError)`), so a message names the file the same way
//! whichever stage failed, and `?` turns it into the stage's error.

use std::path::{Path, PathBuf};

/// A file-system operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct FileError {
    /// What was attempted ("read", "create folder", "memory-map", …).
    pub action: &'static str,
    /// The file or folder.
    pub path: PathBuf,
    /// The operating system's reason.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// The error of `action` on `path`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self { action, path: path.into(), source }
    }
}

/// Writes `bytes` to `path` atomically (`melfuse_audio::atomic_file::write_atomically`: a
/// temporary file renamed over it, so a crash leaves the old file or the new one, never half of
/// one), as the trainer's file error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    melfuse_audio::atomic_file::write_atomically(path, bytes).map_err(|error| match error {
        melfuse_audio::AudioError::Io { source, .. } => FileError::new("write", path, source),
        other => FileError::new("write", path, std::io::Error::other(other.to_string())),
    })
}

/// A `map_err` adapter: `std::fs::read(path).map_err(io_error("read", path))?`.
pub fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::new(action, path, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_action_and_the_path() {
        let missing =
            std::fs::read("/nonexistent/melfuse/run.json").map_err(io_error("read", Path::new("/x/run.json")));
        let error = missing.expect_err("no such file");
        assert_eq!(error.action, "read");
        assert!(error.to_string().starts_with("cannot read /x/run.json: "), "{error}");
        assert_eq!(error.source.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_write_is_atomic_and_names_the_file() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("run.json");
        write_file(&path, b"{}").expect("write");
        assert_eq!(std::fs::read(&path).expect("read back"), b"{}");
        let missing = dir.path().join("no-such-folder").join("run.json");
        let error = write_file(&missing, b"{}").expect_err("the folder does not exist");
        assert!(error.to_string().starts_with(&format!("cannot write {}: ", missing.display())), "{error}");
        assert_eq!(error.source.kind(), std::io::ErrorKind::NotFound);
    }
}
