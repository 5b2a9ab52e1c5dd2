//! An Anthropic Messages event stream as chat-completion chunks, event by event.
//!
//! | Anthropic event | chunk(s) |
//! |---|---|
//! | `message_start` | `delta: {role: assistant, content: ""}`; id, model and input usage kept |
//! | `content_block_start` tool_use | the call's `index`, `id`, `type`, `function.name` |
//! | `content_block_delta` text / thinking | `delta.content` / `delta.reasoning_content` |
//! | `content_block_delta` input_json | `tool_calls[{index, function.arguments}]` |
//! | `message_delta` | `finish_reason`; output usage kept |
//! | `message_stop` | the usage chunk (`choices: []`), then `data: [DONE]` |
//! | `error` | `data: {"error": ...}`, and nothing after it |
//!
//! `ping`, `content_block_stop`, `signature_delta` and event types newer than this code give
//! nothing. The [`RESPONSE_TOOL`] block's input streams as `delta.content`. The usage chunk is
//! always written: the gateway's tee hides it from clients that did not ask for it.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::event as error_event;
use super::{finish_reason, AnthropicUsage, ChatUsage, RESPONSE_TOOL};
use crate::convert::StreamConverter;
use crate::stream::sse::event_data;

/// The converter for one stream. `created` is the gateway's clock, as Anthropic sends none.
#[derive(Debug)]
pub struct MessagesToChatStream {
    created: u64,
    id: String,
    model: String,
    role_sent: bool,
    /// Anthropic's block index → what its deltas are, for the blocks started so far.
    blocks: Vec<(u64, BlockKind)>,
    /// OpenAI's `index` of the next tool call: the tool blocks seen so far.
    tool_calls: u32,
    answered_by_tool: bool,
    usage: AnthropicUsage,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    Text,
    Thinking,
    /// A client tool, with its OpenAI `index`.
    Tool(u32),
    /// The json_schema answer: its input is the content.
    Answer,
    /// Server tools and the like: nothing a chat client reads.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Open,
    /// `[DONE]` or an error was written; later events are ignored.
    Closed,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ChatUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl MessagesToChatStream {
    pub fn new(created: u64) -> Self {
        Self {
            created,
            id: String::new(),
            model: String::new(),
            role_sent: false,
            blocks: Vec::new(),
            tool_calls: 0,
            answered_by_tool: false,
            usage: AnthropicUsage::default(),
            state: State::Open,
        }
    }

    fn block(&self, index: Option<u64>) -> Option<BlockKind> {
        let index = index?;
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, k)| *k)
    }

    /// One chunk with `delta`; the first one the client sees also says who speaks.
    fn delta(&mut self, mut delta: Delta<'_>, finish: Option<&'static str>, out: &mut BytesMut) {
        if !self.role_sent {
            self.role_sent = true;
            delta.role = Some("assistant");
        }
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }];
        self.write(&choices, None, out);
    }

    fn write(&self, choices: &[ChunkChoice<'_>], usage: Option<ChatUsage>, out: &mut BytesMut) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Structs of strings and numbers always serialise.
        let _ = serde_json::to_writer(out.writer(), &chunk);
        out.extend_from_slice(b"\n\n");
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        out.extend_from_slice(&error_event(kind, message));
        self.state = State::Closed;
    }

    fn content_block_start(
        &mut self,
        index: Option<u64>,
        block: Option<&Value>,
        out: &mut BytesMut,
    ) {
        let (Some(index), Some(block)) = (index, block) else {
            return;
        };
        let text_of = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let kind = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = text_of("text") {
                    self.delta(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                        out,
                    );
                }
                BlockKind::Text
            }
            Some("thinking") => {
                if let Some(text) = text_of("thinking") {
                    let delta = Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    };
                    self.delta(delta, None, out);
                }
                BlockKind::Thinking
            }
            Some("tool_use") if text_of("name") == Some(RESPONSE_TOOL) => {
                self.answered_by_tool = true;
                BlockKind::Answer
            }
            Some("tool_use") => {
                let n = self.tool_calls;
                self.tool_calls += 1;
                let call = ToolCallDelta {
                    index: n,
                    id: Some(text_of("id").unwrap_or_default()),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(text_of("name").unwrap_or_default()),
                        arguments: "",
                    },
                };
                self.delta(
                    Delta {
                        tool_calls: Some([call]),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
                BlockKind::Tool(n)
            }
            _ => BlockKind::Other,
        };
        self.blocks.push((index, kind));
    }

    fn content_block_delta(
        &mut self,
        index: Option<u64>,
        delta: Option<&Value>,
        out: &mut BytesMut,
    ) {
        let (Some(kind), Some(delta)) = (self.block(index), delta) else {
            return;
        };
        let field = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match (delta.get("type").and_then(Value::as_str), kind) {
            (Some("text_delta"), BlockKind::Text) => {
                if let Some(text) = field("text") {
                    self.delta(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            (Some("thinking_delta"), BlockKind::Thinking) => {
                if let Some(text) = field("thinking") {
                    let delta = Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    };
                    self.delta(delta, None, out);
                }
            }
            (Some("input_json_delta"), BlockKind::Tool(n)) => {
                if let Some(json) = field("partial_json") {
                    let call = ToolCallDelta {
                        index: n,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: json,
                        },
                    };
                    self.delta(
                        Delta {
                            tool_calls: Some([call]),
                            ..Delta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            (Some("input_json_delta"), BlockKind::Answer) => {
                if let Some(json) = field("partial_json") {
                    self.delta(
                        Delta {
                            content: Some(json),
                            ..Delta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            // signature_delta, citations_delta, and deltas of blocks a chat client cannot see.
            _ => {}
        }
    }
}

impl StreamConverter for MessagesToChatStream {
    fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        if self.state == State::Closed {
            return;
        }
        // Comments and data-less keep-alives carry nothing.
        let Some(data) = event_data(event) else {
            return;
        };
        // Each field is read where its event type uses it, so a field of an unexpected
        // shape in an event type this code does not know cannot fail the stream.
        let event: Value = match serde_json::from_slice(&data) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return self.fail(
                    "api_error",
                    "the provider sent a stream event that is not a JSON object",
                    out,
                )
            }
        };
        let index = event.get("index").and_then(Value::as_u64);
        let usage = |v: Option<&Value>| v.and_then(|u| AnthropicUsage::deserialize(u).ok());
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let message = event.get("message");
                if let Some(m) = message.and_then(|m| StartMessage::deserialize(m).ok()) {
                    self.id = m.id;
                    self.model = m.model;
                }
                if let Some(u) = usage(message.and_then(|m| m.get("usage"))) {
                    self.usage.update(u);
                }
                self.delta(
                    Delta {
                        content: Some(""),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            "content_block_start" => {
                self.content_block_start(index, event.get("content_block"), out)
            }
            "content_block_delta" => self.content_block_delta(index, event.get("delta"), out),
            "message_delta" => {
                if let Some(u) = usage(event.get("usage")) {
                    self.usage.update(u);
                }
                let reason = event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(reason) = reason {
                    let only_answer = self.answered_by_tool && self.tool_calls == 0;
                    let finish = finish_reason(reason, only_answer);
                    self.delta(Delta::default(), Some(finish), out);
                }
            }
            "message_stop" => {
                self.write(&[], Some(self.usage.chat()), out);
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.state = State::Closed;
            }
            "error" => {
                let error = event.get("error");
                let field = |k: &str| {
                    error
                        .and_then(|e| e.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                };
                let message = match field("message") {
                    "" => "the provider's stream failed",
                    m => m,
                };
                self.fail(field("type"), message, out);
            }
            // ping, content_block_stop, and event types newer than this code.
            _ => {}
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        // A stream that stops before message_stop is cut short, not finished: `[DONE]` would
        // tell the client the answer is whole.
        if self.state == State::Open {
            self.fail(
                "api_error",
                "the provider's stream ended before the message was complete",
                out,
            );
        }
    }
}
