//! An Anthropic Messages request written as a chat-completions request.
//!
//! Choices where the two APIs differ:
//! - `system` (a string or text blocks, joined by a blank line) becomes the first message.
//! - A user turn's `tool_result` blocks become `role: tool` messages placed before the rest of
//!   the turn, since chat wants them right after the assistant's `tool_calls`. Their content is
//!   flattened to text (an image in a result becomes `[image]`), and `is_error: true` prefixes
//!   it with `Error: `, chat having no flag for it.
//! - `thinking` and `redacted_thinking` blocks, `top_k`, `thinking`, `cache_control` and the
//!   other Anthropic-only settings are dropped; Anthropic's own tools (`web_search_…`,
//!   `bash_…`, `text_editor_…`) are refused, a chat provider knowing neither their schema nor
//!   how to run them.
//! - `tool_choice` (and `disable_parallel_tool_use` as `parallel_tool_calls: false`) is sent
//!   only with tools, as OpenAI requires.
//! - `max_tokens` stays `max_tokens`, which every chat-compatible server reads.
//! - The gateway's own fields (`trace`, `session_id`, `user`) pass through for the gateway to
//!   read; `metadata.user_id` becomes `user` when the body has none.

use serde_json::{json, Map, Value};

use super::invalid;
use crate::error::{bounded, ProxyError};

/// The chat body for `body`, or a 400 naming the field at fault.
pub fn request(body: &[u8]) -> Result<Vec<u8>, ProxyError> {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return Err(ProxyError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            param: None,
        });
    };
    let mut chat = Map::new();

    match req.get("model") {
        Some(Value::String(model)) if !model.is_empty() => {
            chat.insert("model".into(), Value::String(model.clone()));
        }
        Some(_) => return Err(invalid("model: must be a non-empty string", "model")),
        None => return Err(invalid("model: field required", "model")),
    }
    match req.get("max_tokens") {
        Some(v @ Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
            chat.insert("max_tokens".into(), v.clone());
        }
        Some(_) => {
            return Err(invalid(
                "max_tokens: must be an integer of at least 1",
                "max_tokens",
            ))
        }
        None => return Err(invalid("max_tokens: field required", "max_tokens")),
    }

    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    match req.get("messages") {
        Some(Value::Array(turns)) => {
            for (i, turn) in turns.iter().enumerate() {
                convert_turn(turn, i, &mut messages)?;
            }
        }
        Some(_) => return Err(invalid("messages: must be an array", "messages")),
        None => return Err(invalid("messages: field required", "messages")),
    }
    chat.insert("messages".into(), Value::Array(messages));

    let mut has_tools = false;
    if let Some(tools) = req.get("tools") {
        let tools = convert_tools(tools)?;
        has_tools = !tools.is_empty();
        if has_tools {
            chat.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        let (choice, parallel) = convert_tool_choice(choice)?;
        // OpenAI refuses `tool_choice` and `parallel_tool_calls` without tools.
        if has_tools {
            chat.insert("tool_choice".into(), choice);
            if parallel == Some(false) {
                chat.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }

    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(seqs)) if seqs.iter().all(Value::is_string) => {
            if !seqs.is_empty() {
                chat.insert("stop".into(), Value::Array(seqs.clone()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "stop_sequences: must be an array of strings",
                "stop_sequences",
            ))
        }
    }
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                chat.insert(key.into(), v.clone());
            }
            Some(_) => return Err(invalid(format!("{key}: must be a number"), key)),
        }
    }
    match req.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            chat.insert("stream".into(), Value::Bool(true));
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(invalid("stream: must be a boolean", "stream")),
    }
    for key in ["trace", "session_id", "user"] {
        if let Some(v) = req.get(key) {
            chat.insert(key.into(), v.clone());
        }
    }
    if chat.get("user").is_none_or(Value::is_null) {
        match req.get("metadata").and_then(|m| m.get("user_id")) {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) => {
                chat.insert("user".into(), Value::String(id.clone()));
            }
            Some(_) => {
                return Err(invalid(
                    "metadata.user_id: must be a string",
                    "metadata.user_id",
                ))
            }
        }
    }
    serde_json::to_vec(&Value::Object(chat)).map_err(|e| ProxyError::InvalidRequest {
        message: format!("the request could not be written for the provider: {e}"),
        param: None,
    })
}

/// `system` as one string: text blocks joined by a blank line.
fn system_text(system: &Value) -> Result<String, ProxyError> {
    match system {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("system.{j}");
                match block_type(block, &path)? {
                    "text" => parts.push(text_field(block, &path)?),
                    other => {
                        return Err(invalid(
                            format!(
                                "{path}.type: system blocks must be text, not `{}`",
                                bounded(other, 64)
                            ),
                            format!("{path}.type"),
                        ))
                    }
                }
            }
            Ok(parts.join("\n\n"))
        }
        _ => Err(invalid(
            "system: must be a string or an array of text blocks",
            "system",
        )),
    }
}

