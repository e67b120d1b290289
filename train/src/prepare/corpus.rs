//! Finding the corpus on disk: each immediate subfolder of the corpus root is
//! a genre (the folder name is the label), and every audio file below it,
//! at any depth, is one of that genre's tracks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Why walking the corpus failed as a whole (problems with single entries
/// are recorded as [`IgnoredFile`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The corpus root could not be listed.
    #[error("cannot read corpus directory {path}: {source}")]
    Unreadable {
        /// The corpus root.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The corpus root has no genre subfolder.
    #[error(
        "no genre folders in {0}: put each genre's audio in its own subfolder (the folder name is the genre label)"
    )]
    NoGenreFolders(PathBuf),
}

/// One candidate audio file of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    /// Index of its genre in [`Corpus::genres`].
    pub genre: usize,
    /// Path relative to the corpus root, `/`-separated: the track's identity
    /// in the cache, the split hash and the reports.
    pub relative_path: String,
    /// Path on disk.
    pub path: PathBuf,
    /// Size in bytes (part of the cache fingerprint).
    pub size: u64,
    /// Last modification time, when the file system reports one (part of the
    /// cache fingerprint).
    pub modified: Option<SystemTime>,
}

/// An entry of the corpus that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredFile {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// The genre folder it is in, if any.
    pub genre: Option<String>,
    /// Why it is not used.
    pub reason: String,
}

/// The genres and candidate files of a corpus, sorted by (genre, path) so
/// that everything downstream is deterministic.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Genre labels, sorted by name.
    pub genres: Vec<String>,
    /// Files whose extension is an audio extension, sorted by (genre, path).
    pub files: Vec<CorpusFile>,
    /// Entries that are not used: files outside genre folders, files with
    /// other extensions, unreadable folders.
    pub ignored: Vec<IgnoredFile>,
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Lists the corpus under `root`. Hidden entries (names starting with `.`)
/// are skipped silently; `extensions` (lower case, no dot) select the audio
/// files; symbolic links are followed, each folder visited once.
pub fn scan_corpus(root: &Path, extensions: &[String]) -> Result<Corpus, CorpusError> {
    let unreadable = |source| CorpusError::Unreadable { path: root.to_path_buf(), source };
    let mut genre_dirs = Vec::new();
    let mut ignored = Vec::new();
    for entry in std::fs::read_dir(root).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        let display = name.to_string_lossy().into_owned();
        match (std::fs::metadata(&path), name.to_str()) {
            (Ok(meta), Some(genre)) if meta.is_dir() => genre_dirs.push((genre.to_string(), path)),
            (Ok(meta), None) if meta.is_dir() => ignored.push(IgnoredFile {
                path: display,
                genre: None,
                reason: "genre folder name is not valid UTF-8".into(),
            }),
            (Ok(_), _) => {
                ignored.push(IgnoredFile { path: display, genre: None, reason: "not inside a genre folder".into() })
            }
            (Err(error), _) => ignored.push(IgnoredFile { path: display, genre: None, reason: error.to_string() }),
        }
    }
    if genre_dirs.is_empty() {
        return Err(CorpusError::NoGenreFolders(root.to_path_buf()));
    }
    genre_dirs.sort();
    let mut files = Vec::new();
    let mut visited = HashSet::new();
    for (genre_index, (genre, dir)) in genre_dirs.iter().enumerate() {
        let mut walker = Walker { genre_index, genre, extensions, files: &mut files, ignored: &mut ignored };
        walker.walk(dir, genre, &mut visited);
    }
    files.sort_by(|a, b| (a.genre, &a.relative_path).cmp(&(b.genre, &b.relative_path)));
    ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Corpus { genres: genre_dirs.into_iter().map(|(g, _)| g).collect(), files, ignored })
}

/// Recursive walk of one genre folder.
struct Walker<'a> {
    genre_index: usize,
    genre: &'a str,
    extensions: &'a [String],
    files: &'a mut Vec<CorpusFile>,
    ignored: &'a mut Vec<IgnoredFile>,
}

impl Walker<'_> {
    fn ignore(&mut self, relative: String, reason: String) {
        self.ignored.push(IgnoredFile { path: relative, genre: Some(self.genre.to_string()), reason });
    }

    fn walk(&mut self, dir: &Path, relative: &str, visited: &mut HashSet<PathBuf>) {
        if let Ok(canonical) = dir.canonicalize() {
            if !visited.insert(canonical) {
                return;
            }
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => return self.ignore(relative.to_string(), format!("cannot read folder: {error}")),
        };
        let mut entries: Vec<_> = entries.collect();
        entries.sort_by_key(|e| e.as_ref().map(|e| e.file_name()).ok());
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    self.ignore(relative.to_string(), format!("cannot list folder: {error}"));
                    continue;
                }
            };
            let name = entry.file_name();
            if is_hidden(&name) {
                continue;
            }
            let path = entry.path();
            let child = format!("{relative}/{}", name.to_string_lossy());
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(error) => {
                    self.ignore(child, error.to_string());
                    continue;
                }
            };
            if meta.is_dir() {
                self.walk(&path, &child, visited);
                continue;
            }
            let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
            match extension {
                Some(ext) if self.extensions.iter().any(|e| e.eq_ignore_ascii_case(&ext)) => {
                    self.files.push(CorpusFile {
                        genre: self.genre_index,
                        relative_path: child,
                        path,
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    })
                }
                _ => self.ignore(child, "extension is not in the configured audio extensions".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn genres_are_sorted_folders_and_files_are_found_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["rock/b.mp3", "rock/live/a.FLAC", "jazz/x.wav", "jazz/cover.jpg", "loose.wav", ".hidden/y.wav"] {
            touch(&root.join(file));
        }
        touch(&root.join("jazz/.DS_Store"));
        let exts: Vec<String> = ["wav", "flac", "mp3"].map(String::from).to_vec();
        let corpus = scan_corpus(root, &exts).unwrap();
        assert_eq!(corpus.genres, ["jazz", "rock"]);
        let paths: Vec<(usize, &str)> = corpus.files.iter().map(|f| (f.genre, f.relative_path.as_str())).collect();
        assert_eq!(paths, [(0, "jazz/x.wav"), (1, "rock/b.mp3"), (1, "rock/live/a.FLAC")]);
        let ignored: Vec<&str> = corpus.ignored.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(ignored, ["jazz/cover.jpg", "loose.wav"]);
        assert_eq!(corpus.ignored[1].reason, "not inside a genre folder");
    }

    #[test]
    fn no_genre_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("song.wav"));
        let err = scan_corpus(dir.path(), &["wav".into()]).unwrap_err();
        assert!(matches!(err, CorpusError::NoGenreFolders(_)));
        assert!(err.to_string().contains("subfolder"));
        assert!(matches!(scan_corpus(&dir.path().join("none"), &[]), Err(CorpusError::Unreadable { .. })));
    }
}
