//! Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`): the same
//! deterministic answers and fault directives as chat, on Anthropic's wire.

mod request;
mod stream;
mod wire;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::answer::{self, Answer};
use crate::directives::{self, Directives};
use crate::reply::{MockBody, MockReply};
use crate::request::word_count;
use crate::responder::{self, request_tag, JSON};
use crate::Mock;

pub(crate) use request::{Endpoint, MessagesRequest};

/// The thinking text echoes this much of the prompt.
const THINKING_ECHO: usize = 50;

/// Everything a reply says, before it is put on the wire whole or as events.
pub(crate) struct Reply<'a> {
    pub id: String,
    pub model: &'a str,
    pub thinking: Option<(String, String)>,
    pub answer: Answer<'a>,
    /// The tool call's arguments as the JSON object Anthropic puts in `input`.
    pub input: Value,
    pub usage: wire::Usage,
    /// The `stop_reason` directive's choice for a text answer.
    pub text_stop: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
}

/// Sent when a `stop_sequence` stop is asked for but the request named none.
const DEFAULT_STOP_SEQUENCE: &str = "\n\nHuman:";

impl<'a> Reply<'a> {
    pub fn stop_reason(&self) -> &'static str {
        match self.answer {
            Answer::Text(_) => self.text_stop.unwrap_or("end_turn"),
            Answer::ToolCall { .. } => "tool_use",
        }
    }

    /// The sequence that stopped the answer, when it stopped on one.
    pub fn stop_sequence(&self) -> Option<&'a str> {
        (self.stop_reason() == "stop_sequence")
            .then(|| self.stop_sequence.unwrap_or(DEFAULT_STOP_SEQUENCE))
    }
}

impl Mock {
    /// `POST /v1/messages`. `header` is the `x-mock` header, if any. Pure apart from the
    /// `fail_times` counters, like [`Mock::respond`].
    pub fn messages(&self, body: &Value, header: Option<&str>) -> MockReply {
        let tag = request_tag(body);
        let request = match MessagesRequest::parse(body, Endpoint::Create) {
            Ok(request) => request,
            Err(message) => return error(400, &message, &tag, None, Duration::ZERO),
        };
        let (tokens, clean_text) = directives::split_message(&request.user_text);
        let directives = match directives::resolve(header, &tokens) {
            Ok(directives) => directives,
            Err(bad) => return error(400, &bad.to_string(), &tag, None, Duration::ZERO),
        };
        let latency = Duration::from_millis(directives.latency_ms);
        if let Some((status, retry_after)) =
            self.injected_error(&directives, header, &request.user_text)
        {
            return error(status, &message_for(status), &tag, retry_after, latency);
        }
        let reply = build(&request, &clean_text, &directives, &tag);
        if request.stream {
            let events = stream::events(&reply, directives.chunks);
            let events = stream::shaped(events, &directives);
            return crate::stream_shape::sse_reply(
                events,
                &directives,
                &tag,
                anthropic_headers(&tag),
            );
        }
        let bytes = Bytes::from(crate::wire::to_bytes(&message(&reply)));
        let mut headers = responder::headers(JSON, &tag);
        headers.extend(anthropic_headers(&tag));
        MockReply {
            status: 200,
            headers,
            latency,
            body: if directives.abort_after.is_some() {
                MockBody::TruncatedJson(bytes)
            } else {
                MockBody::Json(bytes)
            },
        }
    }

    /// `POST /v1/messages/count_tokens`: the same count `messages` reports as `input_tokens`.
    pub fn count_tokens(&self, body: &Value, header: Option<&str>) -> MockReply {
        let tag = request_tag(body);
        let request = match MessagesRequest::parse(body, Endpoint::CountTokens) {
            Ok(request) => request,
            Err(message) => return error(400, &message, &tag, None, Duration::ZERO),
        };
        let (tokens, _) = directives::split_message(&request.user_text);
        let directives = match directives::resolve(header, &tokens) {
            Ok(directives) => directives,
            Err(bad) => return error(400, &bad.to_string(), &tag, None, Duration::ZERO),
        };
        let latency = Duration::from_millis(directives.latency_ms);
        if let Some((status, retry_after)) =
            self.injected_error(&directives, header, &request.user_text)
        {
            return error(status, &message_for(status), &tag, retry_after, latency);
        }
        let mut headers = responder::headers(JSON, &tag);
        headers.extend(anthropic_headers(&tag));
        MockReply {
            status: 200,
            headers,
            latency,
            body: MockBody::Json(Bytes::from(
                json!({"input_tokens": request.input_tokens}).to_string(),
            )),
        }
    }
}

