//! Limits on the caller's `trace` metadata, so a request can never make a record unbounded.
//!
//! Over-limit metadata is cut and counted, never a reason to fail the request.

use serde_json::{Map, Value};

pub const MAX_USER_CHARS: usize = 128;
pub const MAX_SESSION_CHARS: usize = 256;
pub const MAX_CUSTOM_KEYS: usize = 128;
/// Measured on the value's JSON form, which is what ends up in every export.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Keys with a meaning of their own; every other key is custom metadata.
pub const RESERVED_KEYS: [&str; 7] = [
    "trace_id",
    "trace_name",
    "span_name",
    "generation_name",
    "parent_span_id",
    "environment",
    "release",
];

pub fn is_reserved(key: &str) -> bool {
    RESERVED_KEYS.contains(&key)
}

/// Coerces reserved keys to strings, keeps at most [`MAX_CUSTOM_KEYS`] custom keys and cuts
/// values to [`MAX_VALUE_BYTES`]. Returns the number of custom keys dropped.
pub fn sanitize(trace: Map<String, Value>) -> (Map<String, Value>, u32) {
    let mut out = Map::new();
    let mut custom = 0usize;
    let mut dropped = 0u32;
    for (key, value) in trace {
        if is_reserved(&key) {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, Value::String(cut(text)));
            continue;
        }
        if custom >= MAX_CUSTOM_KEYS {
            dropped = dropped.saturating_add(1);
            continue;
        }
        custom += 1;
        let value = match value {
            Value::String(s) => Value::String(cut(s)),
            v @ (Value::Array(_) | Value::Object(_)) => {
                let text = v.to_string();
                if text.len() > MAX_VALUE_BYTES {
                    Value::String(cut(text))
                } else {
                    v
                }
            }
            scalar => scalar,
        };
        out.insert(key, value);
    }
    (out, dropped)
}

/// Cuts `s` at a char boundary so that its JSON string form (quotes and escapes included)
/// stays within [`MAX_VALUE_BYTES`].
fn cut(mut s: String) -> String {
    let mut size = 2usize;
    let mut end = None;
    for (i, c) in s.char_indices() {
        size += crate::span::limits::json_len(c);
        if size > MAX_VALUE_BYTES {
            end = Some(i);
            break;
        }
    }
    if let Some(end) = end {
        s.truncate(end);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn serialized_len(v: &Value) -> usize {
        serde_json::to_string(v).unwrap().len()
    }

    #[test]
    fn reserved_keys_become_strings() {
        let (m, dropped) = sanitize(obj(json!({
            "trace_id": 42, "span_name": true, "trace_name": {"a": 1}, "release": [1, "x"],
            "environment": 1.5, "generation_name": null, "customer": 7
        })));
        assert_eq!(m["trace_id"], "42");
        assert_eq!(m["span_name"], "true");
        assert_eq!(m["trace_name"], "{\"a\":1}");
        assert_eq!(m["release"], "[1,\"x\"]");
        assert_eq!(m["environment"], "1.5");
        assert!(!m.contains_key("generation_name"));
        assert_eq!(m["customer"], 7, "custom scalars keep their type");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn custom_keys_are_bounded_and_counted() {
        let mut big = Map::new();
        for i in 0..200 {
            big.insert(format!("k{i:03}"), json!(i));
        }
        big.insert("trace_id".into(), json!("run"));
        big.insert("environment".into(), json!("prod"));
        let (m, dropped) = sanitize(big);
        assert_eq!(m.len(), MAX_CUSTOM_KEYS + 2, "reserved keys do not count");
        assert_eq!(dropped, 72);
    }

    #[test]
    fn values_are_bounded_by_their_json_size() {
        let (m, _) = sanitize(obj(json!({
            "s": "é".repeat(5000),
            "q": "\"".repeat(5000),
            "c": "\u{1}".repeat(5000),
            "a": vec!["x".repeat(100); 100],
            "o": {"k": "y".repeat(9000)},
            "small": [1, 2],
        })));
        for key in ["s", "q", "c", "a", "o"] {
            assert!(m[key].is_string(), "{key}");
            assert!(serialized_len(&m[key]) <= MAX_VALUE_BYTES, "{key}");
            assert!(
                serialized_len(&m[key]) > MAX_VALUE_BYTES - 8,
                "{key} is cut, not emptied"
            );
        }
        assert_eq!(m["small"], json!([1, 2]), "small arrays keep their shape");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_respects_limits(keys in proptest::collection::vec((".{0,12}", ".{0,40}"), 0..300)) {
            let map: Map<String, Value> = keys.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let (out, _) = sanitize(map);
            proptest::prop_assert!(out.len() <= MAX_CUSTOM_KEYS + RESERVED_KEYS.len());
            for v in out.values() {
                proptest::prop_assert!(serialized_len(v) <= MAX_VALUE_BYTES);
            }
        }
    }
}
