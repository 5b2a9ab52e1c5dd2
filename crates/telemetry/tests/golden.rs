//! Golden tests of the record → span mapping (DESIGN §3), privacy (§4) and the Sentry
//! flavor. No I/O: records in, span models out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use gatecast_telemetry::flavor::apply_sentry_flavor;
use gatecast_telemetry::model::{AttrValue, SpanKind, SpanModel, SpanRole, SpanStatus};
use gatecast_telemetry::privacy::apply_privacy;
use gatecast_telemetry::record::{Choice, Content, ErrorInfo, ErrorKind, Status, ToolCall};
use gatecast_telemetry::spans::{build_spans, SpanOptions};
use gatecast_telemetry::GenerationRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn opts() -> SpanOptions {
    SpanOptions {
        id_seed: Some(1),
        ..Default::default()
    }
}

fn build(r: &GenerationRecord) -> Vec<SpanModel> {
    build_spans(r, &opts())
}

/// The tree as indented lines: `name [Kind]`, the top span marked when its parent is remote.
fn tree(spans: &[SpanModel]) -> Vec<String> {
    let depth = |s: &SpanModel| {
        let mut d = 0;
        let mut parent = s.parent_span_id;
        while let Some(p) = parent {
            match spans.iter().find(|x| x.span_id == p) {
                Some(x) => {
                    d += 1;
                    parent = x.parent_span_id;
                }
                None => break,
            }
        }
        d
    };
    spans
        .iter()
        .map(|s| {
            let remote = if s.parent_is_remote { " <remote>" } else { "" };
            format!("{}{} [{:?}]{remote}", "  ".repeat(depth(s)), s.name, s.kind)
        })
        .collect()
}

/// Trace keys, traceparent, expected tree, and the span carrying `gatecast.trace_name`.
type TreeCase = (
    Value,
    Option<&'static str>,
    Vec<&'static str>,
    Option<&'static str>,
);

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn every_combination_of_the_reserved_keys() {
    let cases: Vec<TreeCase> = vec![
        (json!({}), None, vec!["chat gpt-4o-mini [Client]"], None),
        (
            json!({"trace_name": "support-agent"}),
            None,
            vec!["support-agent [Server]", "  chat gpt-4o-mini [Client]"],
            None,
        ),
        (
            json!({"span_name": "triage"}),
            None,
            vec!["triage [Internal]", "  chat gpt-4o-mini [Client]"],
            None,
        ),
        (
            json!({"generation_name": "classify"}),
            None,
            vec!["classify [Client]"],
            None,
        ),
        (
            json!({"trace_name": "support-agent", "span_name": "triage", "generation_name": "classify"}),
            None,
            vec![
                "support-agent [Server]",
                "  triage [Internal]",
                "    classify [Client]",
            ],
            None,
        ),
        (
            json!({"trace_name": "support-agent", "generation_name": "classify"}),
            None,
            vec!["support-agent [Server]", "  classify [Client]"],
            None,
        ),
        (
            json!({"span_name": "triage", "generation_name": "classify"}),
            None,
            vec!["triage [Internal]", "  classify [Client]"],
            None,
        ),
        (
            json!({"parent_span_id": "b7ad6b7169203331"}),
            None,
            vec!["chat gpt-4o-mini [Client] <remote>"],
            None,
        ),
        (
            json!({"trace_name": "support-agent", "parent_span_id": "b7ad6b7169203331"}),
            None,
            vec!["chat gpt-4o-mini [Client] <remote>"],
            Some("chat gpt-4o-mini"),
        ),
        (
            json!({"trace_name": "support-agent", "span_name": "triage"}),
            Some(TP),
            vec!["triage [Internal] <remote>", "  chat gpt-4o-mini [Client]"],
            Some("triage"),
        ),
        (
            json!({"trace_name": "a", "span_name": "b", "generation_name": "c", "parent_span_id": "step-1"}),
            None,
            vec!["b [Internal] <remote>", "  c [Client]"],
            Some("b"),
        ),
        (
            json!({"span_name": "triage", "generation_name": "classify"}),
            Some(TP),
            vec!["triage [Internal] <remote>", "  classify [Client]"],
            None,
        ),
        (
            json!({"trace_name": "", "span_name": null, "generation_name": ""}),
            None,
            vec!["chat gpt-4o-mini [Client]"],
            None,
        ),
    ];
    for (trace, tp, want, trace_name_on) in cases {
        let r = with_trace(base(), trace.clone(), tp);
        let spans = build(&r);
        assert_eq!(tree(&spans), want, "trace {trace}, traceparent {tp:?}");
        for sp in &spans {
            let has = sp.attr("gatecast.trace_name").is_some();
            assert_eq!(
                has,
                Some(sp.name.as_str()) == trace_name_on,
                "{trace}: {}",
                sp.name
            );
            assert_eq!(sp.trace_id, r.context.trace_id);
        }
        let top = &spans[0];
        assert_eq!(top.parent_span_id, r.context.parent_span_id, "{trace}");
        assert!(spans[1..].iter().all(|s| !s.parent_is_remote));
    }
}

