//! OpenAI's chat completions and every service compatible with it (Groq, Together, Mistral,
//! DeepSeek, Fireworks, OpenRouter, vLLM, Ollama, LM Studio): the identity dialect, so bytes
//! pass through as the client sent them.

use bytes::Bytes;
use gatecast_telemetry::FieldError;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::{openai_chat_body, Dialect};
use crate::config::{OpenAiKind, ProviderConfig};
use crate::error::ProxyError;
use crate::providers::upstream_url::chat_url;
use crate::providers::HttpProvider;
use crate::request::ChatRequest;

pub(crate) fn provider(
    name: &str,
    config: &ProviderConfig,
    kind: &OpenAiKind,
) -> Result<HttpProvider, FieldError> {
    let base = kind.base_url.as_deref().ok_or_else(|| {
        FieldError::new("base_url", "`base_url` is required for kind = \"openai\"")
    })?;
    let url = chat_url(base).map_err(|e| FieldError::new("base_url", e))?;
    let mut headers = HeaderMap::new();
    if let Some(key) = kind.api_key.as_deref().filter(|k| !k.is_empty()) {
        headers.insert(
            AUTHORIZATION,
            crate::providers::secret_header("api_key", &format!("Bearer {key}"))?,
        );
    }
    let responses = kind.responses.then(|| {
        let mut responses = url.clone();
        let path = responses
            .path()
            .trim_end_matches("/chat/completions")
            .to_owned();
        responses.set_path(&format!("{path}/responses"));
        responses
    });
    HttpProvider::new(name, config, &url, headers, Box::new(OpenAi { responses }))
}

pub(crate) struct OpenAi {
    /// `{base_url}/responses`, when the provider serves the Responses API.
    responses: Option<url::Url>,
}

impl Dialect for OpenAi {
    fn native_url(&self, wire: super::Wire) -> Option<url::Url> {
        match wire {
            super::Wire::OpenAiResponses => self.responses.clone(),
            super::Wire::AnthropicMessages => None,
        }
    }

    fn chat_body(&self, req: &ChatRequest, model: &str) -> Result<Bytes, ProxyError> {
        Ok(openai_chat_body(req, model))
    }
}
