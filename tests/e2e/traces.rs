//! Every exchange becomes a faithful GenAI trace in the exported OTLP.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{attr, hex, span_named, trace_id_of, Env};

fn sha_prefix(s: &str, n: usize) -> String {
    hex(&Sha256::digest(s.as_bytes())[..n])
}

#[tokio::test]
async fn developers_example_lands_where_users_look() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({
            "model": "up/gpt-4o-mini",
            "messages": [{"role": "user", "content": "classify this ticket"}],
            "trace": {"trace_id": "run-42", "trace_name": "support-agent", "span_name": "triage",
                      "generation_name": "classify", "customer": "acme"},
            "user": "u-17", "session_id": "chat-9"
        }))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    assert_eq!(
        trace_id,
        sha_prefix("run-42", 16),
        "trace id is derived from run-42"
    );

    let spans = env.spans_of(&trace_id, 3).await;
    assert_eq!(
        spans.len(),
        3,
        "root, span and generation; no attempt span for a single try"
    );
    let root = span_named(&spans, "support-agent");
    let triage = span_named(&spans, "triage");
    let generation = span_named(&spans, "classify");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(triage.parent_span_id, root.span_id);
    assert_eq!(generation.parent_span_id, triage.span_id);
    assert_eq!(root.kind, 2, "SERVER");
    assert_eq!(triage.kind, 1, "INTERNAL");
    assert_eq!(generation.kind, 3, "CLIENT");

    assert_eq!(
        attr(generation, "gen_ai.operation.name"),
        Some(json!("chat"))
    );
    assert_eq!(
        attr(generation, "gen_ai.request.model"),
        Some(json!("gpt-4o-mini"))
    );
    assert_eq!(
        attr(generation, "gen_ai.response.model"),
        Some(json!("gpt-4o-mini"))
    );
    assert_eq!(
        attr(generation, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    assert!(
        attr(generation, "gen_ai.usage.input_tokens")
            .and_then(|v| v.as_i64())
            .unwrap()
            > 0
    );
    assert!(
        attr(generation, "gen_ai.usage.output_tokens")
            .and_then(|v| v.as_i64())
            .unwrap()
            > 0
    );
    assert_eq!(attr(generation, "user.id"), Some(json!("u-17")));
    assert_eq!(attr(generation, "session.id"), Some(json!("chat-9")));
    assert_eq!(
        attr(generation, "gen_ai.conversation.id"),
        Some(json!("chat-9"))
    );
    assert_eq!(
        attr(generation, "trace.metadata.customer"),
        Some(json!("acme"))
    );
    assert!(attr(generation, "gatecast.latency.gateway_ms").is_some());
    let input = attr(generation, "gen_ai.input.messages").unwrap();
    assert!(input.as_str().unwrap().contains("classify this ticket"));
    let output = attr(generation, "gen_ai.output.messages").unwrap();
    assert!(output.as_str().unwrap().contains("Mock reply to"));
    assert!(
        attr(generation, "http.request.method").is_none(),
        "no http.* on the generation"
    );
    assert!(
        attr(generation, "gen_ai.request.messages").is_none(),
        "no deprecated names"
    );
}

#[tokio::test]
async fn streamed_request_has_usage_and_time_to_first_chunk() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "stream": true,
                     "messages": [{"role": "user", "content": "stream it"}],
                     "trace": {"trace_id": "run-stream", "generation_name": "streamer"}}))
        .await;
    let trace_id = trace_id_of(&resp);
    let _ = resp.text().await.unwrap();
    let spans = env.spans_of(&trace_id, 1).await;
    let generation = span_named(&spans, "streamer");
    assert_eq!(attr(generation, "gen_ai.request.stream"), Some(json!(true)));
    assert!(
        attr(generation, "gen_ai.usage.output_tokens")
            .and_then(|v| v.as_i64())
            .unwrap()
            > 0
    );
    let ttfc = attr(generation, "gen_ai.response.time_to_first_chunk")
        .and_then(|v| v.as_f64())
        .unwrap();
    assert!(ttfc > 0.0 && ttfc < 5.0, "{ttfc}");
    assert_eq!(
        generation.status.as_ref().map(|s| s.code).unwrap_or(0),
        0,
        "unset status on success"
    );
}

