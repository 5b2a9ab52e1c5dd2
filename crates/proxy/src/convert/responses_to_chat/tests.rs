//! Golden tests for the Responses ↔ chat pair, and the stream converter event by event and on
//! arbitrary chunk boundaries.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::convert::chat::testing::{any_chunk, chat_stream, events, run};
use crate::convert::StreamConverter;
use crate::error::ProxyError;

fn convert(req: Value, history: &[Value]) -> (Value, Converted) {
    let converted = request(req.to_string().as_bytes(), history).unwrap();
    (
        serde_json::from_slice(&converted.chat_body).unwrap(),
        converted,
    )
}

fn chat(req: Value) -> Value {
    convert(req, &[]).0
}

fn refused(req: Value) -> (String, Option<String>) {
    match request(req.to_string().as_bytes(), &[]) {
        Err(ProxyError::InvalidRequest { message, param }) => (message, param),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn a_string_input_and_settings_map_one_by_one() {
    let (c, converted) = convert(
        json!({
            "model": "gpt-4o", "instructions": "be brief", "input": "hi",
            "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.8, "user": "u-1",
            "stream": true, "store": true, "reasoning": {"effort": "low"}, "truncation": "auto",
            "metadata": {"k": "v"}, "include": ["reasoning.encrypted_content"],
            "trace": {"trace_id": "t-1"}, "session_id": "s-1",
        }),
        &[],
    );
    assert_eq!(
        c,
        json!({
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.8, "user": "u-1",
            "stream": true, "stream_options": {"include_usage": true},
            "trace": {"trace_id": "t-1"}, "session_id": "s-1",
        })
    );
    assert_eq!(
        converted.input_items,
        vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
        ]
    );
    assert_eq!(converted.echo.fields["instructions"], "be brief");
    assert_eq!(converted.echo.fields["metadata"], json!({"k": "v"}));
    assert_eq!(converted.echo.fields["tool_choice"], "auto");
}

#[test]
fn message_items_and_parts() {
    let (c, converted) = convert(
        json!({"model": "m", "input": [
            {"role": "developer", "content": "rules"},
            {"role": "system", "content": [{"type": "input_text", "text": "sys"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
            ]},
            {"role": "assistant", "content": "a cat"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "a ", "annotations": []}, {"type": "output_text", "text": "dog"}]},
        ]}),
        &[],
    );
    assert_eq!(
        c["messages"],
        json!([
            {"role": "system", "content": "rules"},
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
            ]},
            {"role": "assistant", "content": "a cat"},
            {"role": "assistant", "content": "a dog"},
        ])
    );
    assert_eq!(converted.input_items[0]["type"], "message");
    assert_eq!(
        converted.input_items[0]["content"],
        json!([{"type": "input_text", "text": "rules"}])
    );
    assert_eq!(
        converted.input_items[3]["content"],
        json!([{"type": "output_text", "text": "a cat"}])
    );
}

#[test]
fn function_calls_join_the_assistant_message_and_outputs_become_tool_messages() {
    let c = chat(json!({"model": "m", "input": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_b", "output": [
            {"type": "input_text", "text": "21C"}, {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "function_call", "call_id": "call_c", "name": "noop", "arguments": "{}"},
    ]}));
    assert_eq!(
        c["messages"].as_array().unwrap()[1..],
        [
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]}),
            json!({"role": "tool", "tool_call_id": "call_a", "content": "18C"}),
            json!({"role": "tool", "tool_call_id": "call_b", "content": "21C\n[image]"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_c", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
            ]}),
        ]
    );
}

#[test]
fn history_goes_after_instructions_and_before_input() {
    let history = [
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "call f"}]}),
        json!({"type": "function_call", "id": "fc_r1_0", "status": "completed", "call_id": "call_1", "name": "f", "arguments": "{}"}),
    ];
    let (c, converted) = convert(
        json!({"model": "m", "instructions": "sys", "previous_response_id": "resp_r1",
               "input": [{"type": "function_call_output", "call_id": "call_1", "output": "ok"}]}),
        &history,
    );
    assert_eq!(
        c["messages"],
        json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "call f"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ])
    );
    assert_eq!(
        converted.input_items.len(),
        1,
        "only this turn's input is returned"
    );
    assert_eq!(converted.echo.fields["previous_response_id"], "resp_r1");
}

