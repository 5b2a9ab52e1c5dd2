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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn convert(status: u16, body: &[u8]) -> (u16, Value) {
        let (status, out) = error(status, body);
        (status, serde_json::from_slice(&out).unwrap())
    }

    fn anthropic(kind: &str, message: &str) -> Vec<u8> {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_anthropic_error_type_has_an_openai_type_and_code() {
        for (status, kind, openai_type, code) in [
            (
                400,
                "invalid_request_error",
                "invalid_request_error",
                Value::Null,
            ),
            (
                401,
                "authentication_error",
                "authentication_error",
                json!("invalid_api_key"),
            ),
            (
                402,
                "billing_error",
                "billing_error",
                json!("insufficient_quota"),
            ),
            (
                403,
                "permission_error",
                "permission_error",
                json!("permission_denied"),
            ),
            (
                404,
                "not_found_error",
                "not_found_error",
                json!("not_found"),
            ),
            (
                413,
                "request_too_large",
                "invalid_request_error",
                json!("request_too_large"),
            ),
            (
                429,
                "rate_limit_error",
                "rate_limit_error",
                json!("rate_limit_exceeded"),
            ),
            (500, "api_error", "api_error", json!("server_error")),
            (504, "timeout_error", "api_error", json!("timeout")),
        ] {
            let (out_status, body) = convert(status, &anthropic(kind, "what went wrong"));
            assert_eq!(out_status, status, "{kind}");
            assert_eq!(
                body,
                json!({"error": {"message": "what went wrong", "type": openai_type,
                                 "param": null, "code": code}}),
                "{kind}"
            );
        }
    }

    #[test]
    fn overloaded_529_becomes_503() {
        let (status, body) = convert(529, &anthropic("overloaded_error", "Overloaded"));
        assert_eq!(status, 503);
        assert_eq!(
            body,
            json!({"error": {"message": "Overloaded", "type": "api_error", "param": null,
                             "code": "overloaded"}})
        );
    }

    #[test]
    fn a_body_of_another_shape_still_gives_an_openai_error() {
        let (status, body) = convert(502, b"<html>Bad Gateway</html>\n");
        assert_eq!(status, 502);
        assert_eq!(
            body,
            json!({"error": {"message": "<html>Bad Gateway</html>", "type": "api_error",
                             "param": null, "code": null}})
        );
        let (_, body) = convert(418, b"");
        assert_eq!(
            body["error"]["message"],
            "the provider answered with status 418 and no body"
        );
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let (_, body) = convert(500, &[b'x'; 10_000]);
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(
            message.chars().count(),
            QUOTED_BODY_CHARS + 1,
            "clipped, with `…`"
        );
        let (_, body) = convert(500, &[0xff, 0xfe, b'a']);
        assert!(body["error"]["message"].as_str().unwrap().ends_with('a'));
        let (_, body) = convert(400, br#"{"error": "flat"}"#);
        assert_eq!(body["error"]["message"], r#"{"error": "flat"}"#);
    }

    proptest::proptest! {
        #[test]
        fn any_body_gives_an_openai_error(status in 100u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let (_, out) = error(status, &body);
            let v: Value = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert!(v["error"]["message"].is_string());
            proptest::prop_assert!(v["error"]["type"].is_string());
        }
    }
}
