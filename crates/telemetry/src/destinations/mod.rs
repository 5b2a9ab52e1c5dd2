//! Where traces go: a destination's settings, and the [`Sink`] seam every transport
//! implements. Only `file` exists yet; `sentry`, `otlp` and `webhook` plug in as further
//! sinks without touching the pipeline.

pub mod file;
pub mod grpc;
pub mod host_policy;
pub mod http;
pub mod reply;
pub mod resolve;
pub mod sentry_dsn;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;
pub use host_policy::HostPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    File,
    Sentry,
    Otlp,
    Webhook,
}

impl DestinationType {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::File => "file",
            DestinationType::Sentry => "sentry",
            DestinationType::Otlp => "otlp",
            DestinationType::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

/// When a destination's batches are written to its spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolMode {
    /// Only what the destination could not take after the retries, and what is left at
    /// shutdown. A crash loses what is still in memory (up to the whole retry window).
    #[default]
    OnFailure,
    /// Every batch before its first send, deleted once the destination takes it (or refuses it
    /// for good): a crash loses at most the records of the last flush interval.
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    Post,
    Put,
}

/// One destination as written in `[[destinations]]` or stored by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DestinationType,
    /// `file`: the JSON-lines file to append to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `sentry`: the project's DSN; the OTLP endpoint and auth header are derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// `sentry`: overrides the endpoint derived from the DSN (regional or self-hosted ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// `otlp`: the traces endpoint, e.g. `http://collector:4318/v1/traces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `otlp`: `http/protobuf` (default), `http/json` or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `otlp`: `gzip` (default) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// `webhook`: where to send OTLP/JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`: `POST` (default) or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebhookMethod>,
    /// `otlp` and `webhook`: headers sent with every export (credentials go here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Strip content for every record sent here.
    #[serde(default)]
    pub privacy_mode: bool,
    /// Fraction of sessions kept, 0.0001..=1.
    #[serde(default = "defaults::sampling_rate")]
    pub sampling_rate: f64,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::flush_interval_ms")]
    pub flush_interval_ms: u64,
    #[serde(default = "defaults::max_batch_spans")]
    pub max_batch_spans: usize,
    /// Records waiting for this destination; beyond it new records are dropped and counted.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// Per export attempt.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    #[serde(default = "defaults::max_attribute_bytes")]
    pub max_attribute_bytes: usize,
    /// Which records this destination wants (DESIGN §5); empty means all.
    #[serde(default, skip_serializing_if = "is_default")]
    pub filters: crate::filter::Filters,
    /// Turns on the disk spool, under `<spool_dir>/<name>/`: batches that still fail after
    /// the retries, and records left at shutdown, are kept on disk and sent again later, so an
    /// outage longer than the retry window or a restart of the gateway loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Bounds the spool, so a long outage cannot fill the disk: beyond it the oldest batches
    /// are deleted and counted as dropped (`spool_full`).
    #[serde(default = "defaults::spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// `on_failure` (default) or `always`; `always` needs `spool_dir`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub spool_mode: SpoolMode,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

