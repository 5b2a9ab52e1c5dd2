//! Golden tests for the Messages ↔ chat pair, one mapping at a time, and the stream converter
//! on arbitrary chunk boundaries.

use bytes::BytesMut;
use http::StatusCode;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::convert::chat::testing::{any_chunk, chat_stream, events, run};
use crate::convert::StreamConverter;
use crate::error::ProxyError;

fn chat(req: Value) -> Value {
    serde_json::from_slice(&request(req.to_string().as_bytes()).unwrap()).unwrap()
}

fn refused(req: Value) -> (String, Option<String>) {
    match request(req.to_string().as_bytes()) {
        Err(ProxyError::InvalidRequest { message, param }) => (message, param),
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn base(messages: Value) -> Value {
    json!({"model": "claude-x", "max_tokens": 64, "messages": messages})
}

#[test]
fn scalar_settings_map_one_by_one() {
    let c = chat(json!({
        "model": "claude-x", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "metadata": {"user_id": "u-1"}, "stream": true, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "trace": {"trace_id": "t-1"}, "session_id": "s-1",
    }));
    assert_eq!(
        c,
        json!({
            "model": "claude-x", "max_tokens": 100,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "stop": ["END"], "temperature": 0.5, "top_p": 0.9, "user": "u-1",
            "stream": true, "stream_options": {"include_usage": true},
            "trace": {"trace_id": "t-1"}, "session_id": "s-1",
        })
    );
}

#[test]
fn the_bodys_own_user_wins_over_metadata() {
    let mut req = base(json!([{"role": "user", "content": "hi"}]));
    req["user"] = json!("gateway-user");
    req["metadata"] = json!({"user_id": "meta"});
    assert_eq!(chat(req.clone())["user"], "gateway-user");
    req["user"] = Value::Null;
    assert_eq!(chat(req)["user"], "meta", "a null user is no user");
}

#[test]
fn system_blocks_join_into_one_system_message() {
    let mut req = base(json!([{"role": "user", "content": "hi"}]));
    req["system"] = json!([
        {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "two"}
    ]);
    assert_eq!(
        chat(req)["messages"][0],
        json!({"role": "system", "content": "one\n\ntwo"})
    );
}

#[test]
fn user_blocks_become_parts() {
    let c = chat(base(json!([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
        {"type": "document", "title": "a.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
    ]}])));
    assert_eq!(
        c["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            {"type": "text", "text": "notes"},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
        ]}])
    );
}

#[test]
fn assistant_tool_use_becomes_tool_calls_and_thinking_is_dropped() {
    let c = chat(base(json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
        ]},
    ])));
    assert_eq!(
        c["messages"][1],
        json!({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ]})
    );
    let c = chat(base(json!([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]},
    ])));
    assert_eq!(
        c["messages"][1]["content"],
        Value::Null,
        "null beside tool calls"
    );
}

#[test]
fn tool_results_become_tool_messages_before_the_rest_of_the_turn() {
    let c = chat(base(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "here you are"},
            {"type": "tool_result", "tool_use_id": "a", "content": "42"},
            {"type": "tool_result", "tool_use_id": "b", "is_error": true, "content": [
                {"type": "text", "text": "no such file"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}},
                {"type": "text", "text": "sorry"},
            ]},
        ]},
    ])));
    assert_eq!(
        c["messages"].as_array().unwrap()[2..],
        [
            json!({"role": "tool", "tool_call_id": "a", "content": "42"}),
            json!({"role": "tool", "tool_call_id": "b", "content": "Error: no such file\n[image]\nsorry"}),
            json!({"role": "user", "content": [{"type": "text", "text": "here you are"}]}),
        ]
    );
}

