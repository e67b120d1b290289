//! The bundle's decoder as an ONNX Runtime session: `(z [B, Z], genre [B, G]) → mel [B, 1, n_mels,
//! frames]` (with a dynamic time axis, `z` rows of any whole number of latent columns), on the CUDA
//! execution provider when asked for and available, else on the CPU.

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
    /// Values per latent column when the decoder has a dynamic time axis.
    column_len: Option<usize>,
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
        Ok(Self {
            session,
            provider,
            latent_dim: manifest.latent_dim,
            n_genres: manifest.genres.len(),
            row_len,
            column_len: manifest.latent_column().map(|column| column.values),
        })
    }

    /// The execution provider in use.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// Values in one output row for latent rows of `z_len` values: `row_len` for one segment's
    /// `Z`; a decoder with a dynamic time axis draws `n_mels × frames / Z` values per latent value
    /// for any whole number of latent columns.
    pub fn output_row_len(&self, z_len: usize) -> usize {
        z_len * self.row_len / self.latent_dim.max(1)
    }

    /// Decodes `rows` rows: `z` is `[rows, L]` and `genre` `[rows, G]`, row-major, where `L` is `Z`
    /// or, for a decoder with a dynamic time axis, any whole number of latent columns; returns
    /// `[rows, output_row_len(L)]` normalised mel values, row-major.
    pub fn run(&mut self, z: Vec<f32>, genre: Vec<f32>, rows: usize) -> Result<Vec<f32>, ServeError> {
        let decoder_error = |e: &dyn std::fmt::Display| ServeError::Decoder(e.to_string());
        let z_len = z.len() / rows.max(1);
        let fits = match self.column_len {
            Some(column) => z_len > 0 && z_len.is_multiple_of(column),
            None => z_len == self.latent_dim,
        };
        if !fits || z_len * rows != z.len() {
            return Err(ServeError::Decoder(format!(
                "{} latent values in {rows} rows do not fit the decoder's `{INPUT_Z}` (Z = {}{})",
                z.len(),
                self.latent_dim,
                self.column_len.map(|c| format!(", or any multiple of {c}")).unwrap_or_default()
            )));
        }
        let expected = self.output_row_len(z_len);
        let z = Tensor::from_array(([rows, z_len], z)).map_err(|e| decoder_error(&e))?;
        let genre = Tensor::from_array(([rows, self.n_genres], genre)).map_err(|e| decoder_error(&e))?;
        let outputs =
            self.session.run(ort::inputs![INPUT_Z => z, INPUT_GENRE => genre]).map_err(|e| decoder_error(&e))?;
        let (shape, values) = outputs[OUTPUT_MEL].try_extract_tensor::<f32>().map_err(|e| decoder_error(&e))?;
        if values.len() != rows * expected {
            return Err(ServeError::Decoder(format!(
                "output `{OUTPUT_MEL}` has shape {shape:?}, expected {rows} rows of {expected} values"
            )));
        }
        Ok(values.to_vec())
    }
}
