//! A whole Anthropic message as a `chat.completion`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{finish_reason, AnthropicUsage, ChatUsage, RESPONSE_TOOL};

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// The blocks a chat client can be shown; server-tool blocks and the like are left out.
/// (`input` is a `Value`: a tagged enum buffers its fields, which a `RawValue` cannot read.)
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: String,
}

/// The `chat.completion` for an Anthropic message body; `created` is the gateway's clock, as
/// Anthropic sends none. The error says why the body is not a message.
pub fn response(body: &[u8], created: u64) -> Result<Vec<u8>, String> {
    let message: Message = serde_json::from_slice(body)
        .map_err(|e| format!("the provider's answer is not an Anthropic message: {e}"))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut answer: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block {
            Block::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            Block::Thinking { thinking } => {
                reasoning.get_or_insert_with(String::new).push_str(thinking)
            }
            // The json_schema answer: its input is the content, and any text around it
            // would only stop the client parsing it.
            Block::ToolUse { name, input, .. } if name == RESPONSE_TOOL => {
                answer = Some(input.to_string())
            }
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function",
                function: Function {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Other => {}
        }
    }
    let answered_by_tool = answer.is_some() && tool_calls.is_empty();
    if let Some(json) = answer {
        text = Some(json);
    }
    let content = match text {
        Some(t) => Some(t),
        None if tool_calls.is_empty() => Some(String::new()),
        None => None,
    };
    let completion = Completion {
        id: &message.id,
        object: "chat.completion",
        created,
        model: &message.model,
        choices: [Choice {
            index: 0,
            message: ChatMessage {
                role: "assistant",
                content,
                reasoning_content: reasoning,
                tool_calls,
            },
            logprobs: None,
            finish_reason: message
                .stop_reason
                .as_deref()
                .map(|r| finish_reason(r, answered_by_tool)),
        }],
        usage: message.usage.chat(),
    };
    serde_json::to_vec(&completion).map_err(|e| e.to_string())
}