#[tokio::test]
async fn failures_are_traced_with_status_error() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "nope", "messages": [], "trace": {"trace_id": "run-404"}}))
        .await;
    assert_eq!(resp.status(), 404);
    let spans = env.spans_of(&trace_id_of(&resp), 1).await;
    assert_eq!(
        attr(&spans[0], "error.type"),
        Some(json!("model_not_found"))
    );
    assert_eq!(spans[0].status.as_ref().unwrap().code, 2, "ERROR");

    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "#mock:error=500 x"}],
                     "trace": {"trace_id": "run-500"}}))
        .await;
    assert_eq!(resp.status(), 500);
    let spans = env.spans_of(&trace_id_of(&resp), 1).await;
    assert!(attr(&spans[0], "error.type").is_some());
    assert_eq!(spans[0].status.as_ref().unwrap().code, 2);
}

#[tokio::test]
async fn traceparent_is_continued_and_marked_remote() {
    let env = Env::start().await;
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(
            &json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                      "trace": {"trace_name": "ignored-as-root"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trace_id_of(&resp), "4bf92f3577b34da6a3ce929d0e0e4736");
    let spans = env.spans_of("4bf92f3577b34da6a3ce929d0e0e4736", 1).await;
    assert_eq!(
        spans.len(),
        1,
        "no root span when the caller owns the parent"
    );
    let generation = &spans[0];
    assert_eq!(hex(&generation.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(generation.flags & 0x300, 0x300, "parent is flagged remote");
    assert_eq!(
        attr(generation, "gatecast.trace_name"),
        Some(json!("ignored-as-root"))
    );
}

#[tokio::test]
async fn retries_produce_attempt_spans() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "retry/gpt-4o-mini",
                     "messages": [{"role": "user", "content": "#mock:error=503,fail_times=1 attempt spans"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let spans = env.spans_of(&trace_id_of(&resp), 3).await;
    let generation = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
    let attempts: Vec<_> = spans.iter().filter(|s| s.name == "POST").collect();
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        assert_eq!(a.parent_span_id, generation.span_id);
        assert!(attr(a, "http.response.status_code").is_some());
    }
    assert_eq!(attr(generation, "gatecast.attempts"), Some(json!(2)));
}

#[tokio::test]
async fn per_request_privacy_header_strips_content() {
    let env = Env::start().await;
    let canary = "canary-7f3a9c";
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("x-gatecast-privacy", "on")
        .json(&json!({"model": "up/gpt-4o-mini", "user": "u-1",
                      "messages": [{"role": "system", "content": canary}, {"role": "user", "content": canary}],
                      "trace": {"customer": "acme"}}))
        .send()
        .await
        .unwrap();
    let trace_id = trace_id_of(&resp);
    let _ = resp.text().await.unwrap();
    let spans = env.spans_of(&trace_id, 1).await;
    let raw = std::fs::read_to_string(&env.traces).unwrap();
    assert!(
        !raw.contains(canary),
        "content must not reach a private export"
    );
    assert_eq!(attr(&spans[0], "user.id"), Some(json!("u-1")));
    assert_eq!(
        attr(&spans[0], "trace.metadata.customer"),
        Some(json!("acme"))
    );
    assert!(attr(&spans[0], "gen_ai.usage.input_tokens").is_some());
}

#[tokio::test]
async fn metadata_of_every_json_type() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "meta"}],
                     "trace": {"s": "x", "i": 3, "f": 1.5, "b": true, "a": [1, "two"], "o": {"k": "v"},
                               "environment": "prod", "release": "1.2.3"}}))
        .await;
    let spans = env.spans_of(&trace_id_of(&resp), 1).await;
    let g = &spans[0];
    assert_eq!(attr(g, "trace.metadata.s"), Some(json!("x")));
    assert_eq!(attr(g, "trace.metadata.i"), Some(json!(3)));
    assert_eq!(attr(g, "trace.metadata.f"), Some(json!(1.5)));
    assert_eq!(attr(g, "trace.metadata.b"), Some(json!(true)));
    assert_eq!(attr(g, "trace.metadata.a"), Some(json!("[1,\"two\"]")));
    assert_eq!(attr(g, "trace.metadata.o"), Some(json!("{\"k\":\"v\"}")));
    assert_eq!(attr(g, "trace.metadata.environment"), Some(json!("prod")));
    assert_eq!(attr(g, "deployment.environment.name"), Some(json!("prod")));
    assert_eq!(attr(g, "trace.metadata.release"), Some(json!("1.2.3")));
}

#[tokio::test]
async fn shutdown_flushes_the_file_destination() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = env.chat(json!({"model": "mock-model", "messages": [{"role": "user", "content": format!("n{i}")}]})).await;
        ids.push(trace_id_of(&resp));
        let _ = resp.bytes().await;
    }
    let text = env.stop().await;
    for id in ids {
        let want: Value = json!(id);
        assert!(
            text.contains(want.as_str().unwrap()),
            "trace {id} flushed on shutdown"
        );
    }
}

