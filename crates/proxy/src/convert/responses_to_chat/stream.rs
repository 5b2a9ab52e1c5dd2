//! A chat-completions stream written as the Responses API's typed events, each with an
//! `event:` line and a `sequence_number` counted from 0:
//!
//! `response.created` and `response.in_progress`; for text, `response.output_item.added` (a
//! `message`), `response.content_part.added`, `response.output_text.delta`…, then
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`; for
//! each tool call, `response.output_item.added` (a `function_call`),
//! `response.function_call_arguments.delta`…, `.done` and `response.output_item.done`; last
//! `response.completed` with the whole response and usage (`response.incomplete` when the
//! answer was cut by `max_output_tokens` or a content filter, as OpenAI sends it).
//!
//! One item is open at a time: text closes when a tool call starts, a call when the next
//! starts. The `.done` events and the final response repeat the whole text and arguments, so
//! those are kept as they pass (the mapping needs them, and the gateway stores the items);
//! nothing is held back from the client. The final event waits for the usage chunk after the
//! finish reason, or for `[DONE]`. A provider's error chunk becomes `response.failed` with
//! `error: {code, message}`, which the SDKs read as the response's failure, and nothing
//! follows it.

use bytes::BytesMut;
use serde::Serialize;
use serde_json::{json, Value};

use super::response::{
    envelope, function_call_item, item_id, message_item, output_text, usage, Ending, Turn,
};
use crate::convert::chat::{
    error_fields, parse_event, write_event, CallIndex, Chunk, Event, Usage,
};
use crate::convert::StreamConverter;
use crate::stream::sse::event_data;

#[derive(Debug)]
pub struct ChatToResponsesStream {
    turn: Turn,
    model: Option<String>,
    sequence: u64,
    started: bool,
    /// Message items started so far.
    messages: usize,
    /// Finished items, in output order.
    items: Vec<Value>,
    open: Option<OpenItem>,
    /// Chat tool-call index → output index, for calls already started.
    calls: Vec<(u64, usize)>,
    call_index: CallIndex,
    ending: Option<Ending>,
    usage: Option<Usage>,
    finished: bool,
    last: Option<Value>,
}

#[derive(Debug)]
enum OpenItem {
    Message {
        id: String,
        output_index: usize,
        text: String,
    },
    Call {
        chat_index: u64,
        /// The call's place among the calls, for its `fc_…` id.
        n: usize,
        id: String,
        output_index: usize,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl ChatToResponsesStream {
    pub fn new(turn: Turn) -> Self {
        Self {
            turn,
            model: None,
            sequence: 0,
            started: false,
            messages: 0,
            items: Vec::new(),
            open: None,
            calls: Vec::new(),
            call_index: CallIndex::default(),
            ending: None,
            usage: None,
            finished: false,
            last: None,
        }
    }

    /// The output items so far, finished ones only: after the stream, what the gateway stores.
    pub fn output_items(&self) -> &[Value] {
        &self.items
    }

    /// The `response` object the last event carried (`completed`, `incomplete` or `failed`),
    /// once the stream has ended: what `GET /v1/responses/{id}` answers.
    pub fn final_response(&self) -> Option<&Value> {
        self.last.as_ref()
    }

    fn emit(&mut self, out: &mut BytesMut, name: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), Value::from(name));
            map.insert("sequence_number".into(), Value::from(self.sequence));
        }
        self.sequence += 1;
        write_event(out, name, &data);
    }

    fn response_value(&self, status: &str, incomplete: Value, usage: Value, error: Value) -> Value {
        envelope(
            &self.turn,
            self.model.as_deref(),
            status,
            incomplete,
            Value::Array(self.items.clone()),
            usage,
            error,
        )
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response_value("in_progress", Value::Null, Value::Null, Value::Null);
        self.emit(out, "response.created", json!({"response": response}));
        let response = self.response_value("in_progress", Value::Null, Value::Null, Value::Null);
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    fn next_output_index(&self) -> usize {
        self.items.len() + usize::from(self.open.is_some())
    }

    /// Closes the open item, `status` being `completed` or `incomplete`.
    fn close(&mut self, status: &str, out: &mut BytesMut) {
        match self.open.take() {
            None => {}
            Some(OpenItem::Message {
                id,
                output_index,
                text,
            }) => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                           "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                           "part": output_text(&text)}),
                );
                let item = message_item(&id, &text, status);
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": output_index, "item": item}),
                );
                self.items.push(item);
            }
            Some(OpenItem::Call {
                n,
                id,
                output_index,
                call_id,
                name,
                arguments,
                ..
            }) => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": output_index, "name": name,
                           "arguments": arguments}),
                );
                let item =
                    function_call_item(&self.turn.id, n, &call_id, &name, &arguments, status);
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": output_index, "item": item}),
                );
                self.items.push(item);
            }
        }
    }

    fn text(&mut self, delta: &str, out: &mut BytesMut) {
        if delta.is_empty() {
            return;
        }
        if !matches!(self.open, Some(OpenItem::Message { .. })) {
            self.close("completed", out);
            let output_index = self.next_output_index();
            // The first message is `msg_{id}` as in a whole answer; text after a tool call
            // is a further message, numbered.
            let n = (self.messages > 0).then_some(self.messages);
            self.messages += 1;
            let id = item_id("msg", &self.turn.id, n);
            let item = json!({"id": id, "type": "message", "status": "in_progress",
                              "role": "assistant", "content": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                       "part": output_text("")}),
            );
            self.open = Some(OpenItem::Message {
                id,
                output_index,
                text: String::new(),
            });
        }
        let sequence_number = self.sequence;
        if let Some(OpenItem::Message {
            id,
            output_index,
            text,
        }) = &mut self.open
        {
            text.push_str(delta);
            write_event(
                out,
                "response.output_text.delta",
                &TextDelta {
                    kind: "response.output_text.delta",
                    sequence_number,
                    item_id: id,
                    output_index: *output_index,
                    content_index: 0,
                    delta,
                    logprobs: [],
                },
            );
            self.sequence += 1;
        }
    }

    fn tool_call(
        &mut self,
        chat_index: u64,
        call_id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
        out: &mut BytesMut,
    ) {
        let is_open =
            matches!(&self.open, Some(OpenItem::Call { chat_index: c, .. }) if *c == chat_index);
        if !is_open {
            if let Some(&(_, output_index)) = self.calls.iter().find(|(c, _)| *c == chat_index) {
                // A fragment for a call already done (chat may interleave calls): it joins
                // the stored item, and the client gets it as a delta of that item.
                let Some(item) = self
                    .items
                    .get_mut(output_index)
                    .and_then(Value::as_object_mut)
                else {
                    return;
                };
                let mut joined = item
                    .get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                joined.push_str(arguments);
                item.insert("arguments".into(), Value::String(joined));
                let id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.arguments_delta(&id, output_index, arguments, out);
                return;
            }
            self.close("completed", out);
            let output_index = self.next_output_index();
            let n = self.calls.len();
            self.calls.push((chat_index, output_index));
            let call_id = call_id.map_or_else(|| format!("call_{n}"), str::to_owned);
            let name = name.unwrap_or_default().to_owned();
            let id = item_id("fc", &self.turn.id, Some(n));
            let item = function_call_item(&self.turn.id, n, &call_id, &name, "", "in_progress");
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            self.open = Some(OpenItem::Call {
                chat_index,
                n,
                id,
                output_index,
                call_id,
                name,
                arguments: String::new(),
            });
        }
        if arguments.is_empty() {
            return;
        }
        let mut target = None;
        if let Some(OpenItem::Call {
            id,
            output_index,
            arguments: joined,
            ..
        }) = &mut self.open
        {
            joined.push_str(arguments);
            target = Some((id.clone(), *output_index));
        }
        if let Some((id, output_index)) = target {
            self.arguments_delta(&id, output_index, arguments, out);
        }
    }

    fn arguments_delta(&mut self, id: &str, output_index: usize, delta: &str, out: &mut BytesMut) {
        write_event(
            out,
            "response.function_call_arguments.delta",
            &ArgumentsDelta {
                kind: "response.function_call_arguments.delta",
                sequence_number: self.sequence,
                item_id: id,
                output_index,
                delta,
            },
        );
        self.sequence += 1;
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.start(out);
        let ending = self.ending.unwrap_or(Ending::Completed);
        self.close(ending.status(), out);
        let usage = usage(&self.usage.unwrap_or_default());
        let response = self.response_value(
            ending.status(),
            ending.incomplete_details(),
            usage,
            Value::Null,
        );
        let name = match ending {
            Ending::Completed => "response.completed",
            Ending::Incomplete(_) => "response.incomplete",
        };
        self.emit(out, name, json!({"response": &response}));
        self.last = Some(response);
    }

    fn fail(&mut self, error: &Value, out: &mut BytesMut) {
        self.finished = true;
        self.start(out);
        let (message, kind, code) = error_fields(error);
        let rate_limited = [kind.as_deref(), code.as_deref()]
            .into_iter()
            .flatten()
            .any(|s| s.contains("rate_limit") || s == "429");
        let code = if rate_limited {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let response = self.response_value(
            "failed",
            Value::Null,
            Value::Null,
            json!({"code": code, "message": message}),
        );
        self.emit(out, "response.failed", json!({"response": &response}));
        self.last = Some(response);
    }

    fn chunk(&mut self, chunk: Chunk<'_>, out: &mut BytesMut) {
        if let Some(error) = &chunk.error {
            self.fail(error, out);
            return;
        }
        if self.model.is_none() {
            self.model = chunk.model.as_deref().map(str::to_owned);
        }
        self.start(out);
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
                let ending = Ending::of(Some(finish));
                self.close(ending.item_status(), out);
                self.ending = Some(ending);
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        if self.ending.is_some() && self.usage.is_some() {
            self.finish(out);
        }
    }
}

impl StreamConverter for ChatToResponsesStream {
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
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    logprobs: [u8; 0],
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}