#[test]
fn function_tools_tool_choice_and_text_format() {
    let c = chat(json!({"model": "m", "input": "hi",
        "tools": [{"type": "function", "name": "f", "description": "does f", "strict": true,
                   "parameters": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                            "schema": {"type": "object"}}, "verbosity": "low"}}));
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "does f", "strict": true,
                "parameters": {"type": "object", "properties": {}}}}])
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(c["parallel_tool_calls"], false);
    assert_eq!(
        c["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "strict": true, "schema": {"type": "object"}}})
    );
    for choice in ["auto", "none", "required"] {
        assert_eq!(
            chat(json!({"model": "m", "input": "x", "tool_choice": choice,
                        "tools": [{"type": "function", "name": "f"}]}))["tool_choice"],
            choice
        );
    }
    let c = chat(
        json!({"model": "m", "input": "x", "parallel_tool_calls": true,
                        "text": {"format": {"type": "json_object"}}}),
    );
    assert_eq!(c.get("parallel_tool_calls"), None, "not without tools");
    assert_eq!(c["response_format"], json!({"type": "json_object"}));
    let c = chat(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}}));
    assert_eq!(c.get("response_format"), None);
}

#[test]
fn bad_or_unsupported_requests_name_the_field() {
    let cases = [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 5}), "input"),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
            "tools.1.type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}),
            "tools.0.type",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input.0.type",
        ),
        (
            json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws"}]}),
            "input.0.type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}),
            "input.1.role",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input.0.content.0.type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input.0.content.0.image_url",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input.0.call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
            "input.0.output",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
            "text.format.schema",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": -1}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
    ];
    for (req, param) in cases {
        let (message, got) = refused(req);
        assert_eq!(got.as_deref(), Some(param), "{message}");
        assert!(message.starts_with(param), "{message}");
    }
    assert_eq!(refused(json!("x")).1, None);
    let bad_history = [json!({"type": "computer_call", "id": "c"})];
    match request(br#"{"model":"m","input":"x"}"#, &bad_history) {
        Err(ProxyError::InvalidRequest { param, .. }) => {
            assert_eq!(param.as_deref(), Some("previous_response_id.0.type"))
        }
        other => panic!("{other:?}"),
    }
}

fn turn() -> Turn {
    let (_, converted) = convert(
        json!({"model": "gpt-4o", "input": "hi", "tools": [{"type": "function", "name": "f"}],
               "temperature": 0.3}),
        &[],
    );
    Turn {
        id: "resp_abc".into(),
        created_at: 1_700_000_000,
        echo: converted.echo,
    }
}

#[test]
fn a_completion_becomes_a_response() {
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024", "created": 1,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Calling.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57,
                  "prompt_tokens_details": {"cached_tokens": 10}, "completion_tokens_details": {"reasoning_tokens": 2}},
    });
    let out = response(chat.to_string().as_bytes(), &turn()).unwrap();
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    let items = json!([
        {"id": "msg_abc", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Calling.", "annotations": [], "logprobs": []}]},
        {"id": "fc_abc_0", "type": "function_call", "status": "completed", "call_id": "call_9",
         "name": "f", "arguments": "{\"a\":1}"},
    ]);
    assert_eq!(body["id"], "resp_abc");
    assert_eq!(body["object"], "response");
    assert_eq!(body["created_at"], 1_700_000_000);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["incomplete_details"], Value::Null);
    assert_eq!(body["model"], "gpt-4o-2024");
    assert_eq!(body["output"], items);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 50, "input_tokens_details": {"cached_tokens": 10},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 57})
    );
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["tools"], json!([{"type": "function", "name": "f"}]));
    assert_eq!(body["parallel_tool_calls"], true);
    assert_eq!(Value::Array(out.output_items), items);
}

