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

/// A client API's wire that a provider may speak as it is, so its requests pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    AnthropicMessages,
    OpenAiResponses,
}

/// A call other than chat completions, addressed at its own URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI's `POST /embeddings`.
    Embeddings,
    /// OpenAI's legacy `POST /completions`.
    Completions,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
}

impl Operation {
    /// How an error names what a provider does not serve.
    pub fn describe(self) -> &'static str {
        match self {
            Operation::Embeddings => "embeddings",
            Operation::Completions => "legacy text completions (/v1/completions)",
            Operation::CountTokens => "token counting (/v1/messages/count_tokens)",
        }
    }
}

pub trait Dialect: Send + Sync + 'static {
    /// Where a request in `wire` goes when the provider speaks it untranslated.
    fn native_url(&self, _wire: Wire) -> Option<Url> {
        None
    }
    /// The client's headers a pass-through in `wire` carries on (Anthropic's betas).
    fn client_headers(&self, _wire: Wire) -> &'static [&'static str] {
        &[]
    }
    /// The body of a chat-completions request for `model`, in this wire.
    fn chat_body(&self, req: &ChatRequest, model: &str) -> Result<Bytes, ProxyError>;
    /// Where a chat call for `model` goes, when not the provider's base chat URL.
    fn chat_url(&self, _model: &str) -> Option<Url> {
        None
    }
    /// Where a call of `op` for `model` goes; `None` when this wire does not serve it. The
    /// body is the client's, in the client's own wire, with [`Dialect::upstream_model`].
    fn operation_url(&self, _op: Operation, _model: &str) -> Option<Url> {
        None
    }
    /// The name a body sent by [`Dialect::operation_url`] carries for `model` (Azure's
    /// deployment).
    fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        model
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
