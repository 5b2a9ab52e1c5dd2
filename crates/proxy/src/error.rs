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

impl ProxyError {
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
}