#[test]
fn length_makes_the_response_incomplete() {
    let chat = json!({"id": "c", "model": "m",
        "choices": [{"finish_reason": "length", "message": {"content": "cut"}}]});
    let out = response(chat.to_string().as_bytes(), &turn()).unwrap();
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["status"], "incomplete");
    assert_eq!(
        body["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(body["output"][0]["status"], "incomplete");
    assert_eq!(body["usage"], zero_usage());
    assert!(response(b"[]", &turn()).is_err());
    assert!(response(br#"{"choices":[]}"#, &turn()).is_err());
}

fn zero_usage() -> Value {
    json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
           "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0})
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
}

fn streamed(chunks: &[Value]) -> (Vec<(String, Value)>, Vec<Value>) {
    let mut conv = ChatToResponsesStream::new(turn());
    let got = events(&run(&mut conv, &chat_stream(chunks), &[]));
    (got, conv.output_items().to_vec())
}

/// Every event is typed as its `event:` line says and numbered in order from 0.
fn check_framing(got: &[(String, Value)]) {
    for (i, (name, v)) in got.iter().enumerate() {
        assert_eq!(v["type"].as_str(), Some(name.as_str()));
        assert_eq!(v["sequence_number"].as_u64(), Some(i as u64), "{name}");
    }
}

#[test]
fn a_text_stream_becomes_the_typed_event_sequence() {
    let (got, items) = streamed(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(9, 2),
    ]);
    check_framing(&got);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &got[0].1["response"];
    assert_eq!(created["id"], "resp_abc");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(
        got[2].1,
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
               "item": {"id": "msg_abc", "type": "message", "status": "in_progress", "role": "assistant", "content": []}})
    );
    assert_eq!(
        got[3].1,
        json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_abc",
               "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
    );
    assert_eq!(
        got[4].1,
        json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_abc",
               "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []})
    );
    assert_eq!(
        got[6].1,
        json!({"type": "response.output_text.done", "sequence_number": 6, "item_id": "msg_abc",
               "output_index": 0, "content_index": 0, "text": "Hello", "logprobs": []})
    );
    assert_eq!(got[7].1["part"]["text"], "Hello");
    let item = json!({"id": "msg_abc", "type": "message", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]});
    assert_eq!(got[8].1["item"], item);
    let done = &got[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([item]));
    assert_eq!(done["usage"]["input_tokens"], 9);
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(done["usage"]["total_tokens"], 11);
    assert_eq!(items, vec![item]);
}

#[test]
fn tool_calls_stream_as_function_call_items() {
    let (got, items) = streamed(&[
        chunk(
            json!({"role": "assistant", "content": "Let me see."}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "weather", "arguments": ""}}]}),
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
            "function": {"name": "time", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(20, 10),
    ]);
    check_framing(&got);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        got[8].1["item"],
        json!({"id": "fc_abc_0", "type": "function_call", "status": "in_progress", "call_id": "call_a",
               "name": "weather", "arguments": ""})
    );
    assert_eq!(got[8].1["output_index"], 1);
    assert_eq!(
        got[9].1,
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 9,
               "item_id": "fc_abc_0", "output_index": 1, "delta": "{\"city\":"})
    );
    assert_eq!(
        got[11].1,
        json!({"type": "response.function_call_arguments.done", "sequence_number": 11,
               "item_id": "fc_abc_0", "output_index": 1, "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(got[12].1["item"]["status"], "completed");
    assert_eq!(got[13].1["output_index"], 2);
    assert_eq!(got[13].1["item"]["id"], "fc_abc_1");
    let done = &got[17].1["response"];
    assert_eq!(done["output"].as_array().unwrap().len(), 3);
    assert_eq!(Value::Array(items.clone()), done["output"]);
    assert_eq!(items[2]["call_id"], "call_b");
    assert_eq!(items[2]["arguments"], "{}");
}

/// A bridged stream, fed back as the next turn's history, makes a valid chat conversation.
#[test]
fn streamed_items_are_a_valid_history_for_the_next_turn() {
    let (_, items) = streamed(&[
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ]);
    let (_, first) = convert(json!({"model": "m", "input": "go"}), &[]);
    let history: Vec<Value> = first.input_items.into_iter().chain(items).collect();
    let c = chat_for(&history);
    assert_eq!(
        c["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "done"},
        ])
    );
}

fn chat_for(history: &[Value]) -> Value {
    let req = json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "call_a", "output": "done"}]});
    convert(req, history).0
}

