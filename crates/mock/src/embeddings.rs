//! OpenAI's embeddings (`POST /v1/embeddings`): deterministic unit vectors derived from each
//! input's text, so the same input always embeds the same and different inputs differ.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::directives;
use crate::error_reply;
use crate::reply::{MockBody, MockReply};
use crate::request::word_count;
use crate::responder::{self, request_tag, JSON};
use crate::Mock;

/// Small so tests read the vectors easily; `dimensions` asks for more.
pub const DEFAULT_DIMENSIONS: u64 = 8;
/// OpenAI's largest model has 3072; beyond a few thousand a mock answer is just waste.
const MAX_DIMENSIONS: u64 = 4096;
/// OpenAI's limit on inputs per request.
const MAX_INPUTS: usize = 2048;
const FIELDS: &[&str] = &["input", "model", "dimensions", "encoding_format", "user"];

struct Invalid {
    message: String,
    param: Option<String>,
    code: &'static str,
}

fn invalid(param: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: Some(param.to_owned()),
        code: "invalid_value",
    }
}

/// One input, as text or as token ids.
enum Input<'a> {
    Text(&'a str),
    Tokens(Vec<u64>),
}

impl Input<'_> {
    fn tokens(&self) -> u64 {
        match self {
            Input::Text(text) => word_count(text).max(1) as u64,
            Input::Tokens(ids) => ids.len() as u64,
        }
    }

    /// What the vector is derived from; a tag keeps a text from colliding with token ids.
    fn seed(&self) -> Vec<u8> {
        match self {
            Input::Text(text) => [b"text:", text.as_bytes()].concat(),
            Input::Tokens(ids) => {
                let mut seed = b"tokens:".to_vec();
                for id in ids {
                    seed.extend_from_slice(&id.to_le_bytes());
                }
                seed
            }
        }
    }
}

struct EmbeddingsRequest<'a> {
    model: &'a str,
    inputs: Vec<Input<'a>>,
    dimensions: usize,
    base64: bool,
}

impl Mock {
    /// `POST /v1/embeddings`. Directives come from the `x-mock` header or a `#mock:` token in
    /// the last text input.
    pub fn embeddings(&self, body: &Value, header: Option<&str>) -> MockReply {
        let tag = request_tag(body);
        let request = match parse(body) {
            Ok(request) => request,
            Err(bad) => {
                return error(
                    400,
                    &bad.message,
                    bad.param.as_deref(),
                    Some(bad.code),
                    &tag,
                    None,
                    Duration::ZERO,
                )
            }
        };
        let last_text = request
            .inputs
            .iter()
            .rev()
            .find_map(|i| match i {
                Input::Text(text) => Some(*text),
                Input::Tokens(_) => None,
            })
            .unwrap_or("");
        let (tokens, _) = directives::split_message(last_text);
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
        if let Some((status, retry_after)) = self.injected_error(&directives, header, last_text) {
            let message = format!("mock error {status}");
            return error(status, &message, None, None, &tag, retry_after, latency);
        }
        let bytes = Bytes::from(answer(&request).to_string());
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

fn parse(body: &Value) -> Result<EmbeddingsRequest<'_>, Invalid> {
    let Some(object) = body.as_object() else {
        return Err(Invalid {
            message: "The request body must be a JSON object.".into(),
            param: None,
            code: "invalid_json",
        });
    };
    if let Some(extra) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Invalid {
            message: format!("Unknown parameter: '{extra}'."),
            param: Some(extra.clone()),
            code: "unknown_parameter",
        });
    }
    let model = match object.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.as_str(),
        None => {
            return Err(Invalid {
                message: "Missing required parameter: 'model'.".into(),
                param: Some("model".into()),
                code: "missing_required_parameter",
            })
        }
        Some(_) => {
            return Err(invalid(
                "model",
                "Invalid type for 'model': expected a string.",
            ))
        }
    };
    let inputs = inputs(object)?;
    let dimensions = match object.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=MAX_DIMENSIONS) => n,
            _ => {
                return Err(invalid(
                    "dimensions",
                    format!(
                        "Invalid 'dimensions': expected an integer from 1 to {MAX_DIMENSIONS}."
                    ),
                ))
            }
        },
    };
    let base64 = match object.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
            ))
        }
    };
    Ok(EmbeddingsRequest {
        model,
        inputs,
        dimensions: dimensions as usize,
        base64,
    })
}

