//! The recipe's input: a tab-separated list with a header line naming the columns `genre`,
//! `package`, `path` (required) and `seconds`, `licence`, `note` (optional; other columns are
//! ignored), one track per line. `path` is the file's path inside the Debian package, relative
//! (`usr/share/...`); a path of the form `ARCHIVE:MEMBER` where `ARCHIVE` ends in `.zip` or `.pk3`
//! names a member of a zip archive inside the package.
//!
//! Every track gets a stable, readable file name in its genre folder ([`output_names`]): the
//! package and the file name (`hedgewars-data--oriental.ogg`), with parent folders added only
//! where that is not unique (`fretsonfire-songs-muldjord--armygeddon--song.ogg`). Names are
//! computed over the whole list before any filter, so `--genres` or `--min-seconds` never rename
//! a file.

use std::collections::HashSet;

/// Archive extensions whose members a `path` may name with `ARCHIVE:MEMBER`.
pub const ARCHIVE_EXTENSIONS: [&str; 2] = [".zip", ".pk3"];

/// One track of the recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeRow {
    /// 1-based line number in the TSV (for messages).
    pub line: usize,
    /// Genre label: the folder the file goes to.
    pub genre: String,
    /// Debian binary package that holds the file.
    pub package: String,
    /// Path of the file (or of the archive holding it) inside the package, relative.
    pub path: String,
    /// Member inside the archive at `path`, for `ARCHIVE:MEMBER` rows.
    pub member: Option<String>,
    /// Length in seconds as listed (not measured here).
    pub seconds: Option<f64>,
    /// Licence as listed.
    pub licence: String,
    /// Free-text note as listed (credits, provenance).
    pub note: String,
}

impl RecipeRow {
    /// The source as written in the TSV: `path` or `path:member`.
    pub fn source(&self) -> String {
        match &self.member {
            Some(member) => format!("{}:{member}", self.path),
            None => self.path.clone(),
        }
    }

    /// The path of the track itself, `/`-separated: the member's path inside the archive's path
    /// for archive rows.
    pub fn track_path(&self) -> String {
        match &self.member {
            Some(member) => format!("{}/{member}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Splits `ARCHIVE:MEMBER` when `ARCHIVE` has an archive extension; other paths stay whole.
fn split_source(source: &str) -> (String, Option<String>) {
    for (index, _) in source.match_indices(':') {
        let archive = &source[..index];
        let lower = archive.to_ascii_lowercase();
        if ARCHIVE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
            return (archive.to_string(), Some(source[index + 1..].to_string()));
        }
    }
    (source.to_string(), None)
}

/// A relative path without `..`, empty or absolute parts.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|part| !part.is_empty() && part != "..")
}

/// A Debian package name: lower-case letters, digits, `+`, `-`, `.`, at least two characters,
/// starting with a letter or digit.
pub fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A genre label usable as a folder name that `prepare` will see (not hidden, no separator).
fn is_genre_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// Parses the recipe. Every problem is collected (with its line number) rather than stopping
/// at the first, so one run reports them all.
pub fn parse_recipe(text: &str) -> Result<Vec<RecipeRow>, Vec<String>> {
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));
    let Some((_, header)) = lines.next() else { return Err(vec!["the file is empty (no header line)".into()]) };
    let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
    let column = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(genre_col), Some(package_col), Some(path_col)) = (column("genre"), column("package"), column("path"))
    else {
        return Err(vec![format!(
            "line 1: the header must name the columns genre, package and path (found {columns:?})"
        )]);
    };
    let (seconds_col, licence_col, note_col) =
        (column("seconds"), column("licence").or(column("license")), column("note"));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, line) in lines {
        let number = index + 1;
        let fields: Vec<&str> = line.split('\t').collect();
        let field = |col: Option<usize>| col.and_then(|c| fields.get(c)).map_or("", |f| f.trim());
        let (genre, package, source) = (field(Some(genre_col)), field(Some(package_col)), field(Some(path_col)));
        let mut bad = |detail: String| problems.push(format!("line {number}: {detail}"));
        if !is_genre_name(genre) {
            bad(format!("genre {genre:?} is not a usable folder name"));
            continue;
        }
        if !is_package_name(package) {
            bad(format!("package {package:?} is not a Debian package name"));
            continue;
        }
        let (path, member) = split_source(source);
        if !is_safe_relative(&path) || member.as_deref().is_some_and(|m| !is_safe_relative(m)) {
            bad(format!("path {source:?} must be relative, without `..` (ARCHIVE:MEMBER for zip members)"));
            continue;
        }
        let seconds = match field(seconds_col) {
            "" => None,
            text => match text.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Some(s),
                _ => {
                    bad(format!("seconds {text:?} is not a non-negative number"));
                    continue;
                }
            },
        };
        if !seen.insert((package.to_string(), source.to_string())) {
            bad(format!("{package} {source} is listed twice"));
            continue;
        }
        rows.push(RecipeRow {
            line: number,
            genre: genre.to_string(),
            package: package.to_string(),
            path,
            member,
            seconds,
            licence: field(licence_col).to_string(),
            note: field(note_col).to_string(),
        });
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// `text` with every character other than ASCII letters, digits, `.`, `-` and `_` replaced by
/// `_` (so names survive shells and every file system), no leading dot.
pub fn sanitize(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    cleaned.trim_start_matches('.').to_string()
}

