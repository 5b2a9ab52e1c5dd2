//! An OpenAI chat request as an Anthropic Messages request body.
//!
//! What maps, and how:
//! - `system` and `developer` messages, wherever they stand, become the top-level `system`
//!   text blocks in order; the other turns alternate user/assistant, consecutive ones of the
//!   same role merged into one turn as Anthropic requires.
//! - Content parts: `text`; `image_url` (a base64 data URL becomes a `base64` source, an
//!   http(s) URL a `url` source); `file` (`file_data` becomes a base64 `document`, `file_id` a
//!   `file` source). A part's `cache_control` is kept.
//! - Assistant `tool_calls` become `tool_use` blocks, their `arguments` parsed to an object;
//!   `tool` messages become `tool_result` blocks in a user turn.
//! - `tools` → `tools` with `input_schema`; `tool_choice` `auto`/`none`/`required`/a named
//!   function → `auto`/`none`/`any`/`tool`; `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use`.
//! - `max_completion_tokens`, else `max_tokens`, else [`MessagesOptions::default_max_tokens`]
//!   (Anthropic requires one); `stop` → `stop_sequences`; `temperature` and `top_p` as sent
//!   (Anthropic answers a temperature above 1 with its own 400); `user` (else
//!   `safety_identifier`) → `metadata.user_id`; `stream`.
//! - `reasoning_effort` → `thinking: {type: enabled, budget_tokens}` with the budget of its
//!   level. Anthropic wants `max_tokens` above the budget: when it is not, the budget is added
//!   to it, so the client's allowance for the answer itself is kept. A request that carries
//!   the results of a tool call goes without thinking: Anthropic would want the signed
//!   thinking block of the call, which a chat client never gets. With thinking on,
//!   `temperature` and `top_p` are dropped: Anthropic refuses them beside it.
//! - `response_format: {type: json_schema}` → a tool named [`RESPONSE_TOOL`] whose
//!   `input_schema` is the schema, and a `tool_choice` that forces it (or, beside client
//!   tools, forces *a* tool call: a real tool or the answer). Forced tool use works on every
//!   Anthropic model, where native structured output does not; it excludes extended
//!   thinking, so `reasoning_effort` with a json_schema is a 400. `json_object` and `text`
//!   have no equivalent and are dropped.
//!
//! Parameters Anthropic has no equivalent for (`frequency_penalty`, `presence_penalty`,
//! `seed`, `logprobs`, `logit_bias`, `stream_options`, ...) are dropped, as are the gateway's
//! own `trace` and `session_id`. `n` above 1 and the retired `functions` are 400s.

use serde::Serialize;
use serde_json::{json, Map, Number, Value};

use super::RESPONSE_TOOL;
use crate::error::ProxyError;
use crate::request::ChatRequest;

/// Per-provider settings of the conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesOptions {
    /// `max_tokens` when the client sent neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: u64,
    /// `thinking.budget_tokens` for `reasoning_effort` `minimal` and `low`.
    pub thinking_budget_low: u64,
    pub thinking_budget_medium: u64,
    /// For `high` and `xhigh`.
    pub thinking_budget_high: u64,
}

impl Default for MessagesOptions {
    fn default() -> Self {
        Self {
            default_max_tokens: 4096,
            // Anthropic's smallest budget.
            thinking_budget_low: 1024,
            thinking_budget_medium: 4096,
            thinking_budget_high: 16384,
        }
    }
}

/// The Messages body for `req`, sent to `upstream_model`. A 400 names the field at fault by
/// its path (`messages[2].tool_calls[0].function.arguments`).
pub fn request(
    req: &ChatRequest,
    upstream_model: &str,
    opts: &MessagesOptions,
) -> Result<Vec<u8>, ProxyError> {
    let mut p = Params::default();
    // Only the fields that map are decoded; the rest are never looked into.
    for (key, raw) in req.fields().filter(|(k, _)| READ.contains(k)) {
        let value: Value = serde_json::from_str(raw).map_err(|e| invalid(key, e.to_string()))?;
        if value.is_null() {
            continue;
        }
        match key {
            "messages" => p.messages = Some(value),
            "tools" => p.tools = Some(value),
            "tool_choice" => p.tool_choice = Some(value),
            "parallel_tool_calls" => p.parallel = Some(boolean(key, &value)?),
            "response_format" => p.response_format = Some(value),
            "max_completion_tokens" => p.max_completion_tokens = Some(count(key, &value)?),
            "max_tokens" => p.max_tokens = Some(count(key, &value)?),
            "stop" => p.stop = stop(&value)?,
            "temperature" | "top_p" => {
                let n = number(key, &value)?;
                if key == "temperature" {
                    p.temperature = Some(n);
                } else {
                    p.top_p = Some(n);
                }
            }
            "user" => p.user = Some(string(key, &value)?.to_owned()),
            "safety_identifier" => p.safety_identifier = Some(string(key, &value)?.to_owned()),
            "reasoning_effort" => p.effort = Some(string(key, &value)?.to_owned()),
            "stream" => p.stream = boolean(key, &value)?,
            "n" if count(key, &value)? > 1 => {
                return Err(invalid(
                    "n",
                    "`n` above 1 is not supported by Anthropic models: they return one choice",
                ))
            }
            "functions" | "function_call" => {
                return Err(invalid(
                    key,
                    format!("`{key}` is retired and not supported here: send `tools` instead"),
                ))
            }
            _ => {}
        }
    }
    p.write(upstream_model, opts)
}

