//! Reads and validates an Anthropic Messages request the way Anthropic does, so a gateway that
//! translates badly gets the 400 it would get in production, naming the offending path.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::request::word_count;

/// Top-level fields the Messages API accepts; anything else is "Extra inputs are not permitted".
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "cache_control",
    "diagnostics",
    "inference_geo",
    "output_config",
    "output_format",
];

/// `count_tokens` takes the prompt only: no `max_tokens`, sampling or streaming.
const COUNT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
    "context_management",
    "cache_control",
    "output_config",
    "output_format",
];

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
];

const CUSTOM_TOOL_FIELDS: &[&str] = &[
    "type",
    "name",
    "description",
    "input_schema",
    "cache_control",
    "strict",
    "defer_loading",
    "input_examples",
    "allowed_callers",
    "eager_input_streaming",
];

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Anthropic's floor for an extended-thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// What the answer depends on, once the request is known to be valid.
#[derive(Debug)]
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub stream: bool,
    /// The tool the answer calls: tools offered, `tool_choice` not `none`, and the last turn
    /// not already a tool result (a model answers those with text).
    pub tool: Option<&'a str>,
    pub thinking: bool,
    /// The last user turn's text, or the tool result's text when that is all the turn holds.
    pub user_text: Cow<'a, str>,
    pub input_tokens: u64,
    /// The first of `stop_sequences`, for a `stop_reason=stop_sequence` answer.
    pub stop_sequence: Option<&'a str>,
}

/// Which endpoint the body was sent to: they accept different fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Create,
    CountTokens,
}

type Invalid = String;

impl<'a> MessagesRequest<'a> {
    pub fn parse(body: &'a Value, endpoint: Endpoint) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err("the request body must be a JSON object".into());
        };
        let allowed = match endpoint {
            Endpoint::Create => FIELDS,
            Endpoint::CountTokens => COUNT_FIELDS,
        };
        if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("{extra}: Extra inputs are not permitted"));
        }
        let model = match object.get("model") {
            None => return Err("model: Field required".into()),
            Some(Value::String(model)) if !model.is_empty() => model.as_str(),
            Some(_) => return Err("model: Input should be a non-empty string".into()),
        };
        let max_tokens = if endpoint == Endpoint::Create {
            Some(max_tokens(object)?)
        } else {
            None
        };
        let messages = match object.get("messages") {
            None => return Err("messages: Field required".into()),
            Some(Value::Array(messages)) => messages,
            Some(_) => return Err("messages: Input should be a valid list".into()),
        };
        if messages.is_empty() {
            return Err("messages: at least one message is required".into());
        }
        check_messages(messages)?;
        let system_words = check_system(object.get("system"))?;
        let tools = check_tools(object.get("tools"))?;
        let choice = check_tool_choice(object.get("tool_choice"), &tools)?;
        let thinking = check_thinking(object.get("thinking"), max_tokens)?;
        check_metadata(object.get("metadata"))?;
        check_sampling(object)?;
        let stream = match object.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => return Err("stream: Input should be a valid boolean".into()),
        };

        let last = messages.last().and_then(Value::as_object);
        let after_tool_result = last.is_some_and(|m| {
            m.get("role").and_then(Value::as_str) == Some("user")
                && blocks(m.get("content")).any(|b| block_type(b) == Some("tool_result"))
        });
        let tool = match choice {
            Choice::None => None,
            _ if after_tool_result => None,
            Choice::Named(name) => Some(name),
            Choice::Default => tools.first().copied(),
        };
        let words: usize = messages
            .iter()
            .map(|m| content_words(m.get("content")))
            .sum();
        Ok(MessagesRequest {
            model,
            stream,
            tool,
            thinking,
            user_text: last_user_text(messages),
            stop_sequence: object
                .get("stop_sequences")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(Value::as_str),
            input_tokens: (system_words + words + messages.len()) as u64,
        })
    }
}

fn max_tokens(object: &Map<String, Value>) -> Result<u64, Invalid> {
    match object.get("max_tokens") {
        None => Err("max_tokens: Field required".into()),
        Some(v) => match v.as_u64() {
            Some(0) => Err("max_tokens: Input should be greater than or equal to 1".into()),
            Some(n) => Ok(n),
            None => Err("max_tokens: Input should be a valid integer".into()),
        },
    }
}

