//! The OTLP protobuf body, byte for byte what prost's `encode_to_vec` writes, with each
//! span's length worked out once instead of once per enclosing message.
//!
//! prost prefixes every nested message with its length, computed by walking the message; a
//! span three levels down is therefore walked for its length four times before it is written.
//! Here the spans of a scope are encoded first (prost walks each span once, to prefix it) and
//! the enclosing lengths are taken from the bytes written. Only the three outer wrappers are
//! written by hand; every span, resource and scope is still encoded by prost itself.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::{EncodeError, Message};

/// A first guess at a span's encoded size, so a scope's buffer rarely grows.
const SPAN_GUESS: usize = 768;

/// Encodes `req`; fails only if a buffer cannot grow, which a `Vec` always can.
pub(crate) fn encode_request(req: &ExportTraceServiceRequest) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let scopes = rs
            .scope_spans
            .iter()
            .map(scope_spans)
            .collect::<Result<Vec<_>, _>>()?;
        let resource_len = rs
            .resource
            .as_ref()
            .map_or(0, |r| delimited_len(r.encoded_len()));
        let len = resource_len
            + scopes.iter().map(|s| delimited_len(s.len())).sum::<usize>()
            + string_len(&rs.schema_url);
        out.reserve(delimited_len(len));
        // ExportTraceServiceRequest.resource_spans = 1
        key(1, &mut out);
        varint(len, &mut out);
        // ResourceSpans.resource = 1, scope_spans = 2, schema_url = 3
        if let Some(resource) = &rs.resource {
            key(1, &mut out);
            resource.encode_length_delimited(&mut out)?;
        }
        for scope in &scopes {
            key(2, &mut out);
            varint(scope.len(), &mut out);
            out.extend_from_slice(scope);
        }
        string(3, &rs.schema_url, &mut out);
    }
    Ok(out)
}

/// One `ScopeSpans` message without its length prefix.
fn scope_spans(ss: &ScopeSpans) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64 + ss.spans.len() * SPAN_GUESS);
    // ScopeSpans.scope = 1, spans = 2, schema_url = 3
    if let Some(scope) = &ss.scope {
        key(1, &mut out);
        scope.encode_length_delimited(&mut out)?;
    }
    for span in &ss.spans {
        crate::pace::checkpoint();
        key(2, &mut out);
        span.encode_length_delimited(&mut out)?;
    }
    string(3, &ss.schema_url, &mut out);
    Ok(out)
}

/// A proto3 string field; the empty default is not written, as prost does not write it.
fn string(tag: u32, s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() {
        key(tag, out);
        varint(s.len(), out);
        out.extend_from_slice(s.as_bytes());
    }
}

fn string_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(s.len())
    }
}

/// Bytes of a length-delimited field with a one-byte key (every tag here is below 16).
fn delimited_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

fn key(tag: u32, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
}

fn varint(value: usize, out: &mut Vec<u8>) {
    encode_varint(value as u64, out);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_is_encoded_as_prost_encodes_it() {
        let req = crate::otlp_json::tests::everything();
        assert_eq!(encode_request(&req).unwrap(), req.encode_to_vec());
        let empty = ExportTraceServiceRequest::default();
        assert_eq!(encode_request(&empty).unwrap(), empty.encode_to_vec());
    }
}
