//! Stage configuration files: each stage has one serde struct; a TOML file
//! may set any subset of its fields, the rest keep their defaults, and the
//! command line overrides both.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this stage (unknown field, wrong type...).
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the field and line.
        #[source]
        source: toml::de::Error,
    },
}

/// The stage's configuration from `path`, or its defaults when there is none.
pub fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigFileError> {
    let Some(path) = path else { return Ok(T::default()) };
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|source| ConfigFileError::Parse { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use melfuse_audio::SignalConfig;

    #[test]
    fn defaults_without_a_file_and_partial_files_keep_the_rest() {
        assert_eq!(load_config::<SignalConfig>(None).unwrap(), SignalConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signal.toml");
        std::fs::write(&path, "n_mels = 64\n").unwrap();
        let cfg: SignalConfig = load_config(Some(&path)).unwrap();
        assert_eq!((cfg.n_mels, cfg.n_fft), (64, 2048));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "n_mel = 64\n").unwrap();
        let message = load_config::<SignalConfig>(Some(&path)).unwrap_err().to_string();
        assert!(message.contains("bad.toml") && message.contains("n_mel"), "{message}");
        assert!(matches!(
            load_config::<SignalConfig>(Some(&dir.path().join("none.toml"))),
            Err(ConfigFileError::Read { .. })
        ));
    }
}
