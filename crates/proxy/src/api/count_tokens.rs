//! `POST /v1/messages/count_tokens`, Anthropic's: to an Anthropic provider the body goes to
//! its `/v1/messages/count_tokens` as sent (minus the gateway's fields, with the provider's
//! model name) and the answer comes back unchanged; for any other provider the answer is the
//! documented estimate of `convert::messages_to_chat::count_tokens`.
//!
//! A count is not a model call: it is not traced as a generation and spends nothing (the
//! gateway's request metrics count it). Every refusal is in Anthropic's shape.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response};
use serde::Deserialize;

use crate::body::ProxyBody;
use crate::convert::messages_to_chat;
use crate::dialects::{Operation, Wire};
use crate::error::{ApiShape, ProxyError};
use crate::providers::{UpstreamError, UpstreamResponse};
use crate::request::NativeBody;
use crate::routing::{Router, Target};

/// Provider response headers a client may rely on.
const PASSED_HEADERS: [&str; 3] = ["request-id", "retry-after", "anthropic-organization-id"];

pub(crate) async fn serve(
    router: &Router,
    body: &[u8],
    headers: &HeaderMap,
) -> Response<ProxyBody> {
    match count(router, body, headers).await {
        Ok(response) => response,
        Err(error) => refusal(&error),
    }
}

async fn count(
    router: &Router,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Response<ProxyBody>, ProxyError> {
    let native = NativeBody::parse(body)?;
    let model = model_of(body)?;
    let route = router
        .resolve(&model)
        .ok_or_else(|| ProxyError::model_not_found(&model))?;
    let mut last = None;
    for target in &route.targets {
        let speaks_messages = target
            .provider
            .native_call(Wire::AnthropicMessages, Bytes::new(), headers)
            .is_some();
        if !speaks_messages {
            // The first target that is not Anthropic's answers with the estimate, as it would
            // serve the request itself.
            let counted = messages_to_chat::count_tokens(body)?;
            return Ok(json_response(http::StatusCode::OK, Bytes::from(counted)));
        }
        match forward(target, &native, headers).await {
            Ok(response) => return Ok(response),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| ProxyError::model_not_found(&model)))
}

/// `model`, required and a string, read without touching the rest of the body.
fn model_of(body: &[u8]) -> Result<String, ProxyError> {
    #[derive(Deserialize)]
    struct Model {
        model: Option<serde_json::Value>,
    }
    let invalid = || ProxyError::InvalidRequest {
        message: "model: field required (a string)".into(),
        param: Some("model".into()),
    };
    let view: Model = serde_json::from_slice(body).map_err(|e| ProxyError::InvalidRequest {
        message: format!("invalid JSON body: {e}"),
        param: None,
    })?;
    match view.model {
        Some(serde_json::Value::String(model)) if !model.is_empty() => Ok(model),
        _ => Err(invalid()),
    }
}

/// One try at an Anthropic provider within its timeout; its answer, whatever the status,
/// goes back as it came (it is already in Anthropic's shape). No answer lets the next
/// target try.
async fn forward(
    target: &Target,
    native: &NativeBody,
    client_headers: &HeaderMap,
) -> Result<Response<ProxyBody>, ProxyError> {
    let provider = &target.provider;
    let cfg = provider.config();
    let call = provider.operation_call(Operation::CountTokens, &target.model, &|model| {
        native.write(model, super::ClientApi::Messages.gateway_fields())
    })?;
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let unanswered = |e: UpstreamError| match e {
        UpstreamError::Timeout => ProxyError::Timeout {
            provider: provider.name().to_owned(),
            timeout_ms: cfg.timeout_ms,
        },
        other => ProxyError::Unreachable {
            provider: provider.name().to_owned(),
            detail: other.class().to_owned(),
        },
    };
    let answer = async {
        let response = provider.send(&call, client_headers).await?;
        collect(response, cfg.max_response_bytes).await
    };
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(Collected::Failed(e))) => Err(unanswered(e)),
        Ok(Err(Collected::TooLarge(length))) => Err(ProxyError::ResponseTooLarge {
            provider: provider.name().to_owned(),
            length,
            limit: cfg.max_response_bytes,
        }),
        Err(_) => Err(unanswered(UpstreamError::Timeout)),
    }
}

enum Collected {
    Failed(UpstreamError),
    TooLarge(u64),
}

impl From<UpstreamError> for Collected {
    fn from(e: UpstreamError) -> Self {
        Collected::Failed(e)
    }
}

/// Reads a count's answer whole (a few bytes), within `limit`.
async fn collect(head: UpstreamResponse, limit: usize) -> Result<Response<ProxyBody>, Collected> {
    let mut body = head.body;
    let mut held = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if held.len() + chunk.len() > limit {
            return Err(Collected::TooLarge((held.len() + chunk.len()) as u64));
        }
        held.extend_from_slice(&chunk);
    }
    let mut response = json_response(head.status, held.freeze());
    for name in PASSED_HEADERS {
        if let Some(value) = head.headers.get(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}

fn json_response(status: http::StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A refusal in Anthropic's shape.
fn refusal(error: &ProxyError) -> Response<ProxyBody> {
    error
        .api_error()
        .response(ApiShape::Anthropic)
        .map(ProxyBody::full)
}
