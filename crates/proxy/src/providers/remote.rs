//! Every networked provider: a transport to the provider's origin, its headers, and the
//! dialect that writes its calls and reads its answers.

use std::time::Duration;

use futures::future::BoxFuture;
use gatecast_telemetry::FieldError;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use url::Url;

use super::upstream_url::redacted;
use super::{Endpoint, Provider, UpstreamCall, UpstreamError, UpstreamResponse};
use crate::config::ProviderConfig;
use crate::dialects::Dialect;
use crate::error::ProxyError;
use crate::request::ChatRequest;
use crate::transport::{PoolSettings, Transport};

const NOT_IN_A_HEADER: &str =
    "contains characters not allowed in a header (a line break or another control character)";

pub struct HttpProvider {
    name: String,
    config: ProviderConfig,
    endpoint: Endpoint,
    /// Sends with the provider's own credentials and extra headers. The client's
    /// `Authorization` is never forwarded: callers authenticate to the gateway, the gateway to
    /// the provider.
    transport: Transport,
    dialect: Box<dyn Dialect>,
}

impl HttpProvider {
    /// `chat_url` is where chat calls go unless the dialect says otherwise; `headers` are the
    /// dialect's own (credentials, version), to which `[providers.NAME.headers]` are added.
    /// Errors name the field at fault and never quote a key, a header value or the URL.
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        chat_url: &Url,
        mut headers: HeaderMap,
        dialect: Box<dyn Dialect>,
    ) -> Result<Self, FieldError> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (k, v) in &config.headers {
            let key = format!("headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| FieldError::new(&key, "is not a valid header name"))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| FieldError::new(&key, NOT_IN_A_HEADER))?;
            headers.insert(name, value);
        }
        let transport = Transport::new(
            chat_url,
            headers,
            &PoolSettings {
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                idle_timeout: Duration::from_secs(90),
                max_idle_per_host: 256,
            },
        )
        .map_err(|e| FieldError::new("base_url", e))?;
        let endpoint = Endpoint {
            // Spans show the URL without the credentials it may carry.
            url: Some(redacted(chat_url).to_string()),
            host: chat_url.host_str().map(str::to_owned),
            port: chat_url.port_or_known_default(),
        };
        Ok(Self {
            name: name.to_owned(),
            config: config.clone(),
            endpoint,
            transport,
            dialect,
        })
    }
}

/// A credential as a header value, marked sensitive so no debug output shows it.
pub(crate) fn secret_header(field: &str, value: &str) -> Result<HeaderValue, FieldError> {
    let mut value =
        HeaderValue::try_from(value).map_err(|_| FieldError::new(field, NOT_IN_A_HEADER))?;
    value.set_sensitive(true);
    Ok(value)
}

impl Provider for HttpProvider {
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
        self.dialect.wire()
    }

    fn chat_call(&self, req: &ChatRequest, model: &str) -> Result<UpstreamCall, ProxyError> {
        Ok(UpstreamCall {
            body: self.dialect.chat_body(req, model)?,
            url: self.dialect.chat_url(model),
        })
    }

    fn send(
        &self,
        call: &UpstreamCall,
        _client_headers: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        self.transport.send(call.url.as_ref(), call.body.clone())
    }

    fn chat_response(&self, response: UpstreamResponse) -> UpstreamResponse {
        self.dialect.chat_response(response, &self.config)
    }
}
