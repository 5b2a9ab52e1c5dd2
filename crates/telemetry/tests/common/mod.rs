//! Builders shared by the integration tests: a realistic record, and the proxy's way of
//! turning a `trace` object and `traceparent` into the record's context.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use gatecast_telemetry::ids;
use gatecast_telemetry::metadata::sanitize;
use gatecast_telemetry::model::{AttrValue, SpanModel};
use gatecast_telemetry::record::{
    Attempt, Choice, GenerationRecord, Output, RequestInfo, RouteInfo, Timings, Usage,
};
use serde_json::Value;

pub const T0: u64 = 1_700_000_000_000_000_000;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn base() -> GenerationRecord {
    GenerationRecord {
        operation: Default::default(),
        timings: Timings {
            accepted_unix_nanos: T0,
            upstream_start: Some(ms(2)),
            first_chunk: None,
            end: ms(120),
            upstream_total: ms(100),
        },
        route: Some(RouteInfo {
            provider: "up".into(),
            provider_kind: "openai".into(),
            model: "gpt-4o-mini".into(),
            route: "up/gpt-4o-mini".into(),
            server_address: Some("api.openai.com".into()),
            server_port: Some(443),
        }),
        request: RequestInfo {
            model: "up/gpt-4o-mini".into(),
            ..Default::default()
        },
        output: Output {
            response_id: Some("chatcmpl-1".into()),
            response_model: Some("gpt-4o-mini-2024-07-18".into()),
            choices: vec![Choice {
                index: 0,
                role: Some("assistant".into()),
                text: "Hello!".into(),
                tool_calls: vec![],
                finish_reason: Some("stop".into()),
            }],
            truncated: false,
            embedding_dimensions: None,
        },
        cost: None,
        usage: Some(Usage {
            input_tokens: 12,
            output_tokens: 5,
            cache_read_input_tokens: Some(4),
            cache_creation_input_tokens: None,
            reasoning_output_tokens: Some(0),
        }),
        attempts: vec![Attempt {
            provider: "up".into(),
            model: "gpt-4o-mini".into(),
            url: Some("https://api.openai.com/v1/chat/completions".into()),
            http_status: Some(200),
            error: None,
            start: ms(2),
            end: ms(102),
        }],
        ..Default::default()
    }
}

/// What the proxy does with the request's `trace` object and `traceparent` header.
pub fn with_trace(
    mut r: GenerationRecord,
    trace: Value,
    traceparent: Option<&str>,
) -> GenerationRecord {
    let map = match trace {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let (map, dropped) = sanitize(map);
    let resolved = ids::resolve(&map, traceparent);
    r.context.trace_id = resolved.trace_id;
    r.context.parent_span_id = resolved.parent_span_id;
    r.context.traceparent = traceparent.map(str::to_owned);
    r.context.trace = map;
    r.context.dropped_metadata_keys = dropped;
    r
}

pub fn generation(spans: &[SpanModel]) -> &SpanModel {
    spans
        .iter()
        .find(|s| s.attr("gen_ai.operation.name").is_some())
        .unwrap()
}

pub fn named<'a>(spans: &'a [SpanModel], name: &str) -> &'a SpanModel {
    spans.iter().find(|s| s.name == name).unwrap()
}

pub fn s(v: &str) -> AttrValue {
    AttrValue::String(v.into())
}

pub fn keys(span: &SpanModel) -> Vec<&str> {
    span.attributes.iter().map(|(k, _)| k.as_str()).collect()
}

/// Every string anywhere in the spans, for canary searches.
pub fn all_text(spans: &[SpanModel]) -> String {
    let mut out = String::new();
    for sp in spans {
        out.push_str(&sp.name);
        if let gatecast_telemetry::model::SpanStatus::Error(m) = &sp.status {
            out.push_str(m);
        }
        for (k, v) in &sp.attributes {
            out.push_str(k);
            match v {
                AttrValue::String(x) => out.push_str(x),
                AttrValue::StringArray(xs) => xs.iter().for_each(|x| out.push_str(x)),
                _ => {}
            }
        }
    }
    out
}

/// A file destination that flushes every 10 ms, so tests do not wait on batching.
pub fn fast_file(name: &str, path: &std::path::Path) -> gatecast_telemetry::DestinationConfig {
    let mut d = gatecast_telemetry::DestinationConfig::file(name, path);
    d.flush_interval_ms = 10;
    d
}

/// A record with a `span_name` (two spans) whose user message is `content`.
pub fn record_saying(trace_id: &str, content: &str) -> GenerationRecord {
    let mut r = with_trace(
        base(),
        serde_json::json!({"trace_id": trace_id, "span_name": "step"}),
        None,
    );
    r.request.messages = Some(gatecast_telemetry::record::Content {
        json: format!(r#"[{{"role":"user","content":"{content}"}}]"#),
        truncated: false,
    });
    r
}
