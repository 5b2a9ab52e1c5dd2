//! Anthropic's error bodies as OpenAI's.
//!
//! OpenAI's SDKs pick the exception by the status, and show `message`; `type` and `code` are
//! for whoever reads the body. The provider's message is kept: it is what tells the client
//! what to fix.

use serde::{Deserialize, Serialize};

/// How much of a body that is not Anthropic's error shape the message quotes.
const QUOTED_BODY_CHARS: usize = 512;

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// OpenAI's `{"error":{...}}`; `param` is always null, Anthropic does not name one.
#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
pub(super) struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<()>,
    code: Option<&'static str>,
}

impl<'a> OpenAiError<'a> {
    /// The error for an Anthropic error `kind` (`rate_limit_error`) answered with `status`.
    pub(super) fn new(kind: &str, status: u16, message: &'a str) -> Self {
        let (kind, code) = match kind {
            "invalid_request_error" => ("invalid_request_error", None),
            "authentication_error" => ("authentication_error", Some("invalid_api_key")),
            "permission_error" => ("permission_error", Some("permission_denied")),
            "not_found_error" => ("not_found_error", Some("not_found")),
            "request_too_large" => ("invalid_request_error", Some("request_too_large")),
            "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
            "billing_error" => ("billing_error", Some("insufficient_quota")),
            "timeout_error" => ("api_error", Some("timeout")),
            "overloaded_error" => ("api_error", Some("overloaded")),
            "api_error" => ("api_error", Some("server_error")),
            _ if (400..500).contains(&status) => ("invalid_request_error", None),
            _ => ("api_error", None),
        };
        Self {
            message,
            kind,
            param: None,
            code,
        }
    }
}

/// The status and body the client gets for an Anthropic error answer. The status is kept,
/// except Anthropic's own 529 (overloaded), which OpenAI clients know as 503. A body that is
/// not Anthropic's shape (a proxy's HTML page) still becomes a valid OpenAI error, quoting
/// the start of it.
pub fn error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let status_out = if status == 529 { 503 } else { status };
    let parsed = serde_json::from_slice::<Envelope>(body).ok();
    let quoted;
    let (kind, message) = match &parsed {
        Some(Envelope { error }) => (error.kind.as_str(), error.message.as_str()),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            quoted = if text.is_empty() {
                format!("the provider answered with status {status} and no body")
            } else {
                crate::error::bounded(text, QUOTED_BODY_CHARS)
            };
            ("", quoted.as_str())
        }
    };
    let body = OpenAiBody {
        error: OpenAiError::new(kind, status, message),
    };
    // A struct of strings always serialises.
    (status_out, serde_json::to_vec(&body).unwrap_or_default())
}

/// The same error as the last event of a chat stream, for an Anthropic `error` event.
pub(super) fn event(kind: &str, message: &str) -> Vec<u8> {
    let status = match kind {
        "invalid_request_error" => 400,
        _ => 500,
    };
    let mut out = b"data: ".to_vec();
    // A struct of strings always serialises.
    let _ = serde_json::to_writer(
        &mut out,
        &OpenAiBody {
            error: OpenAiError::new(kind, status, message),
        },
    );
    out.extend_from_slice(b"\n\n");
    out
}
