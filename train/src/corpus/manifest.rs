//! What the recipe leaves beside the tracks: `corpus-manifest.json` (machine-readable: one entry
//! per file with its SHA-256, source and licence, read back by the next run to verify instead of
//! fetching) and `CREDITS.md` (for people: who made each track and under which licence, rendered
//! from the manifest).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest's file name in the corpus folder.
pub const MANIFEST_FILE: &str = "corpus-manifest.json";
/// The credits' file name in the corpus folder.
pub const CREDITS_FILE: &str = "CREDITS.md";
/// Hidden folder (so `prepare` does not take it for a genre) with each package's copyright file.
pub const COPYRIGHT_DIR: &str = ".copyright";
/// `format` of the manifest.
pub const MANIFEST_FORMAT: &str = "melfuse-corpus";
/// Version of the manifest layout.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// One file of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the corpus folder, `genre/name`.
    pub file: String,
    /// Its genre (the folder).
    pub genre: String,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Debian package it came from.
    pub package: String,
    /// That package's version.
    pub package_version: String,
    /// Path inside the package as listed (`ARCHIVE:MEMBER` for archive members).
    pub source: String,
    /// Licence as listed in the recipe.
    pub licence: String,
    /// Author / copyright holder from the package's copyright file, where it names one.
    pub author: Option<String>,
    /// The copyright file's licence for the paragraph that matched, if any.
    pub copyright_license: Option<String>,
    /// The `Files:` patterns of that paragraph (`*` means the package-wide credit).
    pub copyright_files: Option<String>,
    /// Length in seconds as listed in the recipe.
    pub listed_seconds: Option<f64>,
    /// The recipe's note.
    pub note: String,
    /// Set when the file has the same content as this other corpus file: then it is not kept on
    /// disk (a duplicate counts twice in training, or straddles the train/validation split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

/// `corpus-manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusManifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// `melfuse-train corpus <version>`.
    pub generator: String,
    /// The recipe file, as given.
    pub recipe: String,
    /// The files, sorted by path.
    pub files: Vec<ManifestEntry>,
}

impl CorpusManifest {
    /// An empty manifest for `recipe`.
    pub fn new(recipe: &str) -> Self {
        Self {
            format: MANIFEST_FORMAT.into(),
            format_version: MANIFEST_FORMAT_VERSION,
            generator: format!("melfuse-train corpus {}", env!("CARGO_PKG_VERSION")),
            recipe: recipe.to_string(),
            files: Vec::new(),
        }
    }

    /// The manifest in `dir`, or `None` when there is none or it is not one of ours (then every
    /// file is verified the slow way: fetched again).
    pub fn read(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(MANIFEST_FILE)).ok()?;
        let manifest: Self = serde_json::from_slice(&bytes).ok()?;
        (manifest.format == MANIFEST_FORMAT && manifest.format_version == MANIFEST_FORMAT_VERSION).then_some(manifest)
    }

    /// The entry of `file`, if any.
    pub fn entry(&self, file: &str) -> Option<&ManifestEntry> {
        self.files.iter().find(|e| e.file == file)
    }
}

