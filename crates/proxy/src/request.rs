//! Parsing a chat request once, and writing the body that goes upstream.
//!
//! The body is split into its top-level fields, each kept as raw JSON text in the order the
//! client sent it. Only the handful of small fields the gateway needs are decoded; `messages`
//! and `tools` are never re-parsed or re-serialised on the request path, and every field a
//! provider understands passes through byte for byte.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use gatecast_telemetry::record::RequestInfo;

use crate::error::ProxyError;

/// Fields that exist only for the gateway and are never forwarded.
const GATEWAY_FIELDS: [&str; 2] = ["trace", "session_id"];

/// Levels of objects and arrays a `trace` may nest, itself included: far more than metadata
/// needs, and well inside what the JSON parser accepts.
pub const MAX_TRACE_DEPTH: usize = 64;

/// A chat request as the client sent it, with the gateway's fields decoded.
#[derive(Debug)]
pub struct ChatRequest {
    fields: Vec<(String, Box<RawValue>)>,
    /// `model`, `stream` and the `gen_ai.request.*` parameters, decoded straight into the
    /// record's shape so the proxy copies nothing field by field. Content is never put here.
    pub info: RequestInfo,
    /// The client asked for the usage chunk itself (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    pub user: Option<String>,
    pub session_id: Option<String>,
    /// The `trace` object; `None` when absent or `null`.
    pub trace: Option<Map<String, Value>>,
}

/// Ordered top-level fields; duplicate keys keep the last value, as most JSON parsers do.
struct Fields(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<String>()? {
                    let value: Box<RawValue> = map.next_value()?;
                    if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == key) {
                        slot.1 = value;
                    } else {
                        fields.push((key, value));
                    }
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

impl ChatRequest {
    /// Parses the body. `session_header` is `x-session-id`; the body's `session_id` wins.
    pub fn parse(body: &[u8], session_header: Option<&str>) -> Result<Self, ProxyError> {
        let Fields(fields) =
            serde_json::from_slice(body).map_err(|e| ProxyError::InvalidRequest {
                message: format!("invalid JSON body: {e}"),
                param: None,
            })?;
        let mut req = ChatRequest {
            fields,
            info: RequestInfo::default(),
            client_wants_usage: false,
            user: None,
            session_id: None,
            trace: None,
        };
        for (key, raw) in &req.fields {
            let raw = raw.get();
            match key.as_str() {
                "model" => req.info.model = decode::<String>(key, raw)?,
                "stream" => req.info.stream = decode::<Option<bool>>(key, raw)?.unwrap_or(false),
                "stream_options" => {
                    #[derive(Deserialize)]
                    struct StreamOptions {
                        include_usage: Option<bool>,
                    }
                    let opts = decode::<Option<StreamOptions>>(key, raw)?;
                    req.client_wants_usage = opts.and_then(|o| o.include_usage).unwrap_or(false);
                }
                "user" => req.user = decode::<Option<String>>(key, raw)?,
                "session_id" => req.session_id = scalar_string(key, raw)?,
                "trace" => req.trace = trace_object(raw)?,
                "max_tokens" | "max_completion_tokens" => {
                    if let Some(v) = decode::<Option<u64>>(key, raw)? {
                        req.info.max_tokens = Some(v);
                    }
                }
                "temperature" => req.info.temperature = decode(key, raw)?,
                "top_p" => req.info.top_p = decode(key, raw)?,
                "frequency_penalty" => req.info.frequency_penalty = decode(key, raw)?,
                "presence_penalty" => req.info.presence_penalty = decode(key, raw)?,
                "seed" => req.info.seed = decode(key, raw)?,
                "n" => req.info.choice_count = decode(key, raw)?,
                "stop" => req.info.stop_sequences = stop_sequences(key, raw)?,
                _ => {}
            }
        }
        if req.info.model.is_empty() {
            return Err(ProxyError::InvalidRequest {
                message: "you must provide a `model` parameter".into(),
                param: Some("model".into()),
            });
        }
        if !req.fields.iter().any(|(k, _)| k == "messages") {
            return Err(ProxyError::InvalidRequest {
                message: "missing required parameter: `messages`".into(),
                param: Some("messages".into()),
            });
        }
        if req.session_id.is_none() {
            req.session_id = session_header.filter(|s| !s.is_empty()).map(str::to_owned);
        }
        Ok(req)
    }

    pub fn model(&self) -> &str {
        &self.info.model
    }

    pub fn stream(&self) -> bool {
        self.info.stream
    }

    /// The raw JSON text of a top-level field.
    pub fn raw_field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
    }

    /// Every top-level field as (name, raw JSON text), in the client's order and with the
    /// gateway's own fields among them: for converters that write another provider's wire.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.get()))
    }

    /// Writes the body sent upstream: the client's fields in their order, minus the gateway's
    /// own, with `model` replaced by the provider's name for it and, when streaming, usage
    /// reporting switched on so the exchange can be measured.
    pub fn upstream_body(&self, upstream_model: &str) -> Vec<u8> {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + upstream_model.len() + 48);
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for (key, raw) in &self.fields {
            if GATEWAY_FIELDS.contains(&key.as_str()) {
                continue;
            }
            sep(&mut out);
            push_json_string(&mut out, key);
            out.push(b':');
            match key.as_str() {
                "model" => push_json_string(&mut out, upstream_model),
                "stream_options" if self.info.stream => {
                    push_stream_options(&mut out, raw.get());
                }
                _ => out.extend_from_slice(raw.get().as_bytes()),
            }
        }
        if self.info.stream && self.raw_field("stream_options").is_none() {
            sep(&mut out);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }
}

