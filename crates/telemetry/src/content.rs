//! OpenAI chat content rewritten into the GenAI `parts` message format.
//!
//! Backends that follow the GenAI conventions (Sentry, Langfuse, Phoenix) render these parts
//! natively; raw OpenAI messages would show as opaque JSON. Unknown part types pass through
//! unchanged, as the conventions' generic part allows.

use serde_json::{json, Map, Value};

use crate::record::Choice;

/// `gen_ai.input.messages` and `gen_ai.system_instructions`, from a raw `messages` array.
#[derive(Debug, Default, PartialEq)]
pub struct Input {
    pub messages: Vec<Value>,
    pub system: Vec<Value>,
}

/// A list of parts or messages as compact JSON text, what `Value::Array(..).to_string()`
/// gives, written straight into one buffer rather than through `Display`'s formatter.
pub fn to_json(values: &[Value]) -> String {
    // A `Value` always serializes: its map keys are strings.
    serde_json::to_string(values).unwrap_or_default()
}

/// `None` when `raw` is not a JSON array: the proxy only captures arrays, so anything else
/// is not content worth mapping.
pub fn input(raw: &str) -> Option<Input> {
    let messages: Vec<Value> = serde_json::from_str(raw).ok()?;
    let mut out = Input::default();
    for m in &messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match role {
            "system" | "developer" => out.system.extend(content_parts(m.get("content"))),
            _ => out.messages.push(message(role, m)),
        }
    }
    Some(out)
}

fn message(role: &str, m: &Value) -> Value {
    let parts = match role {
        "tool" | "function" => {
            let mut part = Map::new();
            part.insert("type".into(), "tool_call_response".into());
            if let Some(id) = m.get("tool_call_id").filter(|v| !v.is_null()) {
                part.insert("id".into(), id.clone());
            }
            part.insert("response".into(), text_of(m.get("content")).into());
            vec![Value::Object(part)]
        }
        "assistant" => {
            let mut parts = content_parts(m.get("content"));
            if let Some(r) = m.get("refusal").and_then(Value::as_str) {
                parts.push(json!({"type": "refusal", "content": r}));
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                parts.extend(calls.iter().map(request_tool_call));
            }
            if let Some(f) = m.get("function_call").filter(|v| v.is_object()) {
                parts.push(tool_call_part(
                    None,
                    f.get("name").and_then(Value::as_str).unwrap_or_default(),
                    f.get("arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                ));
            }
            parts
        }
        _ => content_parts(m.get("content")),
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("parts".into(), parts.into());
    if let Some(name) = m.get("name").and_then(Value::as_str) {
        out.insert("name".into(), name.into());
    }
    Value::Object(out)
}

fn content_parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![text_part(s)],
        Some(Value::Array(items)) => items.iter().map(content_part).collect(),
        Some(other) => vec![text_part(&other.to_string())],
    }
}

fn text_part(s: &str) -> Value {
    json!({"type": "text", "content": s})
}

fn content_part(p: &Value) -> Value {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "text" | "input_text" => text_part(p.get("text").and_then(Value::as_str).unwrap_or("")),
        "refusal" => {
            json!({"type": "refusal", "content": p.get("refusal").cloned().unwrap_or(Value::Null)})
        }
        "image_url" => {
            let url = p
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .unwrap_or_default();
            uri_or_blob(url, "image")
        }
        "input_audio" => {
            let audio = p.get("input_audio");
            let field = |k: &str| audio.and_then(|a| a.get(k)).and_then(Value::as_str);
            let mut part = json!({"type": "blob", "modality": "audio", "content": field("data").unwrap_or("")});
            if let (Some(format), Some(obj)) = (field("format"), part.as_object_mut()) {
                obj.insert("mime_type".into(), format!("audio/{format}").into());
            }
            part
        }
        "file" => {
            let file = p.get("file");
            let field = |k: &str| file.and_then(|f| f.get(k)).and_then(Value::as_str);
            match (field("file_id"), field("file_data")) {
                (Some(id), _) => json!({"type": "file", "file_id": id}),
                (None, Some(data)) => uri_or_blob(data, "file"),
                (None, None) => p.clone(),
            }
        }
        _ => p.clone(),
    }
}

/// A `data:` URL carries the bytes themselves (a blob); anything else is a reference (a uri).
fn uri_or_blob(url: &str, modality: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            let mime = meta.split(';').next().unwrap_or_default();
            let mut part = json!({"type": "blob", "modality": modality, "content": data});
            if let (false, Some(obj)) = (mime.is_empty(), part.as_object_mut()) {
                obj.insert("mime_type".into(), mime.into());
            }
            return part;
        }
    }
    json!({"type": "uri", "modality": modality, "uri": url})
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Some(other) => other.to_string(),
    }
}

fn request_tool_call(call: &Value) -> Value {
    let id = call.get("id").and_then(Value::as_str);
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    let body = call.get(kind).or_else(|| call.get("function"));
    let field = |k: &str| body.and_then(|b| b.get(k)).and_then(Value::as_str);
    tool_call_part(
        id,
        field("name").unwrap_or_default(),
        field("arguments").or(field("input")).unwrap_or_default(),
    )
}

