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

/// `gen_ai.input.messages` and `gen_ai.system_instructions` as the JSON text of their
/// attributes; `system` is `None` when there are no instructions.
#[derive(Debug, PartialEq)]
pub struct InputJson {
    pub messages: String,
    pub system: Option<String>,
}

/// [`input`] as attribute text. Conversations of plain text messages, nearly all traffic,
/// are read into borrowed fields and written straight out; anything else (parts, tool
/// calls, unusual shapes) goes through the `Value` path, which the fast path matches byte
/// for byte (a property test holds them equal).
pub fn input_json(raw: &str) -> Option<InputJson> {
    plain::input_json(raw).or_else(|| input(raw).map(Input::into_json))
}

impl Input {
    /// The attribute text of the `Value` path.
    pub fn into_json(self) -> InputJson {
        InputJson {
            messages: to_json(&self.messages),
            system: (!self.system.is_empty()).then(|| to_json(&self.system)),
        }
    }
}

/// The fast path of [`input_json`]: only messages whose content is a string (or absent)
/// and that carry none of the fields with their own mapping (an assistant turn without
/// tool calls or a refusal maps like any other).
mod plain {
    use std::borrow::Cow;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::{write_text_message, write_text_part, InputJson};

    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        role: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        // Present at all (even `null`): the `Value` path decides.
        #[serde(borrow, default)]
        tool_calls: Option<&'a RawValue>,
        #[serde(borrow, default)]
        tool_call_id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        refusal: Option<&'a RawValue>,
        #[serde(borrow, default)]
        function_call: Option<&'a RawValue>,
    }

    /// `None` hands the input to the `Value` path: not an array of plain messages.
    pub(super) fn input_json(raw: &str) -> Option<InputJson> {
        let messages: Vec<Message<'_>> = serde_json::from_str(raw).ok()?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut system = Vec::new();
        out.push(b'[');
        for m in &messages {
            if m.tool_calls.is_some()
                || m.tool_call_id.is_some()
                || m.refusal.is_some()
                || m.function_call.is_some()
            {
                return None;
            }
            let role = m.role.as_deref().unwrap_or("user");
            match role {
                "system" | "developer" => {
                    if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
                        system.push(if system.is_empty() { b'[' } else { b',' });
                        write_text_part(&mut system, text);
                    }
                }
                // Their parts are tool results.
                "tool" | "function" => return None,
                _ => {
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    let name = m.name.as_deref().map(|n| ("name", n));
                    let text = m.content.as_deref().unwrap_or_default();
                    write_text_message(&mut out, name, text, role);
                }
            }
        }
        out.push(b']');
        let system = if system.is_empty() {
            None
        } else {
            system.push(b']');
            Some(String::from_utf8(system).ok()?)
        };
        Some(InputJson {
            messages: String::from_utf8(out).ok()?,
            system,
        })
    }
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

/// [`output`] as attribute text. Choices without tool calls, nearly all answers, are
/// written straight out; the rest go through the `Value` path, which a property test holds
/// byte for byte equal.
pub fn output_json(choices: &[Choice], failed: bool) -> String {
    if choices.iter().any(|c| !c.tool_calls.is_empty()) {
        return to_json(&output(choices, failed));
    }
    let mut out = Vec::with_capacity(64 + choices.iter().map(|c| c.text.len() + 64).sum::<usize>());
    out.push(b'[');
    for (i, c) in choices.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let finish = finish_reason(c, failed).map(|f| ("finish_reason", f));
        let role = c.role.as_deref().unwrap_or("assistant");
        write_text_message(&mut out, finish, &c.text, role);
    }
    out.push(b']');
    // Only whole strings and ASCII literals were written to the buffer.
    String::from_utf8(out).unwrap_or_else(|_| to_json(&output(choices, failed)))
}

/// A JSON string as serde_json escapes it.
fn write_string(out: &mut Vec<u8>, s: &str) {
    crate::encode::json_string::write(out, s);
}

/// A message of at most one text part, as its `Value` serialises: keys sorted, so `first`
/// (`name` in, `finish_reason` out) before `parts` before `role`; empty text, no part.
fn write_text_message(out: &mut Vec<u8>, first: Option<(&str, &str)>, text: &str, role: &str) {
    out.push(b'{');
    if let Some((key, value)) = first {
        write_string(out, key);
        out.push(b':');
        write_string(out, value);
        out.push(b',');
    }
    out.extend_from_slice(b"\"parts\":[");
    if !text.is_empty() {
        write_text_part(out, text);
    }
    out.extend_from_slice(b"],\"role\":");
    write_string(out, role);
    out.push(b'}');
}

