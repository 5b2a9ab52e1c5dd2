//! A Responses `create` request written as a chat-completions request.
//!
//! Choices where the two APIs differ:
//! - `instructions` becomes the first (system) message; `system` and `developer` input
//!   messages become system messages too, since not every chat server knows `developer`.
//! - `history`, the stored items of `previous_response_id`, goes before `input`.
//! - `function_call` items join the assistant message just before them (or start one), so a
//!   turn's parallel calls are one chat message; `function_call_output` items become
//!   `role: tool` messages, their content flattened to text (an image becomes `[image]`).
//! - `reasoning` items are dropped: a chat provider cannot take them back.
//! - Built-in tools (`web_search`, `file_search`, `computer_use_preview`, …), `item_reference`
//!   (`api/responses.rs` has already replaced those naming a kept turn's items),
//!   `conversation`, `background` and prompt templates are refused with a 400 naming the field:
//!   there is nothing on a chat provider to run them.
//! - `tool_choice` and `parallel_tool_calls` are sent only with tools, as OpenAI requires.
//! - `max_output_tokens` → `max_completion_tokens`, `text.format` → `response_format`;
//!   `reasoning`, `store`, `metadata`, `include`, `truncation` and the other Responses-only
//!   settings are not sent (the response still echoes them).

use serde_json::{json, Map, Value};

use super::invalid;
use crate::error::{bounded, ProxyError};

/// The chat body, and the input items as the gateway stores them for a later turn: typed
/// (`type` always set) with string contents written as parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub chat_body: Vec<u8>,
    pub input_items: Vec<Value>,
    /// The request settings a `response` object repeats.
    pub echo: Echo,
}

/// The request's settings as the `response` object repeats them (`tools`, `tool_choice`,
/// `instructions`, `temperature`, …), with the API's defaults where the request had none.
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    pub(crate) fields: Map<String, Value>,
}

impl Default for Echo {
    fn default() -> Self {
        let mut fields = Map::new();
        for (key, value) in [
            ("instructions", Value::Null),
            ("max_output_tokens", Value::Null),
            ("metadata", json!({})),
            ("model", Value::from("")),
            ("parallel_tool_calls", Value::Bool(true)),
            ("previous_response_id", Value::Null),
            ("reasoning", json!({"effort": null, "summary": null})),
            ("store", Value::Bool(true)),
            ("temperature", Value::Null),
            ("text", json!({"format": {"type": "text"}})),
            ("tool_choice", Value::from("auto")),
            ("tools", json!([])),
            ("top_p", Value::Null),
            ("truncation", Value::from("disabled")),
            ("user", Value::Null),
        ] {
            fields.insert(key.into(), value);
        }
        Self { fields }
    }
}

impl Echo {
    fn from_request(req: &Map<String, Value>) -> Self {
        let mut echo = Echo::default();
        for (key, slot) in echo.fields.iter_mut() {
            match req.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => *slot = v.clone(),
            }
        }
        echo
    }
}

