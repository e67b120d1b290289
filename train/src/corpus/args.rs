//! Command-line flags of `melfuse-train corpus`.

use std::path::PathBuf;

use clap::Args;

use super::CorpusOptions;

/// Flags of `corpus`.
#[derive(Debug, Clone, Args)]
pub struct CorpusArgs {
    /// The recipe: a TSV with columns genre, package, path (ARCHIVE:MEMBER for zip members) and
    /// optionally seconds, licence, note (e.g. train/configs/debian/debian-free-music.tsv).
    #[arg(long = "from", value_name = "TSV")]
    pub recipe: PathBuf,
    /// The corpus folder: `DIR/<genre>/<file>`, CREDITS.md and corpus-manifest.json (created if missing;
    /// a rerun verifies what is there and fetches only what is missing or damaged).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where downloaded .deb files are kept [default: DIR/.downloads].
    #[arg(long, value_name = "DIR")]
    pub downloads: Option<PathBuf>,
    /// Only these genres (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub genres: Option<Vec<String>>,
    /// Only tracks listed at least this many seconds long (e.g. 45 drops short loops and stingers).
    #[arg(long, value_name = "SECONDS")]
    pub min_seconds: Option<f64>,
    /// Leave this package out of this run (repeatable), e.g. a large one to fetch later.
    #[arg(long = "skip-package", value_name = "PACKAGE")]
    pub skip_packages: Vec<String>,
}

impl CorpusArgs {
    /// The build options (the progress bar on).
    pub fn options(&self) -> CorpusOptions {
        CorpusOptions {
            recipe: self.recipe.clone(),
            out: self.out.clone(),
            downloads: self.downloads.clone(),
            genres: self.genres.clone(),
            min_seconds: self.min_seconds,
            skip_packages: self.skip_packages.clone(),
            progress: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_args::parse_args;

    #[test]
    fn flags_parse() {
        let args: CorpusArgs = parse_args(&[
            "--from",
            "list.tsv",
            "--out",
            "c",
            "--genres",
            "cn,edm",
            "--min-seconds",
            "45",
            "--skip-package",
            "0ad-data",
            "--skip-package",
            "x",
        ]);
        let options = args.options();
        assert_eq!(options.genres, Some(vec!["cn".to_string(), "edm".to_string()]));
        assert_eq!((options.min_seconds, options.skip_packages.len()), (Some(45.0), 2));
        assert_eq!(options.downloads, None);
    }
}
