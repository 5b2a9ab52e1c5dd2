//! Trace metadata from headers, for clients that can set headers but not body fields (Claude
//! Code's `ANTHROPIC_CUSTOM_HEADERS`, Codex, the AI SDK's `@ai-sdk/openai`, which drops
//! unknown body options). A body `trace` field wins over a header with the same meaning.
//!
//! Headers are never forwarded to a provider, so nothing here needs stripping upstream.

use http::HeaderMap;
use serde_json::{Map, Value};

/// `x-gatecast-metadata-<key>` becomes `trace.<key>` (shown as `trace.metadata.<key>`).
pub const METADATA_PREFIX: &str = "x-gatecast-metadata-";
pub const USER_HEADER: &str = "x-gatecast-user";

/// Each reserved `trace` key and the header that sets it.
const RESERVED: [(&str, &str); 5] = [
    ("x-gatecast-trace-id", "trace_id"),
    ("x-gatecast-trace-name", "trace_name"),
    ("x-gatecast-span-name", "span_name"),
    ("x-gatecast-generation-name", "generation_name"),
    ("x-gatecast-parent-span-id", "parent_span_id"),
];

/// The `trace` object the headers describe; empty (and free) when there are none.
pub fn from_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut trace = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("x-gatecast-") {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if let Some(key) = name.strip_prefix(METADATA_PREFIX) {
            if !key.is_empty() {
                trace.insert(key.to_owned(), Value::String(value.to_owned()));
            }
        } else if let Some((_, key)) = RESERVED.iter().find(|(header, _)| *header == name) {
            trace.insert((*key).to_owned(), Value::String(value.to_owned()));
        }
    }
    trace
}

/// `body` over `headers`, key by key.
pub fn merge(headers: Map<String, Value>, body: Option<Map<String, Value>>) -> Map<String, Value> {
    match body {
        None => headers,
        Some(body) if headers.is_empty() => body,
        Some(body) => {
            let mut out = headers;
            out.extend(body);
            out
        }
    }
}

/// `x-gatecast-user`, used when the body has no `user`.
pub fn user(headers: &HeaderMap) -> Option<String> {
    headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn headers_fill_reserved_keys_and_metadata_and_the_body_wins() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-gatecast-trace-id", "run-42"),
            ("x-gatecast-trace-name", "support-agent"),
            ("x-gatecast-span-name", "triage"),
            ("x-gatecast-generation-name", "classify"),
            ("x-gatecast-parent-span-id", "abc"),
            ("x-gatecast-metadata-customer", "acme"),
            ("x-gatecast-metadata-", "no key"),
            ("x-gatecast-privacy", "on"),
            ("x-other", "x"),
        ] {
            h.insert(
                http::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        let from = from_headers(&h);
        assert_eq!(
            Value::Object(from.clone()),
            serde_json::json!({"trace_id": "run-42", "trace_name": "support-agent",
                "span_name": "triage", "generation_name": "classify",
                "parent_span_id": "abc", "customer": "acme"})
        );
        let body = serde_json::json!({"trace_name": "from-body", "customer": "globex"});
        let Value::Object(body) = body else {
            unreachable!()
        };
        let merged = merge(from, Some(body));
        assert_eq!(merged["trace_name"], "from-body");
        assert_eq!(merged["customer"], "globex");
        assert_eq!(merged["span_name"], "triage");
        assert!(from_headers(&HeaderMap::new()).is_empty());
    }
}
