//! Accumulating what a provider answered into the record's [`Output`] and [`Usage`].
//!
//! Streamed answers are folded in chunk by chunk; whole JSON answers are read once at the end.
//! Text is kept only when some destination wants content, and never beyond the capture limit;
//! the number of choices and tool calls is bounded too, so no answer can grow the record
//! without limit. Streams are also checked for how they ended: an error event, or an end with
//! neither `[DONE]` nor a finish reason, makes the exchange a `stream_error`.

use bytes::BytesMut;
use gatecast_telemetry::record::{Choice, Output, ToolCall, Usage};
use serde::Deserialize;

use crate::convert::chat_to_messages::{self, MessagesToChatStream};
use crate::convert::StreamConverter;
use crate::stream::sse::{event_data, SseSplitter};

/// The parts of a chunk or completion the gateway reads. Everything else is ignored.
#[derive(Deserialize, Default)]
struct Envelope {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChoiceView>,
    usage: Option<UsageView>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
struct ChoiceView {
    #[serde(default)]
    index: u32,
    /// Streamed answers carry `delta`, whole ones `message`; both have the same shape.
    #[serde(alias = "message")]
    delta: Option<MessageView>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageView {
    role: Option<String>,
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallView>,
}

#[derive(Deserialize)]
struct ToolCallView {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionView>,
}

#[derive(Deserialize)]
struct FunctionView {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    /// Not OpenAI's: the Anthropic dialect reports cache writes here (inside `prompt_tokens`),
    /// as LiteLLM and others do, so they can be priced apart.
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

/// `error` as providers send it: OpenAI's object with a message, a bare string, or anything
/// else, which still marks the chunk as an error.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorView {
    Detailed {
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl ErrorView {
    fn message(self) -> Option<String> {
        match self {
            ErrorView::Detailed { message } => message,
            ErrorView::Text(text) => Some(text),
            ErrorView::Other(_) => None,
        }
    }
}

fn is_error_body(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }
    serde_json::from_slice::<Kind<'_>>(body).is_ok_and(|k| k.kind == Some("error"))
}

/// A provider's error message is kept only this long: it may be as large as its body.
const MAX_ERROR_MESSAGE_BYTES: usize = 8 * 1024;

fn clip_message(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        let mut cut = MAX_ERROR_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

/// OpenAI allows `n` up to 128; a provider sending more indexes is not kept.
const MAX_CHOICES: usize = 128;
/// Tool calls kept per choice; the index comes from the provider, so it is bounded before use.
const MAX_TOOL_CALLS: usize = 128;

/// What a streamed chunk turned out to be, for the tee's filtering decision.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// A regular chunk with choices.
    Regular,
    /// The extra chunk `include_usage` causes: usage and no choices.
    UsageOnly,
    /// `[DONE]` or something that is not a JSON chunk.
    Other,
}

/// The wire the observed answer is in. Anything but chat is read through its converter to
/// chat, so one fold serves every provider passed through untranslated.
enum Reading {
    Chat,
    Messages(Box<MessagesToChatStream>),
}

pub struct Accumulator {
    reading: Reading,
    output: Output,
    usage: Option<Usage>,
    error_message: Option<String>,
    keep_content: bool,
    /// Content bytes still allowed before the capture limit.
    budget: usize,
    /// A streamed chunk carried `error`.
    error_event: bool,
    /// The stream's `[DONE]` arrived.
    done: bool,
}

impl Accumulator {
    pub fn new(keep_content: bool, limit: usize) -> Self {
        Self {
            reading: Reading::Chat,
            output: Output::default(),
            usage: None,
            error_message: None,
            keep_content,
            budget: limit,
            error_event: false,
            done: false,
        }
    }

    /// Reads an Anthropic Messages answer, passed through to an Anthropic client.
    pub fn messages(keep_content: bool, limit: usize) -> Self {
        Self {
            reading: Reading::Messages(Box::new(MessagesToChatStream::new(0))),
            ..Self::new(keep_content, limit)
        }
    }

    /// Folds one SSE `data` payload in.
    pub fn on_chunk(&mut self, data: &[u8]) -> ChunkKind {
        if let Reading::Messages(conv) = &mut self.reading {
            let mut event = Vec::with_capacity(data.len() + 8);
            event.extend_from_slice(b"data: ");
            event.extend_from_slice(data);
            event.extend_from_slice(b"\n\n");
            let mut out = BytesMut::new();
            conv.event(&event, &mut out);
            let mut splitter = SseSplitter::new(usize::MAX);
            for chunk in splitter.push(&out).unwrap_or_default() {
                if let Some(data) = event_data(&chunk) {
                    self.on_chat_chunk(&data);
                }
            }
            return ChunkKind::Regular;
        }
        self.on_chat_chunk(data)
    }

