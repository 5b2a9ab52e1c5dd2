//! Span models to OTLP: the proto request, and its JSON line form.
//!
//! opentelemetry-proto 0.33's serde support writes what the OTLP/JSON spec asks for (hex
//! trace and span ids, camelCase keys, 64-bit integers as strings), which the round-trip
//! tests pin down. Batches do not go through the proto structs: `protobuf` and `json` write
//! the same bytes straight from [`SpanView`]s. The structs remain for the test trace and as
//! the reference the encoders are tested against.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{json, protobuf};
use crate::error::TelemetryError;
use crate::span::model::{AttrValue, SpanModel};

pub use super::view::SpanView;

pub const SCOPE_NAME: &str = "gatecast";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// Who made the spans: the same for every export.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: VERSION.to_owned(),
        ..Default::default()
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
                scope: Some(scope()),
                spans: spans.into_iter().collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn to_proto_span(span: &SpanModel) -> Span {
    SpanView::new(span, false).to_proto()
}

/// What `to_proto_span` makes of the span after `privacy::apply_privacy`, without copying the
/// span first: a private destination's view, converted straight from the shared spans.
pub fn to_private_proto_span(span: &SpanModel) -> Span {
    SpanView::new(span, true).to_proto()
}

impl SpanView<'_> {
    pub fn to_proto(&self) -> Span {
        let span = self.span();
        let (code, message) = self.status();
        // Sized for all attributes up front: a filtered iterator's collect cannot know how
        // many survive and would grow the vector several times per span.
        let mut attributes = Vec::with_capacity(span.attributes.len());
        attributes.extend(
            self.attributes()
                .map(|(k, v)| key_value(k.to_owned(), any(v))),
        );
        Span {
            trace_id: span.trace_id.to_vec(),
            span_id: span.span_id.to_vec(),
            parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags: self.flags(),
            name: span.name.clone(),
            kind: self.kind(),
            start_time_unix_nano: span.start_unix_nanos,
            end_time_unix_nano: span.end_unix_nanos,
            attributes,
            status: Some(Status {
                message: message.to_owned(),
                code,
            }),
            ..Default::default()
        }
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
        AttrValue::Double(d) if !d.is_finite() => Any::StringValue(non_finite_text(*d)),
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

/// JSON has no NaN or infinity, so such a double is exported as its text (`NaN`, `inf`),
/// which keeps the line decodable; protobuf gets the same, so every destination agrees.
pub(crate) fn non_finite_text(d: f64) -> String {
    d.to_string()
}

/// One OTLP/JSON export on a single line (serde_json escapes every newline inside strings).
pub fn to_json_line(req: &ExportTraceServiceRequest) -> Result<String, TelemetryError> {
    Ok(serde_json::to_string(req)?)
}

/// [`to_json_line`] as bytes.
pub fn to_json_bytes(req: &ExportTraceServiceRequest) -> Result<Vec<u8>, TelemetryError> {
    Ok(serde_json::to_vec(req)?)
}

/// The binary protobuf body OTLP/HTTP and Sentry's ingest take.
pub fn to_protobuf(req: &ExportTraceServiceRequest) -> Vec<u8> {
    prost::Message::encode_to_vec(req)
}

/// One export's protobuf body, written straight from the views: byte for byte what
/// [`to_protobuf`] makes of the converted request, without converting every span first.
pub fn protobuf_body(spans: &[SpanView<'_>], resource: &Resource) -> Vec<u8> {
    protobuf::body(spans, resource)
}

/// One export's OTLP/JSON line, written straight from the views: byte for byte what
/// [`to_json_bytes`] makes of the converted request.
pub fn json_body(spans: &[SpanView<'_>], resource: &Resource) -> Result<Vec<u8>, TelemetryError> {
    Ok(json::body(spans, resource)?)
}
