//! Any OpenAI-compatible HTTP API.

use std::time::Duration;

use futures::future::BoxFuture;
use gatecast_telemetry::FieldError;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderMap;

use super::upstream_url::{chat_url, redacted};
use super::{Endpoint, Provider, UpstreamError, UpstreamRequest, UpstreamResponse};
use crate::config::ProviderConfig;
use crate::transport::{PoolSettings, Transport};

pub struct OpenAiProvider {
    name: String,
    config: ProviderConfig,
    endpoint: Endpoint,
    /// Sends with the provider's own credentials and extra headers. The client's
    /// `Authorization` is never forwarded: callers authenticate to the gateway, the gateway to
    /// the provider.
    transport: Transport,
}

impl OpenAiProvider {
    /// `[providers.<name>]`; an error names the field at fault. Messages never quote a
    /// key, a header value or the URL, any of which may hold a secret.
    pub fn new(name: &str, config: ProviderConfig) -> Result<Self, FieldError> {
        let at =
            |key: &str, message: &str| FieldError::new(format!("providers.{name}.{key}"), message);
        const NOT_IN_A_HEADER: &str =
            "contains characters not allowed in a header (a line break or another control character)";
        let base = config
            .base_url
            .as_deref()
            .ok_or_else(|| at("base_url", "`base_url` is required for kind = \"openai\""))?;
        let url = chat_url(base).map_err(|e| at("base_url", &e))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = config.api_key.as_deref().filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::try_from(format!("Bearer {key}"))
                .map_err(|_| at("api_key", NOT_IN_A_HEADER))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (k, v) in &config.headers {
            let key = format!("headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| at(&key, "is not a valid header name"))?;
            let value = HeaderValue::try_from(v.as_str()).map_err(|_| at(&key, NOT_IN_A_HEADER))?;
            headers.insert(name, value);
        }
        let transport = Transport::new(
            &url,
            headers,
            &PoolSettings {
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                idle_timeout: Duration::from_secs(90),
                max_idle_per_host: 256,
            },
        )
        .map_err(|e| at("base_url", &e))?;
        let endpoint = Endpoint {
            // Spans show the URL without the credentials it may carry.
            url: Some(redacted(&url).to_string()),
            host: url.host_str().map(str::to_owned),
            port: url.port_or_known_default(),
        };
        Ok(Self {
            name: name.to_owned(),
            config,
            endpoint,
            transport,
        })
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> &ProviderConfig {
        &self.config
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn send(
        &self,
        request: UpstreamRequest<'_>,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        self.transport.send(request.body)
    }
}