    fn on_chat_chunk(&mut self, data: &[u8]) -> ChunkKind {
        if data == b"[DONE]" {
            self.done = true;
            return ChunkKind::Other;
        }
        let Ok(env) = serde_json::from_slice::<Envelope>(data) else {
            return ChunkKind::Other;
        };
        let usage_only = env.choices.is_empty() && env.usage.is_some();
        self.error_event |= env.error.is_some();
        self.fold(env);
        if usage_only {
            ChunkKind::UsageOnly
        } else {
            ChunkKind::Regular
        }
    }

    /// Reads a whole (non-streamed) answer or error body.
    pub fn on_body(&mut self, body: &[u8]) {
        let converted;
        let body = match &self.reading {
            // An Anthropic error has `error.message` as OpenAI's has: it is read as it is.
            Reading::Messages(_) if !is_error_body(body) => {
                match chat_to_messages::response(body, 0) {
                    Ok(chat) => {
                        converted = chat;
                        &converted[..]
                    }
                    Err(_) => return,
                }
            }
            _ => body,
        };
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            self.fold(env);
        }
    }

    fn fold(&mut self, env: Envelope) {
        if self.output.response_id.is_none() {
            self.output.response_id = env.id;
        }
        if self.output.response_model.is_none() {
            self.output.response_model = env.model;
        }
        if let Some(u) = env.usage {
            self.usage = Some(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
                cache_read_input_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                reasoning_output_tokens: u
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens),
            });
        }
        if let Some(e) = env.error {
            self.error_message = e.message().map(clip_message);
        }
        for c in env.choices {
            let pos = match self.output.choices.iter().position(|x| x.index == c.index) {
                Some(p) => p,
                None if self.output.choices.len() >= MAX_CHOICES => {
                    self.output.truncated = true;
                    continue;
                }
                None => {
                    self.output.choices.push(Choice {
                        index: c.index,
                        ..Choice::default()
                    });
                    self.output.choices.len() - 1
                }
            };
            let choice = &mut self.output.choices[pos];
            if c.finish_reason.is_some() {
                choice.finish_reason = c.finish_reason;
            }
            let Some(delta) = c.delta else { continue };
            if delta.role.is_some() {
                choice.role = delta.role;
            }
            if !self.keep_content {
                continue;
            }
            if let Some(text) = delta.content {
                append_bounded(
                    &mut choice.text,
                    &text,
                    &mut self.budget,
                    &mut self.output.truncated,
                );
            }
            for (i, call) in delta.tool_calls.into_iter().enumerate() {
                let slot = call.index.unwrap_or(i);
                if slot >= MAX_TOOL_CALLS {
                    self.output.truncated = true;
                    continue;
                }
                while choice.tool_calls.len() <= slot {
                    choice.tool_calls.push(ToolCall::default());
                }
                let tc = &mut choice.tool_calls[slot];
                if call.id.is_some() {
                    tc.id = call.id;
                }
                if let Some(f) = call.function {
                    if let Some(name) = f.name {
                        append_bounded(
                            &mut tc.name,
                            &name,
                            &mut self.budget,
                            &mut self.output.truncated,
                        );
                    }
                    if let Some(args) = f.arguments {
                        append_bounded(
                            &mut tc.arguments,
                            &args,
                            &mut self.budget,
                            &mut self.output.truncated,
                        );
                    }
                }
            }
        }
    }

    /// What was wrong with how a 200 stream ended, as the record's message: an error event
    /// (with the provider's message), or an end with neither `[DONE]` nor a finish reason.
    pub fn stream_error(&self) -> Option<String> {
        if self.error_event {
            return Some(
                self.error_message
                    .clone()
                    .unwrap_or_else(|| "the provider sent an error event".to_owned()),
            );
        }
        let finished = self
            .output
            .choices
            .iter()
            .any(|c| c.finish_reason.is_some());
        (!self.done && !finished)
            .then(|| "the provider ended the stream without [DONE] or a finish reason".to_owned())
    }

    pub fn finish(mut self) -> (Output, Option<Usage>, Option<String>) {
        self.output.choices.sort_by_key(|c| c.index);
        (self.output, self.usage, self.error_message)
    }
}