fn check_messages(messages: &[Value]) -> Result<(), Invalid> {
    let mut previous_role: Option<&str> = None;
    // Ids of the `tool_use` blocks in the turn just before, which the next turn must answer.
    let mut open_calls: Vec<&str> = Vec::new();
    let last = messages.len() - 1;
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(format!("messages.{i}: Input should be a valid dictionary"));
        };
        if let Some(extra) = message
            .keys()
            .find(|k| !matches!(k.as_str(), "role" | "content"))
        {
            return Err(format!(
                "messages.{i}.{extra}: Extra inputs are not permitted"
            ));
        }
        let role = match message.get("role").and_then(Value::as_str) {
            Some(role @ ("user" | "assistant")) => role,
            Some("system") => {
                return Err(format!(
                    "messages.{i}.role: Unexpected role \"system\". The Messages API accepts a \
                     top-level `system` parameter, not \"system\" as an input message role."
                ))
            }
            Some(_) => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ))
            }
            None => return Err(format!("messages.{i}.role: Field required")),
        };
        if previous_role == Some(role) {
            return Err(format!(
                "messages.{i}: roles must alternate between \"user\" and \"assistant\", but found \
                 multiple \"{role}\" roles in a row"
            ));
        }
        previous_role = Some(role);

        let content = message.get("content");
        let answered = check_content(i, role, content, i == last)?;
        if let Some(missing) = open_calls.iter().find(|id| !answered.contains(*id)) {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately \
                 after: {missing}. Each `tool_use` block must have a corresponding `tool_result` \
                 block in the next message."
            ));
        }
        if let Some(unexpected) = answered.iter().find(|id| !open_calls.contains(*id)) {
            return Err(format!(
                "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: \
                 {unexpected}. Each `tool_result` block must have a corresponding `tool_use` \
                 block in the previous message."
            ));
        }
        open_calls = blocks(content)
            .filter(|b| block_type(b) == Some("tool_use"))
            .filter_map(|b| b.get("id").and_then(Value::as_str))
            .collect();
        if i == last && !open_calls.is_empty() {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately \
                 after: {}. Each `tool_use` block must have a corresponding `tool_result` block \
                 in the next message.",
                open_calls[0]
            ));
        }
    }
    Ok(())
}

/// Checks one turn's content; returns the `tool_use_id`s its `tool_result` blocks answer.
fn check_content<'a>(
    i: usize,
    role: &str,
    content: Option<&'a Value>,
    is_last: bool,
) -> Result<HashSet<&'a str>, Invalid> {
    let mut answered = HashSet::new();
    let blocks = match content {
        None => return Err(format!("messages.{i}.content: Field required")),
        Some(Value::String(text)) => {
            // A final assistant turn may be an empty prefill; any other turn needs words.
            if text.is_empty() && !(is_last && role == "assistant") {
                return Err(format!(
                    "messages.{i}: all messages must have non-empty content except for the \
                     optional final assistant message"
                ));
            }
            return Ok(answered);
        }
        Some(Value::Array(blocks)) => blocks,
        Some(_) => {
            return Err(format!(
                "messages.{i}.content: Input should be a valid string or list of content blocks"
            ))
        }
    };
    if blocks.is_empty() && !(is_last && role == "assistant") {
        return Err(format!(
            "messages.{i}: all messages must have non-empty content except for the optional \
             final assistant message"
        ));
    }
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        let Some(kind) = block_type(block) else {
            return Err(format!("{at}.type: Field required"));
        };
        if !BLOCK_TYPES.contains(&kind) {
            return Err(format!(
                "{at}: Input tag '{kind}' found using 'type' does not match any of the expected \
                 tags"
            ));
        }
        match kind {
            "text" => match block.get("text").and_then(Value::as_str) {
                None => return Err(format!("{at}.text: Field required")),
                Some("") => {
                    return Err(format!("{at}.text: text content blocks must be non-empty"))
                }
                Some(_) => {}
            },
            "image" => check_image(&at, block)?,
            "tool_use" => {
                if role != "assistant" {
                    return Err(format!(
                        "{at}: tool_use blocks can only be in assistant messages"
                    ));
                }
                for field in ["id", "name"] {
                    if block.get(field).and_then(Value::as_str).is_none() {
                        return Err(format!("{at}.{field}: Field required"));
                    }
                }
                if !block.get("input").is_some_and(Value::is_object) {
                    return Err(format!("{at}.input: Input should be a valid dictionary"));
                }
            }
            "tool_result" => {
                if role != "user" {
                    return Err(format!(
                        "{at}: tool_result blocks can only be in user messages"
                    ));
                }
                let Some(id) = block.get("tool_use_id").and_then(Value::as_str) else {
                    return Err(format!("{at}.tool_use_id: Field required"));
                };
                answered.insert(id);
            }
            _ => {}
        }
    }
    Ok(answered)
}

