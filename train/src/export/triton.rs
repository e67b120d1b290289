//! `melfuse-train export --triton DIR`: the exported decoder as an NVIDIA Triton Inference Server
//! model repository, for deployments that outgrow one `melfuse-serve` instance and want Triton's
//! server-side dynamic batching across many clients and GPUs.
//!
//! The layout is Triton's: `DIR/<name>/config.pbtxt` and `DIR/<name>/1/model.onnx` (version 1,
//! the same bytes as the bundle's `decoder.onnx`). The configuration uses the ONNX Runtime
//! backend and is derived from the manifest's `onnx` section, so it cannot disagree with the
//! bundle: with `max_batch_size > 0` Triton's `dims` leave out the batch axis, so the decoder's
//! `z: [batch, Z]`, `genre: [batch, G]` and `mel: [batch, 1, n_mels, frames]` become `dims: [Z]`,
//! `[G]` and `[1, n_mels, frames]`. A latent map's decoder has a dynamic time axis (`z: [batch,
//! latent]`, `mel: [batch, 1, n_mels, frames]` with symbolic `latent` and `frames`): those axes
//! are Triton's variable-size `-1`, so a client may send a whole clip's map in one request.
//!
//! Triton only serves the decoder. A client still needs the bundle's `manifest.json` (genre order,
//! centroids for `z = Σ w·centroid + temperature·ε`, the dB range and signal parameters for the
//! vocoder), which is what `melfuse-serve` does for it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use melfuse_audio::atomic_file::write_atomically;
use melfuse_proto::manifest::{Manifest, TensorSpec};
use melfuse_proto::onnx::{format_shape, Dim};

/// Name of the model configuration file in a Triton model directory.
pub const CONFIG_FILE: &str = "config.pbtxt";
/// Name of the model file Triton's ONNX Runtime backend loads from a version directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The model version directory written (Triton serves the highest version by default).
pub const MODEL_VERSION: u32 = 1;
/// Default largest batch Triton assembles ([`TritonSettings::max_batch_size`]).
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 16;
/// Default longest a request waits for others to join its batch, in microseconds.
pub const DEFAULT_MAX_QUEUE_DELAY_US: u64 = 5_000;

/// Flags of `export` that shape the Triton model repository.
#[derive(Debug, Clone, clap::Args)]
pub struct TritonArgs {
    /// Also write the decoder as an NVIDIA Triton model repository: `DIR/<name>/config.pbtxt` and
    /// `DIR/<name>/1/model.onnx`.
    #[arg(long = "triton", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Triton's max_batch_size: the largest batch its dynamic batcher forms (1–1024).
    #[arg(long = "triton-max-batch", value_name = "N", default_value_t = DEFAULT_MAX_BATCH_SIZE)]
    pub max_batch_size: u32,
    /// Triton's max_queue_delay_microseconds: how long a request may wait for others to batch with.
    #[arg(long = "triton-max-queue-delay-us", value_name = "US", default_value_t = DEFAULT_MAX_QUEUE_DELAY_US)]
    pub max_queue_delay_us: u64,
}

impl TritonArgs {
    /// The batching settings, checked.
    pub fn settings(&self) -> Result<TritonSettings, TritonError> {
        TritonSettings::new(self.max_batch_size, self.max_queue_delay_us)
    }
}

/// Dynamic-batching settings of the generated configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TritonSettings {
    /// Largest batch Triton forms; also the `max_batch_size` that makes the batch axis implicit.
    pub max_batch_size: u32,
    /// Longest a request waits in Triton's queue for a fuller batch, in microseconds.
    pub max_queue_delay_us: u64,
}

/// The largest `max_batch_size` accepted: far above what one decoder call fits in GPU memory at the
/// paper preset, so a larger value is a typo.
const MAX_BATCH_LIMIT: u32 = 1024;

impl TritonSettings {
    /// Checked settings: `max_batch_size` in 1–1024 (0 would turn batching off and make the batch
    /// axis explicit, which the decoder's dynamic batch does not need).
    pub fn new(max_batch_size: u32, max_queue_delay_us: u64) -> Result<Self, TritonError> {
        if !(1..=MAX_BATCH_LIMIT).contains(&max_batch_size) {
            return Err(TritonError::InvalidSetting {
                name: "triton-max-batch",
                detail: format!("{max_batch_size} is outside 1..={MAX_BATCH_LIMIT}"),
            });
        }
        Ok(Self { max_batch_size, max_queue_delay_us })
    }

    /// Batch sizes the batcher prefers to send: the powers of two from 2 up to the maximum, and the
    /// maximum itself (GPU kernels are tuned for such sizes; a lone request is still served at once
    /// when the queue delay expires).
    pub fn preferred_batch_sizes(&self) -> Vec<u32> {
        let mut sizes: Vec<u32> =
            std::iter::successors(Some(2u32), |s| s.checked_mul(2)).take_while(|&s| s <= self.max_batch_size).collect();
        if sizes.last() != Some(&self.max_batch_size) {
            sizes.push(self.max_batch_size);
        }
        sizes
    }
}

