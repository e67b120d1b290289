//! Fetching files from Debian binary packages with the ordinary tools, without installing
//! anything: `apt-get download --print-uris` says which `.deb` (name, size, SHA-256) the
//! machine's package lists point at; `apt-get download` fetches it into a private folder
//! (apt writes under the final name while downloading, so an interrupted download must never sit
//! where a later run would take it for complete); `dpkg-deb --fsys-tarfile | tar -x` unpacks only
//! the members asked for (0ad-data unpacks to ≈3 GB, of which the recipe needs one archive).

use crate::file_error::{io_error, FileError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Why a package could not be fetched or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// `apt-get` or `dpkg-deb` is not installed.
    #[error("`{program}` is not available ({source}); the corpus recipe needs Debian's apt-get and dpkg-deb")]
    MissingTool {
        /// The program.
        program: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// apt does not know the package.
    #[error(
        "package {package} is not in this machine's package lists ({detail}); if the lists are missing or old, \
         run `apt-get update` (as root) and try again"
    )]
    UnknownPackage {
        /// The package.
        package: String,
        /// apt's message.
        detail: String,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its error output.
        stderr: String,
    },
    /// The downloaded file does not match the package list.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
}

/// The `.deb` that apt would download for a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebInfo {
    /// The package.
    pub package: String,
    /// Where apt fetches it.
    pub url: String,
    /// Its file name (`PKG_VERSION_ARCH.deb`).
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 in lower-case hex, when the package list gives one.
    pub sha256: Option<String>,
}

/// The last lines of a command's error output, for messages.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

fn run(command: &mut Command, program: &'static str) -> Result<std::process::Output, DebianError> {
    command.output().map_err(|source| DebianError::MissingTool { program, source })
}

/// Parses one line of `apt-get download --print-uris`:
/// `'URL' FILE SIZE SHA256:HEX`.
pub fn parse_print_uris(package: &str, line: &str) -> Option<DebInfo> {
    let mut parts = line.split_whitespace();
    let url = parts.next()?.trim_matches('\'').to_string();
    let file_name = parts.next()?.to_string();
    let size = parts.next()?.parse().ok()?;
    let sha256 = parts.next().and_then(|h| h.strip_prefix("SHA256:")).map(str::to_ascii_lowercase);
    Some(DebInfo { package: package.to_string(), url, file_name, size, sha256 })
}

/// Asks apt which `.deb` it would fetch for `package` (no network: the package lists).
pub fn locate(package: &str) -> Result<DebInfo, DebianError> {
    let output = run(Command::new("apt-get").args(["download", "--print-uris", "-q", package]), "apt-get")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let info = stdout.lines().find_map(|line| parse_print_uris(package, line));
    match (output.status.success(), info) {
        (true, Some(info)) => Ok(info),
        _ => Err(DebianError::UnknownPackage { package: package.to_string(), detail: tail(&output.stderr) }),
    }
}

/// SHA-256 of a file in lower-case hex, streamed.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(crate::prepare::cache::hex(&hasher.finalize()))
}

/// Checks a `.deb` on disk against the package list's size and hash.
fn check_deb(path: &Path, info: &DebInfo) -> Result<(), DebianError> {
    let size = std::fs::metadata(path).map_err(io_error("inspect", path))?.len();
    if size != info.size {
        return Err(DebianError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{size} bytes, the package list says {}", info.size),
        });
    }
    if let Some(expected) = &info.sha256 {
        let found = sha256_file(path).map_err(io_error("read", path))?;
        if &found != expected {
            return Err(DebianError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("SHA-256 {found}, the package list says {expected}"),
            });
        }
    }
    Ok(())
}

