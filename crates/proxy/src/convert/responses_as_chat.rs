//! A Responses answer passed through to a Responses client (an OpenAI provider that serves
//! `/responses`), read as chat completions for the record: text, function calls, the final
//! status and usage. The client never sees this form; only the capture does.

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use super::StreamConverter;
use crate::stream::sse::event_data;

/// The chat `finish_reason` of a finished response.
fn finish_reason(response: &Value) -> &'static str {
    let calls = response["output"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call"));
    match response["status"].as_str() {
        Some("incomplete") => match response["incomplete_details"]["reason"].as_str() {
            Some("content_filter") => "content_filter",
            _ => "length",
        },
        _ if calls => "tool_calls",
        _ => "stop",
    }
}

/// Responses' usage as chat's: `input_tokens` already includes the cached ones.
fn chat_usage(usage: &Value) -> Value {
    let input = usage["input_tokens"].as_u64().unwrap_or(0);
    let output = usage["output_tokens"].as_u64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": usage["total_tokens"].as_u64().unwrap_or(input + output),
        "prompt_tokens_details": {"cached_tokens": usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)},
        "completion_tokens_details": {"reasoning_tokens": usage["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0)},
    })
}

/// A whole `response` object as a `chat.completion`.
pub fn response(body: &[u8]) -> Result<Vec<u8>, String> {
    let response: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if response["object"] != "response" {
        return Err("not a response object".into());
    }
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in response["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    if let Some(t) = part["text"].as_str() {
                        text.push_str(t);
                    }
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            })),
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), Value::String(text));
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut chat = json!({
        "id": response["id"], "object": "chat.completion", "model": response["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(&response)}],
    });
    if response["usage"].is_object() {
        chat["usage"] = chat_usage(&response["usage"]);
    }
    serde_json::to_vec(&chat).map_err(|e| e.to_string())
}

/// A Responses event stream as chat chunks.
#[derive(Default)]
pub struct ResponsesAsChat {
    id: Value,
    model: Value,
    /// The chat index of each function call, by its output index.
    calls: Vec<(u64, usize)>,
}

impl ResponsesAsChat {
    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "model": self.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        write(&chunk, out);
    }

    fn call_index(&self, output_index: u64) -> Option<usize> {
        self.calls
            .iter()
            .find(|(o, _)| *o == output_index)
            .map(|(_, i)| *i)
    }
}

fn write(value: &Value, out: &mut BytesMut) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl StreamConverter for ResponsesAsChat {
    fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        let Some(data) = event_data(event) else {
            return;
        };
        let Ok(ev) = serde_json::from_slice::<Value>(&data) else {
            return;
        };
        match ev["type"].as_str().unwrap_or_default() {
            "response.created" => {
                self.id = ev["response"]["id"].clone();
                self.model = ev["response"]["model"].clone();
                self.chunk(json!({"role": "assistant"}), None, out);
            }
            "response.output_text.delta" => {
                self.chunk(json!({"content": ev["delta"]}), None, out);
            }
            "response.output_item.added" if ev["item"]["type"] == "function_call" => {
                let index = self.calls.len();
                if let Some(output_index) = ev["output_index"].as_u64() {
                    self.calls.push((output_index, index));
                }
                let call = json!({"index": index, "id": ev["item"]["call_id"], "type": "function",
                                  "function": {"name": ev["item"]["name"], "arguments": ""}});
                self.chunk(json!({"tool_calls": [call]}), None, out);
            }
            "response.function_call_arguments.delta" => {
                let Some(index) = ev["output_index"].as_u64().and_then(|o| self.call_index(o))
                else {
                    return;
                };
                let call = json!({"index": index, "function": {"arguments": ev["delta"]}});
                self.chunk(json!({"tool_calls": [call]}), None, out);
            }
            "response.completed" | "response.incomplete" => {
                let response = &ev["response"];
                self.chunk(json!({}), Some(finish_reason(response)), out);
                if response["usage"].is_object() {
                    let usage = json!({"id": self.id, "object": "chat.completion.chunk",
                                       "model": self.model, "choices": [],
                                       "usage": chat_usage(&response["usage"])});
                    write(&usage, out);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            "response.failed" | "error" => {
                let error = if ev["type"] == "error" {
                    ev.clone()
                } else {
                    ev["response"]["error"].clone()
                };
                let message = error["message"].as_str().unwrap_or("the response failed");
                write(
                    &json!({"error": {"message": message, "type": "api_error",
                                        "code": error["code"]}}),
                    out,
                );
            }
            _ => {}
        }
    }

    fn end(&mut self, _out: &mut BytesMut) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunks(events: &[Value]) -> Vec<Value> {
        let mut conv = ResponsesAsChat::default();
        let mut out = BytesMut::new();
        for ev in events {
            conv.event(format!("event: x\ndata: {ev}\n\n").as_bytes(), &mut out);
        }
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_owned())))
            .collect()
    }

    #[test]
    fn a_stream_reads_as_chat_chunks_with_usage_and_done() {
        let got = chunks(&[
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-x"}}),
            json!({"type": "response.output_text.delta", "delta": "Hel"}),
            json!({"type": "response.output_text.delta", "delta": "lo"}),
            json!({"type": "response.output_item.added", "output_index": 1,
                   "item": {"type": "function_call", "call_id": "c1", "name": "f"}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{\"a\""}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": ":1}"}),
            json!({"type": "response.completed", "response": {"status": "completed",
                   "output": [{"type": "function_call"}],
                   "usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
                             "input_tokens_details": {"cached_tokens": 3}}}}),
        ]);
        assert_eq!(got[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(got[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "c1");
        assert_eq!(
            got[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\""
        );
        assert_eq!(got[6]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got[7]["usage"]["prompt_tokens"], 10);
        assert_eq!(got[7]["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
        assert_eq!(got[8], Value::String("[DONE]".into()));
        let failed = chunks(&[json!({"type": "response.failed",
                                     "response": {"error": {"message": "boom", "code": "server_error"}}})]);
        assert_eq!(failed[0]["error"]["message"], "boom");
    }

    #[test]
    fn a_whole_response_reads_as_a_chat_completion() {
        let body = json!({"object": "response", "id": "resp_2", "model": "m", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "cut"}]}],
            "usage": {"input_tokens": 5, "output_tokens": 9}});
        let chat: Value =
            serde_json::from_slice(&response(body.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], "cut");
        assert_eq!(chat["choices"][0]["finish_reason"], "length");
        assert_eq!(chat["usage"]["total_tokens"], 14);
        assert!(response(b"{\"error\":{}}").is_err());
    }
}