mod defaults {
    pub fn sampling_rate() -> f64 {
        1.0
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn flush_interval_ms() -> u64 {
        1000
    }
    pub fn max_batch_spans() -> usize {
        512
    }
    pub fn queue_capacity() -> usize {
        2048
    }
    pub fn timeout_ms() -> u64 {
        10_000
    }
    pub fn max_attribute_bytes() -> usize {
        crate::limits::DEFAULT_MAX_ATTRIBUTE_BYTES
    }
    pub fn spool_max_bytes() -> u64 {
        256 * 1024 * 1024
    }
}

/// Smallest sampling rate a destination may use.
pub const MIN_SAMPLING_RATE: f64 = 0.0001;

/// Smallest spool a destination may configure: room for a few full batches.
pub const MIN_SPOOL_MAX_BYTES: u64 = 1024 * 1024;

impl DestinationConfig {
    /// A destination with every default, for code and tests that build configs directly.
    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            kind: DestinationType::File,
            path: Some(path.into()),
            dsn: None,
            otlp_endpoint: None,
            endpoint: None,
            protocol: None,
            compression: None,
            url: None,
            method: None,
            headers: BTreeMap::new(),
            privacy_mode: false,
            sampling_rate: defaults::sampling_rate(),
            enabled: defaults::enabled(),
            flush_interval_ms: defaults::flush_interval_ms(),
            max_batch_spans: defaults::max_batch_spans(),
            queue_capacity: defaults::queue_capacity(),
            timeout_ms: defaults::timeout_ms(),
            resource_attributes: BTreeMap::new(),
            max_attribute_bytes: defaults::max_attribute_bytes(),
            filters: Default::default(),
            spool_dir: None,
            spool_max_bytes: defaults::spool_max_bytes(),
            spool_mode: SpoolMode::OnFailure,
        }
    }

    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let fail = |message: String| {
            Err(TelemetryError::InvalidDestination {
                destination: self.name.clone(),
                message,
            })
        };
        if self.name.trim().is_empty() {
            return fail("name: must not be empty".into());
        }
        if !(MIN_SAMPLING_RATE..=1.0).contains(&self.sampling_rate) {
            return fail(format!(
                "sampling_rate: must be between {MIN_SAMPLING_RATE} and 1, got {}",
                self.sampling_rate
            ));
        }
        for (field, value) in [
            ("max_batch_spans", self.max_batch_spans),
            ("queue_capacity", self.queue_capacity),
            ("max_attribute_bytes", self.max_attribute_bytes),
        ] {
            if value == 0 {
                return fail(format!("{field}: must be at least 1"));
            }
        }
        if self.timeout_ms == 0 {
            return fail("timeout_ms: must be at least 1".into());
        }
        if let Some(dir) = &self.spool_dir {
            if dir.as_os_str().is_empty() {
                return fail("spool_dir: must not be empty".into());
            }
            if self.spool_max_bytes < MIN_SPOOL_MAX_BYTES {
                return fail(format!(
                    "spool_max_bytes: must be at least {MIN_SPOOL_MAX_BYTES} (1 MiB), got {}",
                    self.spool_max_bytes
                ));
            }
        } else if self.spool_mode == SpoolMode::Always {
            return fail("spool_mode: \"always\" needs spool_dir".into());
        }
        if let Err(e) = crate::filter::CompiledFilters::compile(&self.filters) {
            return fail(e.to_string());
        }
        // Checked for every type, so a `file://` left in a field never goes unnoticed.
        for (field, value) in [
            ("endpoint", &self.endpoint),
            ("otlp_endpoint", &self.otlp_endpoint),
            ("url", &self.url),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                if let Err(e) = check_http_url(value) {
                    return fail(format!("{field}: {e}"));
                }
            }
        }
        match self.kind {
            DestinationType::File
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) =>
            {
                fail("path: required for a file destination".into())
            }
            DestinationType::Sentry => match self.dsn.as_deref() {
                None => fail("dsn: required for a sentry destination".into()),
                Some(dsn) => match sentry_dsn::SentryDsn::parse(dsn) {
                    Err(e) => fail(format!("dsn: {e}")),
                    Ok(_) => Ok(()),
                },
            },
            DestinationType::Otlp if self.endpoint.as_deref().is_none_or(str::is_empty) => {
                fail("endpoint: required for an otlp destination".into())
            }
            DestinationType::Webhook if self.url.as_deref().is_none_or(str::is_empty) => {
                fail("url: required for a webhook destination".into())
            }
            _ => Ok(()),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The URL a network destination sends to, and the field it comes from: for Sentry the
    /// endpoint derived from the DSN unless `otlp_endpoint` overrides it. `None` for `file`.
    pub fn target(&self) -> Option<Target> {
        let (field, url) = match self.kind {
            DestinationType::File => return None,
            DestinationType::Sentry => match &self.otlp_endpoint {
                Some(endpoint) => ("otlp_endpoint", endpoint.clone()),
                None => (
                    "dsn",
                    sentry_dsn::SentryDsn::parse(self.dsn.as_deref().unwrap_or_default())
                        .map(|d| d.traces_endpoint)
                        .unwrap_or_default(),
                ),
            },
            DestinationType::Otlp => ("endpoint", self.endpoint.clone().unwrap_or_default()),
            DestinationType::Webhook => ("url", self.url.clone().unwrap_or_default()),
        };
        Some(Target {
            field,
            url: url::Url::parse(&url).ok(),
        })
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// Where a network destination sends: see [`DestinationConfig::target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The config field the URL comes from, for errors.
    pub field: &'static str,
    /// `None` when the field does not hold a URL (validation says why).
    pub url: Option<url::Url>,
}

