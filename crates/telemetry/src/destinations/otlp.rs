//! The `otlp` destination: any OpenTelemetry collector or backend, over HTTP (protobuf or
//! JSON) or gRPC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, Compression, FieldError, FieldSpec, Flag, Secret, HEADERS};
use super::grpc::GrpcSink;
use super::http::HttpSink;
use super::{
    BuildContext, BuildError, Built, ConnectionProbe, DestinationKind, DestinationType, Encoding,
    ExportProbe, Target, Transport, TypeInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    #[serde(rename = "grpc")]
    Grpc,
}

/// The `otlp` type's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The traces endpoint, e.g. `http://collector:4318/v1/traces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `http/protobuf` (default), `http/json` or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `gzip` (default) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Sent with every export (credentials go here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl OtlpConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            ..Self::default()
        }
    }
}

pub static INFO: TypeInfo = TypeInfo {
    name: "otlp",
    fields: &[
        FieldSpec {
            name: "endpoint",
            help: "the traces endpoint.",
            secret: Secret::UrlParts,
            needs_retest: true,
            flag: Flag::Value("endpoint"),
        },
        FieldSpec {
            name: "protocol",
            help: "http/protobuf | http/json | grpc",
            secret: Secret::No,
            needs_retest: true,
            flag: Flag::Value("protocol"),
        },
        FieldSpec {
            name: "compression",
            help: "gzip | none",
            secret: Secret::No,
            needs_retest: true,
            flag: Flag::None,
        },
        HEADERS,
    ],
    parse,
};

fn parse(rest: Map<String, Value>) -> Result<DestinationKind, FieldError> {
    fields::parse::<OtlpConfig>(rest).map(DestinationKind::Otlp)
}

impl From<OtlpConfig> for DestinationKind {
    fn from(c: OtlpConfig) -> Self {
        DestinationKind::Otlp(c)
    }
}

impl DestinationType for OtlpConfig {
    fn info(&self) -> &'static TypeInfo {
        &INFO
    }

    fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error> {
        fields::to_flat(self)
    }

    fn validate(&self) -> Result<(), FieldError> {
        match self.endpoint.as_deref().filter(|v| !v.is_empty()) {
            Some(endpoint) => fields::check_http_url("endpoint", endpoint),
            None => Err(FieldError::new(
                "endpoint",
                "required for an otlp destination",
            )),
        }
    }

    fn target(&self) -> Option<Target> {
        Some(Target {
            field: "endpoint",
            url: url::Url::parse(self.endpoint.as_deref().unwrap_or_default()).ok(),
        })
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Built, BuildError> {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let endpoint = self.endpoint.as_deref().unwrap_or_default();
        let gzip = self.compression != Some(Compression::None);
        let field = |e: String| BuildError::Field(FieldError::new("endpoint", e));
        let sink = match self.protocol.unwrap_or(Protocol::HttpProtobuf) {
            Protocol::Grpc => GrpcSink::new(endpoint, &headers, gzip, ctx.timeout, ctx.hosts)
                .map(Transport::Grpc)
                .map_err(field)?,
            p => {
                let encoding = if p == Protocol::HttpJson {
                    Encoding::Json
                } else {
                    Encoding::Protobuf
                };
                HttpSink::new(
                    endpoint,
                    reqwest::Method::POST,
                    &headers,
                    encoding,
                    gzip,
                    ctx.timeout,
                    ctx.hosts,
                )
                .map(Transport::Http)
                .map_err(field)?
            }
        };
        Ok(Built {
            sink,
            probe: ConnectionProbe::EmptyExport(ExportProbe::default()),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = self.headers.values().cloned().collect();
        found.extend(self.endpoint.iter().flat_map(|e| fields::url_secrets(e)));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_registered_with_its_fields() {
        let mut example = OtlpConfig::new("http://c:4318/v1/traces");
        example.protocol = Some(Protocol::Grpc);
        example.compression = Some(Compression::None);
        example.headers.insert("a".into(), "b".into());
        crate::destinations::assert_registered(example.into());
    }
}