/// The output path (`genre/name`) of every row, in row order; see the module docs.
pub fn output_names(rows: &[RecipeRow]) -> Vec<String> {
    let name_with = |row: &RecipeRow, parents: usize| {
        let track = row.track_path();
        let parts: Vec<&str> = track.split('/').collect();
        let keep = &parts[parts.len().saturating_sub(parents + 1)..];
        let tail: Vec<String> = keep.iter().map(|p| sanitize(p)).collect();
        format!("{}--{}", sanitize(&row.package), tail.join("--"))
    };
    let mut names: Vec<String> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let depth = row.track_path().split('/').count();
        let mut chosen = None;
        for parents in 0..depth {
            let name = name_with(row, parents);
            let clashes = rows
                .iter()
                .enumerate()
                .any(|(other, r)| other != index && r.genre == row.genre && name_with(r, parents) == name);
            if !clashes {
                chosen = Some(name);
                break;
            }
        }
        let name = chosen.unwrap_or_else(|| format!("line{}--{}", row.line, name_with(row, 0)));
        names.push(format!("{}/{name}", row.genre));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "genre\tpackage\tpath\tseconds\tlicence\tnote\n";

    #[test]
    fn rows_parse_with_archive_members_and_optional_columns() {
        let text = format!(
            "{HEADER}cn\t0ad-data\tusr/share/0ad/public.zip:audio/music/Red_Dawn.ogg\t176.0\tCC-BY-SA-3.0\tOmri\n\
             rock\thedgewars-data\tusr/share/Music/Rock.ogg\t\tGPL-2\n"
        );
        let rows = parse_recipe(&text).expect("valid recipe");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, "usr/share/0ad/public.zip");
        assert_eq!(rows[0].member.as_deref(), Some("audio/music/Red_Dawn.ogg"));
        assert_eq!((rows[0].seconds, rows[0].line), (Some(176.0), 2));
        assert_eq!(rows[0].source(), "usr/share/0ad/public.zip:audio/music/Red_Dawn.ogg");
        assert_eq!((rows[1].member.clone(), rows[1].seconds, rows[1].note.as_str()), (None, None, ""));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = format!(
            "{HEADER}cn\tBad_Pkg\tusr/x.ogg\n.hidden\tpkg\tusr/x.ogg\nedm\tpkg\t/abs.ogg\nedm\tpkg\tusr/../x.ogg\n\
             edm\tpkg\tusr/x.ogg\tlong\nedm\tpkg\tusr/y.ogg\nedm\tpkg\tusr/y.ogg\n"
        );
        let problems = parse_recipe(&text).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        for (problem, line) in problems.iter().zip([2, 3, 4, 5, 6, 8]) {
            assert!(problem.starts_with(&format!("line {line}:")), "{problem}");
        }
        assert!(problems[5].contains("listed twice"));
        assert!(parse_recipe("name\tpath\n").unwrap_err()[0].contains("genre, package and path"));
        assert!(parse_recipe("").is_err());
    }

    #[test]
    fn the_committed_debian_recipe_parses_with_unique_names() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/debian/debian-free-music.tsv");
        let rows = parse_recipe(&std::fs::read_to_string(path).expect("recipe")).expect("valid recipe");
        assert_eq!(rows.len(), 129);
        let genres: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.genre.as_str()).collect();
        assert_eq!(genres.into_iter().collect::<Vec<_>>(), ["cn", "edm", "orchestral", "rock"]);
        assert_eq!(rows.iter().filter(|r| r.member.is_some()).count(), 8 + 11);
        let names = output_names(&rows);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), 129);
        assert!(names.contains(&"cn/0ad-data--Red_Dawn.ogg".to_string()), "{names:?}");
        assert!(names.contains(&"rock/fretsonfire-songs-sectoid--Metal_madness--song.ogg".to_string()));
    }

    #[test]
    fn a_colon_outside_an_archive_is_part_of_the_path() {
        assert_eq!(split_source("usr/a:b.ogg"), ("usr/a:b.ogg".into(), None));
        assert_eq!(split_source("x/music.PK3:sound/t.ogg"), ("x/music.PK3".into(), Some("sound/t.ogg".into())));
    }

    #[test]
    fn names_are_readable_unique_and_independent_of_filters() {
        let text = format!(
            "{HEADER}rock\tfof-a\tsongs/armygeddon/song.ogg\nrock\tfof-a\tsongs/chaos god/song.ogg\n\
             rock\thw\tMusic/Rock.ogg\nedm\tsing\tmusic/A New Journey.ogg\nedm\tsing\tmusic/win/A New Journey.ogg\n\
             cn\thw\tOther/Rock.ogg\n"
        );
        let rows = parse_recipe(&text).expect("valid");
        let names = output_names(&rows);
        assert_eq!(
            names,
            [
                "rock/fof-a--armygeddon--song.ogg",
                "rock/fof-a--chaos_god--song.ogg",
                "rock/hw--Rock.ogg",
                "edm/sing--music--A_New_Journey.ogg",
                "edm/sing--win--A_New_Journey.ogg",
                "cn/hw--Rock.ogg",
            ]
        );
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(output_names(&rows[2..3]), ["rock/hw--Rock.ogg"]);
        assert_eq!(sanitize("..a b/c"), "a_b_c");
    }
}
