//! Provider and model-alias configuration, as read from `[providers.*]` and `[models.*]`.
//!
//! A provider table is the keys every kind shares ([`ProviderConfig`]'s own fields) plus the
//! keys of its `kind` ([`ProviderKind`]), each set with `deny_unknown_fields`. The two are read
//! apart, as destinations are, so an error names the key at fault.

use std::collections::BTreeMap;

use gatecast_telemetry::FieldError;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A provider: how to reach it (`kind` and its keys) and how to treat it (the shared keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct ProviderConfig {
    /// The wire format and its addressing; set from `kind` and the kind's own keys.
    #[serde(skip, default)]
    pub kind: ProviderKind,
    /// Extra headers sent on every call, such as `anthropic-beta` or `OpenAI-Organization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub models: Vec<String>,
    /// `gen_ai.provider.name`; defaults to the kind's (`openai`, `anthropic`,
    /// `azure.ai.openai`, `mock`). Set it to e.g. `groq` for an OpenAI-compatible service.
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

/// `kind` and the keys only that kind takes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ProviderKind {
    /// Any OpenAI-compatible base URL: OpenAI, Groq, Together, vLLM, Ollama, OpenRouter.
    Openai(OpenAiKind),
    /// Anthropic's Messages API, translated to and from chat completions.
    Anthropic(AnthropicKind),
    /// Azure OpenAI: deployments addressed by URL, `api-key` or bearer auth.
    Azure(AzureKind),
    /// The built-in deterministic responder; needs no network.
    #[default]
    Mock,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiKind {
    /// The API root, `/chat/completions` is appended: `https://api.openai.com/v1`. Required;
    /// optional here only so its absence is reported at `base_url`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    /// The provider serves OpenAI's Responses API at `{base_url}/responses` (OpenAI does):
    /// Responses clients are then passed through instead of bridged onto chat.
    #[serde(default)]
    pub responses: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicKind {
    /// The API root without `/v1`, as Anthropic's SDKs take it.
    #[serde(default = "defaults::anthropic_base_url")]
    pub base_url: String,
    /// Sent as `x-api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "defaults::anthropic_version")]
    pub anthropic_version: String,
    /// Anthropic requires `max_tokens`; this is sent when the client gives none.
    #[serde(default = "defaults::anthropic_max_tokens")]
    pub default_max_tokens: u64,
    /// `thinking.budget_tokens` for `reasoning_effort` low, medium and high.
    #[serde(default = "defaults::thinking_budgets")]
    pub thinking_budgets: ThinkingBudgets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkingBudgets {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureKind {
    /// `https://{resource}.openai.azure.com`; give this or `base_url`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The resource's root, for custom domains and proxies: `https://my.example.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model name (as clients send it) to deployment name; a model not listed is used as
    /// the deployment name.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// `api-version` of the deployment URL form.
    #[serde(default = "defaults::azure_api_version")]
    pub api_version: String,
    /// `deployments` (`/openai/deployments/{d}/chat/completions?api-version=`) or `v1`
    /// (`/openai/v1/chat/completions`, the deployment in the body's `model`).
    #[serde(default)]
    pub api: AzureApi,
    /// Sent as `api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// An Entra ID token, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub bearer_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AzureApi {
    #[default]
    Deployments,
    V1,
}

/// The `kind` values, for error messages.
const KINDS: &str = "`openai`, `anthropic`, `azure` or `mock`";

/// The keys every kind shares: those of [`ProviderConfig`] itself.
const COMMON_FIELDS: [&str; 12] = [
    "headers",
    "models",
    "provider_name",
    "timeout_ms",
    "connect_timeout_ms",
    "max_retries",
    "retry_on",
    "retry_backoff_ms",
    "max_retry_after_ms",
    "max_response_bytes",
    "max_sse_event_bytes",
    "kind",
];

impl ProviderConfig {
    /// Reads one `[providers.NAME]` table; the error's path is the key at fault.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self, FieldError> {
        let kind = match map.remove("kind") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(FieldError::new("kind", format!("must be one of {KINDS}"))),
            None => return Err(FieldError::new("kind", format!("is required: {KINDS}"))),
        };
        let (common, own): (Map<String, Value>, Map<String, Value>) = map
            .into_iter()
            .partition(|(k, _)| COMMON_FIELDS.contains(&k.as_str()));
        let mut config = shared(common)?;
        config.kind = match kind.as_str() {
            "openai" => ProviderKind::Openai(tracked(own)?),
            "anthropic" => ProviderKind::Anthropic(tracked(own)?),
            "azure" => ProviderKind::Azure(tracked(own)?),
            "mock" => {
                let _: MockKind = tracked(own)?;
                ProviderKind::Mock
            }
            other => {
                return Err(FieldError::new(
                    "kind",
                    format!("unknown kind `{other}`: expected {KINDS}"),
                ))
            }
        };
        Ok(config)
    }

    /// A provider of `kind` with every shared key at its default.
    pub fn new(kind: ProviderKind) -> Self {
        let mut config =
            shared(Map::new()).unwrap_or_else(|_| unreachable!("every shared key has a default"));
        config.kind = kind;
        config
    }

    /// `gen_ai.provider.name`: the configured name, else the kind's well-known one.
    pub fn provider_name(&self) -> &str {
        if let Some(name) = &self.provider_name {
            return name;
        }
        match self.kind {
            ProviderKind::Openai(_) => "openai",
            ProviderKind::Anthropic(_) => "anthropic",
            ProviderKind::Azure(_) => "azure.ai.openai",
            ProviderKind::Mock => "mock",
        }
    }

    /// The `kind` value as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ProviderKind::Openai(_) => "openai",
            ProviderKind::Anthropic(_) => "anthropic",
            ProviderKind::Azure(_) => "azure",
            ProviderKind::Mock => "mock",
        }
    }
}

impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        ProviderConfig::from_map(map).map_err(|e| D::Error::custom(e.to_string()))
    }
}

