//! The response body: provider bytes go to the client as they arrive, while a side path
//! folds them into the exchange's record.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use gatecast_telemetry::record::ErrorKind;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::capture::{Accumulator, ChunkKind};
use crate::exchange::Exchange;
use crate::providers::BodyStream;
use crate::sse::{event_data, SseSplitter};

/// Why the body ended early; hyper then aborts the connection, so the client sees a broken
/// stream rather than a clean end.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(&'static str);

/// How the provider's bytes are read on the side.
pub enum Mode {
    /// An SSE stream. With `hide_usage`, the usage-only chunk that the gateway asked for (and
    /// the `"usage":null` it adds to every chunk) is removed, so the client sees what it would
    /// have seen without the gateway.
    Sse {
        splitter: SseSplitter,
        hide_usage: bool,
    },
    /// A whole JSON body, read once at the end. The chunks are reference-counted, not copied.
    Whole { chunks: Vec<Bytes> },
}

pub struct TeeBody {
    upstream: BodyStream,
    mode: Mode,
    acc: Option<Accumulator>,
    exchange: Option<Exchange>,
    deadline: Option<Pin<Box<Sleep>>>,
    upstream_status: u16,
    /// Bytes still expected when the provider declared a length. hyper stops polling a body
    /// once it has that many bytes, so the exchange must be closed with the last chunk.
    remaining: Option<u64>,
}

impl TeeBody {
    pub fn new(
        upstream: BodyStream,
        mode: Mode,
        acc: Accumulator,
        exchange: Exchange,
        deadline: Pin<Box<Sleep>>,
        upstream_status: u16,
        content_length: Option<u64>,
    ) -> Self {
        Self {
            upstream,
            mode,
            acc: Some(acc),
            exchange: Some(exchange),
            deadline: Some(deadline),
            upstream_status,
            remaining: content_length,
        }
    }

    /// Turns one provider chunk into what the client receives (possibly nothing yet).
    fn on_chunk(&mut self, chunk: Bytes) -> Option<Bytes> {
        let Some(acc) = self.acc.as_mut() else {
            return Some(chunk);
        };
        match &mut self.mode {
            Mode::Whole { chunks } => {
                chunks.push(chunk.clone());
                Some(chunk)
            }
            Mode::Sse {
                splitter,
                hide_usage: false,
            } => {
                for event in splitter.push(&chunk) {
                    if let Some(data) = event_data(&event) {
                        acc.on_chunk(&data);
                    }
                }
                Some(chunk)
            }
            Mode::Sse {
                splitter,
                hide_usage: true,
            } => {
                let events = splitter.push(&chunk);
                let mut out = BytesMut::new();
                for event in events {
                    let kind = event_data(&event).map(|d| acc.on_chunk(&d));
                    match kind {
                        Some(ChunkKind::UsageOnly) => {}
                        Some(ChunkKind::Regular) => strip_usage_null(&event, &mut out),
                        _ => out.extend_from_slice(&event),
                    }
                }
                (!out.is_empty()).then(|| out.freeze())
            }
        }
    }

    fn finish(&mut self, failure: Option<(ErrorKind, &str)>) {
        let (Some(mut exchange), Some(mut acc)) = (self.exchange.take(), self.acc.take()) else {
            return;
        };
        if let Mode::Whole { chunks } = &mut self.mode {
            match chunks.len() {
                0 => {}
                1 => acc.on_body(&chunks[0]),
                _ => acc.on_body(&chunks.concat()),
            }
            chunks.clear();
        }
        let (output, usage, provider_message) = acc.finish();
        exchange.record.output = output;
        exchange.record.usage = usage;
        let status = self.upstream_status;
        if let Some((kind, message)) = failure {
            exchange.fail(kind, Some(status), message.to_owned());
        } else if status >= 400 {
            let message = provider_message.unwrap_or_else(|| format!("provider answered {status}"));
            exchange.fail(ErrorKind::Provider, Some(status), message);
        }
        exchange.publish();
    }
}

/// Removes the `"usage":null` that `include_usage` adds to every chunk.
fn strip_usage_null(event: &[u8], out: &mut BytesMut) {
    const NEEDLE: &[u8] = b",\"usage\":null";
    match memchr::memmem::find(event, NEEDLE) {
        Some(at) => {
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + NEEDLE.len()..]);
        }
        None => out.extend_from_slice(event),
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            if this.exchange.is_none() {
                return Poll::Ready(None);
            }
            if let Some(deadline) = this.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    this.finish(Some((
                        ErrorKind::Timeout,
                        "provider did not finish the answer in time",
                    )));
                    return Poll::Ready(Some(Err(BodyError("provider timed out mid-answer"))));
                }
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(ex) = this.exchange.as_mut() {
                        if ex.record.timings.first_chunk.is_none() {
                            ex.record.timings.first_chunk = Some(ex.elapsed());
                        }
                    }
                    if let Some(out) = this.on_chunk(chunk) {
                        if let Some(left) = this.remaining.as_mut() {
                            *left = left.saturating_sub(out.len() as u64);
                            if *left == 0 {
                                this.finish(None);
                            }
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    this.finish(Some((
                        ErrorKind::StreamAborted,
                        "provider broke the stream",
                    )));
                    return Poll::Ready(Some(Err(BodyError("provider broke the stream"))));
                }
                Poll::Ready(None) => {
                    let rest = match &this.mode {
                        Mode::Sse {
                            splitter,
                            hide_usage: true,
                        } if !splitter.remainder().is_empty() => {
                            Some(Bytes::copy_from_slice(splitter.remainder()))
                        }
                        _ => None,
                    };
                    this.finish(None);
                    return Poll::Ready(rest.map(|b| Ok(Frame::data(b))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away. Dropping `upstream` cancels the call.
        self.finish(Some((
            ErrorKind::Cancelled,
            "client disconnected before the answer was complete",
        )));
    }
}
