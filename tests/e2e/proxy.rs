//! Forwarding behaviour, seen from a client and from the provider.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gatecast_mock::otlp::{Behaviour, Receiver};
use serde_json::{json, Value};

use crate::harness::{attr, sse_events, trace_id_of, Env};

fn user(text: &str) -> Value {
    json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": text}])
}

#[tokio::test]
async fn non_streaming_answer_passes_through_unchanged() {
    let env = Env::start().await;
    let body = json!({"model": "up/gpt-4o-mini", "messages": user("hello there")});
    let resp = env.chat(body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(trace_id_of(&resp).len(), 32);
    let request_id = resp.headers().get("x-request-id").cloned();
    let through: Value = resp.json().await.unwrap();

    // The same request straight to the provider gives the same answer.
    let direct: Value = env
        .client
        .post(format!("{}/chat/completions", env.mock.base_url()))
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hello there")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(through, direct);
    assert!(through["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("hello there"));
    assert!(request_id.is_some(), "x-request-id passes through");
}

#[tokio::test]
async fn gateway_fields_are_stripped_user_is_forwarded_and_credentials_are_the_providers() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({
            "model": "up/gpt-4o-mini", "messages": user("strip me"), "user": "u-17", "session_id": "chat-9",
            "trace": {"trace_id": "run-42", "customer": "acme"}, "logit_bias": {"50256": -100}
        }))
        .await;
    assert_eq!(resp.status(), 200);
    let recorded = env.mock.requests();
    let last = recorded.last().unwrap();
    assert_eq!(last.body["user"], "u-17");
    assert_eq!(last.body["model"], "gpt-4o-mini");
    assert_eq!(
        last.body["logit_bias"],
        json!({"50256": -100}),
        "unknown fields pass through"
    );
    assert!(last.body.get("trace").is_none());
    assert!(last.body.get("session_id").is_none());
    let header = |name: &str| {
        last.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer sk-provider-secret")
    );
    assert_eq!(header("x-extra").as_deref(), Some("1"));
}

#[tokio::test]
async fn streaming_hides_the_usage_chunk_unless_asked() {
    let env = Env::start().await;
    let resp = env
        .chat(
            json!({"model": "up/gpt-4o-mini", "messages": user("count the words"), "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("text/event-stream"));
    let events = sse_events(resp).await.unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() > 3);
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v.get("usage").is_none(), "usage leaked into {e}");
        assert!(!v["choices"].as_array().unwrap().is_empty());
    }
    // The provider was asked for usage all the same.
    assert_eq!(
        env.mock.requests().last().unwrap().body["stream_options"],
        json!({"include_usage": true})
    );

    let resp = env
        .chat(
            json!({"model": "up/gpt-4o-mini", "messages": user("count the words"), "stream": true,
                     "stream_options": {"include_usage": true}}),
        )
        .await;
    let events = sse_events(resp).await.unwrap();
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn streaming_matches_the_direct_stream_byte_for_byte() {
    let env = Env::start().await;
    let through = env
        .client
        .post(env.url("/v1/chat/completions"))
        .json(&json!({"model": "up/gpt-4o-mini", "messages": user("same bytes"), "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let direct = env
        .client
        .post(format!("{}/chat/completions", env.mock.base_url()))
        .json(&json!({"model": "gpt-4o-mini", "messages": user("same bytes"), "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The mock derives its response id from the request body, which differs by the injected
    // `stream_options`; everything else must match byte for byte.
    let id = |s: &str| {
        s.split("\"id\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        through.replace(&id(&through), "ID"),
        direct.replace(&id(&direct), "ID")
    );
}

#[tokio::test]
async fn tool_calls_plain_and_streamed() {
    let env = Env::start().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "d",
                        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": user("find it"), "tools": tools}))
        .await;
    let v: Value = resp.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let plain_args = call["function"]["arguments"].as_str().unwrap().to_owned();

    let resp = env.chat(json!({"model": "up/gpt-4o-mini", "messages": user("find it"), "tools": tools, "stream": true})).await;
    let events = sse_events(resp).await.unwrap();
    let mut args = String::new();
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        if let Some(a) = v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        {
            args.push_str(a);
        }
    }
    assert_eq!(args, plain_args);
}

#[tokio::test]
async fn upstream_429_passes_through_with_retry_after() {
    let env = Env::start().await;
    let resp = env.chat(json!({"model": "up/gpt-4o-mini", "messages": user("#mock:error=429,retry_after=7 limited")})).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp
        .headers()
        .contains_key("x-ratelimit-remaining-requests"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
}

#[tokio::test]
async fn upstream_500_passes_through() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": user("#mock:error=500 boom")}))
        .await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].is_object());
}

#[tokio::test]
async fn retry_then_success() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "retry/gpt-4o-mini", "messages": user("#mock:error=500,fail_times=1 retry me please")}))
        .await;
    assert_eq!(resp.status(), 200);
    let tries = env
        .mock
        .requests()
        .iter()
        .filter(|r| r.body.to_string().contains("retry me please"))
        .count();
    assert_eq!(tries, 2, "one failure, one retry");
}

#[tokio::test]
async fn fallback_to_a_second_provider() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "fast", "messages": user("fall back")}))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(env.mock.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_provider_is_502_and_slow_one_is_504() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "dead/x", "messages": user("anyone?")}))
        .await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");

    let started = Instant::now();
    let resp = env
        .chat(json!({"model": "slow/x", "messages": user("#mock:latency_ms=3000 slow")}))
        .await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn mid_stream_abort_breaks_the_client_stream() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": user("#mock:abort_after=3 break"), "stream": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let mut broke = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the client must see a broken stream");
    assert!(!seen.contains("[DONE]"), "never a clean [DONE]");
}

