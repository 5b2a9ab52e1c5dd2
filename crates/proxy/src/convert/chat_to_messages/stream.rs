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
//! nothing to the client. The [`RESPONSE_TOOL`] block's input streams as `delta.content`. The usage chunk is
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
    /// Anthropic's block index → what its deltas are, for the blocks open now (Anthropic
    /// streams one at a time; at most [`MAX_OPEN_BLOCKS`] are held).
    blocks: Vec<(u64, BlockKind)>,
    /// OpenAI's `index` of the next tool call: the tool blocks seen so far.
    tool_calls: u32,
    answered_by_tool: bool,
    usage: AnthropicUsage,
    state: State,
}

/// Blocks started and not stopped that the converter remembers: a provider that never stops
/// its blocks cannot grow the converter without bound.
const MAX_OPEN_BLOCKS: usize = 64;

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
        // Anthropic starts a tool block with `input: {}` and streams the input as deltas; an
        // input given whole at the start is passed on as the first fragment.
        let initial_input = block
            .get("input")
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            .map(Value::to_string);
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
                if let Some(json) = &initial_input {
                    let delta = Delta {
                        content: Some(json),
                        ..Delta::default()
                    };
                    self.delta(delta, None, out);
                }
                BlockKind::Answer
            }
            Some("tool_use") => {
                let n = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                let call = ToolCallDelta {
                    index: n,
                    id: Some(text_of("id").unwrap_or_default()),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(text_of("name").unwrap_or_default()),
                        arguments: initial_input.as_deref().unwrap_or(""),
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
        if self.blocks.len() >= MAX_OPEN_BLOCKS {
            self.blocks.remove(0);
        }
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
            "content_block_stop" => {
                if let Some(i) = index {
                    self.blocks.retain(|(b, _)| *b != i);
                }
            }
            // ping, and event types newer than this code.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::convert::adapt;
    use crate::providers::{BodyStream, UpstreamError};

    const CREATED: u64 = 1_700_000_000;

    fn sse(name: &str, data: &Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    /// The `data` of each event the converter wrote, JSON parsed; `[DONE]` as a string.
    fn datas(out: &[u8]) -> Vec<Value> {
        let mut splitter = crate::stream::sse::SseSplitter::default();
        let events = splitter.push(out).unwrap();
        assert!(
            splitter.remainder().is_empty(),
            "only whole events are written"
        );
        events
            .iter()
            .map(|e| {
                let data = event_data(e).unwrap();
                if data == b"[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_slice(&data).unwrap()
                }
            })
            .collect()
    }

    /// Feeds each event alone; returns what each one produced.
    fn each(events: &[String]) -> Vec<Vec<Value>> {
        let mut conv = MessagesToChatStream::new(CREATED);
        events
            .iter()
            .map(|e| {
                let mut out = BytesMut::new();
                conv.event(e.as_bytes(), &mut out);
                datas(&out)
            })
            .collect()
    }

    fn start() -> String {
        sse(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 100,
                          "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
        )
    }

    fn block_start(index: u64, block: Value) -> String {
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        )
    }

    fn delta(index: u64, delta: Value) -> String {
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    fn text(index: u64, t: &str) -> String {
        delta(index, json!({"type": "text_delta", "text": t}))
    }

    fn block_stop(index: u64) -> String {
        sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        )
    }

    fn message_delta(stop_reason: &str, output_tokens: u64) -> String {
        sse(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                    "usage": {"output_tokens": output_tokens}}),
        )
    }

    fn stop() -> String {
        sse("message_stop", &json!({"type": "message_stop"}))
    }

    fn ping() -> String {
        sse("ping", &json!({"type": "ping"}))
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": CREATED,
               "model": "claude-sonnet-4-5",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    fn usage_chunk(usage: Value) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": CREATED,
               "model": "claude-sonnet-4-5", "choices": [], "usage": usage})
    }

    /// A recorded Anthropic stream: a ping, text, a tool call streamed in fragments, the
    /// stop reason and usage; then each event's chunks, in order.
    #[test]
    fn a_recorded_stream_converts_chunk_by_chunk() {
        let recorded = [
            start(),
            block_start(0, json!({"type": "text", "text": ""})),
            ping(),
            text(0, "Let me look"),
            text(0, " that up."),
            block_stop(0),
            block_start(
                1,
                json!({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}),
            ),
            delta(1, json!({"type": "input_json_delta", "partial_json": ""})),
            delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}),
            ),
            delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "ris\"}"}),
            ),
            block_stop(1),
            message_delta("tool_use", 42),
            stop(),
        ];
        let got = each(&recorded);
        let tool = |call: Value| chunk(json!({"tool_calls": [call]}), Value::Null);
        let want: Vec<Vec<Value>> = vec![
            vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )],
            vec![],
            vec![],
            vec![chunk(json!({"content": "Let me look"}), Value::Null)],
            vec![chunk(json!({"content": " that up."}), Value::Null)],
            vec![],
            vec![tool(
                json!({"index": 0, "id": "toolu_01", "type": "function",
                             "function": {"name": "get_weather", "arguments": ""}}),
            )],
            vec![],
            vec![tool(
                json!({"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}),
            )],
            vec![tool(
                json!({"index": 0, "function": {"arguments": "ris\"}"}}),
            )],
            vec![],
            vec![chunk(json!({}), json!("tool_calls"))],
            vec![
                usage_chunk(json!({"prompt_tokens": 125, "completion_tokens": 42,
                    "total_tokens": 167, "prompt_tokens_details": {"cached_tokens": 100},
                    "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0})),
                json!("[DONE]"),
            ],
        ];
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "event {i}: {}", recorded[i]);
        }
    }

    #[test]
    fn tool_calls_get_stable_indexes_across_text_and_thinking() {
        let got: Vec<Value> = each(&[
            start(),
            block_start(0, json!({"type": "thinking", "thinking": ""})),
            delta(
                0,
                json!({"type": "thinking_delta", "thinking": "Two cities."}),
            ),
            delta(
                0,
                json!({"type": "signature_delta", "signature": "EqQBCgIYAh"}),
            ),
            block_stop(0),
            block_start(
                1,
                json!({"type": "tool_use", "id": "t_a", "name": "w", "input": {}}),
            ),
            block_start(2, json!({"type": "text", "text": "and "})),
            block_start(
                3,
                json!({"type": "tool_use", "id": "t_b", "name": "w", "input": {}}),
            ),
            delta(
                3,
                json!({"type": "input_json_delta", "partial_json": "{\"c\":2}"}),
            ),
            delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "{\"c\":1}"}),
            ),
        ])
        .concat();
        let deltas: Vec<&Value> = got.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(
            deltas,
            [
                &json!({"role": "assistant", "content": ""}),
                &json!({"reasoning_content": "Two cities."}),
                &json!({"tool_calls": [{"index": 0, "id": "t_a", "type": "function",
                                        "function": {"name": "w", "arguments": ""}}]}),
                &json!({"content": "and "}),
                &json!({"tool_calls": [{"index": 1, "id": "t_b", "type": "function",
                                        "function": {"name": "w", "arguments": ""}}]}),
                &json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"c\":2}"}}]}),
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"c\":1}"}}]}),
            ]
        );
    }

    #[test]
    fn a_tool_input_given_at_the_start_is_the_first_fragment() {
        let got = each(&[
            start(),
            block_start(
                0,
                json!({"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}),
            ),
            block_start(
                1,
                json!({"type": "tool_use", "id": "r", "name": RESPONSE_TOOL, "input": {"b": 2}}),
            ),
        ]);
        assert_eq!(
            got[1][0]["choices"][0]["delta"]["tool_calls"][0]["function"],
            json!({"name": "f", "arguments": "{\"a\":1}"})
        );
        assert_eq!(
            got[2][0]["choices"][0]["delta"],
            json!({"content": "{\"b\":2}"})
        );
    }

    #[test]
    fn only_open_blocks_are_remembered() {
        let mut events = vec![start()];
        for i in 0..1000 {
            events.push(block_start(i, json!({"type": "text", "text": ""})));
            events.push(block_stop(i));
        }
        for i in 1000..1100 {
            events.push(block_start(i, json!({"type": "text", "text": ""})));
        }
        let mut conv = MessagesToChatStream::new(CREATED);
        let mut out = BytesMut::new();
        for e in &events {
            conv.event(e.as_bytes(), &mut out);
        }
        assert_eq!(conv.blocks.len(), MAX_OPEN_BLOCKS);
        out.clear();
        conv.event(text(1099, "still open").as_bytes(), &mut out);
        conv.event(text(999, "stopped").as_bytes(), &mut out);
        let got = datas(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["choices"][0]["delta"]["content"], "still open");
    }

    #[test]
    fn every_stop_reason_finishes_the_choice() {
        for (reason, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            let got = each(&[start(), message_delta(reason, 3)]);
            assert_eq!(got[1], vec![chunk(json!({}), json!(finish))], "{reason}");
        }
    }

    #[test]
    fn the_answer_tool_streams_as_content_and_finishes_as_stop() {
        let got = each(&[
            start(),
            block_start(
                0,
                json!({"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {}}),
            ),
            delta(
                0,
                json!({"type": "input_json_delta", "partial_json": "{\"name\":"}),
            ),
            delta(
                0,
                json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"}),
            ),
            message_delta("tool_use", 9),
        ]);
        assert_eq!(got[1], Vec::<Value>::new());
        assert_eq!(
            got[2],
            vec![chunk(json!({"content": "{\"name\":"}), Value::Null)]
        );
        assert_eq!(
            got[3],
            vec![chunk(json!({"content": "\"Paris\"}"}), Value::Null)]
        );
        assert_eq!(got[4], vec![chunk(json!({}), json!("stop"))]);
    }

    #[test]
    fn usage_takes_message_deltas_cumulative_counts() {
        let mut later = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 50, "input_tokens": 30, "cache_creation_input_tokens": 7,
                      "output_tokens_details": {"thinking_tokens": 20}}});
        let got = each(&[start(), sse("message_delta", &later), stop()]);
        assert_eq!(
            got[2][0]["usage"],
            json!({"prompt_tokens": 137, "completion_tokens": 50, "total_tokens": 187,
                   "prompt_tokens_details": {"cached_tokens": 100},
                   "completion_tokens_details": {"reasoning_tokens": 20},
                   "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7})
        );
        // A usage of the wrong shape is ignored, not fatal.
        later["usage"] = json!("lots");
        let got = each(&[start(), sse("message_delta", &later), stop()]);
        assert_eq!(got[2][0]["usage"]["prompt_tokens"], 125);
    }

    #[test]
    fn an_error_event_ends_the_stream_with_an_openai_error() {
        let error = sse(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        let got = each(&[start(), text(0, "lost"), error, text(0, "after"), stop()]);
        assert_eq!(
            got[2],
            vec![
                json!({"error": {"message": "Overloaded", "type": "api_error", "param": null,
                                  "code": "overloaded"}})
            ]
        );
        assert!(
            got[3].is_empty() && got[4].is_empty(),
            "nothing after the error"
        );
    }

    #[test]
    fn a_stream_cut_before_message_stop_ends_with_an_error_not_done() {
        let mut conv = MessagesToChatStream::new(CREATED);
        let mut out = BytesMut::new();
        conv.event(start().as_bytes(), &mut out);
        out.clear();
        conv.end(&mut out);
        let got = datas(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["error"]["type"], "api_error");

        let mut conv = MessagesToChatStream::new(CREATED);
        for e in [start(), stop()] {
            conv.event(e.as_bytes(), &mut out);
        }
        out.clear();
        conv.end(&mut out);
        assert!(out.is_empty(), "a finished stream needs nothing more");
    }

    #[test]
    fn keep_alives_and_unknown_events_give_nothing_but_bad_json_is_an_error() {
        let got = each(&[
            ping(),
            ": comment\n\n".into(),
            sse(
                "future_event",
                &json!({"type": "future_event", "message": "x", "index": "y"}),
            ),
            start(),
            delta(7, json!({"type": "text_delta", "text": "no such block"})),
            block_start(
                0,
                json!({"type": "server_tool_use", "id": "s", "name": "web_search"}),
            ),
            delta(0, json!({"type": "input_json_delta", "partial_json": "{}"})),
            delta(0, json!({"type": "citations_delta", "citation": {}})),
        ]);
        assert!(got[..3].iter().all(Vec::is_empty));
        assert!(got[4..].iter().all(Vec::is_empty));
        let got = each(&["data: {not json\n\n".into(), start()]);
        assert_eq!(got[0][0]["error"]["type"], "api_error");
        assert!(got[1].is_empty());
    }

    #[test]
    fn the_first_chunk_says_assistant_even_without_message_start() {
        let got = each(&[
            block_start(0, json!({"type": "text", "text": "Hi"})),
            text(0, " there"),
        ]);
        assert_eq!(
            got[0][0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hi"})
        );
        assert_eq!(
            got[1][0]["choices"][0]["delta"],
            json!({"content": " there"})
        );
    }

    fn body(chunks: Vec<Vec<u8>>) -> BodyStream {
        Box::pin(futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, UpstreamError>(Bytes::from(c))),
        ))
    }

    fn through_adapt(chunks: Vec<Vec<u8>>) -> Vec<Result<Bytes, UpstreamError>> {
        let stream = adapt::events(body(chunks), 1 << 16, MessagesToChatStream::new(CREATED));
        futures::executor::block_on(stream.collect::<Vec<_>>())
    }

    /// A valid stream of `pieces` of text, with a tool call between two text blocks.
    fn stream_of(pieces: &[String]) -> Vec<u8> {
        let half = pieces.len() / 2;
        let mut events = vec![start(), block_start(0, json!({"type": "text", "text": ""}))];
        events.extend(pieces[..half].iter().map(|p| text(0, p)));
        events.push(block_stop(0));
        events.push(block_start(
            1,
            json!({"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        ));
        events.push(delta(
            1,
            json!({"type": "input_json_delta", "partial_json": "{}"}),
        ));
        events.push(ping());
        events.push(block_start(2, json!({"type": "text", "text": ""})));
        events.extend(pieces[half..].iter().map(|p| text(2, p)));
        events.push(message_delta("end_turn", 5));
        events.push(stop());
        events.concat().into_bytes()
    }

    fn cut(bytes: &[u8], cuts: Vec<usize>) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            chunks.push(bytes[prev..p].to_vec());
            prev = p;
        }
        chunks
    }

    proptest! {
        /// However the upstream cuts a valid stream, the client reads its text whole and in
        /// order, then the usage and `[DONE]`.
        #[test]
        fn any_chunking_keeps_the_text_in_order(
            pieces in prop::collection::vec("(\\PC|\n|\"|\\\\){0,12}", 1..12),
            cuts in prop::collection::vec(any::<usize>(), 0..24),
        ) {
            let source = stream_of(&pieces);
            let out: Vec<u8> = through_adapt(cut(&source, cuts))
                .into_iter()
                .map(|r| r.unwrap())
                .flat_map(|b| b.to_vec())
                .collect();
            let chunks = datas(&out);
            let content: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            prop_assert_eq!(content, pieces.concat());
            prop_assert_eq!(chunks.last().unwrap(), &json!("[DONE]"));
            prop_assert_eq!(&chunks[chunks.len() - 2]["usage"]["completion_tokens"], &json!(5));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            // Whatever came in, only whole events of JSON (or `[DONE]`) go out.
            for bytes in through_adapt(chunks).into_iter().flatten() {
                datas(&bytes);
            }
        }

        /// Valid events with arbitrary field values: fragments of a real stream shuffled and
        /// mangled still never panic.
        #[test]
        fn mangled_events_never_panic(
            picks in prop::collection::vec((0usize..10, prop_oneof![0u64..8, Just(u64::MAX), any::<u64>()], "\\PC{0,6}"), 0..16),
        ) {
            let events: Vec<String> = picks.iter().map(|(kind, n, s)| match kind {
                0 => start(),
                1 => block_start(*n % 4, json!({"type": "tool_use", "id": s, "name": s})),
                2 => block_start(*n % 4, json!({"type": s, "text": n})),
                3 => delta(*n % 4, json!({"type": "input_json_delta", "partial_json": s})),
                4 => delta(*n, json!({"type": "text_delta", "text": n})),
                5 => message_delta(s, *n),
                6 => sse("error", &json!({"type": "error", "error": s})),
                7 => stop(),
                8 => sse("x", &json!({"type": "message_start", "message": s})),
                _ => format!("data: {s}\n\n"),
            }).collect();
            // Opened and closed properly, so the usage chunk is written from whatever counts came.
            let events = [vec![start()], events, vec![stop()]].concat();
            let _ = through_adapt(events.into_iter().map(String::into_bytes).collect());
        }
    }
}
