//! `POST /v1/completions`: OpenAI's legacy text completions (LlamaIndex's `OpenAILike`
//! default), for OpenAI-compatible and Azure providers at their completions URL. The body goes
//! as sent minus the gateway's fields, with usage asked for on streams as chat does (and hidden
//! from a client that did not ask); the record reads `choices[].text`.

use gatecast_telemetry::record::RequestInfo;
use http::HeaderMap;
use serde_json::Value;

use super::chat_completions::session_header;
use super::embeddings::check_text_or_tokens;
use super::{ClientApi, Parsed};
use crate::error::ProxyError;
use crate::request::ChatRequest;

pub(crate) fn parse(body: &[u8], headers: &HeaderMap) -> Result<Parsed, ProxyError> {
    let req = ChatRequest::parse_requiring(body, session_header(headers), "prompt")?;
    if let Some(raw) = req.raw_field("prompt") {
        // OpenAI takes an empty prompt (the model starts a new document).
        check_text_or_tokens(raw, "prompt", true)?;
    }
    Ok(Parsed {
        api: ClientApi::Completions,
        req,
        native: None,
        responses: None,
    })
}

/// The prompt as the record's input messages, one user message per prompt text, so every
/// destination shows it as it shows chat. Token-id prompts have no text to show.
pub(crate) fn capture(req: &ChatRequest, request: &mut RequestInfo, limit: usize) {
    let Some(raw) = req.raw_field("prompt") else {
        return;
    };
    let texts: Vec<String> = match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(text)) => vec![text],
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(text) => Some(text),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if texts.is_empty() {
        return;
    }
    let messages: Vec<Value> = texts
        .into_iter()
        .map(|text| serde_json::json!({"role": "user", "content": text}))
        .collect();
    let json = Value::Array(messages).to_string();
    request.messages = Some(crate::proxy::bounded_array(&json, limit));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Result<Parsed, ProxyError> {
        parse(body.to_string().as_bytes(), &HeaderMap::new())
    }

    #[test]
    fn prompts_of_every_shape_are_taken_and_bad_ones_named() {
        for prompt in [
            json!("hi"),
            json!(""),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2]]),
        ] {
            assert!(
                parsed(json!({"model": "m", "prompt": prompt})).is_ok(),
                "{prompt}"
            );
        }
        for body in [
            json!({"model": "m"}),
            json!({"model": "m", "prompt": 3}),
            json!({"model": "m", "prompt": [{"a": 1}]}),
            json!({"model": "m", "prompt": []}),
        ] {
            match parsed(body.clone()) {
                Err(ProxyError::InvalidRequest { param, .. }) => {
                    assert_eq!(param.as_deref(), Some("prompt"), "{body}")
                }
                _ => panic!("{body} was taken"),
            }
        }
    }

    #[test]
    fn the_prompt_is_captured_as_user_messages() {
        let p = parsed(json!({"model": "m", "prompt": ["one", "two"]})).unwrap();
        let mut info = RequestInfo::default();
        capture(&p.req, &mut info, 1 << 20);
        let got: Value = serde_json::from_str(&info.messages.unwrap().json).unwrap();
        assert_eq!(
            got,
            json!([{"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
        );
    }
}