/// The chat request for `body`, after the `history` of `previous_response_id`.
pub fn request(body: &[u8], history: &[Value]) -> Result<Converted, ProxyError> {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return Err(ProxyError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            param: None,
        });
    };
    for key in ["conversation", "background", "prompt"] {
        match req.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => {
                return Err(invalid(
                    format!("{key}: not supported for this model's provider"),
                    key,
                ))
            }
        }
    }
    let mut chat = Map::new();
    match req.get("model") {
        Some(Value::String(model)) if !model.is_empty() => {
            chat.insert("model".into(), Value::String(model.clone()));
        }
        Some(_) => return Err(invalid("model: must be a non-empty string", "model")),
        None => return Err(invalid("model: field required", "model")),
    }

    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                messages.push(json!({"role": "system", "content": s}));
            }
        }
        Some(_) => return Err(invalid("instructions: must be a string", "instructions")),
    }
    for (i, item) in history.iter().enumerate() {
        item_to_chat(item, &format!("previous_response_id.{i}"), &mut messages)?;
    }
    let input_items = match req.get("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => {
            let mut normalised = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                normalised.push(normalise(item, &format!("input.{i}"))?);
            }
            normalised
        }
        Some(_) => {
            return Err(invalid(
                "input: must be a string or an array of input items",
                "input",
            ))
        }
    };
    for (i, item) in input_items.iter().enumerate() {
        item_to_chat(item, &format!("input.{i}"), &mut messages)?;
    }
    if messages.is_empty() {
        return Err(invalid("input: field required", "input"));
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
    // OpenAI refuses `tool_choice` and `parallel_tool_calls` without tools.
    if let Some(choice) = req.get("tool_choice") {
        if let Some(choice) = convert_tool_choice(choice)? {
            if has_tools {
                chat.insert("tool_choice".into(), choice);
            }
        }
    }
    match req.get("parallel_tool_calls") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Bool(_)) => {
            if has_tools {
                chat.insert("parallel_tool_calls".into(), v.clone());
            }
        }
        Some(_) => {
            return Err(invalid(
                "parallel_tool_calls: must be a boolean",
                "parallel_tool_calls",
            ))
        }
    }
    match req.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
            chat.insert("max_completion_tokens".into(), v.clone());
        }
        Some(_) => {
            return Err(invalid(
                "max_output_tokens: must be an integer of at least 1",
                "max_output_tokens",
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
    if let Some(format) = req.get("text").and_then(|t| t.get("format")) {
        if let Some(format) = convert_format(format)? {
            chat.insert("response_format".into(), format);
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
    let chat_body =
        serde_json::to_vec(&Value::Object(chat)).map_err(|e| ProxyError::InvalidRequest {
            message: format!("the request could not be written for the provider: {e}"),
            param: None,
        })?;
    Ok(Converted {
        chat_body,
        input_items,
        echo: Echo::from_request(&req),
    })
}

/// The item with its `type` set and a message's string content written as one part.
fn normalise(item: &Value, path: &str) -> Result<Value, ProxyError> {
    let Value::Object(map) = item else {
        return Err(invalid(format!("{path}: must be an object"), path));
    };
    let mut map = map.clone();
    if !map.contains_key("type") && map.contains_key("role") {
        map.insert("type".into(), Value::from("message"));
    }
    if map.get("type").and_then(Value::as_str) == Some("message") {
        if let Some(Value::String(text)) = map.get("content") {
            let kind = if map.get("role").and_then(Value::as_str) == Some("assistant") {
                "output_text"
            } else {
                "input_text"
            };
            let part = json!([{"type": kind, "text": text}]);
            map.insert("content".into(), part);
        }
    }
    Ok(Value::Object(map))
}

/// Appends the chat messages for one (normalised or stored) item.
fn item_to_chat(item: &Value, path: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let kind = match item.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None if item.get("role").is_some() => "message",
        _ => {
            return Err(invalid(
                format!("{path}.type: an input item needs a string `type`"),
                format!("{path}.type"),
            ))
        }
    };
    match kind {
        "message" => out.push(message_to_chat(item, path)?),
        "function_call" => {
            let call = json!({
                "id": string_field(item, "call_id", path)?,
                "type": "function",
                "function": {
                    "name": string_field(item, "name", path)?,
                    "arguments": string_field(item, "arguments", path)?,
                },
            });
            match out.last_mut() {
                Some(Value::Object(last))
                    if last.get("role").and_then(Value::as_str) == Some("assistant") =>
                {
                    match last.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            last.insert("tool_calls".into(), Value::Array(vec![call]));
                        }
                    }
                    if last.get("content").and_then(Value::as_str) == Some("") {
                        last.insert("content".into(), Value::Null);
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let id = string_field(item, "call_id", path)?;
            let content = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut texts = Vec::with_capacity(parts.len());
                    for (k, part) in parts.iter().enumerate() {
                        let path = format!("{path}.output.{k}");
                        match part_type(part, &path)? {
                            "input_text" | "output_text" => {
                                texts.push(string_field(part, "text", &path)?)
                            }
                            "input_image" => texts.push("[image]".to_owned()),
                            "input_file" => texts.push("[file]".to_owned()),
                            other => return Err(unsupported(other, &path)),
                        }
                    }
                    texts.join("\n")
                }
                _ => {
                    return Err(invalid(
                        format!("{path}.output: must be a string or an array of content parts"),
                        format!("{path}.output"),
                    ))
                }
            };
            out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
        }
        "reasoning" => {}
        other => {
            let other = bounded(other, 64);
            let message =
                format!("{path}.type: the input item type `{other}` is not supported here");
            return Err(invalid(message, format!("{path}.type")));
        }
    }
    Ok(())
}

fn message_to_chat(item: &Value, path: &str) -> Result<Value, ProxyError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant" | "system" | "developer")) => role,
        _ => {
            return Err(invalid(
                format!("{path}.role: must be `user`, `assistant`, `system` or `developer`"),
                format!("{path}.role"),
            ))
        }
    };
    let content_path = format!("{path}.content");
    let parts = match item.get("content") {
        Some(Value::String(text)) => {
            let role = if role == "developer" { "system" } else { role };
            return Ok(json!({"role": role, "content": text}));
        }
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                format!("{content_path}: must be a string or an array of content parts"),
                content_path,
            ))
        }
    };
    if role == "user" {
        let mut chat_parts = Vec::with_capacity(parts.len());
        for (k, part) in parts.iter().enumerate() {
            let path = format!("{content_path}.{k}");
            chat_parts.push(match part_type(part, &path)? {
                "input_text" | "output_text" => {
                    json!({"type": "text", "text": string_field(part, "text", &path)?})
                }
                "input_image" => image_part(part, &path)?,
                "input_file" => file_part(part, &path)?,
                other => return Err(unsupported(other, &path)),
            });
        }
        return Ok(json!({"role": "user", "content": chat_parts}));
    }
    // System, developer and assistant messages: text only, as one string.
    let mut text = String::new();
    for (k, part) in parts.iter().enumerate() {
        let path = format!("{content_path}.{k}");
        match part_type(part, &path)? {
            "input_text" | "output_text" => text.push_str(&string_field(part, "text", &path)?),
            "refusal" => text.push_str(&string_field(part, "refusal", &path)?),
            other => return Err(unsupported(other, &path)),
        }
    }
    let role = if role == "developer" { "system" } else { role };
    Ok(json!({"role": role, "content": text}))
}

