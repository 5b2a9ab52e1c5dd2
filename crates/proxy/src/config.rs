//! Provider and model-alias configuration, as read from `[providers.*]` and `[models.*]`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Which wire implementation serves a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible base URL: OpenAI, Groq, Together, vLLM, Ollama, OpenRouter.
    Openai,
    /// The built-in deterministic responder; needs no network.
    Mock,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Required for `openai`; ignored by `mock`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub models: Vec<String>,
    /// `gen_ai.provider.name`; defaults to the kind (`openai`, `mock`). Set it to e.g. `groq`.
    #[serde(default)]
    pub provider_name: Option<String>,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub max_retries: u32,
    #[serde(default = "defaults::retry_on")]
    pub retry_on: Vec<u16>,
    /// First backoff step; later steps double, with jitter.
    #[serde(default = "defaults::retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Longest `Retry-After` the gateway will wait out; a longer one goes to the client.
    #[serde(default = "defaults::max_retry_after_ms")]
    pub max_retry_after_ms: u64,
    /// Largest body the gateway holds whole to read it for the record: a non-streamed answer
    /// or an error. A longer one is a 502 (or a broken answer once it has started).
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: usize,
    /// Largest single event of a stream. A stream is never limited as a whole: only what the
    /// gateway must hold at once is.
    #[serde(default = "defaults::max_sse_event_bytes")]
    pub max_sse_event_bytes: usize,
}

impl ProviderConfig {
    pub fn provider_name(&self) -> &str {
        match (&self.provider_name, self.kind) {
            (Some(name), _) => name,
            (None, ProviderKind::Openai) => "openai",
            (None, ProviderKind::Mock) => "mock",
        }
    }
}

/// `[models.<alias>]`: a name clients may send, pointing at a provider's model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAlias {
    pub provider: String,
    pub model: String,
    /// `provider/model` targets tried in order when the primary fails after its retries.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

mod defaults {
    pub fn timeout_ms() -> u64 {
        600_000
    }
    pub fn connect_timeout_ms() -> u64 {
        10_000
    }
    pub fn retry_on() -> Vec<u16> {
        vec![429, 500, 502, 503, 504]
    }
    pub fn retry_backoff_ms() -> u64 {
        200
    }
    pub fn max_retry_after_ms() -> u64 {
        10_000
    }
    pub fn max_response_bytes() -> usize {
        64 << 20
    }
    pub fn max_sse_event_bytes() -> usize {
        crate::stream::sse::DEFAULT_MAX_EVENT_BYTES
    }
}
