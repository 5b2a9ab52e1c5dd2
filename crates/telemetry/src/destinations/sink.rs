//! The seam between a pipeline and a destination: the [`Sink`] every transport implements,
//! the batch it is handed, and how an export fails. [`Transport`] is the closed set of
//! transports the destination types build from (a file, OTLP over HTTP, OTLP over gRPC).

use std::future::Future;
use std::time::Duration;

use super::file::FileSink;
use super::grpc::GrpcSink;
use super::http::HttpSink;

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

/// The sink a destination type builds. A type that reuses a transport (most send OTLP over
/// HTTP) adds nothing here; only a new way of sending does.
pub enum Transport {
    File(FileSink),
    Http(HttpSink),
    Grpc(GrpcSink),
}

impl Sink for Transport {
    fn encoding(&self) -> Encoding {
        match self {
            Transport::File(s) => s.encoding(),
            Transport::Http(s) => s.encoding(),
            Transport::Grpc(s) => s.encoding(),
        }
    }

    fn gzip(&self) -> bool {
        match self {
            Transport::File(s) => s.gzip(),
            Transport::Http(s) => s.gzip(),
            Transport::Grpc(s) => s.gzip(),
        }
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        match self {
            Transport::File(s) => s.export(batch).await,
            Transport::Http(s) => s.export(batch).await,
            Transport::Grpc(s) => s.export(batch).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
