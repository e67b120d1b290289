//! `melfuse-train`: the trainer's command line. Wiring only; the work lives in
//! the library's modules.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use melfuse_train::corpus::{build_corpus, CorpusArgs};
use melfuse_train::eval::{self, EvalArgs};
use melfuse_train::export::{export_run, ExportArgs};
use melfuse_train::fit::{self, FitArgs, FitHooks};
use melfuse_train::inspect::{file_mel_db, write_mel_outputs};
use melfuse_train::prepare::{self, PrepareArgs, PrepareOutcome};
use melfuse_train::signal_args::SignalArgs;
use melfuse_train::synth::{write_corpus, SynthCorpusArgs};

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
    /// Fetch a corpus of recorded music listed in a TSV recipe from Debian packages
    /// (apt-get download, no install) into DIR/<genre>/, with CREDITS.md and a
    /// manifest of SHA-256 hashes; a rerun verifies and fetches only what is missing.
    Corpus(CorpusArgs),
    /// Decode a corpus (one folder per genre), cut it into segments, split
    /// train/validation by track, measure the dB range and write the shard
    /// cache that `fit` reads, plus a report.
    Prepare(PrepareArgs),
    /// Train the VAE on a prepared cache: writes run.json, metrics.jsonl and
    /// checkpoints to --out; Ctrl-C/SIGTERM checkpoint and stop (exit 0),
    /// --resume continues.
    Fit(FitArgs),
    /// Evaluate a training run: validation metrics per genre, latent
    /// centroids, training curves and a spectrogram grid, written to
    /// RUN_DIR/eval (or --out).
    Eval(EvalArgs),
    /// Export a training run as a model bundle for the service: decoder.onnx,
    /// manifest.json and preview.png; with --triton also an NVIDIA Triton model
    /// repository.
    Export(ExportArgs),
    /// Write the dB mel spectrogram of an audio file as .npy and/or .png.
    Mel {
        /// Audio file (WAV, FLAC, OGG Vorbis or MP3).
        input: PathBuf,
        /// Output file(s); the extension (.npy or .png) picks the format. Repeatable.
        #[arg(long, short, required = true)]
        out: Vec<PathBuf>,
        /// Only this training segment (0-based) instead of the whole file.
        #[arg(long)]
        segment: Option<usize>,
        #[command(flatten)]
        signal: SignalArgs,
    },
}

