//! The service's configuration: one serde struct, loadable from TOML (`--config serve.toml`) and
//! overridden field by field by command-line flags and `MELFUSE_*` environment variables.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use melfuse_audio::config::VocoderConfig;
use melfuse_proto::api::RequestLimits;
use serde::{Deserialize, Serialize};

use crate::error::ServeError;

/// Where the decoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on GPU `N` (falls back to the CPU, logged, when unavailable).
    Cuda(i32),
}

impl FromStr for DeviceChoice {
    type Err = String;

    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Self::Cuda)
                .ok_or_else(|| format!("device `{text}` is not `cpu`, `cuda` or `cuda:N`")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything `melfuse-serve` can be told; defaults are sized for a 2-core CPU machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The model bundle directory (`decoder.onnx` + `manifest.json`).
    pub model: PathBuf,
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Where the decoder runs.
    pub device: DeviceChoice,
    /// Most decoder rows (clip segments) in one decoder call.
    pub max_batch: usize,
    /// How long the first waiting segment may wait for others to fill a batch, in milliseconds.
    pub max_wait_ms: u64,
    /// Most generation requests admitted at once (decoding or vocoding); beyond it: 503 + Retry-After.
    pub queue_capacity: usize,
    /// Deadline of one generation request, in milliseconds; beyond it: 504.
    pub request_timeout_ms: u64,
    /// Threads of the vocoder (Griffin-Lim + encoding) pool; 0 = one per CPU core.
    pub vocoder_threads: usize,
    /// ONNX Runtime intra-op threads of the decoder session; 0 = ONNX Runtime's default.
    pub decoder_threads: usize,
    /// HTTP worker threads (async, never doing the heavy work); 0 = one per CPU core.
    pub http_workers: usize,
    /// Clip length when a request does not say, in seconds.
    pub default_seconds: f32,
    /// Longest clip a request may ask for, in seconds.
    pub max_seconds: f32,
    /// Overlap of consecutive decoded segments in clips longer than one segment, in seconds, for
    /// the `prior` sampler (the `bank` walk's overlaps are fixed by the training hop).
    pub crossfade_seconds: f32,
    /// Cross-fade of the `bank` sampler's walk over a segment bank, whose overlaps hold the same
    /// stretch of a track twice, in seconds: a short fade at each overlap's centre, so the two
    /// decodings are not averaged into a smoother clip (see `segments`). A tiled bank's walk is
    /// decoded in one pass with no fade, but a morph over it hands over from each tile's decode to
    /// the next across this fade (see `tile_windows`).
    pub walk_crossfade_seconds: f32,
    /// Largest accepted `POST /generate` body, in bytes; beyond it: 413.
    pub max_body_bytes: usize,
    /// Seconds a stopping server waits for in-flight requests.
    pub shutdown_timeout_seconds: u64,
    /// Turns the playground page (`GET /`) off, for API-only deployments; `/` is then a 404.
    pub no_ui: bool,
    /// Leaves out the bundle's postfilter (`melfuse_audio::postfilter`): clips are the decoder's
    /// output as it is, to hear or measure what the postfilter adds.
    pub no_postfilter: bool,
    /// Vocoder settings; `griffin_lim_iters` is the default of requests that do not say.
    pub vocoder: VocoderConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/demo"),
            bind: "0.0.0.0:8080".into(),
            device: DeviceChoice::Cpu,
            max_batch: 16,
            max_wait_ms: 5,
            queue_capacity: 64,
            request_timeout_ms: 30_000,
            vocoder_threads: 0,
            decoder_threads: 0,
            http_workers: 0,
            default_seconds: 15.0,
            max_seconds: 120.0,
            crossfade_seconds: 1.0,
            walk_crossfade_seconds: 0.25,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_seconds: 30,
            no_ui: false,
            no_postfilter: false,
            vocoder: VocoderConfig::default(),
        }
    }
}

impl ServeConfig {
    /// Reads a TOML file; missing fields keep their defaults, unknown ones are refused.
    pub fn load(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks the bounds that a TOML file or a flag could break, naming the field.
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |field: &str, detail: String| Err(ServeError::Config(format!("{field}: {detail}")));
        if self.max_batch == 0 {
            return bad("max_batch", "must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1".into());
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms", "must be at least 1".into());
        }
        if !(self.max_seconds.is_finite() && self.max_seconds >= melfuse_proto::api::request::MIN_SECONDS) {
            return bad("max_seconds", format!("{} is not a clip length", self.max_seconds));
        }
        if !(self.default_seconds.is_finite()
            && (melfuse_proto::api::request::MIN_SECONDS..=self.max_seconds).contains(&self.default_seconds))
        {
            return bad("default_seconds", format!("{} must lie in (0, max_seconds]", self.default_seconds));
        }
        for (field, seconds) in
            [("crossfade_seconds", self.crossfade_seconds), ("walk_crossfade_seconds", self.walk_crossfade_seconds)]
        {
            if !(seconds.is_finite() && seconds >= 0.0) {
                return bad(field, format!("{seconds} must be ≥ 0"));
            }
        }
        if !melfuse_proto::api::request::GRIFFIN_LIM_ITERS.contains(&self.vocoder.griffin_lim_iters) {
            return bad("vocoder.griffin_lim_iters", format!("{} must be 1–256", self.vocoder.griffin_lim_iters));
        }
        Ok(())
    }

    /// The request bounds this configuration implies for a model with (or without) a latent bank.
    pub fn request_limits(&self, latent_bank: bool) -> RequestLimits {
        RequestLimits {
            default_seconds: self.default_seconds,
            max_seconds: self.max_seconds,
            default_griffin_lim_iters: self.vocoder.griffin_lim_iters,
            latent_bank,
        }
    }

    /// Vocoder threads after resolving 0 to the number of CPU cores.
    pub fn resolved_vocoder_threads(&self) -> usize {
        if self.vocoder_threads > 0 {
            self.vocoder_threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:-1".parse::<DeviceChoice>().is_err());
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn toml_overrides_defaults_and_refuses_unknown_fields() {
        let config: ServeConfig =
            toml::from_str("max_batch = 4\ndevice = \"cuda:1\"\n[vocoder]\ngriffin_lim_iters = 16").unwrap();
        assert_eq!((config.max_batch, config.device, config.vocoder.griffin_lim_iters), (4, DeviceChoice::Cuda(1), 16));
        assert_eq!(config.queue_capacity, ServeConfig::default().queue_capacity);
        config.validate().unwrap();
        assert!(toml::from_str::<ServeConfig>("max_batches = 4").is_err());
        assert!(toml::from_str::<ServeConfig>("device = \"tpu\"").is_err());
    }

    #[test]
    fn the_example_file_holds_every_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("serve.example.toml");
        assert_eq!(ServeConfig::load(&path).unwrap(), ServeConfig::default());
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (ServeConfig { max_batch: 0, ..Default::default() }, "max_batch"),
            (ServeConfig { queue_capacity: 0, ..Default::default() }, "queue_capacity"),
            (ServeConfig { default_seconds: 500.0, ..Default::default() }, "default_seconds"),
            (ServeConfig { crossfade_seconds: f32::NAN, ..Default::default() }, "crossfade_seconds"),
            (ServeConfig { walk_crossfade_seconds: -0.1, ..Default::default() }, "walk_crossfade_seconds"),
        ];
        for (config, field) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(field), "{message}");
        }
    }
}
