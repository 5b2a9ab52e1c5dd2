//! Whatever a caller puts in `trace` and `traceparent`, mapping never panics and yields a
//! well-formed tree with valid ids that survives OTLP/JSON.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::*;
use gatecast_telemetry::flavor::apply_sentry_flavor;
use gatecast_telemetry::model::SpanRole;
use gatecast_telemetry::otlp::{
    to_export_request, to_json_line, to_private_proto_span, to_proto_span, ResourceInfo,
};
use gatecast_telemetry::privacy::apply_privacy;
use gatecast_telemetry::record::Content;
use gatecast_telemetry::spans::{build_spans, SpanOptions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9a-fA-F]{15,33}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn trace_object() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        Just("trace_id".to_owned()),
        Just("trace_name".to_owned()),
        Just("span_name".to_owned()),
        Just("generation_name".to_owned()),
        Just("parent_span_id".to_owned()),
        Just("environment".to_owned()),
        Just("release".to_owned()),
        ".{0,10}",
    ];
    prop::collection::vec((key, json_value()), 0..24).prop_map(|kv| kv.into_iter().collect())
}

fn traceparent() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        ".{0,60}".prop_map(Some),
        ("[0-9a-f]{32}", "[0-9a-f]{16}").prop_map(|(t, s)| Some(format!("00-{t}-{s}-01"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_trace_maps_to_a_valid_tree(
        trace in trace_object(),
        tp in traceparent(),
        attempts in 0usize..4,
        messages in ".{0,200}",
        seeded in any::<bool>(),
        limit in 16usize..4096,
    ) {
        let mut r = with_trace(base(), Value::Object(trace), tp.as_deref());
        r.attempts = (0..attempts)
            .map(|n| {
                let mut a = base().attempts[0].clone();
                if n % 2 == 1 {
                    a.http_status = Some(503);
                    a.error = Some(format!("upstream said no to {messages}"));
                }
                a
            })
            .collect();
        r.request.messages = Some(Content { json: messages, truncated: false });
        let opts = SpanOptions {
            max_attribute_bytes: limit,
            id_seed: seeded.then_some(u64::MAX - 1),
        };
        let mut spans = build_spans(&r, &opts);

        prop_assert!(!spans.is_empty());
        prop_assert_ne!(r.context.trace_id, [0u8; 16]);
        prop_assert_eq!(spans.iter().filter(|s| s.role == SpanRole::Generation).count(), 1);
        let ids: HashSet<[u8; 8]> = spans.iter().map(|s| s.span_id).collect();
        prop_assert_eq!(ids.len(), spans.len(), "span ids are unique");
        for s in &spans {
            prop_assert_eq!(s.trace_id, r.context.trace_id);
            prop_assert_ne!(s.span_id, [0u8; 8]);
            prop_assert!(s.parent_span_id != Some([0u8; 8]));
            prop_assert!(s.start_unix_nanos <= s.end_unix_nanos);
        }
        prop_assert_eq!(spans[0].parent_span_id, r.context.parent_span_id);
        for s in &spans[1..] {
            prop_assert!(s.parent_span_id.is_some_and(|p| ids.contains(&p)), "inner parents are in the tree");
            prop_assert!(!s.parent_is_remote);
        }
        for s in &spans {
            for (k, v) in &s.attributes {
                if let Some(text) = v.as_str() {
                    prop_assert!(text.len() <= limit, "{} is {} bytes", k, text.len());
                }
            }
        }

        let req = to_export_request(&spans, &ResourceInfo::default());
        let line = to_json_line(&req).unwrap();
        let back: ExportTraceServiceRequest = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(back, req);

        // A private destination converts the shared spans directly; it must export exactly
        // what privacy followed by conversion gives.
        let direct: Vec<_> = spans.iter().map(to_private_proto_span).collect();
        apply_privacy(&mut spans);
        let copied: Vec<_> = spans.iter().map(to_proto_span).collect();
        prop_assert_eq!(direct, copied);
        apply_sentry_flavor(&mut spans);
        prop_assert!(spans.iter().all(|s| s.attr("gen_ai.input.messages").is_none()));
    }
}
