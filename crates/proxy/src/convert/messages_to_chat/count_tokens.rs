//! `POST /v1/messages/count_tokens` for a provider that cannot count: an estimate.
//!
//! The estimate is a quarter of the characters of all the text the model would read (system,
//! every text block, tool calls' inputs and results, and each tool's name, description and
//! schema as JSON), rounded up, plus [`IMAGE_TOKENS`] per image or document, whose size the
//! request does not tell. A real tokenizer differs by model; clients use the figure to decide
//! when to compact, so it errs on no side in particular and is documented as an estimate.

use serde_json::{json, Value};

use super::invalid;
use crate::error::ProxyError;

/// Tokens counted per image or binary document: about what Anthropic charges a 1.15-megapixel
/// image, the size its docs recommend.
pub const IMAGE_TOKENS: u64 = 1600;

/// `{"input_tokens": N}` for a Messages request (`model` and `messages` required).
pub fn count_tokens(body: &[u8]) -> Result<Vec<u8>, ProxyError> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Err(ProxyError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            param: None,
        });
    };
    if !req.get("model").is_some_and(Value::is_string) {
        return Err(invalid("model: field required (a string)", "model"));
    }
    let Some(Value::Array(messages)) = req.get("messages") else {
        return Err(invalid("messages: field required (an array)", "messages"));
    };
    let mut tally = Tally::default();
    if let Some(system) = req.get("system") {
        tally.content(system);
    }
    for message in messages {
        if let Some(content) = message.get("content") {
            tally.content(content);
        }
    }
    if let Some(Value::Array(tools)) = req.get("tools") {
        for tool in tools {
            tally.json(tool);
        }
    }
    Ok(json!({"input_tokens": tally.tokens()})
        .to_string()
        .into_bytes())
}

#[derive(Default)]
struct Tally {
    chars: u64,
    images: u64,
}

impl Tally {
    fn tokens(&self) -> u64 {
        self.chars.div_ceil(4) + self.images * IMAGE_TOKENS
    }

    fn text(&mut self, s: &str) {
        self.chars += s.chars().count() as u64;
    }

    fn json(&mut self, v: &Value) {
        self.text(&v.to_string());
    }

    /// A string or an array of content blocks.
    fn content(&mut self, content: &Value) {
        match content {
            Value::String(s) => self.text(s),
            Value::Array(blocks) => blocks.iter().for_each(|b| self.block(b)),
            _ => {}
        }
    }

    fn block(&mut self, block: &Value) {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    self.text(t);
                }
            }
            Some("image") => self.images += 1,
            Some("document") => match block.pointer("/source/type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = block.pointer("/source/data").and_then(Value::as_str) {
                        self.text(t);
                    }
                }
                _ => self.images += 1,
            },
            Some("tool_use") => {
                if let Some(name) = block.get("name").and_then(Value::as_str) {
                    self.text(name);
                }
                if let Some(input) = block.get("input") {
                    self.json(input);
                }
            }
            Some("tool_result") => {
                if let Some(content) = block.get("content") {
                    self.content(content);
                }
            }
            Some("thinking") => {
                if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                    self.text(t);
                }
            }
            _ => {}
        }
    }
}
