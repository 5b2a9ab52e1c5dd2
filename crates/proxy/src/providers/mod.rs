//! The seam between the gateway and a model provider: one file per wire implementation.

mod mock;
mod openai;
pub(crate) mod upstream_url;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use http::{HeaderMap, StatusCode};

use gatecast_telemetry::FieldError;

use crate::config::{ProviderConfig, ProviderKind};

pub use mock::MockProvider;
pub use openai::OpenAiProvider;

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// One prepared call to a provider.
#[derive(Debug, Clone)]
pub struct UpstreamRequest<'a> {
    /// The exact JSON body to send.
    pub body: Bytes,
    /// The client's request headers. A provider passes on only what its wire defines: nothing
    /// for `openai` (the client authenticates to the gateway, the gateway to the provider),
    /// the `x-mock` directives for the built-in mock, as the mock server reads them.
    pub client_headers: &'a HeaderMap,
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
    /// Resolves once the status and headers have arrived. Timeouts are the caller's job.
    fn send(
        &self,
        request: UpstreamRequest<'_>,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>>;
}

/// Builds the provider `[providers.<name>]` describes; an error names the field at fault.
pub fn build(name: &str, config: &ProviderConfig) -> Result<Arc<dyn Provider>, FieldError> {
    Ok(match config.kind {
        ProviderKind::Openai => Arc::new(OpenAiProvider::new(name, config.clone())?),
        ProviderKind::Mock => Arc::new(MockProvider::new(name, config.clone())),
    })
}