/// Destinations speak HTTP(S) only: `file://` and other schemes are refused before anything
/// reads the URL.
fn check_http_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(())
}

/// How a sink wants its batches encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// OTLP/JSON, one export per line.
    Json,
    /// OTLP protobuf.
    Protobuf,
}

/// One encoded export, ready to send.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// Shared, not copied, by every attempt: a retry, the spool and the file writer's thread.
    pub body: bytes::Bytes,
    pub spans: usize,
    /// `body` as the sink sends it (gzipped), when it was prepared with the encoding, off the
    /// worker's thread (see [`Sink::gzip`]). The spool keeps `body`.
    pub wire: Option<bytes::Bytes>,
}

/// How an export failed decides what the pipeline does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportErrorKind {
    /// Connection errors, timeouts, 408, 429, 5xx: try again later.
    Retryable { retry_after: Option<Duration> },
    /// 413: the pipeline splits the batch and sends the halves.
    TooLarge,
    /// Any other refusal: the batch is dropped and counted.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub kind: ExportErrorKind,
    pub message: String,
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ExportErrorKind::Retryable { retry_after: None },
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ExportErrorKind::Permanent,
            message: message.into(),
        }
    }

    /// Classifies an HTTP answer the way DESIGN §5 prescribes, for the HTTP sinks.
    pub fn from_status(status: u16, retry_after: Option<Duration>, excerpt: &str) -> Self {
        let kind = match status {
            413 => ExportErrorKind::TooLarge,
            408 | 429 | 500..=599 => ExportErrorKind::Retryable { retry_after },
            _ => ExportErrorKind::Permanent,
        };
        Self {
            kind,
            message: format!("HTTP {status}: {excerpt}"),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ExportErrorKind::Retryable { .. })
    }
}

/// A transport. Owned by exactly one pipeline worker, which serializes calls to it.
pub trait Sink: Send + Sync + 'static {
    fn encoding(&self) -> Encoding;

    /// Whether the body goes out gzipped by this crate (gRPC compresses in its transport):
    /// the worker then compresses it together with the encoding, at the same priority.
    fn gzip(&self) -> bool {
        false
    }

    /// Delivers one batch. The pipeline applies the timeout and the retries.
    fn export(&self, batch: &EncodedBatch) -> impl Future<Output = Result<(), ExportError>> + Send;
}

/// The network transports, chosen from a destination's type and protocol.
pub enum NetworkSink {
    Http(http::HttpSink),
    Grpc(grpc::GrpcSink),
}

