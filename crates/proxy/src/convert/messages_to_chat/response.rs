//! A chat completion written as an Anthropic `message`.
//!
//! - The id is `msg_` and the chat id (without its `chatcmpl-` prefix).
//! - Text (and a refusal's text) becomes a `text` block, each tool call a `tool_use` block
//!   whose `input` is the parsed arguments. Arguments that are not a JSON object (a model's
//!   truncated or malformed JSON) become `input: {}`: the call is kept so the client's tool loop
//!   still answers it, and the unparsable text is not passed off as arguments.
//! - Chat's `reasoning_content` is not passed on: a `thinking` block needs a signature only
//!   Anthropic can make, and the request side drops thinking blocks anyway.
//! - `stop_reason`: `stop` → `end_turn` (`tool_use` when the answer has tool calls),
//!   `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter` → `refusal`; chat cannot say which stop sequence matched, so
//!   `stop_sequence` is always null.
//! - Usage: Anthropic's `input_tokens` excludes cache reads, chat's `prompt_tokens` includes
//!   them, so `input_tokens = prompt_tokens − cached` and `cache_read_input_tokens = cached`.

use serde_json::{json, Map, Value};

use crate::convert::chat::{Completion, InvalidUpstream, Usage};

pub fn response(chat: &[u8]) -> Result<Vec<u8>, InvalidUpstream> {
    let completion: Completion =
        serde_json::from_slice(chat).map_err(|e| InvalidUpstream(e.to_string()))?;
    let choice = completion
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| InvalidUpstream("it has no choices".into()))?;
    let message = choice.message.unwrap_or_default();

    let calls = message.tool_calls.unwrap_or_default();
    let stop = stop_reason(choice.finish_reason.as_deref(), !calls.is_empty());
    let mut content = Vec::new();
    let text = match message.content {
        Some(Value::String(s)) => s,
        // Some servers answer with content parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let text = if text.is_empty() {
        message.refusal.unwrap_or_default()
    } else {
        text
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let function = call.function.unwrap_or_default();
        content.push(json!({
            "type": "tool_use",
            "id": call.id.unwrap_or_else(|| format!("toolu_{i}")),
            "name": function.name.unwrap_or_default(),
            "input": tool_input(function.arguments.as_deref().unwrap_or("")),
        }));
    }

    let body = json!({
        "id": message_id(completion.id.as_deref()),
        "type": "message",
        "role": "assistant",
        "model": completion.model.unwrap_or_default(),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage(&completion.usage.unwrap_or_default()),
    });
    serde_json::to_vec(&body).map_err(|e| InvalidUpstream(e.to_string()))
}

/// `msg_…` from the chat id, so one exchange keeps one id across the two APIs.
pub(crate) fn message_id(chat_id: Option<&str>) -> String {
    match chat_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id)),
        _ => "msg_gatecast".to_owned(),
    }
}

/// Anthropic's `stop_reason` for chat's `finish_reason`. Some chat servers say `stop` after
/// calling tools, and Anthropic clients run tools only on `tool_use`, so calls make it that.
pub(crate) fn stop_reason(finish: Option<&str>, called_tools: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// Parsed arguments when they are a JSON object, `{}` otherwise (see the module doc).
pub(crate) fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

pub(crate) fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input() - u.cached(),
        "output_tokens": u.output(),
        "cache_read_input_tokens": u.cached(),
    })
}
