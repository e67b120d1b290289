//! Generated clips, made by the service's own [`Generator`] in-process (the same code as
//! `GET /generate` and `melfuse-serve generate`), returned as the WAV a user gets and read back
//! into samples: the judge hears what a user hears, vocoder and 16-bit rounding included.

use std::io::Cursor;
use std::sync::Arc;

use melfuse_proto::api::GenerateRequest;
use melfuse_serve::config::ServeConfig;
use melfuse_serve::generator::Generator;
use melfuse_serve::metrics::Metrics;

use crate::JudgeError;

/// One clip to generate: the request's fields as a client would send them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipRequest {
    /// `name=value` fields (`blend` or `morph`, `seed`, `seconds`, ...), `format=wav` is added.
    pub fields: Vec<(String, String)>,
}

impl ClipRequest {
    /// A request for `blend` (`cn:0.5,edm:0.5`) at `seed`, `seconds` long, plus `extra` fields.
    pub fn blend(blend: &str, seed: u64, seconds: f32, extra: &[(String, String)]) -> Self {
        Self::with("blend", blend, seed, seconds, extra)
    }

    /// A request for `morph` (`cn:1 -> edm:1`) at `seed`, `seconds` long, plus `extra` fields.
    pub fn morph(morph: &str, seed: u64, seconds: f32, extra: &[(String, String)]) -> Self {
        Self::with("morph", morph, seed, seconds, extra)
    }

    fn with(kind: &str, value: &str, seed: u64, seconds: f32, extra: &[(String, String)]) -> Self {
        let mut fields = vec![
            (kind.to_string(), value.to_string()),
            ("seed".to_string(), seed.to_string()),
            ("seconds".to_string(), seconds.to_string()),
            ("format".to_string(), "wav".to_string()),
        ];
        fields.extend(extra.iter().cloned());
        Self { fields }
    }
}

/// The bundle loaded the way the service loads it.
pub struct ServiceClips {
    generator: Arc<Generator>,
    runtime: tokio::runtime::Runtime,
}

impl ServiceClips {
    /// Starts a [`Generator`] on `config` (bundle, device, vocoder settings of the service).
    pub fn start(config: &ServeConfig) -> Result<Self, JudgeError> {
        let metrics = Metrics::new().map_err(|e| JudgeError::Service(e.to_string()))?;
        let generator = Generator::start(config, metrics).map_err(|e| JudgeError::Service(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| JudgeError::Service(format!("starting a runtime: {e}")))?;
        Ok(Self { generator: Arc::new(generator), runtime })
    }

    /// The generator (manifest, limits, latent bank).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Generates `request` and returns its samples (mono, at the bundle's rate).
    pub fn generate(&self, request: &ClipRequest) -> Result<Vec<f32>, JudgeError> {
        let manifest = self.generator.manifest();
        let parsed = GenerateRequest::from_fields(&request.fields, &manifest.genres, self.generator.limits())
            .map_err(|e| JudgeError::Request(format!("{}: {}", e.field, e.message)))?;
        let clip = self
            .runtime
            .block_on(self.generator.generate(parsed))
            .map_err(|e| JudgeError::Service(format!("generating {:?}: {e}", request.fields)))?;
        wav_samples(&clip.body)
    }
}

/// The samples of a 16-bit PCM WAV body, in [-1, 1).
pub fn wav_samples(body: &[u8]) -> Result<Vec<f32>, JudgeError> {
    let mut reader = hound::WavReader::new(Cursor::new(body)).map_err(|e| JudgeError::Service(format!("WAV: {e}")))?;
    reader
        .samples::<i16>()
        .map(|s| s.map(|v| f32::from(v) / 32_768.0))
        .collect::<Result<_, _>>()
        .map_err(|e| JudgeError::Service(format!("WAV: {e}")))
}
