//! Trace and span ids, decided from what the caller sent (DESIGN §3).
//!
//! Hex ids of the right length are used verbatim; any other string is hashed so the same
//! string always lands in the same trace, which is how a multi-call agent run shares one trace.

use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The ids a request's spans hang from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedIds {
    pub trace_id: [u8; 16],
    /// `Some` when the request named a parent (`trace.parent_span_id` or `traceparent`).
    pub parent_span_id: Option<[u8; 8]>,
}

/// Decides the trace id and parent from `trace.trace_id`, `trace.parent_span_id` and the
/// W3C `traceparent` header, in that order of precedence.
pub fn resolve(trace: &Map<String, Value>, traceparent: Option<&str>) -> ResolvedIds {
    let parsed_parent = traceparent.and_then(parse_traceparent);
    let trace_id = match trace.get("trace_id").and_then(id_source) {
        Some(s) => trace_id_from(&s),
        None => match parsed_parent {
            Some((tid, _)) => tid,
            None => random_trace_id(),
        },
    };
    let parent_span_id = match trace.get("parent_span_id").and_then(id_source) {
        Some(s) => Some(span_id_from(&s)),
        None => parsed_parent.map(|(_, sid)| sid),
    };
    ResolvedIds {
        trace_id,
        parent_span_id,
    }
}

/// Reserved keys may arrive as numbers; they are treated as their string form.
fn id_source(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// 32 hex digits (not all zero) verbatim, else the first 16 bytes of sha256.
pub fn trace_id_from(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    if s.len() == 32 && hex::decode_to_slice(s, &mut out).is_ok() && out != [0; 16] {
        return out;
    }
    let digest = Sha256::digest(s.as_bytes());
    out.copy_from_slice(&digest[..16]);
    nonzero(out)
}

/// 16 hex digits (not all zero) verbatim, else the first 8 bytes of sha256.
pub fn span_id_from(s: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    if s.len() == 16 && hex::decode_to_slice(s, &mut out).is_ok() && out != [0; 8] {
        return out;
    }
    let digest = Sha256::digest(s.as_bytes());
    out.copy_from_slice(&digest[..8]);
    nonzero(out)
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`; invalid or all-zero ids are ignored, as W3C requires.
pub fn parse_traceparent(header: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let tid = parts.next()?;
    let sid = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2
        || version == "ff"
        || tid.len() != 32
        || sid.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let mut t = [0u8; 16];
    let mut s = [0u8; 8];
    hex::decode_to_slice(tid, &mut t).ok()?;
    hex::decode_to_slice(sid, &mut s).ok()?;
    let mut f = [0u8; 1];
    hex::decode_to_slice(version, &mut f).ok()?;
    hex::decode_to_slice(flags, &mut f).ok()?;
    (t != [0; 16] && s != [0; 8]).then_some((t, s))
}

pub fn random_trace_id() -> [u8; 16] {
    let mut out = [0u8; 16];
    rand::rng().fill_bytes(&mut out);
    nonzero(out)
}

pub fn random_span_id() -> [u8; 8] {
    let mut out = [0u8; 8];
    rand::rng().fill_bytes(&mut out);
    nonzero(out)
}

/// Ids are never all zeros: OTLP treats that as "no id".
fn nonzero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id == [0; N] {
        id[N - 1] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn hex_ids_are_verbatim_and_lowercased() {
        let ids = resolve(
            &map(
                json!({"trace_id": "0AF7651916CD43DD8448EB211C80319C", "parent_span_id": "B7AD6B7169203331"}),
            ),
            None,
        );
        assert_eq!(
            hex::encode(ids.trace_id),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(
            ids.parent_span_id.map(hex::encode).as_deref(),
            Some("b7ad6b7169203331")
        );
    }

    #[test]
    fn other_strings_hash_with_sha256() {
        let ids = resolve(
            &map(json!({"trace_id": "run-42", "parent_span_id": "step-1"})),
            None,
        );
        let d = Sha256::digest(b"run-42");
        assert_eq!(ids.trace_id[..], d[..16]);
        let d = Sha256::digest(b"step-1");
        assert_eq!(
            ids.parent_span_id.map(|p| p.to_vec()),
            Some(d[..8].to_vec())
        );
    }

    #[test]
    fn traceparent_is_continued_when_no_trace_keys() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = resolve(&Map::new(), Some(tp));
        assert_eq!(
            hex::encode(ids.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            ids.parent_span_id.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
    }

    #[test]
    fn trace_id_wins_over_traceparent_but_parent_still_continues() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = resolve(&map(json!({"trace_id": "run-42"})), Some(tp));
        assert_ne!(
            hex::encode(ids.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            ids.parent_span_id.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
    }

    #[test]
    fn invalid_traceparent_is_ignored() {
        for tp in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        ] {
            let ids = resolve(&Map::new(), Some(tp));
            assert_eq!(ids.parent_span_id, None, "{tp}");
            assert_ne!(ids.trace_id, [0; 16]);
        }
    }

    #[test]
    fn all_zero_hex_trace_id_is_hashed_not_used() {
        let ids = resolve(
            &map(json!({"trace_id": "00000000000000000000000000000000"})),
            None,
        );
        assert_ne!(ids.trace_id, [0; 16]);
    }

    #[test]
    fn numeric_trace_id_is_treated_as_its_string() {
        let a = resolve(&map(json!({"trace_id": 42})), None);
        let b = resolve(&map(json!({"trace_id": "42"})), None);
        assert_eq!(a.trace_id, b.trace_id);
    }

    proptest::proptest! {
        #[test]
        fn any_trace_value_yields_valid_ids(s in ".*", tp in ".*") {
            let ids = resolve(&map(json!({"trace_id": s.clone(), "parent_span_id": s})), Some(&tp));
            proptest::prop_assert_ne!(ids.trace_id, [0u8; 16]);
            proptest::prop_assert!(ids.parent_span_id.is_none_or(|p| p != [0u8; 8]));
        }
    }
}
