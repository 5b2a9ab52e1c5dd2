//! OpenAI's Responses API (`POST /v1/responses`): the chat mock's answers as a `response`
//! object with typed output items, or as the typed event stream with sequence numbers.

mod request;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::answer::Answer;
use crate::directives;
use crate::error_reply;
use crate::reply::{MockBody, MockReply};
use crate::request::word_count;
use crate::responder::{self, request_tag, JSON};
use crate::Mock;

use request::{Invalid, ResponsesRequest};

pub(crate) const CALL_ID: &str = "call_mock_0";

impl Mock {
    /// `POST /v1/responses`. Pure apart from the `fail_times` counters, like [`Mock::respond`].
    pub fn responses(&self, body: &Value, header: Option<&str>) -> MockReply {
        let tag = request_tag(body);
        let request = match ResponsesRequest::parse(body) {
            Ok(request) => request,
            Err(Invalid {
                message,
                param,
                code,
            }) => {
                return error(
                    400,
                    &message,
                    param.as_deref(),
                    Some(code),
                    &tag,
                    None,
                    Duration::ZERO,
                )
            }
        };
        let (tokens, clean_text) = directives::split_message(&request.user_text);
        let directives = match directives::resolve(header, &tokens) {
            Ok(directives) => directives,
            Err(bad) => {
                return error(
                    400,
                    &bad.to_string(),
                    None,
                    None,
                    &tag,
                    None,
                    Duration::ZERO,
                )
            }
        };
        let latency = Duration::from_millis(directives.latency_ms);
        if let Some((status, retry_after)) =
            self.injected_error(&directives, header, &request.user_text)
        {
            let message = format!("mock error {status}");
            return error(status, &message, None, None, &tag, retry_after, latency);
        }
        let answer = Answer::for_choice(0, &clean_text, request.tool);
        let ids = Ids::new(&tag);
        if request.stream {
            let events = stream::events(&request, &answer, &ids, directives.chunks);
            let events = stream::shaped(events, &directives);
            return crate::stream_shape::sse_reply(events, &directives, &tag, Vec::new());
        }
        let response = response(
            &request,
            &ids,
            "completed",
            vec![item(&answer, &ids, "completed")],
            true,
            &answer,
        );
        let bytes = Bytes::from(response.to_string());
        MockReply {
            status: 200,
            headers: responder::headers(JSON, &tag),
            latency,
            body: if directives.abort_after.is_some() {
                MockBody::TruncatedJson(bytes)
            } else {
                MockBody::Json(bytes)
            },
        }
    }
}

pub(crate) struct Ids {
    pub response: String,
    pub item: String,
}

impl Ids {
    fn new(tag: &str) -> Self {
        Ids {
            response: format!("resp_mock_{tag}"),
            item: format!("msg_mock_{tag}"),
        }
    }

    fn for_answer(&self, answer: &Answer<'_>) -> String {
        match answer {
            Answer::Text(_) => self.item.clone(),
            Answer::ToolCall { .. } => self.item.replacen("msg_", "fc_", 1),
        }
    }
}

/// The output item for an answer: a message with one `output_text` part, or a function call.
pub(crate) fn item(answer: &Answer<'_>, ids: &Ids, status: &str) -> Value {
    match answer {
        Answer::Text(text) => json!({
            "id": ids.for_answer(answer), "type": "message", "status": status, "role": "assistant",
            "content": [output_text(text)],
        }),
        Answer::ToolCall { name, arguments } => json!({
            "id": ids.for_answer(answer), "type": "function_call", "status": status,
            "call_id": CALL_ID, "name": name, "arguments": arguments,
        }),
    }
}

pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The `response` object; `finished` adds the usage a completed response carries.
pub(crate) fn response(
    request: &ResponsesRequest<'_>,
    ids: &Ids,
    status: &str,
    output: Vec<Value>,
    finished: bool,
    answer: &Answer<'_>,
) -> Value {
    let field = |name: &str, default: Value| {
        request
            .object
            .get(name)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let output_tokens = word_count(answer.said()) as u64;
    let usage = finished.then(|| {
        json!({
            "input_tokens": request.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": request.input_tokens + output_tokens,
        })
    });
    json!({
        "id": ids.response,
        "object": "response",
        "created_at": crate::wire::CREATED,
        "status": status,
        "completed_at": finished.then_some(crate::wire::CREATED),
        "error": null,
        "incomplete_details": null,
        "instructions": field("instructions", Value::Null),
        "max_output_tokens": field("max_output_tokens", Value::Null),
        "model": request.model,
        "output": output,
        "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
        "previous_response_id": field("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "store": field("store", json!(true)),
        "temperature": field("temperature", json!(1.0)),
        "text": field("text", json!({"format": {"type": "text"}})),
        "tool_choice": field("tool_choice", json!("auto")),
        "tools": field("tools", json!([])),
        "top_p": field("top_p", json!(1.0)),
        "truncation": field("truncation", json!("disabled")),
        "usage": usage,
        "user": field("user", Value::Null),
        "metadata": field("metadata", json!({})),
    })
}

fn error(
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
    tag: &str,
    retry_after: Option<u64>,
    latency: Duration,
) -> MockReply {
    let mut headers = responder::headers(JSON, tag);
    if let Some(secs) = retry_after {
        headers.push(("retry-after".into(), secs.to_string()));
    }
    MockReply {
        status,
        headers,
        latency,
        body: MockBody::Json(error_reply::with_code(status, message, param, code)),
    }
}
