//! A record becomes a small span tree (DESIGN §3). Pure: no I/O, no clock, ids injectable.
//!
//! Only spans that carry information are emitted: users of other gateways complain about
//! noisy, duplicated spans more than about missing ones.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::ids;
use crate::record::{Attempt, GenerationRecord};
use crate::span::generation;
use crate::span::limits::{self, DEFAULT_MAX_ATTRIBUTE_BYTES};
use crate::span::model::{AttrKey, AttrValue, SpanKind, SpanModel, SpanRole, SpanStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanOptions {
    /// Byte limit of each string attribute.
    pub max_attribute_bytes: usize,
    /// Makes span ids `seed, seed+1, ...` (big-endian) instead of random, for golden tests.
    pub id_seed: Option<u64>,
}

impl Default for SpanOptions {
    fn default() -> Self {
        Self {
            max_attribute_bytes: DEFAULT_MAX_ATTRIBUTE_BYTES,
            id_seed: None,
        }
    }
}

struct SpanIds(Option<u64>);

impl SpanIds {
    fn next(&mut self) -> [u8; 8] {
        match &mut self.0 {
            None => ids::random_span_id(),
            Some(n) => {
                // Zero is "no id" in OTLP, so a sequence skips it.
                if *n == 0 {
                    *n = 1;
                }
                let id = n.to_be_bytes();
                *n = n.wrapping_add(1);
                id
            }
        }
    }
}

/// Builds the spans of one record, top span first.
pub fn build_spans(record: &GenerationRecord, opts: &SpanOptions) -> Vec<SpanModel> {
    let mut ids = SpanIds(opts.id_seed);
    let trace = &record.context.trace;
    let trace_name = reserved(trace, "trace_name");
    let span_name = reserved(trace, "span_name");
    let generation_name = reserved(trace, "generation_name");
    let start = record.timings.accepted_unix_nanos;
    let end = at(start, record.timings.end);
    let trace_id = record.context.trace_id;
    let request_parent = record.context.parent_span_id;

    let mut spans = Vec::with_capacity(3 + record.attempts.len());
    // The parent of the next span, and whether it lives in the caller's process.
    let mut parent = request_parent;
    let mut remote = request_parent.is_some();
    let mut push = |spans: &mut Vec<SpanModel>, name: String, kind, role, attributes, status| {
        let span_id = ids.next();
        spans.push(SpanModel {
            trace_id,
            span_id,
            parent_span_id: parent,
            parent_is_remote: remote,
            name,
            kind,
            role,
            start_unix_nanos: start,
            end_unix_nanos: end,
            attributes,
            status,
        });
        parent = Some(span_id);
        remote = false;
    };

    if let (Some(name), None) = (&trace_name, request_parent) {
        push(
            &mut spans,
            name.clone(),
            SpanKind::Server,
            SpanRole::Root,
            Vec::new(),
            SpanStatus::Unset,
        );
    }
    if let Some(name) = span_name {
        push(
            &mut spans,
            name,
            SpanKind::Internal,
            SpanRole::Span,
            Vec::new(),
            SpanStatus::Unset,
        );
    }
    let (attributes, status) = generation::attributes(record);
    let name = generation_name.unwrap_or_else(|| generation_name_for(record));
    push(
        &mut spans,
        name,
        SpanKind::Client,
        SpanRole::Generation,
        attributes,
        status,
    );
    let generation_id = parent;

    if let (Some(name), Some(_), Some(top)) = (trace_name, request_parent, spans.first_mut()) {
        // The caller owns the root, so the name is kept where it can still be searched.
        top.set_attr("gatecast.trace_name", name);
    }

    if record.attempts.len() > 1 {
        for (n, attempt) in record.attempts.iter().enumerate() {
            let (mut attributes, status) = attempt_attributes(attempt);
            attributes.push(("gatecast.attempt".into(), (n as u64 + 1).into()));
            spans.push(SpanModel {
                trace_id,
                span_id: ids.next(),
                parent_span_id: generation_id,
                parent_is_remote: false,
                // HTTP client conventions name the span `{method}`; the try and the provider
                // are attributes.
                name: ATTEMPT_METHOD.to_owned(),
                kind: SpanKind::Client,
                role: SpanRole::Attempt,
                start_unix_nanos: at(start, attempt.start),
                end_unix_nanos: at(start, attempt.end.max(attempt.start)),
                attributes,
                status,
            });
        }
    }

    for span in &mut spans {
        limits::enforce(span, opts.max_attribute_bytes);
    }
    spans
}

/// How many spans [`build_spans`] makes of `record`, without building them: the workers size
/// their batches by it, while the spans themselves are built off their threads.
pub fn span_count(record: &GenerationRecord) -> usize {
    let trace = &record.context.trace;
    let given = |key: &str| {
        trace
            .get(key)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    };
    let root = usize::from(given("trace_name") && record.context.parent_span_id.is_none());
    let span = usize::from(given("span_name"));
    let attempts = if record.attempts.len() > 1 {
        record.attempts.len()
    } else {
        0
    };
    root + span + 1 + attempts
}

/// `{operation} {model}` as the GenAI conventions name a span (`chat gpt-4o`,
/// `embeddings text-embedding-3-small`), with the model actually sent upstream when a route
/// was chosen.
fn generation_name_for(record: &GenerationRecord) -> String {
    let operation = record.operation.as_str();
    match generation::request_model(record) {
        Some(model) => format!("{operation} {model}"),
        None => operation.to_owned(),
    }
}

/// A reserved `trace` key as text; absent, null and empty all mean "not given".
pub(crate) fn reserved(trace: &Map<String, Value>, key: &str) -> Option<String> {
    match trace.get(key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn at(start: u64, offset: Duration) -> u64 {
    start.saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX))
}

/// Every upstream try is a chat completion `POST`.
const ATTEMPT_METHOD: &str = "POST";

/// What broke in a try that got no HTTP status, as `error.type` on its attempt span.
pub const ATTEMPT_ERROR_TYPES: &[&str] = &["connect", "timeout", "stream_aborted"];

/// Attempt spans are the only ones with `http.*` and `url.*`: they are the HTTP calls.
fn attempt_attributes(attempt: &Attempt) -> (Vec<(AttrKey, AttrValue)>, SpanStatus) {
    let mut attrs: Vec<(AttrKey, AttrValue)> = vec![
        ("http.request.method".into(), ATTEMPT_METHOD.into()),
        ("gatecast.provider".into(), attempt.provider.as_str().into()),
    ];
    if !attempt.model.is_empty() {
        attrs.push(("gen_ai.request.model".into(), attempt.model.as_str().into()));
    }
    if let Some(code) = attempt.http_status {
        attrs.push(("http.response.status_code".into(), i64::from(code).into()));
    }
    if let Some(url) = &attempt.url {
        attrs.push(("url.full".into(), url.as_str().into()));
        if let Some((host, port)) = host_port(url) {
            attrs.push(("server.address".into(), host.into()));
            if let Some(port) = port {
                attrs.push(("server.port".into(), i64::from(port).into()));
            }
        }
    }
    // HTTP conventions: an error status is the error type; otherwise what broke, as one of
    // a fixed set of classes, so that no message (which may quote a URL) becomes a type.
    let known = |e: &String| ATTEMPT_ERROR_TYPES.contains(&e.as_str());
    let (error_type, message) = match (attempt.http_status, &attempt.error) {
        (Some(code), e) if code >= 400 || e.is_some() => {
            let t = code.to_string();
            (Some(t.clone()), e.clone().unwrap_or(t))
        }
        (None, Some(e)) if known(e) => (Some(e.clone()), e.clone()),
        (None, Some(_)) => (Some("error".to_owned()), "error".to_owned()),
        _ => (None, String::new()),
    };
    let status = match error_type {
        Some(t) => {
            attrs.push(("error.type".into(), t.into()));
            SpanStatus::Error(message)
        }
        None => SpanStatus::Unset,
    };
    (attrs, status)
}

/// Host and explicit port of a URL, without pulling in a URL parser for one field.
fn host_port(url: &str) -> Option<(&str, Option<u16>)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.is_empty() {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok())),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_common_urls() {
        assert_eq!(
            host_port("https://api.openai.com/v1/chat/completions"),
            Some(("api.openai.com", None))
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/v1?x=1"),
            Some(("127.0.0.1", Some(8080)))
        );
        assert_eq!(
            host_port("http://user:pw@[::1]:9/v1"),
            Some(("::1", Some(9)))
        );
        assert_eq!(host_port("http:///nohost"), None);
    }

    #[test]
    fn an_attempt_error_type_is_always_a_fixed_class() {
        let attempt = |http_status, error: &str| Attempt {
            provider: "p".into(),
            http_status,
            error: Some(error.to_owned()),
            ..Attempt::default()
        };
        let error_type = |a: &Attempt| {
            let (attrs, status) = attempt_attributes(a);
            let t = attrs
                .iter()
                .find(|(k, _)| k == "error.type")
                .and_then(|(_, v)| v.as_str().map(str::to_owned));
            (t, status)
        };
        assert_eq!(
            error_type(&attempt(None, "connect")),
            (Some("connect".into()), SpanStatus::Error("connect".into()))
        );
        assert_eq!(
            error_type(&attempt(Some(503), "http 503")),
            (Some("503".into()), SpanStatus::Error("http 503".into()))
        );
        assert_eq!(
            error_type(&attempt(Some(304), "http 304")).0,
            Some("304".into())
        );
        // A sentence (which may quote a URL) never becomes the type or the message.
        let sentence = "connection failed: error sending request for url (http://h/v1?key=SECRET)";
        assert_eq!(
            error_type(&attempt(None, sentence)),
            (Some("error".into()), SpanStatus::Error("error".into()))
        );
    }

    fn name_value() -> impl proptest::strategy::Strategy<Value = Option<Value>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(Value::String(String::new()))),
            "[a-z]{1,8}".prop_map(|s| Some(Value::String(s))),
            any::<i64>().prop_map(|n| Some(Value::from(n))),
            Just(Some(serde_json::json!({"nested": true}))),
        ]
    }

    proptest::proptest! {
        /// Batches are sized by the count before any span exists; a wrong count would
        /// make batches larger than `max_batch_spans`.
        #[test]
        fn span_count_matches_the_spans_built(
            trace_name in name_value(),
            span_name in name_value(),
            parent in proptest::option::of(proptest::prelude::any::<[u8; 8]>()),
            attempts in 0usize..5,
        ) {
            let mut record = GenerationRecord::default();
            if let Some(v) = trace_name {
                record.context.trace.insert("trace_name".into(), v);
            }
            if let Some(v) = span_name {
                record.context.trace.insert("span_name".into(), v);
            }
            record.context.parent_span_id = parent;
            record.attempts = (0..attempts)
                .map(|n| Attempt { provider: format!("p{n}"), ..Attempt::default() })
                .collect();
            let built = build_spans(&record, &SpanOptions::default()).len();
            proptest::prop_assert_eq!(span_count(&record), built);
        }
    }

    #[test]
    fn seeded_ids_skip_zero() {
        let mut ids = SpanIds(Some(0));
        assert_eq!(ids.next(), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ids.next(), [0, 0, 0, 0, 0, 0, 0, 2]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod operation_tests {
    use super::*;
    use crate::record::{Content, Operation, RouteInfo, Usage};
    use crate::span::flavor::apply_sentry_flavor;
    use crate::span::privacy::apply_privacy;

    fn embeddings() -> GenerationRecord {
        let mut r = GenerationRecord {
            operation: Operation::Embeddings,
            route: Some(RouteInfo {
                provider: "up".into(),
                provider_kind: "openai".into(),
                model: "text-embedding-3-small".into(),
                ..Default::default()
            }),
            usage: Some(Usage {
                input_tokens: 4,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.request.embeddings_input = Some(Content {
            json: r#"["alpha","beta"]"#.into(),
            truncated: false,
        });
        r.request.embedding_dimensions = Some(256);
        r.output.embedding_dimensions = Some(512);
        r
    }

    fn generation(record: &GenerationRecord) -> SpanModel {
        build_spans(record, &SpanOptions::default())
            .into_iter()
            .find(|s| s.role == SpanRole::Generation)
            .unwrap()
    }

    #[test]
    fn an_embeddings_span_is_named_and_measured_by_its_operation() {
        let span = generation(&embeddings());
        assert_eq!(span.name, "embeddings text-embedding-3-small");
        let str_attr = |k: &str| span.attr(k).and_then(AttrValue::as_str).map(str::to_owned);
        assert_eq!(
            str_attr("gen_ai.operation.name").as_deref(),
            Some("embeddings")
        );
        assert_eq!(
            str_attr("gen_ai.embeddings.input").as_deref(),
            Some(r#"["alpha","beta"]"#)
        );
        // The answer's length wins over what was asked.
        assert_eq!(
            span.attr("gen_ai.embeddings.dimension.count")
                .and_then(AttrValue::as_i64),
            Some(512)
        );
        let mut record = embeddings();
        record.output.embedding_dimensions = None;
        record.operation = Operation::TextCompletion;
        let span = generation(&record);
        assert_eq!(span.name, "text_completion text-embedding-3-small");
        assert_eq!(
            span.attr("gen_ai.embeddings.dimension.count")
                .and_then(AttrValue::as_i64),
            Some(256)
        );
    }

    #[test]
    fn privacy_keeps_the_dimension_count_and_drops_the_input() {
        let mut spans = build_spans(&embeddings(), &SpanOptions::default());
        apply_privacy(&mut spans);
        apply_sentry_flavor(&mut spans);
        let span = spans
            .iter()
            .find(|s| s.role == SpanRole::Generation)
            .unwrap();
        assert!(span.attr("gen_ai.embeddings.input").is_none());
        assert!(span.attr("gen_ai.embeddings.dimension.count").is_some());
        assert_eq!(
            span.attr("sentry.op").and_then(AttrValue::as_str),
            Some("gen_ai.embeddings")
        );
    }
}
