//! Building provider streams and reading converted ones back, for the converters' tests.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::convert::StreamConverter;
use crate::stream::sse::{event_data, SseSplitter};

/// `(event name, data)` for every event in `bytes`.
pub fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut splitter = SseSplitter::default();
    let mut out = Vec::new();
    for event in splitter.push(bytes).unwrap() {
        let name = event
            .split(|b| *b == b'\n')
            .find_map(|l| l.strip_prefix(b"event: "))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let data = event_data(&event).unwrap();
        out.push((name, serde_json::from_slice(&data).unwrap()));
    }
    assert!(splitter.remainder().is_empty(), "a trailing partial event");
    out
}

/// A stream as OpenAI sends it with `include_usage`, nulls, fingerprints and all: text,
/// then a tool call whose arguments come in fragments, `finish_reason`, the usage chunk.
pub const OPENAI_STREAM: &str = concat!(
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":"Let me check the \"weather\"."},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k3"}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_DdmO9","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-B9x","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":18,"total_tokens":100,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

/// A provider stream of chat chunks, each a `data:` event, then `[DONE]`.
pub fn chat_stream(chunks: &[Value]) -> Vec<u8> {
    let mut s = Vec::new();
    for c in chunks {
        s.extend_from_slice(format!("data: {c}\n\n").as_bytes());
    }
    s.extend_from_slice(b"data: [DONE]\n\n");
    s
}

/// Feeds `stream` cut at `cuts` through a splitter into `conv`, then ends it.
pub fn run(conv: &mut impl StreamConverter, stream: &[u8], cuts: &[usize]) -> BytesMut {
    let mut points: Vec<usize> = cuts.iter().map(|c| (*c).min(stream.len())).collect();
    points.sort_unstable();
    let mut splitter = SseSplitter::default();
    let mut out = BytesMut::new();
    let mut prev = 0;
    for p in points.into_iter().chain([stream.len()]) {
        for event in splitter.push(&stream[prev..p]).unwrap() {
            conv.event(&event, &mut out);
        }
        prev = p;
    }
    conv.end(&mut out);
    out
}

fn text_chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-p", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-p", "object": "chat.completion.chunk", "model": "m", "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                     "prompt_tokens_details": {"cached_tokens": cached}}})
}

/// Any mix of the chunks a chat stream can hold, in any order, including ones a well-behaved
/// provider would not send (a call's fragments after the next call, text after the finish).
pub fn any_chunk() -> impl Strategy<Value = Vec<u8>> {
    let text = "[a-z é\"\\\\]{0,6}".prop_map(|t| text_chunk(json!({"content": t}), Value::Null));
    // Indices as chat numbers them, left out (as some servers do), or absurd.
    let index = prop::sample::select(vec![Some(0u64), Some(1), Some(2), None, Some(u64::MAX)]);
    let call = (index, 0u8..4, any::<bool>(), "[a-z{}\":]{0,6}").prop_map(|(i, id, first, a)| {
        let mut call = if first {
            json!({"id": format!("c{id}"), "function": {"name": "f", "arguments": a}})
        } else {
            json!({"function": {"arguments": a}})
        };
        if let (Some(i), Some(map)) = (i, call.as_object_mut()) {
            map.insert("index".into(), json!(i));
        }
        text_chunk(json!({"tool_calls": [call]}), Value::Null)
    });
    let finish = prop::sample::select(vec![
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "other",
    ])
    .prop_map(|f| text_chunk(json!({}), json!(f)));
    let usage = (0u64..100, 0u64..200, 0u64..50).prop_map(|(p, c, o)| usage_chunk(p, c, o));
    let error = Just(json!({"error": {"message": "boom", "type": "server_error"}}));
    prop_oneof![
        4 => text.prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        3 => call.prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        1 => finish.prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        1 => usage.prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        1 => error.prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        1 => Just(b"data: [DONE]\n\n".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// JSON made of the words the converters look for, nested a few levels: requests and
/// answers that are nearly right, in every wrong way.
pub fn near_json() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "model",
        "max_tokens",
        "messages",
        "system",
        "role",
        "content",
        "type",
        "text",
        "user",
        "assistant",
        "tool",
        "developer",
        "image",
        "source",
        "base64",
        "url",
        "media_type",
        "data",
        "document",
        "tool_use",
        "tool_result",
        "tool_use_id",
        "id",
        "name",
        "input",
        "is_error",
        "thinking",
        "tools",
        "input_schema",
        "tool_choice",
        "auto",
        "any",
        "none",
        "stop_sequences",
        "stream",
        "metadata",
        "user_id",
        "input_text",
        "input_image",
        "input_file",
        "image_url",
        "file_data",
        "output_text",
        "refusal",
        "message",
        "function_call",
        "function_call_output",
        "call_id",
        "arguments",
        "output",
        "reasoning",
        "function",
        "parameters",
        "instructions",
        "text",
        "format",
        "json_schema",
        "schema",
        "max_output_tokens",
        "choices",
        "finish_reason",
        "tool_calls",
        "usage",
        "prompt_tokens",
        "cached_tokens",
        "trace",
        "session_id",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.clone().prop_map(Value::from),
        "[a-z{}\":, ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
