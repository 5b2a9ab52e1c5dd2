//! The stream directives every dialect shares (`truncate_after`, `stream_error_after`,
//! `abort_after`, `chunk_delay_ms`), applied to a finished list of events.

use std::time::Duration;

use bytes::Bytes;

use crate::directives::Directives;
use crate::reply::{MockBody, MockReply};
use crate::responder::{headers, EVENT_STREAM};

/// `finish_at` is the index of the first event that tells the client the answer is complete
/// (a stop reason, a `completed` event); a truncated stream never reaches it, and an error
/// event never comes after the last event.
pub(crate) fn shaped(
    mut events: Vec<Bytes>,
    finish_at: usize,
    error_event: impl FnOnce() -> Bytes,
    directives: &Directives,
) -> Vec<Bytes> {
    if let Some(n) = directives.truncate_after {
        events.truncate(n.min(finish_at));
    }
    if let Some(n) = directives.stream_error_after {
        events.truncate(n.min(events.len().saturating_sub(1)));
        events.push(error_event());
    }
    events
}

/// A `200 text/event-stream` reply carrying `events`, with the timing directives applied.
pub(crate) fn sse_reply(
    events: Vec<Bytes>,
    directives: &Directives,
    tag: &str,
    extra_headers: Vec<(String, String)>,
) -> MockReply {
    let mut headers = headers(EVENT_STREAM, tag);
    headers.push(("cache-control".into(), "no-cache".into()));
    headers.extend(extra_headers);
    MockReply {
        status: 200,
        headers,
        latency: Duration::from_millis(directives.latency_ms),
        body: MockBody::Sse {
            events,
            chunk_delay: Duration::from_millis(directives.chunk_delay_ms),
            abort_after: directives.abort_after,
            fill: 0,
        },
    }
}

/// One named SSE event (`event: NAME` + `data: JSON`), as Anthropic and the Responses API send.
pub(crate) fn named_event(name: &str, data: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(name.len() + data.len() + 16);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(i.to_string())).collect()
    }

    #[test]
    fn truncation_stops_before_the_finish_and_errors_come_last() {
        let d = Directives::parse("truncate_after=9").unwrap();
        assert_eq!(shaped(events(6), 4, Bytes::new, &d).len(), 4);
        let d = Directives::parse("stream_error_after=2").unwrap();
        let out = shaped(events(6), 4, || Bytes::from_static(b"E"), &d);
        assert_eq!(out, ["0", "1", "E"]);
        let d = Directives::parse("stream_error_after=99").unwrap();
        let out = shaped(events(3), 2, || Bytes::from_static(b"E"), &d);
        assert_eq!(out, ["0", "1", "E"], "never after the last event");
    }

    #[test]
    fn named_events_are_sse_frames() {
        assert_eq!(named_event("ping", b"{}"), "event: ping\ndata: {}\n\n");
    }
}
