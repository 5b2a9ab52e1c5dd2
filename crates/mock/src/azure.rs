//! Azure OpenAI's variant of chat completions: the deployment in the path names the model,
//! `api-version` is required on the deployment form, and content-filter annotations and
//! errors are Azure's own. The answer itself is the chat responder's.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::directives;
use crate::reply::{MockBody, MockReply};
use crate::request::ChatRequest;
use crate::responder::{self, request_tag, JSON};
use crate::Mock;

const CONTENT_FILTER_MESSAGE: &str = "The response was filtered due to the prompt triggering \
Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more \
about our content filtering policies please read our documentation: \
https://go.microsoft.com/fwlink/?linkid=2198766";

const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong API endpoint. \
Make sure to provide a valid key for an active subscription and use a correct regional API \
endpoint for your resource.";

impl Mock {
    /// Chat completions on an Azure path. `deployment` is the `{deployment}` of
    /// `/openai/deployments/{deployment}/chat/completions`, and becomes the answer's `model`;
    /// `None` for the v1 form, where the body's `model` is the deployment.
    pub fn azure_chat(
        &self,
        body: &Value,
        header: Option<&str>,
        deployment: Option<&str>,
    ) -> MockReply {
        let mut body = body.clone();
        if let (Some(deployment), Some(object)) = (deployment, body.as_object_mut()) {
            object.insert("model".into(), Value::String(deployment.to_owned()));
        }
        let mut reply = self.respond(&body, header);
        if reply.status == 429 {
            // Azure's own rate-limit body: a code and a message, no `type`.
            let secs = reply.header("retry-after").unwrap_or("1").to_owned();
            reply.body = MockBody::Json(rate_limited(&secs));
            return reply;
        }
        if !content_filter_asked(&body, header) {
            return reply;
        }
        match (&reply.status, &reply.body) {
            (400, _) => {
                reply.body = MockBody::Json(content_filter_error());
            }
            (200, MockBody::Json(bytes)) => {
                if let Some(annotated) = annotate_completion(bytes) {
                    reply.body = MockBody::Json(annotated);
                }
            }
            (200, MockBody::Sse { .. }) => annotate_stream(&mut reply.body),
            _ => {}
        }
        reply
    }
}

/// Azure's deployment form answers 404 without `api-version`, before looking at anything else.
pub(crate) fn missing_api_version(query: Option<&str>, body: &Value) -> Option<MockReply> {
    let has_version = query.into_iter().flat_map(|q| q.split('&')).any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| k == "api-version" && !v.is_empty())
    });
    (!has_version).then(|| error(404, "404", "Resource not found", body))
}

/// Azure takes an `api-key` header or an Entra ID bearer token.
pub(crate) fn missing_key(
    api_key: Option<&str>,
    authorization: Option<&str>,
    body: &Value,
) -> Option<MockReply> {
    let present = api_key.is_some_and(|k| !k.is_empty())
        || authorization.is_some_and(|a| a.len() > "Bearer ".len());
    (!present).then(|| error(401, "401", ACCESS_DENIED, body))
}

fn error(status: u16, code: &str, message: &str, body: &Value) -> MockReply {
    MockReply {
        status,
        headers: responder::headers(JSON, &request_tag(body)),
        latency: std::time::Duration::ZERO,
        body: MockBody::Json(Bytes::from(
            json!({"error": {"code": code, "message": message}}).to_string(),
        )),
    }
}

fn rate_limited(retry_after: &str) -> Bytes {
    let message = format!(
        "Requests to the ChatCompletions_Create Operation have exceeded call rate limit of your \
         current OpenAI S0 pricing tier. Please retry after {retry_after} seconds."
    );
    Bytes::from(json!({"error": {"code": "429", "message": message}}).to_string())
}

fn content_filter_asked(body: &Value, header: Option<&str>) -> bool {
    let user_text = ChatRequest::parse(body)
        .map(|r| r.last_user_text().into_owned())
        .unwrap_or_default();
    let (tokens, _) = directives::split_message(&user_text);
    directives::resolve(header, &tokens).is_ok_and(|d| d.content_filter)
}

fn severity(filtered: bool, severity: &str) -> Value {
    json!({"filtered": filtered, "severity": severity})
}

fn detected() -> Value {
    json!({"filtered": false, "detected": false})
}

fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": {
        "hate": severity(false, "safe"),
        "jailbreak": detected(),
        "self_harm": severity(false, "safe"),
        "sexual": severity(false, "safe"),
        "violence": severity(false, "safe"),
    }}])
}

fn choice_filter_results() -> Value {
    json!({
        "hate": severity(false, "safe"),
        "protected_material_code": detected(),
        "protected_material_text": detected(),
        "self_harm": severity(false, "safe"),
        "sexual": severity(false, "safe"),
        "violence": severity(false, "safe"),
    })
}

/// Azure's 400 when the prompt trips the filter: OpenAI's error with `code: content_filter`
/// and an `innererror` saying which category.
fn content_filter_error() -> Bytes {
    Bytes::from(
        json!({"error": {
            "message": CONTENT_FILTER_MESSAGE,
            "type": null,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": severity(true, "high"),
                    "jailbreak": detected(),
                    "self_harm": severity(false, "safe"),
                    "sexual": severity(false, "safe"),
                    "violence": severity(false, "safe"),
                },
            },
        }})
        .to_string(),
    )
}

fn annotate_completion(bytes: &[u8]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    v.as_object_mut()?
        .insert("prompt_filter_results".into(), prompt_filter_results());
    for choice in v.get_mut("choices")?.as_array_mut()? {
        if let Some(choice) = choice.as_object_mut() {
            choice.insert("content_filter_results".into(), choice_filter_results());
        }
    }
    Some(Bytes::from(v.to_string()))
}

/// Azure opens a stream with a chunk that has no choices, only the prompt's filter results,
/// and annotates each choice as it finishes.
fn annotate_stream(body: &mut MockBody) {
    let MockBody::Sse { events, .. } = body else {
        return;
    };
    for event in events.iter_mut() {
        let Some(data) = event.strip_prefix(b"data: ") else {
            continue;
        };
        let Ok(mut chunk) = serde_json::from_slice::<Value>(data.trim_ascii_end()) else {
            continue;
        };
        let mut changed = false;
        for choice in chunk
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if choice.get("finish_reason").is_some_and(Value::is_string) {
                if let Some(choice) = choice.as_object_mut() {
                    choice.insert("content_filter_results".into(), choice_filter_results());
                    changed = true;
                }
            }
        }
        if changed {
            *event = Bytes::from(format!("data: {chunk}\n\n"));
        }
    }
    let opening = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": prompt_filter_results()});
    events.insert(0, Bytes::from(format!("data: {opening}\n\n")));
}
