//! Provider wire formats, one file per format: what a call's body and URL are, and how the
//! answer becomes what the client's API expects.
//!
//! Adding a provider with a new wire format is a file here (its constructor and its
//! [`Dialect`]) plus a variant of [`ProviderKind`](crate::config::ProviderKind).

pub mod anthropic;
pub mod azure;
pub mod openai;

use bytes::Bytes;
use url::Url;

use crate::config::ProviderConfig;
use crate::error::ProxyError;
use crate::providers::UpstreamResponse;
use crate::request::ChatRequest;

/// The wire a provider's answers are in before any conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAiChat,
    AnthropicMessages,
}

pub trait Dialect: Send + Sync + 'static {
    fn wire(&self) -> Wire {
        Wire::OpenAiChat
    }
    /// The body of a chat-completions request for `model`, in this wire.
    fn chat_body(&self, req: &ChatRequest, model: &str) -> Result<Bytes, ProxyError>;
    /// Where a chat call for `model` goes, when not the provider's base chat URL.
    fn chat_url(&self, _model: &str) -> Option<Url> {
        None
    }
    /// The answer as chat completions. The identity unless the wire differs.
    fn chat_response(
        &self,
        response: UpstreamResponse,
        _config: &ProviderConfig,
    ) -> UpstreamResponse {
        response
    }
}

/// OpenAI's chat wire, spoken by OpenAI, Azure and every OpenAI-compatible service: the
/// client's body goes as it came, with the gateway's own fields taken out.
pub(crate) fn openai_chat_body(req: &ChatRequest, model: &str) -> Bytes {
    Bytes::from(req.upstream_body(model))
}
