//! Broadcast: every trace reaches every matching destination, each with its own privacy, over
//! real HTTP and gRPC to in-process receivers.

use std::time::Duration;

use gatecast_mock::otlp::{Behaviour, Receiver};
use serde_json::{json, Value};

use crate::harness::{attr, hex, trace_id_of, Env};

const SENTRY_KEY: &str = "0123456789abcdef0123456789abcdef";

fn ask(text: &str) -> Value {
    json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": text}],
           "trace": {"trace_id": format!("bc-{text}"), "span_name": "step", "customer": "acme"},
           "user": "u-1", "session_id": "s-1"})
}

fn otlp(name: &str, endpoint: &str, protocol: &str, extra: &str) -> String {
    format!(
        "\n[[destinations]]\nname = \"{name}\"\ntype = \"otlp\"\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\nflush_interval_ms = 20\n{extra}\n"
    )
}

#[tokio::test]
async fn otlp_http_protobuf_gzip_carries_tree_resource_scope_and_headers() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let env = Env::with_extra(&otlp(
        "collector",
        &rx.url("/v1/traces"),
        "http/protobuf",
        "compression = \"gzip\"\nheaders = { \"authorization\" = \"Bearer t0k\" }\nresource_attributes = { \"deployment.environment.name\" = \"prod\" }",
    ))
    .await;
    let resp = env.chat(ask("proto")).await;
    let trace_id = trace_id_of(&resp);
    assert_eq!(resp.status(), 200);
    let spans = rx.wait_spans(2, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 2, "span_name span + generation");
    assert!(spans.iter().all(|s| hex(&s.trace_id) == trace_id));
    let step = spans.iter().find(|s| s.name == "step").unwrap();
    let generation = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
    assert_eq!(generation.parent_span_id, step.span_id);
    assert_eq!(
        attr(generation, "trace.metadata.customer"),
        Some(json!("acme"))
    );

    let got = &rx.requests()[0];
    assert!(got.gzip(), "compression = gzip");
    assert_eq!(got.path, "/v1/traces");
    assert!(got.content_type().contains("protobuf"));
    assert_eq!(got.headers["authorization"], "Bearer t0k");
    let export = got.export();
    let rs = &export.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    let res_attr = |k: &str| {
        resource
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert!(format!("{:?}", res_attr("service.name")).contains("gatecast"));
    assert!(format!("{:?}", res_attr("deployment.environment.name")).contains("prod"));
    assert!(res_attr("telemetry.sdk.name").is_some());
    assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "gatecast");
}

#[tokio::test]
async fn otlp_http_json_and_grpc() {
    let json_rx = Receiver::http(Behaviour::Ok).await;
    let grpc_rx = Receiver::grpc().await;
    let extra = otlp(
        "json",
        &json_rx.url("/v1/traces"),
        "http/json",
        "compression = \"none\"",
    ) + &otlp(
        "grpc",
        &format!("http://{}", grpc_rx.addr),
        "grpc",
        "compression = \"gzip\"",
    );
    let env = Env::with_extra(&extra).await;
    let resp = env.chat(ask("json-grpc")).await;
    let trace_id = trace_id_of(&resp);
    for rx in [&json_rx, &grpc_rx] {
        let spans = rx.wait_spans(2, Duration::from_secs(10)).await;
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().all(|s| hex(&s.trace_id) == trace_id));
    }
    let got = &json_rx.requests()[0];
    assert!(got.content_type().contains("json"));
    assert!(!got.gzip());
}

#[tokio::test]
async fn sentry_destination_from_a_dsn() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let dsn = format!("http://{SENTRY_KEY}@{}/prefix/42", rx.addr);
    let env = Env::with_extra(&format!(
        "\n[[destinations]]\nname = \"sentry\"\ntype = \"sentry\"\ndsn = \"{dsn}\"\nflush_interval_ms = 20\n"
    ))
    .await;
    let mut body = ask("sentry");
    body["trace"]["generation_name"] = json!("classify");
    body["trace"]["environment"] = json!("prod");
    let resp = env.chat(body).await;
    assert_eq!(resp.status(), 200);
    let spans = rx.wait_spans(2, Duration::from_secs(10)).await;
    let got = &rx.requests()[0];
    assert_eq!(got.path, "/prefix/api/42/integration/otlp/v1/traces");
    assert_eq!(
        got.headers["x-sentry-auth"],
        format!("sentry sentry_key={SENTRY_KEY}")
    );
    assert!(got.gzip() && got.content_type().contains("protobuf"));
    let generation = spans.iter().find(|s| s.name == "classify").unwrap();
    assert_eq!(attr(generation, "sentry.op"), Some(json!("gen_ai.chat")));
    assert_eq!(
        attr(generation, "sentry.description"),
        Some(json!("classify"))
    );
    assert_eq!(attr(generation, "sentry.environment"), Some(json!("prod")));
    assert!(attr(generation, "gen_ai.usage.total_tokens").is_some());
    let step = spans.iter().find(|s| s.name == "step").unwrap();
    assert_eq!(attr(step, "sentry.description"), Some(json!("step")));
}

