//! The inbound APIs, one file each: how a request is read into the neutral chat form (and,
//! where a provider speaks the client's wire, kept as sent), which error shape its refusals
//! take, and how the answer is written back. Routing, retries, fallbacks, virtual keys,
//! capture, record and broadcast are shared by all of them (`proxy.rs`).

pub mod chat_completions;
pub mod messages;
pub mod responses;

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
}

impl ClientApi {
    /// The error shape of its refusals.
    pub fn shape(self) -> ApiShape {
        match self {
            ClientApi::ChatCompletions | ClientApi::Responses => ApiShape::OpenAi,
            ClientApi::Messages => ApiShape::Anthropic,
        }
    }

    /// The wire of a provider that serves this API untranslated.
    pub fn native_wire(self) -> Option<crate::dialects::Wire> {
        match self {
            ClientApi::ChatCompletions | ClientApi::Responses => None,
            ClientApi::Messages => Some(crate::dialects::Wire::AnthropicMessages),
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