/// The client fields [`request`] reads.
const READ: [&str; 17] = [
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "max_completion_tokens",
    "max_tokens",
    "stop",
    "temperature",
    "top_p",
    "user",
    "safety_identifier",
    "reasoning_effort",
    "stream",
    "n",
    "functions",
    "function_call",
];

/// The fields that map, decoded; everything else was dropped on the way in.
#[derive(Default)]
struct Params {
    messages: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    parallel: Option<bool>,
    response_format: Option<Value>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    stop: Option<Vec<String>>,
    temperature: Option<Number>,
    top_p: Option<Number>,
    user: Option<String>,
    safety_identifier: Option<String>,
    effort: Option<String>,
    stream: bool,
}

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Value>,
    messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct Turn {
    role: &'static str,
    content: Vec<Value>,
}

impl Params {
    fn write(self, model: &str, opts: &MessagesOptions) -> Result<Vec<u8>, ProxyError> {
        let messages = self
            .messages
            .as_ref()
            .ok_or_else(|| invalid("messages", "missing required parameter: `messages`"))?;
        let (system, turns) = conversation(messages)?;
        let (tools, tool_choice) = self.tools_and_choice()?;
        let (max_tokens, thinking) = self.budget(opts, unsigned_tool_use(&turns))?;
        let body = MessagesBody {
            model,
            max_tokens,
            system,
            messages: turns,
            stop_sequences: self.stop,
            // Anthropic refuses sampling settings beside thinking, which has its own.
            temperature: self.temperature.filter(|_| thinking.is_none()),
            top_p: self.top_p.filter(|_| thinking.is_none()),
            metadata: self
                .user
                .or(self.safety_identifier)
                .map(|user_id| json!({ "user_id": user_id })),
            tools,
            tool_choice,
            thinking,
            stream: self.stream,
        };
        serde_json::to_vec(&body).map_err(|e| invalid("messages", e.to_string()))
    }

    /// `tools` and `tool_choice`, the json_schema answer tool among them when asked for.
    fn tools_and_choice(&self) -> Result<(Vec<Value>, Option<Value>), ProxyError> {
        let mut tools = match &self.tools {
            Some(v) => tools(v)?,
            None => Vec::new(),
        };
        let client_tools = !tools.is_empty();
        let mut choice = match (&self.tool_choice, client_tools) {
            (Some(v), true) => Some(tool_choice(v)?),
            // A choice among no tools says nothing; Anthropic would refuse it.
            _ => None,
        };
        let response_tool = match &self.response_format {
            Some(v) => response_tool(v)?,
            None => None,
        };
        if let Some(tool) = response_tool {
            if self.effort.as_deref().is_some_and(|e| e != "none") {
                return Err(invalid(
                    "response_format",
                    "`response_format` json_schema cannot be combined with `reasoning_effort` \
                     on Anthropic models: the schema is answered through a forced tool, which \
                     extended thinking does not allow",
                ));
            }
            tools.push(tool);
            choice = Some(match choice {
                // The client's own named tool, or "any tool" (which includes the answer).
                Some(c) if c["type"] == "tool" || c["type"] == "any" => c,
                Some(c) if c["type"] == "auto" => json!({"type": "any"}),
                None if client_tools => json!({"type": "any"}),
                // No client tools, or `none` of them: the answer is the only call left.
                _ => json!({"type": "tool", "name": RESPONSE_TOOL}),
            });
        }
        if self.parallel == Some(false) {
            if let Some(Value::Object(c)) = &mut choice {
                if c.get("type").and_then(Value::as_str) != Some("none") {
                    c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
                }
            } else if client_tools {
                choice = Some(json!({"type": "auto", "disable_parallel_tool_use": true}));
            }
        }
        Ok((tools, choice))
    }