fn append_bounded(dst: &mut String, src: &str, budget: &mut usize, truncated: &mut bool) {
    if src.len() <= *budget {
        dst.push_str(src);
        *budget -= src.len();
        return;
    }
    let mut cut = *budget;
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    dst.push_str(&src[..cut]);
    *budget = 0;
    *truncated = true;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn folds_streamed_text_tool_calls_and_usage() {
        let mut acc = Accumulator::new(true, 1 << 20);
        let chunks = [
            r#"{"id":"c1","model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}},{"index":1,"delta":{"content":"B"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"id":"c1","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ];
        for c in chunks {
            assert_eq!(acc.on_chunk(c.as_bytes()), ChunkKind::Regular);
        }
        let usage = r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
        assert_eq!(acc.on_chunk(usage.as_bytes()), ChunkKind::UsageOnly);
        assert_eq!(acc.on_chunk(b"[DONE]"), ChunkKind::Other);
        let (out, usage, _) = acc.finish();
        assert_eq!(out.response_id.as_deref(), Some("c1"));
        assert_eq!(out.response_model.as_deref(), Some("m-1"));
        assert_eq!(out.choices[0].text, "Hello");
        assert_eq!(out.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(out.choices[1].text, "B");
        assert_eq!(out.choices[1].tool_calls[0].name, "get");
        assert_eq!(out.choices[1].tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(out.choices[1].tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 3,
                cache_read_input_tokens: Some(2),
                cache_creation_input_tokens: None,
                reasoning_output_tokens: Some(1)
            })
        );
    }

    #[test]
    fn whole_body_and_limits() {
        let body = r#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"héllo wörld"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let mut acc = Accumulator::new(true, 3);
        acc.on_body(body.as_bytes());
        let (out, usage, _) = acc.finish();
        assert_eq!(out.choices[0].text, "hé");
        assert!(out.truncated);
        assert_eq!(usage.map(|u| u.output_tokens), Some(2));

        let mut acc = Accumulator::new(false, 1 << 20);
        acc.on_body(body.as_bytes());
        let (out, _, _) = acc.finish();
        assert_eq!(
            out.choices[0].text, "",
            "content is not kept when nobody wants it"
        );
        assert_eq!(out.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn how_a_stream_ended_is_told_from_its_events() {
        let delta = br#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        let finish = br#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let fold = |events: &[&[u8]]| {
            let mut acc = Accumulator::new(false, 100);
            for e in events {
                acc.on_chunk(e);
            }
            acc.stream_error()
        };
        assert_eq!(fold(&[delta, finish, b"[DONE]"]), None);
        assert_eq!(fold(&[delta, finish]), None, "a finish reason is enough");
        assert_eq!(fold(&[delta, b"[DONE]"]), None, "so is [DONE]");
        assert!(fold(&[delta]).unwrap().contains("without [DONE]"));
        assert!(fold(&[]).is_some(), "an empty stream did not finish");
        for error in [
            &br#"{"error":{"message":"overloaded","type":"server_error"}}"#[..],
            br#"{"error":"overloaded"}"#,
        ] {
            assert_eq!(
                fold(&[delta, error, b"[DONE]"]).as_deref(),
                Some("overloaded"),
                "an error event wins even before [DONE]"
            );
        }
        assert!(fold(&[delta, br#"{"error":{"code":5}}"#]).is_some());
        assert_eq!(
            fold(&[delta, br#"{"error":null,"choices":[]}"#, finish]),
            None,
            "a null error is no error"
        );
    }

    #[test]
    fn choice_and_tool_call_indexes_from_the_provider_are_bounded() {
        let mut acc = Accumulator::new(true, 1 << 20);
        acc.on_chunk(
            br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":18446744073709551615,"function":{"name":"x"}}]}}]}"#,
        );
        for i in 0..1000u32 {
            let chunk = format!(r#"{{"choices":[{{"index":{i},"delta":{{"content":"a"}}}}]}}"#);
            acc.on_chunk(chunk.as_bytes());
        }
        let (out, _, _) = acc.finish();
        assert_eq!(out.choices.len(), MAX_CHOICES);
        assert!(out.choices[0].tool_calls.is_empty());
        assert!(out.truncated);
    }

    #[test]
    fn provider_error_message_is_read() {
        let mut acc = Accumulator::new(true, 100);
        acc.on_body(br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#);
        assert_eq!(acc.finish().2.as_deref(), Some("Rate limit reached"));

        let huge = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(10_000));
        let mut acc = Accumulator::new(true, 100);
        acc.on_body(huge.as_bytes());
        let message = acc.finish().2.unwrap();
        assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES && message.len() > 8000);
    }
}