/// Builds the sink for a `sentry`, `otlp` or `webhook` destination, connecting only where
/// `hosts` allows. The error names the field.
pub fn build_network_sink(
    config: &DestinationConfig,
    hosts: &Arc<HostPolicy>,
) -> Result<NetworkSink, String> {
    let headers: Vec<(String, String)> = config
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let timeout = config.timeout();
    let gzip = config.compression != Some(Compression::None);
    match config.kind {
        DestinationType::Sentry => {
            let dsn = sentry_dsn::SentryDsn::parse(config.dsn.as_deref().unwrap_or_default())
                .map_err(|e| format!("dsn: {e}"))?;
            let url = config
                .otlp_endpoint
                .clone()
                .unwrap_or_else(|| dsn.traces_endpoint.clone());
            let mut all = headers;
            all.push(("x-sentry-auth".into(), dsn.auth_header()));
            let field = if config.otlp_endpoint.is_some() {
                "otlp_endpoint"
            } else {
                "dsn"
            };
            // Sentry's ingest takes gzipped protobuf.
            http::HttpSink::new(
                &url,
                reqwest::Method::POST,
                &all,
                Encoding::Protobuf,
                true,
                timeout,
                hosts,
            )
            .map(NetworkSink::Http)
            .map_err(|e| format!("{field}: {e}"))
        }
        DestinationType::Otlp => {
            let endpoint = config.endpoint.as_deref().unwrap_or_default();
            let field = |e: String| format!("endpoint: {e}");
            match config.protocol.unwrap_or(Protocol::HttpProtobuf) {
                Protocol::Grpc => grpc::GrpcSink::new(endpoint, &headers, gzip, timeout, hosts)
                    .map(NetworkSink::Grpc)
                    .map_err(field),
                p => {
                    let encoding = if p == Protocol::HttpJson {
                        Encoding::Json
                    } else {
                        Encoding::Protobuf
                    };
                    http::HttpSink::new(
                        endpoint,
                        reqwest::Method::POST,
                        &headers,
                        encoding,
                        gzip,
                        timeout,
                        hosts,
                    )
                    .map(NetworkSink::Http)
                    .map_err(field)
                }
            }
        }
        DestinationType::Webhook => {
            let method = match config.method.unwrap_or(WebhookMethod::Post) {
                WebhookMethod::Post => reqwest::Method::POST,
                WebhookMethod::Put => reqwest::Method::PUT,
            };
            let url = config.url.as_deref().unwrap_or_default();
            http::HttpSink::new(
                url,
                method,
                &headers,
                Encoding::Json,
                config.compression == Some(Compression::Gzip),
                timeout,
                hosts,
            )
            .map(NetworkSink::Http)
            .map_err(|e| format!("url: {e}"))
        }
        DestinationType::File => Err("type: a file destination has no network sink".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_and_field_names() {
        let c: DestinationConfig =
            serde_json::from_str(r#"{"name": "f", "type": "file", "path": "/tmp/x.jsonl"}"#)
                .unwrap();
        assert_eq!(c, DestinationConfig::file("f", "/tmp/x.jsonl"));
        assert!(c.validate().is_ok());
        assert_eq!(c.flush_interval_ms, 1000);
        assert_eq!(c.max_batch_spans, 512);
        assert_eq!(c.queue_capacity, 2048);
        assert_eq!(c.timeout_ms, 10_000);
        assert_eq!(c.max_attribute_bytes, 65_536);
        assert!(c.enabled && !c.privacy_mode);

        let all: DestinationConfig = serde_json::from_str(
            r#"{"name": "s", "type": "sentry", "privacy_mode": true, "sampling_rate": 0.5,
                "enabled": false, "flush_interval_ms": 5, "max_batch_spans": 7, "queue_capacity": 9,
                "timeout_ms": 11, "resource_attributes": {"deployment.region": "eu"},
                "max_attribute_bytes": 100}"#,
        )
        .unwrap();
        assert_eq!(all.kind, DestinationType::Sentry);
        assert_eq!(all.resource_attributes["deployment.region"], "eu");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(serde_json::from_str::<DestinationConfig>(
            r#"{"name": "f", "type": "file", "path": "x", "what": 1}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<DestinationConfig>(r#"{"name": "f", "type": "kafka"}"#).is_err()
        );
        let mut c = DestinationConfig::file("f", "x");
        c.sampling_rate = 0.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sampling_rate"));
        let mut c = DestinationConfig::file("f", "x");
        c.path = None;
        assert!(c.validate().unwrap_err().to_string().contains("path"));
        let mut c = DestinationConfig::file("f", "x");
        c.queue_capacity = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("queue_capacity"));
    }

    #[test]
    fn urls_must_be_http_and_errors_name_the_field() {
        let with = |kind: DestinationType, set: fn(&mut DestinationConfig)| {
            let mut c = DestinationConfig::file("d", "x");
            c.kind = kind;
            c.path = None;
            set(&mut c);
            c.validate().map_err(|e| e.to_string())
        };
        let e = with(DestinationType::Otlp, |c| {
            c.endpoint = Some("file:///etc/passwd".into())
        });
        assert!(e
            .unwrap_err()
            .ends_with("endpoint: the scheme must be http or https, not `file`"),);
        let e = with(DestinationType::Webhook, |c| {
            c.url = Some("gopher://h:70/".into())
        });
        assert!(e
            .unwrap_err()
            .contains("url: the scheme must be http or https"));
        let e = with(DestinationType::Sentry, |c| {
            c.dsn = Some("https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1".into());
            c.otlp_endpoint = Some("ftp://h/".into());
        });
        assert!(e.unwrap_err().contains("otlp_endpoint: the scheme"));
        let e = with(DestinationType::Sentry, |c| {
            c.dsn = Some("gopher://0123456789abcdef0123456789abcdef@h/1".into());
        });
        assert!(e
            .unwrap_err()
            .contains("dsn: invalid DSN: the scheme must be http or https"));
        let e = with(DestinationType::Sentry, |c| {
            c.dsn = Some("file://0123456789abcdef0123456789abcdef@h/1".into());
        });
        assert!(e.unwrap_err().contains("dsn: invalid DSN"));
        let e = with(DestinationType::Otlp, |c| {
            c.endpoint = Some("collector:4318".into())
        });
        assert!(e.unwrap_err().contains("endpoint: "));
        assert!(with(DestinationType::Otlp, |c| {
            c.endpoint = Some("https://collector:4318/v1/traces".into())
        })
        .is_ok());
    }

    #[test]
    fn targets_name_the_field_they_come_from() {
        let mut c = DestinationConfig::file("d", "x");
        assert_eq!(c.target(), None);
        c.kind = DestinationType::Sentry;
        c.dsn = Some("https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42".into());
        let t = c.target().unwrap();
        assert_eq!(t.field, "dsn");
        assert_eq!(
            t.url.unwrap().as_str(),
            "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces"
        );
        c.otlp_endpoint = Some("https://eu.example/v1/traces".into());
        assert_eq!(c.target().unwrap().field, "otlp_endpoint");
    }

    #[test]
    fn spool_fields_round_trip_and_are_validated() {
        let c: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_dir": "/var/spool/gatecast",
                "spool_max_bytes": 2097152}"#,
        )
        .unwrap();
        assert_eq!(
            c.spool_dir.as_deref(),
            Some(Path::new("/var/spool/gatecast"))
        );
        assert_eq!(c.spool_max_bytes, 2 * 1024 * 1024);
        assert!(c.validate().is_ok());
        let back: DestinationConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let plain = DestinationConfig::file("f", "x");
        assert_eq!(plain.spool_dir, None);
        assert_eq!(plain.spool_max_bytes, 256 * 1024 * 1024);
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("spool_dir").is_none());

        let mut small = c.clone();
        small.spool_max_bytes = 1000;
        let message = small.validate().unwrap_err().to_string();
        assert!(
            message.contains("spool_max_bytes: must be at least"),
            "{message}"
        );
        // Without a spool the bound is not used, so it is not checked.
        small.spool_dir = None;
        assert!(small.validate().is_ok());
    }

    #[test]
    fn spool_mode_defaults_to_on_failure_and_always_needs_a_spool() {
        let plain = DestinationConfig::file("f", "x");
        assert_eq!(plain.spool_mode, SpoolMode::OnFailure);
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("spool_mode")
            .is_none());
        let c: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_dir": "/s", "spool_mode": "always"}"#,
        )
        .unwrap();
        assert_eq!(c.spool_mode, SpoolMode::Always);
        assert!(c.validate().is_ok());
        let back: DestinationConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let on_failure: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_mode": "on_failure"}"#,
        )
        .unwrap();
        assert_eq!(on_failure.spool_mode, SpoolMode::OnFailure);
        assert!(serde_json::from_str::<DestinationConfig>(
            r#"{"name": "f", "type": "file", "path": "x", "spool_mode": "sometimes"}"#
        )
        .is_err());

        let mut no_dir = c;
        no_dir.spool_dir = None;
        let message = no_dir.validate().unwrap_err().to_string();
        assert!(
            message.contains(r#"spool_mode: "always" needs spool_dir"#),
            "{message}"
        );
    }

    #[test]
    fn http_statuses_are_classified() {
        let k = |s| ExportError::from_status(s, None, "").kind;
        assert_eq!(k(413), ExportErrorKind::TooLarge);
        assert!(ExportError::from_status(429, None, "").is_retryable());
        assert!(ExportError::from_status(503, None, "").is_retryable());
        assert!(ExportError::from_status(408, None, "").is_retryable());
        assert_eq!(k(400), ExportErrorKind::Permanent);
        assert_eq!(k(403), ExportErrorKind::Permanent);
    }
}
