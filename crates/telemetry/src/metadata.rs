//! Limits on the caller's `trace` metadata, so a request can never make a record unbounded.
//!
//! Over-limit metadata is cut and counted, never a reason to fail the request.

use serde_json::{Map, Value};

pub const MAX_USER_CHARS: usize = 128;
pub const MAX_SESSION_CHARS: usize = 256;
pub const MAX_CUSTOM_KEYS: usize = 128;
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

/// Coerces reserved keys to strings, keeps at most [`MAX_CUSTOM_KEYS`] custom keys and cuts
/// values to [`MAX_VALUE_BYTES`]. Returns the number of custom keys dropped.
pub fn sanitize(trace: Map<String, Value>) -> (Map<String, Value>, u32) {
    let mut out = Map::new();
    let mut custom = 0usize;
    let mut dropped = 0u32;
    for (key, value) in trace {
        if RESERVED_KEYS.contains(&key.as_str()) {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, Value::String(cut(text)));
            continue;
        }
        if custom >= MAX_CUSTOM_KEYS {
            dropped += 1;
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

fn cut(mut s: String) -> String {
    if s.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
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

    #[test]
    fn reserved_keys_become_strings() {
        let (m, dropped) = sanitize(obj(
            json!({"trace_id": 42, "span_name": true, "trace_name": {"a": 1},
                                              "generation_name": null, "customer": 7}),
        ));
        assert_eq!(m["trace_id"], "42");
        assert_eq!(m["span_name"], "true");
        assert_eq!(m["trace_name"], "{\"a\":1}");
        assert!(!m.contains_key("generation_name"));
        assert_eq!(m["customer"], 7, "custom scalars keep their type");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn custom_keys_and_values_are_bounded() {
        let mut big = Map::new();
        for i in 0..200 {
            big.insert(format!("k{i:03}"), json!(i));
        }
        big.insert("trace_id".into(), json!("run"));
        let (m, dropped) = sanitize(big);
        assert_eq!(m.len(), MAX_CUSTOM_KEYS + 1);
        assert_eq!(dropped, 72);

        let (m, _) = sanitize(obj(
            json!({"s": "é".repeat(5000), "a": vec!["x".repeat(100); 100]}),
        ));
        assert!(m["s"].as_str().unwrap().len() <= MAX_VALUE_BYTES);
        assert!(
            m["a"].as_str().unwrap().len() <= MAX_VALUE_BYTES,
            "a long array becomes a cut string"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_respects_limits(keys in proptest::collection::vec((".{0,12}", ".{0,40}"), 0..300)) {
            let map: Map<String, Value> = keys.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let (out, _) = sanitize(map);
            proptest::prop_assert!(out.len() <= MAX_CUSTOM_KEYS + RESERVED_KEYS.len());
        }
    }
}
