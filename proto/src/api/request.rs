//! The generation request (`GET /generate?…`, `POST /generate` with JSON, `melfuse-serve generate`
//! flags), validated field by field so that every refusal names the field at fault.

use std::path::Path;

use serde_json::Value;

use super::blend::BlendSpec;
use super::error::ErrorBody;
use super::timeline::Timeline;
use crate::generation::Sampler;

/// Highest accepted `temperature` (DESIGN.md: 0–2).
pub const MAX_TEMPERATURE: f32 = 2.0;
/// Default `temperature`.
pub const DEFAULT_TEMPERATURE: f32 = 1.0;
/// Accepted `griffin_lim_iters` (DESIGN.md: 1–256).
pub const GRIFFIN_LIM_ITERS: std::ops::RangeInclusive<usize> = 1..=256;
/// Shortest clip that may be asked for, in seconds.
pub const MIN_SECONDS: f32 = 0.1;

/// Every field a generation request may carry.
pub const FIELDS: [&str; 8] =
    ["blend", "morph", "seed", "temperature", "griffin_lim_iters", "format", "seconds", "sampler"];

/// What the response body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// 16-bit PCM WAV at the model's sample rate (`audio/wav`).
    Wav,
    /// The dB mel spectrogram as a colour-mapped PNG, low frequencies at the bottom (`image/png`).
    Png,
    /// The dB mel spectrogram as a float32 `[n_mels, frames]` NumPy array (`application/x-npy`).
    Npy,
}

impl OutputFormat {
    /// Every format, in documentation order.
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Wav, OutputFormat::Png, OutputFormat::Npy];

    /// The name used in `format=` and as a file extension.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Wav => "wav",
            OutputFormat::Png => "png",
            OutputFormat::Npy => "npy",
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Wav => "audio/wav",
            OutputFormat::Png => "image/png",
            OutputFormat::Npy => "application/x-npy",
        }
    }

    /// The format called `name` (`wav`, `png`, `npy`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format a file name's extension asks for (`clip.wav` → WAV), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension().and_then(|e| e.to_str()).and_then(|e| Self::from_name(&e.to_ascii_lowercase()))
    }
}

/// The service's bounds and defaults that requests are checked against (from its configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLimits {
    /// Clip length when `seconds` is not given.
    pub default_seconds: f32,
    /// Longest clip a request may ask for.
    pub max_seconds: f32,
    /// Griffin-Lim iterations when `griffin_lim_iters` is not given.
    pub default_griffin_lim_iters: usize,
    /// Whether the model has a latent bank: `sampler=bank` is then accepted and the default.
    pub latent_bank: bool,
}

impl RequestLimits {
    /// The sampler used when a request names none: `bank` where the model has a bank.
    pub fn default_sampler(&self) -> Sampler {
        if self.latent_bank {
            Sampler::Bank
        } else {
            Sampler::Prior
        }
    }
}

/// A generation request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The mixture along the clip (`blend`, or `morph`).
    pub timeline: Timeline,
    /// The seed, if the client chose one (else the service draws one and reports it).
    pub seed: Option<u64>,
    /// Scale of the latent noise, 0–2.
    pub temperature: f32,
    /// Griffin-Lim iterations of the vocoder.
    pub griffin_lim_iters: usize,
    /// Response body format.
    pub format: OutputFormat,
    /// Clip length in seconds.
    pub seconds: f32,
    /// How the latents are drawn.
    pub sampler: Sampler,
}

/// A refused request: which field, a stable code and a message naming the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// Stable machine-readable code, e.g. `invalid_seed`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The field at fault.
    pub field: String,
}

impl RequestError {
    fn new(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: field.into() }
    }
}

impl From<&RequestError> for ErrorBody {
    fn from(error: &RequestError) -> Self {
        ErrorBody::new(error.code, error.message.clone(), Some(&error.field))
    }
}

