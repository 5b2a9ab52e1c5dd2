//! A provider's OpenAI-shaped error, as an Anthropic client reads it:
//! `{"type":"error","error":{"type","message"}}`, the type named after the status.
//!
//! The status itself is kept as the provider sent it; the Anthropic SDKs pick their exception
//! class from it (429 `RateLimitError`, 529 `OverloadedError`).

use bytes::BytesMut;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::convert::chat::{error_fields, write_event};
use crate::error::ApiError;

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        // An unsupported content type or method is still the client's request at fault.
        405 | 408 | 415 | 422 => "invalid_request_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// The gateway's own refusal (a bad request, an unknown model, an unreachable provider) as
/// an Anthropic client reads it.
pub fn api_error(error: &ApiError) -> Vec<u8> {
    body(error_type(error.status), &error.message)
}

/// An Anthropic error body with `kind` and `message`.
pub fn body(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&Body {
        kind: "error",
        error: Inner { kind, message },
    })
    .unwrap_or_default()
}

/// The provider's error body (OpenAI's `{"error":{"message",…}}`, or anything else) and status,
/// rewritten for an Anthropic client. A body that is not OpenAI-shaped is quoted, bounded, as
/// the message, so the client still sees what the provider said.
pub fn error(status: StatusCode, provider_body: &[u8]) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(provider_body).ok();
    let message = match (
        parsed.as_ref().and_then(|v| v.get("error")),
        parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str),
    ) {
        (Some(error), _) => error_fields(error).0,
        (None, Some(message)) => message.to_owned(),
        (None, None) => {
            let text = String::from_utf8_lossy(provider_body);
            let text = text.trim();
            if text.is_empty() {
                format!("the provider answered {status}")
            } else {
                crate::error::bounded(text, 1024)
            }
        }
    };
    body(error_type(status), &message)
}

/// An in-stream error: the `event: error` Anthropic's SDKs raise.
pub fn event(kind: &str, message: &str, out: &mut BytesMut) {
    write_event(
        out,
        "error",
        &Body {
            kind: "error",
            error: Inner { kind, message },
        },
    );
}

/// Anthropic's type for an OpenAI error object met mid-stream, where there is no status.
pub(crate) fn type_of_stream_error(openai_type: Option<&str>, code: Option<&str>) -> &'static str {
    let has = |needle: &str| {
        openai_type.is_some_and(|t| t.contains(needle)) || code.is_some_and(|c| c.contains(needle))
    };
    if has("rate_limit") || code == Some("429") {
        "rate_limit_error"
    } else if has("overloaded") || code == Some("503") || code == Some("529") {
        "overloaded_error"
    } else if has("invalid_request") || code == Some("400") {
        "invalid_request_error"
    } else if has("authentication") || code == Some("401") {
        "authentication_error"
    } else if has("permission") || code == Some("403") {
        "permission_error"
    } else {
        "api_error"
    }
}
