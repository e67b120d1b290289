//! The JSON body of every error response (DESIGN.md, "HTTP API").

use serde::{Deserialize, Serialize};

use super::blend::BlendError;

/// The JSON body of every error response: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`), people (`message`) and forms (`field`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_genre`.
    pub code: String,
    /// Human-readable explanation naming the offending item.
    pub message: String,
    /// The request field at fault (e.g. `blend`); absent when the error concerns no one field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// An error body with the given code and message, about `field` if any.
    pub fn new(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self { error: ErrorDetail { code: code.into(), message: message.into(), field: field.map(Into::into) } }
    }
}

impl From<&BlendError> for ErrorBody {
    /// The 400 body for a refused `blend` parameter.
    fn from(error: &BlendError) -> Self {
        Self::new(error.code(), error.to_string(), Some("blend"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::blend::BlendSpec;

    #[test]
    fn error_body_has_the_documented_shape() {
        let err = BlendSpec::parse("polka", &["cn".to_string()]).unwrap_err();
        let json = serde_json::to_value(ErrorBody::from(&err)).unwrap();
        assert_eq!(json["error"]["code"], "unknown_genre");
        assert_eq!(json["error"]["field"], "blend");
        assert!(json["error"]["message"].as_str().unwrap().contains("polka"));
        let without_field = serde_json::to_value(ErrorBody::new("not_found", "no such route", None)).unwrap();
        assert_eq!(without_field, serde_json::json!({"error": {"code": "not_found", "message": "no such route"}}));
        let parsed: ErrorBody = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.error.field.as_deref(), Some("blend"));
    }
}
