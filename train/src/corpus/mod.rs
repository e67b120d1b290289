//! `melfuse-train corpus`: builds a corpus of recorded music from a recipe that lists tracks
//! inside Debian packages (`train/configs/debian/debian-free-music.tsv`, a copy of the shared list;
//! format in [`tsv`]), laid out as
//! `prepare` reads it: `OUT/<genre>/<package>--<file>`, plus `corpus-manifest.json` (SHA-256 and
//! source per file) and `CREDITS.md` ([`manifest`]).
//!
//! # Why a subcommand and not a script
//! The recipe is the first stage of the same pipeline (`corpus → prepare → fit → eval → export`)
//! and ships in the same binary: no Python or shell dependencies beyond Debian's own `apt-get`,
//! `dpkg-deb` and `tar`; zip members are read with the `zip` crate; hashing, the manifest and the
//! error report are typed and unit-tested next to the code, and the end-to-end test runs the real
//! binary against a real package.
//!
//! # What a run does
//! 1. Parses the whole recipe and reports every bad line at once (nothing is fetched then).
//! 2. Selects rows (`--genres`, `--min-seconds` on the listed length, `--skip-package`).
//! 3. Verifies: a file that exists and whose SHA-256 equals the manifest's entry for the same
//!    package and source is kept, and its package is not touched. A rerun of a complete corpus
//!    therefore fetches nothing and runs no `apt-get`.
//! 4. For each package still needed: asks apt for its `.deb` (name, size, SHA-256), reuses a
//!    checked copy in the download folder (`OUT/.downloads` or `--downloads`) or downloads it
//!    there ([`debian`]), unpacks only the listed paths and the package's copyright file, copies
//!    each track (or zip member) into place through a hidden `.partial` file and a rename, hashes
//!    it, and takes its author from the copyright file where that is machine-readable
//!    ([`copyright`]).
//! 5. Writes the manifest (after every package too, so an interrupted run keeps what it
//!    unpacked) and the credits for every good file, then returns the list of failures
//!    (unknown package, path not in the package, member not in the archive...): one line each,
//!    all collected, the good files kept. The command exits non-zero when any row failed.
//!
//! The downloaded `.deb` files stay in the download folder (≈4.6 GB for the full recipe, 23
//! packages, fetched in ≈7 min here), so a damaged file is restored without the
//! network; delete the folder once the corpus is complete to get the space back.

mod args;
pub mod copyright;
pub mod debian;
pub mod manifest;
pub mod tsv;

use crate::file_error::{io_error, write_file, FileError};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

pub use args::CorpusArgs;
use debian::{ensure_deb, extract_members, locate, package_version, sha256_file, DebianError};
use manifest::{render_credits, CorpusManifest, ManifestEntry, COPYRIGHT_DIR, CREDITS_FILE, MANIFEST_FILE};
use tsv::{output_names, parse_recipe, RecipeRow};

/// What a corpus build needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct CorpusOptions {
    /// The recipe (TSV).
    pub recipe: PathBuf,
    /// The corpus folder.
    pub out: PathBuf,
    /// Where `.deb` files are kept; `OUT/.downloads` when absent.
    pub downloads: Option<PathBuf>,
    /// Only these genres.
    pub genres: Option<Vec<String>>,
    /// Only rows listed at least this long (rows without a length pass).
    pub min_seconds: Option<f64>,
    /// Packages left out of this run.
    pub skip_packages: Vec<String>,
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