impl Default for TritonSettings {
    fn default() -> Self {
        Self { max_batch_size: DEFAULT_MAX_BATCH_SIZE, max_queue_delay_us: DEFAULT_MAX_QUEUE_DELAY_US }
    }
}

/// Why a Triton model repository could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TritonError {
    /// A flag is out of range.
    #[error("invalid `{name}`: {detail}")]
    InvalidSetting {
        /// The flag.
        name: &'static str,
        /// Why.
        detail: String,
    },
    /// The bundle name cannot be a Triton model directory name.
    #[error(
        "bundle name {name:?} cannot name a Triton model: use letters, digits, `_`, `-` and `.` \
         (pick one with --name)"
    )]
    InvalidModelName {
        /// The name.
        name: String,
    },
    /// A decoder input or output does not start with the dynamic batch axis Triton batches on.
    #[error("decoder {kind} `{tensor}` has shape {shape}, which does not start with a dynamic batch axis")]
    NotBatchable {
        /// `input` or `output`.
        kind: &'static str,
        /// The tensor's name.
        tensor: String,
        /// Its declared shape.
        shape: String,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] melfuse_audio::AudioError),
}

/// One input or output of the Triton configuration: all melfuse tensors are `TYPE_FP32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonTensor {
    /// Tensor name, as in the ONNX graph.
    pub name: String,
    /// Shape without the batch axis; `-1` for an axis of variable size.
    pub dims: Vec<i64>,
}

/// The model configuration written to `config.pbtxt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonModelConfig {
    /// Model name: the bundle's name, also the model directory's name.
    pub name: String,
    /// Decoder inputs (`z`, `genre`).
    pub inputs: Vec<TritonTensor>,
    /// Decoder outputs (`mel`).
    pub outputs: Vec<TritonTensor>,
    /// Batching settings.
    pub settings: TritonSettings,
}

impl TritonModelConfig {
    /// The configuration serving the decoder that `manifest` describes.
    pub fn from_manifest(manifest: &Manifest, settings: TritonSettings) -> Result<Self, TritonError> {
        check_model_name(&manifest.name)?;
        let tensors = |specs: &[TensorSpec], kind| specs.iter().map(|s| unbatched(s, kind)).collect::<Result<_, _>>();
        Ok(Self {
            name: manifest.name.clone(),
            inputs: tensors(&manifest.onnx.inputs, "input")?,
            outputs: tensors(&manifest.onnx.outputs, "output")?,
            settings,
        })
    }

    /// The configuration in protobuf text format, as Triton reads `config.pbtxt`.
    pub fn to_pbtxt(&self) -> String {
        let tensors = |specs: &[TritonTensor]| {
            specs
                .iter()
                .map(|t| {
                    let dims = t.dims.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                    format!("  {{\n    name: \"{}\"\n    data_type: TYPE_FP32\n    dims: [ {dims} ]\n  }}", t.name)
                })
                .collect::<Vec<_>>()
                .join(",\n")
        };
        let preferred = self.settings.preferred_batch_sizes().iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let mut text = String::new();
        // `write!` to a String cannot fail.
        let _ = write!(
            text,
            "# Written by `melfuse-train export --triton`: the melfuse decoder of bundle `{name}` on\n\
             # Triton's ONNX Runtime backend. The batch axis is implicit (max_batch_size > 0).\n\
             name: \"{name}\"\n\
             backend: \"onnxruntime\"\n\
             platform: \"onnxruntime_onnx\"\n\
             max_batch_size: {max_batch}\n\
             input [\n{inputs}\n]\n\
             output [\n{outputs}\n]\n\
             dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n  max_queue_delay_microseconds: {delay}\n}}\n\
             version_policy {{ latest {{ num_versions: 1 }} }}\n",
            name = self.name,
            max_batch = self.settings.max_batch_size,
            inputs = tensors(&self.inputs),
            outputs = tensors(&self.outputs),
            delay = self.settings.max_queue_delay_us,
        );
        text
    }
}

/// What [`write_repository`] wrote.
#[derive(Debug, Clone)]
pub struct TritonRepository {
    /// The model directory, `DIR/<name>`.
    pub model_dir: PathBuf,
    /// The configuration written to `config.pbtxt`.
    pub config: TritonModelConfig,
}

