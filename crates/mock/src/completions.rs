//! OpenAI's legacy completions (`POST /v1/completions`): the prompt is answered as the chat
//! responder answers it as a user message, whole or streamed, and the answer is rewritten to
//! the completions shape (`choices[].text`, `object: "text_completion"`).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::reply::{MockBody, MockReply};
use crate::Mock;

/// Fields of the legacy API that chat does not have; the mock ignores them.
const LEGACY_ONLY: &[&str] = &["prompt", "echo", "suffix", "best_of", "logprobs"];

impl Mock {
    /// `POST /v1/completions`. Directives come from the `x-mock` header or a `#mock:` token in
    /// the prompt.
    pub fn completions(&self, body: &Value, header: Option<&str>) -> MockReply {
        let mut chat = Map::new();
        if let Some(object) = body.as_object() {
            for (k, v) in object {
                if !LEGACY_ONLY.contains(&k.as_str()) {
                    chat.insert(k.clone(), v.clone());
                }
            }
        }
        let prompt = match body.get("prompt") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        if body.get("prompt").is_some() {
            chat.insert(
                "messages".into(),
                json!([{"role": "user", "content": prompt}]),
            );
        }
        let mut reply = self.respond(&Value::Object(chat), header);
        if reply.status >= 400 {
            return reply;
        }
        reply.body = match reply.body {
            MockBody::Json(bytes) => MockBody::Json(rewrite(&bytes)),
            MockBody::TruncatedJson(bytes) => MockBody::TruncatedJson(rewrite(&bytes)),
            MockBody::Sse {
                events,
                chunk_delay,
                abort_after,
                fill,
            } => MockBody::Sse {
                events: events.iter().map(rewrite_event).collect(),
                chunk_delay,
                abort_after,
                fill,
            },
            other => other,
        };
        reply
    }
}

/// A chat completion or chunk as a text completion: each choice's message or delta content
/// becomes its `text`.
fn rewrite(bytes: &[u8]) -> Bytes {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return Bytes::copy_from_slice(bytes);
    };
    if let Some(object) = value.as_object_mut() {
        object.insert("object".into(), "text_completion".into());
        if let Some(Value::String(id)) = object.get_mut("id") {
            *id = id.replacen("chatcmpl", "cmpl", 1);
        }
        if let Some(Value::Array(choices)) = object.get_mut("choices") {
            for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
                let message = choice.remove("message").or_else(|| choice.remove("delta"));
                let text = message
                    .as_ref()
                    .and_then(|m| m.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                choice.insert("text".into(), text.into());
                choice.entry("logprobs").or_insert(Value::Null);
            }
        }
    }
    Bytes::from(value.to_string())
}

fn rewrite_event(event: &Bytes) -> Bytes {
    let text = String::from_utf8_lossy(event);
    let Some(data) = text.trim_end().strip_prefix("data: ") else {
        return event.clone();
    };
    if data == "[DONE]" {
        return event.clone();
    }
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&rewrite(data.as_bytes()));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_is_answered_as_text_whole_and_streamed() {
        let mock = Mock::new();
        let reply = mock.completions(&json!({"model": "m", "prompt": "say hi"}), None);
        assert_eq!(reply.status, 200);
        let body: Value = serde_json::from_slice(&reply.json_bytes().unwrap()).unwrap();
        assert_eq!(body["object"], "text_completion");
        assert!(body["choices"][0]["text"]
            .as_str()
            .unwrap()
            .contains("say hi"));
        assert!(body["usage"]["prompt_tokens"].is_u64());

        let reply = mock.completions(
            &json!({"model": "m", "prompt": ["a b"], "stream": true,
                    "stream_options": {"include_usage": true}}),
            None,
        );
        let MockBody::Sse { events, .. } = reply.body else {
            panic!("not a stream")
        };
        let text: String = events
            .iter()
            .filter_map(|e| {
                let e = std::str::from_utf8(e)
                    .ok()?
                    .trim_end()
                    .strip_prefix("data: ")?;
                let v: Value = serde_json::from_str(e).ok()?;
                Some(v["choices"].get(0)?["text"].as_str()?.to_owned())
            })
            .collect();
        assert!(text.contains("a b"), "{text}");
        assert!(std::str::from_utf8(events.last().unwrap())
            .unwrap()
            .contains("[DONE]"));
    }
}
