//! Per-attribute byte limits, so one huge prompt cannot make a span that backends reject.
//!
//! Message lists lose whole messages from the middle, so their JSON stays valid and both the
//! start of a conversation and its latest turns survive. Other strings are cut at a char
//! boundary. Every shortened value gets a `<key>.truncated = true` marker: nothing is cut
//! silently.
//!
//! The span's name and status message obey the same limit: both can hold the client's text
//! (`chat {model}`, `trace_name`, an error quoting the request), and a 10 MiB model once made a
//! 10 MiB span name. They have no key, so their markers are `gatecast.span_name.truncated`
//! and `gatecast.status_message.truncated`.

use serde_json::Value;

use crate::span::model::{AttrKey, AttrValue, SpanModel, SpanStatus};

pub const DEFAULT_MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

pub const TRUNCATED_SUFFIX: &str = ".truncated";

/// Attributes holding a JSON array whose elements may be dropped as a whole.
pub const LIST_KEYS: [&str; 4] = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
];

/// Set when the span's name was cut to the limit.
pub const SPAN_NAME_TRUNCATED: &str = "gatecast.span_name.truncated";
/// Set when the span's error status message was cut to the limit.
pub const STATUS_MESSAGE_TRUNCATED: &str = "gatecast.status_message.truncated";

pub fn marker_key(key: &str) -> String {
    format!("{key}{TRUNCATED_SUFFIX}")
}

/// Shortens the name, the status message and every attribute of `span` that exceeds
/// `max_bytes`, and marks each.
pub fn enforce(span: &mut SpanModel, max_bytes: usize) {
    let mut marked: Vec<AttrKey> = Vec::new();
    if shorten(&mut span.name, max_bytes) {
        marked.push(SPAN_NAME_TRUNCATED.into());
    }
    if let SpanStatus::Error(message) = &mut span.status {
        if shorten(message, max_bytes) {
            marked.push(STATUS_MESSAGE_TRUNCATED.into());
        }
    }
    for (key, value) in &mut span.attributes {
        let shortened = match value {
            AttrValue::String(s) if s.len() > max_bytes => {
                let fitted = if LIST_KEYS.contains(&key.as_str()) {
                    fit_list_str(s, max_bytes)
                } else {
                    cut(s, max_bytes).to_owned()
                };
                *s = fitted;
                true
            }
            AttrValue::StringArray(items) => fit_array(items, max_bytes),
            _ => false,
        };
        if shortened {
            marked.push(marker_key(key).into());
        }
    }
    for key in marked {
        span.set_attr(key, true);
    }
}

/// Cuts `s` to `max` bytes at a char boundary; whether it was longer. The spare capacity is
/// released: a span can wait in a queue for a while.
fn shorten(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let end = cut(s, max).len();
    s.truncate(end);
    s.shrink_to_fit();
    true
}

/// Keeps the first items of a string array within `max` bytes in all; a first item that is
/// alone too long is cut. Whether anything was dropped or cut.
fn fit_array(items: &mut Vec<String>, max: usize) -> bool {
    let mut left = max;
    for i in 0..items.len() {
        let len = items[i].len();
        if len <= left {
            left -= len;
            continue;
        }
        if i == 0 {
            shorten(&mut items[0], max);
            items.truncate(1);
        } else {
            items.truncate(i);
        }
        return true;
    }
    false
}

/// The longest prefix of `s` within `max` bytes that ends on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn fit_list_str(raw: &str, max: usize) -> String {
    match serde_json::from_str::<Vec<Value>>(raw) {
        Ok(items) => fit_list(&items, max).0,
        // Not a list after all: a plain cut is still better than dropping the value.
        Err(_) => cut(raw, max).to_owned(),
    }
}

/// Serializes `items` as a JSON array within `max` bytes. Returns the JSON and whether
/// anything was dropped or shortened.
pub fn fit_list(items: &[Value], max: usize) -> (String, bool) {
    let encoded: Vec<String> = items.iter().map(Value::to_string).collect();
    let full =
        2 + encoded.iter().map(|e| e.len() + 1).sum::<usize>() - usize::from(!encoded.is_empty());
    if full <= max {
        return (format!("[{}]", encoded.join(",")), false);
    }
    // Alternate between the newest and the oldest element while they fit, like the proxy's
    // capture limit does, so the two cuts agree on what survives.
    let (mut lo, mut hi) = (0usize, encoded.len());
    let mut size = 2usize;
    let mut take_tail = true;
    while lo < hi {
        let idx = if take_tail { hi - 1 } else { lo };
        let len = encoded[idx].len() + usize::from(size > 2);
        if size + len > max {
            break;
        }
        size += len;
        if take_tail {
            hi -= 1;
        } else {
            lo += 1;
        }
        take_tail = !take_tail;
    }
    let kept: Vec<&str> = encoded[..lo]
        .iter()
        .chain(encoded[hi..].iter())
        .map(String::as_str)
        .collect();
    if !kept.is_empty() {
        return (format!("[{}]", kept.join(",")), true);
    }
    // Not even the newest element fits: keep it, with its longest strings shortened.
    let shrunk = items
        .last()
        .and_then(|last| shrink(last.clone(), max.saturating_sub(2)));
    match shrunk {
        Some(one) => (format!("[{one}]"), true),
        None => ("[]".to_owned(), true),
    }
}

