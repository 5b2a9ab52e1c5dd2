//! The `sentry` destination: OTLP over HTTP to a Sentry project, addressed and
//! authenticated by its DSN. Sentry reads its own span conventions, so spans get its flavor.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, FieldError, FieldSpec, Flag, Secret, HEADERS};
use super::http::HttpSink;
use super::sentry_dsn::SentryDsn;
use super::{
    BuildContext, BuildError, Built, ConnectionProbe, DestinationKind, DestinationType, Encoding,
    ExportProbe, Flavor, Recheck, Target, Transport, TypeInfo,
};

/// How long the connection test waits before asking again. Sentry's ingest validates keys
/// asynchronously: an unknown key is accepted once and refused from then on, so only the
/// second answer says whether the DSN is right.
pub const RECHECK_DELAY: Duration = Duration::from_secs(1);

/// The `sentry` type's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentryConfig {
    /// The project's DSN; the OTLP endpoint and auth header are derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// Overrides the endpoint derived from the DSN (regional or self-hosted ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Sent with every export, beside the DSN's auth header.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl SentryConfig {
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: Some(dsn.into()),
            ..Self::default()
        }
    }

    /// The field the traces URL comes from, and the URL.
    fn endpoint(&self) -> (&'static str, String) {
        match &self.otlp_endpoint {
            Some(endpoint) => ("otlp_endpoint", endpoint.clone()),
            None => (
                "dsn",
                SentryDsn::parse(self.dsn.as_deref().unwrap_or_default())
                    .map(|d| d.traces_endpoint)
                    .unwrap_or_default(),
            ),
        }
    }
}

pub static INFO: TypeInfo = TypeInfo {
    name: "sentry",
    fields: &[
        FieldSpec {
            name: "dsn",
            help: "the project DSN.",
            secret: Secret::Whole,
            needs_retest: true,
            flag: Flag::Value("dsn"),
        },
        FieldSpec {
            name: "otlp_endpoint",
            help: "overrides the endpoint derived from the DSN.",
            secret: Secret::UrlParts,
            needs_retest: true,
            flag: Flag::None,
        },
        HEADERS,
    ],
    parse,
};

fn parse(rest: Map<String, Value>) -> Result<DestinationKind, FieldError> {
    fields::parse::<SentryConfig>(rest).map(DestinationKind::Sentry)
}

impl From<SentryConfig> for DestinationKind {
    fn from(c: SentryConfig) -> Self {
        DestinationKind::Sentry(c)
    }
}

impl DestinationType for SentryConfig {
    fn info(&self) -> &'static TypeInfo {
        &INFO
    }

    fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error> {
        fields::to_flat(self)
    }

    fn validate(&self) -> Result<(), FieldError> {
        if let Some(endpoint) = self.otlp_endpoint.as_deref().filter(|v| !v.is_empty()) {
            fields::check_http_url("otlp_endpoint", endpoint)?;
        }
        match self.dsn.as_deref() {
            None => Err(FieldError::new("dsn", "required for a sentry destination")),
            Some(dsn) => SentryDsn::parse(dsn)
                .map(|_| ())
                .map_err(|e| FieldError::new("dsn", e)),
        }
    }

    fn target(&self) -> Option<Target> {
        let (field, url) = self.endpoint();
        Some(Target {
            field,
            url: url::Url::parse(&url).ok(),
        })
    }

    fn flavor(&self) -> Flavor {
        Flavor::Sentry
    }

    /// Sentry's ingest takes gzipped protobuf, authenticated by the DSN's key. An unknown key
    /// is accepted once, so the connection test asks twice.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Built, BuildError> {
        let dsn = SentryDsn::parse(self.dsn.as_deref().unwrap_or_default())
            .map_err(|e| BuildError::Field(FieldError::new("dsn", e)))?;
        let (field, url) = self.endpoint();
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.push(("x-sentry-auth".into(), dsn.auth_header()));
        let sink = HttpSink::new(
            &url,
            reqwest::Method::POST,
            &headers,
            Encoding::Protobuf,
            true,
            ctx.timeout,
            ctx.hosts,
        )
        .map_err(|e| BuildError::Field(FieldError::new(field, e)))?;
        Ok(Built {
            sink: Transport::Http(sink),
            probe: ConnectionProbe::EmptyExport(ExportProbe {
                recheck: Some(Recheck {
                    after: RECHECK_DELAY,
                    refused: &[401, 403],
                    note: "on the second probe: Sentry accepts an unknown key once and refuses \
                           it afterwards, so check the DSN",
                }),
                ..ExportProbe::default()
            }),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = self.headers.values().cloned().collect();
        if let Some(dsn) = self.dsn.as_deref() {
            found.push(dsn.trim().to_owned());
            if let Ok(parsed) = SentryDsn::parse(dsn) {
                found.push(parsed.public_key);
            }
            if let Ok(url) = url::Url::parse(dsn.trim()) {
                found.push(url.username().to_owned());
                found.extend(url.password().map(str::to_owned));
            }
        }
        found.extend(
            self.otlp_endpoint
                .iter()
                .flat_map(|e| fields::url_secrets(e)),
        );
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_registered_with_its_fields() {
        let mut example = SentryConfig::new("https://k@h/1");
        example.otlp_endpoint = Some("https://h/v1/traces".into());
        example.headers.insert("a".into(), "b".into());
        crate::destinations::assert_registered(example.into());
    }
}