#[test]
fn tools_and_tool_choice() {
    let tools = json!([{"name": "get_weather", "description": "Weather now", "cache_control": {"type": "ephemeral"},
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let want_tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    for (choice, want, parallel) in [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (
            json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
            Some(false),
        ),
        (
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!("auto"),
            Some(false),
        ),
    ] {
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["tools"] = tools.clone();
        req["tool_choice"] = choice;
        let c = chat(req);
        assert_eq!(c["tools"], want_tools);
        assert_eq!(c["tool_choice"], want);
        assert_eq!(
            c.get("parallel_tool_calls").and_then(Value::as_bool),
            parallel
        );
    }
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (
            json!({"model": "m", "max_tokens": 0, "messages": []}),
            "max_tokens",
        ),
        (json!({"model": "m", "max_tokens": 1}), "messages"),
        (
            base(json!([{"role": "system", "content": "x"}])),
            "messages.0.role",
        ),
        (
            base(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "video", "url": "x"}]},
            ])),
            "messages.2.content.0.type",
        ),
        (
            base(json!([{"role": "user", "content": [{"text": "no type"}]}])),
            "messages.0.content.0.type",
        ),
        (
            base(json!([{"role": "user", "content": [{"type": "text", "text": 5}]}])),
            "messages.0.content.0.text",
        ),
        (
            base(json!([{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}])),
            "messages.0.content.0.tool_use_id",
        ),
        (
            base(
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
            ),
            "messages.0.content.0.source.type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools.0.type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"name": "f"}]}),
            "tools.0.input_schema",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "maybe"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "stop_sequences": "END"}),
            "stop_sequences",
        ),
    ];
    for (req, param) in cases {
        let (message, got) = refused(req);
        assert_eq!(got.as_deref(), Some(param), "{message}");
        assert!(message.starts_with(param), "{message}");
    }
    assert_eq!(refused(json!([1, 2])).1, None);
    assert!(request(b"{not json").is_err());
}

#[test]
fn a_huge_unknown_type_is_quoted_bounded() {
    let kind = "x".repeat(100_000);
    let (message, _) = refused(base(json!([{"role": "user", "content": [{"type": kind}]}])));
    assert!(message.len() < 512, "{}", message.len());
}

/// A Claude Code-like conversation comes out as a chat conversation a chat provider accepts:
/// one system message first, every tool message answering a call of the assistant message
/// before it, and every call answered.
#[test]
fn an_agent_conversation_is_structurally_valid_chat() {
    let c = chat(json!({
        "model": "claude-x", "max_tokens": 4096, "stream": true,
        "system": [{"type": "text", "text": "You are an agent."}, {"type": "text", "text": "Env: linux"}],
        "tools": [
            {"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"name": "Bash", "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.rs"}},
                {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"cmd": "ls"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "fn main() {}"}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "a.rs"},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
            {"role": "user", "content": "thanks"},
        ],
    }));
    let messages = c["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[1..].iter().all(|m| m["role"] != "system"));
    let mut pending: Vec<String> = Vec::new();
    for m in messages {
        match m["role"].as_str().unwrap() {
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap().to_owned();
                assert!(
                    pending.contains(&id),
                    "tool message {id} answers no open call"
                );
                pending.retain(|p| *p != id);
                assert!(m["content"].is_string());
            }
            role => {
                assert!(
                    pending.is_empty(),
                    "calls {pending:?} unanswered before a {role} message"
                );
                if let Some(calls) = m["tool_calls"].as_array() {
                    for call in calls {
                        let args = call["function"]["arguments"].as_str().unwrap();
                        assert!(serde_json::from_str::<Value>(args).unwrap().is_object());
                        pending.push(call["id"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
    }
    assert!(pending.is_empty());
    assert_eq!(c["tools"].as_array().unwrap().len(), 2);
    assert_eq!(c["stream_options"]["include_usage"], true);
}

fn message(chat: Value) -> Value {
    serde_json::from_slice(&response(chat.to_string().as_bytes()).unwrap()).unwrap()
}

#[test]
fn a_completion_becomes_a_message() {
    let m = message(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "broken", "arguments": "{\"city\":"}},
                {"id": "call_3", "type": "function", "function": {"name": "noargs", "arguments": ""}},
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 30}},
    }));
    assert_eq!(
        m,
        json!({
            "id": "msg_abc", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}},
                {"type": "tool_use", "id": "call_3", "name": "noargs", "input": {}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 70, "output_tokens": 20, "cache_read_input_tokens": 30},
        })
    );
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (finish, want) in [
        (json!("stop"), "end_turn"),
        (json!("length"), "max_tokens"),
        (json!("tool_calls"), "tool_use"),
        (json!("content_filter"), "refusal"),
        (Value::Null, "end_turn"),
    ] {
        let m = message(json!({"id": "x", "model": "m",
            "choices": [{"finish_reason": finish, "message": {"content": "hi"}}]}));
        assert_eq!(m["stop_reason"], want);
        assert_eq!(m["usage"]["input_tokens"], 0);
    }
}

