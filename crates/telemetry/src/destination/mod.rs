//! Where traces go: a destination's settings, and the [`Sink`] seam every transport
//! implements. Only `file` exists yet; `sentry`, `otlp` and `webhook` plug in as further
//! sinks without touching the pipeline.

pub mod file;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;

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
}

/// Smallest sampling rate a destination may use.
pub const MIN_SAMPLING_RATE: f64 = 0.0001;

impl DestinationConfig {
    /// A destination with every default, for code and tests that build configs directly.
    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            kind: DestinationType::File,
            path: Some(path.into()),
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
        if let Err(e) = crate::filter::CompiledFilters::compile(&self.filters) {
            return fail(e.to_string());
        }
        match self.kind {
            DestinationType::File
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) =>
            {
                fail("path: required for a file destination".into())
            }
            _ => Ok(()),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
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
    pub body: Vec<u8>,
    pub spans: usize,
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

    /// Delivers one batch. The pipeline applies the timeout and the retries.
    fn export(&self, batch: &EncodedBatch) -> impl Future<Output = Result<(), ExportError>> + Send;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
