//! OpenAI's chat completions and every service compatible with it (Groq, Together, Mistral,
//! DeepSeek, Fireworks, OpenRouter, vLLM, Ollama, LM Studio): the identity dialect, so bytes
//! pass through as the client sent them.

use bytes::Bytes;
use gatecast_telemetry::FieldError;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use url::Url;

use super::{openai_chat_body, Dialect, Operation};
use crate::config::{OpenAiKind, ProviderConfig};
use crate::error::ProxyError;
use crate::providers::upstream_url::{appended, base_url, chat_url};
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
    let root = base_url(base).map_err(|e| FieldError::new("base_url", e))?;
    let mut headers = HeaderMap::new();
    if let Some(key) = kind.api_key.as_deref().filter(|k| !k.is_empty()) {
        headers.insert(
            AUTHORIZATION,
            crate::providers::secret_header("api_key", &format!("Bearer {key}"))?,
        );
    }
    let dialect = OpenAi::new(&root, kind.responses);
    HttpProvider::new(name, config, &url, headers, Box::new(dialect))
}

pub(crate) struct OpenAi {
    /// `{base_url}/embeddings` and `{base_url}/completions`, built once.
    embeddings: Url,
    completions: Url,
    /// `{base_url}/responses`, when the provider serves the Responses API.
    responses: Option<Url>,
}

impl OpenAi {
    #[cfg(test)]
    fn new_for_test(root: &Url) -> Self {
        Self::new(root, false)
    }

    fn new(root: &Url, responses: bool) -> Self {
        Self {
            embeddings: appended(root, "/embeddings"),
            completions: appended(root, "/completions"),
            responses: responses.then(|| appended(root, "/responses")),
        }
    }
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

    fn operation_url(&self, op: Operation, _model: &str) -> Option<Url> {
        match op {
            Operation::Embeddings => Some(self.embeddings.clone()),
            Operation::Completions => Some(self.completions.clone()),
            Operation::CountTokens => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn operations_sit_beside_chat_under_the_base_url_with_its_query_kept() {
        let dialect = OpenAi::new_for_test(&base_url("http://h:1/v1/?key=k").unwrap());
        let url = |op| dialect.operation_url(op, "m").map(|u| u.to_string());
        assert_eq!(
            url(Operation::Embeddings).as_deref(),
            Some("http://h:1/v1/embeddings?key=k")
        );
        assert_eq!(
            url(Operation::Completions).as_deref(),
            Some("http://h:1/v1/completions?key=k")
        );
        assert_eq!(url(Operation::CountTokens), None);
    }
}
