//! Errors as client APIs answer them: one [`ApiError`] value, rendered by the route's
//! [`ApiShape`], and the proxy's own refusals ([`ProxyError`]), which lower to it.
//!
//! Every error body the gateway writes (a proxy rejection, a guard or auth refusal, a 404 or
//! 405, a caught panic, the shutdown's 503 and last stream event) goes through
//! [`ApiShape::body`] or [`ApiShape::event`]. The one exception is the tee's event for a
//! provider event too large to pass, a constant its tests compare bytes with. A second
//! inbound API is one more [`ApiShape`] variant with its arms in those two functions.

use std::borrow::Cow;

use bytes::Bytes;
use gatecast_telemetry::record::ErrorKind;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use serde::Serialize;

/// Which client API an answer is written for, chosen per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiShape {
    /// `{"error":{"message","type","param","code"}}`, as OpenAI's SDKs read it.
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`, the type named after the status
    /// (`invalid_request_error`, `authentication_error`, `rate_limit_error`,
    /// `overloaded_error`, ...), and stream errors as `event: error`.
    Anthropic,
}

/// The class of an error, as OpenAI's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    /// The admin API's unknown names and routes.
    NotFound,
    /// The admin API's clashes with what is stored.
    Conflict,
    /// Out of money to spend: a virtual key over its budget (a 429, as OpenAI's own).
    InsufficientQuota,
    /// The gateway or the provider failed, not the request.
    Api,
}

impl ErrorType {
    pub fn openai(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Authentication => "authentication_error",
            ErrorType::NotFound => "not_found_error",
            ErrorType::Conflict => "conflict_error",
            ErrorType::InsufficientQuota => "insufficient_quota",
            ErrorType::Api => "api_error",
        }
    }
}

/// One error as a client is told it, whatever refused the request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    /// A machine-readable reason (`model_not_found`, `invalid_api_key`), when there is one.
    pub code: Option<&'static str>,
    /// The request field at fault.
    pub param: Option<Cow<'static, str>>,
    pub message: Cow<'static, str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorType, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            kind,
            code: None,
            param: None,
            message: message.into(),
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The whole answer in `shape`: status, `Content-Type` and body. Map the body into the
    /// response type at hand (`ProxyBody::full`, axum's `Body::from`).
    pub fn response(&self, shape: ApiShape) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from(shape.body(self)));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

impl ApiShape {
    /// The error as a response body.
    pub fn body(self, error: &ApiError) -> Vec<u8> {
        match self {
            ApiShape::OpenAi => json(&OpenAiBody {
                error: OpenAiError::from(error),
            }),
            ApiShape::Anthropic => crate::convert::messages_to_chat::error::api_error(error),
        }
    }

    /// The error as the last event of a stream, which SDKs raise as an API error.
    pub fn event(self, error: &ApiError) -> Vec<u8> {
        match self {
            ApiShape::OpenAi => {
                let mut event = b"data: ".to_vec();
                event.extend_from_slice(&self.body(error));
                event.extend_from_slice(b"\n\n");
                event
            }
            ApiShape::Anthropic => {
                let mut event = bytes::BytesMut::new();
                crate::convert::messages_to_chat::error::event(
                    crate::convert::messages_to_chat::error::error_type(error.status),
                    &error.message,
                    &mut event,
                );
                event.to_vec()
            }
        }
    }
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

/// The object under OpenAI's `"error"` key, for bodies that carry more beside it (the admin
/// API's connection-test report). Its keys are written in the order the bodies have always
/// had (sorted, as `serde_json`'s map wrote them), so that they stay byte for byte the same.
#[derive(Serialize)]
pub struct OpenAiError<'a> {
    code: Option<&'a str>,
    message: &'a str,
    param: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl<'a> From<&'a ApiError> for OpenAiError<'a> {
    fn from(e: &'a ApiError) -> Self {
        Self {
            code: e.code,
            message: &e.message,
            param: e.param.as_deref(),
            kind: e.kind.openai(),
        }
    }
}

/// Structs of strings always serialize, so the empty body is never written; it only spares
/// the request path a panic.
fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Every way the proxy itself can refuse or fail a request. Provider errors are not here:
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
    /// Something the gateway itself needs (the store of Responses turns) cannot be reached.
    #[error("{message}")]
    Unavailable { message: String },
    /// The key's spend in its budget's period has reached the budget.
    #[error("{}", budget_message(key, period, *budget_usd, *spent_usd, resets_at.as_deref()))]
    BudgetExceeded {
        key: String,
        /// How the period's budget is called: `daily`, `weekly`, `monthly`, `total`.
        period: &'static str,
        budget_usd: f64,
        spent_usd: f64,
        /// When the period ends (`2026-05-05 00:00:00 UTC`); `None` for a total budget.
        resets_at: Option<String>,
    },
}

fn budget_message(
    key: &str,
    period: &str,
    budget_usd: f64,
    spent_usd: f64,
    resets_at: Option<&str>,
) -> String {
    let when = match resets_at {
        Some(at) => format!("it resets at {at}"),
        None => "a total budget does not reset: an operator can raise or clear it".to_owned(),
    };
    format!(
        "virtual key `{key}` has used its {period} budget: spent ${} of ${}; {when}",
        dollars(spent_usd),
        dollars(budget_usd)
    )
}

/// Cents for amounts of a dollar or more; below, up to micro-dollars, so that a small budget
/// is not shown as $0.00.
fn dollars(usd: f64) -> String {
    if usd.abs() >= 1.0 {
        return format!("{usd:.2}");
    }
    let mut text = format!("{usd:.6}");
    let keep = text.find('.').map_or(text.len(), |dot| dot + 3);
    while text.len() > keep && text.ends_with('0') {
        text.pop();
    }
    text
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
            ProxyError::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::Unreachable { .. } | ProxyError::ResponseTooLarge { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::InvalidRequest { .. } | ProxyError::PayloadTooLarge { .. } => {
                ErrorKind::InvalidRequest
            }
            ProxyError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            ProxyError::Unreachable { .. } => ErrorKind::Unreachable,
            ProxyError::Timeout { .. } => ErrorKind::Timeout,
            ProxyError::ResponseTooLarge { .. } => ErrorKind::ResponseTooLarge,
            ProxyError::BudgetExceeded { .. } => ErrorKind::BudgetExceeded,
            ProxyError::Unavailable { .. } => ErrorKind::Unreachable,
        }
    }

    /// What the client is told.
    pub fn api_error(&self) -> ApiError {
        let (kind, code, param) = match self {
            ProxyError::InvalidRequest { param, .. } => (
                ErrorType::InvalidRequest,
                None,
                param.clone().map(Cow::Owned),
            ),
            ProxyError::PayloadTooLarge { .. } => {
                (ErrorType::InvalidRequest, Some("request_too_large"), None)
            }
            ProxyError::ModelNotFound { .. } => (
                ErrorType::InvalidRequest,
                Some("model_not_found"),
                Some(Cow::Borrowed("model")),
            ),
            ProxyError::Unreachable { .. } => (ErrorType::Api, Some("upstream_unreachable"), None),
            ProxyError::Timeout { .. } => (ErrorType::Api, Some("upstream_timeout"), None),
            ProxyError::ResponseTooLarge { .. } => {
                (ErrorType::Api, Some("upstream_response_too_large"), None)
            }
            ProxyError::BudgetExceeded { .. } => {
                (ErrorType::InsufficientQuota, Some("budget_exceeded"), None)
            }
            ProxyError::Unavailable { .. } => (ErrorType::Api, Some("gateway_unavailable"), None),
        };
        ApiError {
            status: self.status(),
            kind,
            code,
            param,
            message: Cow::Owned(self.to_string()),
        }
    }

    /// The body in OpenAI's shape.
    pub fn body(&self) -> Vec<u8> {
        ApiShape::OpenAi.body(&self.api_error())
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

    /// The renderer writes what the `json!` maps it replaced wrote, byte for byte.
    #[test]
    fn openai_bodies_keep_their_bytes() {
        let errors = [
            ProxyError::InvalidRequest {
                message: "bad \"quote\"\nline é \u{1}".into(),
                param: Some("messages[0]".into()),
            },
            ProxyError::InvalidRequest {
                message: "no param".into(),
                param: None,
            },
            ProxyError::PayloadTooLarge { limit: 10 },
            ProxyError::model_not_found("gpt-5"),
            ProxyError::Unreachable {
                provider: "p".into(),
                detail: "refused".into(),
            },
            ProxyError::Timeout {
                provider: "p".into(),
                timeout_ms: 5,
            },
            ProxyError::ResponseTooLarge {
                provider: "p".into(),
                length: 9,
                limit: 1,
            },
            ProxyError::BudgetExceeded {
                key: "team-a".into(),
                period: "daily",
                budget_usd: 50.0,
                spent_usd: 50.25,
                resets_at: Some("2026-05-05 00:00:00 UTC".into()),
            },
        ];
        for e in errors {
            let a = e.api_error();
            let before = serde_json::json!({"error": {
                "message": e.to_string(),
                "type": a.kind.openai(),
                "param": a.param,
                "code": a.code,
            }});
            assert_eq!(String::from_utf8(e.body()).unwrap(), before.to_string());
            let event = ApiShape::OpenAi.event(&a);
            assert_eq!(event, [b"data: ", &e.body()[..], b"\n\n"].concat());
            let response = a.response(ApiShape::OpenAi);
            assert_eq!(response.status(), e.status());
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        }
    }

    /// OpenAI's own answer to an account out of credit, with what was spent and when the
    /// period resets; amounts under a dollar keep the digits that make them non-zero.
    #[test]
    fn an_exceeded_budget_is_a_429_of_insufficient_quota() {
        let e = ProxyError::BudgetExceeded {
            key: "team-a".into(),
            period: "weekly",
            budget_usd: 0.5,
            spent_usd: 0.000_125,
            resets_at: Some("2026-05-11 00:00:00 UTC".into()),
        };
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {
                "message": "virtual key `team-a` has used its weekly budget: spent $0.000125 of $0.50; it resets at 2026-05-11 00:00:00 UTC",
                "type": "insufficient_quota", "param": null, "code": "budget_exceeded"
            }})
        );
        let total = ProxyError::BudgetExceeded {
            key: "k".into(),
            period: "total",
            budget_usd: 10.0,
            spent_usd: 12.345,
            resets_at: None,
        };
        assert_eq!(
            total.to_string(),
            "virtual key `k` has used its total budget: spent $12.35 of $10.00; a total budget does not reset: an operator can raise or clear it"
        );
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
