//! A batch's export body, written straight from the span models.
//!
//! Converting every span to opentelemetry-proto's structs first (a `String` for every
//! attribute key and value, a `Vec` for every id) and then encoding and freeing the structs
//! was about half of a batch's work for two destinations. Here each destination's view of
//! the shared spans is written directly, in the protobuf form prost writes and the OTLP/JSON
//! form opentelemetry-proto's serde derive writes, byte for byte; property tests pin both
//! against the libraries (`tests/encoders.rs`). What occurs once per export (resource,
//! scope) still goes through the libraries, so it cannot drift from them either.

use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use crate::encode::otlp::{non_finite_text, scope, SpanView};
use crate::span::model::AttrValue;

/// Protobuf wire types.
const LEN: u64 = 2;
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const FIXED32: u64 = 5;

/// The protobuf body of one `ExportTraceServiceRequest` holding `spans` in one scope.
pub(crate) fn protobuf(spans: &[SpanView<'_>], resource: &Resource) -> Vec<u8> {
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

type JsonResult<T = ()> = Result<T, serde_json::Error>;

/// Bytes a span needs besides its attributes: field names, ids, times, status.
const SPAN_OVERHEAD: usize = 360;
/// Bytes an attribute needs besides its key and value text.
const ATTRIBUTE_OVERHEAD: usize = 40;

/// The OTLP/JSON line of one request holding `spans` in one scope, as one compact document
/// (no newline: JSON escapes those inside strings).
pub(crate) fn json(spans: &[SpanView<'_>], resource: &Resource) -> JsonResult<Vec<u8>> {
    let mut out = Vec::with_capacity(estimated_json_len(spans));
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":");
    serde(&mut out, resource)?;
    out.extend_from_slice(b",\"scopeSpans\":[{\"scope\":");
    serde(&mut out, &scope())?;
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in spans.iter().enumerate() {
        crate::deliver::pace::checkpoint();
        comma(&mut out, i);
        json_span(span, &mut out)?;
    }
    out.extend_from_slice(b"],\"schemaUrl\":\"\"}],\"schemaUrl\":\"\"}]}");
    Ok(out)
}

/// A generous guess at the encoded size, so the buffer is allocated once instead of being
/// copied on every doubling. Strings are counted with room for escaped quotes, which content
/// attributes (JSON inside JSON) are full of.
fn estimated_json_len(spans: &[SpanView<'_>]) -> usize {
    let mut len = 512;
    for view in spans {
        len += SPAN_OVERHEAD + escaped_guess(view.span().name.len());
        for (k, v) in view.attributes() {
            len += ATTRIBUTE_OVERHEAD + k.len();
            len += match v {
                AttrValue::String(s) => escaped_guess(s.len()),
                AttrValue::StringArray(items) => {
                    items.iter().map(|s| 24 + escaped_guess(s.len())).sum()
                }
                _ => 24,
            };
        }
        len += escaped_guess(view.status().1.len());
    }
    len
}

fn escaped_guess(len: usize) -> usize {
    len + len / 4 + 2
}

/// Fields in declaration order, as the derive writes them; nothing is skipped, not even
/// empty or zero fields.
fn json_span(view: &SpanView<'_>, out: &mut Vec<u8>) -> JsonResult {
    let span = view.span();
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, &span.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &span.span_id);
    out.extend_from_slice(b",\"traceState\":\"\",\"parentSpanId\":");
    hex(
        out,
        span.parent_span_id.as_ref().map_or(&[][..], |p| &p[..]),
    );
    out.extend_from_slice(b",\"flags\":");
    number(out, |f, w| f.write_u32(w, view.flags()))?;
    out.extend_from_slice(b",\"name\":");
    string(out, &span.name)?;
    out.extend_from_slice(b",\"kind\":");
    number(out, |f, w| f.write_i32(w, view.kind()))?;
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    quoted_u64(out, span.start_unix_nanos)?;
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    quoted_u64(out, span.end_unix_nanos)?;
    out.extend_from_slice(b",\"attributes\":[");
    for (i, (k, v)) in view.attributes().enumerate() {
        comma(out, i);
        out.extend_from_slice(b"{\"key\":");
        string(out, k)?;
        out.extend_from_slice(b",\"value\":");
        json_any(v, out)?;
        out.push(b'}');
    }
    out.extend_from_slice(
        b"],\"droppedAttributesCount\":0,\"events\":[],\"droppedEventsCount\":0,\
          \"links\":[],\"droppedLinksCount\":0,\"status\":{\"message\":",
    );
    let (code, message) = view.status();
    string(out, message)?;
    out.extend_from_slice(b",\"code\":");
    number(out, |f, w| f.write_i32(w, code))?;
    out.extend_from_slice(b"}}");
    Ok(())
}

fn json_any(v: &AttrValue, out: &mut Vec<u8>) -> JsonResult {
    match v {
        AttrValue::String(s) => json_string_value(s, out)?,
        AttrValue::Bool(true) => out.extend_from_slice(b"{\"boolValue\":true}"),
        AttrValue::Bool(false) => out.extend_from_slice(b"{\"boolValue\":false}"),
        AttrValue::Int(i) => {
            // OTLP/JSON writes int64 as a string.
            out.extend_from_slice(b"{\"intValue\":\"");
            number(out, |f, w| f.write_i64(w, *i))?;
            out.extend_from_slice(b"\"}");
        }
        AttrValue::Double(d) if !d.is_finite() => json_string_value(&non_finite_text(*d), out)?,
        AttrValue::Double(d) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            serde(out, d)?;
            out.push(b'}');
        }
        AttrValue::StringArray(items) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            for (i, item) in items.iter().enumerate() {
                comma(out, i);
                json_string_value(item, out)?;
            }
            out.extend_from_slice(b"]}}");
        }
    }
    Ok(())
}

fn json_string_value(s: &str, out: &mut Vec<u8>) -> JsonResult {
    out.extend_from_slice(b"{\"stringValue\":");
    string(out, s)?;
    out.push(b'}');
    Ok(())
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// A JSON string, escaped exactly as serde_json and so the derive would.
fn string(out: &mut Vec<u8>, s: &str) -> JsonResult {
    crate::encode::json_string::write(out, s);
    Ok(())
}

/// Anything through serde_json: the once-per-export parts, strings and floats.
fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> JsonResult {
    value.serialize(&mut serde_json::Serializer::new(out))
}

/// An integer as serde_json's own formatter writes it.
fn number(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
) -> JsonResult {
    write(&mut CompactFormatter, out).map_err(serde_json::Error::io)
}

/// OTLP/JSON's 64-bit timestamps, as strings.
fn quoted_u64(out: &mut Vec<u8>, v: u64) -> JsonResult {
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
