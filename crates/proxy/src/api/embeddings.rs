//! `POST /v1/embeddings`: OpenAI's embeddings API, for OpenAI-compatible and Azure providers
//! at their embeddings URL. The body goes as sent minus the gateway's fields and the answer
//! comes back unchanged; the record reads only its usage, model and first vector's length
//! (`capture.rs`), never the vectors.

use std::fmt;

use gatecast_telemetry::record::{Content, RequestInfo};
use http::HeaderMap;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::chat_completions::session_header;
use super::{ClientApi, Parsed};
use crate::error::ProxyError;
use crate::request::ChatRequest;

pub(crate) fn parse(body: &[u8], headers: &HeaderMap) -> Result<Parsed, ProxyError> {
    let mut req = ChatRequest::parse_requiring(body, session_header(headers), "input")?;
    if req.stream() {
        return Err(invalid(
            "stream",
            "embeddings are not streamed: `stream` must be false or absent".into(),
        ));
    }
    if let Some(raw) = req.raw_field("input") {
        check_text_or_tokens(raw, "input", false)?;
    }
    if let Some(raw) = req.raw_field("dimensions") {
        match serde_json::from_str::<Option<u64>>(raw) {
            Ok(Some(0)) | Err(_) => {
                return Err(invalid(
                    "dimensions",
                    "`dimensions` must be a positive integer".into(),
                ))
            }
            Ok(dimensions) => req.info.embedding_dimensions = dimensions,
        }
    }
    if let Some(raw) = req.raw_field("encoding_format") {
        match serde_json::from_str::<Option<&str>>(raw) {
            Ok(None | Some("float" | "base64")) => {}
            _ => {
                return Err(invalid(
                    "encoding_format",
                    "`encoding_format` must be \"float\" or \"base64\"".into(),
                ))
            }
        }
    }
    Ok(Parsed {
        api: ClientApi::Embeddings,
        req,
        native: None,
        responses: None,
    })
}

/// Keeps the `input` for the record, within `limit` bytes.
pub(crate) fn capture(req: &ChatRequest, request: &mut RequestInfo, limit: usize) {
    request.embeddings_input = req.raw_field("input").map(|raw| bounded_input(raw, limit));
}

/// A list loses whole inputs from its middle, as chat's messages do; a single string is cut.
fn bounded_input(raw: &str, limit: usize) -> Content {
    if raw.starts_with('[') {
        return crate::proxy::bounded_array(raw, limit);
    }
    if raw.len() <= limit {
        return Content {
            json: raw.to_owned(),
            truncated: false,
        };
    }
    let text: String = serde_json::from_str(raw).unwrap_or_default();
    let mut cut = limit.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Content {
        json: serde_json::Value::from(&text[..cut]).to_string(),
        truncated: true,
    }
}

fn invalid(param: &str, message: String) -> ProxyError {
    ProxyError::InvalidRequest {
        message,
        param: Some(param.to_owned()),
    }
}

/// `field` (embeddings' `input`, completions' `prompt`) is a string, a list of strings, a
/// list of token ids, or a list of such lists, none of them empty (an empty string only
/// where `allow_empty` says): checked in one pass over the raw text, with nothing copied.
pub(crate) fn check_text_or_tokens(
    raw: &str,
    field: &'static str,
    allow_empty: bool,
) -> Result<(), ProxyError> {
    let mut de = serde_json::Deserializer::from_str(raw);
    de.deserialize_any(TextOrTokens { field, allow_empty })
        .map_err(|e| invalid(field, crate::error::bounded(&e.to_string(), 512)))
}

struct TextOrTokens {
    field: &'static str,
    allow_empty: bool,
}

impl TextOrTokens {
    fn shape<E: de::Error>(&self) -> E {
        E::custom(format_args!(
            "`{}` must be a non-empty string, or a non-empty list of strings, of token ids or of lists of token ids",
            self.field
        ))
    }
}

impl<'de> Visitor<'de> for TextOrTokens {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, or a list of strings, of token ids or of lists of token ids")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.is_empty() && !self.allow_empty {
            return Err(self.shape());
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut first: Option<Item> = None;
        while let Some(item) = seq.next_element::<Item>()? {
            match first {
                None => first = Some(item),
                Some(kind) if kind == item => {}
                Some(_) => {
                    return Err(de::Error::custom(format_args!(
                        "`{}` mixes kinds: every element must be a string, every one a token id, or every one a list of token ids",
                        self.field
                    )))
                }
            }
        }
        if first.is_none() {
            return Err(self.shape());
        }
        Ok(())
    }
}

