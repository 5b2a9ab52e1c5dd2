//! A chat-completions stream written as Anthropic's event sequence:
//!
//! `message_start` (usage 0 until known), then per block `content_block_start`, its deltas
//! (`text_delta`, `input_json_delta`) and `content_block_stop`, one open block at a time (a
//! text block closes when a tool call starts, a tool call when the next starts), then one
//! `message_delta` with `stop_reason` and usage, and `message_stop`.
//!
//! The SDKs overwrite the message's `stop_reason` with every `message_delta`, so there is only
//! one: after the finish reason it waits for the usage chunk (the request asks for it), or for
//! `[DONE]` or the end of the stream when none comes. That wait holds a few numbers, never text.
//! A provider's error chunk becomes `event: error`, and nothing follows it. Reasoning deltas
//! are not passed on (see the response module).

use bytes::BytesMut;
use serde::Serialize;

use super::error::{event as error_event, type_of_stream_error};
use super::response::{message_id, stop_reason, usage};
use crate::convert::chat::{
    error_fields, parse_event, write_event, CallIndex, Chunk, Event, Usage,
};
use crate::convert::StreamConverter;
use crate::stream::sse::event_data;

#[derive(Debug, Default)]
pub struct ChatToMessagesStream {
    started: bool,
    /// The Anthropic index of the open block, and the chat tool-call index when it is a call.
    open: Option<(u32, Open)>,
    next_index: u32,
    /// Chat tool-call index → Anthropic block index, for calls already started.
    calls: Vec<(u64, u32)>,
    call_index: CallIndex,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    delta_sent: bool,
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool(u64),
}

impl ChatToMessagesStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let message = serde_json::json!({
            "type": "message_start",
            "message": {
                "id": message_id(chunk.id.as_deref()),
                "type": "message",
                "role": "assistant",
                "model": chunk.model.as_deref().unwrap_or_default(),
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        });
        write_event(out, "message_start", &message);
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            write_event(
                out,
                "content_block_stop",
                &IndexOnly {
                    kind: "content_block_stop",
                    index,
                },
            );
        }
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some((index, Open::Text)) => index,
            _ => {
                self.close_block(out);
                let index = self.take_index();
                let start = serde_json::json!({
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                });
                write_event(out, "content_block_start", &start);
                self.open = Some((index, Open::Text));
                index
            }
        };
        write_event(
            out,
            "content_block_delta",
            &BlockDelta {
                kind: "content_block_delta",
                index,
                delta: DeltaBody::Text { text },
            },
        );
    }

    fn tool_call(
        &mut self,
        call: u64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
        out: &mut BytesMut,
    ) {
        let index = match self.open {
            Some((index, Open::Tool(open))) if open == call => index,
            _ => match self.calls.iter().find(|(c, _)| *c == call) {
                // A fragment for a call already closed: chat may interleave calls, Anthropic
                // may not, and the SDKs add it to the block by its index.
                Some((_, index)) => *index,
                None => {
                    self.close_block(out);
                    let index = self.take_index();
                    let start = serde_json::json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": id.map_or_else(|| format!("toolu_{index}"), str::to_owned),
                            "name": name.unwrap_or_default(),
                            "input": {},
                        },
                    });
                    write_event(out, "content_block_start", &start);
                    self.open = Some((index, Open::Tool(call)));
                    self.calls.push((call, index));
                    index
                }
            },
        };
        if !arguments.is_empty() {
            write_event(
                out,
                "content_block_delta",
                &BlockDelta {
                    kind: "content_block_delta",
                    index,
                    delta: DeltaBody::Json {
                        partial_json: arguments,
                    },
                },
            );
        }
    }

    fn take_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    fn message_delta(&mut self, out: &mut BytesMut) {
        if self.delta_sent {
            return;
        }
        self.delta_sent = true;
        let delta = serde_json::json!({
            "type": "message_delta",
            "delta": {
                "stop_reason": self.stop_reason.unwrap_or("end_turn"),
                "stop_sequence": null,
            },
            "usage": match &self.usage {
                Some(u) => usage(u),
                None => serde_json::json!({"output_tokens": 0}),
            },
        });
        write_event(out, "message_delta", &delta);
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !self.started {
            self.start(&Chunk::default(), out);
        }
        self.close_block(out);
        self.message_delta(out);
        write_event(
            out,
            "message_stop",
            &serde_json::json!({"type": "message_stop"}),
        );
    }

    fn chunk(&mut self, chunk: Chunk<'_>, out: &mut BytesMut) {
        if let Some(error) = &chunk.error {
            let (message, kind, code) = error_fields(error);
            let kind = type_of_stream_error(kind.as_deref(), code.as_deref());
            error_event(kind, &message, out);
            self.finished = true;
            return;
        }
        self.start(&chunk, out);
        for choice in chunk.choices.iter().flatten() {
            if let Some(delta) = &choice.delta {
                if let Some(text) = &delta.content {
                    self.text(text, out);
                }
                if let Some(text) = &delta.refusal {
                    self.text(text, out);
                }
                for call in delta.tool_calls.iter().flatten() {
                    let function = call.function.as_ref();
                    let index = self.call_index.of(call.index, call.id.as_deref());
                    self.tool_call(
                        index,
                        call.id.as_deref(),
                        function.and_then(|f| f.name.as_deref()),
                        function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
                        out,
                    );
                }
            }
            if let Some(finish) = &choice.finish_reason {
                self.close_block(out);
                self.stop_reason = Some(stop_reason(Some(finish), !self.calls.is_empty()));
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        if self.stop_reason.is_some() && self.usage.is_some() {
            self.message_delta(out);
        }
    }
}

impl StreamConverter for ChatToMessagesStream {
    fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        if self.finished {
            return;
        }
        let Some(data) = event_data(event) else {
            return;
        };
        match parse_event(&data) {
            Event::Done => self.finish(out),
            Event::Chunk(chunk) => self.chunk(chunk, out),
            Event::Skip => {}
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        self.finish(out);
    }
}

#[derive(Serialize)]
struct IndexOnly {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaBody<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    Json { partial_json: &'a str },
}
