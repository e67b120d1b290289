//! The training loop behind [`fit`]: set-up of a fresh, resumed or fine-tuned run, the step with
//! its non-finite guard, validation, checkpoints and the progress bar.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use melfuse_models::{kl_divergence, Vae, VaeConfig, VaeLossConfig};
use melfuse_proto::manifest::sha256_hex;

use super::adversarial::{self, new_critic, restore_critic, AdversarialMetrics, Critic, StepInput};
use super::augment::read_train_batch;
use super::balance::run_sampler;
use super::batches::{noise, HostBatch, PoolEntry};
use super::checkpoint::{
    self, apply_model_record, newest_loadable, read_checkpoint, CheckpointState, LoadedCheckpoint,
};
use super::metrics::{MetricRecord, MetricsWriter, NonfiniteAction, NonfiniteEvent, TrainMetrics, ValidationMetrics};
use super::run_dir::{
    checkpoints_dir, create_fresh, metrics_path, InitSource, RunInfo, RUN_FILE, RUN_FORMAT, RUN_FORMAT_VERSION,
};
use super::running_statistics::RunningStatistics;
use super::schedule::{learning_rate_at, loss_config};
use super::{interrupt, DeviceSpec, FitConfig, FitError};
use crate::prepare::cache::Cache;
use crate::prepare::split::Split;

/// Serialises "seed the backend RNG, then initialise weights": the backend's RNG may be global,
/// and two runs initialising at once in one process (tests) would otherwise interleave draws.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Fine-tuning source: a run folder (its newest checkpoint) or one checkpoint file of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    /// `RUN_DIR` or `RUN_DIR/checkpoints/step-00001234[.json]`.
    pub source: PathBuf,
}

/// Everything one `fit` invocation needs, resolved and validated by `FitArgs::resolve`.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// The prepared cache.
    pub cache_dir: PathBuf,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The settings.
    pub config: FitConfig,
    /// Where to train.
    pub device: DeviceSpec,
    /// Continue the run in `run_dir` from its newest checkpoint.
    pub resume: bool,
    /// Start from a pretrained run's weights (fresh runs only).
    pub init: Option<InitRequest>,
    /// Train only on these genres (fresh runs only).
    pub genres: Option<Vec<String>>,
    /// Stop (with a checkpoint) after this many steps without changing the schedule's length.
    pub stop_at: Option<u64>,
    /// Install the Ctrl-C/SIGTERM handler (the CLI does; library callers may not want it).
    pub handle_signals: bool,
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