fn check_image(at: &str, block: &Value) -> Result<(), Invalid> {
    let source = block.get("source");
    match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .and_then(|s| s.get("media_type"))
                .and_then(Value::as_str);
            if !media.is_some_and(|m| IMAGE_TYPES.contains(&m)) {
                return Err(format!(
                    "{at}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', \
                     'image/gif' or 'image/webp'"
                ));
            }
            let data = source.and_then(|s| s.get("data")).and_then(Value::as_str);
            if data.is_none_or(|d| d.is_empty() || d.starts_with("data:")) {
                return Err(format!(
                    "{at}.source.base64.data: must be the base64 data alone, not a data URL"
                ));
            }
            Ok(())
        }
        Some("url") => match source.and_then(|s| s.get("url")).and_then(Value::as_str) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(()),
            _ => Err(format!("{at}.source.url.url: Input should be a valid URL")),
        },
        Some("file") => Ok(()),
        _ => Err(format!(
            "{at}.source: Input tag found using 'type' does not match any of the expected tags: \
             'base64', 'url', 'file'"
        )),
    }
}

/// Returns the system prompt's word count.
fn check_system(system: Option<&Value>) -> Result<usize, Invalid> {
    match system {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(text)) => Ok(word_count(text)),
        Some(Value::Array(blocks)) => {
            let mut words = 0;
            for (j, block) in blocks.iter().enumerate() {
                if block_type(block) != Some("text") {
                    return Err(format!("system.{j}.type: Input should be 'text'"));
                }
                match block.get("text").and_then(Value::as_str) {
                    Some(text) if !text.is_empty() => words += word_count(text),
                    _ => {
                        return Err(format!(
                            "system.{j}.text: text content blocks must be non-empty"
                        ))
                    }
                }
            }
            Ok(words)
        }
        Some(_) => Err("system: Input should be a valid string or list of text blocks".into()),
    }
}

/// Returns the names of the custom (client) tools, in order.
fn check_tools(tools: Option<&Value>) -> Result<Vec<&str>, Invalid> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err("tools: Input should be a valid list".into()),
    };
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let Some(object) = tool.as_object() else {
            return Err(format!("tools.{i}: Input should be a valid dictionary"));
        };
        let kind = object.get("type").and_then(Value::as_str);
        // Server tools (`web_search_20250305`, ...) have their own schemas; only custom
        // tools are the caller's functions.
        match kind {
            None | Some("custom") => {}
            Some(k) if is_server_tool(k) => continue,
            Some(k) => {
                return Err(format!(
                    "tools.{i}: Input tag '{k}' found using 'type' does not match any of the \
                     expected tags"
                ))
            }
        }
        if let Some(extra) = object
            .keys()
            .find(|k| !CUSTOM_TOOL_FIELDS.contains(&k.as_str()))
        {
            return Err(format!(
                "tools.{i}.custom.{extra}: Extra inputs are not permitted"
            ));
        }
        let Some(name) = object.get("name").and_then(Value::as_str) else {
            return Err(format!("tools.{i}.custom.name: Field required"));
        };
        if !object.get("input_schema").is_some_and(Value::is_object) {
            return Err(format!("tools.{i}.custom.input_schema: Field required"));
        }
        names.push(name);
    }
    Ok(names)
}

/// Server tools are versioned by date, as `web_search_20250305`.
fn is_server_tool(kind: &str) -> bool {
    kind.rsplit_once('_')
        .is_some_and(|(_, date)| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
}

enum Choice<'a> {
    Default,
    None,
    Named(&'a str),
}

fn check_tool_choice<'a>(choice: Option<&'a Value>, tools: &[&str]) -> Result<Choice<'a>, Invalid> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(Choice::Default);
    };
    let Some(object) = choice.as_object() else {
        return Err("tool_choice: Input should be a valid dictionary".into());
    };
    if object
        .get("disable_parallel_tool_use")
        .is_some_and(|v| !v.is_boolean())
    {
        return Err(
            "tool_choice.disable_parallel_tool_use: Input should be a valid boolean".into(),
        );
    }
    match object.get("type").and_then(Value::as_str) {
        Some("auto" | "any") => Ok(Choice::Default),
        Some("none") => Ok(Choice::None),
        Some("tool") => match object.get("name").and_then(Value::as_str) {
            Some(name) if tools.contains(&name) => Ok(Choice::Named(name)),
            Some(name) => Err(format!(
                "tool_choice.tool.name: no tool named `{name}` is defined"
            )),
            None => Err("tool_choice.tool.name: Field required".into()),
        },
        _ => Err(
            "tool_choice: Input tag found using 'type' does not match any of the expected tags: \
             'auto', 'any', 'tool', 'none'"
                .into(),
        ),
    }
}

