//! `melfuse-train`: the trainer's command line. Wiring only; the work lives in
//! the library's modules.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use melfuse_train::synth::{write_corpus, SynthCorpusConfig};

/// melfuse trainer: inspect audio, build corpora, train and export models.
#[derive(Debug, Parser)]
#[command(name = "melfuse-train", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render a genre-labelled synthetic corpus (cn, edm, orchestral, cn_edm)
    /// of 16-bit WAVs plus corpus.json.
    SynthCorpus(SynthCorpusArgs),
}

/// Flags of `synth-corpus`. Settings resolve as defaults < `--config` TOML <
/// flags given here.
#[derive(Debug, Args)]
struct SynthCorpusArgs {
    /// Output directory (created if missing; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Clips to render per genre.
    #[arg(long)]
    clips_per_genre: Option<usize>,
    /// Length of every clip in seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Master seed: the same seed gives byte-identical files.
    #[arg(long)]
    seed: Option<u64>,
    /// Output sample rate in Hz (8000–192000).
    #[arg(long)]
    sample_rate: Option<u32>,
    /// TOML file with any `SynthCorpusConfig` fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Replace an earlier corpus in a non-empty --out (only this generator's
    /// clip files and corpus.json are removed).
    #[arg(long)]
    force: bool,
}

impl SynthCorpusArgs {
    /// The effective config: defaults, then the TOML file, then flags.
    fn config(&self) -> Result<SynthCorpusConfig> {
        let mut config = match &self.config {
            Some(path) => SynthCorpusConfig::from_toml_file(path)
                .with_context(|| format!("loading --config {}", path.display()))?,
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
        config.validate().context("invalid synth-corpus settings")?;
        Ok(config)
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::SynthCorpus(args) => {
            let config = args.config()?;
            let report = write_corpus(&args.out, &config, args.force)
                .with_context(|| format!("writing synthetic corpus to {}", args.out.display()))?;
            println!(
                "wrote {} clips ({:.1} s of audio) to {}",
                report.files.len(),
                report.total_seconds,
                args.out.display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SynthCorpusArgs {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        let Command::SynthCorpus(args) = cli.command;
        args
    }

    #[test]
    fn flags_override_toml_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("synth.toml");
        std::fs::write(
            &toml,
            "seconds = 7.5\nseed = 9\ngenres = [\"edm\", \"cn\"]\n",
        )
        .expect("write toml");
        let args = parse(&[
            "melfuse-train",
            "synth-corpus",
            "--out",
            "x",
            "--seed",
            "11",
            "--config",
            toml.to_str().expect("utf-8 path"),
        ]);
        let config = args.config().expect("valid config");
        assert_eq!(config.seconds, 7.5);
        assert_eq!(config.seed, 11);
        assert_eq!(
            config.clips_per_genre,
            SynthCorpusConfig::default().clips_per_genre
        );
        assert_eq!(config.genres.len(), 2);
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let args = parse(&[
            "melfuse-train",
            "synth-corpus",
            "--out",
            "x",
            "--clips-per-genre",
            "0",
        ]);
        let message = format!("{:#}", args.config().expect_err("zero clips refused"));
        assert!(message.contains("at least 1"), "{message}");
        let args = parse(&[
            "melfuse-train",
            "synth-corpus",
            "--out",
            "x",
            "--sample-rate",
            "4000",
        ]);
        assert!(format!("{:#}", args.config().expect_err("rate refused")).contains("4000"));
    }
}