    /// `max_tokens` and the `thinking` that `reasoning_effort` asks for. Anthropic wants
    /// `max_tokens` above the budget: when it is not, the budget is added to it. With
    /// `unsigned_tool_use` the request goes without thinking (see [`unsigned_tool_use`]).
    fn budget(
        &self,
        opts: &MessagesOptions,
        unsigned_tool_use: bool,
    ) -> Result<(u64, Option<Value>), ProxyError> {
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(opts.default_max_tokens);
        let budget = match self.effort.as_deref() {
            None | Some("none") => return Ok((max_tokens, None)),
            Some(_) if unsigned_tool_use => return Ok((max_tokens, None)),
            Some("minimal" | "low") => opts.thinking_budget_low,
            Some("medium") => opts.thinking_budget_medium,
            Some("high" | "xhigh") => opts.thinking_budget_high,
            Some(other) => {
                return Err(invalid(
                    "reasoning_effort",
                    format!(
                        "invalid value for `reasoning_effort`: `{}`; expected none, minimal, \
                         low, medium, high or xhigh",
                        crate::error::bounded(other, 64)
                    ),
                ))
            }
        };
        let max_tokens = if max_tokens <= budget {
            max_tokens.saturating_add(budget)
        } else {
            max_tokens
        };
        let thinking = json!({"type": "enabled", "budget_tokens": budget});
        Ok((max_tokens, Some(thinking)))
    }
}

/// The top-level `system` blocks and the merged user/assistant turns.
fn conversation(messages: &Value) -> Result<(Vec<Value>, Vec<Turn>), ProxyError> {
    let list = messages
        .as_array()
        .ok_or_else(|| invalid("messages", "`messages` must be an array"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.role"), "each message needs a string `role`"))?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(message.get("content"), &at)?);
                continue;
            }
            "user" => ("user", user_blocks(message.get("content"), &at)?),
            "assistant" => ("assistant", assistant_blocks(message, &at)?),
            "tool" => ("user", vec![tool_result(message, &at)?]),
            other => {
                return Err(invalid(
                    format!("{at}.role"),
                    format!(
                        "role `{}` is not supported here; use system, developer, user, \
                         assistant or tool",
                        crate::error::bounded(other, 64)
                    ),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "`messages` must hold at least one user or assistant message with content",
        ));
    }
    Ok((system, turns))
}

/// The last assistant turn called tools. With thinking on, Anthropic wants that turn to
/// start with the thinking block it answered with, signature and all; a chat client never
/// had one to send back, so the tool-result turn of a tool loop must go without thinking
/// (a 400 otherwise).
fn unsigned_tool_use(turns: &[Turn]) -> bool {
    turns
        .iter()
        .rev()
        .find(|t| t.role == "assistant")
        .is_some_and(|t| t.content.iter().any(|b| b["type"] == "tool_use"))
}

/// Content that may only be text (system messages): a string or `text` parts.
fn text_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, ProxyError> {
    let mut blocks = Vec::new();
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_text(&mut blocks, s, None),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let path = format!("{at}.content[{j}]");
                match part_type(part, &path)? {
                    "text" => push_text(&mut blocks, part_text(part, &path)?, Some(part)),
                    other => return Err(unsupported_part(&path, other, "text")),
                }
            }
        }
        Some(_) => return Err(content_shape(at)),
    }
    Ok(blocks)
}

fn user_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, ProxyError> {
    let mut blocks = Vec::new();
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_text(&mut blocks, s, None),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(media_part(part, &format!("{at}.content[{j}]"))?);
            }
        }
        Some(_) => return Err(content_shape(at)),
    }
    Ok(blocks)
}

/// A user or tool-result part: text, an image or a file.
fn media_part(part: &Value, path: &str) -> Result<Option<Value>, ProxyError> {
    let block = match part_type(part, path)? {
        "text" => {
            let text = part_text(part, path)?;
            if text.is_empty() {
                return Ok(None);
            }
            json!({"type": "text", "text": text})
        }
        "image_url" => image(part, path)?,
        "file" => document(part, path)?,
        other => return Err(unsupported_part(path, other, "text, image_url or file")),
    };
    Ok(Some(with_cache_control(block, part)))
}

