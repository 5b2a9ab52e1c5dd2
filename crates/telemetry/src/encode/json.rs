//! A batch's OTLP/JSON line, written straight from the span views, byte for byte as
//! opentelemetry-proto's serde derive writes it (why not through the derive: see `protobuf`;
//! `tests/encoders.rs` pins the two together).

use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use super::otlp::{non_finite_text, scope};
use super::view::SpanView;
use crate::span::model::AttrValue;

type JsonResult<T = ()> = Result<T, serde_json::Error>;

/// Bytes a span needs besides its attributes: field names, ids, times, status.
const SPAN_OVERHEAD: usize = 360;
/// Bytes an attribute needs besides its key and value text.
const ATTRIBUTE_OVERHEAD: usize = 40;

/// The OTLP/JSON line of one request holding `spans` in one scope, as one compact document
/// (no newline: JSON escapes those inside strings).
pub(crate) fn body(spans: &[SpanView<'_>], resource: &Resource) -> JsonResult<Vec<u8>> {
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
    super::json_string::write(out, s);
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
