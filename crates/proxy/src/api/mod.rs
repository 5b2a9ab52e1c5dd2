//! The inbound APIs, one file each: how a request is read into the neutral chat form (and,
//! where a provider speaks the client's wire, kept as sent), which error shape its refusals
//! take, and how the answer is written back. Routing, retries, fallbacks, virtual keys,
//! capture, record and broadcast are shared by all of them (`proxy.rs`).

pub mod chat_completions;
pub mod completions;
pub mod count_tokens;
pub mod embeddings;
pub mod messages;
pub mod responses;

use gatecast_telemetry::record::{Operation, RequestInfo};
use http::HeaderMap;

use crate::error::{ApiShape, ProxyError};
use crate::request::{ChatRequest, NativeBody};

/// Which inbound API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApi {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages`, Anthropic's.
    Messages,
    /// `POST /v1/responses`, OpenAI's Responses API, bridged onto chat.
    Responses,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/completions`, OpenAI's legacy text completions.
    Completions,
}

impl ClientApi {
    /// The error shape of its refusals.
    pub fn shape(self) -> ApiShape {
        match self {
            ClientApi::ChatCompletions
            | ClientApi::Responses
            | ClientApi::Embeddings
            | ClientApi::Completions => ApiShape::OpenAi,
            ClientApi::Messages => ApiShape::Anthropic,
        }
    }

    /// The kind of model call, for the record and the span.
    pub fn operation(self) -> Operation {
        match self {
            ClientApi::ChatCompletions | ClientApi::Messages | ClientApi::Responses => {
                Operation::Chat
            }
            ClientApi::Embeddings => Operation::Embeddings,
            ClientApi::Completions => Operation::TextCompletion,
        }
    }

    /// The provider call an API makes when it is not chat completions: it has its own URL,
    /// and the client's body goes as sent (minus the gateway's fields).
    pub fn upstream_operation(self) -> Option<crate::dialects::Operation> {
        match self {
            ClientApi::ChatCompletions | ClientApi::Messages | ClientApi::Responses => None,
            ClientApi::Embeddings => Some(crate::dialects::Operation::Embeddings),
            ClientApi::Completions => Some(crate::dialects::Operation::Completions),
        }
    }

    /// Keeps the content only this API has (`messages` and `tools` are read for every API).
    pub(crate) fn capture(self, req: &ChatRequest, request: &mut RequestInfo, limit: usize) {
        match self {
            ClientApi::ChatCompletions | ClientApi::Messages | ClientApi::Responses => {}
            ClientApi::Embeddings => embeddings::capture(req, request, limit),
            ClientApi::Completions => completions::capture(req, request, limit),
        }
    }

    /// Fields of the client's own body that are never sent upstream, even untranslated.
    pub fn gateway_fields(self) -> &'static [&'static str] {
        match self {
            // Messages has no `user` (it has `metadata.user_id`), and Anthropic refuses
            // unknown fields.
            ClientApi::Messages => &["trace", "session_id", "user"],
            ClientApi::ChatCompletions
            | ClientApi::Responses
            | ClientApi::Embeddings
            | ClientApi::Completions => &["trace", "session_id"],
        }
    }

    /// The wire of a provider that serves this API untranslated.
    pub fn native_wire(self) -> Option<crate::dialects::Wire> {
        match self {
            ClientApi::ChatCompletions | ClientApi::Embeddings | ClientApi::Completions => None,
            ClientApi::Messages => Some(crate::dialects::Wire::AnthropicMessages),
            ClientApi::Responses => Some(crate::dialects::Wire::OpenAiResponses),
        }
    }

    pub(crate) async fn parse(
        self,
        body: &[u8],
        headers: &HeaderMap,
        turns: Option<&dyn responses::ResponseStore>,
        key: Option<&str>,
    ) -> Result<Parsed, ProxyError> {
        match self {
            ClientApi::ChatCompletions => chat_completions::parse(body, headers),
            ClientApi::Messages => messages::parse(body, headers),
            ClientApi::Responses => responses::parse(body, headers, turns, key).await,
            ClientApi::Embeddings => embeddings::parse(body, headers),
            ClientApi::Completions => completions::parse(body, headers),
        }
    }
}

/// A request read by its API, ready for the shared path.
pub(crate) struct Parsed {
    pub api: ClientApi,
    /// The request in the neutral chat form: what the record reads and what providers of
    /// another wire are sent.
    pub req: ChatRequest,
    /// The client's own body, for a provider that speaks the client's wire.
    pub native: Option<NativeBody>,
    /// A Responses turn: how its answer is written and kept.
    pub responses: Option<responses::ResponsesTurn>,
}
