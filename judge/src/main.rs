//! `melfuse-judge BUNDLE --reference CORPUS`: measures what a bundle generates (see the library
//! docs), prints the table and writes `judge.json` and `judge.png`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use melfuse_audio::atomic_file::write_atomically;
use melfuse_judge::config::JudgeConfig;
use melfuse_judge::judge::judge;
use melfuse_judge::picture::judge_picture;
use melfuse_serve::config::ServeConfig;

/// Judge what a model bundle generates against held-out reference audio.
#[derive(Debug, Parser)]
#[command(name = "melfuse-judge", version, about)]
struct Cli {
    /// The model bundle (e.g. models/demo).
    bundle: PathBuf,
    /// Genre folders of audio the bundle was not trained on (REFERENCE/<genre>/*.wav|flac|ogg|mp3).
    #[arg(long)]
    reference: PathBuf,
    /// Genre folders of other tracks to train the genre classifier on (e.g. the model's training
    /// tracks); every --reference track is then held out. Default: the reference's even tracks.
    #[arg(long)]
    classifier_reference: Option<PathBuf>,
    /// Held-out accuracy below which the classifier is not trusted to judge [default: 0.95].
    #[arg(long)]
    min_held_out_accuracy: Option<f64>,
    /// Where judge.json and judge.png go.
    #[arg(long, default_value = "judge")]
    out: PathBuf,
    /// TOML file of JudgeConfig fields; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Generated clips per genre (seeds 1..=N).
    #[arg(long)]
    clips_per_genre: Option<u64>,
    /// Clips per weight of each blend sweep (seeds 1..=N): the curves' straightness is read from
    /// their mean, and 4 seeds (the default) leave it noisy.
    #[arg(long)]
    sweep_clips_per_weight: Option<u64>,
    /// Morph clips per pair (seeds 1..=N), their windows averaged; one (the first seed) by default.
    #[arg(long)]
    morph_clips_per_pair: Option<u64>,
    /// Explicit seeds of the per-genre clips, e.g. 1,2,3 (overrides --clips-per-genre).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Length of every clip and reference excerpt, in seconds.
    #[arg(long)]
    seconds: Option<f32>,
    /// Genre pairs to sweep and morph, e.g. cn:edm (repeatable); every pair by default.
    #[arg(long = "pair")]
    pairs: Vec<String>,
    /// Extra request field for every clip, e.g. sampler=prior or temperature=0.5 (repeatable).
    #[arg(long = "request", value_parser = parse_field)]
    request: Vec<(String, String)>,
    /// Where the decoder runs: cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<melfuse_serve::config::DeviceChoice>,
    /// Generate without the bundle's postfilter (the decoder's output as it is), to measure what
    /// it adds on the same bundle.
    #[arg(long)]
    no_postfilter: bool,
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("`{text}` is not name=value"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("melfuse_judge=info,warn,symphonia_metadata=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match &cli.config {
        Some(path) => JudgeConfig::load(path)?,
        None => JudgeConfig::default(),
    };
    if let Some(n) = cli.clips_per_genre {
        config.seeds = (1..=n).collect();
    }
    if let Some(seeds) = cli.seeds {
        config.seeds = seeds;
    }
    if let Some(n) = cli.sweep_clips_per_weight {
        config.sweep_seeds = (1..=n).collect();
    }
    if let Some(n) = cli.morph_clips_per_pair {
        config.morph_seeds = (1..=n).collect();
    }
    if let Some(seconds) = cli.seconds {
        config.seconds = seconds;
    }
    if !cli.pairs.is_empty() {
        config.pairs = cli.pairs;
    }
    config.request.extend(cli.request);
    if let Some(accuracy) = cli.min_held_out_accuracy {
        config.min_held_out_accuracy = accuracy;
    }
    if let Some(classifier) = cli.classifier_reference {
        config.classifier_reference = Some(classifier);
    }
    let mut serve = ServeConfig { model: cli.bundle.clone(), ..ServeConfig::default() };
    if let Some(device) = cli.device {
        serve.device = device;
    }
    serve.no_postfilter = cli.no_postfilter;

    let judgement = judge(&serve, &cli.reference, &config)
        .with_context(|| format!("judging {} against {}", cli.bundle.display(), cli.reference.display()))?;
    print!("{}", judgement.report.table());
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let json = serde_json::to_vec_pretty(&judgement.report).context("encoding judge.json")?;
    write_atomically(&cli.out.join("judge.json"), &json)?;
    let picture = judge_picture(&judgement, judgement.report.genres.len());
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).context("encoding judge.png")?;
    write_atomically(&cli.out.join("judge.png"), png.get_ref())?;
    println!(
        "wrote {} and {} in {:.0} s",
        cli.out.join("judge.json").display(),
        cli.out.join("judge.png").display(),
        judgement.report.seconds_taken
    );
    Ok(())
}