fn convert_turn(turn: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let path = format!("messages.{i}");
    let Value::Object(turn) = turn else {
        return Err(invalid(format!("{path}: must be an object"), path));
    };
    let role = match turn.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant")) => role,
        _ => {
            return Err(invalid(
                format!("{path}.role: must be `user` or `assistant`"),
                format!("{path}.role"),
            ))
        }
    };
    let content_path = format!("{path}.content");
    let blocks = match turn.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                format!("{content_path}: must be a string or an array of content blocks"),
                content_path,
            ))
        }
    };
    if role == "assistant" {
        out.push(assistant_message(blocks, &content_path)?);
        return Ok(());
    }

    // A user turn: tool results first, as tool messages, then the rest as one user message.
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{content_path}.{j}");
        match block_type(block, &path)? {
            "text" => parts.push(json!({"type": "text", "text": text_field(block, &path)?})),
            "image" => parts.push(image_part(block, &path)?),
            "document" => parts.push(document_part(block, &path)?),
            "tool_result" => out.push(tool_message(block, &path)?),
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &path)),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant_message(blocks: &[Value], content_path: &str) -> Result<Value, ProxyError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{content_path}.{j}");
        match block_type(block, &path)? {
            "text" => text.push_str(&text_field(block, &path)?),
            "tool_use" => {
                let id = string_field(block, "id", &path)?;
                let name = string_field(block, "name", &path)?;
                let arguments = match block.get("input") {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(input @ Value::Object(_)) => input.to_string(),
                    Some(_) => {
                        return Err(invalid(
                            format!("{path}.input: must be an object"),
                            format!("{path}.input"),
                        ))
                    }
                };
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &path)),
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    // Chat allows a null content only beside tool calls.
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(message))
}

fn tool_message(block: &Value, path: &str) -> Result<Value, ProxyError> {
    let id = string_field(block, "tool_use_id", path)?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let path = format!("{path}.content.{k}");
                match block_type(part, &path)? {
                    "text" => texts.push(text_field(part, &path)?),
                    "image" => texts.push("[image]".to_owned()),
                    "document" => texts.push("[document]".to_owned()),
                    other => return Err(unsupported_block(other, &path)),
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(invalid(
                format!("{path}.content: must be a string or an array of content blocks"),
                format!("{path}.content"),
            ))
        }
    };
    if block.get("is_error") == Some(&Value::Bool(true)) {
        text.insert_str(0, "Error: ");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// `image` with a base64 or url source, as chat's `image_url` part (base64 as a data URL).
fn image_part(block: &Value, path: &str) -> Result<Value, ProxyError> {
    let source_path = format!("{path}.source");
    let source = block
        .get("source")
        .ok_or_else(|| invalid(format!("{source_path}: field required"), &source_path))?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = string_field(source, "media_type", &source_path)?;
            let data = string_field(source, "data", &source_path)?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => string_field(source, "url", &source_path)?,
        _ => {
            return Err(invalid(
                format!(
                "{source_path}.type: an image source must be `base64` or `url` for this provider"
            ),
                format!("{source_path}.type"),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// `document`: plain text as a text part, a base64 PDF as chat's `file` part.
fn document_part(block: &Value, path: &str) -> Result<Value, ProxyError> {
    let source_path = format!("{path}.source");
    let source = block
        .get("source")
        .ok_or_else(|| invalid(format!("{source_path}: field required"), &source_path))?;
    match source.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text", "text": string_field(source, "data", &source_path)?})),
        Some("base64") => {
            let media = string_field(source, "media_type", &source_path)?;
            let data = string_field(source, "data", &source_path)?;
            let mut file = Map::new();
            file.insert(
                "file_data".into(),
                Value::String(format!("data:{media};base64,{data}")),
            );
            if let Some(Value::String(title)) = block.get("title") {
                file.insert("filename".into(), Value::String(title.clone()));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        _ => Err(invalid(
            format!("{source_path}.type: a document source must be `text` or `base64` for this provider"),
            format!("{source_path}.type"),
        )),
    }
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, ProxyError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("tools: must be an array", "tools"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools.{i}");
        if !tool.is_object() {
            return Err(invalid(format!("{path}: must be an object"), path));
        }
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "custom" => {}
            Some(other) => {
                let shown = bounded(other.as_str().unwrap_or("?"), 64);
                return Err(invalid(
                    format!("{path}.type: the server tool `{shown}` is not available through this provider; only client tools (name, input_schema) are"),
                    format!("{path}.type"),
                ));
            }
        }
        let name = string_field(tool, "name", &path)?;
        let mut function = Map::new();
        function.insert("name".into(), Value::String(name));
        if let Some(Value::String(d)) = tool.get("description") {
            function.insert("description".into(), Value::String(d.clone()));
        }
        match tool.get("input_schema") {
            Some(schema @ Value::Object(_)) => {
                function.insert("parameters".into(), schema.clone());
            }
            _ => {
                return Err(invalid(
                    format!("{path}.input_schema: must be a JSON schema object"),
                    format!("{path}.input_schema"),
                ))
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// Chat's `tool_choice`, and `Some(false)` when parallel calls are disabled.
fn convert_tool_choice(choice: &Value) -> Result<(Value, Option<bool>), ProxyError> {
    let kind = choice.get("type").and_then(Value::as_str);
    let disable = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let parallel = disable.then_some(false);
    let value = match kind {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = string_field(choice, "name", "tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type: must be `auto`, `any`, `tool` or `none`",
                "tool_choice.type",
            ))
        }
    };
    Ok((value, parallel))
}

fn block_type<'a>(block: &'a Value, path: &str) -> Result<&'a str, ProxyError> {
    match block.get("type") {
        Some(Value::String(t)) => Ok(t),
        _ => Err(invalid(
            format!("{path}.type: a content block needs a string `type`"),
            format!("{path}.type"),
        )),
    }
}

fn text_field(block: &Value, path: &str) -> Result<String, ProxyError> {
    string_field(block, "text", path)
}

fn string_field(value: &Value, key: &str, path: &str) -> Result<String, ProxyError> {
    match value.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(
            format!("{path}.{key}: must be a string"),
            format!("{path}.{key}"),
        )),
        None => Err(invalid(
            format!("{path}.{key}: field required"),
            format!("{path}.{key}"),
        )),
    }
}

fn unsupported_block(kind: &str, path: &str) -> ProxyError {
    invalid(
        format!(
            "{path}.type: the content block type `{}` is not supported here",
            bounded(kind, 64)
        ),
        format!("{path}.type"),
    )
}