impl GenerateRequest {
    /// Validates `name=value` fields (a query string's pairs, or a JSON body through
    /// [`fields_from_json`]) against the model's `genres` and the service's `limits`.
    pub fn from_fields(
        fields: &[(String, String)],
        genres: &[String],
        limits: &RequestLimits,
    ) -> Result<Self, RequestError> {
        let mut values: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
        for (name, value) in fields {
            let index = FIELDS.iter().position(|f| f == name).ok_or_else(|| {
                RequestError::new(
                    "unknown_field",
                    name,
                    format!("unknown field `{name}` (known: {})", FIELDS.join(", ")),
                )
            })?;
            if values[index].replace(value).is_some() {
                return Err(RequestError::new(
                    "repeated_field",
                    name,
                    format!("field `{name}` is given more than once"),
                ));
            }
        }
        let [blend, morph, seed, temperature, griffin_lim_iters, format, seconds, sampler] = values;

        let timeline = match (blend, morph) {
            (Some(_), Some(_)) => {
                return Err(RequestError::new(
                    "conflicting_fields",
                    "morph",
                    "give either `blend` or `morph`, not both",
                ))
            }
            (None, None) => {
                return Err(RequestError::new(
                    "missing_field",
                    "blend",
                    "`blend` is required (e.g. blend=cn:0.6,edm:0.4), or `morph` for a changing blend",
                ))
            }
            (Some(text), None) => Timeline::constant(
                BlendSpec::parse(text, genres).map_err(|e| RequestError::new(e.code(), "blend", e.to_string()))?,
            ),
            (None, Some(text)) => {
                Timeline::parse_morph(text, genres).map_err(|e| RequestError::new(e.code(), "morph", e.to_string()))?
            }
        };
        let seed = seed
            .map(|text| {
                text.trim().parse::<u64>().map_err(|_| {
                    RequestError::new("invalid_seed", "seed", format!("seed `{text}` is not an integer in 0..=2^64-1"))
                })
            })
            .transpose()?;
        let temperature = match temperature {
            None => DEFAULT_TEMPERATURE,
            Some(text) => match text.trim().parse::<f32>() {
                Ok(t) if t.is_finite() && (0.0..=MAX_TEMPERATURE).contains(&t) => t,
                _ => {
                    return Err(RequestError::new(
                        "invalid_temperature",
                        "temperature",
                        format!("temperature `{text}` must be a number from 0 to {MAX_TEMPERATURE}"),
                    ))
                }
            },
        };
        let griffin_lim_iters = match griffin_lim_iters {
            None => limits.default_griffin_lim_iters,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if GRIFFIN_LIM_ITERS.contains(&n) => n,
                _ => {
                    return Err(RequestError::new(
                        "invalid_griffin_lim_iters",
                        "griffin_lim_iters",
                        format!(
                            "griffin_lim_iters `{text}` must be an integer from {} to {}",
                            GRIFFIN_LIM_ITERS.start(),
                            GRIFFIN_LIM_ITERS.end()
                        ),
                    ))
                }
            },
        };
        let format = match format {
            None => OutputFormat::Wav,
            Some(text) => OutputFormat::from_name(text.trim()).ok_or_else(|| {
                RequestError::new("unknown_format", "format", format!("unknown format `{text}` (known: wav, png, npy)"))
            })?,
        };
        let seconds = match seconds {
            None => limits.default_seconds,
            Some(text) => match text.trim().parse::<f32>() {
                Ok(s) if s.is_finite() && (MIN_SECONDS..=limits.max_seconds).contains(&s) => s,
                _ => {
                    return Err(RequestError::new(
                        "invalid_seconds",
                        "seconds",
                        format!("seconds `{text}` must be a number from {MIN_SECONDS} to {}", limits.max_seconds),
                    ))
                }
            },
        };
        let sampler = match sampler {
            None => limits.default_sampler(),
            Some(text) => match Sampler::from_name(text.trim()) {
                Some(Sampler::Bank) if !limits.latent_bank => {
                    return Err(RequestError::new(
                        "no_latent_bank",
                        "sampler",
                        "this model has no latent bank: use sampler=prior (or leave sampler out)",
                    ))
                }
                Some(sampler) => sampler,
                None => {
                    return Err(RequestError::new(
                        "unknown_sampler",
                        "sampler",
                        format!("unknown sampler `{text}` (known: bank, prior)"),
                    ))
                }
            },
        };
        Ok(Self { timeline, seed, temperature, griffin_lim_iters, format, seconds, sampler })
    }
}

