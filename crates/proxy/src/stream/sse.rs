//! Incremental server-sent-events framing.
//!
//! Upstream chunks split events anywhere. The splitter hands back whole events as soon as their
//! terminating blank line arrives and keeps only the unfinished tail, so nothing waits longer
//! than the event it belongs to. An event may not grow past a limit, so a provider that never
//! ends one cannot make the gateway hold it all.

use bytes::{Bytes, BytesMut};

/// `max_sse_event_bytes` when a provider does not set it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub struct SseSplitter {
    tail: BytesMut,
    max_event_bytes: usize,
}

impl Default for SseSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

/// An event, blank line included, was longer than the splitter's limit, or its unfinished
/// part already is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event is larger than {limit} bytes")]
pub struct EventTooLarge {
    pub limit: usize,
}

impl SseSplitter {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            tail: BytesMut::new(),
            max_event_bytes,
        }
    }

    /// Feeds a chunk; returns the complete events it finished, each with its blank line. Past
    /// the limit the unfinished tail is let go and nothing more should be pushed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, EventTooLarge> {
        let mut events = Vec::new();
        let scan_from = self.tail.len().saturating_sub(3);
        self.tail.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = scan_from;
        let mut too_large = false;
        while let Some(end) = find_event_end(&self.tail[i..]).map(|e| e + i) {
            too_large |= end - start > self.max_event_bytes;
            events.push((start, end));
            start = end;
            i = end;
        }
        // Lengths the scan has already found: the check costs two comparisons.
        if too_large || self.tail.len() - start > self.max_event_bytes {
            self.tail = BytesMut::new();
            return Err(EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let done = self.tail.split_to(start).freeze();
        Ok(events.into_iter().map(|(s, e)| done.slice(s..e)).collect())
    }

    /// Whatever arrived after the last complete event.
    pub fn remainder(&self) -> &[u8] {
        &self.tail
    }
}

/// Index just past the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`) in `buf`.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' if buf.get(i + 1) == Some(&b'\n') => return Some(i + 2),
            b'\n' if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') => {
                return Some(i + 3)
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The event's `data` payload: its `data:` lines joined by `\n`, or `None` when it has none
/// (comments, `event:`-only keep-alives).
pub fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data") else {
            continue;
        };
        let value = match value.first() {
            Some(b':') => &value[1..],
            None => value,
            Some(_) => continue,
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match &mut out {
            Some(buf) => {
                buf.push(b'\n');
                buf.extend_from_slice(value);
            }
            None => out = Some(value.to_vec()),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_whole_events_and_keeps_the_tail() {
        let mut s = SseSplitter::default();
        let ev = s.push(b"data: {\"a\":1}\n\ndata: {\"b\"").unwrap();
        assert_eq!(ev, vec![Bytes::from_static(b"data: {\"a\":1}\n\n")]);
        assert_eq!(s.remainder(), b"data: {\"b\"");
        let ev = s.push(b":2}\n").unwrap();
        assert!(ev.is_empty());
        let ev = s.push(b"\ndata: [DONE]\n\n").unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(event_data(&ev[0]).as_deref(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(event_data(&ev[1]).as_deref(), Some(&b"[DONE]"[..]));
    }

    #[test]
    fn an_event_that_never_ends_is_refused_once_past_the_limit() {
        let mut s = SseSplitter::new(64);
        assert_eq!(s.push(b"data: {\"a\":1}\n\n").unwrap().len(), 1);
        assert!(s.push(&[b'x'; 40]).unwrap().is_empty());
        assert_eq!(s.push(&[b'x'; 40]), Err(EventTooLarge { limit: 64 }));
        assert!(s.remainder().is_empty(), "what was held is let go");
    }

    #[test]
    fn crlf_and_multiline_data() {
        let mut s = SseSplitter::default();
        let ev = s
            .push(b": keep-alive\r\n\r\ndata:a\r\ndata: b\r\n\r\n")
            .unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(event_data(&ev[0]), None);
        assert_eq!(event_data(&ev[1]).as_deref(), Some(&b"a\nb"[..]));
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(
            payloads in prop::collection::vec("[a-z{}\":, ]{0,30}", 0..8),
            cuts in prop::collection::vec(0usize..400, 0..10),
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| format!("data: {p}\n\n").into_bytes()).collect();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            points.sort_unstable();
            let mut s = SseSplitter::default();
            let mut got = Vec::new();
            let mut prev = 0;
            for p in points.into_iter().chain([stream.len()]) {
                got.extend(s.push(&stream[prev..p]).unwrap());
                prev = p;
            }
            prop_assert!(s.remainder().is_empty());
            let data: Vec<Vec<u8>> = got.iter().filter_map(|e| event_data(e)).collect();
            let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.as_bytes().to_vec()).collect();
            prop_assert_eq!(data, want);
        }

        /// Whatever the chunking, a stream is refused exactly when one of its events is longer
        /// than the limit.
        #[test]
        fn the_limit_holds_on_any_split(
            sizes in prop::collection::vec(0usize..40, 1..6),
            limit in 8usize..40,
            cuts in prop::collection::vec(0usize..300, 0..10),
        ) {
            let events: Vec<Vec<u8>> = sizes
                .iter()
                .map(|n| format!("data: {}\n\n", "x".repeat(*n)).into_bytes())
                .collect();
            let stream = events.concat();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            points.sort_unstable();
            let mut s = SseSplitter::new(limit);
            let mut refused = false;
            let mut prev = 0;
            for p in points.into_iter().chain([stream.len()]) {
                if s.push(&stream[prev..p]).is_err() {
                    refused = true;
                    break;
                }
                prev = p;
            }
            prop_assert_eq!(refused, events.iter().any(|e| e.len() > limit));
        }

        #[test]
        fn never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut s = SseSplitter::default();
            let mut total = 0;
            for c in &chunks {
                for e in s.push(c).unwrap() {
                    total += e.len();
                    let _ = event_data(&e);
                }
            }
            prop_assert_eq!(total + s.remainder().len(), chunks.iter().map(Vec::len).sum::<usize>());
        }
    }
}
