//! The one responder behind both the in-process provider and the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::answer::{self, Answer};
use crate::directives::{self, Directives};
use crate::error_reply;
use crate::fail_counter::FailCounter;
use crate::reply::{MockBody, MockReply};
use crate::request::ChatRequest;
use crate::sse::{self, StreamContext};
use crate::wire::{self, Completion};

pub(crate) const JSON: &str = "application/json";
pub(crate) const EVENT_STREAM: &str = "text/event-stream";

/// Cheap to clone; clones share the `fail_times` counters.
#[derive(Debug, Clone, Default)]
pub struct Mock {
    pub(crate) failures: Arc<FailCounter>,
}

impl Mock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pure apart from the `fail_times` counters: the same body and header give the same bytes.
    /// `header` is the value of the [`DIRECTIVES_HEADER`](crate::DIRECTIVES_HEADER) request
    /// header (`x-mock`), if any.
    pub fn respond(&self, body: &Value, header: Option<&str>) -> MockReply {
        let tag = request_tag(body);
        let request = match ChatRequest::parse(body) {
            Ok(request) => request,
            Err(bad) => return error(400, bad.message, bad.param, &tag, None, Duration::ZERO),
        };
        let user_text = request.last_user_text();
        let (tokens, clean_text) = directives::split_message(&user_text);
        let directives = match directives::resolve(header, &tokens) {
            Ok(directives) => directives,
            Err(bad) => return error(400, &bad.to_string(), None, &tag, None, Duration::ZERO),
        };
        let latency = Duration::from_millis(directives.latency_ms);
        if let Some(status) = directives.error {
            if self
                .failures
                .should_fail(directives.fail_times, header, &user_text)
            {
                let retry_after = directives.retry_after.or((status == 429).then_some(1));
                let message = format!("mock error {status}");
                return error(status, &message, None, &tag, retry_after, latency);
            }
        }
        success(&request, &clean_text, &directives, &tag, latency)
    }

    /// The error `directives` ask for, as (status, retry-after), unless `fail_times` has run
    /// out for this kind of request. Shared by every dialect so they fail alike.
    pub(crate) fn injected_error(
        &self,
        directives: &Directives,
        header: Option<&str>,
        user_text: &str,
    ) -> Option<(u16, Option<u64>)> {
        let status = directives.error?;
        self.failures
            .should_fail(directives.fail_times, header, user_text)
            .then(|| {
                (
                    status,
                    directives.retry_after.or((status == 429).then_some(1)),
                )
            })
    }
}

fn success(
    request: &ChatRequest<'_>,
    clean_text: &str,
    directives: &Directives,
    tag: &str,
    latency: Duration,
) -> MockReply {
    let answers: Vec<Answer<'_>> = (0..request.n)
        .map(|i| Answer::for_choice(i, clean_text, request.tool))
        .collect();
    let usage = answer::usage(request.prompt_tokens(), &answers);
    let id = format!("chatcmpl-mock-{tag}");
    if request.stream {
        let ctx = StreamContext {
            id: &id,
            model: request.model,
            include_usage: request.include_usage,
            chunks: directives.chunks,
        };
        let (events, fill) = sse::shaped(sse::events(&ctx, &answers, &usage), &ctx, directives);
        let body = MockBody::Sse {
            events,
            chunk_delay: Duration::from_millis(directives.chunk_delay_ms),
            abort_after: directives.abort_after,
            fill,
        };
        let mut headers = headers(EVENT_STREAM, tag);
        headers.push(("cache-control".into(), "no-cache".into()));
        return MockReply {
            status: 200,
            headers,
            latency,
            body,
        };
    }
    if let Some(size) = directives.answer_bytes {
        return padded(request, &id, &usage, size, tag, latency);
    }
    let bytes = Bytes::from(wire::to_bytes(&completion(request, &id, &answers, &usage)));
    let body = if directives.abort_after.is_some() {
        MockBody::TruncatedJson(bytes)
    } else {
        MockBody::Json(bytes)
    };
    MockReply {
        status: 200,
        headers: headers(JSON, tag),
        latency,
        body,
    }
}

fn completion<'a>(
    request: &'a ChatRequest<'_>,
    id: &'a str,
    answers: &'a [Answer<'_>],
    usage: &'a wire::Usage,
) -> Completion<'a> {
    Completion {
        id,
        object: "chat.completion",
        created: wire::CREATED,
        model: request.model,
        system_fingerprint: wire::FINGERPRINT,
        choices: answers
            .iter()
            .enumerate()
            .map(|(index, a)| wire::Choice {
                index,
                message: a.message(),
                logprobs: (),
                finish_reason: a.finish_reason(),
            })
            .collect(),
        usage,
    }
}

/// `answer_bytes`: a one-choice completion of `size` bytes (at least its JSON frame), whose
/// text is filler made as it is sent, with its length declared as a provider would.
fn padded(
    request: &ChatRequest<'_>,
    id: &str,
    usage: &wire::Usage,
    size: u64,
    tag: &str,
    latency: Duration,
) -> MockReply {
    const MARK: &str = "@@mock-fill@@";
    let answers = [Answer::Text(MARK.to_owned())];
    let whole = wire::to_bytes(&completion(request, id, &answers, usage));
    let at = whole
        .windows(MARK.len())
        .position(|w| w == MARK.as_bytes())
        .unwrap_or(whole.len());
    let head = Bytes::copy_from_slice(&whole[..at]);
    let tail = Bytes::copy_from_slice(whole.get(at + MARK.len()..).unwrap_or_default());
    let fill = size.saturating_sub((head.len() + tail.len()) as u64);
    let body = MockBody::Padded { head, fill, tail };
    let mut reply = MockReply {
        status: 200,
        headers: headers(JSON, tag),
        latency,
        body,
    };
    if let Some(length) = reply.content_length() {
        reply
            .headers
            .push(("content-length".into(), length.to_string()));
    }
    reply
}

fn error(
    status: u16,
    message: &str,
    param: Option<&str>,
    tag: &str,
    retry_after: Option<u64>,
    latency: Duration,
) -> MockReply {
    let mut headers = headers(JSON, tag);
    if let Some(secs) = retry_after {
        headers.push(("retry-after".into(), secs.to_string()));
    }
    MockReply {
        status,
        headers,
        latency,
        body: MockBody::Json(error_reply::body(status, message, param)),
    }
}

pub(crate) fn headers(content_type: &str, tag: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        ("x-request-id".into(), format!("mock-{tag}")),
        ("x-ratelimit-remaining-requests".into(), "99".into()),
    ]
}

/// Ties the id to the request so identical requests get identical replies.
pub(crate) fn request_tag(body: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    hex::encode(&digest[..6])
}
