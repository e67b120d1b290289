//! One generation, from a validated request to the response body: latents for each segment of the
//! clip, decoding through the batcher, stitching, vocoding and encoding on the worker pool. The
//! HTTP handlers and the offline `melfuse-serve generate` both call [`Generator::generate`], so a
//! clip is the same bytes whichever way it was asked for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use melfuse_audio::config::SignalConfig;
use melfuse_audio::normalization::DbRange;
use melfuse_audio::postfilter::Postfilter;
use melfuse_audio::spectrogram_image::encode_spectrogram_png;
use melfuse_audio::vocoder::Vocoder;
use melfuse_audio::wav::encode_wav_pcm16;
use melfuse_proto::api::{GenerateRequest, OutputFormat, RequestLimits, Timeline};
use melfuse_proto::generation::{blend_latent, Sampler};
use melfuse_proto::latent_bank::LatentBank;
use melfuse_proto::manifest::{join_latent_maps, LoadedBundle, Manifest};
use ndarray::{Array2, ArrayView2};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::batcher::{BatchPolicy, Batcher, DecodeJob};
use crate::config::ServeConfig;
use crate::decoder::{DecoderSession, ExecutionProvider};
use crate::error::{GenerateError, ServeError};
use crate::metrics::Metrics;
use crate::segments::{segment_seed, SegmentPlan};
use crate::tile_windows::TileWindows;

/// Longest the warm-up inference may take.
pub const WARM_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// A generated clip, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedClip {
    /// The response body.
    pub body: Vec<u8>,
    /// Its format.
    pub format: OutputFormat,
    /// The seed used (the client's, or the one drawn for it).
    pub seed: u64,
    /// Clip length in seconds.
    pub seconds: f32,
}

/// The loaded model and everything needed to turn requests into clips; shared by all handlers.
pub struct Generator {
    manifest: Manifest,
    /// The bundle's postfilter, unless the configuration leaves it out.
    postfilter: Option<Postfilter>,
    latent_bank: Option<LatentBank>,
    range: DbRange,
    vocoder: Vocoder,
    batcher: Batcher,
    pool: rayon::ThreadPool,
    metrics: Metrics,
    admission: Arc<Semaphore>,
    /// One clip at a time on the vocoder pool, in arrival order (see `generate_admitted`).
    vocoder_turn: Arc<Semaphore>,
    capacity: usize,
    timeout: Duration,
    crossfade_seconds: f32,
    walk_crossfade_seconds: f32,
    limits: RequestLimits,
    provider: ExecutionProvider,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("model", &self.manifest.name).field("provider", &self.provider).finish()
    }
}

impl Generator {
    /// Loads and checks the bundle at `config.model`, opens its decoder session, starts the decoder
    /// thread and the vocoder pool, and records `melfuse_model_info`.
    pub fn start(config: &ServeConfig, metrics: Metrics) -> Result<Self, ServeError> {
        config.validate()?;
        let bundle = melfuse_proto::manifest::Manifest::load(&config.model)?;
        Self::from_bundle(&bundle, config, metrics)
    }

    /// [`Generator::start`] on a bundle already loaded and checked.
    pub fn from_bundle(bundle: &LoadedBundle, config: &ServeConfig, metrics: Metrics) -> Result<Self, ServeError> {
        config.validate()?;
        let manifest = bundle.manifest.clone();
        let session = DecoderSession::open(bundle, config.device, config.decoder_threads)?;
        let provider = session.provider();
        let policy = BatchPolicy { max_batch: config.max_batch, max_wait: Duration::from_millis(config.max_wait_ms) };
        let batcher = Batcher::start(session, policy, metrics.clone())?;
        let threads = config.resolved_vocoder_threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("melfuse-vocoder-{i}"))
            .build()
            .map_err(|e| ServeError::Config(format!("vocoder_threads: cannot start {threads} threads: {e}")))?;
        let vocoder = Vocoder::new(&manifest.signal, &config.vocoder)?;
        metrics
            .model_info
            .with_label_values(&[manifest.name.as_str(), manifest.genres.join(",").as_str(), provider.label()])
            .set(1);
        for genre in &manifest.genres {
            metrics.blend_weight_total.with_label_values(&[genre.as_str()]);
        }
        let postfilter = manifest.postfilter.clone().filter(|_| !config.no_postfilter);
        tracing::info!(
            model = %manifest.name,
            genres = %manifest.genres.join(","),
            postfilter = match (&manifest.postfilter, &postfilter) {
                (None, _) => "none in the bundle",
                (Some(_), None) => "off",
                (Some(_), Some(_)) => "on",
            },
            execution_provider = provider.label(),
            vocoder_threads = threads,
            max_batch = config.max_batch,
            "model loaded"
        );
        Ok(Self {
            postfilter,
            range: manifest.normalization,
            manifest,
            vocoder,
            batcher,
            pool,
            metrics,
            admission: Arc::new(Semaphore::new(config.queue_capacity)),
            vocoder_turn: Arc::new(Semaphore::new(1)),
            capacity: config.queue_capacity,
            timeout: Duration::from_millis(config.request_timeout_ms),
            crossfade_seconds: config.crossfade_seconds,
            walk_crossfade_seconds: config.walk_crossfade_seconds,
            limits: config.request_limits(bundle.latent_bank.is_some()),
            latent_bank: bundle.latent_bank.clone(),
            provider,
        })
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The postfilter clips go through: the bundle's, unless the configuration leaves it out.
    pub fn postfilter(&self) -> Option<&Postfilter> {
        self.postfilter.as_ref()
    }

