//! The chat-completions answer as the inbound converters read it: the whole response, the
//! stream's chunks and the usage both carry, decoded leniently (unknown fields ignored,
//! strings borrowed where they have no escapes).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The provider's answer is not the chat completion the converter expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the provider's answer is not a chat completion: {0}")]
pub struct InvalidUpstream(pub String);

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Completion {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Option<Vec<Choice>>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<Function>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Function {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// Chat's `usage`: `prompt_tokens` is the whole input, cached tokens a part of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    pub fn input(&self) -> u64 {
        self.prompt_tokens.unwrap_or(0)
    }
    pub fn output(&self) -> u64 {
        self.completion_tokens.unwrap_or(0)
    }
    /// Cached input, never more than the input it is part of.
    pub fn cached(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.input())
    }
    pub fn reasoning(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.total_tokens
            .unwrap_or_else(|| self.input().saturating_add(self.output()))
    }
}

/// One streamed chunk. Text fragments borrow from the event when they have no escapes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// A provider's in-stream error: `{"error":{"message","type","code"}}`.
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ToolCallDelta<'a> {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// Which call a streamed tool-call fragment belongs to. Chat numbers calls by `index`; some
/// servers leave it out and send each call whole with its id (Gemini's compatible endpoint),
/// so without an index a new id is a new call and a fragment without an id continues the last.
#[derive(Debug, Default)]
pub(crate) struct CallIndex {
    last: Option<(u64, Option<String>)>,
    max: Option<u64>,
}

impl CallIndex {
    pub fn of(&mut self, index: Option<u64>, id: Option<&str>) -> u64 {
        let index = match (index, &self.last, id) {
            (Some(index), _, _) => index,
            (None, Some((last, _)), None) => *last,
            (None, Some((last, Some(last_id))), Some(id)) if last_id == id => *last,
            (None, _, _) => self.max.map_or(0, |m| m.saturating_add(1)),
        };
        self.max = Some(self.max.map_or(index, |m| m.max(index)));
        let same = matches!(&self.last, Some((last, _)) if *last == index);
        if !same || id.is_some() {
            self.last = Some((index, id.map(str::to_owned)));
        }
        index
    }
}

/// What one provider event holds for a converter.
pub(crate) enum Event<'a> {
    Chunk(Chunk<'a>),
    Done,
    /// A comment, a keep-alive or data that is not a chunk: nothing to convert.
    Skip,
}

pub(crate) fn parse_event(data: &[u8]) -> Event<'_> {
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return Event::Done;
    }
    match serde_json::from_slice::<Chunk<'_>>(trimmed) {
        Ok(chunk) => Event::Chunk(chunk),
        Err(_) => Event::Skip,
    }
}

/// The message and type of a provider's OpenAI-shaped error object (or bare message).
pub(crate) fn error_fields(error: &Value) -> (String, Option<String>, Option<String>) {
    match error {
        Value::String(message) => (message.clone(), None, None),
        Value::Object(map) => {
            let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
            let code = match map.get("code") {
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => text("code"),
            };
            (
                text("message").unwrap_or_else(|| "the provider reported an error".to_owned()),
                text("type"),
                code,
            )
        }
        _ => ("the provider reported an error".to_owned(), None, None),
    }
}

/// Appends `event: {name}` and `data: {json}` and the blank line. Serializing plain structs
/// of strings and numbers does not fail; if it ever did, the event is left out whole.
pub(crate) fn write_event(out: &mut BytesMut, name: &str, data: &impl Serialize) {
    let start = out.len();
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(out.writer(), data).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing;
