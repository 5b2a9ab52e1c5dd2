//! The answer, as chat completions, rewritten into the client API's shape on its way out.
//!
//! Sits after the tee, so the record is read from the neutral chat form and the client gets
//! its own API's events, each as soon as its chat event arrived.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::convert::StreamConverter;
use crate::stream::sse::SseSplitter;
use crate::stream::tee::{BodyError, TeeBody};

/// Writes a whole chat answer (or error body) in the client's shape.
pub type WholeConverter = Box<dyn FnOnce(&[u8]) -> Vec<u8> + Send>;

pub enum Reshape {
    Events {
        splitter: SseSplitter,
        converter: Box<dyn StreamConverter>,
    },
    Whole {
        held: BytesMut,
        convert: Option<WholeConverter>,
    },
}

pub struct ReshapedBody {
    inner: Box<TeeBody>,
    reshape: Reshape,
    done: bool,
}

impl ReshapedBody {
    pub fn new(inner: TeeBody, reshape: Reshape) -> Self {
        Self {
            inner: Box::new(inner),
            reshape,
            done: false,
        }
    }
}

impl Body for ReshapedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(this.inner.as_mut()).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => {
                    this.done = true;
                    let out = match &mut this.reshape {
                        Reshape::Events {
                            splitter,
                            converter,
                        } => {
                            let mut out = BytesMut::new();
                            // A last event without its blank line still counts.
                            let rest = splitter.remainder().to_vec();
                            if !rest.is_empty() {
                                let mut event = rest;
                                event.extend_from_slice(b"\n\n");
                                converter.event(&event, &mut out);
                            }
                            converter.end(&mut out);
                            out
                        }
                        Reshape::Whole { held, convert } => match convert.take() {
                            Some(f) => BytesMut::from(&f(held)[..]),
                            None => BytesMut::new(),
                        },
                    };
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match &mut this.reshape {
                Reshape::Events {
                    splitter,
                    converter,
                } => {
                    // The tee already bounds each event; this splitter never refuses one.
                    let events = splitter.push(&data).unwrap_or_default();
                    let mut out = BytesMut::new();
                    for event in events {
                        converter.event(&event, &mut out);
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                }
                Reshape::Whole { held, .. } => held.extend_from_slice(&data),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