/// A 200 stream that fails (an error event, or an end with neither `[DONE]` nor a finish
/// reason) is an ERROR span with `error.type = "stream_error"`; the provider's message is its
/// status message only where content is allowed, and the client's bytes are the provider's.
#[tokio::test]
async fn an_error_inside_a_200_stream_is_traced_as_a_stream_error() {
    let private = gatecast_mock::otlp::Receiver::http(gatecast_mock::otlp::Behaviour::Ok).await;
    let extra = format!(
        "\n[[destinations]]\nname = \"private\"\ntype = \"otlp\"\nendpoint = \"{}\"\nprotocol = \"http/json\"\nflush_interval_ms = 20\nprivacy_mode = true\n",
        private.url("/v1/traces")
    );
    let env = Env::with_extra(&extra).await;
    let cases = [
        ("#mock:stream_error_after=2 fail", "mock stream error"),
        (
            "#mock:truncate_after=3 cut short",
            "the provider ended the stream without [DONE] or a finish reason",
        ),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let messages = json!([{"role": "user", "content": text}]);
        let resp = env
            .chat(json!({"model": "up/gpt-4o-mini", "stream": true, "messages": messages,
                         "trace": {"trace_id": format!("stream-error-{i}"), "generation_name": "streamer"}}))
            .await;
        assert_eq!(resp.status(), 200);
        let trace_id = trace_id_of(&resp);
        let through = resp.text().await.unwrap();
        let direct = env
            .client
            .post(format!("{}/chat/completions", env.mock.base_url()))
            .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": messages}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The response id is derived from the request body, which the gateway changes.
        let id = |s: &str| {
            s.split("\"id\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
                .unwrap_or_default()
        };
        assert_eq!(
            through.replace(&id(&through), "ID"),
            direct.replace(&id(&direct), "ID"),
            "the client gets the provider's bytes"
        );
        assert!(!through.contains("[DONE]"));

        let spans = env.spans_of(&trace_id, 1).await;
        let generation = span_named(&spans, "streamer");
        assert_eq!(attr(generation, "error.type"), Some(json!("stream_error")));
        let status = generation.status.as_ref().unwrap();
        assert_eq!(status.code, 2, "ERROR");
        assert_eq!(
            status.message, *message,
            "the message at the open destination"
        );

        let private_spans = private.wait_spans(i + 1, Duration::from_secs(10)).await;
        let private_generation = private_spans
            .iter()
            .find(|s| hex(&s.trace_id) == trace_id)
            .expect("the private destination got the span");
        assert_eq!(
            attr(private_generation, "error.type"),
            Some(json!("stream_error"))
        );
        let status = private_generation.status.as_ref().unwrap();
        assert_eq!(status.code, 2);
        assert_eq!(status.message, "stream_error", "no provider message");
    }
    assert!(!private.dump().contains("mock stream error"));
}

/// Clients that cannot add body fields set the same metadata with headers; a body `trace`
/// key wins over its header.
#[tokio::test]
async fn trace_metadata_from_headers_and_the_body_wins() {
    let env = Env::start().await;
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("x-gatecast-trace-id", "run-77")
        .header("x-gatecast-trace-name", "header-agent")
        .header("x-gatecast-span-name", "from-header")
        .header("x-gatecast-generation-name", "gen-from-header")
        .header("x-gatecast-user", "u-header")
        .header("x-session-id", "chat-h")
        .header("x-gatecast-metadata-customer", "acme")
        .header("x-gatecast-metadata-tier", "gold")
        .json(&json!({"model": "up/gpt-4o-mini",
                      "messages": [{"role": "user", "content": "headers"}],
                      "trace": {"span_name": "from-body", "tier": "platinum"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    assert_eq!(trace_id, sha_prefix("run-77", 16));
    let spans = env.spans_of(&trace_id, 3).await;
    let root = span_named(&spans, "header-agent");
    let step = span_named(&spans, "from-body");
    let g = span_named(&spans, "gen-from-header");
    assert_eq!(step.parent_span_id, root.span_id);
    assert_eq!(g.parent_span_id, step.span_id);
    assert_eq!(attr(g, "user.id"), Some(json!("u-header")));
    assert_eq!(attr(g, "session.id"), Some(json!("chat-h")));
    assert_eq!(attr(g, "trace.metadata.customer"), Some(json!("acme")));
    assert_eq!(attr(g, "trace.metadata.tier"), Some(json!("platinum")));
}