/// `mock` takes no keys of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MockKind {}

fn tracked<T: serde::de::DeserializeOwned>(map: Map<String, Value>) -> Result<T, FieldError> {
    let mut track = serde_path_to_error::Track::new();
    T::deserialize(serde_path_to_error::Deserializer::new(
        Value::Object(map),
        &mut track,
    ))
    .map_err(|e| FieldError::from_serde(serde_path_to_error::Error::new(track.path(), e)))
}

/// The shared keys, through the derived reader (`remote = "Self"` keeps it off the trait, whose
/// impl above reads `kind` first).
fn shared(map: Map<String, Value>) -> Result<ProviderConfig, FieldError> {
    let mut track = serde_path_to_error::Track::new();
    ProviderConfig::deserialize(serde_path_to_error::Deserializer::new(
        Value::Object(map),
        &mut track,
    ))
    .map_err(|e| FieldError::from_serde(serde_path_to_error::Error::new(track.path(), e)))
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
    use super::ThinkingBudgets;

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
    pub fn anthropic_base_url() -> String {
        "https://api.anthropic.com".into()
    }
    pub fn anthropic_version() -> String {
        "2023-06-01".into()
    }
    pub fn anthropic_max_tokens() -> u64 {
        4096
    }
    pub fn thinking_budgets() -> ThinkingBudgets {
        ThinkingBudgets {
            low: 1024,
            medium: 4096,
            high: 16384,
        }
    }
    pub fn azure_api_version() -> String {
        "2024-10-21".into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProviderConfig, FieldError> {
        let value: toml::Table = toml::from_str(text).unwrap();
        let Value::Object(map) = serde_json::to_value(value).unwrap() else {
            unreachable!()
        };
        ProviderConfig::from_map(map)
    }

    #[test]
    fn each_kind_reads_its_own_keys_and_the_shared_ones() {
        let c = parse("kind = \"anthropic\"\napi_key = \"k\"\ntimeout_ms = 5").unwrap();
        assert_eq!(c.timeout_ms, 5);
        assert_eq!(c.provider_name(), "anthropic");
        let ProviderKind::Anthropic(a) = &c.kind else {
            panic!("{c:?}")
        };
        assert_eq!(a.base_url, "https://api.anthropic.com");
        assert_eq!(a.default_max_tokens, 4096);
        let c =
            parse("kind = \"azure\"\nresource = \"r\"\n[deployments]\ngpt-4o = \"prod\"").unwrap();
        assert_eq!(c.provider_name(), "azure.ai.openai");
        let c = parse("kind = \"openai\"\nbase_url = \"http://h/v1\"\nprovider_name = \"groq\"");
        assert_eq!(c.unwrap().provider_name(), "groq");
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        let cases = [
            ("kind = \"telepathy\"", "kind", "unknown kind `telepathy`"),
            ("base_url = \"x\"", "kind", "is required"),
            (
                "kind = \"openai\"\nbase_url = \"x\"\ndeployments = {}",
                "deployments",
                "unknown field `deployments`",
            ),
            (
                "kind = \"anthropic\"\ndefault_max_tokens = \"x\"",
                "default_max_tokens",
                "invalid type",
            ),
            (
                "kind = \"mock\"\ntimeout_ms = -1",
                "timeout_ms",
                "invalid value",
            ),
            (
                "kind = \"mock\"\nbase_url = \"x\"",
                "base_url",
                "unknown field",
            ),
            ("kind = \"azure\"\napi = \"v2\"", "api", "unknown variant"),
        ];
        for (text, path, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.path, path, "{text}: {e:?}");
            assert!(e.message.contains(message), "{text}: {e:?}");
        }
    }
}
