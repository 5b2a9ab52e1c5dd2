//! The OTLP/JSON line a destination receives is what the spec asks for, and both bodies
//! decode back with the official types into the converted request.
#![allow(clippy::unwrap_used)]

use gatecast_telemetry::model::{AttrValue, SpanKind, SpanModel, SpanRole, SpanStatus};
use gatecast_telemetry::otlp::{
    json_body, protobuf_body, to_export_request, ResourceInfo, SpanView,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{json, Value};

fn spans() -> Vec<SpanModel> {
    let trace_id = [0xab; 16];
    vec![
        SpanModel {
            trace_id,
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: Some([0xfe; 8]),
            parent_is_remote: true,
            name: "classify".into(),
            kind: SpanKind::Client,
            role: SpanRole::Generation,
            start_unix_nanos: 1_700_000_000_000_000_001,
            end_unix_nanos: 1_700_000_000_500_000_000,
            attributes: vec![
                ("s".into(), AttrValue::String("line\nbreak \"q\" é".into())),
                ("b".into(), AttrValue::Bool(true)),
                ("i".into(), AttrValue::Int(i64::MAX)),
                ("d".into(), AttrValue::Double(0.25)),
                ("nan".into(), AttrValue::Double(f64::NAN)),
                (
                    "a".into(),
                    AttrValue::StringArray(vec!["stop".into(), "length".into()]),
                ),
            ],
            status: SpanStatus::Error("boom".into()),
        },
        SpanModel {
            trace_id,
            span_id: [9; 8],
            parent_span_id: None,
            parent_is_remote: false,
            name: "root".into(),
            kind: SpanKind::Server,
            role: SpanRole::Root,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![],
            status: SpanStatus::Unset,
        },
    ]
}

fn resource() -> ResourceInfo {
    ResourceInfo {
        service_name: "gw".into(),
        service_version: "9.9.9".into(),
        attributes: vec![
            ("deployment.region".into(), "eu".into()),
            ("service.name".into(), "overridden".into()),
        ],
    }
}

/// The line a file or OTLP/JSON destination without privacy writes for these spans.
fn line(spans: &[SpanModel]) -> String {
    let views: Vec<_> = spans.iter().map(|s| SpanView::new(s, false)).collect();
    String::from_utf8(json_body(&views, &resource().to_proto()).unwrap()).unwrap()
}

#[test]
fn json_line_is_spec_shaped() {
    let line = line(&spans());
    assert!(!line.contains('\n'), "one export per line");
    let v: Value = serde_json::from_str(&line).unwrap();
    let rs = &v["resourceSpans"][0];
    let attrs: Vec<(String, Value)> = rs["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_owned(), kv["value"].clone()))
        .collect();
    let res = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        res("service.name"),
        Some(json!({"stringValue": "overridden"}))
    );
    assert_eq!(
        res("service.version"),
        Some(json!({"stringValue": "9.9.9"}))
    );
    assert_eq!(
        res("telemetry.sdk.language"),
        Some(json!({"stringValue": "rust"}))
    );
    assert_eq!(res("deployment.region"), Some(json!({"stringValue": "eu"})));
    assert!(res("telemetry.sdk.name").is_some() && res("telemetry.sdk.version").is_some());

    let scope = &rs["scopeSpans"][0];
    assert_eq!(scope["scope"]["name"], "gatecast");
    let span = &scope["spans"][0];
    assert_eq!(span["traceId"], "abababababababababababababababab");
    assert_eq!(span["spanId"], "0102030405060708");
    assert_eq!(span["parentSpanId"], "fefefefefefefefe");
    assert_eq!(span["flags"], 0x301, "sampled, has-is-remote, is-remote");
    assert_eq!(span["kind"], 3);
    assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
    assert_eq!(span["status"], json!({"message": "boom", "code": 2}));
    let attr = |k: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == k)
            .map(|kv| kv["value"].clone())
    };
    assert_eq!(attr("i"), Some(json!({"intValue": i64::MAX.to_string()})));
    assert_eq!(attr("d"), Some(json!({"doubleValue": 0.25})));
    assert_eq!(attr("b"), Some(json!({"boolValue": true})));
    assert_eq!(
        attr("nan"),
        Some(json!({"stringValue": "NaN"})),
        "JSON has no NaN"
    );
    assert_eq!(
        attr("a"),
        Some(
            json!({"arrayValue": {"values": [{"stringValue": "stop"}, {"stringValue": "length"}]}})
        )
    );

    let root = &scope["spans"][1];
    assert_eq!(root["flags"], 0x101, "known to be local");
    assert_eq!(root["parentSpanId"], "");
    assert_eq!(
        root["status"],
        json!({"message": "", "code": 0}),
        "UNSET, never null"
    );
    assert!(!line.contains("null"), "no nulls anywhere: {line}");
}

#[test]
fn json_round_trips_through_the_official_types() {
    let req = to_export_request(&spans(), &resource());
    let back: ExportTraceServiceRequest = serde_json::from_str(&line(&spans())).unwrap();
    // NaN became text on the way out; everything else is identical.
    assert_eq!(back, req);
}

#[test]
fn protobuf_round_trips() {
    let req = to_export_request(&spans(), &resource());
    let spans = spans();
    let views: Vec<_> = spans.iter().map(|s| SpanView::new(s, false)).collect();
    let bytes = protobuf_body(&views, &resource().to_proto());
    let back = <ExportTraceServiceRequest as prost::Message>::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, req);
}
