//! The `webhook` destination: OTLP/JSON to any URL that takes it, for receivers that are not
//! OpenTelemetry backends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, Compression, FieldError, FieldSpec, Flag, Secret, HEADERS};
use super::http::HttpSink;
use super::{
    BuildContext, BuildError, Built, ConnectionProbe, DestinationKind, DestinationType, Encoding,
    ExportProbe, Target, Transport, TypeInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    Post,
    Put,
}

/// The `webhook` type's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to send OTLP/JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `POST` (default) or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebhookMethod>,
    /// `none` (default) or `gzip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Sent with every export (credentials go here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }
}

pub static INFO: TypeInfo = TypeInfo {
    name: "webhook",
    fields: &[
        FieldSpec {
            name: "url",
            help: "where to send OTLP/JSON.",
            secret: Secret::UrlParts,
            needs_retest: true,
            flag: Flag::Value("url"),
        },
        FieldSpec {
            name: "method",
            help: "POST | PUT",
            secret: Secret::No,
            needs_retest: true,
            flag: Flag::None,
        },
        FieldSpec {
            name: "compression",
            help: "none | gzip",
            secret: Secret::No,
            needs_retest: true,
            flag: Flag::None,
        },
        HEADERS,
    ],
    parse,
};

fn parse(rest: Map<String, Value>) -> Result<DestinationKind, FieldError> {
    fields::parse::<WebhookConfig>(rest).map(DestinationKind::Webhook)
}

impl From<WebhookConfig> for DestinationKind {
    fn from(c: WebhookConfig) -> Self {
        DestinationKind::Webhook(c)
    }
}

impl DestinationType for WebhookConfig {
    fn info(&self) -> &'static TypeInfo {
        &INFO
    }

    fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error> {
        fields::to_flat(self)
    }

    fn validate(&self) -> Result<(), FieldError> {
        match self.url.as_deref().filter(|v| !v.is_empty()) {
            Some(url) => fields::check_http_url("url", url),
            None => Err(FieldError::new("url", "required for a webhook destination")),
        }
    }

    fn target(&self) -> Option<Target> {
        Some(Target {
            field: "url",
            url: url::Url::parse(self.url.as_deref().unwrap_or_default()).ok(),
        })
    }

    /// Webhook receivers often reject an empty export; a 400 still proves the URL and the
    /// credentials reach them.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Built, BuildError> {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let method = match self.method.unwrap_or(WebhookMethod::Post) {
            WebhookMethod::Post => reqwest::Method::POST,
            WebhookMethod::Put => reqwest::Method::PUT,
        };
        let sink = HttpSink::new(
            self.url.as_deref().unwrap_or_default(),
            method,
            &headers,
            Encoding::Json,
            self.compression == Some(Compression::Gzip),
            ctx.timeout,
            ctx.hosts,
        )
        .map_err(|e| BuildError::Field(FieldError::new("url", e)))?;
        Ok(Built {
            sink: Transport::Http(sink),
            probe: ConnectionProbe::EmptyExport(ExportProbe {
                also_passes: Some((
                    400,
                    "the webhook refused the empty test export, which proves it is reachable",
                )),
                ..ExportProbe::default()
            }),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = self.headers.values().cloned().collect();
        found.extend(self.url.iter().flat_map(|u| fields::url_secrets(u)));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_registered_with_its_fields() {
        let mut example = WebhookConfig::new("http://h/hook");
        example.method = Some(WebhookMethod::Put);
        example.compression = Some(Compression::Gzip);
        example.headers.insert("a".into(), "b".into());
        crate::destinations::assert_registered(example.into());
    }
}
