//! The hand-written encoders are exactly what the libraries write, for any span the model
//! can hold: the OTLP/JSON line what opentelemetry-proto's serde derive writes (and it decodes
//! back to the same request), the protobuf body what prost's `encode_to_vec` writes.
#![allow(clippy::unwrap_used)]

mod common;

use gatecast_telemetry::model::{AttrKey, AttrValue, SpanKind, SpanModel, SpanRole, SpanStatus};
use gatecast_telemetry::otlp::{
    to_export_request, to_json_bytes, to_json_line, to_private_proto_span, to_protobuf,
    ResourceInfo,
};
use gatecast_telemetry::spans::{build_spans, SpanOptions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        // Any chars, control characters and quotes included, to exercise escaping.
        ".{0,40}".prop_map(AttrValue::String),
        any::<String>().prop_map(AttrValue::String),
        any::<bool>().prop_map(AttrValue::Bool),
        any::<i64>().prop_map(AttrValue::Int),
        any::<f64>().prop_map(AttrValue::Double),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(1e21),
            Just(f64::INFINITY),
            Just(f64::NAN)
        ]
        .prop_map(AttrValue::Double),
        prop::collection::vec(any::<String>(), 0..4).prop_map(AttrValue::StringArray),
    ]
}

fn status() -> impl Strategy<Value = SpanStatus> {
    prop_oneof![
        Just(SpanStatus::Unset),
        Just(SpanStatus::Ok),
        any::<String>().prop_map(SpanStatus::Error),
    ]
}

fn kind() -> impl Strategy<Value = SpanKind> {
    prop_oneof![
        Just(SpanKind::Internal),
        Just(SpanKind::Server),
        Just(SpanKind::Client)
    ]
}

fn span() -> impl Strategy<Value = SpanModel> {
    (
        (
            any::<[u8; 16]>(),
            any::<[u8; 8]>(),
            any::<Option<[u8; 8]>>(),
            any::<bool>(),
        ),
        (any::<String>(), kind(), any::<u64>(), any::<u64>()),
        prop::collection::vec((".{0,24}", attr_value()), 0..12),
        status(),
    )
        .prop_map(
            |((trace_id, span_id, parent_span_id, parent_is_remote), (name, kind, s, e), a, st)| {
                SpanModel {
                    trace_id,
                    span_id,
                    parent_span_id,
                    parent_is_remote,
                    name,
                    kind,
                    role: SpanRole::Generation,
                    start_unix_nanos: s,
                    end_unix_nanos: e,
                    attributes: a.into_iter().map(|(k, v)| (AttrKey::from(k), v)).collect(),
                    status: st,
                }
            },
        )
}

fn resource() -> impl Strategy<Value = ResourceInfo> {
    (
        any::<String>(),
        prop::collection::vec((".{0,12}", any::<String>()), 0..3),
    )
        .prop_map(|(service_name, attributes)| ResourceInfo {
            service_name,
            attributes,
            ..ResourceInfo::default()
        })
}

fn assert_same_as_the_libraries(req: &ExportTraceServiceRequest) {
    assert_eq!(to_protobuf(req), prost::Message::encode_to_vec(req));
    let line = to_json_line(req).unwrap();
    assert_eq!(line, serde_json::to_string(req).unwrap());
    assert_eq!(to_json_bytes(req).unwrap(), line.as_bytes());
    let back: ExportTraceServiceRequest = serde_json::from_str(&line).unwrap();
    assert_eq!(&back, req);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_spans_encode_as_the_libraries_do(
        spans in prop::collection::vec(span(), 0..5),
        resource in resource(),
    ) {
        let req = to_export_request(&spans, &resource);
        let line = to_json_line(&req).unwrap();
        prop_assert_eq!(&line, &serde_json::to_string(&req).unwrap());
        // Non-finite doubles became text in the conversion, so everything decodes back.
        let back: ExportTraceServiceRequest = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(to_protobuf(&req), prost::Message::encode_to_vec(&req));
    }
}

#[test]
fn mapped_records_encode_as_the_libraries_do() {
    let mut record = common::base();
    record.request.messages = Some(gatecast_telemetry::record::Content {
        json: r#"[{"role":"system","content":"be \"brief\"\n"},{"role":"user","content":"hi é"}]"#
            .into(),
        truncated: false,
    });
    let spans = build_spans(&record, &SpanOptions::default());
    assert_same_as_the_libraries(&to_export_request(&spans, &ResourceInfo::default()));
    let private: Vec<_> = spans.iter().map(to_private_proto_span).collect();
    assert_same_as_the_libraries(&gatecast_telemetry::otlp::export_request(
        private,
        ResourceInfo::default().to_proto(),
    ));
}
