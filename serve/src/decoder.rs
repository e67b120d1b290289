//! The bundle's decoder as an ONNX Runtime session: `(z [B, Z], genre [B, G]) → mel [B, 1, n_mels,
//! frames]`, on the CUDA execution provider when asked for and available, else on the CPU.

use melfuse_proto::manifest::{LoadedBundle, INPUT_GENRE, INPUT_Z, OUTPUT_MEL};
use ort::session::Session;
use ort::value::Tensor;

use crate::config::DeviceChoice;
use crate::error::ServeError;

/// The execution provider a session ended up on (exported in `melfuse_model_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// CUDA on the given GPU.
    Cuda(i32),
}

impl ExecutionProvider {
    /// The label value: `cpu` or `cuda`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda(_) => "cuda",
        }
    }
}

/// One decoder session and the shapes it works on.
pub struct DecoderSession {
    session: Session,
    provider: ExecutionProvider,
    latent_dim: usize,
    n_genres: usize,
    row_len: usize,
}

impl std::fmt::Debug for DecoderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderSession").field("provider", &self.provider).field("row_len", &self.row_len).finish()
    }
}

impl DecoderSession {
    /// Opens the bundle's decoder on `device` (`threads` intra-op threads; 0 = ONNX Runtime's default).
    /// CUDA that cannot be registered (CPU-only library, no GPU) is logged and replaced by the CPU.
    pub fn open(bundle: &LoadedBundle, device: DeviceChoice, threads: usize) -> Result<Self, ServeError> {
        let environment = crate::onnxruntime::environment()?;
        let decoder_error = |e: &dyn std::fmt::Display| ServeError::Decoder(e.to_string());
        let mut builder = Session::builder(environment).map_err(|e| decoder_error(&e))?;
        if threads > 0 {
            builder = builder.with_intra_threads(threads).map_err(|e| decoder_error(&e))?;
        }
        let mut provider = ExecutionProvider::Cpu;
        if let DeviceChoice::Cuda(device_id) = device {
            let cuda = ort::ep::CUDA::default().with_device_id(device_id).build().error_on_failure();
            builder = match builder.with_execution_providers([cuda]) {
                Ok(builder) => {
                    provider = ExecutionProvider::Cuda(device_id);
                    builder
                }
                Err(error) => {
                    tracing::warn!(%error, "CUDA execution provider unavailable; the decoder runs on the CPU");
                    error.recover()
                }
            };
        }
        let session = builder.commit_from_memory(&bundle.decoder_bytes).map_err(|e| decoder_error(&e))?;
        let manifest = &bundle.manifest;
        let row_len = manifest.signal.n_mels * manifest.signal.model_frames();
        tracing::info!(execution_provider = provider.label(), device = %device, "decoder session ready");
        Ok(Self { session, provider, latent_dim: manifest.latent_dim, n_genres: manifest.genres.len(), row_len })
    }

    /// The execution provider in use.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// Values in one output row (`n_mels × frames`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Decodes `rows` rows: `z` is `[rows, Z]` and `genre` `[rows, G]`, row-major; returns
    /// `[rows, n_mels × frames]` normalised mel values, row-major.
    pub fn run(&mut self, z: Vec<f32>, genre: Vec<f32>, rows: usize) -> Result<Vec<f32>, ServeError> {
        let decoder_error = |e: &dyn std::fmt::Display| ServeError::Decoder(e.to_string());
        let z = Tensor::from_array(([rows, self.latent_dim], z)).map_err(|e| decoder_error(&e))?;
        let genre = Tensor::from_array(([rows, self.n_genres], genre)).map_err(|e| decoder_error(&e))?;
        let outputs =
            self.session.run(ort::inputs![INPUT_Z => z, INPUT_GENRE => genre]).map_err(|e| decoder_error(&e))?;
        let (shape, values) = outputs[OUTPUT_MEL].try_extract_tensor::<f32>().map_err(|e| decoder_error(&e))?;
        if values.len() != rows * self.row_len {
            return Err(ServeError::Decoder(format!(
                "output `{OUTPUT_MEL}` has shape {shape:?}, expected {rows} rows of {} values",
                self.row_len
            )));
        }
        Ok(values.to_vec())
    }
}