#[test]
fn length_ends_with_response_incomplete() {
    let (got, items) = streamed(&[
        chunk(json!({"content": "cut sh"}), Value::Null),
        chunk(json!({}), json!("length")),
        usage_chunk(1, 2),
    ]);
    check_framing(&got);
    let (name, last) = got.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(items[0]["status"], "incomplete");
}

#[test]
fn without_usage_the_final_event_comes_at_done() {
    let (got, _) = streamed(&[
        chunk(json!({"content": "x"}), Value::Null),
        chunk(json!({}), json!("stop")),
    ]);
    let (name, last) = got.last().unwrap();
    assert_eq!(name, "response.completed");
    assert_eq!(
        last["response"]["usage"],
        zero_usage(),
        "clients require the object"
    );
    assert_eq!(
        got.iter()
            .filter(|(n, _)| n == "response.completed")
            .count(),
        1
    );
}

#[test]
fn an_error_chunk_fails_the_response() {
    let mut conv = ChatToResponsesStream::new(turn());
    let mut out = BytesMut::new();
    conv.event(
        format!(
            "data: {}\n\n",
            chunk(json!({"content": "par"}), Value::Null)
        )
        .as_bytes(),
        &mut out,
    );
    conv.event(
        b"data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n",
        &mut out,
    );
    conv.event(b"data: [DONE]\n\n", &mut out);
    conv.end(&mut out);
    let got = events(&out);
    check_framing(&got);
    let (name, last) = got.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        last["response"]["error"],
        json!({"code": "rate_limit_exceeded", "message": "Rate limit reached"})
    );
    assert_eq!(conv.final_response(), Some(&last["response"]));
}

#[test]
fn an_empty_stream_still_completes() {
    let mut conv = ChatToResponsesStream::new(turn());
    let got = events(&run(&mut conv, b"", &[]));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
}

proptest! {
    /// Cut anywhere, the stream converts to the same events; the text deltas are the
    /// provider's text in order, and the done events and stored items repeat it whole.
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
        chunks.push(usage_chunk(5, 3));
        let stream = chat_stream(&chunks);
        let whole = run(&mut ChatToResponsesStream::new(turn()), &stream, &[]);
        let mut conv = ChatToResponsesStream::new(turn());
        let split = run(&mut conv, &stream, &cuts);
        prop_assert_eq!(&whole[..], &split[..]);
        let got = events(&split);
        let text: String = got.iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .filter_map(|(_, v)| v["delta"].as_str()).collect();
        prop_assert_eq!(&text, &pieces.concat());
        let arguments: String = got.iter()
            .filter(|(n, _)| n == "response.function_call_arguments.delta")
            .filter_map(|(_, v)| v["delta"].as_str()).collect();
        prop_assert_eq!(&arguments, &args.concat());
        let items = conv.output_items();
        if !text.is_empty() {
            prop_assert_eq!(items[0]["content"][0]["text"].as_str(), Some(text.as_str()));
        }
        if !args.is_empty() {
            prop_assert_eq!(items.last().unwrap()["arguments"].as_str(), Some(arguments.as_str()));
        }
        prop_assert_eq!(&got.last().unwrap().0, "response.completed");
    }

    /// Whatever the chunks, events are numbered in order, items are added before they are
    /// done, and nothing follows the final event.
    #[test]
    fn any_chunk_sequence_gives_well_formed_events(
        chunks in prop::collection::vec(any_chunk(), 0..16),
    ) {
        let mut conv = ChatToResponsesStream::new(turn());
        let mut out = BytesMut::new();
        for c in &chunks {
            conv.event(c, &mut out);
        }
        conv.end(&mut out);
        let got = events(&out);
        let mut open: Option<u64> = None;
        for (i, (name, v)) in got.iter().enumerate() {
            prop_assert_eq!(v["type"].as_str(), Some(name.as_str()));
            prop_assert_eq!(v["sequence_number"].as_u64(), Some(i as u64));
            match name.as_str() {
                "response.output_item.added" => {
                    prop_assert!(open.is_none());
                    open = v["output_index"].as_u64();
                }
                "response.output_item.done" => {
                    prop_assert_eq!(open, v["output_index"].as_u64());
                    open = None;
                }
                "response.completed" | "response.incomplete" | "response.failed" => {
                    prop_assert_eq!(i, got.len() - 1)
                }
                _ => {}
            }
        }
        let last = &got.last().unwrap().0;
        prop_assert!(matches!(last.as_str(), "response.completed" | "response.incomplete" | "response.failed"));
    }
}

