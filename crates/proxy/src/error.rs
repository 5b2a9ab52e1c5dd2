//! The gateway's own errors, rendered once in OpenAI's error shape.

use gatecast_telemetry::record::ErrorKind;
use http::StatusCode;
use serde_json::json;

/// Every way the gateway itself can refuse or fail a request. Provider errors are not here:
/// they pass through with the provider's own status and body.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProxyError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(String),
    /// `model` is quoted bounded: see [`ProxyError::model_not_found`].
    #[error("the model `{model}` does not exist or is not served by this gateway")]
    ModelNotFound { model: String },
    #[error("provider `{provider}` is unreachable: {detail}")]
    Unreachable { provider: String, detail: String },
    #[error("provider `{provider}` did not answer within {timeout_ms} ms")]
    Timeout { provider: String, timeout_ms: u64 },
    #[error("provider `{provider}` answered with {length} bytes, more than its max_response_bytes ({limit})")]
    ResponseTooLarge {
        provider: String,
        length: u64,
        limit: usize,
    },
}

/// How many chars of a client's model an error message quotes; the rest becomes `…`.
pub const QUOTED_MODEL_CHARS: usize = 256;

impl ProxyError {
    /// The 404 for `model`, quoting at most [`QUOTED_MODEL_CHARS`] of it: the model is the
    /// client's text, and a 10 MiB one must not come back as a 10 MiB error (nor become the
    /// span's status message).
    pub fn model_not_found(model: &str) -> Self {
        ProxyError::ModelNotFound {
            model: bounded(model, QUOTED_MODEL_CHARS),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ProxyError::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::Unreachable { .. } | ProxyError::ResponseTooLarge { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::InvalidRequest { .. } | ProxyError::PayloadTooLarge { .. } => {
                ErrorKind::InvalidRequest
            }
            ProxyError::Unauthorized(_) => ErrorKind::Unauthorized,
            ProxyError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            ProxyError::Unreachable { .. } => ErrorKind::Unreachable,
            ProxyError::Timeout { .. } => ErrorKind::Timeout,
            ProxyError::ResponseTooLarge { .. } => ErrorKind::ResponseTooLarge,
        }
    }

    /// `{"error":{"message","type","param","code"}}`, as OpenAI's SDKs expect.
    pub fn body(&self) -> Vec<u8> {
        let (kind, code, param) = match self {
            ProxyError::InvalidRequest { param, .. } => {
                ("invalid_request_error", None, param.as_deref())
            }
            ProxyError::PayloadTooLarge { .. } => {
                ("invalid_request_error", Some("request_too_large"), None)
            }
            ProxyError::Unauthorized(_) => ("authentication_error", Some("invalid_api_key"), None),
            ProxyError::ModelNotFound { .. } => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model"),
            ),
            ProxyError::Unreachable { .. } => ("api_error", Some("upstream_unreachable"), None),
            ProxyError::Timeout { .. } => ("api_error", Some("upstream_timeout"), None),
            ProxyError::ResponseTooLarge { .. } => {
                ("api_error", Some("upstream_response_too_large"), None)
            }
        };
        let body = json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}});
        body.to_string().into_bytes()
    }
}

/// `text` cut to `max_chars` chars, with `…` when anything was left out.
pub(crate) fn bounded(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_openai_shape() {
        let e = ProxyError::ModelNotFound {
            model: "nope".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_huge_model_is_quoted_bounded() {
        let short = ProxyError::model_not_found("gpt-5");
        assert_eq!(
            short,
            ProxyError::ModelNotFound {
                model: "gpt-5".into()
            }
        );
        let exact = "é".repeat(QUOTED_MODEL_CHARS);
        assert_eq!(
            ProxyError::model_not_found(&exact),
            ProxyError::ModelNotFound { model: exact }
        );
        let huge = "é".repeat(1 << 20);
        let e = ProxyError::model_not_found(&huge);
        let message = e.to_string();
        assert!(message.len() < 1024, "{}", message.len());
        let quoted = format!("`{}…`", "é".repeat(QUOTED_MODEL_CHARS));
        assert!(message.contains(&quoted), "{message}");
        assert!(e.body().len() < 1024);
    }
}
