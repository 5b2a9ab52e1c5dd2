//! The responder's answer, independent of any HTTP stack so the gateway can use it in-process.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// How long to wait before sending the status line, to imitate a slow first byte.
    pub latency: Duration,
    pub body: MockBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockBody {
    Json(Bytes),
    /// A JSON body that `abort_after` says must break half way through.
    TruncatedJson(Bytes),
    Sse {
        events: Vec<Bytes>,
        chunk_delay: Duration,
        abort_after: Option<usize>,
        /// Bytes of filler that continue the last event without ever ending it
        /// (`event_bytes`); 0 for a normal stream.
        fill: u64,
    },
    /// A body too big to hold (`answer_bytes`): `head`, then `fill` bytes of filler, then
    /// `tail`, made as they are sent.
    Padded {
        head: Bytes,
        fill: u64,
        tail: Bytes,
    },
}

/// Filler is sent in slices of this, so a huge body costs no memory.
static FILLER: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// The error that ends an aborted body stream; an HTTP server turns it into a torn connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("mock aborted the stream")]
pub struct MockAbort;

impl MockReply {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A whole, unbroken JSON body, which a server can send with a content-length.
    pub fn json_bytes(&self) -> Option<Bytes> {
        match &self.body {
            MockBody::Json(bytes) => Some(bytes.clone()),
            _ => None,
        }
    }

    /// The body's length when it is known before it is made.
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            MockBody::Json(bytes) => Some(bytes.len() as u64),
            MockBody::Padded { head, fill, tail } => {
                Some(head.len() as u64 + fill + tail.len() as u64)
            }
            MockBody::TruncatedJson(_) | MockBody::Sse { .. } => None,
        }
    }

    /// Never yields `[DONE]` on an aborted stream: the abort comes before the last event at
    /// the latest, so a client can always tell a broken stream from a finished one.
    pub fn into_body_stream(self) -> impl Stream<Item = Result<Bytes, MockAbort>> + Send + 'static {
        let plan = Plan::from(self.body);
        futures::stream::unfold(plan, |mut plan| async move {
            let item = plan.next().await?;
            Some((item, plan))
        })
    }
}

struct Plan {
    events: std::vec::IntoIter<Bytes>,
    sent: usize,
    delay: Duration,
    abort_at: Option<usize>,
    finished: bool,
    /// Filler still to send once the events are out.
    fill: u64,
    /// Sent after the filler.
    tail: Option<Bytes>,
}

impl From<MockBody> for Plan {
    fn from(body: MockBody) -> Self {
        let (events, delay, abort_at, fill, tail) = match body {
            MockBody::Json(bytes) => (vec![bytes], Duration::ZERO, None, 0, None),
            MockBody::TruncatedJson(bytes) => {
                let half = bytes.len() / 2;
                (
                    vec![bytes.slice(..half), bytes.slice(half..)],
                    Duration::ZERO,
                    Some(1),
                    0,
                    None,
                )
            }
            MockBody::Sse {
                events,
                chunk_delay,
                abort_after,
                fill,
            } => {
                let last = events.len().saturating_sub(1);
                (
                    events,
                    chunk_delay,
                    abort_after.map(|n| n.min(last)),
                    fill,
                    None,
                )
            }
            MockBody::Padded { head, fill, tail } => {
                (vec![head], Duration::ZERO, None, fill, Some(tail))
            }
        };
        Plan {
            events: events.into_iter(),
            sent: 0,
            delay,
            abort_at,
            finished: false,
            fill,
            tail,
        }
    }
}

impl Plan {
    async fn next(&mut self) -> Option<Result<Bytes, MockAbort>> {
        if self.finished {
            return None;
        }
        if self.abort_at == Some(self.sent) {
            self.finished = true;
            // One pending poll lets an HTTP server flush the status and the events so far;
            // failing straight away would drop them with the connection, and the client would
            // see no response at all instead of a broken one.
            tokio::task::yield_now().await;
            return Some(Err(MockAbort));
        }
        let Some(event) = self.events.next() else {
            if self.fill > 0 {
                let n = self.fill.min(FILLER.len() as u64);
                self.fill -= n;
                return Some(Ok(Bytes::from_static(&FILLER[..n as usize])));
            }
            self.finished = true;
            return self.tail.take().filter(|t| !t.is_empty()).map(Ok);
        };
        if self.sent > 0 && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.sent += 1;
        Some(Ok(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Instant;

    fn sse(n: usize, chunk_delay: Duration, abort_after: Option<usize>) -> MockReply {
        let events = (0..n)
            .map(|i| Bytes::from(format!("data: {i}\n\n")))
            .collect();
        MockReply {
            status: 200,
            headers: vec![],
            latency: Duration::ZERO,
            body: MockBody::Sse {
                events,
                chunk_delay,
                abort_after,
                fill: 0,
            },
        }
    }

    #[tokio::test]
    async fn a_padded_body_is_made_as_it_is_sent_to_its_declared_length() {
        let reply = MockReply {
            status: 200,
            headers: vec![],
            latency: Duration::ZERO,
            body: MockBody::Padded {
                head: Bytes::from_static(b"{\"a\":\""),
                fill: 200_000,
                tail: Bytes::from_static(b"\"}"),
            },
        };
        assert_eq!(reply.content_length(), Some(200_000 + 8));
        let items: Vec<Bytes> = reply.into_body_stream().map(Result::unwrap).collect().await;
        assert!(items.iter().all(|c| c.len() <= FILLER.len()));
        let body = items.concat();
        assert_eq!(body.len(), 200_008);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["a"].as_str().unwrap().len(), 200_000);
    }

    #[tokio::test]
    async fn sse_stream_yields_every_event_in_order() {
        let items: Vec<_> = sse(3, Duration::ZERO, None)
            .into_body_stream()
            .collect()
            .await;
        let items: Vec<Bytes> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(items, ["data: 0\n\n", "data: 1\n\n", "data: 2\n\n"]);
    }

    #[tokio::test]
    async fn abort_after_yields_exactly_n_events_then_an_error() {
        let items: Vec<_> = sse(5, Duration::ZERO, Some(2))
            .into_body_stream()
            .collect()
            .await;
        assert_eq!(items.len(), 3);
        assert!(items[..2].iter().all(Result::is_ok));
        assert_eq!(items[2], Err(MockAbort));

        // Asking for more events than exist still never delivers the last one.
        let items: Vec<_> = sse(3, Duration::ZERO, Some(99))
            .into_body_stream()
            .collect()
            .await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[2], Err(MockAbort));
    }

    #[tokio::test]
    async fn truncated_json_yields_half_then_an_error() {
        let body = Bytes::from_static(b"{\"0123456789\":1}");
        let reply = MockReply {
            status: 200,
            headers: vec![],
            latency: Duration::ZERO,
            body: MockBody::TruncatedJson(body.clone()),
        };
        let items: Vec<_> = reply.into_body_stream().collect().await;
        assert_eq!(items, [Ok(body.slice(..body.len() / 2)), Err(MockAbort)]);
    }

    #[tokio::test]
    async fn delay_comes_between_events_not_before_the_first() {
        let started = Instant::now();
        let mut stream = std::pin::pin!(sse(3, Duration::from_millis(40), None).into_body_stream());
        stream.next().await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_millis(35));
        while stream.next().await.is_some() {}
        assert!(started.elapsed() >= Duration::from_millis(80));
    }

    #[test]
    fn abort_reads_well() {
        assert_eq!(MockAbort.to_string(), "mock aborted the stream");
    }
}