/// Test hooks: faults and interruptions injected at chosen steps. Not reachable from the command
/// line; `FitHooks::default()` injects nothing.
#[derive(Debug, Clone, Default)]
pub struct FitHooks {
    /// 1-based steps whose batch is replaced by NaN (so their loss is not finite).
    pub nonfinite_steps: BTreeSet<u64>,
    /// Behave as if Ctrl-C arrived during this 1-based step.
    pub interrupt_at: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Steps taken in total (the last checkpoint's step).
    pub step: u64,
    /// Steps taken by this invocation.
    pub steps_run: u64,
    /// Stopped by Ctrl-C/SIGTERM (or the test hook) before the configured steps.
    pub interrupted: bool,
    /// Wall time of the loop.
    pub elapsed: Duration,
    /// Mean throughput of this invocation.
    pub samples_per_second: f64,
    /// Steps per second of this invocation.
    pub steps_per_second: f64,
    /// The first `train` record of this invocation.
    pub first_train: Option<TrainMetrics>,
    /// The last `train` record.
    pub last_train: Option<TrainMetrics>,
    /// The last validation pass.
    pub last_validation: Option<ValidationMetrics>,
    /// Non-finite losses over the run.
    pub nonfinite_total: u64,
    /// Checkpoint reloads after non-finite losses.
    pub restores: u32,
}

fn config_hash(config: &FitConfig) -> String {
    sha256_hex(serde_json::Value::Object(config.trajectory_fields()).to_string().as_bytes())
}

/// The conditioning genres and the genres trained on, checked against the cache and the
/// pretrained run.
fn resolve_genres(
    cache_genres: &[String],
    requested: Option<&[String]>,
    pretrained: Option<&[String]>,
) -> Result<(Vec<String>, Vec<String>), FitError> {
    let unknown = |genre: &str, source_name, known: &[String]| FitError::UnknownGenre {
        genre: genre.to_string(),
        source_name,
        known: known.join(", "),
    };
    let train: Vec<String> = match requested {
        Some(list) => {
            let mut train = Vec::new();
            for genre in list {
                if !cache_genres.contains(genre) {
                    return Err(unknown(genre, "cache", cache_genres));
                }
                if !train.contains(genre) {
                    train.push(genre.clone());
                }
            }
            train
        }
        None => cache_genres.to_vec(),
    };
    let conditioning = match pretrained {
        Some(known) => {
            if let Some(genre) = train.iter().find(|g| !known.contains(g)) {
                return Err(unknown(genre, "checkpoint", known));
            }
            known.to_vec()
        }
        None => train.clone(),
    };
    Ok((conditioning, train))
}

/// The segments of `split` whose genre is trained on, mapped to conditioning rows.
fn pool(cache: &Cache, split: Split, info: &RunInfo) -> Vec<PoolEntry> {
    let rows: HashMap<usize, usize> = cache
        .genres()
        .iter()
        .enumerate()
        .filter(|(_, name)| info.train_genres.contains(name))
        .filter_map(|(index, name)| Some((index, info.genres.iter().position(|g| g == name)?)))
        .collect();
    cache
        .segments(split)
        .iter()
        .enumerate()
        .filter_map(|(segment, info)| Some(PoolEntry { segment, genre: *rows.get(&info.genre)? }))
        .collect()
}

/// Where `--init` points: the run folder and, for a checkpoint path, its step.
fn init_location(source: &Path) -> Result<(PathBuf, Option<u64>), FitError> {
    if source.join(RUN_FILE).is_file() {
        return Ok((source.to_path_buf(), None));
    }
    let name = source.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    let step = stem.strip_prefix("step-").and_then(|digits| digits.parse::<u64>().ok());
    let run_dir = source.parent().and_then(Path::parent);
    match (step, run_dir) {
        (Some(step), Some(run_dir)) => Ok((run_dir.to_path_buf(), Some(step))),
        _ => Err(FitError::NoCheckpoint { dir: source.to_path_buf() }),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Reads every float parameter once. burn initialises a parameter lazily, on its first read;
/// without this the draws happened at the step-0 checkpoint, after [`INIT_LOCK`] was released, and
/// a run initialising in another thread (tests run at once) could reseed the backend in between —
/// the adversarial resume test then saw a different critic from step 1. The visitor walks the
/// fields in the order the checkpoint's record does, so the weights drawn are the same as before
/// (a 12-step run of each of the demo's two stages logged the same losses and critic scores, to
/// the last digit, before and after this was added).
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        drop(param.val());
    }
}

/// Seeds the backend and builds fresh weights, under [`INIT_LOCK`].
fn init_model(config: &VaeConfig, seed: u64, device: &Device) -> Result<Vae, FitError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    let model = config.init(device)?;
    model.visit(&mut Materialize);
    Ok(model)
}

/// A fresh critic when `config` has an adversarial stage, seeded from the run's seed, under
/// [`INIT_LOCK`].
fn init_critic(config: &FitConfig, n_genres: usize, device: &Device) -> Result<Option<Critic>, FitError> {
    let Some(settings) = &config.adversarial else {
        return Ok(None);
    };
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(config.seed ^ 0xC817_1C00);
    let critic = new_critic(settings, n_genres, device)?;
    critic.model.visit(&mut Materialize);
    Ok(Some(critic))
}

fn adam(config: &FitConfig) -> ModuleOptimizer {
    AdamConfig::new().with_grad_clipping(config.grad_clip_norm.map(GradientClippingConfig::Norm)).init()
}

