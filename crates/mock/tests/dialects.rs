//! The mock's other dialects over real HTTP: Anthropic Messages, Azure OpenAI's paths, the
//! Responses API and embeddings, each with its errors and fault directives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};

struct Mock {
    server: gatecast_mock::MockServer,
    client: reqwest::Client,
}

impl Mock {
    async fn start() -> Self {
        Mock {
            server: gatecast_mock::start("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Anthropic's required headers.
    async fn messages(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/messages", ANTHROPIC, body).await
    }

    async fn recorded_over_http(&self) -> Vec<Value> {
        self.client
            .get(self.url("/__mock/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

const ANTHROPIC: &[(&str, &str)] = &[
    ("x-api-key", "sk-ant-test"),
    ("anthropic-version", "2023-06-01"),
];
const AZURE: &[(&str, &str)] = &[("api-key", "azure-test-key")];

fn claude(text: &str) -> Value {
    json!({"model": "claude-mock", "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn tool() -> Value {
    json!({"tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]})
}

/// `(event name, data)` pairs of an SSE body.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| panic!("bad data {d:?}"));
                }
            }
            (name, data)
        })
        .collect()
}

/// Reads until the body ends or breaks; true when it broke.
async fn read_to_break(resp: reqwest::Response) -> (String, bool) {
    let mut stream = resp.bytes_stream();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => seen.extend_from_slice(&b),
            Err(_) => return (String::from_utf8(seen).unwrap(), true),
        }
    }
    (String::from_utf8(seen).unwrap(), false)
}

// ---- Anthropic Messages -------------------------------------------------------------------

#[tokio::test]
async fn messages_answers_in_anthropic_shape_with_usage_and_cache_tokens() {
    let mock = Mock::start().await;
    let body = with(claude("hello claude"), json!({"system": "be brief"}));
    let resp = mock.messages(&body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_mock_"));
    let v: Value = resp.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_mock_"), "{id}");
    assert_eq!(
        v,
        json!({"id": id, "type": "message", "role": "assistant", "model": "claude-mock",
            "content": [{"type": "text", "text": "Mock reply to: hello claude"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 5}})
    );
    // The same request gets the same bytes.
    let again: Value = mock.messages(&body).await.json().await.unwrap();
    assert_eq!(again, v);

    let v: Value = mock
        .messages(&claude("#mock:cache_read=40,cache_write=7 cached"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 3, "cache_creation_input_tokens": 7, "cache_read_input_tokens": 40, "output_tokens": 4})
    );
    assert_eq!(v["content"][0]["text"], "Mock reply to: cached");

    // Directives from the header work too.
    let v: Value = mock
        .post(
            "/v1/messages",
            &[ANTHROPIC, &[("x-mock", "cache_read=3")]].concat(),
            &claude("hi"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["cache_read_input_tokens"], 3);
    // The path without /v1 answers the same.
    assert_eq!(
        mock.post("/messages", ANTHROPIC, &claude("hi"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn messages_needs_a_key_and_a_version() {
    let mock = Mock::start().await;
    let resp = mock
        .post(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &claude("hi"),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    let resp = mock
        .post("/v1/messages", &[("x-api-key", "k")], &claude("hi"))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));

    let bearer = [
        ("authorization", "Bearer oauth-token"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(
        mock.post("/v1/messages", &bearer, &claude("hi"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn messages_rejects_what_anthropic_rejects() {
    let mock = Mock::start().await;
    let user = |t: &str| json!({"role": "user", "content": t});
    let cases = [
        (
            json!({"model": "c", "messages": [user("hi")]}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "s"}, user("hi")]}),
            "messages.0.role: Unexpected role \"system\"",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [user("a"), user("b")]}),
            "messages.1: roles must alternate",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [user("a"), {"role": "assistant", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]}),
            "tool_result blocks can only be in user messages",
        ),
        (
            with(claude("hi"), json!({"trace": {"name": "t"}})),
            "trace: Extra inputs are not permitted",
        ),
        (
            with(claude("hi"), json!({"session_id": "s"})),
            "session_id: Extra inputs are not permitted",
        ),
        (
            with(
                claude("hi"),
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ),
            "stream_options: Extra inputs are not permitted",
        ),
        (
            with(claude("hi"), json!({"user": "u"})),
            "user: Extra inputs are not permitted",
        ),
        (json!("not an object"), "JSON object"),
    ];
    for (body, expected) in cases {
        let resp = mock.messages(&body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message} / {expected}");
    }
    let resp = mock
        .client
        .post(mock.url("/v1/messages"))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A bad directive is a 400 in Anthropic's shape that names it.
    let v: Value = mock
        .messages(&claude("#mock:colour=blue"))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"));
}

#[tokio::test]
async fn messages_streams_anthropics_event_sequence() {
    let mock = Mock::start().await;
    let plain: Value = mock
        .messages(&claude("stream to me"))
        .await
        .json()
        .await
        .unwrap();
    let resp = mock
        .messages(&with(claude("stream to me"), json!({"stream": true})))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = named_events(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert_eq!(deltas, 6, "one per word of \"Mock reply to: stream to me\"");
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for (name, data) in &events {
        assert_eq!(data["type"], *name, "the data names its event");
    }
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"]["input_tokens"],
        plain["usage"]["input_tokens"]
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, plain["content"][0]["text"].as_str().unwrap());
    let end = &events[events.len() - 2].1;
    assert_eq!(
        end["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(
        end["usage"], plain["usage"],
        "cumulative, as Anthropic sends it"
    );
    let cached = mock
        .messages(&with(
            claude("#mock:cache_read=9 cached"),
            json!({"stream": true}),
        ))
        .await
        .text()
        .await
        .unwrap();
    let cached = named_events(&cached);
    assert_eq!(
        cached[0].1["message"]["usage"]["cache_read_input_tokens"],
        9
    );
    assert_eq!(cached[0].1["message"]["usage"]["output_tokens"], 1);
    assert_eq!(
        cached[cached.len() - 2].1["usage"]["cache_read_input_tokens"],
        9
    );

    // `chunks` sets the piece count.
    let text = mock
        .messages(&with(
            claude("#mock:chunks=2 a b c d"),
            json!({"stream": true}),
        ))
        .await
        .text()
        .await
        .unwrap();
    let deltas = named_events(&text)
        .into_iter()
        .filter(|(n, _)| n == "content_block_delta")
        .count();
    assert_eq!(deltas, 2);
}

#[tokio::test]
async fn messages_tool_use_plain_and_streamed_agree() {
    let mock = Mock::start().await;
    let body = with(claude("find \"the\" key"), tool());
    let plain: Value = mock.messages(&body).await.json().await.unwrap();
    assert_eq!(plain["stop_reason"], "tool_use");
    assert_eq!(
        plain["content"],
        json!([{"type": "tool_use", "id": "toolu_mock_0", "name": "lookup", "input": {"query": "find \"the\" key"}}])
    );
    let text = mock
        .messages(&with(body.clone(), json!({"stream": true})))
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "tool_use", "id": "toolu_mock_0", "name": "lookup", "input": {}})
    );
    let json_text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        plain["content"][0]["input"]
    );
    assert!(
        events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count()
            > 1
    );
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );

    // `tool_choice: none` answers in text; a tool result is answered in text.
    let v: Value = mock
        .messages(&with(
            body.clone(),
            json!({"tool_choice": {"type": "none"}}),
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["type"], "text");
    let round_trip = with(
        tool(),
        json!({"model": "c", "max_tokens": 64, "messages": [
            {"role": "user", "content": "find the key"},
            {"role": "assistant", "content": plain["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_0", "content": "under the mat"}]},
        ]}),
    );
    let v: Value = mock.messages(&round_trip).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["text"], "Mock reply to: under the mat");
}

#[tokio::test]
async fn messages_stop_reason_directive_sets_each_stop() {
    let mock = Mock::start().await;
    for reason in ["max_tokens", "refusal", "pause_turn", "end_turn"] {
        let body = claude(&format!("#mock:stop_reason={reason} stop"));
        let v: Value = mock.messages(&body).await.json().await.unwrap();
        assert_eq!(v["stop_reason"], reason);
        assert_eq!(v["stop_sequence"], Value::Null);
        let text = mock
            .messages(&with(body, json!({"stream": true})))
            .await
            .text()
            .await
            .unwrap();
        let events = named_events(&text);
        assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], reason);
    }
    let body = with(
        claude("#mock:stop_reason=stop_sequence stop"),
        json!({"stop_sequences": ["END", "OTHER"]}),
    );
    let v: Value = mock.messages(&body).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "END");
    let text = mock
        .messages(&with(body, json!({"stream": true})))
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    assert_eq!(
        events[events.len() - 2].1["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
    );
    // A tool call always stops on tool_use.
    let v: Value = mock
        .messages(&with(claude("#mock:stop_reason=max_tokens call"), tool()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
}

#[tokio::test]
async fn messages_thinking_comes_first_with_its_signature() {
    let mock = Mock::start().await;
    let body = with(
        claude("think first"),
        json!({"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
    );
    let plain: Value = mock.messages(&body).await.json().await.unwrap();
    let signature = plain["content"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        plain["content"],
        json!([{"type": "thinking", "thinking": "Mock thinking about: think first", "signature": signature},
               {"type": "text", "text": "Mock reply to: think first"}])
    );
    let text = mock
        .messages(&with(body, json!({"stream": true})))
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    let kinds: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| format!("{}:{}", d["index"], d["delta"]["type"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds[0], "0:thinking_delta");
    assert!(kinds.contains(&"0:signature_delta".to_owned()));
    assert!(kinds.last().unwrap().starts_with("1:text_delta"));
    let thinking: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "Mock thinking about: think first");
    assert!(events.iter().any(|(_, d)| d["delta"]["signature"]
        .as_str()
        .is_some_and(|s| s.starts_with("mock-signature-"))));
}

#[tokio::test]
async fn messages_errors_are_anthropic_shaped_with_retry_after() {
    let mock = Mock::start().await;
    let resp = mock.messages(&claude("#mock:error=429 slow")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["request_id"].as_str().unwrap().starts_with("req_mock_"));

    let resp = mock
        .messages(&claude("#mock:error=529,retry_after=4 busy"))
        .await;
    assert_eq!(resp.status(), 529);
    assert_eq!(resp.headers()["retry-after"], "4");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"],
        json!({"type": "overloaded_error", "message": "Overloaded"})
    );

    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (500, "api_error"),
        (503, "api_error"),
    ] {
        let resp = mock
            .messages(&claude(&format!("#mock:error={status} x")))
            .await;
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], kind, "{status}");
    }

    // fail_times: the first two identical requests fail, the third succeeds.
    let body = claude("#mock:error=529,fail_times=2 flaky");
    assert_eq!(mock.messages(&body).await.status(), 529);
    assert_eq!(mock.messages(&body).await.status(), 529);
    assert_eq!(mock.messages(&body).await.status(), 200);

    let started = Instant::now();
    assert_eq!(
        mock.messages(&claude("#mock:latency_ms=150 wait"))
            .await
            .status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn messages_stream_faults() {
    let mock = Mock::start().await;
    let streamed = |text: &str| with(claude(text), json!({"stream": true}));

    // abort_after: a torn body with no message_stop.
    let (seen, broke) = read_to_break(
        mock.messages(&streamed("#mock:abort_after=3 break it"))
            .await,
    )
    .await;
    assert!(broke, "the client must see a broken stream");
    assert_eq!(seen.matches("event: ").count(), 3, "{seen}");
    assert!(!seen.contains("message_stop"));

    // stream_error_after: an `error` event, then a clean end.
    let (seen, broke) = read_to_break(
        mock.messages(&streamed("#mock:stream_error_after=2 fail"))
            .await,
    )
    .await;
    assert!(!broke);
    let events = named_events(&seen);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].0, "error");
    assert_eq!(
        events[2].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    // truncate_after: a clean end before any stop reason, even when asked for more.
    for n in [3, 99] {
        let (seen, broke) = read_to_break(
            mock.messages(&streamed(&format!("#mock:truncate_after={n} cut")))
                .await,
        )
        .await;
        assert!(!broke);
        assert!(
            !seen.contains("message_delta") && !seen.contains("message_stop"),
            "{seen}"
        );
    }

    // chunk_delay_ms waits between events (a lower bound only: the box may be slow).
    let started = Instant::now();
    let text = mock
        .messages(&streamed("#mock:chunk_delay_ms=20 a b"))
        .await
        .text()
        .await
        .unwrap();
    let n = named_events(&text).len() as u32;
    assert!(started.elapsed() >= Duration::from_millis(20) * (n - 1));

    // A plain answer told to abort breaks half way.
    let resp = mock.messages(&claude("#mock:abort_after=0 cut")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn count_tokens_matches_the_messages_usage() {
    let mock = Mock::start().await;
    let prompt = json!({"model": "claude-mock", "system": "be brief",
        "messages": [{"role": "user", "content": "count these words"}]});
    let resp = mock
        .post("/v1/messages/count_tokens", ANTHROPIC, &prompt)
        .await;
    assert_eq!(resp.status(), 200);
    let count: Value = resp.json().await.unwrap();
    assert_eq!(count, json!({"input_tokens": 6}));
    let msg: Value = mock
        .messages(&with(prompt.clone(), json!({"max_tokens": 10})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(msg["usage"]["input_tokens"], count["input_tokens"]);

    let resp = mock
        .post(
            "/v1/messages/count_tokens",
            ANTHROPIC,
            &with(prompt.clone(), json!({"max_tokens": 10})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("max_tokens"));
    let resp = mock.post("/v1/messages/count_tokens", &[], &prompt).await;
    assert_eq!(resp.status(), 401);
}

// ---- Azure OpenAI -------------------------------------------------------------------------

fn chat(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn azure_deployment_path_names_the_model_and_needs_a_version_and_a_key() {
    let mock = Mock::start().await;
    let path = "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21";
    let resp = mock.post(path, AZURE, &chat("hello azure")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "my-gpt4o");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply to: hello azure"
    );
    assert!(
        v.get("prompt_filter_results").is_none(),
        "only when asked for"
    );
    let recorded = mock.server.requests();
    assert_eq!(
        recorded[0].path,
        "/openai/deployments/my-gpt4o/chat/completions"
    );
    assert_eq!(recorded[0].query.as_deref(), Some("api-version=2024-10-21"));

    let resp = mock
        .post(
            "/openai/deployments/my-gpt4o/chat/completions",
            AZURE,
            &chat("hi"),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "404");

    let resp = mock.post(path, &[], &chat("hi")).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "401");
    let resp = mock
        .post(
            path,
            &[("authorization", "Bearer entra-token")],
            &chat("hi"),
        )
        .await;
    assert_eq!(resp.status(), 200);

    // Errors and directives are the chat mock's, but a 429 has Azure's own body.
    let resp = mock
        .post(path, AZURE, &chat("#mock:error=429,retry_after=2 slow"))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "429");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("retry after 2 seconds"));
    assert!(v["error"].get("type").is_none());
    let resp = mock.post(path, AZURE, &chat("#mock:error=500 down")).await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");

    // The v1 form takes the deployment as the body's model and no api-version.
    let resp = mock
        .post(
            "/openai/v1/chat/completions",
            AZURE,
            &with(chat("v1"), json!({"model": "dep-v1"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "dep-v1");
    assert_eq!(
        mock.post(
            "/openai/v1/chat/completions",
            &[],
            &with(chat("v1"), json!({"model": "d"}))
        )
        .await
        .status(),
        401
    );
}

#[tokio::test]
async fn azure_content_filter_annotations_and_error() {
    let mock = Mock::start().await;
    let path = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
    let v: Value = mock
        .post(path, AZURE, &chat("#mock:content_filter=1 annotate"))
        .await
        .json()
        .await
        .unwrap();
    let prompt = &v["prompt_filter_results"][0];
    assert_eq!(prompt["prompt_index"], 0);
    assert_eq!(
        prompt["content_filter_results"]["hate"],
        json!({"filtered": false, "severity": "safe"})
    );
    assert_eq!(
        prompt["content_filter_results"]["jailbreak"],
        json!({"filtered": false, "detected": false})
    );
    assert_eq!(
        v["choices"][0]["content_filter_results"]["violence"]["severity"],
        "safe"
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply to: annotate"
    );

    let text = mock
        .post(
            path,
            AZURE,
            &with(
                chat("#mock:content_filter=1 stream"),
                json!({"stream": true}),
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"], json!([]));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let finished = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"] == "stop")
        .unwrap();
    assert!(finished["choices"][0]["content_filter_results"].is_object());
    assert!(text.ends_with("data: [DONE]\n\n"));

    let resp = mock
        .post(path, AZURE, &chat("#mock:error=400,content_filter=1 bad"))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert_eq!(v["error"]["param"], "prompt");
    assert_eq!(
        v["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );
    assert_eq!(
        v["error"]["innererror"]["content_filter_result"]["hate"]["filtered"],
        true
    );
    // Without the filter directive a 400 is the plain OpenAI error.
    let v: Value = mock
        .post(path, AZURE, &chat("#mock:error=400 plain"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

// ---- Responses API ------------------------------------------------------------------------

fn responses_body(input: Value) -> Value {
    json!({"model": "gpt-4o", "input": input})
}

fn function() -> Value {
    json!({"tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]})
}

#[tokio::test]
async fn responses_plain_text_and_function_call() {
    let mock = Mock::start().await;
    let body = with(
        responses_body(json!("hello responses")),
        json!({"instructions": "be brief"}),
    );
    let resp = mock.post("/v1/responses", &[], &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["instructions"], "be brief");
    assert!(v["id"].as_str().unwrap().starts_with("resp_mock_"));
    let item = &v["output"][0];
    assert_eq!(item["type"], "message");
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(item["content"][0]["text"], "Mock reply to: hello responses");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10})
    );

    let v: Value = mock
        .post(
            "/v1/responses",
            &[],
            &with(responses_body(json!("find it")), function()),
        )
        .await
        .json()
        .await
        .unwrap();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["call_id"], "call_mock_0");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"query": "find it"})
    );

    let follow = with(
        responses_body(json!([
            {"role": "user", "content": [{"type": "input_text", "text": "find it"}]},
            call,
            {"type": "function_call_output", "call_id": "call_mock_0", "output": "here it is"},
        ])),
        function(),
    );
    let v: Value = mock
        .post("/v1/responses", &[], &follow)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "Mock reply to: here it is"
    );
}

#[tokio::test]
async fn responses_stream_typed_events_with_sequence_numbers() {
    let mock = Mock::start().await;
    let resp = mock
        .post(
            "/v1/responses",
            &[],
            &with(responses_body(json!("stream it")), json!({"stream": true})),
        )
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = named_events(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 5, "one per word of \"Mock reply to: stream it\"");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], *name);
        assert_eq!(data["sequence_number"], i);
    }
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(text, "Mock reply to: stream it");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["usage"]["output_tokens"], 5);
    assert_eq!(events[0].1["response"]["status"], "in_progress");

    // A function call streams its arguments.
    let text = mock
        .post(
            "/v1/responses",
            &[],
            &with(
                with(responses_body(json!("call it")), function()),
                json!({"stream": true}),
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    let args: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"query": "call it"})
    );
    let done = events
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done.1["arguments"].as_str().unwrap(), args);
    assert_eq!(events[2].1["item"]["type"], "function_call");
}

#[tokio::test]
async fn responses_errors_and_stream_faults() {
    let mock = Mock::start().await;
    let resp = mock
        .post(
            "/v1/responses",
            &[],
            &responses_body(json!("#mock:error=429 slow")),
        )
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let resp = mock
        .post(
            "/v1/responses",
            &[],
            &with(responses_body(json!("hi")), json!({"trace": {}})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_parameter");
    assert_eq!(v["error"]["param"], "trace");

    let streamed = |text: &str| with(responses_body(json!(text)), json!({"stream": true}));
    let text = mock
        .post(
            "/v1/responses",
            &[],
            &streamed("#mock:stream_error_after=3 fail"),
        )
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].0, "error");
    assert_eq!(events[3].1["sequence_number"], 3);
    assert_eq!(events[3].1["code"], "server_error");

    let text = mock
        .post(
            "/v1/responses",
            &[],
            &streamed("#mock:truncate_after=99 cut"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains(".done") && !text.contains("response.completed"),
        "{text}"
    );

    let (seen, broke) = read_to_break(
        mock.post("/v1/responses", &[], &streamed("#mock:abort_after=2 tear"))
            .await,
    )
    .await;
    assert!(broke);
    assert_eq!(named_events(&seen).len(), 2);
}

// ---- Embeddings ---------------------------------------------------------------------------

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let mock = Mock::start().await;
    let embed = |body: Value| {
        let mock = &mock;
        async move { mock.post("/v1/embeddings", &[], &body).await }
    };
    let resp = embed(json!({"model": "text-embedding-3-small", "input": "hello"})).await;
    assert_eq!(resp.status(), 200);
    let one: Value = resp.json().await.unwrap();
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "text-embedding-3-small");
    assert_eq!(one["data"][0]["object"], "embedding");
    let v = floats(&one["data"][0]["embedding"]);
    assert_eq!(v.len() as u64, gatecast_mock::DEFAULT_EMBEDDING_DIMENSIONS);
    assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(one["usage"], json!({"prompt_tokens": 1, "total_tokens": 1}));

