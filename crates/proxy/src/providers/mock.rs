//! The built-in deterministic provider: the same responder as the `gatecast-mock` server,
//! in-process, so the offline default needs no network.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use gatecast_mock::{Mock, MockReply};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::{Endpoint, Provider, UpstreamCall, UpstreamError, UpstreamResponse};
use crate::config::ProviderConfig;
use crate::error::ProxyError;
use crate::request::ChatRequest;

pub struct MockProvider {
    name: String,
    config: ProviderConfig,
    endpoint: Endpoint,
    mock: Mock,
}

impl MockProvider {
    pub fn new(name: &str, config: ProviderConfig) -> Self {
        let endpoint = Endpoint {
            url: Some("mock://builtin/chat/completions".into()),
            host: None,
            port: None,
        };
        Self {
            name: name.to_owned(),
            config,
            endpoint,
            mock: Mock::new(),
        }
    }
}

impl Provider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> &ProviderConfig {
        &self.config
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn wire(&self) -> crate::dialects::Wire {
        crate::dialects::Wire::OpenAiChat
    }

    fn chat_call(&self, req: &ChatRequest, model: &str) -> Result<UpstreamCall, ProxyError> {
        Ok(UpstreamCall {
            body: crate::dialects::openai_chat_body(req, model),
            url: None,
        })
    }

    fn chat_response(&self, response: UpstreamResponse) -> UpstreamResponse {
        response
    }

    fn send(
        &self,
        call: &UpstreamCall,
        client_headers: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap_or_default();
        let directives = client_headers
            .get(gatecast_mock::DIRECTIVES_HEADER)
            .and_then(|v| v.to_str().ok());
        let reply = self.mock.respond(&body, directives);
        async move {
            if !reply.latency.is_zero() {
                tokio::time::sleep(reply.latency).await;
            }
            Ok(into_response(reply))
        }
        .boxed()
    }
}

fn into_response(reply: MockReply) -> UpstreamResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    let body = reply
        .into_body_stream()
        .map(|r| r.map_err(|e| UpstreamError::Body(e.to_string())));
    UpstreamResponse {
        status,
        headers,
        body: Box::pin(body),
    }
}
