//! The HTTP server end to end: a real client, real sockets, a real torn connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use serde_json::{json, Value};

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn serves_records_and_breaks_streams() {
    let server = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(
        server.base_url().starts_with("http://127.0.0.1:") && server.base_url().ends_with("/v1")
    );
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.base_url());

    // Non-streaming: the same bytes as the in-process responder.
    let body = chat("hello over http");
    let resp = client
        .post(&url)
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("mock-"));
    let bytes = resp.bytes().await.unwrap();
    let expected = gatecast_mock::Mock::new().respond(&body, None);
    assert_eq!(Some(bytes.clone()), expected.json_bytes());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply to: hello over http"
    );

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].body, body);
    assert_eq!(recorded[0].header("authorization"), Some("Bearer sk-test"));

    // Streaming, with directives from the header.
    let resp = client
        .post(&url)
        .header("x-mock", "chunk_delay_ms=5")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "stream it"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("data: {") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Mock reply to: stream it");

    // An aborted stream is a broken body for the client, never a clean end.
    let resp = client
        .post(&url)
        .json(&with_stream(chat("#mock:abort_after=2 break it")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = Vec::new();
    let mut broke = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => seen.extend_from_slice(&b),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the client must see a broken stream");
    let seen = String::from_utf8(seen).unwrap();
    assert_eq!(seen.matches("data: ").count(), 2, "{seen}");
    assert!(!seen.contains("[DONE]"));

    // A plain answer told to abort arrives as a 200 whose body breaks half way.
    let resp = client
        .post(&url)
        .json(&chat("#mock:abort_after=0 cut it"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());

    // Errors keep their status and headers over HTTP.
    let resp = client
        .post(&url)
        .json(&chat("#mock:error=429 slow down"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let resp = client.post(&url).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);

    // The inspection routes; the path without /v1 works too.
    assert_eq!(server.requests().len(), 6);
    assert_eq!(server.requests()[5].body, Value::Null);
    let root = format!("http://{}", server.addr);
    let listed: Vec<Value> = client
        .get(format!("{root}/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed[1]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "x-mock")
            .count(),
        1
    );
    assert!(client
        .delete(format!("{root}/__mock/requests"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(server.requests().is_empty());
    let resp = client
        .post(format!("{root}/chat/completions"))
        .json(&chat("short path"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.requests()[0].path, "/chat/completions");
    server.clear();
    assert!(server.requests().is_empty());

    let models: Value = client
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "mock-model"));
    assert_eq!(
        client
            .get(format!("{root}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let addr = server.addr;
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn latency_delays_the_headers() {
    let server = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat("#mock:latency_ms=150 wait"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}

fn with_stream(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn a_padded_answer_is_sent_with_its_declared_length() {
    let server = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat("#mock:answer_bytes=2000000 big"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(2_000_000));
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 2_000_000);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    server.shutdown().await;
}