    let many: Value =
        embed(json!({"model": "e", "input": ["hello", "two words"], "dimensions": 32}))
            .await
            .json()
            .await
            .unwrap();
    let first = floats(&many["data"][0]["embedding"]);
    assert_eq!(first.len(), 32);
    assert_eq!(many["data"][1]["index"], 1);
    assert_ne!(first, floats(&many["data"][1]["embedding"]));
    assert_eq!(many["usage"]["prompt_tokens"], 3);
    // The first 8 components differ from the default-size vector only by normalisation.
    let again: Value = embed(json!({"model": "e", "input": "hello"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"], one["data"], "same input, same vector");

    let tokens: Value = embed(json!({"model": "e", "input": [[1, 2, 3], [4]]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["data"].as_array().unwrap().len(), 2);
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    let flat: Value = embed(json!({"model": "e", "input": [1, 2, 3]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flat["data"][0]["embedding"], tokens["data"][0]["embedding"]);

    let b64: Value = embed(json!({"model": "e", "input": "hello", "encoding_format": "base64"}))
        .await
        .json()
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    assert_eq!(decoded.len(), v.len());
    for (a, b) in decoded.iter().zip(&v) {
        assert!((a - b).abs() < 1e-6);
    }

    for (body, param) in [
        (json!({"model": "e", "input": ""}), "input"),
        (json!({"model": "e", "input": [], "dimensions": 4}), "input"),
        (
            json!({"model": "e", "input": "x", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "e", "input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (json!({"model": "e", "input": "x", "trace": {}}), "trace"),
    ] {
        let resp = embed(body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{body}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let resp = embed(json!({"model": "e", "input": "#mock:error=503 down"})).await;
    assert_eq!(resp.status(), 503);

    // Azure's deployment form names the model.
    let v: Value = mock
        .post(
            "/openai/deployments/emb/embeddings?api-version=2024-10-21",
            AZURE,
            &json!({"input": "x"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "emb");
}

// ---- The recorder -------------------------------------------------------------------------

#[tokio::test]
async fn the_recorder_keeps_every_endpoint_and_redacts_credentials_over_http() {
    let mock = Mock::start().await;
    mock.messages(&claude("one")).await;
    mock.post(
        "/openai/deployments/d/chat/completions?api-version=v",
        AZURE,
        &chat("two"),
    )
    .await;
    mock.post(
        "/v1/responses",
        &[("authorization", "Bearer sk-resp-secret")],
        &responses_body(json!("three")),
    )
    .await;
    mock.post(
        "/v1/embeddings",
        &[("x-trace", "kept")],
        &json!({"model": "e", "input": "four"}),
    )
    .await;

    let in_process = mock.server.requests();
    let paths: Vec<&str> = in_process.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/messages",
            "/openai/deployments/d/chat/completions",
            "/v1/responses",
            "/v1/embeddings"
        ]
    );
    assert_eq!(
        in_process[0].header("x-api-key"),
        Some("sk-ant-test"),
        "the test's own process sees the value"
    );

    let over_http = mock.recorded_over_http().await;
    let shown = serde_json::to_string(&over_http).unwrap();
    for secret in ["sk-ant-test", "azure-test-key", "sk-resp-secret"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    let header = |i: usize, name: &str| {
        over_http[i]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    for (i, name) in [(0, "x-api-key"), (1, "api-key"), (2, "authorization")] {
        let marker = header(i, name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            marker.starts_with("[redacted; present, sha256:"),
            "{marker}"
        );
    }
    assert_ne!(
        header(0, "x-api-key"),
        header(1, "api-key"),
        "the fingerprint tells keys apart"
    );
    assert_eq!(
        header(0, "anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(header(3, "x-trace").as_deref(), Some("kept"));
    assert_eq!(over_http[1]["query"], "api-version=v");
    assert_eq!(over_http[2]["body"]["input"], "three");
}
