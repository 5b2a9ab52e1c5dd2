//! The responder seen from its callers: wire shapes, determinism and fault injection.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::{Mock, MockAbort, MockBody, MockReply};

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text},
    ]})
}

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn json_of(reply: &MockReply) -> Value {
    match &reply.body {
        MockBody::Json(bytes) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

fn sse_of(reply: &MockReply) -> Vec<String> {
    let MockBody::Sse { events, .. } = &reply.body else {
        panic!("expected SSE, got {:?}", reply.body)
    };
    events
        .iter()
        .map(|e| {
            let text = std::str::from_utf8(e).unwrap();
            assert!(
                text.starts_with("data: ") && text.ends_with("\n\n"),
                "{text:?}"
            );
            text["data: ".len()..text.len() - 2].to_owned()
        })
        .collect()
}

fn chunks_of(events: &[String]) -> Vec<Value> {
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn tools() -> Value {
    json!({"tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "other"}},
    ]})
}

#[test]
fn same_body_same_bytes() {
    let mock = Mock::new();
    for body in [
        chat("hello there"),
        with(chat("hello there"), json!({"stream": true})),
    ] {
        let a = mock.respond(&body, None);
        let b = mock.respond(&body, None);
        assert_eq!(a, b);
        assert_eq!(
            a,
            Mock::new().respond(&body, None),
            "another instance answers the same"
        );
    }
    let a = mock.respond(&chat("one"), None);
    let b = mock.respond(&chat("two"), None);
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[test]
fn non_streaming_shape() {
    let reply = Mock::new().respond(&chat("  hello   there #mock:latency_ms=0 "), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("99"));
    let v = json_of(&reply);
    let id = v["id"].as_str().unwrap();
    let tag = id.strip_prefix("chatcmpl-mock-").unwrap();
    assert_eq!(tag.len(), 12);
    assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        reply.header("x-request-id"),
        Some(format!("mock-{tag}").as_str())
    );
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 1_700_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["system_fingerprint"], "fp_mock");
    assert_eq!(
        v["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Mock reply to: hello   there"},
                "logprobs": null, "finish_reason": "stop"}])
    );
    // "be brief" + "hello there #mock:latency_ms=0" = 5 words, plus one per message.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
               "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})
    );
}

#[test]
fn the_id_hashes_the_canonical_body() {
    use sha2::{Digest, Sha256};
    let body = chat("hash me");
    let digest = hex::encode(Sha256::digest(serde_json::to_vec(&body).unwrap()));
    let v = json_of(&Mock::new().respond(&body, None));
    assert_eq!(v["id"], format!("chatcmpl-mock-{}", &digest[..12]));
}

#[test]
fn empty_message_and_content_parts() {
    let v = json_of(&Mock::new().respond(&chat("#mock:latency_ms=0"), None));
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply.");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "part one"}]}]});
    let v = json_of(&Mock::new().respond(&body, None));
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply to: part one"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3);
}

#[test]
fn streaming_without_usage() {
    let reply = Mock::new().respond(
        &with(chat("count the words"), json!({"stream": true})),
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let chunks = chunks_of(&sse_of(&reply));
    assert_eq!(
        chunks.len(),
        1 + 6 + 1,
        "role, one per word of 'Mock reply to: count the words', finish"
    );
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "Mock "})
    );
    let text: String = chunks[1..7]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Mock reply to: count the words");
    assert_eq!(
        chunks[7]["choices"][0],
        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
    );
    assert!(chunks[..7]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[test]
fn streaming_with_usage() {
    let body = with(
        chat("count the words"),
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let chunks = chunks_of(&sse_of(&Mock::new().respond(&body, None)));
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 7);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 13);
    assert_eq!(rest.len(), 8);
    for c in rest {
        assert_eq!(c.get("usage"), Some(&Value::Null), "{c}");
    }
}

#[test]
fn chunks_directive_sets_the_piece_count() {
    let body = with(chat("#mock:chunks=3 abc"), json!({"stream": true}));
    let chunks = chunks_of(&sse_of(&Mock::new().respond(&body, None)));
    let pieces: Vec<&str> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces.concat(), "Mock reply to: abc");

    let body = with(chat("#mock:chunks=1000 abc"), json!({"stream": true}));
    let chunks = chunks_of(&sse_of(&Mock::new().respond(&body, None)));
    assert_eq!(
        chunks.len(),
        2 + "Mock reply to: abc".len(),
        "capped at one char per piece"
    );
}