/// The `name=value` fields of a `POST /generate` JSON body: strings as they are, numbers as written,
/// `null` as absent, and `blend` also as an object (`{"cn": 0.6, "edm": 0.4}`). Anything else — a
/// body that is not an object, a boolean, an array — is refused naming the field.
pub fn fields_from_json(body: &Value) -> Result<Vec<(String, String)>, RequestError> {
    let object = body
        .as_object()
        .ok_or_else(|| RequestError::new("invalid_body", "body", "the body must be a JSON object of request fields"))?;
    let mut fields = Vec::with_capacity(object.len());
    for (name, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Object(pairs) if name == "blend" => pairs
                .iter()
                .map(|(genre, weight)| match weight {
                    Value::Number(number) => Ok(format!("{genre}:{number}")),
                    Value::String(text) => Ok(format!("{genre}:{text}")),
                    _ => Err(RequestError::new(
                        "invalid_weight",
                        "blend",
                        format!("weight of genre `{genre}` must be a number, not {weight}"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(RequestError::new(
                    "invalid_type",
                    name,
                    format!("field `{name}` must be a string or a number, not {other}"),
                ))
            }
        };
        fields.push((name.clone(), text));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genres() -> Vec<String> {
        ["cn", "edm", "orchestral"].iter().map(|s| s.to_string()).collect()
    }

    fn limits() -> RequestLimits {
        RequestLimits { default_seconds: 15.0, max_seconds: 60.0, default_griffin_lim_iters: 32, latent_bank: true }
    }

    fn parse(query: &[(&str, &str)]) -> Result<GenerateRequest, RequestError> {
        let fields: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GenerateRequest::from_fields(&fields, &genres(), &limits())
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let request = parse(&[("blend", "cn:0.6,edm:0.4")]).unwrap();
        assert_eq!(request.timeline.weights_at(0.0), vec![0.6, 0.4, 0.0]);
        assert_eq!(request.seed, None);
        assert_eq!(request.temperature, 1.0);
        assert_eq!(request.griffin_lim_iters, 32);
        assert_eq!(request.format, OutputFormat::Wav);
        assert_eq!(request.seconds, 15.0);
        assert_eq!(request.sampler, Sampler::Bank, "the bank is the default where the model has one");
        assert_eq!(parse(&[("blend", "cn"), ("sampler", "prior")]).unwrap().sampler, Sampler::Prior);
        let no_bank = RequestLimits { latent_bank: false, ..limits() };
        let fields = vec![("blend".to_string(), "cn".to_string())];
        let request = GenerateRequest::from_fields(&fields, &genres(), &no_bank).unwrap();
        assert_eq!(request.sampler, Sampler::Prior, "prior where there is no bank");
        let fields = vec![("blend".into(), "cn".into()), ("sampler".into(), "bank".into())];
        let error = GenerateRequest::from_fields(&fields, &genres(), &no_bank).unwrap_err();
        assert_eq!((error.field.as_str(), error.code), ("sampler", "no_latent_bank"));
        let full = parse(&[
            ("blend", "edm"),
            ("seed", "18446744073709551615"),
            ("temperature", "0"),
            ("griffin_lim_iters", "256"),
            ("format", "npy"),
            ("seconds", "45.5"),
        ])
        .unwrap();
        assert_eq!(full.seed, Some(u64::MAX));
        assert_eq!(
            (full.temperature, full.griffin_lim_iters, full.format, full.seconds),
            (0.0, 256, OutputFormat::Npy, 45.5)
        );
        let morph = parse(&[("morph", "cn -> edm")]).unwrap();
        assert!(morph.timeline.is_morph());
    }

    #[test]
    fn every_bad_field_is_named() {
        let many_pairs = vec!["cn:1"; 10_000].join(",");
        // (query, field at fault, error code)
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![("blend", "polka:1")], "blend", "unknown_genre"),
            (vec![("blend", "cn:-1")], "blend", "invalid_weight"),
            (vec![("blend", "cn:NaN")], "blend", "invalid_weight"),
            (vec![("blend", "cn:inf")], "blend", "invalid_weight"),
            (vec![("blend", "")], "blend", "blend_empty"),
            (vec![("blend", "cn:1,cn:2")], "blend", "repeated_genre"),
            (vec![("blend", "cn:0,edm:0")], "blend", "blend_all_zero"),
            (vec![("blend", many_pairs.as_str())], "blend", "blend_too_many_pairs"),
            (vec![], "blend", "missing_field"),
            (vec![("blend", "cn"), ("morph", "cn->edm")], "morph", "conflicting_fields"),
            (vec![("morph", "cn")], "morph", "morph_too_few_stops"),
            (vec![("blend", "cn"), ("temperature", "1e9")], "temperature", "invalid_temperature"),
            (vec![("blend", "cn"), ("temperature", "-0.5")], "temperature", "invalid_temperature"),
            (vec![("blend", "cn"), ("temperature", "NaN")], "temperature", "invalid_temperature"),
            (vec![("blend", "cn"), ("seed", "seven")], "seed", "invalid_seed"),
            (vec![("blend", "cn"), ("seed", "-1")], "seed", "invalid_seed"),
            (vec![("blend", "cn"), ("griffin_lim_iters", "0")], "griffin_lim_iters", "invalid_griffin_lim_iters"),
            (vec![("blend", "cn"), ("griffin_lim_iters", "257")], "griffin_lim_iters", "invalid_griffin_lim_iters"),
            (vec![("blend", "cn"), ("format", "mp3")], "format", "unknown_format"),
            (vec![("blend", "cn"), ("seconds", "0")], "seconds", "invalid_seconds"),
            (vec![("blend", "cn"), ("seconds", "61")], "seconds", "invalid_seconds"),
            (vec![("blend", "cn"), ("seconds", "inf")], "seconds", "invalid_seconds"),
            (vec![("blend", "cn"), ("sampler", "diffusion")], "sampler", "unknown_sampler"),
            (vec![("blend", "cn"), ("colour", "red")], "colour", "unknown_field"),
            (vec![("blend", "cn"), ("blend", "edm")], "blend", "repeated_field"),
        ];
        for (query, field, code) in cases {
            let error = parse(&query).unwrap_err();
            assert_eq!((error.field.as_str(), error.code), (field, code), "{query:?}: {error}");
            assert!(!error.message.is_empty());
            let body = ErrorBody::from(&error);
            assert_eq!(body.error.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn json_bodies_map_onto_the_same_fields() {
        let body = serde_json::json!({
            "blend": {"cn": 0.6, "edm": 0.4},
            "seed": 18446744073709551615u64,
            "temperature": 0.5,
            "format": "png",
            "seconds": null,
        });
        let fields = fields_from_json(&body).unwrap();
        let request = GenerateRequest::from_fields(&fields, &genres(), &limits()).unwrap();
        assert_eq!(request.timeline.weights_at(0.0), vec![0.6, 0.4, 0.0]);
        assert_eq!(request.seed, Some(u64::MAX));
        assert_eq!((request.temperature, request.format, request.seconds), (0.5, OutputFormat::Png, 15.0));

        let as_text = fields_from_json(&serde_json::json!({"blend": "cn:0.6,edm:0.4", "seed": "7"})).unwrap();
        let request = GenerateRequest::from_fields(&as_text, &genres(), &limits()).unwrap();
        assert_eq!(request.seed, Some(7));

        let error = fields_from_json(&serde_json::json!({"blend": "cn", "seed": true})).unwrap_err();
        assert_eq!((error.field.as_str(), error.code), ("seed", "invalid_type"));
        let error = fields_from_json(&serde_json::json!({"blend": {"cn": [1]}})).unwrap_err();
        assert_eq!((error.field.as_str(), error.code), ("blend", "invalid_weight"));
        let error = fields_from_json(&serde_json::json!([1, 2])).unwrap_err();
        assert_eq!(error.field, "body");
        let fields = fields_from_json(&serde_json::json!({"blend": "cn", "seed": 1.5})).unwrap();
        let error = GenerateRequest::from_fields(&fields, &genres(), &limits()).unwrap_err();
        assert_eq!(error.field, "seed");
    }

    #[test]
    fn formats_have_names_types_and_extensions() {
        for format in OutputFormat::ALL {
            assert_eq!(OutputFormat::from_name(format.name()), Some(format));
        }
        assert_eq!(OutputFormat::from_path(Path::new("out/clip.WAV")), Some(OutputFormat::Wav));
        assert_eq!(OutputFormat::from_path(Path::new("clip.mp3")), None);
        assert_eq!(OutputFormat::Npy.content_type(), "application/x-npy");
    }
}