#[tokio::test]
async fn webhook_put_with_headers() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let env = Env::with_extra(&format!(
        "\n[[destinations]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nmethod = \"PUT\"\nheaders = {{ \"x-hook-token\" = \"abc\" }}\nflush_interval_ms = 20\n",
        rx.url("/hook")
    ))
    .await;
    let resp = env.chat(ask("hook")).await;
    assert_eq!(resp.status(), 200);
    let spans = rx.wait_spans(2, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 2);
    let got = &rx.requests()[0];
    assert_eq!(got.path, "/hook");
    assert_eq!(got.headers["x-hook-token"], "abc");
    assert!(got.content_type().contains("json"));
}

/// A provider that fails with an error body quoting the request, to check provider error
/// text never reaches a private destination.
async fn echoing_error_provider(canary: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({"error": {"message": format!("bad prompt: {canary}"), "type": "invalid_request_error"}}).to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn privacy_is_per_destination_and_an_allow_list() {
    const CANARY: &str = "zq-canary-91f3";
    let private_rx = Receiver::http(Behaviour::Ok).await;
    let open_rx = Receiver::http(Behaviour::Ok).await;
    let failing = echoing_error_provider(CANARY).await;
    let extra = otlp(
        "private",
        &private_rx.url("/v1/traces"),
        "http/protobuf",
        "privacy_mode = true",
    ) + &otlp(
        "open",
        &open_rx.url("/v1/traces"),
        "http/json",
        "privacy_mode = false",
    ) + &format!("\n[providers.echo]\nkind = \"openai\"\nbase_url = \"{failing}\"\n");
    let env = Env::with_extra(&extra).await;
    let body = json!({
        "model": "up/gpt-4o-mini", "user": "u-1", "session_id": "s-1",
        "trace": {"trace_id": "privacy-run", "customer": "acme"},
        "messages": [
            {"role": "system", "content": format!("system {CANARY}")},
            {"role": "user", "content": format!("user {CANARY}")},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "lookup", "arguments": format!("{{\"q\":\"{CANARY}\"}}")}}]},
            {"role": "tool", "tool_call_id": "c1", "content": format!("result {CANARY}")},
            {"role": "user", "content": "and now?"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": format!("tool {CANARY}"),
                   "parameters": {"type": "object"}}}]
    });
    let resp = env.chat(body.clone()).await;
    assert_eq!(resp.status(), 200);
    let mut failing_body = body.clone();
    failing_body["model"] = json!("echo/m");
    let resp = env.chat(failing_body).await;
    assert_eq!(resp.status(), 400);

    let private = private_rx.wait_spans(2, Duration::from_secs(10)).await;
    let open = open_rx.wait_spans(2, Duration::from_secs(10)).await;
    assert_eq!(private.len(), 2);
    assert_eq!(open.len(), 2);
    assert!(
        !private_rx.dump().contains(CANARY),
        "private destination received content"
    );
    assert!(
        open_rx.dump().contains(CANARY),
        "the open destination receives content"
    );
    for g in &private {
        assert_eq!(attr(g, "user.id"), Some(json!("u-1")));
        assert_eq!(attr(g, "session.id"), Some(json!("s-1")));
        assert_eq!(attr(g, "trace.metadata.customer"), Some(json!("acme")));
        assert!(attr(g, "gen_ai.request.model").is_some());
    }
    let ok = private
        .iter()
        .find(|s| attr(s, "error.type").is_none())
        .unwrap();
    assert!(attr(ok, "gen_ai.usage.input_tokens").is_some());
    let open_ok = open
        .iter()
        .find(|s| attr(s, "error.type").is_none())
        .unwrap();
    for key in [
        "gen_ai.input.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.output.messages",
    ] {
        assert!(
            attr(open_ok, key).is_some(),
            "{key} at the open destination"
        );
        assert!(attr(ok, key).is_none(), "{key} at the private destination");
    }
}

