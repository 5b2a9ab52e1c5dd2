//! The seam between the gateway and a model provider.
//!
//! A provider is where calls go and how they are sent: [`remote::HttpProvider`] for every
//! networked kind, [`mock::MockProvider`] in-process. What is sent and how the answer reads
//! is the provider's [`Dialect`](crate::dialects::Dialect), one file per wire format in
//! `dialects/`.

mod mock;
mod remote;
pub(crate) mod upstream_url;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use http::{HeaderMap, StatusCode};
use url::Url;

use gatecast_telemetry::FieldError;

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::ProxyError;
use crate::request::ChatRequest;

pub use mock::MockProvider;
pub(crate) use remote::secret_header;
pub use remote::HttpProvider;

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// One prepared call to a provider, as its dialect wrote it.
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    /// The exact body to send.
    pub body: Bytes,
    /// Where it goes when not the provider's base chat URL (Azure's deployment URLs).
    pub url: Option<Url>,
}

/// A provider's answer once its status and headers are in; the body is still streaming.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

/// Why a provider call failed at the transport level. Messages name the provider's host and
/// never the credentials its URL may carry.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("stream broken: {0}")]
    Body(String),
}

impl UpstreamError {
    /// The fixed class an attempt span shows as `error.type`.
    pub fn class(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Body(_) => "stream_aborted",
        }
    }
}

/// Where a provider lives, for `server.address`, `server.port` and `url.full`.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Without userinfo and with query values redacted: it goes on spans.
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    fn config(&self) -> &ProviderConfig;
    fn endpoint(&self) -> &Endpoint;
    /// The wire the provider's answers are in: a client speaking it is passed through.
    fn wire(&self) -> crate::dialects::Wire;
    /// Writes the call for a chat-completions request to `model`, in the provider's wire.
    fn chat_call(&self, req: &ChatRequest, model: &str) -> Result<UpstreamCall, ProxyError>;
    /// Resolves once the status and headers have arrived. Timeouts are the caller's job.
    /// `client_headers` are the client's: a provider passes on only what its wire defines
    /// (the `x-mock` directives for the built-in mock; nothing for networked ones).
    fn send(
        &self,
        call: &UpstreamCall,
        client_headers: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>>;
    /// The provider's answer as chat completions: status, headers and body, whole or
    /// streamed. The identity for OpenAI's wire.
    fn chat_response(&self, response: UpstreamResponse) -> UpstreamResponse;
}

/// Builds the provider `[providers.<name>]` describes; an error names the field at fault.
pub fn build(name: &str, config: &ProviderConfig) -> Result<Arc<dyn Provider>, FieldError> {
    use crate::dialects::{anthropic, azure, openai};
    let at = |e: FieldError| e.under(&format!("providers.{name}"));
    Ok(match &config.kind {
        ProviderKind::Openai(kind) => Arc::new(openai::provider(name, config, kind).map_err(at)?),
        ProviderKind::Anthropic(kind) => {
            Arc::new(anthropic::provider(name, config, kind).map_err(at)?)
        }
        ProviderKind::Azure(kind) => Arc::new(azure::provider(name, config, kind).map_err(at)?),
        ProviderKind::Mock => Arc::new(MockProvider::new(name, config.clone())),
    })
}
