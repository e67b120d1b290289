//! `melfuse-serve`: the HTTP service (default) and `melfuse-serve generate`, the same generation
//! offline into a file.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{web, HttpServer};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use melfuse_audio::atomic_file::write_atomically;
use melfuse_proto::api::{GenerateRequest, OutputFormat};
use melfuse_serve::config::{DeviceChoice, ServeConfig};
use melfuse_serve::generator::Generator;
use melfuse_serve::http::{app, AppState};
use melfuse_serve::metrics::Metrics;

/// Genre-fusion music generation service.
#[derive(Debug, Parser)]
#[command(name = "melfuse-serve", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate one clip offline into a file (.wav, .png or .npy), exactly as the service would.
    Generate(GenerateArgs),
}

/// Flags shared by the service and `generate`; each overrides the `--config` file.
#[derive(Debug, Clone, Args)]
struct ModelArgs {
    /// Model bundle directory.
    #[arg(long, env = "MELFUSE_MODEL")]
    model: Option<PathBuf>,
    /// Where the decoder runs: cpu, cuda or cuda:N (CUDA falls back to the CPU, logged).
    #[arg(long, env = "MELFUSE_DEVICE")]
    device: Option<DeviceChoice>,
    /// TOML configuration file (fields of ServeConfig); flags override it.
    #[arg(long, env = "MELFUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Vocoder worker threads (0 = one per core).
    #[arg(long, env = "MELFUSE_VOCODER_THREADS")]
    vocoder_threads: Option<usize>,
    /// Leave out the bundle's postfilter: the decoder's output as it is (MELFUSE_NO_POSTFILTER=1
    /// does the same).
    #[arg(long, env = "MELFUSE_NO_POSTFILTER", value_parser = clap::builder::FalseyValueParser::new())]
    no_postfilter: bool,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on.
    #[arg(long, env = "MELFUSE_BIND")]
    bind: Option<String>,
    /// Most decoder rows per batch.
    #[arg(long, env = "MELFUSE_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, env = "MELFUSE_MAX_WAIT_MS")]
    max_wait_ms: Option<u64>,
    /// Most generation requests in progress; more get 503 + Retry-After.
    #[arg(long, env = "MELFUSE_QUEUE_CAPACITY")]
    queue_capacity: Option<usize>,
    /// Per-request deadline in milliseconds; later answers are 504.
    #[arg(long, env = "MELFUSE_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "MELFUSE_HTTP_WORKERS")]
    http_workers: Option<usize>,
    /// Serve the API only: no playground page at / (MELFUSE_NO_UI=1/true/yes does the same).
    #[arg(long, env = "MELFUSE_NO_UI", value_parser = clap::builder::FalseyValueParser::new())]
    no_ui: bool,
}

#[derive(Debug, Clone, Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Genre mixture, e.g. cn:0.6,edm:0.4.
    #[arg(long, conflicts_with = "morph", required_unless_present = "morph")]
    blend: Option<String>,
    /// Blend moving along the clip, e.g. "cn:1 -> cn:0.5,edm:0.5 -> edm:1".
    #[arg(long)]
    morph: Option<String>,
    /// Seed (random when absent; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Latent noise scale, 0–2.
    #[arg(long)]
    temperature: Option<f32>,
    /// Griffin-Lim iterations, 1–256.
    #[arg(long)]
    griffin_lim_iters: Option<usize>,
    /// Clip length in seconds.
    #[arg(long)]
    seconds: Option<f32>,
    /// How the latents are drawn: bank (real training codes; the default where the bundle has a
    /// latent bank) or prior (genre centroids plus noise).
    #[arg(long)]
    sampler: Option<String>,
    /// Output format; by default the extension of --out.
    #[arg(long)]
    format: Option<String>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

impl ModelArgs {
    fn config(&self) -> Result<ServeConfig> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::load(path)?,
            None => ServeConfig::default(),
        };
        if let Some(model) = &self.model {
            config.model = model.clone();
        }
        if let Some(device) = self.device {
            config.device = device;
        }
        if let Some(threads) = self.vocoder_threads {
            config.vocoder_threads = threads;
        }
        // A flag can only switch the postfilter off; `no_postfilter = true` in the file stays.
        config.no_postfilter |= self.no_postfilter;
        Ok(config)
    }
}

impl ServeArgs {
    fn config(&self) -> Result<ServeConfig> {
        let mut config = self.model.config()?;
        macro_rules! take {
            ($($field:ident),*) => { $(if let Some(value) = self.$field.clone() { config.$field = value; })* };
        }
        take!(bind, max_batch, max_wait_ms, queue_capacity, request_timeout_ms, http_workers);
        // A flag can only switch the page off; `no_ui = true` in the file stays.
        config.no_ui |= self.no_ui;
        config.validate()?;
        Ok(config)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The service logs its life cycle; the offline command only what went wrong. RUST_LOG overrides.
    let default_level = if cli.command.is_some() { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::Generate(args)) => generate(&args),
        None => serve(&cli.serve),
    }
}