#[test]
fn timing_ids_and_kinds_of_the_full_tree() {
    let r = with_trace(
        base(),
        json!({"trace_name": "support-agent", "span_name": "triage", "generation_name": "classify"}),
        None,
    );
    let spans = build(&r);
    let id = |n: u8| [0, 0, 0, 0, 0, 0, 0, n];
    let [root, triage, gen] = spans.as_slice() else {
        panic!("{spans:?}")
    };
    assert_eq!((root.span_id, root.parent_span_id), (id(1), None));
    assert_eq!(
        (triage.span_id, triage.parent_span_id),
        (id(2), Some(id(1)))
    );
    assert_eq!((gen.span_id, gen.parent_span_id), (id(3), Some(id(2))));
    assert_eq!(
        (root.role, triage.role, gen.role),
        (SpanRole::Root, SpanRole::Span, SpanRole::Generation)
    );
    assert_eq!(
        (root.kind, triage.kind, gen.kind),
        (SpanKind::Server, SpanKind::Internal, SpanKind::Client)
    );
    for s in &spans {
        assert_eq!(s.start_unix_nanos, T0);
        assert_eq!(s.end_unix_nanos, T0 + 120_000_000);
    }
    assert!(
        root.attributes.is_empty() && triage.attributes.is_empty(),
        "no duplicated attributes"
    );
}

