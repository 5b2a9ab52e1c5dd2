//! Running a converter over a provider's body: event by event for streams, whole for the rest.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::convert::StreamConverter;
use crate::providers::{BodyStream, UpstreamError};
use crate::stream::sse::SseSplitter;

/// The provider's SSE body converted by `conv`. Each upstream chunk's complete events are
/// converted and yielded at once, so nothing waits for more than its own event. An event past
/// `max_event_bytes`, or the upstream's own error, ends the stream with an error; a clean end
/// gives the converter its [`StreamConverter::end`].
pub fn events(body: BodyStream, max_event_bytes: usize, conv: impl StreamConverter) -> BodyStream {
    Box::pin(Events {
        body,
        splitter: SseSplitter::new(max_event_bytes),
        conv,
        done: false,
    })
}

struct Events<C> {
    body: BodyStream,
    splitter: SseSplitter,
    conv: C,
    done: bool,
}

// The converter is never pinned: it is only called through `&mut`.
impl<C> Unpin for Events<C> {}

impl<C: StreamConverter> Stream for Events<C> {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done {
            let mut out = BytesMut::new();
            match ready!(this.body.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => match this.splitter.push(&chunk) {
                    Ok(events) => {
                        for event in &events {
                            this.conv.event(event, &mut out);
                        }
                    }
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(UpstreamError::Body(format!(
                            "the provider sent an event larger than {} bytes",
                            e.limit
                        )))));
                    }
                },
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.done = true;
                    // A last event without its blank line is still taken, as the tee does.
                    let rest = this.splitter.remainder();
                    if !rest.iter().all(u8::is_ascii_whitespace) {
                        let mut last = rest.to_vec();
                        last.extend_from_slice(b"\n\n");
                        this.conv.event(&last, &mut out);
                    }
                    this.conv.end(&mut out);
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
        }
        Poll::Ready(None)
    }
}

/// The provider's whole body, at most `max_bytes` of it, turned into the client's by `f`
/// and yielded once. A longer body, or the upstream's error, gives that error instead.
pub fn whole(
    body: BodyStream,
    max_bytes: usize,
    f: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
) -> BodyStream {
    Box::pin(futures::stream::once(async move {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > max_bytes {
                return Err(UpstreamError::Body(format!(
                    "the provider's answer is larger than {max_bytes} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(f(&buf)))
    }))
}
