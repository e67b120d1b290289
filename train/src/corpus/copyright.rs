//! Authors from a package's `usr/share/doc/PKG/copyright`, when it is in Debian's
//! machine-readable format (DEP-5): paragraphs with `Files:` glob patterns, `Copyright:` and
//! `License:`, the last matching paragraph winning.
//!
//! `Files:` patterns name paths in the *source* tree (`stereo/bell.oga`, `data/music/*`), the
//! recipe knows *installed* paths (`usr/share/sounds/freedesktop/stereo/bell.oga`): a pattern
//! matches when it matches some tail of the installed path that starts at a `/` (for an archive
//! member, tails of the member's own path count too). That is a heuristic; when only the
//! catch-all `Files: *` matches, the credit says so.

/// The credit a copyright file gives one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The `Copyright:` field, lines joined with `; `.
    pub copyright: String,
    /// The first line of the paragraph's `License:` field, if any.
    pub license: Option<String>,
    /// The `Files:` patterns of the paragraph that matched.
    pub files: String,
}

/// DEP-5 glob: `*` any run of characters (including `/`), `?` one character.
fn glob_matches(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `pattern` matches `path` or a tail of it starting after a `/`.
fn matches_tail(pattern: &str, path: &str) -> bool {
    let pattern: Vec<char> = pattern.trim_start_matches("./").chars().collect();
    let starts = std::iter::once(0).chain(path.match_indices('/').map(|(i, _)| i + 1));
    starts.into_iter().any(|start| glob_matches(&pattern, &path[start..].chars().collect::<Vec<_>>()))
}

/// One paragraph: its fields, continuation lines folded into the value with `\n`.
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut all = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// The credit for the installed `path` (and, for archive members, `member`), or `None` when the
/// file is not machine-readable or no paragraph matches.
pub fn attribution(copyright_text: &str, path: &str, member: Option<&str>) -> Option<Attribution> {
    let all = paragraphs(copyright_text);
    let header = all.first()?;
    if !header.iter().any(|(name, _)| name == "format") {
        return None;
    }
    let field = |paragraph: &[(String, String)], name: &str| {
        paragraph.iter().find(|(n, _)| n == name).map(|(_, value)| value.clone())
    };
    let candidates: Vec<String> = match member {
        Some(member) => vec![format!("{path}/{member}"), member.to_string()],
        None => vec![path.to_string()],
    };
    let mut found = None;
    for paragraph in &all[1..] {
        let Some(files) = field(paragraph, "files") else { continue };
        let hit = files.split_whitespace().any(|pattern| candidates.iter().any(|c| matches_tail(pattern, c)));
        if hit {
            if let Some(copyright) = field(paragraph, "copyright") {
                let copyright = copyright.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
                let license = field(paragraph, "license").and_then(|l| l.lines().next().map(str::to_string));
                found = Some(Attribution { copyright: copyright.join("; "), license, files: files.replace('\n', " ") });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: sounds\n\n\
Files: *\nCopyright: 2010 The Game Team\nLicense: GPL-2+\n\n\
Files: stereo/bell.oga stereo/complete.oga\nCopyright: Dr. Richard Boulanger et al\n 2012 Someone Else\nLicense: CC-BY-3.0\n text of it\n\n\
Files: audio/music/*.ogg\nCopyright: Omri Lahav\nLicense: CC-BY-SA-3.0\n\n\
Files: debian/*\nCopyright: Maintainer\nLicense: GPL-2+\n";

    #[test]
    fn the_last_matching_paragraph_credits_a_tail_of_the_installed_path() {
        let bell = attribution(DEP5, "usr/share/sounds/freedesktop/stereo/bell.oga", None).expect("match");
        assert_eq!(bell.copyright, "Dr. Richard Boulanger et al; 2012 Someone Else");
        assert_eq!(bell.license.as_deref(), Some("CC-BY-3.0"));
        let other = attribution(DEP5, "usr/share/sounds/freedesktop/stereo/other.oga", None).expect("match");
        assert_eq!((other.copyright.as_str(), other.files.as_str()), ("2010 The Game Team", "*"));
        let member = attribution(DEP5, "usr/share/0ad/public.zip", Some("audio/music/Red_Dawn.ogg")).expect("match");
        assert_eq!(member.copyright, "Omri Lahav");
        // A tail must start at a folder boundary: `xstereo/bell.oga` is another file.
        assert_eq!(attribution(DEP5, "usr/xstereo/bell.oga", None).expect("match").files, "*");
    }

    #[test]
    fn free_text_copyright_files_give_nothing() {
        assert_eq!(attribution("This package was debianized by someone.\n\nCopyright: me\n", "a/b.ogg", None), None);
        assert_eq!(attribution("", "a/b.ogg", None), None);
    }

    #[test]
    fn globs() {
        let m = |p: &str, t: &str| glob_matches(&p.chars().collect::<Vec<_>>(), &t.chars().collect::<Vec<_>>());
        assert!(m("*", "a/b") && m("a/*.ogg", "a/x/y.ogg") && m("a?c", "abc") && m("a*b*c", "axxbyyc"));
        assert!(!m("a/*.ogg", "b/x.ogg") && !m("a?c", "ac") && !m("*.ogg", "x.oga"));
    }
}
