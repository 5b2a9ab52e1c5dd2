//! One request as a receiver saw it, and its decoding with the official OTLP types.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One request as the receiver saw it. Header names are lowercase.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// The path alone; the query is in `query`.
    pub path: String,
    pub query: Option<String>,
    /// For gRPC, the request metadata.
    pub headers: HeaderMap,
    /// The body as sent (still gzipped if it was). For gRPC, the export message as tonic
    /// decoded it (frame and compression undone), in protobuf.
    pub body: Bytes,
    /// When the whole request had arrived.
    pub at: Instant,
    /// Whether the receiver took the export: a 2xx answer, or gRPC OK.
    pub accepted: bool,
    pub(super) grpc: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Whether the export came compressed with gzip.
    pub fn gzip(&self) -> bool {
        let encoding = if self.grpc {
            "grpc-encoding"
        } else {
            "content-encoding"
        };
        self.header(encoding) == Some("gzip")
    }

    /// The body with any gzip content encoding undone.
    ///
    /// # Panics
    /// When a body marked gzip is not.
    pub fn decoded(&self) -> Vec<u8> {
        self.try_decoded()
            .unwrap_or_else(|e| panic!("bad gzip body: {e}"))
    }

    /// The export, decoded by its content type: OTLP/JSON or protobuf.
    ///
    /// # Panics
    /// When the body is not an export in that encoding.
    pub fn export(&self) -> ExportTraceServiceRequest {
        self.try_export().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The export, which must be protobuf.
    pub fn export_protobuf(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(&self.decoded()[..])
            .unwrap_or_else(|e| panic!("bad OTLP protobuf: {e}"))
    }

    /// The export, which must be OTLP/JSON.
    pub fn export_json(&self) -> ExportTraceServiceRequest {
        serde_json::from_slice(&self.decoded()).unwrap_or_else(|e| panic!("bad OTLP JSON: {e}"))
    }

    /// Every span of the export.
    pub fn spans(&self) -> Vec<Span> {
        self.export()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    fn try_decoded(&self) -> Result<Vec<u8>, std::io::Error> {
        if !self.grpc && self.gzip() {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out)?;
            Ok(out)
        } else {
            Ok(self.body.to_vec())
        }
    }

    fn try_export(&self) -> Result<ExportTraceServiceRequest, String> {
        let raw = self
            .try_decoded()
            .map_err(|e| format!("bad gzip body: {e}"))?;
        if self.content_type().contains("json") {
            serde_json::from_slice(&raw).map_err(|e| format!("bad OTLP JSON: {e}"))
        } else {
            ExportTraceServiceRequest::decode(&raw[..])
                .map_err(|e| format!("bad OTLP protobuf: {e}"))
        }
    }

    /// Headers and export as text; a body that is no export shows as text itself.
    pub(super) fn readable(&self) -> String {
        let body = match self.try_export() {
            Ok(export) => format!("{export:?}"),
            Err(_) => {
                let raw = self.try_decoded().unwrap_or_else(|_| self.body.to_vec());
                String::from_utf8_lossy(&raw).into_owned()
            }
        };
        let query = self.query.as_deref().unwrap_or("");
        format!(
            "{} {}?{query} {:?} {body}",
            self.method, self.path, self.headers
        )
    }
}
