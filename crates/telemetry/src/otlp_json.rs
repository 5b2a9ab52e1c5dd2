//! OTLP/JSON written straight from the proto request, byte for byte what
//! opentelemetry-proto's serde derive writes.
//!
//! The derive goes through `flatten` and a map serializer per attribute value, and allocates
//! a `String` for every hex id and 64-bit integer; for the file destination that was about
//! half of a request's telemetry CPU. Spans and their attributes — everything repeated per
//! request — are written here by hand. What occurs once per batch (resource, scope) or not
//! at all in Gatecast's own spans (events, links, key-value lists, bytes) still goes through
//! serde, so it cannot drift from the derive either. Strings and floats are always written by
//! serde_json itself, so escaping and number formatting are the derive's own. Equivalence is
//! pinned down by the tests here and by a property test against the serde path.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

type Result<T = ()> = std::result::Result<T, serde_json::Error>;

/// Bytes a span needs besides its attributes: field names, ids, times, status.
const SPAN_OVERHEAD: usize = 360;
/// Bytes an attribute needs besides its key and value text.
const ATTRIBUTE_OVERHEAD: usize = 40;

/// A generous guess at the encoded size, so the buffer is allocated once instead of being
/// copied on every doubling. Strings are counted with room for escaped quotes, which content
/// attributes (JSON inside JSON) are full of.
pub(crate) fn estimated_len(req: &ExportTraceServiceRequest) -> usize {
    let spans = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    let mut len = 512;
    for span in spans {
        len += SPAN_OVERHEAD + escaped_guess(span.name.len());
        for kv in &span.attributes {
            len += ATTRIBUTE_OVERHEAD + kv.key.len();
            len += match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => escaped_guess(s.len()),
                Some(Any::ArrayValue(a)) => a.values.len() * 24,
                _ => 24,
            };
        }
        if let Some(status) = &span.status {
            len += escaped_guess(status.message.len());
        }
    }
    len
}

fn escaped_guess(len: usize) -> usize {
    len + len / 4 + 2
}