/// A one-element tensor's value, read back to the host.
pub(super) fn scalar(tensor: Tensor<1>) -> f64 {
    f64::from(tensor.into_scalar::<f32>())
}

/// The mutable state of a run between steps.
struct Run {
    model: Vae,
    optimizer: ModuleOptimizer,
    /// The adversarial stage's critic.
    critic: Option<Critic>,
    state: CheckpointState,
}

/// What one step measured (its weights updated already).
struct StepNumbers {
    loss: f64,
    reconstruction: f64,
    kl: f64,
    adversarial: Option<AdversarialMetrics>,
}

/// One step of the spectral stage: the VAE's loss and an Adam step. `None` when the loss was not
/// finite (nothing updated).
fn spectral_step(
    run: &mut Run,
    images: Tensor<4>,
    genres: Tensor<2>,
    eps: Tensor<2>,
    losses: &VaeLossConfig,
    index: u64,
    lr: f64,
) -> Option<StepNumbers> {
    let output = run.model.forward(images.clone(), genres, eps);
    let loss = losses.loss(&output, images, index as usize);
    let total = scalar(loss.total.clone());
    if !total.is_finite() {
        return None;
    }
    let (reconstruction, kl) = (scalar(loss.reconstruction.clone()), scalar(loss.kl.clone()));
    let grads = GradientsParams::from_grads(loss.total.backward(), &run.model);
    run.model = run.optimizer.step(lr, run.model.clone(), grads);
    Some(StepNumbers { loss: total, reconstruction, kl, adversarial: None })
}