    /// The bundle's latent bank, if it has one.
    pub fn latent_bank(&self) -> Option<&LatentBank> {
        self.latent_bank.as_ref()
    }

    /// The bounds requests are checked against.
    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// Where the decoder runs.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// The metrics this generator reports to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Decodes one row through the batcher: readiness means this has succeeded once. It may take
    /// up to [`WARM_UP_TIMEOUT`], not the request deadline: a first CUDA inference tunes kernels.
    /// Also ranks the bank's continuations, so the first clip longer than a bank stretch does
    /// not pay for them.
    pub async fn warm_up(&self) -> Result<(), GenerateError> {
        if let Some(bank) = &self.latent_bank {
            bank.precompute_continuations();
        }
        let genres = self.manifest.genres.len();
        let mut weights = vec![0.0; genres];
        weights[0] = 1.0;
        let z = blend_latent(&self.manifest.centroids, &weights, 0.0, 0);
        self.decode(z, weights, 1, Instant::now() + WARM_UP_TIMEOUT).await.map(drop)
    }

    /// Produces the clip `request` asks for, within the request deadline. Refuses at once with
    /// [`GenerateError::Overloaded`] when `queue_capacity` requests are already in progress.
    pub async fn generate(self: &Arc<Self>, request: GenerateRequest) -> Result<GeneratedClip, GenerateError> {
        let permit = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| GenerateError::Overloaded { capacity: self.capacity })?;
        let deadline = Instant::now() + self.timeout;
        let this = Arc::clone(self);
        match tokio::time::timeout(self.timeout, this.generate_admitted(request, deadline, permit)).await {
            Ok(result) => result,
            Err(_) => Err(GenerateError::DeadlineExceeded { timeout_ms: self.timeout.as_millis() as u64 }),
        }
    }

    async fn generate_admitted(
        self: Arc<Self>,
        request: GenerateRequest,
        deadline: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Result<GeneratedClip, GenerateError> {
        let seed = request.seed.unwrap_or_else(rand::random);
        let signal = &self.manifest.signal;
        let frames = SegmentPlan::frames_for_seconds(request.seconds, signal.sample_rate, signal.hop_length);
        // The bank walks along real tracks: tiles in one pass, or segments a hop apart.
        let bank = self.latent_bank.as_ref().filter(|_| request.sampler == Sampler::Bank);
        let genres = self.manifest.genres.len();
        let Latents { plan, z, mixtures, rows, windows } = match (bank, self.one_pass_columns(bank)) {
            (Some(bank), Some(cells)) => self.one_pass_latents(&request, seed, frames, bank, cells),
            _ => self.segment_latents(&request, seed, frames, bank),
        };
        let mean_weights: Vec<f64> = (0..genres)
            .map(|g| mixtures.iter().skip(g).step_by(genres).map(|&w| f64::from(w)).sum::<f64>() / rows as f64)
            .collect();

        let normalized = self.decode(z, mixtures, rows, deadline).await?;
        let normalized = match &windows {
            Some(windows) => windows.keep(&normalized, signal.n_mels),
            None => normalized,
        };

        // Stitching, vocoding and encoding are CPU work: the pool does them, not the async threads.
        // One clip at a time, taking turns first come first served (tokio's semaphore is fair): each
        // clip's Griffin-Lim already uses every pool thread, and several clips in the pool at once
        // let rayon's work stealing nest one inside another, so early requests waited for later
        // ones (p99 of 30 s at 16 clients before this).
        let turn = Arc::clone(&self.vocoder_turn).acquire_owned().await.map_err(|_| GenerateError::ShuttingDown)?;
        let (sender, receiver) = oneshot::channel();
        let this = Arc::clone(&self);
        let format = request.format;
        let render = RenderRequest {
            timeline: request.timeline.clone(),
            format,
            iterations: request.griffin_lim_iters,
            seed,
            clip_samples: (f64::from(request.seconds) * f64::from(signal.sample_rate)).round() as usize,
        };
        self.pool.spawn(move || {
            // The admission slot is held until the pool is done, also when the caller gave up at
            // its deadline: abandoned work still occupies the pool, so it must count.
            let _permit = permit;
            let _turn = turn;
            let result = if Instant::now() >= deadline {
                Err(GenerateError::DeadlineExceeded { timeout_ms: this.timeout.as_millis() as u64 })
            } else {
                this.render(&normalized, &plan, &render)
            };
            let _ = sender.send(result);
        });
        let body = receiver.await.map_err(|_| GenerateError::ShuttingDown)??;

        self.metrics.generated_audio_seconds_total.inc_by(f64::from(request.seconds));
        for (genre, weight) in self.manifest.genres.iter().zip(mean_weights) {
            self.metrics.blend_weight_total.with_label_values(&[genre.as_str()]).inc_by(weight);
        }
        Ok(GeneratedClip { body, format, seed, seconds: request.seconds })
    }

    /// A tiled bank's walk as one latent map: the walk's tiles joined and cut to `frames` after
    /// decoding. A constant blend is one decoder row; where the blend moves along the clip (a
    /// morph), each tile gets a row of its own, a window of the map conditioned on its mixture
    /// ([`TileWindows`]).
    fn one_pass_latents(
        &self,
        request: &GenerateRequest,
        seed: u64,
        frames: usize,
        bank: &LatentBank,
        cells: usize,
    ) -> Latents {
        let segment = self.manifest.signal.model_frames();
        let tiles = frames.div_ceil(segment).max(1);
        let mut codes = Vec::with_capacity(tiles);
        let mut mixtures = Vec::with_capacity(tiles);
        for tile in 0..tiles {
            let position = if tiles == 1 { 0.5 } else { tile as f32 / (tiles - 1) as f32 };
            let weights = request.timeline.weights_at(position);
            codes.push(bank.walk(&self.manifest.centroids, &weights, request.temperature, seed, tile, tiles));
            mixtures.push(weights);
        }
        let views: Vec<&[f32]> = codes.iter().map(Vec::as_slice).collect();
        let z = join_latent_maps(&views, cells);
        if mixtures.iter().all(|mixture| *mixture == mixtures[0]) {
            return Latents {
                plan: SegmentPlan::new(frames, tiles * segment, 0),
                z,
                mixtures: mixtures.swap_remove(0),
                rows: 1,
                windows: None,
            };
        }
        let fade = crossfade_frames(self.walk_crossfade_seconds, &self.manifest.signal);
        let windows = TileWindows::new(tiles, cells, segment / cells, fade);
        Latents {
            plan: windows.plan(frames),
            z: windows.latents(&z),
            mixtures: mixtures.concat(),
            rows: windows.rows(),
            windows: Some(windows),
        }
    }

    /// One latent per decoded segment: a segment bank's walk (codes the bank's hop apart, short
    /// fades at the overlaps' centres) or the prior's evenly spaced segments.
    fn segment_latents(
        &self,
        request: &GenerateRequest,
        seed: u64,
        frames: usize,
        bank: Option<&LatentBank>,
    ) -> Latents {
        let signal = &self.manifest.signal;
        let hop = bank.and_then(LatentBank::hop_frames).or_else(|| training_hop_frames(signal));
        let plan = match (bank, hop) {
            (Some(_), Some(hop)) => SegmentPlan::with_hop(
                frames,
                signal.model_frames(),
                hop,
                crossfade_frames(self.walk_crossfade_seconds, signal),
            ),
            _ => SegmentPlan::new(frames, signal.model_frames(), crossfade_frames(self.crossfade_seconds, signal)),
        };
        let centroids = &self.manifest.centroids;
        let mut z = Vec::with_capacity(plan.len() * self.manifest.latent_dim);
        let mut mixtures = Vec::with_capacity(plan.len() * self.manifest.genres.len());
        for (index, &position) in plan.positions().iter().enumerate() {
            let weights = request.timeline.weights_at(position);
            z.extend(match bank {
                Some(bank) => bank.walk(centroids, &weights, request.temperature, seed, index, plan.len()),
                None => blend_latent(centroids, &weights, request.temperature, segment_seed(seed, index)),
            });
            mixtures.extend(weights);
        }
        let rows = plan.len();
        Latents { plan, z, mixtures, rows, windows: None }
    }

    /// Latent columns per tile when a `bank` walk decodes in one pass: the bank's codes tile their
    /// stretches (`hop_frames` of one model segment) and the decoder takes any number of columns
    /// (`latent_time_cells`). A walk is then one latent map, with no segments to cross-fade; a
    /// morph's tiles are decoded as windows of that map, each with its own mixture.
    fn one_pass_columns(&self, bank: Option<&LatentBank>) -> Option<usize> {
        let column = self.manifest.latent_column()?;
        let tiles = bank?.hop_frames() == Some(self.manifest.signal.model_frames());
        tiles.then_some(column.cells)
    }

    async fn decode(
        &self,
        z: Vec<f32>,
        genre: Vec<f32>,
        rows: usize,
        deadline: Instant,
    ) -> Result<Vec<f32>, GenerateError> {
        let (reply, receiver) = oneshot::channel();
        self.batcher.submit(DecodeJob { z, genre, rows, deadline, reply })?;
        receiver.await.map_err(|_| GenerateError::DeadlineExceeded { timeout_ms: self.timeout.as_millis() as u64 })?
    }

    /// Normalised decoder rows → stitched dB mel → the body in `format`.
    fn render(
        &self,
        normalized: &[f32],
        plan: &SegmentPlan,
        request: &RenderRequest,
    ) -> Result<Vec<u8>, GenerateError> {
        let RenderRequest { ref timeline, format, iterations, seed, clip_samples } = *request;
        let signal = &self.manifest.signal;
        let (n_mels, frames) = (signal.n_mels, plan.segment_frames());
        let internal = |e: &dyn std::fmt::Display| GenerateError::Internal(e.to_string());
        let segments = normalized
            .chunks_exact(n_mels * frames)
            .map(|row| Array2::from_shape_vec((n_mels, frames), row.to_vec()).map(|mel| self.range.denormalize(&mel)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal(&e))?;
        let views: Vec<ArrayView2<'_, f32>> = segments.iter().map(|segment| segment.view()).collect();
        let mel_db = plan.stitch(&views, signal.amin);
        // The bundle's postfilter, each frame with the gains of the mixture at its place in the clip.
        let mel_db = match &self.postfilter {
            Some(postfilter) => {
                let last = mel_db.ncols().saturating_sub(1).max(1) as f32;
                postfilter.apply(&mel_db, |frame| timeline.weights_at(frame as f32 / last), self.range)
            }
            None => mel_db,
        };
        let encoded = match format {
            OutputFormat::Wav => {
                let started = Instant::now();
                let mut samples =
                    self.pool.install(|| self.vocoder.with_iterations(iterations).db_to_audio(mel_db.view(), seed));
                samples.truncate(clip_samples);
                self.metrics.observe_stage("vocoder", started.elapsed().as_secs_f64());
                let started = Instant::now();
                let body = encode_wav_pcm16(&samples, signal.sample_rate).map_err(|e| internal(&e))?;
                self.metrics.observe_stage("encode", started.elapsed().as_secs_f64());
                body
            }
            OutputFormat::Png => {
                let started = Instant::now();
                // The model's own dB range, so that colours compare across clips.
                let body = encode_spectrogram_png(mel_db.view(), self.range.db_floor, self.range.db_ceiling)
                    .map_err(|e| internal(&e))?;
                self.metrics.observe_stage("encode", started.elapsed().as_secs_f64());
                body
            }
            OutputFormat::Npy => {
                let started = Instant::now();
                let mut body = Vec::new();
                ndarray_npy::WriteNpyExt::write_npy(&mel_db, &mut body).map_err(|e| internal(&e))?;
                self.metrics.observe_stage("encode", started.elapsed().as_secs_f64());
                body
            }
        };
        Ok(encoded)
    }
}

/// A clip's decoder input: where the decoded rows go, `[rows, L]` latents and `[rows, G]` mixtures,
/// and for a morph over tiles which frames of each row it keeps.
struct Latents {
    plan: SegmentPlan,
    z: Vec<f32>,
    mixtures: Vec<f32>,
    rows: usize,
    windows: Option<TileWindows>,
}

/// What the worker pool makes of the decoded rows.
#[derive(Debug, Clone)]
struct RenderRequest {
    /// The mixture along the clip, for the postfilter's gains.
    timeline: Timeline,
    format: OutputFormat,
    iterations: usize,
    seed: u64,
    /// Samples of the clip (`seconds × sample_rate`): the vocoder output is cut to it.
    clip_samples: usize,
}

/// Frames between the starts of consecutive training segments of one track
/// (`segment_seconds − overlap_seconds`), when that is a step shorter than a model segment.
fn training_hop_frames(signal: &SignalConfig) -> Option<usize> {
    let seconds = f64::from(signal.segment_seconds) - f64::from(signal.overlap_seconds);
    let frames = (seconds * f64::from(signal.sample_rate) / signal.hop_length as f64).round() as usize;
    (frames > 0 && frames < signal.model_frames()).then_some(frames)
}

/// The configured cross-fade in frames of `signal`.
fn crossfade_frames(seconds: f32, signal: &SignalConfig) -> usize {
    (f64::from(seconds) * f64::from(signal.sample_rate) / signal.hop_length as f64).round() as usize
}