/// True when the answer should start with a thinking block.
fn check_thinking(thinking: Option<&Value>, max_tokens: Option<u64>) -> Result<bool, Invalid> {
    let Some(thinking) = thinking.filter(|t| !t.is_null()) else {
        return Ok(false);
    };
    match thinking.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(false),
        Some("adaptive") => Ok(true),
        Some("enabled") => {
            let Some(budget) = thinking.get("budget_tokens").and_then(Value::as_u64) else {
                return Err("thinking.enabled.budget_tokens: Field required".into());
            };
            if budget < MIN_THINKING_BUDGET {
                return Err(format!(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to \
                     {MIN_THINKING_BUDGET}"
                ));
            }
            if max_tokens.is_some_and(|max| max <= budget) {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
            }
            Ok(true)
        }
        _ => Err(
            "thinking: Input tag found using 'type' does not match any of the expected tags: \
             'enabled', 'disabled', 'adaptive'"
                .into(),
        ),
    }
}

fn check_metadata(metadata: Option<&Value>) -> Result<(), Invalid> {
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return Ok(());
    };
    let Some(object) = metadata.as_object() else {
        return Err("metadata: Input should be a valid dictionary".into());
    };
    if let Some(extra) = object.keys().find(|k| k.as_str() != "user_id") {
        return Err(format!("metadata.{extra}: Extra inputs are not permitted"));
    }
    match object.get("user_id") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(_) => Err("metadata.user_id: Input should be a valid string".into()),
    }
}

fn check_sampling(object: &Map<String, Value>) -> Result<(), Invalid> {
    for (field, max) in [("temperature", 1.0), ("top_p", 1.0)] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=max).contains(&x) => {}
                Some(_) => {
                    return Err(format!(
                        "{field}: Input should be between 0 and {max} (inclusive)"
                    ))
                }
                None => return Err(format!("{field}: Input should be a valid number")),
            },
        }
    }
    if object
        .get("top_k")
        .is_some_and(|v| !v.is_null() && v.as_u64().is_none())
    {
        return Err("top_k: Input should be a valid integer".into());
    }
    match object.get("stop_sequences") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err("stop_sequences: Input should be a valid list of strings".into()),
    }
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// A content value's blocks; a plain string has none.
fn blocks(content: Option<&Value>) -> impl Iterator<Item = &Value> {
    content.and_then(Value::as_array).into_iter().flatten()
}

/// Text a turn carries: plain text, text blocks and the text inside tool results.
fn texts(content: Option<&Value>) -> Vec<&str> {
    if let Some(text) = content.and_then(Value::as_str) {
        return vec![text];
    }
    let mut out = Vec::new();
    for block in blocks(content) {
        match block_type(block) {
            Some("text") => out.extend(block.get("text").and_then(Value::as_str)),
            Some("tool_result") => out.extend(texts(block.get("content"))),
            _ => {}
        }
    }
    out
}

fn content_words(content: Option<&Value>) -> usize {
    texts(content).into_iter().map(word_count).sum()
}

