//! Error answers in OpenAI's shape, so clients' error handling is exercised for real.

use bytes::Bytes;

use crate::wire::{self, ErrorBody, ErrorDetail};

/// OpenAI's `error.type` for a status, as its SDKs map them to exception classes.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        422 => "unprocessable_entity_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

pub(crate) fn body(status: u16, message: &str, param: Option<&str>) -> Bytes {
    with_code(status, message, param, None)
}

/// As [`body`], with OpenAI's machine-readable `code` (`unknown_parameter`, ...).
pub(crate) fn with_code(
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Bytes {
    let error = ErrorBody {
        error: ErrorDetail {
            message,
            kind: error_type(status),
            param,
            code,
        },
    };
    Bytes::from(wire::to_bytes(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_openai() {
        let v: serde_json::Value =
            serde_json::from_slice(&body(429, "mock error 429", None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "mock error 429", "type": "rate_limit_error", "param": null, "code": null}})
        );
        assert_eq!(error_type(503), "server_error");
        assert_eq!(error_type(400), "invalid_request_error");
    }
}