#[test]
fn calls_without_an_index_are_told_apart_by_id() {
    let (_, items) = streamed(&[
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
    let calls: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["call_id"].as_str().unwrap(),
                i["arguments"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(calls, [("a", "{\"x\":1}"), ("b", "{}")]);
}

#[test]
fn openais_own_stream_converts_event_by_event() {
    use crate::convert::chat::testing::OPENAI_STREAM;
    let mut conv = ChatToResponsesStream::new(turn());
    let got = events(&run(&mut conv, OPENAI_STREAM.as_bytes(), &[]));
    check_framing(&got);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(got[4].1["delta"], "Let me check the \"weather\".");
    assert_eq!(got[11].1["arguments"], "{\"location\":\"Paris\"}");
    let done = &got[13].1["response"];
    assert_eq!(done["model"], "gpt-4o-2024-08-06");
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 82, "input_tokens_details": {"cached_tokens": 64}, "output_tokens": 18,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 100})
    );
    assert_eq!(done["output"][1]["call_id"], "call_DdmO9");
    assert_eq!(Value::Array(conv.output_items().to_vec()), done["output"]);
    assert_eq!(conv.final_response(), Some(done));
}

/// The chat body is one the gateway's chat parser takes, reading the same settings and the
/// gateway fields from it.
#[test]
fn the_chat_body_is_what_the_chat_path_reads() {
    let (_, converted) = convert(
        json!({"model": "gpt-x", "input": "hi", "max_output_tokens": 33, "top_p": 0.5, "stream": true,
               "user": "u-3", "trace": {"trace_id": "run-2"}, "session_id": "s-3"}),
        &[],
    );
    let parsed = crate::request::ChatRequest::parse(&converted.chat_body, None).unwrap();
    assert_eq!(parsed.model(), "gpt-x");
    assert!(parsed.stream());
    assert_eq!(parsed.info.max_tokens, Some(33));
    assert_eq!(parsed.info.top_p, Some(0.5));
    assert_eq!(parsed.user.as_deref(), Some("u-3"));
    assert_eq!(parsed.session_id.as_deref(), Some("s-3"));
    assert_eq!(parsed.trace.as_ref().unwrap()["trace_id"], "run-2");
}

proptest! {
    /// Nearly-right requests, histories and answers are converted or refused, never a panic.
    #[test]
    fn near_misses_never_panic(
        v in crate::convert::chat::testing::near_json(),
        history in prop::collection::vec(crate::convert::chat::testing::near_json(), 0..3),
        parts in prop::collection::vec(crate::convert::chat::testing::near_json(), 4),
        whole in any::<bool>(),
    ) {
        // Half the cases get past the required fields, to reach the items and tools.
        let v = if whole {
            json!({"model": "m", "input": parts[0], "tools": parts[1], "tool_choice": parts[2],
                   "text": {"format": parts[3]}})
        } else {
            v
        };
        let body = v.to_string();
        match request(body.as_bytes(), &history) {
            Ok(c) => { serde_json::from_slice::<Value>(&c.chat_body).unwrap(); }
            Err(ProxyError::InvalidRequest { message, .. }) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        if let Ok(out) = response(body.as_bytes(), &turn()) {
            serde_json::from_slice::<Value>(&out.body).unwrap();
        }
    }
}

/// OpenAI refuses `tool_choice` (and `parallel_tool_calls`) without tools.
#[test]
fn tool_choice_without_tools_is_left_out() {
    let c = chat(
        json!({"model": "m", "input": "x", "tools": [], "tool_choice": "required",
                        "parallel_tool_calls": false}),
    );
    assert_eq!(c.get("tool_choice"), None);
    assert_eq!(c.get("tools"), None);
    assert_eq!(c.get("parallel_tool_calls"), None);
}
