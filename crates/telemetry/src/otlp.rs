//! Span models to OTLP: the proto request, and its JSON line form.
//!
//! opentelemetry-proto 0.33's serde support writes what the OTLP/JSON spec asks for (hex
//! trace and span ids, camelCase keys, 64-bit integers as strings), which the round-trip
//! tests pin down. The JSON line is that same output, written by [`crate::otlp_json`]
//! without the derive's per-field allocations.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, SpanFlags, Status};

use crate::error::TelemetryError;
use crate::model::{AttrValue, SpanKind, SpanModel, SpanStatus};
use crate::privacy;
use crate::{otlp_json, otlp_proto};

pub const SCOPE_NAME: &str = "gatecast";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// W3C "sampled": every span that reaches an exporter was sampled in.
const TRACE_FLAG_SAMPLED: u32 = 0x01;

/// What identifies the exporting process to a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub service_name: String,
    pub service_version: String,
    /// Per-destination extras; they win over the defaults of the same name.
    pub attributes: Vec<(String, String)>,
}

impl Default for ResourceInfo {
    fn default() -> Self {
        Self {
            service_name: "gatecast".to_owned(),
            service_version: VERSION.to_owned(),
            attributes: Vec::new(),
        }
    }
}

impl ResourceInfo {
    pub fn to_proto(&self) -> Resource {
        let mut attrs: Vec<(String, String)> = vec![
            ("service.name".into(), self.service_name.clone()),
            ("service.version".into(), self.service_version.clone()),
            ("telemetry.sdk.name".into(), "gatecast".into()),
            ("telemetry.sdk.language".into(), "rust".into()),
            ("telemetry.sdk.version".into(), VERSION.into()),
        ];
        for (k, v) in &self.attributes {
            match attrs.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => attrs.push((k.clone(), v.clone())),
            }
        }
        Resource {
            attributes: attrs
                .into_iter()
                .map(|(k, v)| key_value(k, Any::StringValue(v)))
                .collect(),
            ..Default::default()
        }
    }
}

pub fn to_export_request(
    spans: &[SpanModel],
    resource: &ResourceInfo,
) -> ExportTraceServiceRequest {
    export_request(spans.iter().map(to_proto_span), resource.to_proto())
}

/// Assembles one request from already converted spans, for callers that keep a resource.
pub fn export_request(
    spans: impl IntoIterator<Item = Span>,
    resource: Resource,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: VERSION.to_owned(),
                    ..Default::default()
                }),
                spans: spans.into_iter().collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn to_proto_span(span: &SpanModel) -> Span {
    convert(span, |_| true, None)
}

/// What `to_proto_span` makes of the span after `privacy::apply_privacy`, without copying the
/// span first: a private destination's view, converted straight from the shared spans.
pub fn to_private_proto_span(span: &SpanModel) -> Span {
    let message = match &span.status {
        SpanStatus::Error(_) => Some(privacy::error_message(span).to_owned()),
        _ => None,
    };
    convert(span, privacy::is_allowed, message)
}

/// The conversion, keeping the attributes `keep` accepts; `error_message` replaces an error
/// status's message.
fn convert(span: &SpanModel, keep: impl Fn(&str) -> bool, error_message: Option<String>) -> Span {
    let mut flags = TRACE_FLAG_SAMPLED | SpanFlags::ContextHasIsRemoteMask as u32;
    if span.parent_span_id.is_some() && span.parent_is_remote {
        flags |= SpanFlags::ContextIsRemoteMask as u32;
    }
    let kind = match span.kind {
        SpanKind::Internal => ProtoKind::Internal,
        SpanKind::Server => ProtoKind::Server,
        SpanKind::Client => ProtoKind::Client,
    };
    // An explicit UNSET rather than no status: serde would write `"status": null`, which
    // the protobuf JSON mapping allows but some OTLP/JSON readers refuse.
    let status = match &span.status {
        SpanStatus::Unset => Status::default(),
        SpanStatus::Ok => Status {
            message: String::new(),
            code: StatusCode::Ok as i32,
        },
        SpanStatus::Error(message) => Status {
            message: error_message.unwrap_or_else(|| message.clone()),
            code: StatusCode::Error as i32,
        },
    };
    // Sized for all attributes up front: a filtered iterator's collect cannot know how many
    // survive and would grow the vector several times per span.
    let mut attributes = Vec::with_capacity(span.attributes.len());
    attributes.extend(
        span.attributes
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| key_value(k.as_str().to_owned(), any(v))),
    );
    Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags,
        name: span.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes,
        status: Some(status),
        ..Default::default()
    }
}

fn key_value(key: String, value: Any) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn any(v: &AttrValue) -> Any {
    match v {
        AttrValue::String(s) => Any::StringValue(s.clone()),
        AttrValue::Bool(b) => Any::BoolValue(*b),
        AttrValue::Int(i) => Any::IntValue(*i),
        // JSON has no NaN or infinity; text keeps the line decodable.
        AttrValue::Double(d) if !d.is_finite() => Any::StringValue(d.to_string()),
        AttrValue::Double(d) => Any::DoubleValue(*d),
        AttrValue::StringArray(items) => Any::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|s| AnyValue {
                    value: Some(Any::StringValue(s.clone())),
                })
                .collect(),
        }),
    }
}

/// One OTLP/JSON export on a single line (serde_json escapes every newline inside strings).
pub fn to_json_line(req: &ExportTraceServiceRequest) -> Result<String, TelemetryError> {
    let bytes = to_json_bytes(req)?;
    // Only serde_json and ASCII literals wrote to the buffer, so this never fails.
    String::from_utf8(bytes).map_err(|e| TelemetryError::Json(serde::ser::Error::custom(e)))
}

/// [`to_json_line`] as the bytes a destination sends, without checking again that the text
/// it just wrote is UTF-8.
pub fn to_json_bytes(req: &ExportTraceServiceRequest) -> Result<Vec<u8>, TelemetryError> {
    let mut out = Vec::with_capacity(otlp_json::estimated_len(req));
    otlp_json::write_request(&mut out, req)?;
    Ok(out)
}

/// The binary protobuf body OTLP/HTTP and Sentry's ingest take.
pub fn to_protobuf(req: &ExportTraceServiceRequest) -> Vec<u8> {
    // A Vec always grows, so the fast path cannot fail; prost's own path is the fallback.
    otlp_proto::encode_request(req).unwrap_or_else(|_| prost::Message::encode_to_vec(req))
}