fn assistant_blocks(message: &Value, at: &str) -> Result<Vec<Value>, ProxyError> {
    let mut blocks = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_text(&mut blocks, s, None),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let path = format!("{at}.content[{j}]");
                match part_type(part, &path)? {
                    "text" => push_text(&mut blocks, part_text(part, &path)?, Some(part)),
                    "refusal" => {
                        let text =
                            part.get("refusal").and_then(Value::as_str).ok_or_else(|| {
                                invalid(format!("{path}.refusal"), "a refusal part needs a string")
                            })?;
                        push_text(&mut blocks, text, None);
                    }
                    other => return Err(unsupported_part(&path, other, "text or refusal")),
                }
            }
        }
        Some(_) => return Err(content_shape(at)),
    }
    let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(blocks);
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| invalid(format!("{at}.tool_calls"), "`tool_calls` must be an array"))?;
    for (k, call) in calls.iter().enumerate() {
        let path = format!("{at}.tool_calls[{k}]");
        let id = required_str(call, "id", &path)?;
        let function = call
            .get("function")
            .ok_or_else(|| invalid(format!("{path}.function"), "a tool call needs `function`"))?;
        let name = required_str(function, "name", &format!("{path}.function"))?;
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let input = if arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return Err(invalid(
                        format!("{path}.function.arguments"),
                        "tool call arguments must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(invalid(
                        format!("{path}.function.arguments"),
                        format!("tool call arguments are not valid JSON: {e}"),
                    ))
                }
            }
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn tool_result(message: &Value, at: &str) -> Result<Value, ProxyError> {
    let id = required_str(message, "tool_call_id", at)?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => block["content"] = Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(media_part(part, &format!("{at}.content[{j}]"))?);
            }
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
        Some(_) => return Err(content_shape(at)),
    }
    Ok(block)
}

/// `image_url`: `{url, detail}` or, as some clients send it, the URL string itself.
fn image(part: &Value, path: &str) -> Result<Value, ProxyError> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(obj) => obj.get("url").and_then(Value::as_str).ok_or_else(|| {
            invalid(
                format!("{path}.image_url.url"),
                "an image part needs a string url",
            )
        })?,
        None => {
            return Err(invalid(
                format!("{path}.image_url"),
                "an image part needs `image_url`",
            ))
        }
    };
    let source = if url.starts_with("data:") {
        let (media_type, data) = data_url(url, &format!("{path}.image_url.url"))?;
        json!({"type": "base64", "media_type": media_type, "data": data})
    } else if url.starts_with("https://") || url.starts_with("http://") {
        json!({"type": "url", "url": url})
    } else {
        return Err(invalid(
            format!("{path}.image_url.url"),
            "an image url must be an http(s) URL or a base64 data URL",
        ));
    };
    Ok(json!({"type": "image", "source": source}))
}

/// `file`: inline `file_data` (a data URL, or bare base64 taken as a PDF) or an uploaded
/// `file_id`; `filename` becomes the document's title.
fn document(part: &Value, path: &str) -> Result<Value, ProxyError> {
    let file = part
        .get("file")
        .filter(|f| f.is_object())
        .ok_or_else(|| invalid(format!("{path}.file"), "a file part needs a `file` object"))?;
    let source = if let Some(data) = file.get("file_data").and_then(Value::as_str) {
        let (media_type, data) = if data.starts_with("data:") {
            data_url(data, &format!("{path}.file.file_data"))?
        } else {
            ("application/pdf", data)
        };
        json!({"type": "base64", "media_type": media_type, "data": data})
    } else if let Some(id) = file.get("file_id").and_then(Value::as_str) {
        json!({"type": "file", "file_id": id})
    } else {
        return Err(invalid(
            format!("{path}.file"),
            "a file part needs `file_data` or `file_id`",
        ));
    };
    let mut block = json!({"type": "document", "source": source});
    if let Some(name) = file.get("filename").and_then(Value::as_str) {
        block["title"] = Value::String(name.to_owned());
    }
    Ok(block)
}

/// `data:<media type>;base64,<data>` as (media type, data).
fn data_url<'a>(url: &'a str, param: &str) -> Result<(&'a str, &'a str), ProxyError> {
    let bad = || {
        invalid(
            param,
            "a data URL must be `data:<media type>;base64,<data>`",
        )
    };
    let rest = url.strip_prefix("data:").ok_or_else(bad)?;
    let (header, data) = rest.split_once(',').ok_or_else(bad)?;
    let media_type = header.strip_suffix(";base64").ok_or_else(bad)?;
    if media_type.is_empty() {
        return Err(bad());
    }
    Ok((media_type, data))
}

fn tools(value: &Value) -> Result<Vec<Value>, ProxyError> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid("tools", "`tools` must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(invalid(
                format!("{at}.type"),
                format!(
                    "tool type `{}` is not supported by Anthropic models; use function tools",
                    crate::error::bounded(kind, 64)
                ),
            ));
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| invalid(format!("{at}.function"), "a tool needs a `function`"))?;
        let name = required_str(function, "name", &format!("{at}.function"))?;
        if name == RESPONSE_TOOL {
            return Err(invalid(
                format!("{at}.function.name"),
                format!("the tool name `{RESPONSE_TOOL}` is reserved by the gateway"),
            ));
        }
        let mut def = json!({"name": name});
        if let Some(d) = function.get("description").and_then(Value::as_str) {
            def["description"] = Value::String(d.to_owned());
        }
        def["input_schema"] = match function.get("parameters") {
            Some(p) if p.is_object() => p.clone(),
            // OpenAI allows a function without parameters; Anthropic wants a schema.
            _ => json!({"type": "object", "properties": {}}),
        };
        out.push(def);
    }
    Ok(out)
}

