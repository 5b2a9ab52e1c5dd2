//! A whole Anthropic message as a `chat.completion`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{finish_reason, AnthropicUsage, ChatUsage, RESPONSE_TOOL};

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// The blocks a chat client can be shown; server-tool blocks and the like are left out.
/// (`input` is a `Value`: a tagged enum buffers its fields, which a `RawValue` cannot read.)
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: String,
}

/// The `chat.completion` for an Anthropic message body; `created` is the gateway's clock, as
/// Anthropic sends none. The error says why the body is not a message.
pub fn response(body: &[u8], created: u64) -> Result<Vec<u8>, String> {
    let message: Message = serde_json::from_slice(body)
        .map_err(|e| format!("the provider's answer is not an Anthropic message: {e}"))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut answer: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block {
            Block::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            Block::Thinking { thinking } => {
                reasoning.get_or_insert_with(String::new).push_str(thinking)
            }
            // The json_schema answer: its input is the content, and any text around it
            // would only stop the client parsing it.
            Block::ToolUse { name, input, .. } if name == RESPONSE_TOOL => {
                answer = Some(input.to_string())
            }
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function",
                function: Function {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Other => {}
        }
    }
    let answered_by_tool = answer.is_some() && tool_calls.is_empty();
    if let Some(json) = answer {
        text = Some(json);
    }
    let content = match text {
        Some(t) => Some(t),
        None if tool_calls.is_empty() => Some(String::new()),
        None => None,
    };
    let completion = Completion {
        id: &message.id,
        object: "chat.completion",
        created,
        model: &message.model,
        choices: [Choice {
            index: 0,
            message: ChatMessage {
                role: "assistant",
                content,
                reasoning_content: reasoning,
                tool_calls,
            },
            logprobs: None,
            finish_reason: message
                .stop_reason
                .as_deref()
                .map(|r| finish_reason(r, answered_by_tool)),
        }],
        usage: message.usage.chat(),
    };
    serde_json::to_vec(&completion).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(message: Value) -> Value {
        let out = response(message.to_string().as_bytes(), 1_700_000_000).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn message(content: Value, stop_reason: &str) -> Value {
        json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": content, "stop_reason": stop_reason, "stop_sequence": null,
               "usage": {"input_tokens": 12, "output_tokens": 5}})
    }

    #[test]
    fn a_text_answer_becomes_a_chat_completion() {
        let out = convert(message(
            json!([{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}]),
            "end_turn",
        ));
        assert_eq!(
            out,
            json!({"id": "msg_01", "object": "chat.completion", "created": 1_700_000_000u64,
                   "model": "claude-sonnet-4-5",
                   "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hello, world"}}],
                   "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                             "prompt_tokens_details": {"cached_tokens": 0}}})
        );
    }

    #[test]
    fn tool_use_blocks_become_tool_calls() {
        let out = convert(message(
            json!([
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ]),
            "tool_use",
        ));
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ]})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        let only_tools = convert(message(
            json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            "tool_use",
        ));
        assert_eq!(only_tools["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn thinking_is_reasoning_content_not_content() {
        let out = convert(message(
            json!([
                {"type": "thinking", "thinking": "The user greets.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Hi!"},
            ]),
            "end_turn",
        ));
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hi!", "reasoning_content": "The user greets."})
        );
    }

    #[test]
    fn the_answer_tool_becomes_the_content() {
        let out = convert(message(
            json!([
                {"type": "text", "text": "Here you go:"},
                {"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {"name": "Paris"}},
            ]),
            "tool_use",
        ));
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "{\"name\":\"Paris\"}"})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn every_stop_reason_has_its_finish_reason() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("a_future_reason", "stop"),
        ] {
            let out = convert(message(json!([{"type": "text", "text": "x"}]), stop));
            assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
        }
    }

    #[test]
    fn cache_tokens_count_in_the_prompt_and_stay_apart() {
        let mut m = message(json!([{"type": "text", "text": "x"}]), "end_turn");
        m["usage"] = json!({"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100,
                            "cache_creation_input_tokens": 30,
                            "output_tokens_details": {"thinking_tokens": 4}});
        assert_eq!(
            convert(m)["usage"],
            json!({"prompt_tokens": 140, "completion_tokens": 7, "total_tokens": 147,
                   "prompt_tokens_details": {"cached_tokens": 100},
                   "completion_tokens_details": {"reasoning_tokens": 4},
                   "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30})
        );
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let mut m = message(json!([]), "end_turn");
        m["usage"] = json!({"input_tokens": u64::MAX, "output_tokens": u64::MAX,
                            "cache_read_input_tokens": 1});
        let usage = &convert(m)["usage"];
        assert_eq!(usage["prompt_tokens"], u64::MAX);
        assert_eq!(usage["total_tokens"], u64::MAX);
    }

    #[test]
    fn a_body_that_is_not_a_message_is_an_error() {
        assert!(response(b"<html>", 0).is_err());
        assert!(response(br#"{"content": [{"type": "text"}]}"#, 0).is_err());
        // Blocks this code does not know are left out, not refused.
        let out = convert(message(
            json!([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                   {"type": "text", "text": "ok"}]),
            "end_turn",
        ));
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "ok"})
        );
    }
}
