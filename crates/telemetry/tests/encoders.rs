//! The bodies written straight from span views are exactly what the libraries write for the
//! converted request, for any span the model can hold and either privacy: the OTLP/JSON line
//! what opentelemetry-proto's serde derive writes (and it decodes back to the same request),
//! the protobuf body what prost's `encode_to_vec` writes.
#![allow(clippy::unwrap_used)]

mod common;

use gatecast_telemetry::model::{AttrKey, AttrValue, SpanKind, SpanModel, SpanRole, SpanStatus};
use gatecast_telemetry::otlp::{export_request, json_body, protobuf_body, ResourceInfo, SpanView};
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

/// The views' bodies against the libraries' encoding of the same spans converted to structs.
fn assert_same_as_the_libraries(views: &[SpanView<'_>], resource: &ResourceInfo) {
    let resource = resource.to_proto();
    let req = export_request(views.iter().map(SpanView::to_proto), resource.clone());
    assert_eq!(
        protobuf_body(views, &resource),
        prost::Message::encode_to_vec(&req)
    );
    let line = json_body(views, &resource).unwrap();
    assert_eq!(
        String::from_utf8(line.clone()).unwrap(),
        serde_json::to_string(&req).unwrap()
    );
    // Non-finite doubles became text, so everything decodes back.
    let back: ExportTraceServiceRequest = serde_json::from_slice(&line).unwrap();
    assert_eq!(back, req);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_spans_encode_as_the_libraries_do(
        spans in prop::collection::vec((span(), any::<bool>()), 0..5),
        resource in resource(),
    ) {
        let views: Vec<_> = spans.iter().map(|(s, private)| SpanView::new(s, *private)).collect();
        assert_same_as_the_libraries(&views, &resource);
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
    record.status =
        gatecast_telemetry::record::Status::Error(gatecast_telemetry::record::ErrorInfo {
            kind: gatecast_telemetry::record::ErrorKind::Provider,
            http_status: Some(502),
            message: "upstream said: secret prompt".into(),
        });
    let spans = build_spans(&record, &SpanOptions::default());
    for private in [false, true] {
        let views: Vec<_> = spans.iter().map(|s| SpanView::new(s, private)).collect();
        assert_same_as_the_libraries(&views, &ResourceInfo::default());
    }
}

#[test]
fn an_empty_batch_encodes_as_the_libraries_do() {
    assert_same_as_the_libraries(&[], &ResourceInfo::default());
}