fn tool_choice(value: &Value) -> Result<Value, ProxyError> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            other => Err(invalid(
                "tool_choice",
                format!(
                    "invalid value for `tool_choice`: `{}`; expected auto, none, required or \
                     a function",
                    crate::error::bounded(other, 64)
                ),
            )),
        },
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("function") => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        "tool_choice.function.name",
                        "a named tool choice needs a function name",
                    )
                })?;
            Ok(json!({"type": "tool", "name": name}))
        }
        _ => Err(invalid(
            "tool_choice",
            "`tool_choice` must be auto, none, required or {\"type\": \"function\", ...}",
        )),
    }
}

/// The answer tool for a json_schema format; `None` for formats that have no equivalent.
fn response_tool(value: &Value) -> Result<Option<Value>, ProxyError> {
    match value.get("type").and_then(Value::as_str) {
        Some("json_schema") => {}
        Some("text" | "json_object") => return Ok(None),
        _ => {
            return Err(invalid(
                "response_format.type",
                "`response_format.type` must be text, json_object or json_schema",
            ))
        }
    }
    let spec = value
        .get("json_schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| {
            invalid(
                "response_format.json_schema",
                "a json_schema response format needs `json_schema`",
            )
        })?;
    let description = match (spec.get("description").and_then(Value::as_str), spec.get("name").and_then(Value::as_str)) {
        (Some(d), _) => d.to_owned(),
        (None, Some(name)) => format!("Give the final answer as the input of this tool: a `{name}` object that follows its schema."),
        (None, None) => "Give the final answer as the input of this tool, following its schema.".to_owned(),
    };
    let schema = match spec.get("schema") {
        Some(s) if s.is_object() => s.clone(),
        _ => json!({"type": "object"}),
    };
    Ok(Some(json!({
        "name": RESPONSE_TOOL,
        "description": description,
        "input_schema": schema,
    })))
}

fn push_text(blocks: &mut Vec<Value>, text: &str, part: Option<&Value>) {
    // Anthropic refuses empty text blocks.
    if text.is_empty() {
        return;
    }
    let block = json!({"type": "text", "text": text});
    blocks.push(match part {
        Some(part) => with_cache_control(block, part),
        None => block,
    });
}

fn with_cache_control(mut block: Value, part: &Value) -> Value {
    if let Some(cc) = part.get("cache_control").filter(|v| !v.is_null()) {
        block["cache_control"] = cc.clone();
    }
    block
}

fn part_type<'a>(part: &'a Value, path: &str) -> Result<&'a str, ProxyError> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.type"), "each content part needs a `type`"))
}

fn part_text<'a>(part: &'a Value, path: &str) -> Result<&'a str, ProxyError> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.text"), "a text part needs a string `text`"))
}

fn required_str<'a>(obj: &'a Value, key: &str, at: &str) -> Result<&'a str, ProxyError> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.{key}"), format!("`{key}` must be a string")))
}

fn unsupported_part(path: &str, kind: &str, allowed: &str) -> ProxyError {
    invalid(
        format!("{path}.type"),
        format!(
            "content part type `{}` is not supported here by Anthropic models; use {allowed}",
            crate::error::bounded(kind, 64)
        ),
    )
}

fn content_shape(at: &str) -> ProxyError {
    invalid(
        format!("{at}.content"),
        "`content` must be a string or an array of content parts",
    )
}