#[tokio::test]
async fn faulty_destinations_never_hurt_clients_or_each_other() {
    let healthy = Receiver::http(Behaviour::Ok).await;
    let recovering = Receiver::http(Behaviour::FailFirst {
        status: 503,
        n: 2,
        retry_after: None,
    })
    .await;
    let limited = Receiver::http(Behaviour::FailFirst {
        status: 429,
        n: 1,
        retry_after: Some(1),
    })
    .await;
    let broken = Receiver::http(Behaviour::Always(500)).await;
    let hanging = Receiver::http(Behaviour::Hang).await;
    let extra = otlp("healthy", &healthy.url("/v1/traces"), "http/protobuf", "")
        + &otlp(
            "recovering",
            &recovering.url("/v1/traces"),
            "http/protobuf",
            "",
        )
        + &otlp("limited", &limited.url("/v1/traces"), "http/protobuf", "")
        + &otlp("broken", &broken.url("/v1/traces"), "http/protobuf", "")
        + &otlp(
            "hanging",
            &hanging.url("/v1/traces"),
            "http/protobuf",
            "timeout_ms = 300\nqueue_capacity = 16",
        )
        + &otlp(
            "refused",
            "http://127.0.0.1:1/v1/traces",
            "http/protobuf",
            "",
        );
    let env = Env::with_extra(&extra).await;

    const N: usize = 200;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = env.client.clone();
        let url = env.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": format!("load {i}")}]});
            client.post(url).json(&body).send().await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap(),
            200,
            "every client request succeeds"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));

    let got = healthy.wait_spans(N, Duration::from_secs(15)).await;
    assert_eq!(got.len(), N, "the healthy destination receives everything");
    for rx in [&recovering, &limited] {
        let spans = rx.wait_spans(N, Duration::from_secs(20)).await;
        let mut ids: Vec<Vec<u8>> = spans.iter().map(|s| s.span_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            spans.len(),
            N,
            "a recovering destination receives every span"
        );
        assert_eq!(ids.len(), N, "exactly once");
    }
    assert!(broken.calls() > 0);

    let metrics = env.metrics().await;
    assert!(
        metrics.contains("gatecast_destination_dropped"),
        "drops are counted: {metrics}"
    );
}

#[tokio::test]
async fn filters_and_sampling_select_per_destination() {
    let gpt = Receiver::http(Behaviour::Ok).await;
    let none = Receiver::http(Behaviour::Ok).await;
    let extra = otlp(
        "gpt-only",
        &gpt.url("/v1/traces"),
        "http/protobuf",
        "filters = { groups = [ { logic = \"and\", rules = [ { field = \"model\", operator = \"starts_with\", value = \"gpt-\" }, { field = \"metadata.customer\", operator = \"equals\", value = \"acme\" } ] } ] }",
    ) + &otlp("sampled", &none.url("/v1/traces"), "http/protobuf", "sampling_rate = 0.0001\nenabled = true");
    let env = Env::with_extra(&extra).await;
    for (model, customer) in [
        ("up/gpt-4o-mini", "acme"),
        ("up/other", "acme"),
        ("up/gpt-4o", "globex"),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "f"}],
                          "session_id": "always-dropped-at-0.0001", "trace": {"customer": customer}});
        assert_eq!(env.chat(body).await.status(), 200);
    }
    let spans = gpt.wait_spans(2, Duration::from_secs(3)).await;
    assert_eq!(spans.len(), 1, "only the gpt-* acme request matches");
    assert_eq!(
        attr(&spans[0], "gen_ai.request.model"),
        Some(json!("gpt-4o-mini"))
    );
    let mut probe = gatecast_telemetry::GenerationRecord::default();
    probe.context.session_id = Some("always-dropped-at-0.0001".into());
    assert!(
        !gatecast_telemetry::sampling::keeps(0.0001, &probe),
        "precondition: this session is sampled out"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        none.spans().is_empty(),
        "a sampled-out session reaches nothing"
    );
}