/// A client's body in a wire a provider speaks natively (Anthropic Messages to an Anthropic
/// provider): forwarded field by field as sent, minus the gateway's own fields, with the
/// provider's name for the model.
#[derive(Debug)]
pub struct NativeBody {
    fields: Vec<(String, Box<RawValue>)>,
}

/// What a native body never carries upstream: the gateway's fields, and `user`, which chat
/// has and Messages does not (Anthropic refuses unknown fields; it has `metadata.user_id`).
const NATIVE_GATEWAY_FIELDS: [&str; 3] = ["trace", "session_id", "user"];

impl NativeBody {
    pub fn parse(body: &[u8]) -> Result<Self, ProxyError> {
        let Fields(fields) =
            serde_json::from_slice(body).map_err(|e| ProxyError::InvalidRequest {
                message: format!("invalid JSON body: {e}"),
                param: None,
            })?;
        Ok(Self { fields })
    }

    pub fn write(&self, upstream_model: &str) -> Vec<u8> {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + upstream_model.len() + 2);
        out.push(b'{');
        let mut first = true;
        for (key, raw) in &self.fields {
            if NATIVE_GATEWAY_FIELDS.contains(&key.as_str()) {
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            push_json_string(&mut out, key);
            out.push(b':');
            if key == "model" {
                push_json_string(&mut out, upstream_model);
            } else {
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        out.push(b'}');
        out
    }
}

/// Keeps the client's other stream options and forces `include_usage`.
fn push_stream_options(out: &mut Vec<u8>, raw: &str) {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(mut map)) => {
            map.insert("include_usage".into(), Value::Bool(true));
            // A map of plain JSON values always serialises.
            let _ = serde_json::to_writer(&mut *out, &map);
        }
        _ => out.extend_from_slice(br#"{"include_usage":true}"#),
    }
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// serde quotes a mistyped string whole; the message keeps its start.
const QUOTED_ERROR_CHARS: usize = 512;

/// The `trace` object, or a 400 that says what is wrong with it.
fn trace_object(raw: &str) -> Result<Option<Map<String, Value>>, ProxyError> {
    let invalid = |message: String| ProxyError::InvalidRequest {
        message,
        param: Some("trace".into()),
    };
    check_trace_text(raw).map_err(invalid)?;
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Err(invalid(format!(
            "`trace` must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(e) => Err(invalid(format!("`trace` is not valid JSON: {e}"))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the syntax check of the whole body lets through but a `trace` may not hold: nesting
/// deeper than [`MAX_TRACE_DEPTH`], and `\u` escapes of lone UTF-16 surrogates, which no
/// string can hold. One pass over the raw text, which is already valid JSON syntax.
fn check_trace_text(raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let hex4 = |at: usize| -> Option<u16> {
        let digits = bytes.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let (mut depth, mut in_string, mut i) = (0usize, false, 0usize);
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') if bytes.get(i + 1) == Some(&b'u') => {
                match hex4(i + 2) {
                    Some(high @ 0xD800..=0xDBFF) => {
                        let paired = bytes.get(i + 6..i + 8) == Some(b"\\u")
                            && matches!(hex4(i + 8), Some(0xDC00..=0xDFFF));
                        if !paired {
                            return Err(lone_surrogate(high));
                        }
                        i += 12;
                    }
                    Some(low @ 0xDC00..=0xDFFF) => return Err(lone_surrogate(low)),
                    _ => i += 6,
                }
                continue;
            }
            // Any other escape is two bytes; the second may be a quote.
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') => {
                depth += 1;
                if depth > MAX_TRACE_DEPTH {
                    return Err(format!(
                        "`trace` is nested too deeply: at most {MAX_TRACE_DEPTH} levels of \
                         objects and arrays"
                    ));
                }
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn lone_surrogate(unit: u16) -> String {
    format!(
        "`trace` holds an invalid string escape: `\\u{unit:04x}` is a lone UTF-16 surrogate \
         (a \\uD800-\\uDBFF escape must be followed by a \\uDC00-\\uDFFF one)"
    )
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, raw: &str) -> Result<T, ProxyError> {
    serde_json::from_str(raw).map_err(|e| ProxyError::InvalidRequest {
        message: crate::error::bounded(
            &format!("invalid value for `{key}`: {e}"),
            QUOTED_ERROR_CHARS,
        ),
        param: Some(key.to_owned()),
    })
}

/// `session_id` may reasonably be sent as a number; it is an opaque string to us.
fn scalar_string(key: &str, raw: &str) -> Result<Option<String>, ProxyError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::String(s)) => Ok(Some(s)),
        Ok(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => Err(ProxyError::InvalidRequest {
            message: format!("`{key}` must be a string"),
            param: Some(key.to_owned()),
        }),
    }
}

fn stop_sequences(key: &str, raw: &str) -> Result<Vec<String>, ProxyError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }
    Ok(match decode::<Option<Stop>>(key, raw)? {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ChatRequest {
        ChatRequest::parse(v.to_string().as_bytes(), None).unwrap()
    }

    #[test]
    fn strips_gateway_fields_and_keeps_unknown_ones_in_order() {
        let req = parse(json!({
            "model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "trace": {"trace_id": "run-42"}, "session_id": "chat-9", "user": "u-17",
            "logit_bias": {"42": 1}, "x_vendor": [1, 2]
        }));
        let body: Value = serde_json::from_slice(&req.upstream_body("gpt-4o-mini")).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                   "user": "u-17", "logit_bias": {"42": 1}, "x_vendor": [1, 2]})
        );
        assert_eq!(req.session_id.as_deref(), Some("chat-9"));
        assert_eq!(req.user.as_deref(), Some("u-17"));
        assert_eq!(req.trace.unwrap()["trace_id"], "run-42");
    }

    #[test]
    fn streaming_injects_include_usage_and_keeps_other_options() {
        let req = parse(json!({"model": "m", "messages": [], "stream": true}));
        assert!(!req.client_wants_usage);
        let body: Value = serde_json::from_slice(&req.upstream_body("m")).unwrap();
        assert_eq!(body["stream_options"], json!({"include_usage": true}));

        let req = parse(json!({"model": "m", "messages": [], "stream": true,
                               "stream_options": {"include_usage": false, "other": 1}}));
        let body: Value = serde_json::from_slice(&req.upstream_body("m")).unwrap();
        assert_eq!(
            body["stream_options"],
            json!({"include_usage": true, "other": 1})
        );

        let req = parse(json!({"model": "m", "messages": [], "stream": true,
                               "stream_options": {"include_usage": true}}));
        assert!(req.client_wants_usage);
    }

    #[test]
    fn non_streaming_body_is_untouched_apart_from_model() {
        let req = parse(json!({"model": "alias", "messages": [], "stream_options": {"x": 1}}));
        let body: Value = serde_json::from_slice(&req.upstream_body("real")).unwrap();
        assert_eq!(
            body,
            json!({"model": "real", "messages": [], "stream_options": {"x": 1}})
        );
    }

    #[test]
    fn session_header_is_a_fallback() {
        let body = json!({"model": "m", "messages": []}).to_string();
        let req = ChatRequest::parse(body.as_bytes(), Some("hdr")).unwrap();
        assert_eq!(req.session_id.as_deref(), Some("hdr"));
        let body = json!({"model": "m", "messages": [], "session_id": "body"}).to_string();
        let req = ChatRequest::parse(body.as_bytes(), Some("hdr")).unwrap();
        assert_eq!(req.session_id.as_deref(), Some("body"));
    }

    #[test]
    fn params_are_decoded() {
        let req = parse(
            json!({"model": "m", "messages": [], "max_completion_tokens": 5,
            "temperature": 0.5, "top_p": 1, "seed": -3, "n": 2, "stop": "END",
            "frequency_penalty": 0.1, "presence_penalty": 0.2}),
        );
        assert_eq!(
            req.info,
            RequestInfo {
                model: "m".into(),
                max_tokens: Some(5),
                temperature: Some(0.5),
                top_p: Some(1.0),
                frequency_penalty: Some(0.1),
                presence_penalty: Some(0.2),
                seed: Some(-3),
                stop_sequences: vec!["END".into()],
                choice_count: Some(2),
                ..RequestInfo::default()
            }
        );
    }

    #[test]
    fn rejects_bad_shapes_with_the_offending_param() {
        for (body, param) in [
            (
                json!({"model": "m", "messages": [], "trace": "x"}),
                Some("trace"),
            ),
            (
                json!({"model": "m", "messages": [], "trace": [1]}),
                Some("trace"),
            ),
            (json!({"messages": []}), Some("model")),
            (json!({"model": "m"}), Some("messages")),
            (json!({"model": 3, "messages": []}), Some("model")),
            (
                json!({"model": "m", "messages": [], "temperature": "hot"}),
                Some("temperature"),
            ),
            (json!([1, 2]), None),
        ] {
            match ChatRequest::parse(body.to_string().as_bytes(), None) {
                Err(ProxyError::InvalidRequest { param: p, .. }) => {
                    assert_eq!(p.as_deref(), param, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(ChatRequest::parse(b"{not json", None).is_err());
    }

    #[test]
    fn a_huge_mistyped_value_is_quoted_bounded() {
        let body = json!({"model": "m", "messages": [], "max_tokens": "9".repeat(1 << 20)});
        match ChatRequest::parse(body.to_string().as_bytes(), None) {
            Err(e @ ProxyError::InvalidRequest { .. }) => {
                let message = e.to_string();
                assert!(message.starts_with("invalid value for `max_tokens`"));
                assert!(message.len() < 2048, "{}", message.len());
                assert!(message.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    fn trace_error(trace: &str) -> String {
        let body = format!(r#"{{"model": "m", "messages": [], "trace": {trace}}}"#);
        match ChatRequest::parse(body.as_bytes(), None) {
            Err(ProxyError::InvalidRequest { message, param }) => {
                assert_eq!(param.as_deref(), Some("trace"), "{message}");
                message
            }
            other => panic!("{trace}: {other:?}"),
        }
    }

    #[test]
    fn a_bad_trace_says_what_is_wrong_with_it() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n - 1), "]".repeat(n - 1));
        let deep = format!(r#"{{"a": {}}}"#, nested(MAX_TRACE_DEPTH + 1));
        assert_eq!(
            trace_error(&deep),
            "`trace` is nested too deeply: at most 64 levels of objects and arrays"
        );
        // Deeper than the JSON parser itself goes, the message is the same.
        let deeper = format!(r#"{{"a": {}}}"#, nested(500));
        assert!(trace_error(&deeper).contains("nested too deeply"));
        let fits = format!(r#"{{"a": {}}}"#, nested(MAX_TRACE_DEPTH));
        let body = format!(r#"{{"model": "m", "messages": [], "trace": {fits}}}"#);
        assert!(ChatRequest::parse(body.as_bytes(), None).is_ok());
        // Brackets inside strings are text.
        let text = format!(r#"{{"a": "{}"}}"#, "[{".repeat(100));
        let body = format!(r#"{{"model": "m", "messages": [], "trace": {text}}}"#);
        assert!(ChatRequest::parse(body.as_bytes(), None).is_ok());

        for (trace, unit) in [
            (r#"{"a": "\ud800"}"#, r"\ud800"),
            (r#"{"a": "x\uDBFFy"}"#, r"\udbff"),
            (r#"{"a": "\udc00"}"#, r"\udc00"),
            (r#"{"a": "\ud800\u0041"}"#, r"\ud800"),
            (r#"{"\ud800": 1}"#, r"\ud800"),
        ] {
            let message = trace_error(trace);
            assert!(
                message.starts_with("`trace` holds an invalid string escape")
                    && message.contains(&format!("`{unit}` is a lone UTF-16 surrogate")),
                "{trace}: {message}"
            );
        }
        // A pair is one character, and an escaped backslash is no escape.
        let body = r#"{"model": "m", "messages": [], "trace": {"a": "\ud83d\ude00 \\ud800 \""}}"#;
        let req = ChatRequest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(req.trace.unwrap()["a"], "\u{1f600} \\ud800 \"");
        assert_eq!(
            trace_error("[1]"),
            "`trace` must be a JSON object, not an array"
        );
        assert_eq!(
            trace_error(r#""x""#),
            "`trace` must be a JSON object, not a string"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = ChatRequest::parse(&bytes, None);
        }

        #[test]
        fn upstream_body_is_always_valid_json(
            model in ".{1,20}",
            user in proptest::option::of(".{0,20}"),
            extra in proptest::collection::btree_map("[a-z_]{1,8}", ".{0,10}", 0..5),
            stream in proptest::bool::ANY,
        ) {
            let mut body = json!({"model": model, "messages": [{"role": "user", "content": "x"}], "stream": stream});
            if let Some(u) = user { body["user"] = json!(u); }
            for (k, v) in extra { body[k] = json!(v); }
            if let Ok(req) = ChatRequest::parse(body.to_string().as_bytes(), None) {
                let out: Value = serde_json::from_slice(&req.upstream_body("up")).unwrap();
                proptest::prop_assert_eq!(&out["model"], &json!("up"));
                proptest::prop_assert!(out.get("trace").is_none() && out.get("session_id").is_none());
            }
        }
    }
}