/// What [`text_part`] serialises to.
fn write_text_part(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"{\"content\":");
    write_string(out, text);
    out.extend_from_slice(b",\"type\":\"text\"}");
}

/// The GenAI finish reason of a choice; a failed exchange without one finished in error.
fn finish_reason(c: &Choice, failed: bool) -> Option<&str> {
    match c.finish_reason.as_deref() {
        Some("tool_calls" | "function_call") => Some("tool_call"),
        Some(other) => Some(other),
        None if failed => Some("error"),
        None => None,
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
            if let Some(f) = finish_reason(c, failed) {
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
    use proptest::prelude::*;

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

    /// The `Value` path alone: what [`input_json`] must equal whichever path it takes.
    fn slow(raw: &str) -> Option<InputJson> {
        input(raw).map(Input::into_json)
    }

    fn field() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            4 => Just(None),
            1 => Just(Some(Value::Null)),
            6 => any::<String>().prop_map(|s| Some(Value::String(s))),
            2 => "[a-z \"\\\\\n é]{0,12}".prop_map(|s| Some(Value::String(s))),
            1 => Just(Some(Value::String(String::new()))),
            1 => any::<i64>().prop_map(|n| Some(json!(n))),
            1 => ".{0,8}".prop_map(|t| Some(json!([{"type": "text", "text": t}]))),
        ]
    }

    fn role() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(json!(null))),
            Just(Some(json!(7))),
            prop::sample::select(vec![
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
                "function",
                "",
                "critic",
            ])
            .prop_map(|r| Some(json!(r))),
        ]
    }

    fn message() -> impl Strategy<Value = Value> {
        prop_oneof![
            12 => (role(), field(), field(), prop::option::weighted(0.1, field()), any::<bool>())
                .prop_map(|(role, content, name, extra, unknown)| {
                    let mut m = Map::new();
                    let mut put = |k: &str, v: Option<Value>| {
                        if let Some(v) = v {
                            m.insert(k.to_owned(), v);
                        }
                    };
                    put("role", role);
                    put("content", content);
                    put("name", name);
                    if let Some(extra) = extra {
                        put("refusal", extra);
                    }
                    if unknown {
                        put("audio", Some(json!({"id": "a1"})));
                    }
                    Value::Object(m)
                }),
            1 => Just(json!({"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})),
            1 => Just(json!({"role": "tool", "tool_call_id": "c", "content": "ok"})),
            1 => Just(json!("not a message")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_fast_path_writes_what_the_value_path_writes(
            messages in prop::collection::vec(message(), 0..6),
        ) {
            let raw = Value::from(messages).to_string();
            prop_assert_eq!(input_json(&raw), slow(&raw));
        }

        #[test]
        fn plain_conversations_take_the_fast_path(
            turns in prop::collection::vec(
                (prop::sample::select(vec!["system", "user", "assistant"]), any::<String>()),
                0..6,
            ),
        ) {
            let raw = Value::from(
                turns.iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>(),
            )
            .to_string();
            prop_assert!(plain::input_json(&raw).is_some(), "{}", raw);
            prop_assert_eq!(input_json(&raw), slow(&raw));
        }
    }

    fn choice() -> impl Strategy<Value = Choice> {
        (
            prop::option::of(prop::sample::select(vec!["assistant", "", "tool"])),
            prop_oneof![Just(String::new()), any::<String>(), "[a \"\\\\\n]{0,6}"],
            prop::option::of(prop::sample::select(vec![
                "stop",
                "length",
                "tool_calls",
                "function_call",
                "",
                "content_filter",
            ])),
            prop::option::weighted(0.2, (any::<Option<String>>(), ".{0,6}", ".{0,12}")),
        )
            .prop_map(|(role, text, finish, call)| Choice {
                index: 0,
                role: role.map(str::to_owned),
                text,
                tool_calls: call
                    .map(|(id, name, arguments)| ToolCall {
                        id,
                        name,
                        arguments,
                    })
                    .into_iter()
                    .collect(),
                finish_reason: finish.map(str::to_owned),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn output_text_is_what_the_value_path_writes(
            choices in prop::collection::vec(choice(), 0..4),
            failed in any::<bool>(),
        ) {
            prop_assert_eq!(output_json(&choices, failed), to_json(&output(&choices, failed)));
        }
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