/// Runs (or continues) a training run; see the module docs.
pub fn fit(request: &FitRequest, hooks: &FitHooks) -> Result<FitOutcome, FitError> {
    let config = &request.config;
    config.validate()?;
    let device = request.device.device()?;
    let train_device = device.clone().autodiff();
    let cache = Cache::open(&request.cache_dir)?;
    let run_dir = request.run_dir.as_path();
    let checkpoints = checkpoints_dir(run_dir);
    let hash = config_hash(config);

    let (info, mut run, resumed) = if request.resume {
        let (info, run) = resume(request, &cache, &train_device, &hash)?;
        (info, run, true)
    } else {
        let (info, run) = start(request, &cache, &train_device, &hash)?;
        (info, run, false)
    };
    let vae = &info.model;
    let train_pool = pool(&cache, Split::Train, &info);
    if train_pool.is_empty() {
        return Err(FitError::NoTrainingData);
    }
    let validation_pool = pool(&cache, Split::Validation, &info);
    if validation_pool.is_empty() {
        tracing::warn!("the validation split has no segment of the trained genres: no validation passes");
    }
    let mut sampler = run_sampler(train_pool, config, &info.genres, run_dir)?;
    let critic_factors = match &config.adversarial {
        Some(settings) => settings.genre_factors(&info.genres)?,
        None => Vec::new(),
    };
    let mut metrics = MetricsWriter::open(&metrics_path(run_dir), resumed.then_some(run.state.step))?;
    if request.handle_signals {
        interrupt::install()?;
    }
    let losses = loss_config(config);
    let range = info.db_range;
    let target = request.stop_at.map_or(config.steps, |stop| stop.min(config.steps));
    let progress = progress_bar(request.progress, run.state.step, config.steps);

    let started = Instant::now();
    let start_step = run.state.step;
    let mut window = (Instant::now(), 0usize);
    let (mut first_train, mut last_train, mut last_validation) = (None, None, None);
    let mut saved_step = resumed.then_some(run.state.step).or(Some(0));
    let mut interrupted = false;
    let mut samples_total = 0usize;

    while run.state.step < target {
        let index = run.state.step;
        let number = index + 1;
        let lr = learning_rate_at(config, index) * run.state.lr_scale;
        let beta = losses.beta_at(index as usize);
        let entries = sampler.batch(index);
        let mut batch = read_train_batch(&cache, &entries, &range, vae.n_genres, &config.augment, config.seed, index)?;
        if hooks.nonfinite_steps.contains(&number) {
            batch.images.fill(f32::NAN);
        }
        let (images, genres) = batch.to_tensors(vae.n_mels, vae.frames, &train_device);
        let eps = Tensor::from_data(
            TensorData::new(noise(config.seed, index, batch.rows, vae.latent_dim), [batch.rows, vae.latent_dim]),
            &train_device,
        );
        let statistics = RunningStatistics::take(&run.model);
        let numbers = match (run.critic.as_mut(), config.adversarial.as_ref()) {
            (Some(critic), Some(settings)) => {
                let input = StepInput {
                    images,
                    genres,
                    eps,
                    losses: &losses,
                    settings,
                    index,
                    lr,
                    genre_factors: &critic_factors,
                };
                adversarial::step(&mut run.model, &mut run.optimizer, critic, input)?.map(|numbers| StepNumbers {
                    loss: numbers.reconstruction + beta * numbers.kl,
                    reconstruction: numbers.reconstruction,
                    kl: numbers.kl,
                    adversarial: Some(numbers.adversarial),
                })
            }
            _ => spectral_step(&mut run, images, genres, eps, &losses, index, lr),
        };
        samples_total += batch.rows;
        window.1 += batch.rows;
        if let Some(numbers) = numbers {
            run.state.consecutive_nonfinite = 0;
            if number % config.log_every == 0 || number == target {
                let seconds = window.0.elapsed().as_secs_f64().max(1e-9);
                let record = TrainMetrics {
                    step: number,
                    lr,
                    beta,
                    loss: numbers.loss,
                    reconstruction: numbers.reconstruction,
                    kl: numbers.kl,
                    samples_per_second: window.1 as f64 / seconds,
                    nonfinite_skipped: run.state.nonfinite_total,
                    adversarial: numbers.adversarial,
                };
                window = (Instant::now(), 0);
                progress.set_message(format!(
                    "loss {:.5} lr {lr:.2e} {:.1} samples/s",
                    record.loss, record.samples_per_second
                ));
                metrics.append(&MetricRecord::Train(record.clone()))?;
                first_train.get_or_insert_with(|| record.clone());
                last_train = Some(record);
            }
        } else {
            run.model = statistics.restore(run.model);
            run.state.nonfinite_total += 1;
            run.state.consecutive_nonfinite += 1;
            let consecutive = run.state.consecutive_nonfinite;
            let action = if consecutive >= config.max_consecutive_nonfinite {
                let loaded = newest_loadable(&checkpoints)?
                    .ok_or_else(|| FitError::NoCheckpoint { dir: checkpoints.clone() })?;
                tracing::warn!(
                    "step {number}: non-finite loss, {consecutive} in a row: reloading checkpoint step {} \
                     and multiplying the learning rate by {}",
                    loaded.state.step,
                    config.lr_backoff
                );
                run.model = apply_model_record(run.model, loaded.model, &checkpoints)?;
                run.optimizer = adam(config).load_record(loaded.optimizer);
                run.critic = restore_critic(run.critic.take(), loaded.critic, &checkpoints)?;
                run.state.lr_scale *= config.lr_backoff;
                run.state.restores += 1;
                run.state.consecutive_nonfinite = 0;
                NonfiniteAction::Restored
            } else {
                tracing::warn!("step {number}: non-finite loss; optimiser step skipped ({consecutive} in a row)");
                NonfiniteAction::Skipped
            };
            metrics.append(&MetricRecord::Nonfinite(NonfiniteEvent {
                step: number,
                lr,
                action,
                consecutive,
                total: run.state.nonfinite_total,
            }))?;
        }
        run.state.step = number;
        progress.set_position(number);

        if number % config.checkpoint_every == 0 {
            save(&checkpoints, &run, config)?;
            saved_step = Some(number);
        }
        if config.validate_every > 0 && number % config.validate_every == 0 && !validation_pool.is_empty() {
            let record = validate(&run.model, &cache, &validation_pool, &info, &losses, number, &device)?;
            metrics.append(&MetricRecord::Validation(record.clone()))?;
            last_validation = Some(record);
        }
        if (request.handle_signals && interrupt::requested()) || hooks.interrupt_at == Some(number) {
            interrupted = number < target;
            if request.handle_signals {
                interrupt::clear();
            }
            break;
        }
    }

    let step = run.state.step;
    if saved_step != Some(step) {
        save(&checkpoints, &run, config)?;
    }
    let validated_here = last_validation.as_ref().is_some_and(|v: &ValidationMetrics| v.step == step);
    if step >= config.steps && !validated_here && !validation_pool.is_empty() && step > start_step {
        let record = validate(&run.model, &cache, &validation_pool, &info, &losses, step, &device)?;
        metrics.append(&MetricRecord::Validation(record.clone()))?;
        last_validation = Some(record);
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Ok(FitOutcome {
        run_dir: run_dir.to_path_buf(),
        step,
        steps_run: step - start_step,
        interrupted,
        elapsed,
        samples_per_second: samples_total as f64 / seconds,
        steps_per_second: (step - start_step) as f64 / seconds,
        first_train,
        last_train,
        last_validation,
        nonfinite_total: run.state.nonfinite_total,
        restores: run.state.restores,
    })
}

fn save(dir: &Path, run: &Run, config: &FitConfig) -> Result<(), FitError> {
    checkpoint::save(dir, &run.model, &run.optimizer, run.critic.as_ref(), run.state.clone(), config.keep_checkpoints)
}

fn progress_bar(enabled: bool, position: u64, total: u64) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len} {msg} (eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(position);
    bar
}

