//! A chat completion written as a Responses `response` object.
//!
//! - The id (`resp_…`) and the creation time are the caller's; item ids derive from the id
//!   (`msg_{id}`, `fc_{id}_{n}`), so a stored turn names its items the same on every replica.
//! - The message's text (or its refusal's text) is one `message` item with an `output_text`
//!   part, each tool call a `function_call` item (`call_id`, `name`, `arguments`), in that
//!   order. Chat's `reasoning_content` is not passed on: a `reasoning` item from a chat
//!   provider could not be sent back to it.
//! - `finish_reason: length` makes the response `incomplete` with
//!   `incomplete_details.reason = max_output_tokens` (`content_filter` likewise with
//!   `content_filter`); anything else is `completed`.
//! - Usage keeps chat's meaning: `input_tokens` includes the cached tokens
//!   (`input_tokens_details.cached_tokens`), `output_tokens` the reasoning tokens. A provider
//!   that reports none gets zeros: clients (the AI SDK) require the object, and the gateway's
//!   record reads usage from the provider's own answer, not from this.

use serde_json::{json, Map, Value};

use super::request::Echo;
use crate::convert::chat::{Completion, InvalidUpstream, Usage};

/// The `response` body, and its output items for the gateway to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub body: Vec<u8>,
    pub output_items: Vec<Value>,
}

/// Which response a converted answer becomes: its id and creation time (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub id: String,
    pub created_at: u64,
    pub echo: Echo,
}

pub fn response(chat: &[u8], turn: &Turn) -> Result<Output, InvalidUpstream> {
    let completion: Completion =
        serde_json::from_slice(chat).map_err(|e| InvalidUpstream(e.to_string()))?;
    let choice = completion
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| InvalidUpstream("it has no choices".into()))?;
    let message = choice.message.unwrap_or_default();
    let ending = Ending::of(choice.finish_reason.as_deref());

    let mut items = Vec::new();
    let text = match message.content {
        Some(Value::String(s)) => s,
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
        items.push(message_item(
            &item_id("msg", &turn.id, None),
            &text,
            ending.item_status(),
        ));
    }
    for (n, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let function = call.function.unwrap_or_default();
        items.push(function_call_item(
            &turn.id,
            n,
            &call.id.unwrap_or_else(|| format!("call_{n}")),
            &function.name.unwrap_or_default(),
            &function.arguments.unwrap_or_default(),
            "completed",
        ));
    }
    let body = envelope(
        turn,
        completion.model.as_deref(),
        ending.status(),
        ending.incomplete_details(),
        Value::Array(items.clone()),
        usage(&completion.usage.unwrap_or_default()),
        Value::Null,
    );
    let body = serde_json::to_vec(&body).map_err(|e| InvalidUpstream(e.to_string()))?;
    Ok(Output {
        body,
        output_items: items,
    })
}

/// How the answer ended, as Responses says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed,
    /// `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
}

impl Ending {
    pub fn of(finish: Option<&str>) -> Self {
        match finish {
            Some("length") => Ending::Incomplete("max_output_tokens"),
            Some("content_filter") => Ending::Incomplete("content_filter"),
            _ => Ending::Completed,
        }
    }
    pub fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
        }
    }
    pub fn item_status(self) -> &'static str {
        self.status()
    }
    pub fn incomplete_details(self) -> Value {
        match self {
            Ending::Completed => Value::Null,
            Ending::Incomplete(reason) => json!({"reason": reason}),
        }
    }
}

/// `msg_…`/`fc_…` ids from the response id, without its `resp_` prefix.
pub(crate) fn item_id(prefix: &str, response_id: &str, n: Option<usize>) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    match n {
        Some(n) => format!("{prefix}_{base}_{n}"),
        None => format!("{prefix}_{base}"),
    }
}

pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(crate) fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)],
    })
}

pub(crate) fn function_call_item(
    response_id: &str,
    n: usize,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "id": item_id("fc", response_id, Some(n)),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

pub(crate) fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input(),
        "input_tokens_details": {"cached_tokens": u.cached()},
        "output_tokens": u.output(),
        "output_tokens_details": {"reasoning_tokens": u.reasoning()},
        "total_tokens": u.total(),
    })
}

/// The `response` object around `output`, the request's settings echoed.
pub(crate) fn envelope(
    turn: &Turn,
    model: Option<&str>,
    status: &str,
    incomplete_details: Value,
    output: Value,
    usage: Value,
    error: Value,
) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), Value::from(turn.id.as_str()));
    body.insert("object".into(), Value::from("response"));
    body.insert("created_at".into(), Value::from(turn.created_at));
    body.insert("status".into(), Value::from(status));
    body.insert("error".into(), error);
    body.insert("incomplete_details".into(), incomplete_details);
    for (key, value) in &turn.echo.fields {
        body.insert(key.clone(), value.clone());
    }
    if let Some(model) = model.filter(|m| !m.is_empty()) {
        body.insert("model".into(), Value::from(model));
    }
    body.insert("output".into(), output);
    body.insert("usage".into(), usage);
    Value::Object(body)
}