fn stop(value: &Value) -> Result<Option<Vec<String>>, ProxyError> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("stop", "`stop` must be a string or an array of strings"))?,
        _ => {
            return Err(invalid(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    Ok((!list.is_empty()).then_some(list))
}

fn count(key: &str, value: &Value) -> Result<u64, ProxyError> {
    value
        .as_u64()
        .ok_or_else(|| invalid(key, format!("`{key}` must be a non-negative integer")))
}

fn number(key: &str, value: &Value) -> Result<Number, ProxyError> {
    match value {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(invalid(key, format!("`{key}` must be a number"))),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, ProxyError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(key, format!("`{key}` must be a boolean")))
}

fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str, ProxyError> {
    value
        .as_str()
        .ok_or_else(|| invalid(key, format!("`{key}` must be a string")))
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn convert_with(body: Value, opts: &MessagesOptions) -> Result<Value, ProxyError> {
        let req = ChatRequest::parse(body.to_string().as_bytes(), None).unwrap();
        request(&req, "claude-up", opts).map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn convert(body: Value) -> Value {
        convert_with(body, &MessagesOptions::default()).unwrap()
    }

    /// The 400's (param, message).
    fn refuse(body: Value) -> (String, String) {
        match convert_with(body, &MessagesOptions::default()) {
            Err(ProxyError::InvalidRequest { message, param }) => (param.unwrap(), message),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn a_plain_request_gets_the_default_max_tokens() {
        let out = convert(json!({"model": "claude", "messages": [user("hi")]}));
        assert_eq!(
            out,
            json!({"model": "claude-up", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        );
        let opts = MessagesOptions {
            default_max_tokens: 77,
            ..MessagesOptions::default()
        };
        let out = convert_with(json!({"model": "c", "messages": [user("hi")]}), &opts).unwrap();
        assert_eq!(out["max_tokens"], 77);
    }

    #[test]
    fn system_and_developer_messages_become_the_top_level_system() {
        let out = convert(json!({"model": "c", "messages": [
            {"role": "system", "content": "be brief"},
            user("hi"),
            {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
            {"role": "assistant", "content": "hello"},
        ]}));
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "no emoji"}])
        );
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            ])
        );
    }

    #[test]
    fn consecutive_turns_of_one_role_are_merged() {
        let out = convert(json!({"model": "c", "messages": [
            user("one"), user("two"),
            {"role": "system", "content": "between"},
            user("three"),
            {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "one"}, {"type": "text", "text": "two"},
                    {"type": "text", "text": "three"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ])
        );
    }

    #[test]
    fn image_and_file_parts_become_image_and_document_blocks() {
        let out = convert(
            json!({"model": "c", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                {"type": "file", "file": {"file_data": "JVBERi0="}},
                {"type": "file", "file": {"file_id": "file_123"}},
            ]}]}),
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "title": "a.pdf",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
                {"type": "document",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
                {"type": "document", "source": {"type": "file", "file_id": "file_123"}},
            ])
        );
    }

    #[test]
    fn bad_parts_are_400s_that_name_the_part() {
        let part = |p: Value| json!({"model": "c", "messages": [user("x"), {"role": "user", "content": [p]}]});
        let (param, message) = refuse(part(
            json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
        ));
        assert_eq!(param, "messages[1].content[0].image_url.url");
        assert!(message.contains("http(s)"), "{message}");
        let (param, _) = refuse(part(
            json!({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}),
        ));
        assert_eq!(param, "messages[1].content[0].image_url.url");
        let (param, message) = refuse(part(json!({"type": "input_audio", "input_audio": {}})));
        assert_eq!(param, "messages[1].content[0].type");
        assert!(message.contains("input_audio"), "{message}");
        let (param, _) = refuse(part(json!({"type": "file", "file": {}})));
        assert_eq!(param, "messages[1].content[0].file");
        let (param, _) =
            refuse(json!({"model": "c", "messages": [{"role": "function", "content": "x"}]}));
        assert_eq!(param, "messages[0].role");
        let (param, _) =
            refuse(json!({"model": "c", "messages": [{"role": "system", "content": "x"}]}));
        assert_eq!(param, "messages");
    }

    #[test]
    fn tools_become_input_schemas() {
        let out = convert(json!({"model": "c", "messages": [user("x")], "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
             "strict": true}},
            {"type": "function", "function": {"name": "ping"}},
        ]}));
        assert_eq!(
            out["tools"],
            json!([
                {"name": "get_weather", "description": "Weather now",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
            ])
        );
        assert!(out.get("tool_choice").is_none());
        let (param, _) = refuse(json!({"model": "c", "messages": [user("x")],
            "tools": [{"type": "custom", "custom": {"name": "x"}}]}));
        assert_eq!(param, "tools[0].type");
        let (param, _) = refuse(json!({"model": "c", "messages": [user("x")],
            "tools": [{"type": "function", "function": {"name": RESPONSE_TOOL}}]}));
        assert_eq!(param, "tools[0].function.name");
    }

    fn with_tools(extra: Value) -> Value {
        let mut body = json!({"model": "c", "messages": [user("x")],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        convert(body)
    }

    #[test]
    fn tool_choice_maps_to_anthropics_names() {
        for (openai, anthropic) in [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ] {
            assert_eq!(
                with_tools(json!({"tool_choice": openai}))["tool_choice"],
                anthropic
            );
        }
        // Without tools a choice means nothing, and Anthropic would refuse it.
        let out =
            convert(json!({"model": "c", "messages": [user("x")], "tool_choice": "required"}));
        assert!(out.get("tool_choice").is_none());
        let (param, _) = refuse(json!({"model": "c", "messages": [user("x")],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}));
        assert_eq!(param, "tool_choice");
    }

    #[test]
    fn parallel_tool_calls_false_disables_parallel_tool_use() {
        let out = with_tools(json!({"parallel_tool_calls": false}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let out = with_tools(json!({"parallel_tool_calls": false, "tool_choice": "required"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let out = with_tools(json!({"parallel_tool_calls": false, "tool_choice": "none"}));
        assert_eq!(out["tool_choice"], json!({"type": "none"}));
        let out = with_tools(json!({"parallel_tool_calls": true}));
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn assistant_tool_calls_become_tool_use_and_tool_messages_tool_results() {
        let out = convert(json!({"model": "c", "messages": [
            user("weather in Paris and Rome?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "tool", "tool_call_id": "call_3", "content": ""},
            user("thanks"),
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                    {"type": "tool_use", "id": "call_3", "name": "now", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "tool_result", "tool_use_id": "call_3"},
                    {"type": "text", "text": "thanks"},
                ]},
            ])
        );
    }

    #[test]
    fn invalid_tool_call_arguments_are_a_400_at_their_path() {
        let call = |args: &str| {
            json!({"model": "c", "messages": [user("x"),
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": args}}]}]})
        };
        let (param, message) = refuse(call("{\"city\": "));
        assert_eq!(param, "messages[1].tool_calls[1].function.arguments");
        assert!(message.contains("not valid JSON"), "{message}");
        let (param, message) = refuse(call("[1, 2]"));
        assert_eq!(param, "messages[1].tool_calls[1].function.arguments");
        assert!(message.contains("JSON object"), "{message}");
        let (param, _) = refuse(json!({"model": "c", "messages": [user("x"),
            {"role": "tool", "content": "r"}]}));
        assert_eq!(param, "messages[1].tool_call_id");
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let out = convert(json!({"model": "c", "messages": [user("x")], "max_tokens": 10}));
        assert_eq!(out["max_tokens"], 10);
        let out = convert(json!({"model": "c", "messages": [user("x")],
            "max_completion_tokens": 20, "max_tokens": 10}));
        assert_eq!(out["max_tokens"], 20);
    }

    #[test]
    fn stop_becomes_stop_sequences() {
        let out = convert(json!({"model": "c", "messages": [user("x")], "stop": "END"}));
        assert_eq!(out["stop_sequences"], json!(["END"]));
        let out = convert(json!({"model": "c", "messages": [user("x")], "stop": ["a", "b"]}));
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        let out = convert(json!({"model": "c", "messages": [user("x")], "stop": []}));
        assert!(out.get("stop_sequences").is_none());
    }

    #[test]
    fn sampling_user_and_stream_pass_under_anthropics_names() {
        let out = convert(
            json!({"model": "c", "messages": [user("x")], "temperature": 0.25,
            "top_p": 0.9, "user": "u-17", "stream": true,
            "stream_options": {"include_usage": true}}),
        );
        assert_eq!(
            out,
            json!({"model": "claude-up", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                   "temperature": 0.25, "top_p": 0.9, "metadata": {"user_id": "u-17"},
                   "stream": true})
        );
        let out =
            convert(json!({"model": "c", "messages": [user("x")], "safety_identifier": "h-1"}));
        assert_eq!(out["metadata"], json!({"user_id": "h-1"}));
        let out = convert(json!({"model": "c", "messages": [user("x")], "stream": false}));
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn parameters_without_an_equivalent_and_gateway_fields_are_dropped() {
        let out = convert(json!({"model": "c", "messages": [user("x")],
            "frequency_penalty": 0.5, "presence_penalty": 0.1, "seed": 7, "logprobs": true,
            "top_logprobs": 2, "logit_bias": {"1": 2}, "n": 1, "store": true,
            "metadata": {"k": "v"}, "response_format": {"type": "json_object"},
            "trace": {"trace_id": "t"}, "session_id": "s", "x_vendor": 1}));
        assert_eq!(
            out,
            json!({"model": "claude-up", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})
        );
    }

    #[test]
    fn more_than_one_choice_is_a_400_naming_n() {
        let (param, message) = refuse(json!({"model": "c", "messages": [user("x")], "n": 2}));
        assert_eq!(param, "n");
        assert!(message.contains("one choice"), "{message}");
        let (param, _) = refuse(json!({"model": "c", "messages": [user("x")], "functions": []}));
        assert_eq!(param, "functions");
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
        let opts = MessagesOptions {
            default_max_tokens: 4096,
            thinking_budget_low: 1024,
            thinking_budget_medium: 3000,
            thinking_budget_high: 8000,
        };
        let run = |extra: Value| {
            let mut body = json!({"model": "c", "messages": [user("x")]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            convert_with(body, &opts).unwrap()
        };
        let out = run(json!({"reasoning_effort": "low"}));
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        assert_eq!(out["max_tokens"], 4096);
        let out = run(json!({"reasoning_effort": "medium", "max_tokens": 5000}));
        assert_eq!(out["thinking"]["budget_tokens"], 3000);
        assert_eq!(out["max_tokens"], 5000);
        // Below the budget: the answer keeps its own allowance on top of the thinking.
        let out = run(json!({"reasoning_effort": "high", "max_completion_tokens": 500}));
        assert_eq!(out["thinking"]["budget_tokens"], 8000);
        assert_eq!(out["max_tokens"], 8500);
        let out = run(json!({"reasoning_effort": "low", "temperature": 0.2, "top_p": 0.5}));
        assert!(
            out.get("temperature").is_none() && out.get("top_p").is_none(),
            "{out}"
        );
        let out = run(json!({"reasoning_effort": "minimal"}));
        assert_eq!(out["thinking"]["budget_tokens"], 1024);
        let out = run(json!({"reasoning_effort": "none"}));
        assert!(out.get("thinking").is_none());
        let (param, _) =
            refuse(json!({"model": "c", "messages": [user("x")], "reasoning_effort": "huge"}));
        assert_eq!(param, "reasoning_effort");
    }

    #[test]
    fn a_tool_loop_goes_on_without_thinking() {
        let body = |last: Value| {
            json!({"model": "c", "reasoning_effort": "high", "max_tokens": 100,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [user("x"), {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                last]})
        };
        let out = convert(body(
            json!({"role": "tool", "tool_call_id": "a", "content": "r"}),
        ));
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(out["max_tokens"], 100);
        // Once the model has answered in text, the next turn thinks again.
        let mut b = body(json!({"role": "tool", "tool_call_id": "a", "content": "r"}));
        b["messages"].as_array_mut().unwrap().extend([
            json!({"role": "assistant", "content": "done"}),
            user("and now?"),
        ]);
        let out = convert(b);
        assert_eq!(out["thinking"]["budget_tokens"], 16384);
    }

    #[test]
    fn a_json_schema_format_becomes_a_forced_answer_tool() {
        let format = json!({"type": "json_schema", "json_schema": {"name": "city",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}, "strict": true}});
        let out =
            convert(json!({"model": "c", "messages": [user("x")], "response_format": format}));
        assert_eq!(
            out["tools"],
            json!([{"name": RESPONSE_TOOL,
                    "description": "Give the final answer as the input of this tool: a `city` object that follows its schema.",
                    "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": RESPONSE_TOOL})
        );

        // Beside the client's tools the model must call one: a real tool or the answer.
        let out = with_tools(json!({"response_format": format}));
        assert_eq!(out["tools"][0]["name"], "f");
        assert_eq!(out["tools"][1]["name"], RESPONSE_TOOL);
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        let out = with_tools(json!({"response_format": format, "tool_choice": "none"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": RESPONSE_TOOL})
        );
        let out = with_tools(json!({"response_format": format,
            "tool_choice": {"type": "function", "function": {"name": "f"}}}));
        assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "f"}));

        let (param, _) = refuse(json!({"model": "c", "messages": [user("x")],
            "response_format": format, "reasoning_effort": "low"}));
        assert_eq!(param, "response_format");
    }

    proptest::proptest! {
        /// Whatever the client sends, the converter answers a body or a 400, never a panic.
        #[test]
        fn never_panics_on_arbitrary_messages(
            roles in proptest::collection::vec(proptest::sample::select(vec!["system", "user", "assistant", "tool", "x"]), 0..6),
            texts in proptest::collection::vec(".{0,8}", 0..6),
            args in ".{0,12}",
        ) {
            let messages: Vec<Value> = roles.iter().zip(texts.iter().chain(std::iter::repeat(&String::new())))
                .map(|(r, t)| json!({"role": r, "content": t, "tool_call_id": "c",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}))
                .collect();
            let body = json!({"model": "c", "messages": messages, "stop": texts});
            if let Ok(req) = ChatRequest::parse(body.to_string().as_bytes(), None) {
                if let Ok(out) = request(&req, "up", &MessagesOptions::default()) {
                    let v: Value = serde_json::from_slice(&out).unwrap();
                    proptest::prop_assert!(v["max_tokens"].as_u64().is_some());
                }
            }
        }
    }
}