/// A fresh run (optionally from pretrained weights): checks, `run.json`, the step-0 checkpoint.
fn start(request: &FitRequest, cache: &Cache, device: &Device, hash: &str) -> Result<(RunInfo, Run), FitError> {
    let config = &request.config;
    if config.adversarial.is_some() && request.init.is_none() {
        return Err(FitError::InvalidConfig {
            field: "adversarial",
            detail: "the adversarial stage fine-tunes a trained decoder with its encoder frozen: \
                     start it with --init RUN (the spectral stage's run)"
                .into(),
        });
    }
    let pretrained = match &request.init {
        Some(init) => {
            let (run_dir, step) = init_location(&init.source)?;
            let info = RunInfo::read(&run_dir)?;
            let dir = checkpoints_dir(&run_dir);
            let loaded = match step {
                Some(step) => read_checkpoint(&dir, step)?,
                None => newest_loadable(&dir)?.ok_or_else(|| FitError::NoCheckpoint { dir: dir.clone() })?,
            };
            Some((absolute(&run_dir), info, loaded))
        }
        None => None,
    };
    let (genres, train_genres) = resolve_genres(
        cache.genres(),
        request.genres.as_deref(),
        pretrained.as_ref().map(|(_, info, _)| info.genres.as_slice()),
    )?;
    let model_config = match &pretrained {
        Some((_, info, _)) => {
            let model = info.model.clone();
            if (model.n_mels, model.frames) != (cache.n_mels(), cache.frames()) {
                return Err(FitError::ShapeMismatch {
                    model_mels: model.n_mels,
                    model_frames: model.frames,
                    cache_mels: cache.n_mels(),
                    cache_frames: cache.frames(),
                });
            }
            model
        }
        None => config.model.vae_config(cache.n_mels(), cache.frames(), genres.len()),
    };
    model_config.validate()?;
    if let Some(settings) = &config.adversarial {
        settings.check_decoder(model_config.decoder_stages())?;
        settings.genre_factors(&genres)?;
    }
    create_fresh(&request.run_dir)?;
    let info = RunInfo {
        format: RUN_FORMAT.to_string(),
        format_version: RUN_FORMAT_VERSION,
        generator: format!("melfuse-train {}", env!("CARGO_PKG_VERSION")),
        cache_dir: absolute(cache.dir()),
        cache_fingerprint: cache.index().fingerprint.clone(),
        genres,
        train_genres,
        signal: cache.signal().clone(),
        db_range: cache.db_range(),
        fit: config.clone(),
        model: model_config,
        init: pretrained
            .as_ref()
            .map(|(run_dir, _, loaded)| InitSource { run_dir: run_dir.clone(), step: loaded.state.step }),
    };
    info.write(&request.run_dir)?;
    let mut model = init_model(&info.model, config.seed, device)?;
    if let Some((_, _, loaded)) = pretrained {
        model = apply_model_record(model, loaded.model, &request.run_dir)?;
    }
    let critic = init_critic(config, info.genres.len(), device)?;
    let run = Run {
        model,
        optimizer: adam(config),
        critic,
        state: CheckpointState {
            format_version: checkpoint::CHECKPOINT_FORMAT_VERSION,
            step: 0,
            lr_scale: 1.0,
            nonfinite_total: 0,
            consecutive_nonfinite: 0,
            restores: 0,
            config_hash: hash.to_string(),
            model_sha256: String::new(),
            optimizer_sha256: String::new(),
            critic_sha256: None,
            critic_optimizer_sha256: None,
        },
    };
    save(&checkpoints_dir(&request.run_dir), &run, config)?;
    Ok((info, run))
}