/// Cuts the longest string leaves of `value` until its JSON fits in `budget` bytes.
fn shrink(mut value: Value, budget: usize) -> Option<String> {
    let mut size = value.to_string().len();
    while size > budget {
        let leaf = longest_leaf(&mut value)?;
        if leaf.is_empty() {
            return None;
        }
        let excess = size - budget;
        // Drop chars from the end until their JSON form covers the excess, so escaped
        // characters are neither under- nor over-counted.
        let mut removed = 0usize;
        let mut keep = leaf.len();
        for (i, c) in leaf.char_indices().rev() {
            if removed >= excess {
                break;
            }
            removed += json_len(c);
            keep = i;
        }
        leaf.truncate(keep);
        size -= removed;
    }
    Some(value.to_string())
}

fn longest_leaf(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_leaf)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_leaf)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

/// Bytes `c` takes inside a JSON string literal, as serde_json writes it.
pub(crate) fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(n: usize, size: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"role": "user", "parts": [{"type": "text", "content": format!("{i}:{}", "x".repeat(size))}]}))
            .collect()
    }

    #[test]
    fn small_lists_are_untouched() {
        let items = msgs(3, 10);
        let (s, cut) = fit_list(&items, 10_000);
        assert!(!cut);
        assert_eq!(serde_json::from_str::<Vec<Value>>(&s).unwrap(), items);
        assert_eq!(fit_list(&[], 10), ("[]".to_owned(), false));
    }

    #[test]
    fn long_lists_lose_the_middle_and_stay_valid() {
        let items = msgs(10, 100);
        let (s, cut) = fit_list(&items, 600);
        assert!(cut);
        assert!(s.len() <= 600);
        let kept: Vec<Value> = serde_json::from_str(&s).unwrap();
        assert!(kept.len() >= 2);
        assert_eq!(kept.first(), items.first(), "the start survives");
        assert_eq!(kept.last(), items.last(), "the latest turn survives");
    }

    #[test]
    fn one_huge_message_is_shortened_inside() {
        let items = vec![
            json!({"role": "user", "parts": [{"type": "text", "content": "\"é".repeat(10_000)}]}),
        ];
        let (s, cut) = fit_list(&items, 1000);
        assert!(cut);
        assert!(s.len() <= 1000, "{}", s.len());
        let kept: Vec<Value> = serde_json::from_str(&s).unwrap();
        assert_eq!(kept[0]["role"], "user");
        assert!(s.len() > 900, "shortened, not emptied");
    }

    #[test]
    fn impossible_budgets_give_an_empty_list() {
        let (s, cut) = fit_list(&msgs(2, 10), 5);
        assert!(cut);
        assert_eq!(s, "[]");
    }

    fn span(name: &str, status: SpanStatus) -> SpanModel {
        SpanModel {
            trace_id: [1; 16],
            span_id: [1; 8],
            parent_span_id: None,
            parent_is_remote: false,
            name: name.into(),
            kind: crate::span::model::SpanKind::Client,
            role: crate::span::model::SpanRole::Generation,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: Vec::new(),
            status,
        }
    }

    #[test]
    fn names_and_status_messages_are_cut_and_marked() {
        let mut s = span(
            &format!("chat {}", "é".repeat(1000)),
            SpanStatus::Error("ü".repeat(1000)),
        );
        enforce(&mut s, 100);
        // 5 bytes of "chat " leave 95, and "é" takes two: the cut steps back to 99.
        assert_eq!(s.name.len(), 99);
        assert!(s.name.starts_with("chat é"));
        assert_eq!(s.attr(SPAN_NAME_TRUNCATED), Some(&AttrValue::Bool(true)));
        match &s.status {
            SpanStatus::Error(m) => assert_eq!(m.len(), 100),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.attr(STATUS_MESSAGE_TRUNCATED),
            Some(&AttrValue::Bool(true))
        );

        let mut small = span("chat m", SpanStatus::Error("no".into()));
        enforce(&mut small, 100);
        assert_eq!(small.name, "chat m");
        assert!(
            small.attributes.is_empty(),
            "nothing is marked that was not cut"
        );
    }

    #[test]
    fn string_arrays_are_bounded_in_total() {
        let mut s = span("n", SpanStatus::Unset);
        s.set_attr("many", AttrValue::StringArray(vec!["abcd".into(); 100]));
        s.set_attr(
            "one",
            AttrValue::StringArray(vec!["x".repeat(50), "y".into()]),
        );
        s.set_attr("fits", AttrValue::StringArray(vec!["abcd".into(); 2]));
        enforce(&mut s, 10);
        assert_eq!(
            s.attr("many"),
            Some(&AttrValue::StringArray(vec!["abcd".into(); 2]))
        );
        assert_eq!(
            s.attr("one"),
            Some(&AttrValue::StringArray(vec!["x".repeat(10)]))
        );
        assert_eq!(s.attr("many.truncated"), Some(&AttrValue::Bool(true)));
        assert_eq!(s.attr("one.truncated"), Some(&AttrValue::Bool(true)));
        assert!(s.attr("fits.truncated").is_none());
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