fn main() -> Result<()> {
    // symphonia_metadata warns once per file about malformed Vorbis comments (37 of the Debian
    // recipe's 129 OGG files): tags melfuse never reads, so only its errors are shown.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,symphonia=warn,symphonia_metadata=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::SynthCorpus(args) => {
            let config = args.resolve().context("invalid synth-corpus settings")?;
            let report = write_corpus(&args.out, &config, args.force)
                .with_context(|| format!("writing synthetic corpus to {}", args.out.display()))?;
            println!(
                "wrote {} clips ({:.1} s of audio) to {}",
                report.files.len(),
                report.total_seconds,
                args.out.display()
            );
        }
        Command::Corpus(args) => {
            let outcome = build_corpus(&args.options())
                .with_context(|| format!("building the corpus in {}", args.out.display()))?;
            print!("{outcome}");
            if !outcome.failures.is_empty() {
                anyhow::bail!(
                    "{} of {} selected files could not be fetched (listed above); the others are in place",
                    outcome.failures.len(),
                    outcome.selected
                );
            }
        }
        Command::Prepare(args) => {
            let config = args.resolve().context("invalid prepare settings")?;
            let outcome = prepare::run(&args.corpus, &args.out, &config, args.force)
                .with_context(|| format!("preparing {} into {}", args.corpus.display(), args.out.display()))?;
            match outcome {
                PrepareOutcome::UpToDate(index) => println!(
                    "cache is up to date: {} ({} genres, {} train / {} validation segments); nothing decoded",
                    args.out.display(),
                    index.genres.len(),
                    index.train.segments.len(),
                    index.validation.segments.len()
                ),
                PrepareOutcome::Built(report) => print!("{report}"),
            }
        }
        Command::Export(args) => {
            let outcome =
                export_run(&args).with_context(|| format!("exporting the run in {}", args.run_dir.display()))?;
            let manifest = &outcome.manifest;
            println!(
                "wrote bundle `{}` to {}: decoder.onnx ({:.1} MB, opset {}), {} genres, latent {}, step {}{}",
                manifest.name,
                outcome.bundle_dir.display(),
                outcome.decoder_bytes as f64 / 1e6,
                manifest.onnx.opset,
                manifest.genres.len(),
                manifest.latent_dim,
                manifest.training.steps,
                if outcome.reused_eval_centroids { " (centroids from eval)" } else { "" },
            );
            if let Some(triton) = &outcome.triton {
                println!(
                    "wrote Triton model `{}` to {} (ONNX Runtime backend, max batch {}, queue delay {} µs)",
                    triton.config.name,
                    triton.model_dir.display(),
                    triton.config.settings.max_batch_size,
                    triton.config.settings.max_queue_delay_us,
                );
            }
        }
        Command::Eval(args) => {
            let outcome = eval::evaluate_run(&args)
                .with_context(|| format!("evaluating the run in {}", args.run_dir.display()))?;
            print!("{}", outcome.report);
            println!(
                "wrote {}, {}, {} and {} to {}",
                eval::EVAL_FILE,
                eval::centroids::CENTROIDS_FILE,
                eval::CURVES_FILE,
                eval::GRID_FILE,
                outcome.out_dir.display()
            );
        }
        Command::Fit(args) => {
            let request = args.resolve().context("invalid fit settings")?;
            let outcome = fit::fit(&request, &FitHooks::default())
                .with_context(|| format!("training on {} into {}", args.cache.display(), args.out.display()))?;
            let losses = |m: Option<&fit::metrics::TrainMetrics>| {
                m.map_or_else(|| "-".to_string(), |m| format!("{:.5} (reconstruction {:.5})", m.loss, m.reconstruction))
            };
            println!(
                "{} at step {} ({} steps in {:.1} s: {:.2} steps/s, {:.1} samples/s); train loss {} → {}",
                if outcome.interrupted { "interrupted, checkpoint written" } else { "finished" },
                outcome.step,
                outcome.steps_run,
                outcome.elapsed.as_secs_f64(),
                outcome.steps_per_second,
                outcome.samples_per_second,
                losses(outcome.first_train.as_ref()),
                losses(outcome.last_train.as_ref()),
            );
            if let Some(v) = &outcome.last_validation {
                println!(
                    "validation at step {}: loss {:.5} (reconstruction {:.5}, kl {:.2})",
                    v.step, v.loss, v.reconstruction, v.kl
                );
            }
            if outcome.nonfinite_total > 0 {
                println!(
                    "{} non-finite steps skipped, {} checkpoint reloads",
                    outcome.nonfinite_total, outcome.restores
                );
            }
            if outcome.interrupted {
                println!(
                    "continue with: melfuse-train fit {} --out {} --resume",
                    args.cache.display(),
                    args.out.display()
                );
            }
        }
        Command::Mel { input, out, segment, signal } => {
            let signal = signal.resolve().context("signal parameters")?;
            let db = file_mel_db(&input, &signal, segment)
                .with_context(|| format!("computing the mel of {}", input.display()))?;
            write_mel_outputs(&db, &out).context("writing the outputs")?;
            let (n_mels, frames) = db.dim();
            let seconds = frames.saturating_sub(1) as f64 * signal.hop_length as f64 / signal.sample_rate as f64;
            for path in &out {
                println!("{}: {n_mels} mels × {frames} frames ({seconds:.1} s)", path.display());
            }
        }
    }
    Ok(())
}