#[test]
fn an_answer_that_is_not_a_completion_is_refused() {
    assert!(response(b"not json").is_err());
    assert!(response(br#"{"id":"x","choices":[]}"#).is_err());
    assert!(response(br#"{"choices":"nope"}"#).is_err());
}

#[test]
fn errors_take_anthropics_type_by_status() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        let body = error::error(
            status,
            br#"{"error":{"message":"slow down","type":"x","param":null,"code":"c"}}"#,
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": kind, "message": "slow down"}})
        );
    }
    let v: Value = serde_json::from_slice(&error::error(
        StatusCode::BAD_GATEWAY,
        b"<html>bad gateway</html>",
    ))
    .unwrap();
    assert_eq!(v["error"]["message"], "<html>bad gateway</html>");
    let v: Value = serde_json::from_slice(&error::error(StatusCode::BAD_GATEWAY, b"")).unwrap();
    assert_eq!(
        v["error"]["message"],
        "the provider answered 502 Bad Gateway"
    );
    let huge = vec![b'x'; 1 << 20];
    assert!(error::error(StatusCode::BAD_GATEWAY, &huge).len() < 4096);
}

#[test]
fn count_tokens_is_a_quarter_of_the_characters_rounded_up() {
    let tool = json!({"name": "f", "input_schema": {"type": "object"}});
    let req = json!({
        "model": "m",
        "system": "abcd",                                                   // 4
        "messages": [
            {"role": "user", "content": "héllo"},                           // 5 chars
            {"role": "assistant", "content": [
                {"type": "text", "text": "ok"},                             // 2
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},  // 1 + 2
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "xyz"}]}, // 3
                {"type": "image", "source": {"type": "url", "url": "https://x"}},
            ]},
        ],
        "tools": [tool],
    });
    let chars = 4 + 5 + 2 + 3 + 3 + tool.to_string().chars().count() as u64;
    let got: Value =
        serde_json::from_slice(&count_tokens(req.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(
        got,
        json!({"input_tokens": chars.div_ceil(4) + count_tokens::IMAGE_TOKENS})
    );
    assert!(count_tokens(br#"{"messages":[]}"#).is_err());
    assert!(count_tokens(br#"{"model":"m"}"#).is_err());
}

fn converted(chunks: &[Value]) -> Vec<(String, Value)> {
    let mut conv = ChatToMessagesStream::new();
    events(&run(&mut conv, &chat_stream(chunks), &[]))
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "gpt-4o",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                     "prompt_tokens_details": {"cached_tokens": cached}}})
}

#[test]
fn a_text_stream_becomes_anthropics_event_sequence() {
    let got = converted(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(12, 2, 5),
    ]);
    let want = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_s1", "type": "message", "role": "assistant", "model": "gpt-4o", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
    assert_eq!(got, want);
}

#[test]
fn tool_calls_stream_as_tool_use_blocks_after_the_text_block_closes() {
    let got = converted(&[
        chunk(
            json!({"role": "assistant", "content": "On it."}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
            "function": {"name": "now", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(3, 0, 9),
    ]);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        got[4].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}})
    );
    assert_eq!(
        got[5].1,
        json!({"type": "content_block_delta", "index": 1,
               "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
    );
    assert_eq!(got[6].1["delta"]["partial_json"], "\"Paris\"}");
    assert_eq!(got[7].1, json!({"type": "content_block_stop", "index": 1}));
    assert_eq!(got[8].1["index"], 2);
    assert_eq!(got[8].1["content_block"]["id"], "call_b");
    assert_eq!(got[9].1["delta"]["partial_json"], "{}");
    assert_eq!(got[11].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        got[11].1["usage"],
        json!({"input_tokens": 3, "output_tokens": 9, "cache_read_input_tokens": 0})
    );
}

#[test]
fn without_a_usage_chunk_the_message_delta_comes_at_done() {
    let got = converted(&[
        chunk(json!({"content": "x"}), Value::Null),
        chunk(json!({}), json!("length")),
    ]);
    let (name, delta) = &got[got.len() - 2];
    assert_eq!(name, "message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"], json!({"output_tokens": 0}));
    assert_eq!(got.iter().filter(|(n, _)| n == "message_delta").count(), 1);
}

#[test]
fn usage_in_the_finish_chunk_is_sent_at_once() {
    let mut conv = ChatToMessagesStream::new();
    let mut out = BytesMut::new();
    let mut finish = chunk(json!({"content": "x"}), json!("stop"));
    finish["usage"] = json!({"prompt_tokens": 4, "completion_tokens": 1});
    conv.event(format!("data: {finish}\n\n").as_bytes(), &mut out);
    let got = events(&out);
    assert_eq!(got.last().unwrap().0, "message_delta", "not held back");
    assert_eq!(got.last().unwrap().1["usage"]["output_tokens"], 1);
    conv.event(b"data: [DONE]\n\n", &mut out);
    let got = events(&out);
    assert_eq!(got.iter().filter(|(n, _)| n == "message_delta").count(), 1);
    assert_eq!(got.last().unwrap().0, "message_stop");
}

#[test]
fn an_error_chunk_becomes_an_error_event_and_ends_the_stream() {
    let mut stream = chat_stream(&[chunk(json!({"content": "par"}), Value::Null)]);
    stream.truncate(stream.len() - b"data: [DONE]\n\n".len());
    stream.extend_from_slice(
        b"data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_exceeded\",\"code\":\"rate_limit_exceeded\"}}\n\n",
    );
    stream.extend_from_slice(b"data: [DONE]\n\n");
    let mut conv = ChatToMessagesStream::new();
    let got = events(&run(&mut conv, &stream, &[]));
    let last = got.last().unwrap();
    assert_eq!(last.0, "error");
    assert_eq!(
        last.1,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
    );
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
}

#[test]
fn a_stream_that_ends_without_done_is_still_closed() {
    let mut stream = chat_stream(&[chunk(json!({"content": "hi"}), Value::Null)]);
    stream.truncate(stream.len() - b"data: [DONE]\n\n".len());
    let mut conv = ChatToMessagesStream::new();
    let got = events(&run(&mut conv, &stream, &[]));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    // An empty stream still gives a well-formed message.
    let mut conv = ChatToMessagesStream::new();
    let got = events(&run(&mut conv, b"", &[]));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}

#[test]
fn comments_and_junk_are_skipped() {
    let mut conv = ChatToMessagesStream::new();
    let mut out = BytesMut::new();
    conv.event(b": keep-alive\n\n", &mut out);
    conv.event(b"data: {not json\n\n", &mut out);
    conv.event(b"data: {\"choices\":\"x\"}\n\n", &mut out);
    assert!(out.is_empty());
}

proptest! {
    /// Cut anywhere, the stream converts to the same events, and its text deltas are the
    /// provider's text in order.
    #[test]
    fn any_split_converts_the_same_and_keeps_text_in_order(
        pieces in prop::collection::vec("[a-zA-Z \"\\\\\n{}é]{0,12}", 1..8),
        args in prop::collection::vec("[a-z\"{}:,]{0,8}", 0..4),
        cuts in prop::collection::vec(0usize..4000, 0..12),
    ) {
        let mut chunks: Vec<Value> = pieces.iter().map(|p| chunk(json!({"content": p}), Value::Null)).collect();
        for (i, a) in args.iter().enumerate() {
            let call = if i == 0 { json!({"index": 0, "id": "c0", "function": {"name": "f", "arguments": a}}) }
                       else { json!({"index": 0, "function": {"arguments": a}}) };
            chunks.push(chunk(json!({"tool_calls": [call]}), Value::Null));
        }
        chunks.push(chunk(json!({}), json!("stop")));
        chunks.push(usage_chunk(5, 1, 3));
        let stream = chat_stream(&chunks);
        let whole = run(&mut ChatToMessagesStream::new(), &stream, &[]);
        let split = run(&mut ChatToMessagesStream::new(), &stream, &cuts);
        prop_assert_eq!(&whole[..], &split[..]);
        let got = events(&split);
        let text: String = got.iter().filter_map(|(_, v)| v["delta"]["text"].as_str()).collect();
        prop_assert_eq!(text, pieces.concat());
        let json_text: String = got.iter().filter_map(|(_, v)| v["delta"]["partial_json"].as_str()).collect();
        prop_assert_eq!(json_text, args.concat());
        prop_assert_eq!(&got.last().unwrap().0, "message_stop");
    }

    #[test]
    fn arbitrary_events_never_panic(events in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..10)) {
        let mut conv = ChatToMessagesStream::new();
        let mut out = BytesMut::new();
        for e in &events {
            conv.event(e, &mut out);
        }
        conv.end(&mut out);
    }
}