/// One element of a list `input` or `prompt`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Text,
    Token,
    Tokens,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a token id or a list of token ids")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
                Ok(Item::Text)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
                Ok(Item::Token)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                let mut any = false;
                while seq.next_element::<u64>()?.is_some() {
                    any = true;
                }
                if !any {
                    return Err(de::Error::custom("a list of token ids must not be empty"));
                }
                Ok(Item::Tokens)
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

/// The length of an embeddings answer's first vector, read without keeping any vector: a
/// float list is counted, a base64 one measured (4 bytes a float).
#[derive(Default)]
pub(crate) struct FirstVector(pub Option<u64>);

impl<'de> Deserialize<'de> for FirstVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DataVisitor;
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = FirstVector;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of embeddings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstVector, A::Error> {
                #[derive(Deserialize)]
                struct Item {
                    #[serde(default)]
                    embedding: VectorLen,
                }
                let first = seq.next_element::<Item>()?.and_then(|i| i.embedding.0);
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstVector(first))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FirstVector, E> {
                Ok(FirstVector(None))
            }
        }
        d.deserialize_any(DataVisitor)
    }
}

#[derive(Default)]
struct VectorLen(Option<u64>);

impl<'de> Deserialize<'de> for VectorLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LenVisitor;
        impl<'de> Visitor<'de> for LenVisitor {
            type Value = VectorLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a vector of floats or its base64 text")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<VectorLen, A::Error> {
                let mut n = 0u64;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(VectorLen(Some(n)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VectorLen, E> {
                let text = v.trim_end_matches('=');
                let bytes = text.len() as u64 * 3 / 4;
                Ok(VectorLen(Some(bytes / 4)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<VectorLen, E> {
                Ok(VectorLen(None))
            }
        }
        d.deserialize_any(LenVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(body: serde_json::Value) -> Result<Parsed, ProxyError> {
        parse(body.to_string().as_bytes(), &HeaderMap::new())
    }

    fn refused_param(body: serde_json::Value) -> Option<String> {
        match parsed(body) {
            Err(ProxyError::InvalidRequest { param, .. }) => param,
            Err(other) => panic!("{other:?}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn every_input_shape_openai_takes_is_accepted() {
        for input in [
            serde_json::json!("one"),
            serde_json::json!(["a", "b"]),
            serde_json::json!([1, 2, 3]),
            serde_json::json!([[1, 2], [3]]),
        ] {
            let p = parsed(serde_json::json!({"model": "m", "input": input, "dimensions": 4}))
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.req.info.embedding_dimensions, Some(4));
        }
    }

    #[test]
    fn bad_inputs_and_options_name_their_field() {
        use serde_json::json;
        for (body, param) in [
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": "m", "input": ["a", 1]}), "input"),
            (json!({"model": "m", "input": [[]]}), "input"),
            (json!({"model": "m", "input": [{"x": 1}]}), "input"),
            (
                json!({"model": "m", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "a", "dimensions": "8"}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "a", "encoding_format": "hex"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "a", "stream": true}),
                "stream",
            ),
            (json!({"input": "a"}), "model"),
        ] {
            assert_eq!(
                refused_param(body.clone()).as_deref(),
                Some(param),
                "{body}"
            );
        }
    }

    #[test]
    fn the_first_vector_is_measured_in_both_encodings() {
        #[derive(Deserialize)]
        struct View {
            data: FirstVector,
        }
        let floats: View =
            serde_json::from_str(r#"{"data":[{"embedding":[0.1,0.2,0.3]},{"embedding":[1]}]}"#)
                .unwrap();
        assert_eq!(floats.data.0, Some(3));
        // Two little-endian f32s are 8 bytes, 12 base64 characters with their padding.
        let b64: View = serde_json::from_str(r#"{"data":[{"embedding":"AAAAAAAAgD8="}]}"#).unwrap();
        assert_eq!(b64.data.0, Some(2));
        let none: View = serde_json::from_str(r#"{"data":[]}"#).unwrap();
        assert_eq!(none.data.0, None);
    }

    #[test]
    fn a_long_input_is_kept_within_the_limit() {
        let c = bounded_input(r#""héllo world""#, 3);
        assert!(c.truncated);
        assert_eq!(c.json, r#""hé""#);
        let c = bounded_input(r#"["aaaa","bbbb","cccc"]"#, 16);
        assert!(c.truncated);
        assert_eq!(c.json, r#"["aaaa","cccc"]"#);
    }
}