#[tokio::test]
async fn gateway_errors_use_openai_shape() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "no-such-model", "messages": user("x")}))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(trace_id_of(&resp).len(), 32);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().contains_key("x-gatecast-trace-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let big = "x".repeat(70_000);
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": user(&big)}))
        .await;
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");

    for (body, param) in [
        (
            json!({"model": "up/gpt-4o-mini", "messages": user("x"), "trace": "nope"}),
            "trace",
        ),
        (
            json!({"model": "up/gpt-4o-mini", "messages": user("x"), "user": "u".repeat(129)}),
            "user",
        ),
        (
            json!({"model": "up/gpt-4o-mini", "messages": user("x"), "session_id": "s".repeat(257)}),
            "session_id",
        ),
    ] {
        let resp = env.chat(body).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param);
    }
    assert!(
        env.mock.requests().is_empty(),
        "nothing invalid reaches the provider"
    );
}

/// A route asked with a method it does not take answers 405 in the API's error shape (the
/// client API's and the admin API's), keeping the `Allow` header.
#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_error_shape_with_allow() {
    let env = Env::with_options("", Some("admin-secret")).await;
    for (method, path, allow, kind) in [
        (
            "GET",
            "/v1/chat/completions",
            "POST",
            "invalid_request_error",
        ),
        ("PUT", "/chat/completions", "POST", "invalid_request_error"),
        ("POST", "/v1/models", "GET,HEAD", "invalid_request_error"),
        ("POST", "/health", "GET,HEAD", "invalid_request_error"),
        (
            "PUT",
            "/admin/v1/keys",
            "GET,HEAD,POST",
            "invalid_request_error",
        ),
    ] {
        let resp = env
            .client
            .request(method.parse().unwrap(), env.url(path))
            .header("authorization", "Bearer admin-secret")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], kind, "{method} {path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("method"));
        assert!(v["error"]["code"].is_null() && v["error"]["param"].is_null());
    }
}

