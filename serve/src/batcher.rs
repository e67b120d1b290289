//! Dynamic batching: generation requests submit their decoder rows (one per clip segment) and a
//! single decoder thread gathers rows from every waiting request into one decoder call — up to
//! `max_batch` rows, waiting at most `max_wait` after the oldest row arrived. Rows are taken in
//! arrival order, a request larger than a batch is spread over several, and a request whose
//! deadline passed or whose caller went away is dropped before it costs decoder time.
//!
//! Each output row depends only on its own input row, so what a clip is batched with never changes
//! its bytes (a test checks this against ONNX Runtime).

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::decoder::DecoderSession;
use crate::error::{GenerateError, ServeError};
use crate::metrics::Metrics;

/// Decoder rows of one request and where to send the decoded rows.
pub struct DecodeJob {
    /// `[rows, L]` latents, row-major: `L = Z`, or for a decoder with a dynamic time axis any
    /// whole number of latent columns (the same for every row of a job).
    pub z: Vec<f32>,
    /// `[rows, G]` genre mixtures, row-major.
    pub genre: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// When the request must be answered by.
    pub deadline: Instant,
    /// Receives `[rows, n_mels × frames]` normalised mel values (frames of the rows' width), or why not.
    pub reply: oneshot::Sender<Result<Vec<f32>, GenerateError>>,
}

impl DecodeJob {
    /// Latent values per row (`Z`, or a one-pass clip's whole map).
    pub fn z_len(&self) -> usize {
        self.z.len() / self.rows.max(1)
    }
}

/// The decoder thread's inbox.
#[derive(Debug, Clone)]
pub struct Batcher {
    sender: mpsc::Sender<DecodeJob>,
}

/// How the decoder thread forms batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Most rows per decoder call.
    pub max_batch: usize,
    /// Longest wait for a batch to fill, from the oldest waiting row's arrival.
    pub max_wait: Duration,
}

/// A job partly or not yet decoded.
struct Pending {
    job: DecodeJob,
    arrived: Instant,
    next_row: usize,
    /// Decoded values per row of this job (`DecoderSession::output_row_len` of its width).
    row_len: usize,
    output: Vec<f32>,
    counted_as_queued: bool,
}

impl Batcher {
    /// Starts the decoder thread, which owns `session` until every [`Batcher`] clone is dropped.
    pub fn start(session: DecoderSession, policy: BatchPolicy, metrics: Metrics) -> Result<Self, ServeError> {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("melfuse-decoder".into())
            .spawn(move || decoder_loop(session, policy, metrics, receiver))
            .map_err(|e| ServeError::Decoder(format!("cannot start the decoder thread: {e}")))?;
        Ok(Self { sender })
    }

    /// Queues `job`; its reply arrives when all its rows are decoded.
    pub fn submit(&self, job: DecodeJob) -> Result<(), GenerateError> {
        self.sender.send(job).map_err(|_| GenerateError::ShuttingDown)
    }
}

fn decoder_loop(mut session: DecoderSession, policy: BatchPolicy, metrics: Metrics, inbox: mpsc::Receiver<DecodeJob>) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut open = true;
    let accept = |pending: &mut VecDeque<Pending>, job: DecodeJob, session: &DecoderSession| {
        metrics.queue_depth.inc();
        let row_len = session.output_row_len(job.z_len());
        pending.push_back(Pending {
            output: Vec::with_capacity(job.rows * row_len),
            row_len,
            job,
            arrived: Instant::now(),
            next_row: 0,
            counted_as_queued: true,
        });
    };
    while open || !pending.is_empty() {
        // Wait for work, then for the batch to fill or the oldest row's wait to run out.
        if pending.is_empty() {
            match inbox.recv() {
                Ok(job) => accept(&mut pending, job, &session),
                Err(_) => break,
            }
        }
        while open {
            let waiting: usize = pending.iter().map(|p| p.job.rows - p.next_row).sum();
            let oldest = pending.front().map_or_else(Instant::now, |p| p.arrived);
            let remaining = policy.max_wait.saturating_sub(oldest.elapsed());
            if waiting >= policy.max_batch || remaining.is_zero() {
                break;
            }
            match inbox.recv_timeout(remaining) {
                Ok(job) => accept(&mut pending, job, &session),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }

        // Drop what nobody waits for any more.
        let now = Instant::now();
        pending.retain_mut(|p| {
            let expired = p.job.deadline <= now;
            let abandoned = p.job.reply.is_closed();
            if expired || abandoned {
                if p.counted_as_queued {
                    metrics.queue_depth.dec();
                }
                return false;
            }
            true
        });
        if pending.is_empty() {
            continue;
        }

        // Take rows in arrival order, of the oldest job's width (one-pass clips of other lengths
        // wait for the next call: a batch is one tensor).
        let mut z = Vec::new();
        let mut genre = Vec::new();
        let mut taken: Vec<(usize, usize)> = Vec::new(); // (index in pending, rows taken)
        let mut rows = 0;
        let width = pending.front().map_or(0, |p| p.job.z_len());
        for (index, p) in pending.iter_mut().enumerate() {
            if rows == policy.max_batch || p.job.z_len() != width {
                break;
            }
            let take = (p.job.rows - p.next_row).min(policy.max_batch - rows);
            let z_dim = width;
            let g_dim = p.job.genre.len() / p.job.rows;
            z.extend_from_slice(&p.job.z[p.next_row * z_dim..(p.next_row + take) * z_dim]);
            genre.extend_from_slice(&p.job.genre[p.next_row * g_dim..(p.next_row + take) * g_dim]);
            taken.push((index, take));
            rows += take;
            if p.counted_as_queued {
                p.counted_as_queued = false;
                metrics.queue_depth.dec();
                metrics.observe_stage("queue", p.arrived.elapsed().as_secs_f64());
            }
        }
        metrics.batch_size.observe(rows as f64);
        let started = Instant::now();
        let result = session.run(z, genre, rows);
        metrics.observe_stage("decoder", started.elapsed().as_secs_f64());

        match result {
            Ok(values) => {
                let mut offset = 0;
                for &(index, take) in &taken {
                    let p = &mut pending[index];
                    p.output.extend_from_slice(&values[offset * p.row_len..(offset + take) * p.row_len]);
                    p.next_row += take;
                    offset += take;
                }
            }
            Err(error) => {
                tracing::error!(%error, rows, "decoder call failed");
                for &(index, _) in &taken {
                    let p = &mut pending[index];
                    p.next_row = p.job.rows; // finished, with an error
                    p.output.clear();
                }
            }
        }
        // Answer the jobs that are complete (they are at the front: rows are taken in order).
        while pending.front().is_some_and(|p| p.next_row == p.job.rows) {
            let Some(done) = pending.pop_front() else { break };
            let reply = if done.output.len() == done.job.rows * done.row_len {
                Ok(done.output)
            } else {
                Err(GenerateError::Internal("the decoder failed on this batch".into()))
            };
            let _ = done.job.reply.send(reply);
        }
    }
    tracing::info!("decoder thread stopped");
}
