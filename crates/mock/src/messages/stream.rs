//! Anthropic's streamed event sequence: `message_start`, each block's start, deltas and stop
//! (a `ping` after the first start), `message_delta` with the stop reason, `message_stop`.

use bytes::Bytes;

use super::wire::{Block, Delta, Event, Message, StopDelta, Usage};
use super::{blocks, Reply};
use crate::answer::Answer;
use crate::directives::Directives;
use crate::sse::{even_pieces, word_pieces};
use crate::stream_shape::{self, named_event};

/// Enough pieces to exercise reassembly in clients without bloating the stream.
const ARGUMENT_PIECES: usize = 3;
const THINKING_PIECES: usize = 2;

/// Anthropic's own mid-stream failure.
const STREAM_ERROR: &[u8] =
    b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

pub(crate) fn events(reply: &Reply<'_>, chunks: Option<usize>) -> Vec<Bytes> {
    let start_usage = Usage {
        // Anthropic reports one output token at the start and the total at the end.
        output_tokens: 1,
        ..reply.usage.clone()
    };
    let mut out = vec![encode(&Event::MessageStart {
        message: Message {
            id: &reply.id,
            kind: "message",
            role: "assistant",
            model: reply.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: &start_usage,
        },
    })];
    // A tool_use block opens with an empty `input`; its JSON follows in deltas.
    let empty_input = serde_json::json!({});
    for (index, block) in blocks(reply).into_iter().enumerate() {
        let (opening, deltas) = match block {
            Block::Thinking {
                thinking,
                signature,
            } => {
                let mut deltas: Vec<Delta<'_>> = even_pieces(thinking, THINKING_PIECES)
                    .into_iter()
                    .map(|thinking| Delta::Thinking { thinking })
                    .collect();
                deltas.push(Delta::Signature { signature });
                (
                    Block::Thinking {
                        thinking: "",
                        signature: "",
                    },
                    deltas,
                )
            }
            Block::Text { text } => {
                let pieces = match chunks {
                    Some(n) => even_pieces(text, n),
                    None => word_pieces(text),
                };
                let deltas = pieces
                    .into_iter()
                    .map(|text| Delta::Text { text })
                    .collect();
                (Block::Text { text: "" }, deltas)
            }
            Block::ToolUse { id, name, .. } => {
                let arguments = match &reply.answer {
                    Answer::ToolCall { arguments, .. } => arguments.as_str(),
                    Answer::Text(_) => "{}",
                };
                let deltas = even_pieces(arguments, ARGUMENT_PIECES)
                    .into_iter()
                    .map(|partial_json| Delta::InputJson { partial_json })
                    .collect();
                (
                    Block::ToolUse {
                        id,
                        name,
                        input: &empty_input,
                    },
                    deltas,
                )
            }
        };
        out.push(encode(&Event::ContentBlockStart {
            index,
            content_block: opening,
        }));
        if index == 0 {
            out.push(encode(&Event::Ping));
        }
        out.extend(
            deltas
                .into_iter()
                .map(|delta| encode(&Event::ContentBlockDelta { index, delta })),
        );
        out.push(encode(&Event::ContentBlockStop { index }));
    }
    out.push(encode(&Event::MessageDelta {
        delta: StopDelta {
            stop_reason: reply.stop_reason(),
            stop_sequence: reply.stop_sequence(),
        },
        usage: &reply.usage,
    }));
    out.push(encode(&Event::MessageStop));
    out
}

/// Truncation stops before `message_delta`, so a cut stream never carries a stop reason.
pub(crate) fn shaped(events: Vec<Bytes>, directives: &Directives) -> Vec<Bytes> {
    let finish_at = events.len().saturating_sub(2);
    stream_shape::shaped(
        events,
        finish_at,
        || Bytes::from_static(STREAM_ERROR),
        directives,
    )
}

fn encode(event: &Event<'_>) -> Bytes {
    named_event(event.name(), &crate::wire::to_bytes(event))
}