fn last_user_text(messages: &[Value]) -> Cow<'_, str> {
    let Some(content) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
    else {
        return Cow::Borrowed("");
    };
    if let Some(text) = content.as_str() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(texts(Some(content)).join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<(), String> {
        MessagesRequest::parse(&body, Endpoint::Create).map(|_| ())
    }

    fn base(messages: Value) -> Value {
        json!({"model": "claude", "max_tokens": 100, "messages": messages})
    }

    #[test]
    fn rejects_what_anthropic_rejects_naming_the_path() {
        let user = json!([{"role": "user", "content": "hi"}]);
        for (body, expected) in [
            (
                json!({"model": "claude", "messages": user}),
                "max_tokens: Field required",
            ),
            (
                json!({"max_tokens": 5, "messages": user}),
                "model: Field required",
            ),
            (
                json!({"model": "c", "max_tokens": 5, "messages": user, "trace": {}}),
                "trace: Extra inputs are not permitted",
            ),
            (
                json!({"model": "c", "max_tokens": 5, "messages": user, "stream_options": {}}),
                "stream_options: Extra",
            ),
            (base(json!([])), "at least one message"),
            (
                base(
                    json!([{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]),
                ),
                "messages.0.role: Unexpected role \"system\"",
            ),
            (
                base(json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])),
                "messages.1: roles must alternate",
            ),
            (
                base(
                    json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]),
                ),
                "messages.1.content.0: tool_result blocks can only be in user messages",
            ),
            (
                base(
                    json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "no result"}]),
                ),
                "messages.2: `tool_use` ids were found without `tool_result` blocks",
            ),
            (
                base(json!([{"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}])),
                "unexpected `tool_use_id`",
            ),
            (
                base(
                    json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
                ),
                "Input tag 'image_url'",
            ),
            (
                base(
                    json!([{"role": "user", "content": [{"type": "image", "source": {
                    "type": "base64", "media_type": "image/png", "data": "data:image/png;base64,AAA"}}]}]),
                ),
                "not a data URL",
            ),
            (
                base(json!([{"role": "user", "content": ""}])),
                "messages.0: all messages must have non-empty content",
            ),
            (
                base(
                    json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "text", "text": ""}]}, {"role": "user", "content": "b"}]),
                ),
                "messages.1.content.0.text: text content blocks must be non-empty",
            ),
        ] {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert!(err.contains(expected), "{err} / {expected}");
        }
    }

    #[test]
    fn rejects_openai_shaped_fields() {
        let mut body = base(json!([{"role": "user", "content": "hi"}]));
        let with = |extra: Value| {
            let mut b = body.clone();
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(b).unwrap_err()
        };
        assert!(
            with(json!({"tools": [{"type": "function", "function": {"name": "f"}}]}))
                .starts_with("tools.0")
        );
        assert!(with(json!({"tools": [{"name": "f", "parameters": {}}]}))
            .contains("tools.0.custom.parameters"));
        assert!(
            with(json!({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": "auto"}))
                .starts_with("tool_choice")
        );
        assert!(with(json!({"metadata": {"user": "u"}})).starts_with("metadata.user"));
        assert!(with(json!({"temperature": 1.5})).starts_with("temperature"));
        assert!(
            with(json!({"thinking": {"type": "enabled", "budget_tokens": 500}})).contains("1024")
        );
        assert!(
            with(json!({"thinking": {"type": "enabled", "budget_tokens": 2000}}))
                .contains("max_tokens")
        );
        body["max_tokens"] = json!(-1);
        assert!(parse(body).unwrap_err().starts_with("max_tokens"));
    }

    #[test]
    fn a_valid_round_trip_is_read() {
        let body = json!({"model": "claude", "max_tokens": 4096, "system": [{"type": "text", "text": "be brief"}],
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"}, "temperature": 0.5, "stop_sequences": ["x"],
        "messages": [
            {"role": "user", "content": "find it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"}]},
        ]});
        let req = MessagesRequest::parse(&body, Endpoint::Create).unwrap();
        assert_eq!(req.tool, None, "a tool result is answered with text");
        assert!(req.thinking);
        assert_eq!(req.user_text, "found it");
        // 2 system + 2 + 0 + 2 words, plus one per message.
        assert_eq!(req.input_tokens, 6 + 3);

        let body = base(json!([{"role": "user", "content": "go"}]));
        let mut with_tools = body.clone();
        with_tools["tools"] =
            json!([{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}]);
        assert_eq!(
            MessagesRequest::parse(&with_tools, Endpoint::Create)
                .unwrap()
                .tool,
            Some("a")
        );
        with_tools["tool_choice"] = json!({"type": "tool", "name": "b"});
        assert_eq!(
            MessagesRequest::parse(&with_tools, Endpoint::Create)
                .unwrap()
                .tool,
            Some("b")
        );
        with_tools["tool_choice"] = json!({"type": "none"});
        assert_eq!(
            MessagesRequest::parse(&with_tools, Endpoint::Create)
                .unwrap()
                .tool,
            None
        );
    }

    #[test]
    fn count_tokens_takes_no_max_tokens_or_stream() {
        let body = json!({"model": "c", "messages": [{"role": "user", "content": "one two"}]});
        assert_eq!(
            MessagesRequest::parse(&body, Endpoint::CountTokens)
                .unwrap()
                .input_tokens,
            3
        );
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        assert!(MessagesRequest::parse(&streamed, Endpoint::CountTokens).is_err());
    }
}