fn build<'a>(
    request: &MessagesRequest<'a>,
    clean_text: &str,
    directives: &Directives,
    tag: &str,
) -> Reply<'a> {
    let answer = Answer::for_choice(0, clean_text, request.tool);
    let input = match &answer {
        Answer::ToolCall { arguments, .. } => {
            serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
        }
        Answer::Text(_) => json!({}),
    };
    let thinking = request.thinking.then(|| {
        let text = answer::clip(clean_text.trim(), THINKING_ECHO);
        (
            format!("Mock thinking about: {text}"),
            format!("mock-signature-{tag}"),
        )
    });
    let output_tokens =
        word_count(answer.said()) + thinking.as_ref().map_or(0, |(text, _)| word_count(text));
    Reply {
        id: format!("msg_mock_{tag}"),
        model: request.model,
        thinking,
        answer,
        input,
        usage: wire::Usage {
            input_tokens: request.input_tokens,
            cache_creation_input_tokens: directives.cache_write,
            cache_read_input_tokens: directives.cache_read,
            output_tokens: output_tokens as u64,
        },
        text_stop: directives.stop_reason,
        stop_sequence: request.stop_sequence,
    }
}

/// Blocks in Anthropic's order: thinking first, then the text or the tool call.
pub(crate) fn blocks<'a>(reply: &'a Reply<'_>) -> Vec<wire::Block<'a>> {
    let mut blocks = Vec::with_capacity(2);
    if let Some((thinking, signature)) = &reply.thinking {
        blocks.push(wire::Block::Thinking {
            thinking,
            signature,
        });
    }
    blocks.push(match &reply.answer {
        Answer::Text(text) => wire::Block::Text { text },
        Answer::ToolCall { name, .. } => wire::Block::ToolUse {
            id: wire::TOOL_USE_ID,
            name,
            input: &reply.input,
        },
    });
    blocks
}

fn message<'a>(reply: &'a Reply<'_>) -> wire::Message<'a> {
    wire::Message {
        id: &reply.id,
        kind: "message",
        role: "assistant",
        model: reply.model,
        content: blocks(reply),
        stop_reason: Some(reply.stop_reason()),
        stop_sequence: reply.stop_sequence(),
        usage: &reply.usage,
    }
}

/// Anthropic's `error.type` for a status, as its SDK maps them to exception classes.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn message_for(status: u16) -> String {
    match status {
        529 => "Overloaded".into(),
        _ => format!("mock error {status}"),
    }
}

/// An error reply in Anthropic's shape, `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error(
    status: u16,
    message: &str,
    tag: &str,
    retry_after: Option<u64>,
    latency: Duration,
) -> MockReply {
    let request_id = format!("req_mock_{tag}");
    let body = wire::ErrorBody {
        kind: "error",
        error: wire::ErrorDetail {
            kind: error_type(status),
            message,
        },
        request_id: &request_id,
    };
    let mut headers = responder::headers(JSON, tag);
    headers.extend(anthropic_headers(tag));
    if let Some(secs) = retry_after {
        headers.push(("retry-after".into(), secs.to_string()));
    }
    MockReply {
        status,
        headers,
        latency,
        body: MockBody::Json(Bytes::from(crate::wire::to_bytes(&body))),
    }
}

fn anthropic_headers(tag: &str) -> Vec<(String, String)> {
    vec![
        ("request-id".into(), format!("req_mock_{tag}")),
        ("anthropic-ratelimit-requests-remaining".into(), "99".into()),
    ]
}
