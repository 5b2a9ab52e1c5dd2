//! Azure OpenAI: OpenAI's chat wire, addressed by deployment.
//!
//! Two URL forms: `/openai/deployments/{deployment}/chat/completions?api-version=…` (the
//! classic one; the deployment picks the model) and `/openai/v1/chat/completions` (the v1
//! API; the deployment goes in the body's `model`). Azure's content-filter results and errors
//! are already in OpenAI's shape and pass through as they are.

use std::collections::HashMap;

use bytes::Bytes;
use gatecast_telemetry::FieldError;
use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderMap;
use url::Url;

use super::{openai_chat_body, Dialect, Operation};
use crate::config::{AzureApi, AzureKind, ProviderConfig};
use crate::error::ProxyError;
use crate::providers::upstream_url::{appended, base_url};
use crate::providers::{secret_header, HttpProvider};
use crate::request::ChatRequest;

pub(crate) fn provider(
    name: &str,
    config: &ProviderConfig,
    kind: &AzureKind,
) -> Result<HttpProvider, FieldError> {
    let root = match (&kind.resource, &kind.base_url) {
        (Some(resource), None) => {
            if resource.is_empty()
                || !resource
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(FieldError::new(
                    "resource",
                    "must be an Azure resource name (letters, digits and `-`)",
                ));
            }
            format!("https://{resource}.openai.azure.com")
        }
        (None, Some(base)) => base.clone(),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "resource",
                "give `resource` or `base_url`, not both",
            ))
        }
        (None, None) => {
            return Err(FieldError::new(
                "resource",
                "`resource` or `base_url` is required for kind = \"azure\"",
            ))
        }
    };
    let root = base_url(&root).map_err(|e| FieldError::new("base_url", e))?;
    let dialect = Azure::new(&root, kind);
    let mut headers = HeaderMap::new();
    match (&kind.api_key, &kind.bearer_token) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "api_key",
                "give `api_key` or `bearer_token`, not both",
            ))
        }
        (Some(key), None) => {
            headers.insert(
                HeaderName::from_static("api-key"),
                secret_header("api_key", key)?,
            );
        }
        (None, Some(token)) => {
            headers.insert(
                AUTHORIZATION,
                secret_header("bearer_token", &format!("Bearer {token}"))?,
            );
        }
        (None, None) => {}
    }
    let base = dialect.base.clone();
    HttpProvider::new(name, config, &base, headers, Box::new(dialect))
}

struct Azure {
    api: AzureApi,
    root: Url,
    api_version: String,
    deployments: HashMap<String, String>,
    /// The chat URL of each configured deployment, built once.
    urls: HashMap<String, Url>,
    /// The URL the provider is known by: the v1 chat URL, or the first deployment's.
    base: Url,
}

impl Azure {
    fn new(root: &Url, kind: &AzureKind) -> Self {
        let mut azure = Azure {
            api: kind.api,
            root: root.clone(),
            api_version: kind.api_version.clone(),
            deployments: kind.deployments.clone().into_iter().collect(),
            urls: HashMap::new(),
            base: appended(root, "/openai/v1/chat/completions"),
        };
        if azure.api == AzureApi::Deployments {
            azure.urls = azure
                .deployments
                .values()
                .map(|d| (d.clone(), azure.deployment_url(d)))
                .collect();
            if let Some(first) = kind.deployments.values().next() {
                azure.base = azure.deployment_url(first);
            }
        }
        azure
    }

    fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments.get(model).map_or(model, String::as_str)
    }

    fn deployment_url(&self, deployment: &str) -> Url {
        self.deployment_path(deployment, &["chat", "completions"])
    }

    /// `/openai/deployments/{deployment}/{path}?api-version=…`.
    fn deployment_path(&self, deployment: &str, path: &[&str]) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["openai", "deployments", deployment])
                .extend(path);
        }
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        url
    }
}

impl Dialect for Azure {
    fn chat_body(&self, req: &ChatRequest, model: &str) -> Result<Bytes, ProxyError> {
        Ok(openai_chat_body(req, self.deployment(model)))
    }

    fn chat_url(&self, model: &str) -> Option<Url> {
        match self.api {
            AzureApi::V1 => None,
            AzureApi::Deployments => {
                let deployment = self.deployment(model);
                Some(
                    self.urls
                        .get(deployment)
                        .cloned()
                        .unwrap_or_else(|| self.deployment_url(deployment)),
                )
            }
        }
    }

    fn operation_url(&self, op: Operation, model: &str) -> Option<Url> {
        let path: &[&str] = match op {
            Operation::Embeddings => &["embeddings"],
            Operation::Completions => &["completions"],
            Operation::CountTokens => return None,
        };
        Some(match self.api {
            AzureApi::V1 => {
                let mut url = self.root.clone();
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments
                        .pop_if_empty()
                        .extend(["openai", "v1"])
                        .extend(path);
                }
                url
            }
            AzureApi::Deployments => self.deployment_path(self.deployment(model), path),
        })
    }

    fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployment(model)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kind(api: AzureApi) -> AzureKind {
        AzureKind {
            resource: None,
            base_url: Some("https://r.openai.azure.com/".into()),
            deployments: [("gpt-4o".to_owned(), "prod-4o".to_owned())].into(),
            api_version: "2024-10-21".into(),
            api,
            api_key: None,
            bearer_token: None,
        }
    }

    #[test]
    fn deployment_urls_name_the_deployment_and_the_api_version() {
        let azure = Azure::new(
            &base_url("https://r.openai.azure.com/").unwrap(),
            &kind(AzureApi::Deployments),
        );
        assert_eq!(
            azure.chat_url("gpt-4o").unwrap().as_str(),
            "https://r.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        // A model with no deployment listed is its own deployment, escaped as a path segment.
        assert_eq!(
            azure.chat_url("my dep/x").unwrap().as_str(),
            "https://r.openai.azure.com/openai/deployments/my%20dep%2Fx/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn embeddings_and_completions_have_urls_in_both_forms() {
        let root = base_url("https://r.openai.azure.com/").unwrap();
        let deployments = Azure::new(&root, &kind(AzureApi::Deployments));
        assert_eq!(
            deployments.operation_url(Operation::Embeddings, "gpt-4o").unwrap().as_str(),
            "https://r.openai.azure.com/openai/deployments/prod-4o/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            deployments
                .operation_url(Operation::Completions, "x")
                .unwrap()
                .as_str(),
            "https://r.openai.azure.com/openai/deployments/x/completions?api-version=2024-10-21"
        );
        let v1 = Azure::new(&root, &kind(AzureApi::V1));
        assert_eq!(
            v1.operation_url(Operation::Embeddings, "gpt-4o")
                .unwrap()
                .as_str(),
            "https://r.openai.azure.com/openai/v1/embeddings"
        );
        assert_eq!(v1.upstream_model("gpt-4o"), "prod-4o");
        assert!(v1.operation_url(Operation::CountTokens, "gpt-4o").is_none());
    }

    #[test]
    fn the_v1_form_has_one_url_and_the_deployment_in_the_body() {
        let azure = Azure::new(
            &base_url("https://r.openai.azure.com").unwrap(),
            &kind(AzureApi::V1),
        );
        assert!(azure.chat_url("gpt-4o").is_none());
        assert_eq!(
            azure.base.as_str(),
            "https://r.openai.azure.com/openai/v1/chat/completions"
        );
        let req = ChatRequest::parse(br#"{"model":"gpt-4o","messages":[]}"#, None).unwrap();
        let body = azure.chat_body(&req, "gpt-4o").unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["model"], "prod-4o");
    }
}