proptest! {
    /// Whatever the chunks, the output is well-formed events with block starts and stops
    /// paired, at most one message_delta, and nothing after message_stop or error.
    #[test]
    fn any_chunk_sequence_gives_well_formed_events(chunks in prop::collection::vec(any_chunk(), 0..16)) {
        let mut conv = ChatToMessagesStream::new();
        let mut out = BytesMut::new();
        for c in &chunks {
            conv.event(c, &mut out);
        }
        conv.end(&mut out);
        let got = events(&out);
        let mut open: Option<u64> = None;
        let mut deltas = 0;
        for (i, (name, v)) in got.iter().enumerate() {
            prop_assert_eq!(v["type"].as_str(), Some(name.as_str()));
            match name.as_str() {
                "content_block_start" => {
                    prop_assert!(open.is_none());
                    open = v["index"].as_u64();
                }
                "content_block_stop" => {
                    prop_assert_eq!(open, v["index"].as_u64());
                    open = None;
                }
                "message_delta" => deltas += 1,
                "message_stop" | "error" => prop_assert_eq!(i, got.len() - 1),
                _ => {}
            }
        }
        prop_assert!(deltas <= 1);
    }
}

/// Some chat servers answer `finish_reason: stop` after calling tools; Anthropic clients run
/// the tools only on `tool_use`.
#[test]
fn tool_calls_ending_in_stop_are_tool_use() {
    let got = converted(&[
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("stop")),
    ]);
    let delta = got.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    let m = message(
        json!({"id": "x", "model": "m", "choices": [{"finish_reason": "stop", "message": {
        "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}),
    );
    assert_eq!(m["stop_reason"], "tool_use");
}

/// Servers that leave out the tool-call `index` (each call whole, with its id) still get one
/// block per call.
#[test]
fn calls_without_an_index_are_told_apart_by_id() {
    let got = converted(&[
        chunk(
            json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\":1}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"function": {"arguments": "}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ]);
    let starts: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, v)| &v["content_block"])
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        (&starts[0]["id"], &starts[1]["id"]),
        (&json!("a"), &json!("b"))
    );
    let second: String = got
        .iter()
        .filter(|(_, v)| v["index"] == 1 && v["delta"]["partial_json"].is_string())
        .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(second, "{}");
}

#[test]
fn openais_own_stream_converts_event_by_event() {
    use crate::convert::chat::testing::OPENAI_STREAM;
    let mut conv = ChatToMessagesStream::new();
    let got = events(&run(&mut conv, OPENAI_STREAM.as_bytes(), &[]));
    let want = [
        json!({"type": "message_start", "message": {"id": "msg_B9x", "type": "message", "role": "assistant",
            "model": "gpt-4o-2024-08-06", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check the \"weather\"."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_DdmO9", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"loc"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ation\":\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 18, "output_tokens": 18, "cache_read_input_tokens": 64}}),
        json!({"type": "message_stop"}),
    ];
    let data: Vec<&Value> = got.iter().map(|(_, v)| v).collect();
    assert_eq!(data, want.iter().collect::<Vec<_>>());
    assert!(got.iter().all(|(n, v)| v["type"] == n.as_str()));
}

/// The chat body is one the gateway's chat parser takes, reading the same settings and the
/// gateway fields from it, and the upstream body it writes carries no gateway field.
#[test]
fn the_chat_body_is_what_the_chat_path_reads() {
    let body = request(
        json!({"model": "claude-x", "max_tokens": 77, "temperature": 0.4, "stream": true,
               "messages": [{"role": "user", "content": "hi"}], "metadata": {"user_id": "u-9"},
               "trace": {"trace_id": "run-1", "name": "agent"}, "session_id": "s-2"})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let parsed = crate::request::ChatRequest::parse(&body, None).unwrap();
    assert_eq!(parsed.model(), "claude-x");
    assert!(parsed.stream());
    assert_eq!(parsed.info.max_tokens, Some(77));
    assert_eq!(parsed.info.temperature, Some(0.4));
    assert_eq!(parsed.user.as_deref(), Some("u-9"));
    assert_eq!(parsed.session_id.as_deref(), Some("s-2"));
    assert_eq!(parsed.trace.as_ref().unwrap()["trace_id"], "run-1");
    let upstream: Value = serde_json::from_slice(&parsed.upstream_body("gpt-4o")).unwrap();
    assert_eq!(upstream.get("trace"), None);
    assert_eq!(upstream.get("session_id"), None);
    assert_eq!(upstream["model"], "gpt-4o");
}

proptest! {
    /// Nearly-right requests and answers are converted or refused, never a panic; a refusal
    /// names its field, and what is converted is JSON.
    #[test]
    fn near_misses_never_panic(
        v in crate::convert::chat::testing::near_json(),
        parts in prop::collection::vec(crate::convert::chat::testing::near_json(), 4),
        whole in any::<bool>(),
    ) {
        // Half the cases get past the required fields, to reach the turns and tools.
        let v = if whole {
            json!({"model": "m", "max_tokens": 5, "messages": parts[0], "system": parts[1],
                   "tools": parts[2], "tool_choice": parts[3], "stream": true})
        } else {
            v
        };
        let body = v.to_string();
        match request(body.as_bytes()) {
            Ok(chat) => { serde_json::from_slice::<Value>(&chat).unwrap(); }
            Err(ProxyError::InvalidRequest { message, .. }) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        let _ = count_tokens(body.as_bytes());
        if let Ok(m) = response(body.as_bytes()) {
            serde_json::from_slice::<Value>(&m).unwrap();
        }
        let _ = error::error(StatusCode::BAD_REQUEST, body.as_bytes());
    }
}

#[test]
fn a_huge_call_index_does_not_overflow() {
    let got = converted(&[
        chunk(
            json!({"tool_calls": [{"index": u64::MAX, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ]);
    assert_eq!(got.last().unwrap().0, "message_stop");
}

/// OpenAI refuses `tool_choice` (and `parallel_tool_calls`) without tools.
#[test]
fn tool_choice_without_tools_is_left_out() {
    for tools in [None, Some(json!([]))] {
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
        if let Some(tools) = tools {
            req["tools"] = tools;
        }
        let c = chat(req);
        assert_eq!(c.get("tool_choice"), None);
        assert_eq!(c.get("tools"), None);
        assert_eq!(c.get("parallel_tool_calls"), None);
    }
}

#[test]
fn the_gateways_own_errors_take_anthropics_shape() {
    for (e, kind) in [
        (
            ProxyError::InvalidRequest {
                message: "messages.0.role: must be `user` or `assistant`".into(),
                param: Some("messages.0.role".into()),
            },
            "invalid_request_error",
        ),
        (ProxyError::model_not_found("nope"), "not_found_error"),
        (
            ProxyError::PayloadTooLarge { limit: 1 },
            "request_too_large",
        ),
        (
            ProxyError::Timeout {
                provider: "p".into(),
                timeout_ms: 5,
            },
            "timeout_error",
        ),
    ] {
        let v: Value = serde_json::from_slice(&error::api_error(&e.api_error())).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": kind, "message": e.to_string()}})
        );
    }
}