/// Appends `req` as one compact JSON document (no newline: JSON escapes those in strings).
pub(crate) fn write_request(out: &mut Vec<u8>, req: &ExportTraceServiceRequest) -> Result {
    out.extend_from_slice(b"{\"resourceSpans\":[");
    for (i, rs) in req.resource_spans.iter().enumerate() {
        comma(out, i);
        resource_spans(out, rs)?;
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

fn resource_spans(out: &mut Vec<u8>, rs: &ResourceSpans) -> Result {
    out.extend_from_slice(b"{\"resource\":");
    serde(out, &rs.resource)?;
    out.extend_from_slice(b",\"scopeSpans\":[");
    for (i, ss) in rs.scope_spans.iter().enumerate() {
        comma(out, i);
        scope_spans(out, ss)?;
    }
    out.extend_from_slice(b"],\"schemaUrl\":");
    string(out, &rs.schema_url)?;
    out.push(b'}');
    Ok(())
}

fn scope_spans(out: &mut Vec<u8>, ss: &ScopeSpans) -> Result {
    out.extend_from_slice(b"{\"scope\":");
    serde(out, &ss.scope)?;
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in ss.spans.iter().enumerate() {
        crate::pace::checkpoint();
        comma(out, i);
        write_span(out, span)?;
    }
    out.extend_from_slice(b"],\"schemaUrl\":");
    string(out, &ss.schema_url)?;
    out.push(b'}');
    Ok(())
}

/// Fields in declaration order, as the derive writes them; nothing is skipped, not even
/// empty or zero fields.
fn write_span(out: &mut Vec<u8>, span: &Span) -> Result {
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, &span.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &span.span_id);
    out.extend_from_slice(b",\"traceState\":");
    string(out, &span.trace_state)?;
    out.extend_from_slice(b",\"parentSpanId\":");
    hex(out, &span.parent_span_id);
    out.extend_from_slice(b",\"flags\":");
    number(out, |f, w| f.write_u32(w, span.flags))?;
    out.extend_from_slice(b",\"name\":");
    string(out, &span.name)?;
    out.extend_from_slice(b",\"kind\":");
    number(out, |f, w| f.write_i32(w, span.kind))?;
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    quoted_u64(out, span.start_time_unix_nano)?;
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    quoted_u64(out, span.end_time_unix_nano)?;
    out.extend_from_slice(b",\"attributes\":");
    key_values(out, &span.attributes)?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, |f, w| f.write_u32(w, span.dropped_attributes_count))?;
    out.extend_from_slice(b",\"events\":");
    serde(out, &span.events)?;
    out.extend_from_slice(b",\"droppedEventsCount\":");
    number(out, |f, w| f.write_u32(w, span.dropped_events_count))?;
    out.extend_from_slice(b",\"links\":");
    serde(out, &span.links)?;
    out.extend_from_slice(b",\"droppedLinksCount\":");
    number(out, |f, w| f.write_u32(w, span.dropped_links_count))?;
    out.extend_from_slice(b",\"status\":");
    match &span.status {
        Some(status) => write_status(out, status)?,
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(())
}

fn write_status(out: &mut Vec<u8>, status: &Status) -> Result {
    out.extend_from_slice(b"{\"message\":");
    string(out, &status.message)?;
    out.extend_from_slice(b",\"code\":");
    number(out, |f, w| f.write_i32(w, status.code))?;
    out.push(b'}');
    Ok(())
}

fn key_values(out: &mut Vec<u8>, kvs: &[KeyValue]) -> Result {
    out.push(b'[');
    for (i, kv) in kvs.iter().enumerate() {
        comma(out, i);
        out.extend_from_slice(b"{\"key\":");
        string(out, &kv.key)?;
        out.extend_from_slice(b",\"value\":");
        match &kv.value {
            Some(v) => any_value(out, v)?,
            None => out.extend_from_slice(b"null"),
        }
        // The derive skips the string-table index at its default.
        if kv.key_strindex != 0 {
            out.extend_from_slice(b",\"keyStrindex\":");
            number(out, |f, w| f.write_i32(w, kv.key_strindex))?;
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

/// The shapes Gatecast's spans carry; the rest go through the derive.
fn any_value(out: &mut Vec<u8>, v: &AnyValue) -> Result {
    match &v.value {
        Some(Any::StringValue(s)) => {
            out.extend_from_slice(b"{\"stringValue\":");
            string(out, s)?;
        }
        Some(Any::BoolValue(b)) => {
            out.extend_from_slice(if *b {
                b"{\"boolValue\":true"
            } else {
                b"{\"boolValue\":false"
            });
        }
        Some(Any::IntValue(i)) => {
            // OTLP/JSON writes int64 as a string.
            out.extend_from_slice(b"{\"intValue\":\"");
            number(out, |f, w| f.write_i64(w, *i))?;
            out.push(b'"');
        }
        Some(Any::DoubleValue(d)) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            // serde_json writes non-finite floats as null; so does its serializer here.
            serde(out, d)?;
        }
        Some(Any::ArrayValue(a)) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            for (i, item) in a.values.iter().enumerate() {
                comma(out, i);
                any_value(out, item)?;
            }
            out.extend_from_slice(b"]}");
        }
        _ => return serde(out, v),
    }
    out.push(b'}');
    Ok(())
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// A JSON string, escaped by serde_json exactly as the derive would.
fn string(out: &mut Vec<u8>, s: &str) -> Result {
    s.serialize(&mut serde_json::Serializer::new(out))
}

/// Anything through the derive: the cold parts of the request.
fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result {
    value.serialize(&mut serde_json::Serializer::new(out))
}

/// An integer as serde_json's own formatter writes it.
fn number(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result {
    write(&mut CompactFormatter, out).map_err(serde_json::Error::io)
}

/// OTLP/JSON's 64-bit timestamps, as strings.
fn quoted_u64(out: &mut Vec<u8>, v: u64) -> Result {
    out.push(b'"');
    number(out, |f, w| f.write_u64(w, v))?;
    out.push(b'"');
    Ok(())
}

/// Ids as lowercase hex strings, as the spec and the derive write them.
fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

    fn kv(key: &str, value: Option<Any>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value }),
            ..Default::default()
        }
    }

    fn written(req: &ExportTraceServiceRequest) -> String {
        let mut out = Vec::new();
        write_request(&mut out, req).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every field and value shape, including the ones Gatecast never produces itself.
    pub(crate) fn everything() -> ExportTraceServiceRequest {
        let attrs = vec![
            kv("s", Some(Any::StringValue("q\"\\\n\u{1}é\u{2028}".into()))),
            kv("t", Some(Any::BoolValue(true))),
            kv("f", Some(Any::BoolValue(false))),
            kv("i", Some(Any::IntValue(i64::MIN))),
            kv("d", Some(Any::DoubleValue(1e300))),
            kv("one", Some(Any::DoubleValue(1.0))),
            kv("nan", Some(Any::DoubleValue(f64::NAN))),
            kv("inf", Some(Any::DoubleValue(f64::NEG_INFINITY))),
            kv(
                "a",
                Some(Any::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Any::IntValue(7)),
                        },
                        AnyValue { value: None },
                    ],
                })),
            ),
            kv(
                "kv",
                Some(Any::KvlistValue(KeyValueList {
                    values: vec![kv("x", Some(Any::StringValue("y".into())))],
                })),
            ),
            kv("b", Some(Any::BytesValue(vec![0, 1, 255]))),
            kv("idx", Some(Any::StringValueStrindex(3))),
            kv("none", None),
            KeyValue {
                key: "no value".into(),
                value: None,
                key_strindex: 5,
            },
        ];
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0, 1, 2, 3, 0xfe, 0xff, 9, 10],
            trace_state: "k=v".into(),
            parent_span_id: vec![],
            flags: 0x301,
            name: "chat \"m\"".into(),
            kind: 3,
            start_time_unix_nano: u64::MAX,
            end_time_unix_nano: 0,
            attributes: attrs.clone(),
            dropped_attributes_count: 2,
            events: vec![Event {
                time_unix_nano: 5,
                name: "e".into(),
                attributes: attrs.clone(),
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                attributes: attrs.clone(),
                flags: 1,
                ..Default::default()
            }],
            dropped_links_count: 4,
            status: Some(Status {
                message: "boom\n".into(),
                code: 2,
            }),
        };
        let bare = Span {
            status: None,
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: attrs,
                        dropped_attributes_count: 1,
                        entity_refs: vec![],
                    }),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "gatecast".into(),
                                version: "1".into(),
                                ..Default::default()
                            }),
                            spans: vec![span, bare],
                            schema_url: "https://x/s".into(),
                        },
                        ScopeSpans::default(),
                    ],
                    schema_url: "u".into(),
                },
                ResourceSpans::default(),
            ],
        }
    }

    #[test]
    fn every_shape_is_written_as_the_derive_writes_it() {
        let req = everything();
        assert_eq!(written(&req), serde_json::to_string(&req).unwrap());
    }

    #[test]
    fn empty_requests_match_too() {
        let req = ExportTraceServiceRequest::default();
        assert_eq!(written(&req), serde_json::to_string(&req).unwrap());
    }
}