/// Writes `repository/<name>/config.pbtxt` and `repository/<name>/1/model.onnx` (`decoder`, the
/// bundle's decoder bytes). Other models already in `repository` are left alone.
pub fn write_repository(
    repository: &Path,
    manifest: &Manifest,
    decoder: &[u8],
    settings: TritonSettings,
) -> Result<TritonRepository, TritonError> {
    let config = TritonModelConfig::from_manifest(manifest, settings)?;
    let model_dir = repository.join(&config.name);
    let version_dir = model_dir.join(MODEL_VERSION.to_string());
    std::fs::create_dir_all(&version_dir)
        .map_err(|source| melfuse_audio::AudioError::Io { path: version_dir.clone(), source })?;
    write_atomically(&version_dir.join(MODEL_FILE), decoder)?;
    write_atomically(&model_dir.join(CONFIG_FILE), config.to_pbtxt().as_bytes())?;
    Ok(TritonRepository { model_dir, config })
}

/// Refuses a name that is not a plain directory name Triton accepts.
pub fn check_model_name(name: &str) -> Result<(), TritonError> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || !plain || name.starts_with('.') {
        return Err(TritonError::InvalidModelName { name: name.into() });
    }
    Ok(())
}

/// A manifest tensor without its leading dynamic batch axis; a later symbolic axis (a dynamic
/// time axis) becomes `-1`.
fn unbatched(spec: &TensorSpec, kind: &'static str) -> Result<TritonTensor, TritonError> {
    let not_batchable =
        || TritonError::NotBatchable { kind, tensor: spec.name.clone(), shape: format_shape(&spec.shape) };
    let (first, rest) = spec.shape.split_first().ok_or_else(not_batchable)?;
    if !matches!(first, Dim::Symbolic(_)) {
        return Err(not_batchable());
    }
    let dims = rest
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => i64::try_from(*n).map_err(|_| not_batchable()),
            Dim::Symbolic(_) => Ok(-1),
        })
        .collect::<Result<_, _>>()?;
    Ok(TritonTensor { name: spec.name.clone(), dims })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64]) -> TritonTensor {
        TritonTensor { name: name.into(), dims: dims.to_vec() }
    }

    #[test]
    fn preferred_sizes_are_powers_of_two_up_to_the_maximum() {
        let sizes = |max| TritonSettings::new(max, 0).unwrap().preferred_batch_sizes();
        assert_eq!(sizes(16), vec![2, 4, 8, 16]);
        assert_eq!(sizes(12), vec![2, 4, 8, 12]);
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(2), vec![2]);
    }

    #[test]
    fn settings_refuse_zero_and_huge_batches() {
        for bad in [0, MAX_BATCH_LIMIT + 1] {
            let error = TritonSettings::new(bad, 100).unwrap_err();
            assert!(error.to_string().contains("triton-max-batch"), "{error}");
        }
    }

    #[test]
    fn model_names_must_be_plain_directory_names() {
        for good in ["demo", "cn-edm_v2.1"] {
            check_model_name(good).unwrap();
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "with space", "ü"] {
            assert!(check_model_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unbatched_drops_the_symbolic_batch_axis_and_refuses_the_rest() {
        let spec = |shape: Vec<Dim>| TensorSpec { name: "mel".into(), shape };
        let ok = unbatched(&spec(vec!["batch".into(), 1u64.into(), 32u64.into(), 64u64.into()]), "output").unwrap();
        assert_eq!(ok, tensor("mel", &[1, 32, 64]));
        // A dynamic time axis is Triton's variable-size -1.
        let dynamic = unbatched(&spec(vec!["batch".into(), 1u64.into(), 32u64.into(), "frames".into()]), "output");
        assert_eq!(dynamic.unwrap(), tensor("mel", &[1, 32, -1]));
        for shape in [vec![], vec![Dim::from(4u64), Dim::from(8u64)], vec![Dim::from(4u64), "frames".into()]] {
            let error = unbatched(&spec(shape), "output").unwrap_err();
            assert!(matches!(error, TritonError::NotBatchable { .. }), "{error}");
        }
    }

    #[test]
    fn pbtxt_lists_every_field_triton_needs() {
        let config = TritonModelConfig {
            name: "demo".into(),
            inputs: vec![tensor("z", &[64]), tensor("genre", &[3])],
            outputs: vec![tensor("mel", &[1, 128, 1280])],
            settings: TritonSettings::new(8, 2500).unwrap(),
        };
        let text = config.to_pbtxt();
        for line in [
            "name: \"demo\"",
            "backend: \"onnxruntime\"",
            "platform: \"onnxruntime_onnx\"",
            "max_batch_size: 8",
            "    name: \"z\"\n    data_type: TYPE_FP32\n    dims: [ 64 ]",
            "    name: \"genre\"\n    data_type: TYPE_FP32\n    dims: [ 3 ]",
            "    name: \"mel\"\n    data_type: TYPE_FP32\n    dims: [ 1, 128, 1280 ]",
            "preferred_batch_size: [ 2, 4, 8 ]",
            "max_queue_delay_microseconds: 2500",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