/// `--resume`: the run's description, checked against the request, and its newest checkpoint.
fn resume(request: &FitRequest, cache: &Cache, device: &Device, hash: &str) -> Result<(RunInfo, Run), FitError> {
    let run_dir = request.run_dir.as_path();
    if !run_dir.join(RUN_FILE).is_file() {
        return Err(FitError::NothingToResume { dir: run_dir.to_path_buf() });
    }
    if request.init.is_some() || request.genres.is_some() {
        return Err(FitError::ResumeMismatch { detail: "--init and --genres apply to a new run only".into() });
    }
    let mut info = RunInfo::read(run_dir)?;
    if info.cache_fingerprint != cache.index().fingerprint {
        return Err(FitError::ResumeMismatch {
            detail: format!(
                "the run trained on cache {} (fingerprint {}), {} has fingerprint {}",
                info.cache_dir.display(),
                info.cache_fingerprint,
                cache.dir().display(),
                cache.index().fingerprint
            ),
        });
    }
    let was = info.fit.trajectory_fields();
    let now = request.config.trajectory_fields();
    if let Some((field, value)) = was.iter().find(|(field, value)| now.get(*field) != Some(*value)) {
        return Err(FitError::ConfigChanged {
            field: field.clone(),
            was: value.to_string(),
            now: now.get(field).map_or_else(|| "absent".into(), ToString::to_string),
        });
    }
    if info.fit != request.config {
        info.fit = request.config.clone();
        info.write(run_dir)?;
    }
    let dir = checkpoints_dir(run_dir);
    let LoadedCheckpoint { state, model, optimizer, critic } =
        newest_loadable(&dir)?.ok_or_else(|| FitError::NoCheckpoint { dir: dir.clone() })?;
    if state.config_hash != hash {
        return Err(FitError::ResumeMismatch {
            detail: format!("checkpoint step {} was written with other settings than run.json", state.step),
        });
    }
    let fresh = init_model(&info.model, request.config.seed, device)?;
    let model = apply_model_record(fresh, model, &dir)?;
    let optimizer = adam(&request.config).load_record(optimizer);
    let critic = restore_critic(init_critic(&request.config, info.genres.len(), device)?, critic, &dir)?;
    Ok((info, Run { model, optimizer, critic, state }))
}