#[test]
fn tool_call_plain() {
    let body = with(chat("find \"it\" now"), tools());
    let v = json_of(&Mock::new().respond(&body, None));
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_mock_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "find \"it\" now"}));

    let none = with(body, json!({"tool_choice": "none"}));
    let v = json_of(&Mock::new().respond(&none, None));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn tool_call_streamed_reassembles_to_the_plain_arguments() {
    let text = "x".repeat(80);
    let plain = json_of(&Mock::new().respond(&with(chat(&text), tools()), None));
    let plain_args = plain["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(plain_args, format!("{{\"query\":\"{}\"}}", "x".repeat(50)));

    let body = with(with(chat(&text), tools()), json!({"stream": true}));
    let chunks = chunks_of(&sse_of(&Mock::new().respond(&body, None)));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_mock_0", "type": "function",
               "function": {"name": "lookup", "arguments": ""}}]})
    );
    let fragments = &chunks[1..chunks.len() - 1];
    assert!((2..=3).contains(&fragments.len()));
    let mut args = String::new();
    for c in fragments {
        let call = &c["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert!(
            call.get("id").is_none() && call["function"].get("name").is_none(),
            "{c}"
        );
        args.push_str(call["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(args, plain_args);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn two_choices() {
    let body = with(chat("hi"), json!({"n": 2}));
    let v = json_of(&Mock::new().respond(&body, None));
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: hi");
    assert_eq!(
        v["choices"][1]["message"]["content"],
        "Mock reply to: hi (choice 1)"
    );
    assert_eq!(v["choices"][1]["index"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 4 + 6);

    let chunks = chunks_of(&sse_of(
        &Mock::new().respond(&with(body, json!({"stream": true})), None),
    ));
    let indexes: Vec<u64> = chunks
        .iter()
        .map(|c| c["choices"][0]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(&indexes[..4], [0, 1, 0, 1], "interleaved by choice");
    for (index, expected) in [
        (0, "Mock reply to: hi"),
        (1, "Mock reply to: hi (choice 1)"),
    ] {
        let of_choice: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .collect();
        let text: String = of_choice
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, expected);
        assert_eq!(
            of_choice.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }
}

#[test]
fn fail_times_fails_then_succeeds() {
    let mock = Mock::new();
    let body = chat("#mock:error=503,fail_times=1 retry me");
    let first = mock.respond(&body, None);
    assert_eq!(first.status, 503);
    assert_eq!(json_of(&first)["error"]["type"], "server_error");
    let second = mock.respond(&body, None);
    assert_eq!(second.status, 200);
    assert_eq!(
        json_of(&second)["choices"][0]["message"]["content"],
        "Mock reply to: retry me"
    );
    assert_eq!(
        mock.clone().respond(&body, None).status,
        200,
        "clones share the counters"
    );
    assert_eq!(
        Mock::new().respond(&body, None).status,
        503,
        "a new mock starts over"
    );
}

#[test]
fn errors_without_fail_times_repeat() {
    let mock = Mock::new();
    let body = chat("#mock:error=500 boom");
    for _ in 0..3 {
        let reply = mock.respond(&body, None);
        assert_eq!(reply.status, 500);
        assert_eq!(
            json_of(&reply),
            json!({"error": {"message": "mock error 500", "type": "server_error", "param": null, "code": null}})
        );
        assert_eq!(reply.header("retry-after"), None);
    }
}

#[test]
fn rate_limit_sets_retry_after() {
    let reply = Mock::new().respond(&chat("#mock:error=429 limited"), None);
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(json_of(&reply)["error"]["type"], "rate_limit_error");
    assert!(reply.header("x-request-id").is_some());
    assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("99"));

    let reply = Mock::new().respond(&chat("#mock:error=429,retry_after=7 limited"), None);
    assert_eq!(reply.header("retry-after"), Some("7"));
}

#[test]
fn header_directives_and_the_message_winning() {
    let reply = Mock::new().respond(&chat("plain"), Some("error=418; latency_ms=25"));
    assert_eq!(reply.status, 418);
    assert_eq!(reply.latency, Duration::from_millis(25));
    let reply = Mock::new().respond(&chat("#mock:error=502 x"), Some("error=418 latency_ms=25"));
    assert_eq!(reply.status, 502);
    assert_eq!(reply.latency, Duration::from_millis(25));
}

#[test]
fn bad_directives_are_a_400_naming_them() {
    for (text, header, named) in [
        ("#mock:colour=blue hi", None, "colour"),
        ("hi", Some("latency_ms=soon"), "latency_ms"),
        ("#mock:error=200 x", None, "error"),
    ] {
        let reply = Mock::new().respond(&chat(text), header);
        assert_eq!(reply.status, 400, "{text}");
        let v = json_of(&reply);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(named),
            "{v}"
        );
    }
}

#[test]
fn bodies_that_are_not_chat_requests_are_a_400() {
    for body in [
        Value::Null,
        json!([]),
        json!({"model": "m"}),
        json!({"messages": []}),
        json!({"model": "m", "messages": {}}),
    ] {
        let reply = Mock::new().respond(&body, None);
        assert_eq!(reply.status, 400, "{body}");
        let v = json_of(&reply);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(reply.header("x-request-id").is_some());
    }
}

#[test]
fn timing_directives_reach_the_reply() {
    let body = with(
        chat("#mock:latency_ms=40,chunk_delay_ms=7 slow"),
        json!({"stream": true}),
    );
    let reply = Mock::new().respond(&body, None);
    assert_eq!(reply.latency, Duration::from_millis(40));
    let MockBody::Sse {
        chunk_delay,
        abort_after,
        ..
    } = reply.body
    else {
        panic!()
    };
    assert_eq!(chunk_delay, Duration::from_millis(7));
    assert_eq!(abort_after, None);
}

#[tokio::test]
async fn abort_after_breaks_the_stream_before_done() {
    let body = with(
        chat("#mock:abort_after=3 break this answer"),
        json!({"stream": true}),
    );
    let items: Vec<Result<Bytes, MockAbort>> = Mock::new()
        .respond(&body, None)
        .into_body_stream()
        .collect()
        .await;
    assert_eq!(items.len(), 4);
    assert!(items[..3]
        .iter()
        .all(|i| i.as_ref().is_ok_and(|b| b.starts_with(b"data: {"))));
    assert_eq!(items[3], Err(MockAbort));
    assert!(!items
        .iter()
        .flatten()
        .any(|b| b.windows(6).any(|w| w == b"[DONE]")));
}

#[tokio::test]
async fn abort_after_on_a_plain_answer_truncates_the_json() {
    let reply = Mock::new().respond(&chat("#mock:abort_after=0 cut"), None);
    assert!(matches!(reply.body, MockBody::TruncatedJson(_)));
    let items: Vec<_> = reply.into_body_stream().collect().await;
    assert_eq!(items.len(), 2);
    let partial = items[0].as_ref().unwrap();
    assert!(serde_json::from_slice::<Value>(partial).is_err());
    assert_eq!(items[1], Err(MockAbort));
}

#[tokio::test]
async fn unbroken_streams_end_with_done() {
    let body = with(chat("whole"), json!({"stream": true}));
    let items: Vec<_> = Mock::new()
        .respond(&body, None)
        .into_body_stream()
        .collect()
        .await;
    let last = items.last().unwrap().as_ref().unwrap();
    assert_eq!(last.as_ref(), b"data: [DONE]\n\n");
    assert!(items.iter().all(Result::is_ok));
}

async fn stream_items(text: &str) -> Vec<Bytes> {
    let body = with(chat(text), json!({"stream": true}));
    Mock::new()
        .respond(&body, None)
        .into_body_stream()
        .map(Result::unwrap)
        .collect()
        .await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn stream_error_after_sends_an_error_event_and_ends_without_done() {
    let items = stream_items("#mock:stream_error_after=2 fail mid-way").await;
    assert_eq!(items.len(), 3);
    assert!(items[..2].iter().all(|b| b.starts_with(b"data: {\"id\"")));
    let error: Value = serde_json::from_slice(
        items[2]
            .strip_prefix(b"data: ")
            .and_then(|b| b.strip_suffix(b"\n\n"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(error["error"]["message"], "mock stream error");
    assert!(!items.iter().any(|b| contains(b, b"[DONE]")));
}

#[tokio::test]
async fn truncate_after_ends_cleanly_before_any_finish_reason() {
    let items = stream_items("#mock:truncate_after=99 a few words here").await;
    assert!(!items.is_empty());
    assert!(items.iter().all(|b| b.ends_with(b"\n\n")));
    assert!(!items.iter().any(|b| contains(b, b"[DONE]")));
    assert!(!items.iter().any(|b| contains(b, b"\"finish_reason\":\"")));
    assert_eq!(
        stream_items("#mock:truncate_after=2 a few words here")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn answer_bytes_makes_a_whole_answer_of_that_size_with_its_length_declared() {
    let reply = Mock::new().respond(&chat("#mock:answer_bytes=300000 big"), None);
    let length: u64 = reply.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, 300_000);
    assert!(matches!(reply.body, MockBody::Padded { .. }));
    let body: Vec<Bytes> = reply.into_body_stream().map(Result::unwrap).collect().await;
    let body = body.concat();
    assert_eq!(body.len(), 300_000);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn event_bytes_makes_one_event_that_never_ends() {
    let items = stream_items("#mock:event_bytes=500000 huge").await;
    let first_end = items[0].len();
    assert!(items[0].ends_with(b"\n\n"), "the first event is whole");
    let rest = items.concat();
    assert_eq!(rest.len() - first_end, 500_000);
    assert!(
        !contains(&rest[first_end..], b"\n\n"),
        "the second event never ends"
    );
    assert!(rest[first_end..].starts_with(b"data: {\"id\""));
}