/// The `.deb` of `info` in `downloads`: reused when a checked copy is there (returns `false`),
/// else downloaded with `apt-get download` into a private folder, checked and moved into place
/// (returns `true`).
pub fn ensure_deb(info: &DebInfo, downloads: &Path) -> Result<(PathBuf, bool), DebianError> {
    let target = downloads.join(&info.file_name);
    if target.is_file() {
        match check_deb(&target, info) {
            Ok(()) => return Ok((target, false)),
            Err(problem) => {
                tracing::warn!("{problem}; downloading it again");
                std::fs::remove_file(&target).map_err(io_error("remove", &target))?;
            }
        }
    }
    let partial = downloads.join(format!(".partial-{}", info.package));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io_error("remove", &partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io_error("create folder", &partial))?;
    let output = run(Command::new("apt-get").args(["download", "-q", &info.package]).current_dir(&partial), "apt-get")?;
    if !output.status.success() {
        return Err(DebianError::Command {
            command: format!("apt-get download {}", info.package),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    let fetched = partial.join(&info.file_name);
    check_deb(&fetched, info)?;
    std::fs::rename(&fetched, &target).map_err(io_error("move", &fetched))?;
    std::fs::remove_dir_all(&partial).map_err(io_error("remove", &partial))?;
    Ok((target, true))
}

/// The `Version` field of a `.deb`.
pub fn package_version(deb: &Path) -> Result<String, DebianError> {
    let output = run(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"), "dpkg-deb")?;
    if !output.status.success() {
        return Err(DebianError::Command {
            command: format!("dpkg-deb -f {} Version", deb.display()),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Unpacks `members` (relative paths inside the package) of `deb` under `dest`. Members that are
/// not in the package are simply absent afterwards: the caller reports each one. Package data
/// archives name members `./usr/...`; old ones `usr/...`, tried only when no `./` member was
/// found (a second pass decompresses the whole package again: minutes for 0ad-data).
pub fn extract_members(deb: &Path, members: &[String], dest: &Path) -> Result<(), DebianError> {
    std::fs::create_dir_all(dest).map_err(io_error("create folder", dest))?;
    let mut missing: Vec<String> = members.to_vec();
    for prefix in ["./", ""] {
        if missing.is_empty() || (prefix.is_empty() && missing.len() < members.len()) {
            break;
        }
        let mut dpkg = Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(deb)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DebianError::MissingTool { program: "dpkg-deb", source })?;
        let Some(stdout) = dpkg.stdout.take() else { unreachable!("stdout is piped") };
        let tar = Command::new("tar")
            .args(["-x", "-f", "-", "-C"])
            .arg(dest)
            .args(missing.iter().map(|m| format!("{prefix}{m}")))
            .stdin(stdout)
            .output()
            .map_err(|source| DebianError::MissingTool { program: "tar", source })?;
        let dpkg_output = dpkg.wait_with_output().map_err(io_error("run dpkg-deb on", deb))?;
        // tar exits non-zero when a member is missing, and dpkg-deb then dies of a broken pipe:
        // both are expected; a broken package shows up as every member missing plus this stderr.
        missing.retain(|m| std::fs::symlink_metadata(dest.join(m)).is_err());
        if !missing.is_empty() && prefix.is_empty() && !dpkg_output.status.success() && !tar.status.success() {
            let stderr = tail(&dpkg_output.stderr);
            if !stderr.contains("Broken pipe") && !stderr.is_empty() {
                return Err(DebianError::Command {
                    command: format!("dpkg-deb --fsys-tarfile {}", deb.display()),
                    status: dpkg_output.status.to_string(),
                    stderr,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_uris_lines_parse() {
        let line = "'http://deb.debian.org/debian/pool/main/s/stf/stf_0.8-2_all.deb' stf_0.8-2_all.deb 383752 \
                    SHA256:ABCDEF01";
        let info = parse_print_uris("stf", line).expect("parses");
        assert_eq!(info.url, "http://deb.debian.org/debian/pool/main/s/stf/stf_0.8-2_all.deb");
        assert_eq!((info.file_name.as_str(), info.size), ("stf_0.8-2_all.deb", 383_752));
        assert_eq!(info.sha256.as_deref(), Some("abcdef01"));
        assert!(parse_print_uris("stf", "Reading package lists...").is_none());
    }

    #[test]
    fn a_wrong_size_or_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.deb");
        std::fs::write(&path, b"abc").unwrap();
        let mut info =
            DebInfo { package: "p".into(), url: String::new(), file_name: "p.deb".into(), size: 3, sha256: None };
        assert!(check_deb(&path, &info).is_ok());
        info.sha256 = Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into());
        assert!(check_deb(&path, &info).is_ok());
        info.sha256 = Some("00".into());
        assert!(check_deb(&path, &info).unwrap_err().to_string().contains("SHA-256"));
        info.size = 4;
        assert!(check_deb(&path, &info).unwrap_err().to_string().contains("3 bytes"));
    }
}