/// One pass over the validation pool in inference mode (running BatchNorm statistics), `z = mu`.
fn validate(
    model: &Vae,
    cache: &Cache,
    pool: &[PoolEntry],
    info: &RunInfo,
    losses: &VaeLossConfig,
    step: u64,
    device: &Device,
) -> Result<ValidationMetrics, FitError> {
    let inference = model.valid();
    let vae = &info.model;
    let (mut reconstruction, mut kl) = (0.0, 0.0);
    for chunk in pool.chunks(info.fit.batch_size) {
        let batch = HostBatch::read(cache, Split::Validation, chunk, &info.db_range, vae.n_genres)?;
        let (images, genres) = batch.to_tensors(vae.n_mels, vae.frames, device);
        let (mu, logvar) = inference.encode(images.clone());
        let decoded = inference.decode(mu.clone(), genres);
        reconstruction += scalar(losses.reconstruction.loss(decoded, images)) * chunk.len() as f64;
        kl += scalar(kl_divergence(mu, logvar)) * chunk.len() as f64;
    }
    let count = pool.len() as f64;
    let (reconstruction, kl) = (reconstruction / count, kl / count);
    let beta = losses.beta_at(step.saturating_sub(1) as usize);
    Ok(ValidationMetrics { step, loss: reconstruction + beta * kl, reconstruction, kl })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A run's checkpoints carry the hash of its settings, and `--resume` refuses another one: the
    /// settings added later (the contrast term, frozen decoder blocks) are not written at their
    /// off value, so a run from before them hashes as it did and still resumes.
    #[test]
    fn settings_left_off_keep_an_older_runs_hash() {
        let settings = super::adversarial::AdversarialConfig::default();
        let config = FitConfig { adversarial: Some(settings.clone()), ..FitConfig::default() };
        let json = serde_json::Value::Object(config.trajectory_fields()).to_string();
        assert!(!json.contains("contrast") && !json.contains("frozen_decoder_blocks"), "{json}");
        let mut contrast = config.clone();
        contrast.reconstruction.contrast = 1.0;
        assert_ne!(config_hash(&contrast), config_hash(&config));
        let frozen = FitConfig {
            adversarial: Some(super::adversarial::AdversarialConfig { frozen_decoder_blocks: 1, ..settings }),
            ..config.clone()
        };
        assert_ne!(config_hash(&frozen), config_hash(&config));
    }

    #[test]
    fn a_fresh_critic_is_drawn_before_the_lock_is_released() {
        // Another run in the process reseeding the backend after `init_critic` returned (as a test
        // running at once does) must not change the critic: its weights are drawn under the lock.
        let device = Device::flex();
        let settings = super::adversarial::AdversarialConfig { critic_widths: vec![8, 16], ..Default::default() };
        let config = FitConfig { adversarial: Some(settings), ..FitConfig::default() };
        let weights = |reseed_in_between: bool| {
            let critic = init_critic(&config, 2, &device).expect("valid settings").expect("a critic");
            if reseed_in_between {
                device.seed(12_345);
            }
            critic.model.layers[0].weight.val().into_data()
        };
        let undisturbed = weights(false);
        weights(true).assert_eq(&undisturbed, true);
    }

    #[test]
    fn genres_map_a_subset_onto_the_pretrained_conditioning() {
        let cache = names(&["cn", "edm", "orchestral"]);
        let (conditioning, train) = resolve_genres(&cache, None, None).unwrap();
        assert_eq!((conditioning.clone(), train), (cache.clone(), cache.clone()));
        let pretrained = names(&["cn", "cn_edm", "edm", "orchestral"]);
        let (conditioning, train) = resolve_genres(&cache, Some(&names(&["edm", "cn"])), Some(&pretrained)).unwrap();
        assert_eq!(conditioning, pretrained);
        assert_eq!(train, names(&["edm", "cn"]));
        let error = resolve_genres(&cache, Some(&names(&["jazz"])), None).unwrap_err().to_string();
        assert!(error.contains("`jazz`") && error.contains("cache"), "{error}");
        let error = resolve_genres(&cache, None, Some(&names(&["cn", "edm"]))).unwrap_err().to_string();
        assert!(error.contains("`orchestral`") && error.contains("checkpoint"), "{error}");
    }

    #[test]
    fn init_accepts_a_run_folder_or_a_checkpoint_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUN_FILE), "{}").unwrap();
        assert_eq!(init_location(dir.path()).unwrap(), (dir.path().to_path_buf(), None));
        let file = dir.path().join("checkpoints/step-00000042.json");
        assert_eq!(init_location(&file).unwrap(), (dir.path().to_path_buf(), Some(42)));
        assert!(init_location(&dir.path().join("nothing")).is_err());
    }
}