/// Why the corpus build failed as a whole (per-row problems are [`RowFailure`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The recipe file could not be read.
    #[error("cannot read the recipe {path}: {source}")]
    ReadRecipe {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The recipe has bad lines; nothing was fetched.
    #[error("the recipe {path} has {} problem(s); nothing was fetched:\n  {}", problems.len(), problems.join("\n  "))]
    Recipe {
        /// The file.
        path: PathBuf,
        /// One message per bad line.
        problems: Vec<String>,
    },
    /// `--genres` names a genre the recipe does not have.
    #[error("--genres: `{genre}` is not in the recipe (it has: {known})")]
    UnknownGenre {
        /// The genre asked for.
        genre: String,
        /// The recipe's genres, comma-separated.
        known: String,
    },
    /// A setting is out of range.
    #[error("--min-seconds {0} must be a non-negative number")]
    BadMinSeconds(f64),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The manifest could not be serialised.
    #[error("cannot serialise the manifest: {0}")]
    Json(#[from] serde_json::Error),
}

/// A recipe row that did not make it into the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// Its line in the recipe.
    pub line: usize,
    /// Its package.
    pub package: String,
    /// Its path (`ARCHIVE:MEMBER` for members).
    pub source: String,
    /// What went wrong.
    pub reason: String,
}

/// Files and listed minutes of one genre in the corpus after the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenreSummary {
    /// Files present.
    pub files: usize,
    /// Their listed length, in minutes.
    pub minutes: f64,
}

/// What a corpus build did.
#[derive(Debug, Clone)]
pub struct CorpusOutcome {
    /// The corpus folder.
    pub out: PathBuf,
    /// Rows selected by the filters.
    pub selected: usize,
    /// Rows left out by the filters.
    pub filtered_out: usize,
    /// Files found intact (hash equal to the manifest's): nothing fetched for them.
    pub verified: usize,
    /// Files written by this run.
    pub written: usize,
    /// Packages downloaded by this run, with their size in bytes.
    pub downloaded: Vec<(String, u64)>,
    /// Packages unpacked from a `.deb` already in the download folder.
    pub reused: Vec<(String, u64)>,
    /// Rows that failed, with the reason.
    pub failures: Vec<RowFailure>,
    /// Per genre, the files in the manifest after the run.
    pub genres: BTreeMap<String, GenreSummary>,
    /// Files left out because their content equals another file's: `(file, same as)`.
    pub duplicates: Vec<(String, String)>,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for CorpusOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |list: &[(String, u64)]| list.iter().map(|(_, b)| *b).sum::<u64>() as f64 / 1e6;
        writeln!(
            f,
            "corpus {}: {} rows selected ({} left out by filters): {} verified, {} written, {} failed",
            self.out.display(),
            self.selected,
            self.filtered_out,
            self.verified,
            self.written,
            self.failures.len()
        )?;
        writeln!(
            f,
            "packages: {} downloaded ({:.1} MB), {} unpacked from the download cache ({:.1} MB); {:.1} s",
            self.downloaded.len(),
            mb(&self.downloaded),
            self.reused.len(),
            mb(&self.reused),
            self.elapsed.as_secs_f64()
        )?;
        for (genre, summary) in &self.genres {
            writeln!(f, "  {genre:<12} {:>4} files {:>7.1} min (listed)", summary.files, summary.minutes)?;
        }
        for (file, of) in &self.duplicates {
            writeln!(f, "left out: {file} has the same content as {of}")?;
        }
        for failure in &self.failures {
            writeln!(f, "failed: line {} {} {}: {}", failure.line, failure.package, failure.source, failure.reason)?;
        }
        Ok(())
    }
}

/// Copies `reader` to `dest` through a hidden partial file and a rename; returns the SHA-256 and
/// the size.
fn copy_hashed(mut reader: impl Read, dest: &Path) -> Result<(String, u64), std::io::Error> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = dest.with_file_name(format!(".{name}.partial"));
    let mut file = std::fs::File::create(&partial)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
        bytes += read as u64;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, dest)?;
    Ok((crate::prepare::cache::hex(&hasher.finalize()), bytes))
}

