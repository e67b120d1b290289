//! Command-line flags of `melfuse-train synth-corpus`.

use std::path::PathBuf;

use clap::Args;

use super::{SynthCorpusConfig, SynthError};

/// Flags of `synth-corpus`. Settings resolve as defaults < `--config` TOML <
/// flags given here.
#[derive(Debug, Clone, Args)]
pub struct SynthCorpusArgs {
    /// Output directory (created if missing; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Clips to render per genre [default: 16].
    #[arg(long)]
    pub clips_per_genre: Option<usize>,
    /// Length of every clip in seconds [default: 30].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Master seed: the same seed gives byte-identical files [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output sample rate in Hz, 8000–192000 [default: 44100].
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// TOML file with any `SynthCorpusConfig` fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Replace an earlier corpus in a non-empty --out (only this generator's
    /// clip files and corpus.json are removed).
    #[arg(long)]
    pub force: bool,
}

impl SynthCorpusArgs {
    /// The effective config: defaults, then the TOML file, then flags; validated.
    pub fn resolve(&self) -> Result<SynthCorpusConfig, SynthError> {
        let mut config = match &self.config {
            Some(path) => SynthCorpusConfig::from_toml_file(path)?,
            None => SynthCorpusConfig::default(),
        };
        if let Some(clips) = self.clips_per_genre {
            config.clips_per_genre = clips;
        }
        if let Some(seconds) = self.seconds {
            config.seconds = seconds;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(rate) = self.sample_rate {
            config.sample_rate = rate;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: SynthCorpusArgs,
    }

    fn parse(args: &[&str]) -> SynthCorpusArgs {
        let argv = std::iter::once("synth-corpus").chain(args.iter().copied());
        Command::try_parse_from(argv).expect("arguments parse").args
    }

    #[test]
    fn flags_override_toml_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("synth.toml");
        std::fs::write(&toml, "seconds = 7.5\nseed = 9\ngenres = [\"edm\", \"cn\"]\n").expect("write toml");
        let args = parse(&["--out", "x", "--seed", "11", "--config", toml.to_str().expect("utf-8 path")]);
        let config = args.resolve().expect("valid config");
        assert_eq!(config.seconds, 7.5);
        assert_eq!(config.seed, 11);
        assert_eq!(config.clips_per_genre, SynthCorpusConfig::default().clips_per_genre);
        assert_eq!(config.genres.len(), 2);
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let message = parse(&["--out", "x", "--clips-per-genre", "0"]).resolve().expect_err("zero clips").to_string();
        assert!(message.contains("at least 1"), "{message}");
        let message = parse(&["--out", "x", "--sample-rate", "4000"]).resolve().expect_err("rate refused").to_string();
        assert!(message.contains("4000"), "{message}");
    }
}
