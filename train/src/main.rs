//! `melfuse-train`: the trainer's command line. Wiring only; the work lives in
//! the library's modules.

use anyhow::Result;
use clap::{Parser, Subcommand};

/// melfuse trainer: inspect audio, build corpora, train and export models.
#[derive(Debug, Parser)]
#[command(name = "melfuse-train", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {}
}
