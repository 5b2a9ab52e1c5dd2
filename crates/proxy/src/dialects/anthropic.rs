//! Anthropic's Messages API, for chat-completions clients: the request is written as a
//! Messages body and the answer, whole or streamed, read back as chat completions by the
//! converters in `convert/chat_to_messages/`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatecast_telemetry::FieldError;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::Dialect;
use crate::config::{AnthropicKind, ProviderConfig};
use crate::convert::adapt;
use crate::convert::chat_to_messages::{self, MessagesOptions, MessagesToChatStream};
use crate::error::ProxyError;
use crate::providers::upstream_url::{appended, base_url};
use crate::providers::{secret_header, HttpProvider, UpstreamResponse};
use crate::request::ChatRequest;

/// Anthropic's rate-limit headers under the names OpenAI clients read.
const RATE_LIMIT_HEADERS: [(&str, &str); 6] = [
    (
        "anthropic-ratelimit-requests-limit",
        "x-ratelimit-limit-requests",
    ),
    (
        "anthropic-ratelimit-requests-remaining",
        "x-ratelimit-remaining-requests",
    ),
    (
        "anthropic-ratelimit-requests-reset",
        "x-ratelimit-reset-requests",
    ),
    (
        "anthropic-ratelimit-tokens-limit",
        "x-ratelimit-limit-tokens",
    ),
    (
        "anthropic-ratelimit-tokens-remaining",
        "x-ratelimit-remaining-tokens",
    ),
    (
        "anthropic-ratelimit-tokens-reset",
        "x-ratelimit-reset-tokens",
    ),
];

pub(crate) fn provider(
    name: &str,
    config: &ProviderConfig,
    kind: &AnthropicKind,
) -> Result<HttpProvider, FieldError> {
    let root = base_url(&kind.base_url).map_err(|e| FieldError::new("base_url", e))?;
    // Anthropic's SDKs take the root without `/v1`; a root that has it is accepted too.
    let url = if root.path().trim_end_matches('/').ends_with("/v1") {
        appended(&root, "/messages")
    } else {
        appended(&root, "/v1/messages")
    };
    let mut headers = HeaderMap::new();
    if let Some(key) = kind.api_key.as_deref().filter(|k| !k.is_empty()) {
        headers.insert(
            HeaderName::from_static("x-api-key"),
            secret_header("api_key", key)?,
        );
    }
    let version = HeaderValue::try_from(kind.anthropic_version.as_str())
        .map_err(|_| FieldError::new("anthropic_version", "is not a valid header value"))?;
    headers.insert(HeaderName::from_static("anthropic-version"), version);
    if kind.default_max_tokens == 0 {
        return Err(FieldError::new(
            "default_max_tokens",
            "must be greater than 0",
        ));
    }
    let budgets = kind.thinking_budgets;
    let dialect = Anthropic {
        options: MessagesOptions {
            default_max_tokens: kind.default_max_tokens,
            thinking_budget_low: budgets.low,
            thinking_budget_medium: budgets.medium,
            thinking_budget_high: budgets.high,
        },
    };
    HttpProvider::new(name, config, &url, headers, Box::new(dialect))
}

struct Anthropic {
    options: MessagesOptions,
}

impl Dialect for Anthropic {
    fn wire(&self) -> super::Wire {
        super::Wire::AnthropicMessages
    }

    fn chat_body(&self, req: &ChatRequest, model: &str) -> Result<Bytes, ProxyError> {
        chat_to_messages::request(req, model, &self.options).map(Bytes::from)
    }

    fn chat_response(
        &self,
        response: UpstreamResponse,
        config: &ProviderConfig,
    ) -> UpstreamResponse {
        let UpstreamResponse {
            status,
            mut headers,
            body,
        } = response;
        // The converted body has its own length.
        headers.remove(CONTENT_LENGTH);
        if let Some(id) = headers.get("request-id").cloned() {
            headers.insert(HeaderName::from_static("x-request-id"), id);
        }
        for (from, to) in RATE_LIMIT_HEADERS {
            if let Some(value) = headers.get(from).cloned() {
                headers.insert(HeaderName::from_static(to), value);
            }
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !status.is_success() {
            let code = status.as_u16();
            let (mapped, _) = chat_to_messages::error(code, b"");
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let body = adapt::whole(body, config.max_response_bytes, move |b| {
                chat_to_messages::error(code, b).1
            });
            return UpstreamResponse {
                status: StatusCode::from_u16(mapped).unwrap_or(StatusCode::BAD_GATEWAY),
                headers,
                body,
            };
        }
        let streamed = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("text/event-stream"));
        let body = if streamed {
            adapt::events(
                body,
                config.max_sse_event_bytes,
                MessagesToChatStream::new(created),
            )
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            adapt::whole(body, config.max_response_bytes, move |b| {
                chat_to_messages::response(b, created).unwrap_or_else(|e| unreadable(&e))
            })
        };
        UpstreamResponse {
            status,
            headers,
            body,
        }
    }
}

/// An answer the converter could not read, as an OpenAI error body the client's SDK reports.
fn unreadable(detail: &str) -> Vec<u8> {
    serde_json::json!({"error": {
        "message": format!("the provider's answer could not be read as an Anthropic message: {detail}"),
        "type": "api_error",
        "param": null,
        "code": "upstream_unreadable",
    }})
    .to_string()
    .into_bytes()
}
