//! The OpenAI endpoints beside chat (`/v1/embeddings`, `/v1/completions`, `/v1/models`),
//! Anthropic's `count_tokens`, and unknown routes: real HTTP through the gateway to the mock.

use serde_json::{json, Value};

use crate::harness::{attr, span_named, trace_id_of, Env};

async fn post(env: &Env, path: &str, body: Value) -> reqwest::Response {
    env.client
        .post(env.url(path))
        .bearer_auth("client-key-never-forwarded")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_raw(env: &Env, path: &str, body: &str) -> reqwest::Response {
    env.client
        .post(env.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
fn assert_openai_error(body: &Value) {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    for key in ["param", "code"] {
        assert!(e.get(key).is_some(), "{key} missing: {body}");
    }
}

#[tokio::test]
async fn embeddings_of_one_string_pass_through_and_are_traced_without_vectors() {
    let env = Env::start().await;
    let resp = post(
        &env,
        "/v1/embeddings",
        json!({"model": "up/text-embedding-3-small", "input": "hello embeddings",
               "trace": {"trace_id": "e-1", "team": "rag"}, "session_id": "s-e"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let vector = body["data"][0]["embedding"].as_array().unwrap().clone();
    assert_eq!(vector.len(), 8, "the mock's default dimensions");
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.body["model"], "text-embedding-3-small");
    for gone in ["trace", "session_id"] {
        assert!(sent.body.get(gone).is_none(), "{gone}: {}", sent.body);
    }
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "embeddings text-embedding-3-small");
    assert_eq!(attr(g, "gen_ai.operation.name"), Some(json!("embeddings")));
    assert_eq!(attr(g, "gen_ai.provider.name"), Some(json!("openai")));
    assert_eq!(
        attr(g, "gen_ai.usage.input_tokens"),
        Some(body["usage"]["prompt_tokens"].clone())
    );
    assert_eq!(attr(g, "gen_ai.embeddings.dimension.count"), Some(json!(8)));
    assert_eq!(
        attr(g, "gen_ai.embeddings.input"),
        Some(json!("hello embeddings"))
    );
    assert_eq!(attr(g, "trace.metadata.team"), Some(json!("rag")));
    assert_eq!(attr(g, "session.id"), Some(json!("s-e")));
    assert!(attr(g, "gen_ai.output.messages").is_none());
    // Priced on its input alone.
    let cost = attr(g, "gen_ai.cost.total_tokens").and_then(|v| v.as_f64());
    assert!(cost.is_some_and(|c| c > 0.0), "{cost:?}");
    assert_eq!(attr(g, "gen_ai.cost.output_tokens"), Some(json!(0.0)));
    let file = env.stop().await;
    for value in &vector {
        let text = value.to_string();
        assert!(
            !file.contains(&text),
            "vector value {text} in the trace file"
        );
    }
}

#[tokio::test]
async fn embeddings_of_a_list_with_dimensions_reach_azure_deployments_and_v1() {
    let env = Env::start().await;
    for (model, path) in [
        (
            "azure/gpt-4o-mini",
            "/openai/deployments/dep-mini/embeddings",
        ),
        ("azurev1/text-embedding-3-small", "/openai/v1/embeddings"),
    ] {
        let resp = post(
            &env,
            "/embeddings",
            json!({"model": model, "input": ["one", "two"], "dimensions": 16,
                   "encoding_format": "float", "user": "u-1",
                   "trace": {"generation_name": "embed docs"}}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let trace_id = trace_id_of(&resp);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["data"].as_array().unwrap().len(), 2);
        assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 16);
        let sent = env.mock.requests().pop().unwrap();
        assert_eq!(sent.path, path, "{model}");
        assert!(sent.body.get("trace").is_none());
        let spans = env.spans_of(&trace_id, 1).await;
        let g = span_named(&spans, "embed docs");
        assert_eq!(attr(g, "gen_ai.operation.name"), Some(json!("embeddings")));
        assert_eq!(
            attr(g, "gen_ai.embeddings.dimension.count"),
            Some(json!(16))
        );
        assert_eq!(
            attr(g, "gen_ai.embeddings.input"),
            Some(json!(r#"["one","two"]"#))
        );
        assert_eq!(attr(g, "user.id"), Some(json!("u-1")));
    }
    let azure = env
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/deployments/"))
        .unwrap();
    assert_eq!(azure.query.as_deref(), Some("api-version=2024-10-21"));
}

#[tokio::test]
async fn embeddings_input_is_not_traced_with_privacy_on() {
    let env = Env::start().await;
    let resp = env
        .client
        .post(env.url("/v1/embeddings"))
        .header("x-gatecast-privacy", "on")
        .json(&json!({"model": "up/text-embedding-3-small", "input": "private words here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "embeddings text-embedding-3-small");
    assert!(attr(g, "gen_ai.embeddings.input").is_none());
    assert_eq!(attr(g, "gen_ai.embeddings.dimension.count"), Some(json!(8)));
    let file = env.stop().await;
    assert!(!file.contains("private words"));
}

#[tokio::test]
async fn embeddings_refusals_are_in_openai_shape_and_never_a_5xx() {
    let env = Env::start().await;
    let cases: Vec<(reqwest::Response, u16, Option<&str>)> = vec![
        (
            post_raw(&env, "/v1/embeddings", "{not json").await,
            400,
            None,
        ),
        (
            post(&env, "/v1/embeddings", json!({"model": "up/x", "input": 7})).await,
            400,
            Some("input"),
        ),
        (
            post(
                &env,
                "/v1/embeddings",
                json!({"model": "up/x", "input": "a", "dimensions": "8"}),
            )
            .await,
            400,
            Some("dimensions"),
        ),
        (
            post(&env, "/v1/embeddings", json!({"model": 5, "input": "a"})).await,
            400,
            Some("model"),
        ),
        (
            post(
                &env,
                "/v1/embeddings",
                json!({"model": "nope", "input": "a"}),
            )
            .await,
            404,
            Some("model"),
        ),
        (
            post(
                &env,
                "/v1/embeddings",
                json!({"model": "claude/claude-sonnet-4-5", "input": "a"}),
            )
            .await,
            400,
            Some("model"),
        ),
        (
            post(
                &env,
                "/v1/embeddings",
                json!({"model": "up/x", "input": "a".repeat(70_000)}),
            )
            .await,
            413,
            None,
        ),
    ];
    for (i, (resp, status, param)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status(), status, "case {i}");
        let body: Value = resp.json().await.unwrap();
        assert_openai_error(&body);
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], param, "case {i}: {body}");
        }
    }
    let resp = post(
        &env,
        "/v1/embeddings",
        json!({"model": "claude/claude-sonnet-4-5", "input": "a"}),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not serve embeddings"), "{message}");
}

async fn get(env: &Env, path: &str, anthropic: bool) -> reqwest::Response {
    let mut req = env.client.get(env.url(path));
    if anthropic {
        req = req
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "client-key");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn models_list_aliases_qualified_and_bare_names_in_both_shapes() {
    let env = Env::start().await;
    let body: Value = get(&env, "/v1/models", false).await.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().unwrap()
        })
        .collect();
    for id in ["fast", "mock-model", "up/gpt-4o-mini", "gpt-4o-mini"] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }

    let body: Value = get(&env, "/models", true).await.json().await.unwrap();
    assert_eq!(body["has_more"], false);
    let data = body["data"].as_array().unwrap();
    assert_eq!(body["first_id"], data[0]["id"]);
    assert_eq!(body["last_id"], data[data.len() - 1]["id"]);
    let bare = data.iter().find(|m| m["id"] == "gpt-4o-mini").unwrap();
    assert_eq!(bare["type"], "model");
    assert_eq!(bare["display_name"], "gpt-4o-mini");
    assert!(bare["created_at"].is_string());
}

#[tokio::test]
async fn a_model_is_retrieved_by_an_id_with_slashes_and_an_unknown_one_is_a_404_in_shape() {
    let env = Env::start().await;
    let resp = get(&env, "/v1/models/up/gpt-4o-mini", false).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": "up/gpt-4o-mini", "object": "model", "created": 0, "owned_by": "gatecast"})
    );
    let body: Value = get(&env, "/models/fast", true).await.json().await.unwrap();
    assert_eq!(body["type"], "model");
    assert_eq!(body["id"], "fast");

    let resp = get(&env, "/v1/models/nope/x", false).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_openai_error(&body);
    assert_eq!(body["error"]["code"], "model_not_found");
    let resp = get(&env, "/v1/models/nope", true).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn unknown_routes_name_the_path_in_the_closest_shape_and_are_counted() {
    let env = Env::start().await;
    let before = unknown_count(&env.metrics().await);
    let resp = post(&env, "/v1/files?purpose=SECRET-QUERY", json!({"a": 1})).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_openai_error(&body);
    assert_eq!(body["error"]["code"], "unknown_route");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("POST /v1/files"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");

    for (path, anthropic) in [("/v1/messages/batches", false), ("/v1/complete", true)] {
        let req = env.client.post(env.url(path)).json(&json!({}));
        let req = if anthropic {
            req.header("anthropic-version", "2023-06-01")
        } else {
            req
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{path}: {body}");
        assert_eq!(body["error"]["type"], "not_found_error");
        assert!(body["error"]["message"].as_str().unwrap().contains(path));
    }
    let resp = env.client.get(env.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let metrics = env.metrics().await;
    // Other tests in the same process may count too: at least these four.
    assert!(unknown_count(&metrics) >= before + 4, "{metrics}");
    assert!(metrics.contains("gatecast_requests_total{status=\"404\"}"));
}

/// `gatecast_unknown_route_requests_total`, 0 while it has never been counted.
fn unknown_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatecast_unknown_route_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn legacy_completions_are_forwarded_and_traced_as_text_completion() {
    let env = Env::start().await;
    let resp = post(
        &env,
        "/v1/completions",
        json!({"model": "up/gpt-3.5-turbo-instruct", "prompt": "complete me", "max_tokens": 9,
               "trace": {"trace_id": "c-1"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    let text = body["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("complete me"), "{text}");
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(sent.body["model"], "gpt-3.5-turbo-instruct");
    assert_eq!(sent.body["prompt"], "complete me");
    assert!(sent.body.get("trace").is_none());
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "text_completion gpt-3.5-turbo-instruct");
    assert_eq!(
        attr(g, "gen_ai.operation.name"),
        Some(json!("text_completion"))
    );
    assert_eq!(attr(g, "gen_ai.request.max_tokens"), Some(json!(9)));
    assert_eq!(
        attr(g, "gen_ai.usage.output_tokens"),
        Some(body["usage"]["completion_tokens"].clone())
    );
    let input = attr(g, "gen_ai.input.messages").unwrap();
    assert!(input.as_str().unwrap().contains("complete me"), "{input}");
    let output = attr(g, "gen_ai.output.messages").unwrap();
    assert!(output.as_str().unwrap().contains(&text), "{output}");
}

#[tokio::test]
async fn streamed_completions_have_usage_forced_and_hidden_unless_asked() {
    let env = Env::start().await;
    for (asked, path, model) in [
        (false, "/v1/completions", "up/gpt-3.5-turbo-instruct"),
        (true, "/completions", "azure/gpt-4o-mini"),
    ] {
        let mut body = json!({"model": model, "prompt": "stream me", "stream": true});
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let resp = post(&env, path, body).await;
        assert_eq!(resp.status(), 200, "{model}");
        let trace_id = trace_id_of(&resp);
        let events = crate::harness::sse_events(resp).await.unwrap();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events
            .iter()
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?["text"].as_str().map(str::to_owned))
            .collect();
        assert!(text.contains("stream me"), "{text}");
        let usage_chunks = chunks.iter().filter(|c| c["usage"].is_object()).count();
        assert_eq!(usage_chunks, usize::from(asked), "{model}: {events:?}");
        let sent = env.mock.requests().pop().unwrap();
        assert_eq!(sent.body["stream_options"]["include_usage"], true);
        if asked {
            assert_eq!(sent.path, "/openai/deployments/dep-mini/completions");
        }
        let spans = env.spans_of(&trace_id, 1).await;
        let g = spans
            .iter()
            .find(|s| s.name.starts_with("text_completion "))
            .unwrap();
        assert!(attr(g, "gen_ai.usage.input_tokens").is_some(), "{model}");
        assert_eq!(attr(g, "gen_ai.request.stream"), Some(json!(true)));
        assert!(attr(g, "error.type").is_none(), "{model}");
    }
}

#[tokio::test]
async fn completions_refusals_are_in_openai_shape_and_never_a_5xx() {
    let env = Env::start().await;
    let cases: Vec<(reqwest::Response, u16, Option<&str>)> = vec![
        (post_raw(&env, "/v1/completions", "[1,").await, 400, None),
        (
            post(&env, "/v1/completions", json!({"model": "up/x"})).await,
            400,
            Some("prompt"),
        ),
        (
            post(
                &env,
                "/v1/completions",
                json!({"model": "up/x", "prompt": {"a": 1}}),
            )
            .await,
            400,
            Some("prompt"),
        ),
        (
            post(
                &env,
                "/v1/completions",
                json!({"model": "up/x", "prompt": "a", "max_tokens": "many"}),
            )
            .await,
            400,
            Some("max_tokens"),
        ),
        (
            post(
                &env,
                "/v1/completions",
                json!({"model": "nope", "prompt": "a"}),
            )
            .await,
            404,
            Some("model"),
        ),
        (
            post(
                &env,
                "/v1/completions",
                json!({"model": "claude/claude-sonnet-4-5", "prompt": "a"}),
            )
            .await,
            400,
            Some("model"),
        ),
        (
            post(
                &env,
                "/v1/completions",
                json!({"model": "up/x", "prompt": "a".repeat(70_000)}),
            )
            .await,
            413,
            None,
        ),
    ];
    for (i, (resp, status, param)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status(), status, "case {i}");
        let body: Value = resp.json().await.unwrap();
        assert_openai_error(&body);
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], param, "case {i}: {body}");
        }
    }
}

async fn count_tokens(env: &Env, body: &str) -> reqwest::Response {
    env.client
        .post(env.url("/v1/messages/count_tokens"))
        .header("x-api-key", "client-key-never-forwarded")
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// `gatecast_requests_total{status="200"}`.
fn ok_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatecast_requests_total{status=\"200\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_anthropic_and_estimated_for_others_untraced() {
    let env = Env::start().await;
    let before = ok_count(&env.metrics().await);
    let body = json!({"model": "claude/claude-sonnet-4-5", "system": "be brief",
                      "messages": [{"role": "user", "content": "count these few words"}],
                      "trace": {"trace_id": "t-c"}, "session_id": "s-c"});
    let resp = count_tokens(&env, &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-gatecast-trace-id").is_none());
    let counted: Value = resp.json().await.unwrap();
    assert!(
        counted["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{counted}"
    );
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-provider-secret"));
    for gone in ["trace", "session_id"] {
        assert!(sent.body.get(gone).is_none(), "{gone}: {}", sent.body);
    }

    let mut estimated = body.clone();
    estimated["model"] = json!("up/gpt-4o-mini");
    let requests = env.mock.requests().len();
    let resp = count_tokens(&env, &estimated.to_string()).await;
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    assert!(
        counted["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{counted}"
    );
    assert_eq!(
        env.mock.requests().len(),
        requests,
        "an estimate calls no provider"
    );
    let metrics = env.metrics().await;
    assert!(ok_count(&metrics) >= before + 2, "{metrics}");

    // Neither count is a generation: the only span is the chat sent after them.
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let trace_id = trace_id_of(&resp);
    env.spans_of(&trace_id, 1).await;
    let spans: usize = env
        .exported()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, 1);
}

#[tokio::test]
async fn count_tokens_refusals_are_in_anthropic_shape() {
    let env = Env::start().await;
    let messages = json!([{"role": "user", "content": "x"}]);
    for (body, status) in [
        ("{oops".to_owned(), 400),
        (json!({"messages": messages}).to_string(), 400),
        (json!({"model": 7, "messages": messages}).to_string(), 400),
        (json!({"model": "up/gpt-4o-mini", "messages": "x"}).to_string(), 400),
        (json!({"model": "nope", "messages": messages}).to_string(), 404),
        (
            json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "a".repeat(70_000)}]})
                .to_string(),
            413,
        ),
    ] {
        let resp = count_tokens(&env, &body).await;
        assert_eq!(resp.status(), status, "{}", &body[..body.len().min(80)]);
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["type"], "error", "{answer}");
        let kind = answer["error"]["type"].as_str().unwrap_or_default();
        // Anthropic's types: `invalid_request_error`, `not_found_error`, `request_too_large`.
        assert!(kind.ends_with("_error") || kind == "request_too_large", "{answer}");
        assert!(answer["error"]["message"].is_string());
    }
}