fn tool_call_part(id: Option<&str>, name: &str, arguments: &str) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "tool_call".into());
    if let Some(id) = id {
        part.insert("id".into(), id.into());
    }
    part.insert("name".into(), name.into());
    part.insert("arguments".into(), arguments_value(arguments));
    Value::Object(part)
}

/// Arguments that parse as a JSON object or array are nested, so backends can render them;
/// anything else (partial JSON from a cut stream, plain text) stays the string it was.
pub fn arguments_value(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => Value::String(arguments.to_owned()),
    }
}

/// `gen_ai.output.messages`: one assistant message per choice.
pub fn output(choices: &[Choice], failed: bool) -> Vec<Value> {
    choices
        .iter()
        .map(|c| {
            let mut parts = Vec::new();
            if !c.text.is_empty() {
                parts.push(text_part(&c.text));
            }
            for call in &c.tool_calls {
                parts.push(tool_call_part(
                    call.id.as_deref(),
                    &call.name,
                    &call.arguments,
                ));
            }
            let mut msg = Map::new();
            msg.insert(
                "role".into(),
                c.role.as_deref().unwrap_or("assistant").into(),
            );
            msg.insert("parts".into(), parts.into());
            let finish = match c.finish_reason.as_deref() {
                Some("tool_calls" | "function_call") => Some("tool_call"),
                Some(other) => Some(other),
                None if failed => Some("error"),
                None => None,
            };
            if let Some(f) = finish {
                msg.insert("finish_reason".into(), f.into());
            }
            Value::Object(msg)
        })
        .collect()
}

/// `gen_ai.tool.definitions`: OpenAI's `{type, function: {...}}` flattened to
/// `{type, name, description, parameters}`.
pub fn tool_definitions(raw: &str) -> Option<Vec<Value>> {
    let tools: Vec<Value> = serde_json::from_str(raw).ok()?;
    Some(
        tools
            .into_iter()
            .map(|t| match t.get("function").and_then(Value::as_object) {
                Some(f) => {
                    let mut out = Map::new();
                    out.insert(
                        "type".into(),
                        t.get("type").cloned().unwrap_or_else(|| "function".into()),
                    );
                    for key in ["name", "description", "parameters", "strict"] {
                        if let Some(v) = f.get(key) {
                            out.insert(key.into(), v.clone());
                        }
                    }
                    Value::Object(out)
                }
                None => t,
            })
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::ToolCall;

    #[test]
    fn a_full_conversation_maps_to_parts() {
        let raw = json!([
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "BBBB", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
                {"type": "something_new", "x": 1}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "broken", "arguments": "{\"city\":"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ])
        .to_string();
        let got = input(&raw).unwrap();
        assert_eq!(
            Value::from(got.system),
            json!([{"type": "text", "content": "be brief"}, {"type": "text", "content": "and kind"}])
        );
        assert_eq!(
            Value::from(got.messages),
            json!([
                {"role": "user", "name": "ann", "parts": [
                    {"type": "text", "content": "what is this?"},
                    {"type": "uri", "modality": "image", "uri": "https://x/cat.png"},
                    {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "AAAA"},
                    {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "BBBB"},
                    {"type": "file", "file_id": "file-1"},
                    {"type": "something_new", "x": 1}
                ]},
                {"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                    {"type": "tool_call", "id": "call_2", "name": "broken", "arguments": "{\"city\":"}
                ]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]}
            ])
        );
    }

    #[test]
    fn to_json_is_the_array_text() {
        let items = vec![
            json!({"role": "user", "parts": [{"type": "text", "content": "a \"q\"\n é"}]}),
            json!(1.5),
            json!(null),
        ];
        assert_eq!(to_json(&items), Value::from(items.clone()).to_string());
        assert_eq!(to_json(&[]), "[]");
    }

    #[test]
    fn non_arrays_are_not_content() {
        assert!(input("{}").is_none());
        assert!(input("not json").is_none());
        assert!(tool_definitions("null").is_none());
    }

    #[test]
    fn a_tool_call_turn_is_never_empty() {
        let choices = vec![Choice {
            index: 0,
            role: Some("assistant".into()),
            text: String::new(),
            tool_calls: vec![ToolCall {
                id: Some("c1".into()),
                name: "lookup".into(),
                arguments: "{\"q\":1}".into(),
            }],
            finish_reason: Some("tool_calls".into()),
        }];
        assert_eq!(
            Value::from(output(&choices, false)),
            json!([{"role": "assistant", "finish_reason": "tool_call",
                    "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"q": 1}}]}])
        );
    }

    #[test]
    fn tools_are_flattened() {
        let raw = json!([
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
            {"type": "web_search"}
        ])
        .to_string();
        assert_eq!(
            Value::from(tool_definitions(&raw).unwrap()),
            json!([{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}},
                   {"type": "web_search"}])
        );
    }
}