#[test]
fn ids_from_strings_hex_and_traceparent() {
    let sha = |s: &str| Sha256::digest(s.as_bytes()).to_vec();

    let r = with_trace(
        base(),
        json!({"trace_id": "run-42", "parent_span_id": "step-1"}),
        None,
    );
    let g = build(&r).remove(0);
    assert_eq!(g.trace_id.to_vec(), sha("run-42")[..16]);
    assert_eq!(g.parent_span_id.unwrap().to_vec(), sha("step-1")[..8]);
    assert!(g.parent_is_remote);

    let r = with_trace(
        base(),
        json!({"trace_id": "0AF7651916CD43DD8448EB211C80319C", "parent_span_id": "B7AD6B7169203331"}),
        None,
    );
    let g = build(&r).remove(0);
    assert_eq!(hex::encode(g.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex::encode(g.parent_span_id.unwrap()), "b7ad6b7169203331");

    let r = with_trace(base(), json!({}), Some(TP));
    let g = build(&r).remove(0);
    assert_eq!(hex::encode(g.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex::encode(g.parent_span_id.unwrap()), "00f067aa0ba902b7");
    assert!(g.parent_is_remote);

    // trace_id wins over traceparent; the parent still continues the caller's span.
    let r = with_trace(base(), json!({"trace_id": "run-42"}), Some(TP));
    let g = build(&r).remove(0);
    assert_eq!(g.trace_id.to_vec(), sha("run-42")[..16]);
    assert_eq!(hex::encode(g.parent_span_id.unwrap()), "00f067aa0ba902b7");

    // Random span ids (no seed) are never zero and differ.
    let spans = build_spans(
        &with_trace(base(), json!({"trace_name": "t", "span_name": "s"}), None),
        &SpanOptions::default(),
    );
    assert!(spans.iter().all(|s| s.span_id != [0; 8]));
    assert_ne!(spans[0].span_id, spans[1].span_id);
}

#[test]
fn the_generation_attributes_in_order() {
    let mut r = with_trace(
        base(),
        json!({"trace_id": "run-42", "customer": "acme", "environment": "prod", "release": "1.2.3"}),
        None,
    );
    r.request.max_tokens = Some(256);
    r.request.temperature = Some(0.2);
    r.request.top_p = Some(0.9);
    r.request.frequency_penalty = Some(0.1);
    r.request.presence_penalty = Some(-0.5);
    r.request.seed = Some(7);
    r.request.stop_sequences = vec!["END".into()];
    r.request.choice_count = Some(1);
    r.context.user = Some("u-17".into());
    r.context.session_id = Some("chat-9".into());
    r.key_name = Some("team-a".into());
    let spans = build(&r);
    let g = generation(&spans);
    let want: Vec<(&str, AttrValue)> = vec![
        ("gen_ai.operation.name", s("chat")),
        ("gen_ai.provider.name", s("openai")),
        ("gen_ai.request.model", s("gpt-4o-mini")),
        ("gen_ai.request.max_tokens", AttrValue::Int(256)),
        ("gen_ai.request.temperature", AttrValue::Double(0.2)),
        ("gen_ai.request.top_p", AttrValue::Double(0.9)),
        ("gen_ai.request.frequency_penalty", AttrValue::Double(0.1)),
        ("gen_ai.request.presence_penalty", AttrValue::Double(-0.5)),
        ("gen_ai.request.seed", AttrValue::Int(7)),
        (
            "gen_ai.request.stop_sequences",
            AttrValue::StringArray(vec!["END".into()]),
        ),
        ("gen_ai.request.choice.count", AttrValue::Int(1)),
        ("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
        ("gen_ai.response.id", s("chatcmpl-1")),
        (
            "gen_ai.response.finish_reasons",
            AttrValue::StringArray(vec!["stop".into()]),
        ),
        ("gen_ai.usage.input_tokens", AttrValue::Int(12)),
        ("gen_ai.usage.output_tokens", AttrValue::Int(5)),
        ("gen_ai.usage.cache_read.input_tokens", AttrValue::Int(4)),
        ("gen_ai.usage.reasoning.output_tokens", AttrValue::Int(0)),
        ("gen_ai.conversation.id", s("chat-9")),
        ("session.id", s("chat-9")),
        ("user.id", s("u-17")),
        ("trace.metadata.customer", s("acme")),
        ("trace.metadata.environment", s("prod")),
        ("deployment.environment.name", s("prod")),
        ("trace.metadata.release", s("1.2.3")),
        ("server.address", s("api.openai.com")),
        ("server.port", AttrValue::Int(443)),
        ("gatecast.provider", s("up")),
        ("gatecast.route", s("up/gpt-4o-mini")),
        ("gatecast.key.name", s("team-a")),
        ("gatecast.attempts", AttrValue::Int(1)),
        ("gatecast.latency.gateway_ms", AttrValue::Double(20.0)),
        (
            "gen_ai.output.messages",
            s(
                r#"[{"finish_reason":"stop","parts":[{"content":"Hello!","type":"text"}],"role":"assistant"}]"#,
            ),
        ),
    ];
    let got: Vec<(&str, AttrValue)> = g
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(g.status, SpanStatus::Unset);
    assert_eq!(spans.len(), 1, "a single try has no attempt span");
}

#[test]
fn content_is_mapped_to_parts() {
    let mut r = base();
    r.request.messages = Some(Content {
        json: json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"}
        ])
        .to_string(),
        truncated: false,
    });
    r.request.tools = Some(Content {
        json: json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
        .to_string(),
        truncated: false,
    });
    r.output.choices[0].text = "It is 21°C.".into();
    let spans = build(&r);
    let g = generation(&spans);
    let parse =
        |k: &str| -> Value { serde_json::from_str(g.attr(k).unwrap().as_str().unwrap()).unwrap() };
    assert_eq!(
        parse("gen_ai.system_instructions"),
        json!([{"type": "text", "content": "You are terse."}])
    );
    assert_eq!(
        parse("gen_ai.input.messages"),
        json!([
            {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "{\"temp\":21}"}]}
        ])
    );
    assert_eq!(
        parse("gen_ai.output.messages"),
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "It is 21°C."}], "finish_reason": "stop"}])
    );
    assert_eq!(
        parse("gen_ai.tool.definitions"),
        json!([{"type": "function", "name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    for deprecated in [
        "gen_ai.request.messages",
        "gen_ai.response.text",
        "gen_ai.prompt",
        "gen_ai.completion",
    ] {
        assert!(g.attr(deprecated).is_none(), "{deprecated}");
    }
    assert!(keys(g).iter().all(|k| !k.ends_with(".truncated")));
}

#[test]
fn tool_calls_plain_and_streamed() {
    // Plain: complete arguments become objects. Streamed and cut: partial JSON stays text.
    for (args, want) in [
        ("{\"q\":\"rust\"}", json!({"q": "rust"})),
        ("{\"q\":\"ru", json!("{\"q\":\"ru")),
    ] {
        for stream in [false, true] {
            let mut r = base();
            r.request.stream = stream;
            r.request.messages = Some(Content {
                json: r#"[{"role":"user","content":"search"}]"#.into(),
                truncated: false,
            });
            r.output.choices = vec![Choice {
                index: 0,
                role: Some("assistant".into()),
                text: String::new(),
                tool_calls: vec![
                    ToolCall {
                        id: Some("call_a".into()),
                        name: "search".into(),
                        arguments: args.into(),
                    },
                    ToolCall {
                        id: Some("call_b".into()),
                        name: "noop".into(),
                        arguments: String::new(),
                    },
                ],
                finish_reason: Some("tool_calls".into()),
            }];
            let spans = build(&r);
            let g = generation(&spans);
            let out: Value =
                serde_json::from_str(g.attr("gen_ai.output.messages").unwrap().as_str().unwrap())
                    .unwrap();
            assert_eq!(
                out,
                json!([{"role": "assistant", "finish_reason": "tool_call", "parts": [
                    {"type": "tool_call", "id": "call_a", "name": "search", "arguments": want},
                    {"type": "tool_call", "id": "call_b", "name": "noop", "arguments": ""}
                ]}]),
                "a tool-call turn is never an empty completion"
            );
            assert_eq!(
                g.attr("gen_ai.response.finish_reasons"),
                Some(&AttrValue::StringArray(vec!["tool_calls".into()]))
            );
        }
    }
}

#[test]
fn streaming_has_time_to_first_chunk() {
    let mut r = base();
    r.timings.first_chunk = Some(ms(250));
    let g = build(&r).remove(0);
    assert!(
        g.attr("gen_ai.response.time_to_first_chunk").is_none(),
        "streaming only"
    );
    assert!(
        g.attr("gen_ai.request.stream").is_none(),
        "set only when the request streams"
    );

    r.request.stream = true;
    let g = build(&r).remove(0);
    assert_eq!(
        g.attr("gen_ai.response.time_to_first_chunk"),
        Some(&AttrValue::Double(0.25))
    );
    assert_eq!(
        g.attr("gen_ai.request.stream"),
        Some(&AttrValue::Bool(true))
    );
}

#[test]
fn multiple_choices() {
    let mut r = base();
    r.request.choice_count = Some(2);
    r.request.messages = Some(Content {
        json: r#"[{"role":"user","content":"two please"}]"#.into(),
        truncated: false,
    });
    r.output.choices = vec![
        Choice {
            index: 0,
            role: Some("assistant".into()),
            text: "one".into(),
            tool_calls: vec![],
            finish_reason: Some("stop".into()),
        },
        Choice {
            index: 1,
            role: Some("assistant".into()),
            text: "tw".into(),
            tool_calls: vec![],
            finish_reason: Some("length".into()),
        },
    ];
    let g = build(&r).remove(0);
    assert_eq!(
        g.attr("gen_ai.request.choice.count"),
        Some(&AttrValue::Int(2))
    );
    assert_eq!(
        g.attr("gen_ai.response.finish_reasons"),
        Some(&AttrValue::StringArray(vec![
            "stop".into(),
            "length".into()
        ]))
    );
    let out: Value =
        serde_json::from_str(g.attr("gen_ai.output.messages").unwrap().as_str().unwrap()).unwrap();
    assert_eq!(
        out,
        json!([
            {"role": "assistant", "parts": [{"type": "text", "content": "one"}], "finish_reason": "stop"},
            {"role": "assistant", "parts": [{"type": "text", "content": "tw"}], "finish_reason": "length"}
        ])
    );
}

#[test]
fn every_error_kind() {
    let kinds = [
        (ErrorKind::InvalidRequest, "invalid_request", Some(400)),
        (ErrorKind::Unauthorized, "unauthorized", Some(401)),
        (ErrorKind::BudgetExceeded, "budget_exceeded", Some(429)),
        (ErrorKind::ModelNotFound, "model_not_found", Some(404)),
        (ErrorKind::Provider, "provider_error", Some(429)),
        (ErrorKind::Unreachable, "upstream_unreachable", Some(502)),
        (ErrorKind::Timeout, "timeout", Some(504)),
        (ErrorKind::StreamAborted, "stream_aborted", None),
        (ErrorKind::StreamError, "stream_error", Some(200)),
        (ErrorKind::ResponseTooLarge, "response_too_large", Some(502)),
        (ErrorKind::Cancelled, "cancelled", None),
    ];
    for (kind, want, http) in kinds {
        let mut r = base();
        r.status = Status::Error(ErrorInfo {
            kind,
            http_status: http,
            message: format!("{want} happened"),
        });
        let g = build(&r).remove(0);
        assert_eq!(g.attr("error.type"), Some(&s(want)));
        assert_eq!(g.status, SpanStatus::Error(format!("{want} happened")));
        assert_eq!(
            g.attr("gatecast.response.status_code"),
            http.map(|c| AttrValue::Int(i64::from(c))).as_ref(),
            "{want}"
        );
        assert!(
            keys(&g).iter().all(|k| !k.starts_with("http.")),
            "no http.* on the generation"
        );
    }

    // A validation failure before routing: no provider, the model as the client sent it.
    let mut r = base();
    r.route = None;
    r.attempts.clear();
    r.usage = None;
    r.output = Default::default();
    r.request.model = "nope".into();
    r.status = Status::Error(ErrorInfo {
        kind: ErrorKind::ModelNotFound,
        http_status: Some(404),
        message: String::new(),
    });
    let spans = build(&r);
    assert_eq!(tree(&spans), ["chat nope [Client]"]);
    let g = &spans[0];
    assert_eq!(g.attr("gen_ai.request.model"), Some(&s("nope")));
    assert_eq!(g.attr("gen_ai.provider.name"), Some(&s("unknown")));
    assert!(g.attr("gatecast.attempts").is_none());
    assert_eq!(
        g.status,
        SpanStatus::Error("model_not_found".into()),
        "empty message falls back to the type"
    );

    r.request.model = String::new();
    assert_eq!(build(&r)[0].name, "chat");
}

#[test]
fn retries_and_fallbacks_get_attempt_spans() {
    let mut r = with_trace(base(), json!({"generation_name": "classify"}), None);
    r.attempts = vec![
        gatecast_telemetry::record::Attempt {
            provider: "dead".into(),
            model: "gpt-4o-mini".into(),
            url: Some("http://127.0.0.1:1/v1/chat/completions".into()),
            http_status: None,
            error: Some("connect".into()),
            start: ms(1),
            end: ms(3),
        },
        gatecast_telemetry::record::Attempt {
            provider: "up".into(),
            model: "gpt-4o-mini".into(),
            url: Some("https://api.openai.com/v1/chat/completions".into()),
            http_status: Some(503),
            error: Some("http 503".into()),
            start: ms(4),
            end: ms(50),
        },
        gatecast_telemetry::record::Attempt {
            provider: "up".into(),
            model: "gpt-4o-mini".into(),
            url: Some("https://api.openai.com/v1/chat/completions".into()),
            http_status: Some(200),
            error: None,
            start: ms(60),
            end: ms(110),
        },
    ];
    let spans = build(&r);
    assert_eq!(
        tree(&spans),
        [
            "classify [Client]",
            "  POST [Client]",
            "  POST [Client]",
            "  POST [Client]"
        ]
    );
    let g = named(&spans, "classify");
    assert_eq!(g.attr("gatecast.attempts"), Some(&AttrValue::Int(3)));
    assert!(keys(g)
        .iter()
        .all(|k| !k.starts_with("http.") && !k.starts_with("url.")));

    let a1 = &spans[1];
    assert_eq!(a1.attr("gatecast.provider"), Some(&s("dead")));
    assert_eq!(a1.role, SpanRole::Attempt);
    assert_eq!(a1.parent_span_id, Some(g.span_id));
    assert_eq!(
        (a1.start_unix_nanos, a1.end_unix_nanos),
        (T0 + 1_000_000, T0 + 3_000_000)
    );
    assert_eq!(a1.attr("http.request.method"), Some(&s("POST")));
    assert_eq!(a1.attr("server.address"), Some(&s("127.0.0.1")));
    assert_eq!(a1.attr("server.port"), Some(&AttrValue::Int(1)));
    assert_eq!(a1.attr("error.type"), Some(&s("connect")));
    assert!(a1.attr("http.response.status_code").is_none());
    assert_eq!(a1.status, SpanStatus::Error("connect".into()));

    let a2 = &spans[2];
    assert_eq!(
        a2.attr("http.response.status_code"),
        Some(&AttrValue::Int(503))
    );
    assert_eq!(a2.attr("error.type"), Some(&s("503")));
    assert_eq!(
        a2.attr("url.full"),
        Some(&s("https://api.openai.com/v1/chat/completions"))
    );

    let a3 = &spans[3];
    assert_eq!(a3.status, SpanStatus::Unset);
    assert!(a3.attr("error.type").is_none());
}

#[test]
fn metadata_of_every_json_type() {
    let mut trace = json!({
        "s": "x", "i": 3, "neg": -4, "big": 18446744073709551615u64, "f": 1.5, "b": true,
        "a": [1, "two"], "o": {"k": "v"}, "n": null,
        "environment": "prod", "release": 123,
        "trace_id": "t", "trace_name": "tn", "span_name": "sn", "generation_name": "gn", "parent_span_id": "p"
    });
    for i in 0..130 {
        trace[format!("z{i:03}")] = json!(i);
    }
    let r = with_trace(base(), trace, None);
    let spans = build(&r);
    let g = generation(&spans);
    let m = |k: &str| g.attr(&format!("trace.metadata.{k}")).cloned();
    assert_eq!(m("s"), Some(s("x")));
    assert_eq!(m("i"), Some(AttrValue::Int(3)));
    assert_eq!(m("neg"), Some(AttrValue::Int(-4)));
    assert_eq!(
        m("big"),
        Some(s("18446744073709551615")),
        "beyond i64: exact text"
    );
    assert_eq!(m("f"), Some(AttrValue::Double(1.5)));
    assert_eq!(m("b"), Some(AttrValue::Bool(true)));
    assert_eq!(m("a"), Some(s("[1,\"two\"]")));
    assert_eq!(m("o"), Some(s("{\"k\":\"v\"}")));
    assert_eq!(m("n"), None, "OTLP has no null");
    assert_eq!(m("environment"), Some(s("prod")));
    assert_eq!(m("release"), Some(s("123")), "reserved keys are text");
    assert_eq!(g.attr("deployment.environment.name"), Some(&s("prod")));
    for reserved in [
        "trace_id",
        "trace_name",
        "span_name",
        "generation_name",
        "parent_span_id",
    ] {
        assert!(
            m(reserved).is_none(),
            "{reserved} is structure, not metadata"
        );
    }
    // 9 custom keys before the z's + 130 z's = 139 custom; 128 kept.
    assert_eq!(
        g.attr("gatecast.metadata.dropped_keys"),
        Some(&AttrValue::Int(11))
    );
    let custom = keys(g)
        .iter()
        .filter(|k| k.starts_with("trace.metadata."))
        .count();
    assert_eq!(
        custom,
        128 - 1 + 2,
        "128 custom keys minus the null one, plus environment and release"
    );
}

fn long_conversation(n: usize) -> Content {
    let msgs: Vec<Value> = (0..n)
        .map(|i| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": format!("message {i} {}", "x".repeat(200))}))
        .collect();
    Content {
        json: Value::from(msgs).to_string(),
        truncated: false,
    }
}

#[test]
fn truncation_is_never_silent() {
    let mut r = with_trace(base(), json!({"note": "n".repeat(3000)}), None);
    r.request.messages = Some(long_conversation(40));
    r.output.choices[0].text = "y".repeat(5000);
    let spans = build_spans(
        &r,
        &SpanOptions {
            max_attribute_bytes: 2048,
            id_seed: Some(1),
        },
    );
    let g = generation(&spans);
    let input = g.attr("gen_ai.input.messages").unwrap().as_str().unwrap();
    assert!(input.len() <= 2048);
    let kept: Vec<Value> = serde_json::from_str(input).expect("still valid JSON");
    assert!(kept.len() >= 2 && kept.len() < 40);
    let text = |v: &Value| v["parts"][0]["content"].as_str().unwrap().to_owned();
    assert!(
        text(&kept[0]).starts_with("message 0 "),
        "the start survives"
    );
    assert!(
        text(kept.last().unwrap()).starts_with("message 39 "),
        "the latest turn survives"
    );
    assert_eq!(
        g.attr("gen_ai.input.messages.truncated"),
        Some(&AttrValue::Bool(true))
    );

    let output = g.attr("gen_ai.output.messages").unwrap().as_str().unwrap();
    assert!(output.len() <= 2048);
    let out: Value =
        serde_json::from_str(output).expect("a single huge message is shortened inside");
    assert_eq!(out[0]["finish_reason"], "stop");
    assert_eq!(
        g.attr("gen_ai.output.messages.truncated"),
        Some(&AttrValue::Bool(true))
    );

    let note = g.attr("trace.metadata.note").unwrap().as_str().unwrap();
    assert_eq!(note.len(), 2048);
    assert_eq!(
        g.attr("trace.metadata.note.truncated"),
        Some(&AttrValue::Bool(true))
    );
    assert!(g.attr("gen_ai.request.model.truncated").is_none());

    // Content the proxy already cut is marked even when it fits now.
    let mut r = base();
    r.request.messages = Some(Content {
        json: r#"[{"role":"system","content":"s"},{"role":"user","content":"u"}]"#.into(),
        truncated: true,
    });
    r.request.tools = Some(Content {
        json: "[]".into(),
        truncated: true,
    });
    r.output.truncated = true;
    let g = build(&r).remove(0);
    for key in [
        "gen_ai.input.messages",
        "gen_ai.system_instructions",
        "gen_ai.output.messages",
        "gen_ai.tool.definitions",
    ] {
        assert!(g.attr(key).is_some(), "{key}");
        assert_eq!(
            g.attr(&format!("{key}.truncated")),
            Some(&AttrValue::Bool(true)),
            "{key}"
        );
    }
}

/// A client's 10 MiB `model` once made a 10 MiB span name and a 21 MB export line.
#[test]
fn a_huge_model_or_name_is_bounded_and_marked() {
    let huge = "é".repeat(5 << 20);
    let mut r = with_trace(base(), json!({"trace_name": huge.clone()}), None);
    r.route = None;
    r.attempts.clear();
    r.request.model = huge.clone();
    // As a proxy that quoted the model whole would have recorded it.
    r.status = Status::Error(ErrorInfo {
        kind: ErrorKind::ModelNotFound,
        http_status: Some(404),
        message: format!("the model `{huge}` does not exist"),
    });
    let limit = 4096;
    let spans = build_spans(
        &r,
        &SpanOptions {
            max_attribute_bytes: limit,
            id_seed: Some(1),
        },
    );
    assert_eq!(spans.len(), 2, "root and generation");
    let marked = Some(&AttrValue::Bool(true));
    for span in &spans {
        assert!(
            span.name.len() <= limit,
            "{:?}: {}",
            span.role,
            span.name.len()
        );
        assert!(span.name.len() > limit - 4, "cut, not emptied");
        assert_eq!(span.attr("gatecast.span_name.truncated"), marked);
    }
    assert!(spans[0].name.starts_with("éé"));
    let g = generation(&spans);
    assert!(g.name.starts_with("chat éé"));
    assert_eq!(g.attr("gen_ai.request.model.truncated"), marked);
    assert!(
        g.attr("gen_ai.request.model")
            .unwrap()
            .as_str()
            .unwrap()
            .len()
            <= limit
    );
    match &g.status {
        SpanStatus::Error(m) => {
            assert!(
                m.len() <= limit && m.starts_with("the model `éé"),
                "{}",
                m.len()
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.attr("gatecast.status_message.truncated"), marked);

    // The markers survive privacy, and Sentry's copies of the name are the bounded name.
    let mut private = spans.clone();
    apply_privacy(&mut private);
    apply_sentry_flavor(&mut private);
    for span in &private {
        assert_eq!(span.attr("gatecast.span_name.truncated"), marked);
        assert_eq!(span.attr("sentry.description"), Some(&s(&span.name)));
    }
    assert_eq!(
        private[0].attr("gen_ai.agent.name"),
        Some(&s(&private[0].name))
    );

    // Short names are left alone and unmarked.
    let g = build(&base()).remove(0);
    assert_eq!(g.name, "chat gpt-4o-mini");
    assert!(g.attributes.iter().all(|(k, _)| !k.ends_with(".truncated")));
}

const CANARY: &str = "canary-7f3a9c";

fn canary_record() -> GenerationRecord {
    let mut r = with_trace(
        base(),
        json!({"trace_name": "agent", "span_name": "step", "customer": "acme", "environment": "prod", "release": "1.2"}),
        None,
    );
    r.context.user = Some("u-17".into());
    r.context.session_id = Some("chat-9".into());
    r.request.messages = Some(Content {
        json: json!([
            {"role": "system", "content": format!("system {CANARY}")},
            {"role": "user", "content": format!("user {CANARY}")},
            {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function",
                "function": {"name": "f", "arguments": format!("{{\"secret\":\"{CANARY}\"}}")}}]},
            {"role": "tool", "tool_call_id": "c0", "content": format!("tool {CANARY}")}
        ])
        .to_string(),
        truncated: false,
    });
    r.request.tools = Some(Content {
        json: json!([{"type": "function", "function": {"name": "f", "description": format!("tool {CANARY}")}}]).to_string(),
        truncated: true,
    });
    r.output.choices[0].text = format!("answer {CANARY}");
    r.output.choices[0].tool_calls = vec![ToolCall {
        id: Some("c1".into()),
        name: "f".into(),
        arguments: format!("{{\"a\":\"{CANARY}\"}}"),
    }];
    r.status = Status::Error(ErrorInfo {
        kind: ErrorKind::Provider,
        http_status: Some(400),
        message: format!("provider says: your prompt '{CANARY}' is invalid"),
    });
    r.attempts.push(r.attempts[0].clone());
    r
}

#[test]
fn privacy_off_keeps_content() {
    let spans = build(&canary_record());
    let text = all_text(&spans);
    assert!(
        text.matches(CANARY).count() >= 7,
        "every content field carries the canary"
    );
}

#[test]
fn privacy_on_drops_all_content_and_keeps_the_rest() {
    let mut spans = build(&canary_record());
    let before = spans.clone();
    apply_privacy(&mut spans);
    assert!(!all_text(&spans).contains(CANARY), "{spans:#?}");
    // Ids, names, kinds, timing and status codes survive.
    assert_eq!(spans.len(), before.len());
    for (a, b) in spans.iter().zip(&before) {
        assert_eq!(
            (
                a.span_id,
                a.parent_span_id,
                &a.name,
                a.kind,
                a.start_unix_nanos,
                a.end_unix_nanos
            ),
            (
                b.span_id,
                b.parent_span_id,
                &b.name,
                b.kind,
                b.start_unix_nanos,
                b.end_unix_nanos
            )
        );
        assert_eq!(
            matches!(a.status, SpanStatus::Error(_)),
            matches!(b.status, SpanStatus::Error(_))
        );
    }
    let g = generation(&spans);
    assert_eq!(
        g.status,
        SpanStatus::Error("provider_error".into()),
        "message replaced by the type"
    );
    let want = [
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.conversation.id",
        "session.id",
        "user.id",
        "trace.metadata.customer",
        "trace.metadata.environment",
        "deployment.environment.name",
        "trace.metadata.release",
        "server.address",
        "server.port",
        "gatecast.provider",
        "gatecast.route",
        "gatecast.attempts",
        "gatecast.latency.gateway_ms",
        "error.type",
        "gatecast.response.status_code",
    ];
    assert_eq!(keys(g), want);
    let attempt = spans.iter().find(|s| s.role == SpanRole::Attempt).unwrap();
    assert!(attempt.attr("url.full").is_none(), "URLs may carry keys");
    assert!(attempt.attr("http.response.status_code").is_some());
}

/// `stop` sequences are client text: a private span drops them and keeps every numeric or
/// flag parameter of the request.
#[test]
fn privacy_drops_stop_sequences_and_keeps_the_numeric_parameters() {
    let mut r = base();
    r.request.max_tokens = Some(256);
    r.request.temperature = Some(0.2);
    r.request.top_p = Some(0.9);
    r.request.frequency_penalty = Some(0.1);
    r.request.presence_penalty = Some(-0.5);
    r.request.seed = Some(7);
    r.request.stop_sequences = vec![format!("stop {CANARY}")];
    r.request.choice_count = Some(2);
    r.request.stream = true;
    let mut spans = build(&r);
    assert!(generation(&spans)
        .attr("gen_ai.request.stop_sequences")
        .is_some());
    apply_privacy(&mut spans);
    assert!(!all_text(&spans).contains(CANARY), "{spans:#?}");
    let g = generation(&spans);
    assert!(g.attr("gen_ai.request.stop_sequences").is_none());
    let params: Vec<(&str, AttrValue)> = g
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("gen_ai.request."))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let want: Vec<(&str, AttrValue)> = vec![
        ("gen_ai.request.model", s("gpt-4o-mini")),
        ("gen_ai.request.max_tokens", AttrValue::Int(256)),
        ("gen_ai.request.temperature", AttrValue::Double(0.2)),
        ("gen_ai.request.top_p", AttrValue::Double(0.9)),
        ("gen_ai.request.frequency_penalty", AttrValue::Double(0.1)),
        ("gen_ai.request.presence_penalty", AttrValue::Double(-0.5)),
        ("gen_ai.request.seed", AttrValue::Int(7)),
        ("gen_ai.request.choice.count", AttrValue::Int(2)),
        ("gen_ai.request.stream", AttrValue::Bool(true)),
    ];
    assert_eq!(params, want);
}

#[test]
fn sentry_flavor_after_privacy() {
    for private in [false, true] {
        let mut spans = build(&canary_record());
        if private {
            apply_privacy(&mut spans);
        }
        let before = all_text(&spans).matches(CANARY).count();
        apply_sentry_flavor(&mut spans);
        assert_eq!(
            all_text(&spans).matches(CANARY).count(),
            before,
            "flavor adds no content"
        );
        let op = |name: &str| named(&spans, name).attr("sentry.op").cloned();
        assert_eq!(op("agent"), Some(s("gen_ai.invoke_agent")));
        assert_eq!(op("step"), Some(s("function")));
        assert_eq!(op("chat gpt-4o-mini"), Some(s("gen_ai.chat")));
        assert_eq!(op("POST"), Some(s("http.client")));
        for sp in &spans {
            assert_eq!(sp.attr("sentry.description"), Some(&s(&sp.name)));
            assert_eq!(sp.attr("sentry.environment"), Some(&s("prod")));
            assert_eq!(sp.attr("sentry.release"), Some(&s("1.2")));
        }
        let g = generation(&spans);
        assert_eq!(
            g.attr("gen_ai.usage.total_tokens"),
            Some(&AttrValue::Int(17))
        );
        assert_eq!(
            named(&spans, "agent").attr("gen_ai.agent.name"),
            Some(&s("agent"))
        );
        // Idempotent: applying twice changes nothing.
        let once = spans.clone();
        apply_sentry_flavor(&mut spans);
        assert_eq!(spans, once);
    }
}

#[test]
fn an_unrouted_generation_names_the_provider_from_the_requested_model() {
    let mut r = base();
    r.route = None;
    r.attempts.clear();
    r.status = Status::Error(ErrorInfo {
        kind: ErrorKind::ModelNotFound,
        http_status: Some(404),
        message: String::new(),
    });
    for (model, want) in [
        ("openai/gpt-x", "openai"),
        ("up/org/model", "up"),
        ("gpt-x", "unknown"),
        ("/gpt-x", "unknown"),
        ("", "unknown"),
    ] {
        r.request.model = model.into();
        let mut spans = build(&r);
        assert_eq!(
            generation(&spans).attr("gen_ai.provider.name"),
            Some(&s(want)),
            "{model}"
        );
        apply_privacy(&mut spans);
        assert_eq!(
            generation(&spans).attr("gen_ai.provider.name"),
            Some(&s(want)),
            "kept by privacy"
        );
    }
    // A route without a kind (a record written by hand) falls back the same way.
    let mut r = base();
    r.route.as_mut().unwrap().provider_kind.clear();
    r.request.model = "anthropic/claude".into();
    assert_eq!(
        generation(&build(&r)).attr("gen_ai.provider.name"),
        Some(&s("anthropic"))
    );
}

#[test]
fn a_failed_generation_without_a_finish_reason_ends_in_error() {
    let error = || {
        Status::Error(ErrorInfo {
            kind: ErrorKind::Timeout,
            http_status: Some(504),
            message: "upstream timed out".into(),
        })
    };
    let reasons = |r: &GenerationRecord| {
        generation(&build(r))
            .attr("gen_ai.response.finish_reasons")
            .cloned()
    };
    let mut r = base();
    r.output = Default::default();
    r.status = error();
    assert_eq!(
        reasons(&r),
        Some(AttrValue::StringArray(vec!["error".into()]))
    );

    // Choices that ended but carry no reason count as none.
    r.output.choices = vec![Choice {
        index: 0,
        role: Some("assistant".into()),
        text: "part".into(),
        tool_calls: vec![],
        finish_reason: None,
    }];
    assert_eq!(
        reasons(&r),
        Some(AttrValue::StringArray(vec!["error".into()]))
    );

    // The record's own reason wins over the placeholder.
    r.output.choices[0].finish_reason = Some("length".into());
    assert_eq!(
        reasons(&r),
        Some(AttrValue::StringArray(vec!["length".into()]))
    );

    // A success without a reason gets none invented.
    let mut r = base();
    r.output = Default::default();
    assert_eq!(reasons(&r), None);
}

#[test]
fn the_stream_flag_is_set_only_when_the_request_streams() {
    let mut r = base();
    r.request.stream = false;
    let g = generation(&build(&r)).clone();
    assert!(g.attr("gen_ai.request.stream").is_none(), "never false");
    r.request.stream = true;
    assert_eq!(
        generation(&build(&r)).attr("gen_ai.request.stream"),
        Some(&AttrValue::Bool(true))
    );
}

#[test]
fn attempt_spans_follow_the_http_client_naming() {
    let mut r = base();
    let attempt =
        |provider: &str, http_status, error: Option<&str>| gatecast_telemetry::record::Attempt {
            provider: provider.into(),
            model: "gpt-4o-mini".into(),
            url: Some("https://api.openai.com/v1/chat/completions".into()),
            http_status,
            error: error.map(str::to_owned),
            start: ms(1),
            end: ms(2),
        };
    r.attempts = vec![
        attempt("dead", None, Some("connect")),
        attempt("up", Some(200), None),
    ];
    for private in [false, true] {
        let mut spans = build(&r);
        if private {
            apply_privacy(&mut spans);
        }
        let attempts: Vec<&SpanModel> = spans
            .iter()
            .filter(|sp| sp.role == SpanRole::Attempt)
            .collect();
        assert_eq!(attempts.len(), 2);
        for (n, (a, provider)) in attempts.iter().zip(["dead", "up"]).enumerate() {
            assert_eq!(
                a.name, "POST",
                "`{{method}}` per the HTTP client conventions"
            );
            assert_eq!(a.kind, SpanKind::Client);
            assert_eq!(a.attr("http.request.method"), Some(&s("POST")));
            assert_eq!(
                a.attr("gatecast.attempt"),
                Some(&AttrValue::Int(n as i64 + 1)),
                "private: {private}"
            );
            assert_eq!(a.attr("gatecast.provider"), Some(&s(provider)));
        }
    }
}
