//! `POST /v1/messages`: Anthropic clients through the gateway, passed through to an
//! Anthropic provider and translated for an OpenAI-compatible one, traced like chat.

use serde_json::{json, Value};

use crate::harness::{attr, span_named, trace_id_of, Env};

async fn post(env: &Env, body: Value) -> reqwest::Response {
    env.client
        .post(env.url("/v1/messages"))
        .header("x-api-key", "client-key-never-forwarded")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn request(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "system": "be brief",
           "messages": [{"role": "user", "content": text}],
           "metadata": {"user_id": "u-9"},
           "trace": {"trace_id": "m-1", "generation_name": "ask"}, "session_id": "s-9"})
}

/// The `data` of each event with its `event:` name.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn to_an_anthropic_provider_the_body_goes_as_sent_minus_the_gateways_fields() {
    let env = Env::start().await;
    let resp = post(&env, request("claude/claude-sonnet-4-5", "hello pass")).await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert!(body["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("hello pass"));
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    assert_eq!(sent.body["system"], "be brief");
    assert_eq!(sent.body["metadata"], json!({"user_id": "u-9"}));
    for gone in ["trace", "session_id", "user"] {
        assert!(sent.body.get(gone).is_none(), "{gone}: {}", sent.body);
    }
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-provider-secret"));
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "ask");
    assert_eq!(attr(g, "gen_ai.provider.name"), Some(json!("anthropic")));
    assert_eq!(attr(g, "user.id"), Some(json!("u-9")));
    assert_eq!(attr(g, "session.id"), Some(json!("s-9")));
    assert!(attr(g, "gen_ai.usage.input_tokens").is_some());
    assert_eq!(
        attr(g, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
}

#[tokio::test]
async fn a_passed_through_stream_is_anthropics_and_is_recorded() {
    let env = Env::start().await;
    let mut body = request("claude/claude-sonnet-4-5", "stream pass");
    body["stream"] = json!(true);
    let resp = post(&env, body).await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let evs = events(&resp.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert!(text.contains("stream pass"));
    let spans = env.spans_of(&trace_id, 1).await;
    assert!(attr(&spans[0], "gen_ai.usage.output_tokens").is_some());
    assert_eq!(attr(&spans[0], "gen_ai.request.stream"), Some(json!(true)));
}

#[tokio::test]
async fn to_an_openai_provider_the_exchange_is_translated_both_ways() {
    let env = Env::start().await;
    let resp = post(&env, request("up/gpt-4o-mini", "hello translated")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "message", "{body}");
    assert!(body["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("hello translated"));
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().is_some());
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert_eq!(sent.body["user"], "u-9");
    assert!(sent.body.get("trace").is_none());

    let mut streamed = request("up/gpt-4o-mini", "hello translated");
    streamed["stream"] = json!(true);
    let resp = post(&env, streamed).await;
    assert_eq!(resp.status(), 200);
    let evs = events(&resp.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert!(delta.1["usage"]["output_tokens"].as_u64().is_some());
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, body["content"][0]["text"].as_str().unwrap());
}

#[tokio::test]
async fn refusals_and_provider_errors_are_in_anthropics_shape() {
    let env = Env::start().await;
    // The gateway's own refusals.
    for (body, status, kind) in [
        (
            json!({"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found_error",
        ),
        (
            json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request_error",
        ),
        (json!([1, 2]), 400, "invalid_request_error"),
    ] {
        let resp = post(&env, body).await;
        assert_eq!(resp.status(), status);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A provider's error, from either wire.
    for model in ["claude/claude-sonnet-4-5", "up/gpt-4o-mini"] {
        let resp = post(&env, request(model, "#mock:error=429,retry_after=3 busy")).await;
        assert_eq!(resp.status(), 429, "{model}");
        assert_eq!(resp.headers()["retry-after"], "3");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{model}: {body}");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{model}: {body}");
    }
}