#[tokio::test]
async fn a_bad_trace_is_a_400_that_says_what_is_wrong() {
    let env = Env::start().await;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for (trace, says) in [
        (
            format!(r#"{{"a": {deep}}}"#),
            "`trace` is nested too deeply: at most 64 levels",
        ),
        (
            r#"{"customer": "\ud800"}"#.to_owned(),
            r"`\ud800` is a lone UTF-16 surrogate",
        ),
        (
            r#"[1]"#.to_owned(),
            "`trace` must be a JSON object, not an array",
        ),
    ] {
        let body = format!(
            r#"{{"model": "up/gpt-4o-mini", "messages": [{{"role": "user", "content": "x"}}], "trace": {trace}}}"#
        );
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], "trace", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    assert!(env.mock.requests().is_empty());
}

#[tokio::test]
async fn models_health_and_the_builtin_mock() {
    let env = Env::start().await;
    let v: Value = env
        .client
        .get(env.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(v["object"], "list");
    assert!(
        ids.contains(&"fast") && ids.contains(&"mock-model") && ids.contains(&"up/gpt-4o-mini"),
        "{ids:?}"
    );
    assert_eq!(
        env.client
            .get(env.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        env.client
            .get(env.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let resp = env
        .chat(json!({"model": "mock-model", "messages": user("offline"), "stream": true}))
        .await;
    let events = sse_events(resp).await.unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        env.mock.requests().is_empty(),
        "the built-in mock needs no network"
    );
    let resp = env
        .chat(json!({"model": "no-such-model", "messages": user("x")}))
        .await;
    assert_eq!(resp.status(), 404);

    let metrics = env.metrics().await;
    for line in [
        "gatecast_requests_total{status=\"200\"} 1",
        "gatecast_requests_total{status=\"404\"} 1",
        "gatecast_request_headers_seconds_count 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn client_disconnect_cancels_the_exchange() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "stream": true,
                     "messages": user("#mock:chunk_delay_ms=100,chunks=100 a long answer that never ends")}))
        .await;
    let trace_id = trace_id_of(&resp);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let started = Instant::now();
    drop(stream);
    let spans = env.spans_of(&trace_id, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the exchange ends when the client leaves, not after 10 s"
    );
    assert_eq!(
        crate::harness::attr(&spans[0], "error.type"),
        Some(json!("cancelled"))
    );
}

#[tokio::test]
async fn busy_polling_request_threads_serve_and_trace_the_same_answers_and_shut_down() {
    let env = Env::with_server("", None, "busy_poll_us = 500").await;
    for i in 0..20 {
        let resp = env
            .chat(json!({
                "model": "up/gpt-4o-mini",
                "messages": [{"role": "user", "content": format!("poll {i}")}],
                "trace": {"trace_id": "busy-poll-run"},
            }))
            .await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("Mock reply to: poll {i}")
        );
    }
    let stream = env
        .chat(json!({
            "model": "up/gpt-4o-mini",
            "stream": true,
            "messages": [{"role": "user", "content": "stream while polling"}],
            "trace": {"trace_id": "busy-poll-run"},
        }))
        .await;
    assert_eq!(stream.status(), 200);
    let text = stream.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let trace = crate::harness::hex(&gatecast_telemetry::ids::trace_id_from("busy-poll-run"));
    let spans = env.spans_of(&trace, 21).await;
    assert_eq!(spans.len(), 21, "one generation per request");
    // Shutdown finishes although every request thread was polling a moment ago.
    let started = Instant::now();
    env.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Four clients that each keep one connection open land two on each request thread (the
/// harness runs two), not all on whichever thread woke first.
#[tokio::test]
async fn keep_alive_connections_are_spread_evenly_over_the_request_threads() {
    let env = Env::start().await;
    // One client per connection, all connecting at once, as a pool opening does; each is kept
    // alive for the rest of the test.
    let clients: Vec<reqwest::Client> = (0..4)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap()
        })
        .collect();
    let answers = futures::future::join_all(clients.iter().enumerate().map(|(i, client)| {
        client
            .post(env.url("/v1/chat/completions"))
            .json(&json!({
                "model": "up/gpt-4o-mini",
                "messages": [{"role": "user", "content": format!("spread {i}")}],
            }))
            .send()
    }))
    .await;
    for resp in answers {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let metrics = env.metrics().await;
    let live: Vec<f64> = (0..2)
        .map(|t| {
            let prefix = format!("gatecast_request_thread_connections{{thread=\"{t}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        })
        .collect();
    // The four kept-alive clients, plus the connection reading /metrics on one of them.
    assert!(
        live.iter().all(|&n| n >= 2.0) && live.iter().sum::<f64>() >= 4.0,
        "connections per request thread: {live:?}\n{metrics}"
    );
    drop(clients);
    env.stop().await;
}

/// A key in a provider's URL (`?key=…`, as some services want) goes to that provider and
/// nowhere else: not into a client's error, not into any span, open or private.
#[tokio::test]
async fn provider_url_credentials_never_reach_clients_or_spans() {
    const SECRET: &str = "SECRET-k7q2";
    let keyed_mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let private = Receiver::http(Behaviour::Ok).await;
    let extra = format!(
        r#"
[[destinations]]
name = "private"
type = "otlp"
endpoint = "{private}"
protocol = "http/json"
flush_interval_ms = 20
privacy_mode = true

[providers.keyed]
kind = "openai"
base_url = "{keyed}?key={SECRET}"
max_retries = 1
retry_backoff_ms = 10

[providers.keyed_dead]
kind = "openai"
base_url = "http://127.0.0.1:1/v1?key={SECRET}"
connect_timeout_ms = 500

[models.keyed-fallback]
provider = "keyed_dead"
model = "gpt-4o-mini"
fallbacks = ["keyed/gpt-4o-mini"]
"#,
        private = private.url("/v1/traces"),
        keyed = keyed_mock.base_url(),
    );
    let env = Env::with_extra(&extra).await;

    // A dead provider: the 502 names the provider and its host, never the key.
    let resp = env
        .chat(json!({"model": "keyed_dead/x", "messages": user("anyone?"),
                     "trace": {"trace_id": "leak-dead"}}))
        .await;
    assert_eq!(resp.status(), 502);
    let dead_trace = trace_id_of(&resp);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(SECRET),
        "the client's 502 quotes the key: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("keyed_dead") && message.contains("127.0.0.1:1"),
        "{message}"
    );

    // A dead primary, then a live provider that fails once: four attempt spans with URLs.
    let resp = env
        .chat(json!({"model": "keyed-fallback",
                     "messages": user("#mock:error=503,fail_times=1 keyed"),
                     "trace": {"trace_id": "leak-fallback"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let fallback_trace = trace_id_of(&resp);
    let body = resp.text().await.unwrap();
    assert!(!body.contains(SECRET));

    // The key reaches the provider, at the end of the URL.
    let forwarded = keyed_mock.requests();
    assert_eq!(forwarded.len(), 2, "one 503 and one success");
    for r in &forwarded {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.query.as_deref(), Some(format!("key={SECRET}").as_str()));
    }

    let spans = env.spans_of(&fallback_trace, 4).await;
    env.spans_of(&dead_trace, 1).await;
    let attempts: Vec<_> = spans.iter().filter(|s| s.name == "POST").collect();
    assert_eq!(attempts.len(), 3, "dead, 503, success");
    let dead = attempts
        .iter()
        .find(|s| attr(s, "gatecast.provider") == Some(json!("keyed_dead")))
        .unwrap();
    assert_eq!(attr(dead, "error.type"), Some(json!("connect")));
    assert_eq!(
        attr(dead, "url.full"),
        Some(json!("http://127.0.0.1:1/v1/chat/completions?key=REDACTED"))
    );
    assert_eq!(attr(dead, "server.address"), Some(json!("127.0.0.1")));
    let exported = std::fs::read_to_string(&env.traces).unwrap();
    assert!(
        !exported.contains(SECRET),
        "the file destination got the key"
    );

    let private_spans = private.wait_spans(5, Duration::from_secs(10)).await;
    assert!(private_spans.len() >= 5, "{}", private_spans.len());
    assert!(
        !private.dump().contains(SECRET),
        "the private destination got the key"
    );
    let private_dead = private_spans
        .iter()
        .find(|s| s.name == "POST" && attr(s, "gatecast.provider") == Some(json!("keyed_dead")))
        .unwrap();
    assert_eq!(attr(private_dead, "error.type"), Some(json!("connect")));
    keyed_mock.shutdown().await;
}

/// A provider whose answers the gateway may hold only 1 MiB of, whole or per event.
async fn capped_env() -> (Env, gatecast_mock::MockServer) {
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let extra = format!(
        "\n[providers.capped]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_response_bytes = 1048576\nmax_sse_event_bytes = 1048576\n",
        mock.base_url()
    );
    (Env::with_extra(&extra).await, mock)
}

/// Reads a body to its end: the text, and whether it broke.
async fn read_through(resp: reqwest::Response) -> (String, bool) {
    let mut stream = resp.bytes_stream();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => seen.extend_from_slice(&b),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

#[tokio::test]
async fn an_answer_larger_than_max_response_bytes_is_a_502_and_traced() {
    let (env, _mock) = capped_env().await;
    let resp = env
        .chat(json!({"model": "capped/m", "messages": user("#mock:answer_bytes=600000 fits")}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 600_000);

    let resp = env
        .chat(
            json!({"model": "capped/m", "messages": user("#mock:answer_bytes=3000000 too big"),
                     "trace": {"trace_id": "too-big"}}),
        )
        .await;
    assert_eq!(resp.status(), 502);
    let trace_id = trace_id_of(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_response_too_large");
    assert_eq!(v["error"]["type"], "api_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("capped") && message.contains("max_response_bytes"),
        "{message}"
    );
    let spans = env.spans_of(&trace_id, 1).await;
    assert_eq!(
        attr(&spans[0], "error.type"),
        Some(json!("response_too_large"))
    );
    assert_eq!(
        attr(&spans[0], "gatecast.response.status_code"),
        Some(json!(502))
    );
    assert_eq!(spans[0].status.as_ref().unwrap().code, 2, "ERROR");
}

#[tokio::test]
async fn an_event_larger_than_max_sse_event_bytes_breaks_the_stream_and_is_traced() {
    let (env, _mock) = capped_env().await;
    // Without usage asked for, the client has seen only whole events: it gets the reason as
    // an error event, then the break.
    let resp = env
        .chat(json!({"model": "capped/m", "stream": true,
                     "messages": user("#mock:event_bytes=3000000 huge"),
                     "trace": {"trace_id": "huge-event"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let (seen, broke) = read_through(resp).await;
    assert!(broke, "the client's stream breaks");
    assert!(
        seen.len() < 1 << 20,
        "the huge event never went out: {}",
        seen.len()
    );
    let reason = seen
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .expect("an error event before the break");
    assert_eq!(reason["error"]["code"], "upstream_response_too_large");
    let spans = env.spans_of(&trace_id, 1).await;
    assert_eq!(
        attr(&spans[0], "error.type"),
        Some(json!("response_too_large"))
    );

    // With usage asked for, events pass through as they come: the stream just breaks.
    let resp = env
        .chat(json!({"model": "capped/m", "stream": true,
                     "stream_options": {"include_usage": true},
                     "messages": user("#mock:event_bytes=3000000 huge"),
                     "trace": {"trace_id": "huge-event-usage"}}))
        .await;
    let trace_id = trace_id_of(&resp);
    let (seen, broke) = read_through(resp).await;
    assert!(broke);
    assert!(seen.len() < 2 << 20, "{}", seen.len());
    let spans = env.spans_of(&trace_id, 1).await;
    assert_eq!(
        attr(&spans[0], "error.type"),
        Some(json!("response_too_large"))
    );
}