fn image_part(part: &Value, path: &str) -> Result<Value, ProxyError> {
    let Some(Value::String(url)) = part.get("image_url") else {
        return Err(invalid(
            format!("{path}.image_url: an image needs an `image_url` (a URL or a data URL); `file_id` is not supported for this model's provider"),
            format!("{path}.image_url"),
        ));
    };
    let mut image = Map::new();
    image.insert("url".into(), Value::String(url.clone()));
    if let Some(Value::String(detail)) = part.get("detail") {
        if detail != "original" {
            image.insert("detail".into(), Value::String(detail.clone()));
        }
    }
    Ok(json!({"type": "image_url", "image_url": image}))
}

fn file_part(part: &Value, path: &str) -> Result<Value, ProxyError> {
    let Some(Value::String(data)) = part.get("file_data") else {
        return Err(invalid(
            format!("{path}.file_data: a file needs `file_data`; `file_id` and `file_url` are not supported for this model's provider"),
            format!("{path}.file_data"),
        ));
    };
    let mut file = Map::new();
    file.insert("file_data".into(), Value::String(data.clone()));
    if let Some(Value::String(name)) = part.get("filename") {
        file.insert("filename".into(), Value::String(name.clone()));
    }
    Ok(json!({"type": "file", "file": file}))
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, ProxyError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("tools: must be an array", "tools"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools.{i}");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(invalid(
                    format!(
                        "{path}.type: the tool type `{}` is not supported for this model's provider; only `function` tools are",
                        bounded(other, 64)
                    ),
                    format!("{path}.type"),
                ))
            }
            None => {
                return Err(invalid(
                    format!("{path}.type: field required"),
                    format!("{path}.type"),
                ))
            }
        }
        let mut function = Map::new();
        function.insert(
            "name".into(),
            Value::String(string_field(tool, "name", &path)?),
        );
        for key in ["description", "parameters", "strict"] {
            match tool.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    function.insert(key.into(), v.clone());
                }
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

fn convert_tool_choice(choice: &Value) -> Result<Option<Value>, ProxyError> {
    match choice {
        Value::Null => Ok(None),
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(choice.clone()))
        }
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = string_field(choice, "name", "tool_choice")?;
            Ok(Some(json!({"type": "function", "function": {"name": name}})))
        }
        _ => Err(invalid(
            "tool_choice: must be `auto`, `none`, `required` or a function ({\"type\":\"function\",\"name\":…}) for this model's provider",
            "tool_choice",
        )),
    }
}

fn convert_format(format: &Value) -> Result<Option<Value>, ProxyError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                Value::String(string_field(format, "name", "text.format")?),
            );
            match format.get("schema") {
                Some(s @ Value::Object(_)) => {
                    schema.insert("schema".into(), s.clone());
                }
                _ => {
                    return Err(invalid(
                        "text.format.schema: must be a JSON schema object",
                        "text.format.schema",
                    ))
                }
            }
            for key in ["description", "strict"] {
                match format.get(key) {
                    None | Some(Value::Null) => {}
                    Some(v) => {
                        schema.insert(key.into(), v.clone());
                    }
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(invalid(
            "text.format.type: must be `text`, `json_object` or `json_schema`",
            "text.format.type",
        )),
    }
}

fn part_type<'a>(part: &'a Value, path: &str) -> Result<&'a str, ProxyError> {
    match part.get("type") {
        Some(Value::String(t)) => Ok(t),
        _ => Err(invalid(
            format!("{path}.type: a content part needs a string `type`"),
            format!("{path}.type"),
        )),
    }
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

fn unsupported(kind: &str, path: &str) -> ProxyError {
    invalid(
        format!(
            "{path}.type: the content part type `{}` is not supported here",
            bounded(kind, 64)
        ),
        format!("{path}.type"),
    )
}