/// Escapes `|` and line breaks for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `CREDITS.md` for `manifest`: a licence summary, then one table per genre.
pub fn render_credits(manifest: &CorpusManifest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Credits\n");
    let _ = writeln!(
        out,
        "The audio in this folder was fetched from Debian packages by `melfuse-train corpus` from `{}`. \
         Each track keeps its licence; CC-BY-SA and GPL works require attribution and share-alike terms for \
         adaptations. The full copyright file of each package is in `{COPYRIGHT_DIR}/PACKAGE` (also at \
         `/usr/share/doc/PACKAGE/copyright` in the package).\n",
        manifest.recipe
    );
    let kept: Vec<&ManifestEntry> = manifest.files.iter().filter(|e| e.duplicate_of.is_none()).collect();
    let mut licences: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for entry in &kept {
        let slot = licences.entry(entry.licence.as_str()).or_default();
        slot.0 += 1;
        slot.1 += entry.listed_seconds.unwrap_or(0.0) / 60.0;
    }
    let _ = writeln!(out, "| licence | tracks | minutes |\n|---|---:|---:|");
    for (licence, (tracks, minutes)) in &licences {
        let _ = writeln!(out, "| {} | {tracks} | {minutes:.1} |", cell(if licence.is_empty() { "?" } else { licence }));
    }
    let mut genres: BTreeMap<&str, Vec<&ManifestEntry>> = BTreeMap::new();
    for entry in &kept {
        genres.entry(entry.genre.as_str()).or_default().push(entry);
    }
    for (genre, entries) in genres {
        let minutes: f64 = entries.iter().map(|e| e.listed_seconds.unwrap_or(0.0)).sum::<f64>() / 60.0;
        let _ = writeln!(out, "\n## {genre} ({} tracks, {minutes:.1} min)\n", entries.len());
        let _ = writeln!(out, "| file | title | author (copyright file) | package | licence | note |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for e in entries {
            let title = e.source.rsplit(['/', ':']).next().unwrap_or(&e.source);
            let title = title.rsplit_once('.').map_or(title, |(stem, _)| stem).replace('_', " ");
            let author = match (&e.author, e.copyright_files.as_deref()) {
                (Some(author), Some("*")) => format!("{author} (package-wide)"),
                (Some(author), _) => author.clone(),
                (None, _) => "see the package's copyright file".into(),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} {} | {} | {} |",
                cell(&e.file),
                cell(&title),
                cell(&author),
                cell(&e.package),
                cell(&e.package_version),
                cell(&e.licence),
                cell(&e.note)
            );
        }
    }
    let duplicates: Vec<&ManifestEntry> = manifest.files.iter().filter(|e| e.duplicate_of.is_some()).collect();
    if !duplicates.is_empty() {
        let _ = writeln!(out, "\n## Left out: same recording as another file\n");
        for e in duplicates {
            let of = e.duplicate_of.as_deref().unwrap_or_default();
            let _ = writeln!(
                out,
                "- `{}` ({} {}) is identical to `{of}`",
                cell(&e.source),
                cell(&e.package),
                cell(&e.package_version)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, author: Option<&str>, files: Option<&str>) -> ManifestEntry {
        ManifestEntry {
            file: file.into(),
            genre: file.split('/').next().unwrap_or_default().into(),
            sha256: "00".into(),
            bytes: 1,
            package: "pkg".into(),
            package_version: "1.0-1".into(),
            source: "usr/share/a.zip:music/Red_Dawn.ogg".into(),
            licence: "CC-BY-SA-3.0".into(),
            author: author.map(String::from),
            copyright_license: None,
            copyright_files: files.map(String::from),
            listed_seconds: Some(90.0),
            note: "a | b".into(),
            duplicate_of: None,
        }
    }

    #[test]
    fn credits_list_every_file_with_its_author_and_licence() {
        let mut manifest = CorpusManifest::new("list.tsv");
        manifest.files = vec![
            entry("cn/pkg--Red_Dawn.ogg", Some("Omri Lahav"), Some("audio/*")),
            entry("edm/pkg--x.ogg", Some("Team"), Some("*")),
            entry("edm/pkg--y.ogg", None, None),
        ];
        let credits = render_credits(&manifest);
        assert!(credits.contains("| CC-BY-SA-3.0 | 3 | 4.5 |"), "{credits}");
        assert!(credits.contains("## cn (1 tracks, 1.5 min)"), "{credits}");
        assert!(
            credits.contains("| `cn/pkg--Red_Dawn.ogg` | Red Dawn | Omri Lahav | pkg 1.0-1 | CC-BY-SA-3.0 | a \\| b |")
        );
        assert!(credits.contains("Team (package-wide)") && credits.contains("see the package's copyright file"));
        manifest.files[2].duplicate_of = Some("edm/pkg--x.ogg".into());
        let credits = render_credits(&manifest);
        assert!(credits.contains("| CC-BY-SA-3.0 | 2 | 3.0 |") && !credits.contains("`edm/pkg--y.ogg`"), "{credits}");
        assert!(credits.contains("is identical to `edm/pkg--x.ogg`"), "{credits}");
    }

    #[test]
    fn the_manifest_round_trips_and_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = CorpusManifest::new("list.tsv");
        manifest.files.push(entry("cn/a.ogg", None, None));
        std::fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert_eq!(CorpusManifest::read(dir.path()), Some(manifest.clone()));
        assert!(manifest.entry("cn/a.ogg").is_some() && manifest.entry("cn/b.ogg").is_none());
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{\"format\": \"other\"}").unwrap();
        assert_eq!(CorpusManifest::read(dir.path()), None);
    }
}