fn inputs(object: &Map<String, Value>) -> Result<Vec<Input<'_>>, Invalid> {
    const SHAPE: &str = "'$.input' is invalid: expected a non-empty string, an array of non-empty \
strings, an array of token ids, or an array of arrays of token ids.";
    let bad = || invalid("input", SHAPE);
    let token_ids = |items: &[Value]| -> Option<Vec<u64>> {
        (!items.is_empty()).then_some(())?;
        items.iter().map(Value::as_u64).collect()
    };
    let inputs = match object.get("input") {
        None => {
            return Err(Invalid {
                message: "Missing required parameter: 'input'.".into(),
                param: Some("input".into()),
                code: "missing_required_parameter",
            })
        }
        Some(Value::String(text)) if !text.is_empty() => vec![Input::Text(text)],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                vec![Input::Tokens(token_ids(items).ok_or_else(bad)?)]
            } else {
                let mut inputs = Vec::with_capacity(items.len());
                for item in items {
                    inputs.push(match item {
                        Value::String(text) if !text.is_empty() => Input::Text(text),
                        Value::Array(ids) => Input::Tokens(token_ids(ids).ok_or_else(bad)?),
                        _ => return Err(bad()),
                    });
                }
                inputs
            }
        }
        Some(_) => return Err(bad()),
    };
    if inputs.len() > MAX_INPUTS {
        return Err(invalid(
            "input",
            format!("'$.input' is too long: at most {MAX_INPUTS} inputs per request."),
        ));
    }
    Ok(inputs)
}

/// A unit vector from the input: SHA-256 in counter mode gives the raw components.
fn vector(input: &Input<'_>, dimensions: usize) -> Vec<f32> {
    let seed = input.seed();
    let mut raw = Vec::with_capacity(dimensions);
    let mut block = 0u32;
    while raw.len() < dimensions {
        let digest = Sha256::new()
            .chain_update(&seed)
            .chain_update(block.to_le_bytes())
            .finalize();
        for word in digest.chunks_exact(4) {
            let n = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            raw.push(f64::from(n) / f64::from(u32::MAX) * 2.0 - 1.0);
        }
        block += 1;
    }
    raw.truncate(dimensions);
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    // A zero vector needs every hash word at the exact midpoint: never, but do not divide by 0.
    let norm = if norm > 0.0 { norm } else { 1.0 };
    raw.into_iter().map(|x| (x / norm) as f32).collect()
}

/// Little-endian float32s, base64-encoded, as OpenAI sends for `encoding_format: base64`.
fn base64_of(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn answer(request: &EmbeddingsRequest<'_>) -> Value {
    let data: Vec<Value> = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let v = vector(input, request.dimensions);
            let embedding = if request.base64 {
                json!(base64_of(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = request.inputs.iter().map(Input::tokens).sum();
    json!({"object": "list", "data": data, "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_deterministic_and_distinct() {
        let a = vector(&Input::Text("hello"), 8);
        assert_eq!(a, vector(&Input::Text("hello"), 8));
        assert_ne!(a, vector(&Input::Text("hullo"), 8));
        for dims in [1, 7, 8, 9, 300] {
            let v = vector(&Input::Text("hello"), dims);
            assert_eq!(v.len(), dims);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{dims}: {norm}");
        }
        assert_ne!(
            vector(&Input::Tokens(vec![1, 2]), 8),
            vector(&Input::Tokens(vec![2, 1]), 8)
        );
    }

    #[test]
    fn base64_is_little_endian_float32() {
        let v = [1.0f32, -0.5];
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(base64_of(&v))
            .unwrap();
        assert_eq!(decoded, [0, 0, 128, 63, 0, 0, 0, 191]);
    }

    #[test]
    fn rejects_bad_input_naming_the_param() {
        for (body, param) in [
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": ["a", 3]}), "input"),
            (json!({"model": "m", "input": [[]]}), "input"),
            (json!({"model": "m", "input": [1.5]}), "input"),
            (json!({"input": "a"}), "model"),
            (
                json!({"model": "m", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (json!({"model": "m", "input": "a", "trace": {}}), "trace"),
        ] {
            let Err(err) = parse(&body) else {
                panic!("{body}")
            };
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
        }
    }
}