fn serve(args: &ServeArgs) -> Result<()> {
    let config = args.config()?;
    let metrics = Metrics::new().context("registering metrics")?;
    let generator = Arc::new(
        Generator::start(&config, metrics).with_context(|| format!("loading model {}", config.model.display()))?,
    );
    let state = web::Data::new(AppState::new(generator, config.max_body_bytes).with_ui(!config.no_ui));
    tracing::info!(playground = !config.no_ui, "playground page at / {}", if config.no_ui { "off" } else { "on" });
    let workers = if config.http_workers > 0 {
        config.http_workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    actix_web::rt::System::new().block_on(async move {
        let factory_state = state.clone();
        let server = HttpServer::new(move || app(factory_state.clone()))
            .workers(workers)
            .shutdown_timeout(config.shutdown_timeout_seconds)
            .bind(&config.bind)
            .with_context(|| format!("binding {}", config.bind))?
            .run();
        tracing::info!(bind = %config.bind, workers, "listening");
        // Ready once one inference went through the whole decoder path; until then /readyz is 503.
        actix_web::rt::spawn(async move {
            if let Err(error) = state.warm_up().await {
                tracing::error!(%error, "warm-up inference failed; staying not ready");
            }
        });
        server.await.context("running the HTTP server")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let config = args.model.config()?;
    let format = match &args.format {
        Some(name) => {
            OutputFormat::from_name(name).with_context(|| format!("unknown --format {name} (wav, png, npy)"))?
        }
        None => OutputFormat::from_path(&args.out).with_context(|| {
            format!("cannot tell the format from {}: use .wav, .png, .npy or --format", args.out.display())
        })?,
    };
    let mut fields: Vec<(String, String)> = vec![("format".into(), format.name().into())];
    let mut add = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push((name.into(), value));
        }
    };
    add("blend", args.blend.clone());
    add("morph", args.morph.clone());
    add("seed", args.seed.map(|s| s.to_string()));
    add("temperature", args.temperature.map(|t| t.to_string()));
    add("griffin_lim_iters", args.griffin_lim_iters.map(|n| n.to_string()));
    add("seconds", args.seconds.map(|s| s.to_string()));
    add("sampler", args.sampler.clone());

    let metrics = Metrics::new().context("registering metrics")?;
    let generator = Arc::new(
        Generator::start(&config, metrics).with_context(|| format!("loading model {}", config.model.display()))?,
    );
    let request = GenerateRequest::from_fields(&fields, &generator.manifest().genres, generator.limits())
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().context("starting a runtime")?;
    let clip = match runtime.block_on(generator.generate(request)) {
        Ok(clip) => clip,
        Err(error) => bail!("generation failed: {error}"),
    };
    write_atomically(&args.out, &clip.body).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} ({} s, seed {})", args.out.display(), clip.seconds, clip.seed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_ui(args: &[&str]) -> bool {
        let cli = Cli::try_parse_from(std::iter::once("melfuse-serve").chain(args.iter().copied())).unwrap();
        cli.serve.config().unwrap().no_ui
    }

    #[test]
    fn no_ui_turns_the_page_off_and_a_file_saying_so_stays_off() {
        if std::env::var_os("MELFUSE_NO_UI").is_some() {
            return; // the variable would decide; the flag's own behaviour is what is tested here
        }
        assert!(!no_ui(&[]));
        assert!(no_ui(&["--no-ui"]));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "no_ui = true\n").unwrap();
        let path = file.path().to_str().unwrap();
        assert!(no_ui(&["--config", path]));
        assert!(no_ui(&["--config", path, "--no-ui"]));
    }

    #[test]
    fn no_postfilter_is_a_flag_of_the_service_and_of_generate() {
        if std::env::var_os("MELFUSE_NO_POSTFILTER").is_some() {
            return; // the variable would decide
        }
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("melfuse-serve").chain(args.iter().copied()));
        assert!(!parse(&[]).unwrap().serve.config().unwrap().no_postfilter);
        assert!(parse(&["--no-postfilter"]).unwrap().serve.config().unwrap().no_postfilter);
        let generate = parse(&["generate", "--blend", "cn", "--out", "a.wav", "--no-postfilter"]).unwrap();
        match generate.command {
            Some(Command::Generate(args)) => assert!(args.model.config().unwrap().no_postfilter),
            None => panic!("generate was not parsed"),
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "no_postfilter = true\n").unwrap();
        let path = file.path().to_str().unwrap();
        assert!(parse(&["--config", path]).unwrap().serve.config().unwrap().no_postfilter);
    }
}
