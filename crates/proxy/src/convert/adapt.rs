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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use futures::FutureExt;

    /// Writes each event's data back upper-cased, and `END` at a clean end.
    struct Upper;

    impl StreamConverter for Upper {
        fn event(&mut self, event: &[u8], out: &mut BytesMut) {
            if let Some(data) = crate::stream::sse::event_data(event) {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&data.to_ascii_uppercase());
                out.extend_from_slice(b"\n\n");
            }
        }
        fn end(&mut self, out: &mut BytesMut) {
            out.extend_from_slice(b"data: END\n\n");
        }
    }

    fn body(items: Vec<Result<&'static [u8], UpstreamError>>) -> BodyStream {
        Box::pin(futures::stream::iter(
            items.into_iter().map(|r| r.map(Bytes::from_static)),
        ))
    }

    fn collect(stream: BodyStream) -> Vec<Result<Bytes, UpstreamError>> {
        futures::executor::block_on(stream.collect())
    }

    #[test]
    fn events_are_converted_across_chunk_boundaries_and_end_is_called() {
        let out = collect(events(
            body(vec![
                Ok(b"data: a"),
                Ok(b"b\n"),
                Ok(b"\ndata: c\n\nda"),
                Ok(b"ta: d"),
            ]),
            1024,
            Upper,
        ));
        let out: Vec<Bytes> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            out,
            [
                Bytes::from_static(b"data: AB\n\ndata: C\n\n"),
                // The last event lacked its blank line: it is still taken, then the end.
                Bytes::from_static(b"data: D\n\ndata: END\n\n"),
            ]
        );
    }

    #[test]
    fn each_event_is_yielded_as_soon_as_it_is_complete() {
        let (tx, rx) = mpsc::unbounded::<Result<Bytes, UpstreamError>>();
        let mut stream = events(Box::pin(rx), 1024, Upper);
        tx.unbounded_send(Ok(Bytes::from_static(b"data: x\n\ndata: y")))
            .unwrap();
        let first = stream.next().now_or_never();
        assert_eq!(
            first,
            Some(Some(Ok(Bytes::from_static(b"data: X\n\n")))),
            "the complete event does not wait for the rest of the stream"
        );
        assert_eq!(stream.next().now_or_never(), None, "the partial one waits");
        drop(tx);
        let rest = futures::executor::block_on(stream.collect::<Vec<_>>());
        assert_eq!(rest, [Ok(Bytes::from_static(b"data: Y\n\ndata: END\n\n"))]);
    }

    #[test]
    fn an_oversized_event_or_an_upstream_error_ends_the_stream() {
        let out = collect(events(
            body(vec![Ok(b"data: 0123456789"), Ok(b"more")]),
            8,
            Upper,
        ));
        assert_eq!(
            out,
            [Err(UpstreamError::Body(
                "the provider sent an event larger than 8 bytes".into()
            ))]
        );
        let out = collect(events(
            body(vec![
                Ok(b"data: a\n\n"),
                Err(UpstreamError::Timeout),
                Ok(b"data: b\n\n"),
            ]),
            1024,
            Upper,
        ));
        assert_eq!(
            out,
            [
                Ok(Bytes::from_static(b"data: A\n\n")),
                Err(UpstreamError::Timeout)
            ],
            "no end() after a broken stream"
        );
    }

    #[test]
    fn whole_converts_the_collected_body_once() {
        let out = collect(whole(body(vec![Ok(b"ab"), Ok(b"cd")]), 4, |b: &[u8]| {
            b.to_ascii_uppercase()
        }));
        assert_eq!(out, [Ok(Bytes::from_static(b"ABCD"))]);
        let out = collect(whole(body(vec![Ok(b"ab"), Ok(b"cde")]), 4, <[u8]>::to_vec));
        assert_eq!(
            out,
            [Err(UpstreamError::Body(
                "the provider's answer is larger than 4 bytes".into()
            ))]
        );
        let out = collect(whole(
            body(vec![Ok(b"ab"), Err(UpstreamError::Body("reset".into()))]),
            4,
            <[u8]>::to_vec,
        ));
        assert_eq!(out, [Err(UpstreamError::Body("reset".into()))]);
    }
}