/// Copies one row's track from the unpacked package (`work`) to `dest`.
fn copy_track(row: &RecipeRow, work: &Path, dest: &Path) -> Result<(String, u64), String> {
    let source = work.join(&row.path);
    if !source.is_file() {
        return Err(format!("{} is not in the package", row.path));
    }
    match &row.member {
        None => {
            let file = std::fs::File::open(&source).map_err(|e| format!("cannot read {}: {e}", row.path))?;
            copy_hashed(file, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))
        }
        Some(member) => {
            let file = std::fs::File::open(&source).map_err(|e| format!("cannot read {}: {e}", row.path))?;
            let mut archive =
                zip::ZipArchive::new(file).map_err(|e| format!("{} is not a readable zip archive: {e}", row.path))?;
            let entry = archive.by_name(member).map_err(|e| format!("{member} is not in {}: {e}", row.path))?;
            copy_hashed(entry, dest).map_err(|e| format!("cannot extract {member} to {}: {e}", dest.display()))
        }
    }
}

fn progress_bar(enabled: bool, rows: usize) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(rows as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("corpus {bar:30.cyan/blue} {pos}/{len} files [{elapsed_precise}] {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Recipe rows with their output names.
type Selected<'a> = Vec<(&'a RecipeRow, &'a String)>;

/// The rows a run works on, with their output names, and how many the filters left out.
fn select<'a>(
    rows: &'a [RecipeRow],
    names: &'a [String],
    options: &CorpusOptions,
) -> Result<(Selected<'a>, usize), CorpusError> {
    let known: BTreeSet<&str> = rows.iter().map(|r| r.genre.as_str()).collect();
    if let Some(genres) = &options.genres {
        if let Some(genre) = genres.iter().find(|g| !known.contains(g.as_str())) {
            let known = known.iter().copied().collect::<Vec<_>>().join(", ");
            return Err(CorpusError::UnknownGenre { genre: genre.clone(), known });
        }
    }
    if let Some(min) = options.min_seconds {
        if !(min.is_finite() && min >= 0.0) {
            return Err(CorpusError::BadMinSeconds(min));
        }
    }
    let keep = |row: &RecipeRow| {
        options.genres.as_ref().is_none_or(|g| g.contains(&row.genre))
            && options.min_seconds.is_none_or(|min| row.seconds.is_none_or(|s| s >= min))
            && !options.skip_packages.contains(&row.package)
    };
    let selected: Vec<_> = rows.iter().zip(names).filter(|(row, _)| keep(row)).collect();
    let left_out = rows.len() - selected.len();
    Ok((selected, left_out))
}

/// The manifest entry of a row written from `package_version` with `hash`, `bytes`, credited
/// from `copyright_text`.
fn entry_for(
    row: &RecipeRow,
    name: &str,
    (sha256, bytes): (String, u64),
    package_version: &str,
    copyright_text: Option<&str>,
) -> ManifestEntry {
    let credit = copyright_text.and_then(|text| copyright::attribution(text, &row.path, row.member.as_deref()));
    ManifestEntry {
        file: name.to_string(),
        genre: row.genre.clone(),
        sha256,
        bytes,
        package: row.package.clone(),
        package_version: package_version.to_string(),
        source: row.source(),
        licence: row.licence.clone(),
        author: credit.as_ref().map(|c| c.copyright.clone()),
        copyright_license: credit.as_ref().and_then(|c| c.license.clone()),
        copyright_files: credit.map(|c| c.files),
        listed_seconds: row.seconds,
        note: row.note.clone(),
        duplicate_of: None,
    }
}

/// The `.deb` of `package` in `downloads` (downloaded if needed): its apt record, path, whether
/// this run downloaded it, and its version.
fn fetch_package(
    package: &str,
    downloads: &Path,
    bar: &ProgressBar,
) -> Result<(debian::DebInfo, PathBuf, bool, String), DebianError> {
    let info = locate(package)?;
    bar.set_message(format!("{package}: {:.1} MB", info.size as f64 / 1e6));
    let (deb, downloaded) = ensure_deb(&info, downloads)?;
    tracing::info!(
        package,
        megabytes = info.size as f64 / 1e6,
        "{}",
        if downloaded { "downloaded" } else { "found in the download cache" }
    );
    let version = package_version(&deb)?;
    Ok((info, deb, downloaded, version))
}

/// Writes `manifest` to `out/corpus-manifest.json`.
fn write_manifest(manifest: &CorpusManifest, out: &Path) -> Result<(), CorpusError> {
    let mut json = serde_json::to_string_pretty(manifest)?;
    json.push('\n');
    let path = out.join(MANIFEST_FILE);
    Ok(write_file(&path, json.as_bytes())?)
}

/// Marks every entry whose content equals an earlier one's (by file name) as its duplicate and
/// removes its file.
fn mark_duplicates(entries: &mut BTreeMap<String, ManifestEntry>, out: &Path) -> Result<(), CorpusError> {
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries.values_mut() {
        if entry.duplicate_of.is_some() {
            continue;
        }
        match first.get(&entry.sha256) {
            Some(original) => {
                tracing::warn!("{} has the same content as {original}: left out", entry.file);
                entry.duplicate_of = Some(original.clone());
                let path = out.join(&entry.file);
                if path.exists() {
                    std::fs::remove_file(&path).map_err(io_error("remove", &path))?;
                }
            }
            None => {
                first.insert(entry.sha256.clone(), entry.file.clone());
            }
        }
    }
    Ok(())
}

/// Builds (or verifies) the corpus; see the module docs.
pub fn build_corpus(options: &CorpusOptions) -> Result<CorpusOutcome, CorpusError> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&options.recipe)
        .map_err(|source| CorpusError::ReadRecipe { path: options.recipe.clone(), source })?;
    let rows =
        parse_recipe(&text).map_err(|problems| CorpusError::Recipe { path: options.recipe.clone(), problems })?;
    let names = output_names(&rows);
    let (selected, filtered_out) = select(&rows, &names, options)?;
    let out = options.out.as_path();
    let downloads = options.downloads.clone().unwrap_or_else(|| out.join(".downloads"));
    for dir in [out, downloads.as_path()] {
        std::fs::create_dir_all(dir).map_err(io_error("create folder", dir))?;
    }
    let previous = CorpusManifest::read(out).unwrap_or_else(|| CorpusManifest::new(""));
    let mut manifest = CorpusManifest::new(&options.recipe.display().to_string());
    // Entries of rows this run does not select stay as long as their files do.
    let selected_names: BTreeSet<&str> = selected.iter().map(|(_, n)| n.as_str()).collect();
    let mut entries: BTreeMap<String, ManifestEntry> = previous
        .files
        .iter()
        .filter(|e| {
            !selected_names.contains(e.file.as_str()) && (e.duplicate_of.is_some() || out.join(&e.file).is_file())
        })
        .map(|e| (e.file.clone(), e.clone()))
        .collect();
    let bar = progress_bar(options.progress, selected.len());
    let mut outcome = CorpusOutcome {
        out: out.to_path_buf(),
        selected: selected.len(),
        filtered_out,
        verified: 0,
        written: 0,
        downloaded: Vec::new(),
        reused: Vec::new(),
        failures: Vec::new(),
        genres: BTreeMap::new(),
        duplicates: Vec::new(),
        elapsed: Duration::ZERO,
    };

    // Verify what is there; group the rest by package.
    let mut todo: BTreeMap<&str, Vec<(&RecipeRow, &String)>> = BTreeMap::new();
    for &(row, name) in &selected {
        let path = out.join(name);
        let intact =
            previous.entry(name).filter(|e| e.package == row.package && e.source == row.source()).filter(|e| {
                // A duplicate is verified through the file it duplicates.
                let on_disk = out.join(e.duplicate_of.as_deref().unwrap_or(name));
                on_disk.is_file() && sha256_file(&on_disk).is_ok_and(|hash| hash == e.sha256)
            });
        match intact {
            Some(entry) => {
                let mut entry = entry.clone();
                (entry.licence, entry.note, entry.listed_seconds) =
                    (row.licence.clone(), row.note.clone(), row.seconds);
                entries.insert(name.clone(), entry);
                outcome.verified += 1;
                bar.inc(1);
            }
            None => {
                if path.exists() {
                    tracing::warn!("{name}: not as recorded in the manifest; fetching it again");
                }
                todo.entry(row.package.as_str()).or_default().push((row, name));
            }
        }
    }

    for (package, package_rows) in todo {
        let fail_all = |outcome: &mut CorpusOutcome, reason: String| {
            for (row, _) in &package_rows {
                outcome.failures.push(RowFailure {
                    line: row.line,
                    package: package.to_string(),
                    source: row.source(),
                    reason: reason.clone(),
                });
            }
            bar.inc(package_rows.len() as u64);
        };
        let fetched = fetch_package(package, &downloads, &bar);
        let (info, deb, downloaded, version) = match fetched {
            Ok(found) => found,
            Err(error) => {
                fail_all(&mut outcome, error.to_string());
                continue;
            }
        };
        if downloaded { &mut outcome.downloaded } else { &mut outcome.reused }.push((package.to_string(), info.size));
        let work = downloads.join(format!(".extract-{package}"));
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(io_error("remove", &work))?;
        }
        let copyright_path = format!("usr/share/doc/{package}/copyright");
        let mut members: Vec<String> = package_rows.iter().map(|(row, _)| row.path.clone()).collect();
        members.push(copyright_path.clone());
        members.sort();
        members.dedup();
        bar.set_message(format!("{package}: unpacking"));
        if let Err(error) = extract_members(&deb, &members, &work) {
            fail_all(&mut outcome, error.to_string());
            continue;
        }
        let copyright_text = std::fs::read_to_string(work.join(&copyright_path)).ok();
        if let Some(text) = &copyright_text {
            let dir = out.join(COPYRIGHT_DIR);
            std::fs::create_dir_all(&dir).map_err(io_error("create folder", &dir))?;
            let path = dir.join(package);
            write_file(&path, text.as_bytes())?;
        }
        for (row, name) in &package_rows {
            let dest = out.join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io_error("create folder", parent))?;
            }
            match copy_track(row, &work, &dest) {
                Ok(written) => {
                    let entry = entry_for(row, name, written, &version, copyright_text.as_deref());
                    entries.insert((*name).clone(), entry);
                    outcome.written += 1;
                }
                Err(reason) => outcome.failures.push(RowFailure {
                    line: row.line,
                    package: package.to_string(),
                    source: row.source(),
                    reason: format!("{reason} ({package} {version})"),
                }),
            }
            bar.inc(1);
        }
        std::fs::remove_dir_all(&work).map_err(io_error("remove", &work))?;
        // Saved after every package, so an interrupted run keeps what it unpacked.
        manifest.files = entries.values().cloned().collect();
        write_manifest(&manifest, out)?;
    }
    bar.finish_and_clear();

    mark_duplicates(&mut entries, out)?;
    manifest.files = entries.into_values().collect();
    write_manifest(&manifest, out)?;
    let credits_path = out.join(CREDITS_FILE);
    write_file(&credits_path, render_credits(&manifest).as_bytes())?;
    for entry in &manifest.files {
        if let Some(of) = &entry.duplicate_of {
            outcome.duplicates.push((entry.file.clone(), of.clone()));
            continue;
        }
        let summary = outcome.genres.entry(entry.genre.clone()).or_default();
        summary.files += 1;
        summary.minutes += entry.listed_seconds.unwrap_or(0.0) / 60.0;
    }
    outcome.failures.sort_by_key(|f| f.line);
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

#[cfg(test)]
mod tests;
