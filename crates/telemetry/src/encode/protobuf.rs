//! A batch's protobuf body, written straight from the span views.
//!
//! Converting every span to opentelemetry-proto's structs first (a `String` for every
//! attribute key and value, a `Vec` for every id) and then encoding and freeing the structs
//! was about half of a batch's work for two destinations. Here each destination's view of
//! the shared spans is written directly, in the protobuf form prost writes, byte for byte
//! (the OTLP/JSON form is in `json`); property tests pin both against the libraries
//! (`tests/encoders.rs`). What occurs once per export (resource, scope) still goes through
//! the libraries, so it cannot drift from them either.

use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use super::otlp::{non_finite_text, scope};
use super::view::SpanView;
use crate::span::model::AttrValue;

/// Protobuf wire types.
const LEN: u64 = 2;
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const FIXED32: u64 = 5;

/// The protobuf body of one `ExportTraceServiceRequest` holding `spans` in one scope.
pub(crate) fn body(spans: &[SpanView<'_>], resource: &Resource) -> Vec<u8> {
    // Once per export, so through prost: each with its length prefix.
    let resource = resource.encode_length_delimited_to_vec();
    let scope = scope().encode_length_delimited_to_vec();
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    // ScopeSpans: scope = 1, spans = 2 (schema_url = 3 is empty, so not written).
    let scope_spans_len = 1 + scope.len() + span_lens.iter().map(|&l| delimited(l)).sum::<usize>();
    // ResourceSpans: resource = 1, scope_spans = 2 (schema_url = 3 empty).
    let resource_spans_len = 1 + resource.len() + delimited(scope_spans_len);
    let mut out = Vec::with_capacity(delimited(resource_spans_len));
    // ExportTraceServiceRequest.resource_spans = 1
    len_key(1, resource_spans_len, &mut out);
    key(1, LEN, &mut out);
    out.extend_from_slice(&resource);
    len_key(2, scope_spans_len, &mut out);
    key(1, LEN, &mut out);
    out.extend_from_slice(&scope);
    for (span, &len) in spans.iter().zip(&span_lens) {
        crate::deliver::pace::checkpoint();
        len_key(2, len, &mut out);
        write_span(span, &mut out);
    }
    out
}

/// Bytes of a length-delimited field of a tag below 16 (one key byte).
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn key(tag: u32, wire: u64, out: &mut Vec<u8>) {
    encode_varint((u64::from(tag) << 3) | wire, out);
}

fn len_key(tag: u32, len: usize, out: &mut Vec<u8>) {
    key(tag, LEN, out);
    encode_varint(len as u64, out);
}

fn bytes_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        len_key(tag, bytes.len(), out);
        out.extend_from_slice(bytes);
    }
}

fn bytes_len(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        0
    } else {
        delimited(bytes.len())
    }
}

/// Fields in tag order, as prost writes them; proto3 defaults (empty, zero) are left out.
fn write_span(view: &SpanView<'_>, out: &mut Vec<u8>) {
    let span = view.span();
    bytes_field(1, &span.trace_id, out);
    bytes_field(2, &span.span_id, out);
    if let Some(parent) = &span.parent_span_id {
        bytes_field(4, parent, out);
    }
    bytes_field(5, span.name.as_bytes(), out);
    let kind = view.kind();
    if kind != 0 {
        key(6, VARINT, out);
        encode_varint(kind as u64, out);
    }
    fixed64_field(7, span.start_unix_nanos, out);
    fixed64_field(8, span.end_unix_nanos, out);
    for (k, v) in view.attributes() {
        len_key(9, key_value_len(k, v), out);
        write_key_value(k, v, out);
    }
    let (code, message) = view.status();
    len_key(15, status_len(code, message), out);
    bytes_field(2, message.as_bytes(), out);
    if code != 0 {
        key(3, VARINT, out);
        encode_varint(code as u64, out);
    }
    let flags = view.flags();
    if flags != 0 {
        key(16, FIXED32, out);
        out.extend_from_slice(&flags.to_le_bytes());
    }
}

fn span_len(view: &SpanView<'_>) -> usize {
    let span = view.span();
    let kind = view.kind();
    let (code, message) = view.status();
    bytes_len(&span.trace_id)
        + bytes_len(&span.span_id)
        + span.parent_span_id.as_ref().map_or(0, |p| bytes_len(p))
        + bytes_len(span.name.as_bytes())
        + if kind != 0 {
            1 + encoded_len_varint(kind as u64)
        } else {
            0
        }
        + fixed64_len(span.start_unix_nanos)
        + fixed64_len(span.end_unix_nanos)
        + view
            .attributes()
            .map(|(k, v)| delimited(key_value_len(k, v)))
            .sum::<usize>()
        + delimited(status_len(code, message))
        // Tag 16 takes a two-byte key.
        + if view.flags() != 0 { 2 + 4 } else { 0 }
}

fn fixed64_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        key(tag, FIXED64, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed64_len(value: u64) -> usize {
    if value != 0 {
        1 + 8
    } else {
        0
    }
}

fn status_len(code: i32, message: &str) -> usize {
    bytes_len(message.as_bytes())
        + if code != 0 {
            1 + encoded_len_varint(code as u64)
        } else {
            0
        }
}

/// KeyValue: key = 1, value = 2 (an AnyValue, always set).
fn write_key_value(k: &str, v: &AttrValue, out: &mut Vec<u8>) {
    bytes_field(1, k.as_bytes(), out);
    len_key(2, any_len(v), out);
    write_any(v, out);
}

fn key_value_len(k: &str, v: &AttrValue) -> usize {
    bytes_len(k.as_bytes()) + delimited(any_len(v))
}

/// AnyValue's oneof: the chosen field is written even at its default.
fn write_any(v: &AttrValue, out: &mut Vec<u8>) {
    match v {
        AttrValue::String(s) => string_value(s, out),
        AttrValue::Bool(b) => {
            key(2, VARINT, out);
            out.push(u8::from(*b));
        }
        AttrValue::Int(i) => {
            key(3, VARINT, out);
            // int64 is a two's-complement varint: a negative value takes ten bytes.
            encode_varint(*i as u64, out);
        }
        AttrValue::Double(d) if !d.is_finite() => string_value(&non_finite_text(*d), out),
        AttrValue::Double(d) => {
            key(4, FIXED64, out);
            out.extend_from_slice(&d.to_le_bytes());
        }
        AttrValue::StringArray(items) => {
            // ArrayValue.values = 1, each an AnyValue holding a string.
            len_key(5, string_array_len(items), out);
            for item in items {
                len_key(1, delimited(item.len()), out);
                string_value(item, out);
            }
        }
    }
}

fn string_value(s: &str, out: &mut Vec<u8>) {
    len_key(1, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn any_len(v: &AttrValue) -> usize {
    match v {
        AttrValue::String(s) => delimited(s.len()),
        AttrValue::Bool(_) => 2,
        AttrValue::Int(i) => 1 + encoded_len_varint(*i as u64),
        AttrValue::Double(d) if !d.is_finite() => delimited(non_finite_text(*d).len()),
        AttrValue::Double(_) => 1 + 8,
        AttrValue::StringArray(items) => delimited(string_array_len(items)),
    }
}

fn string_array_len(items: &[String]) -> usize {
    items.iter().map(|s| delimited(delimited(s.len()))).sum()
}
