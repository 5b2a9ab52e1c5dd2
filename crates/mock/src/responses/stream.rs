//! The Responses API's typed event stream: `response.created`, `response.in_progress`, the
//! output item's added / delta / done events, then `response.completed` with usage. Every
//! event carries its `sequence_number`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::request::ResponsesRequest;
use super::{item, output_text, response, Ids, CALL_ID};
use crate::answer::Answer;
use crate::directives::Directives;
use crate::sse::{even_pieces, word_pieces};
use crate::stream_shape::{self, named_event};

const ARGUMENT_PIECES: usize = 3;

/// The events, and the index of the first `*.done` event (a truncated stream stops before it).
pub(crate) struct Events {
    events: Vec<Bytes>,
    first_done: usize,
}

struct Builder {
    events: Vec<Bytes>,
    first_done: Option<usize>,
}

impl Builder {
    fn push(&mut self, kind: &str, mut data: Value) {
        if kind.ends_with(".done") && self.first_done.is_none() {
            self.first_done = Some(self.events.len());
        }
        if let Some(object) = data.as_object_mut() {
            object.insert("type".into(), json!(kind));
            object.insert("sequence_number".into(), json!(self.events.len()));
        }
        self.events
            .push(named_event(kind, data.to_string().as_bytes()));
    }
}

pub(crate) fn events(
    request: &ResponsesRequest<'_>,
    answer: &Answer<'_>,
    ids: &Ids,
    chunks: Option<usize>,
) -> Events {
    let mut b = Builder {
        events: Vec::new(),
        first_done: None,
    };
    let started = response(request, ids, "in_progress", Vec::new(), false, answer);
    b.push("response.created", json!({"response": started}));
    b.push("response.in_progress", json!({"response": started}));
    let item_id = ids.for_answer(answer);
    let mut opening = item(answer, ids, "in_progress");
    match answer {
        Answer::Text(text) => {
            opening["content"] = json!([]);
            b.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": opening}),
            );
            let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
            let with = |extra: Value| {
                let mut v = at.clone();
                if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                    v.extend(extra.clone());
                }
                v
            };
            b.push(
                "response.content_part.added",
                with(json!({"part": output_text("")})),
            );
            let pieces = match chunks {
                Some(n) => even_pieces(text, n),
                None => word_pieces(text),
            };
            for delta in pieces {
                b.push(
                    "response.output_text.delta",
                    with(json!({"delta": delta, "logprobs": []})),
                );
            }
            b.push(
                "response.output_text.done",
                with(json!({"text": text, "logprobs": []})),
            );
            b.push(
                "response.content_part.done",
                with(json!({"part": output_text(text)})),
            );
        }
        Answer::ToolCall { name, arguments } => {
            opening["arguments"] = json!("");
            b.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": opening}),
            );
            for delta in even_pieces(arguments, ARGUMENT_PIECES) {
                b.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": delta}),
                );
            }
            b.push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "name": name, "arguments": arguments, "call_id": CALL_ID}),
            );
        }
    }
    let done = item(answer, ids, "completed");
    b.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": done}),
    );
    let finished = response(request, ids, "completed", vec![done], true, answer);
    b.push("response.completed", json!({"response": finished}));
    let first_done = b.first_done.unwrap_or(b.events.len());
    Events {
        events: b.events,
        first_done,
    }
}

pub(crate) fn shaped(events: Events, directives: &Directives) -> Vec<Bytes> {
    let Events { events, first_done } = events;
    let sequence = directives
        .stream_error_after
        .map_or(0, |n| n.min(events.len().saturating_sub(1)));
    stream_shape::shaped(
        events,
        first_done,
        || {
            let data = json!({"type": "error", "code": "server_error", "message": "mock stream error",
                "param": null, "sequence_number": sequence});
            named_event("error", data.to_string().as_bytes())
        },
        directives,
    )
}
