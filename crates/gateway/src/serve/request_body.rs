//! Reading a request body: within `server.body_read_timeout_ms`, up to
//! `server.max_body_bytes`, and, past that limit, discarding the rest for a while so the
//! 413 reaches a client that writes its whole body before it reads (Python's `http.client`
//! and many simple clients): closing on it mid-write gives it a broken pipe instead.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Sleep;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The most of an oversized body read and thrown away before the 413, and for how long.
/// Past either, the connection closes with the rest unread.
pub const DISCARD_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub const DISCARD_MAX_TIME: Duration = Duration::from_secs(10);

/// The body did not arrive within `server.body_read_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimeout`] once it has kept the handler waiting
    /// for `limit` in all. The clock starts at the first poll that finds nothing to read, so
    /// a body that came with its head never touches the timer wheel.
    pub struct ReadDeadline<B> {
        #[pin]
        body: B,
        #[pin]
        timer: Option<Sleep>,
        limit: Duration,
    }
}

impl<B> ReadDeadline<B> {
    pub fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            timer: None,
            limit,
        }
    }
}

impl<B> http_body::Body for ReadDeadline<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.limit)));
        }
        let expired = this
            .timer
            .as_pin_mut()
            .is_some_and(|timer| timer.poll(cx).is_ready());
        if expired {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Larger than the limit; what could be of the rest was discarded.
    TooLarge,
    /// Did not arrive in time.
    TimedOut(Duration),
    /// The client broke the body off (a reset, a malformed chunk).
    Broken,
}

/// The whole body, up to `limit` bytes.
pub async fn read(body: &mut Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ReadError> {
    let declared = body.size_hint().lower();
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared > limit_u64 {
        // A client waiting for `100 Continue` has not sent the body: no need to read it.
        if !expects_continue(headers) && declared - limit_u64 <= DISCARD_MAX_BYTES {
            discard(body).await;
        }
        return Err(ReadError::TooLarge);
    }
    match Limited::new(&mut *body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            discard(body).await;
            Err(ReadError::TooLarge)
        }
        Err(e) => Err(classify(&*e)),
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn classify(e: &(dyn StdError + 'static)) -> ReadError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(BodyTimeout(limit)) = c.downcast_ref::<BodyTimeout>() {
            return ReadError::TimedOut(*limit);
        }
        cause = c.source();
    }
    ReadError::Broken
}

/// Reads and drops what is left of `body`, up to [`DISCARD_MAX_BYTES`] and
/// [`DISCARD_MAX_TIME`] (and the body's own read deadline).
async fn discard(body: &mut Body) {
    let drain = async {
        let mut left = DISCARD_MAX_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            left = left.saturating_sub(len);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_MAX_TIME, drain).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use http_body_util::StreamBody;

    fn chunks(n: usize, size: usize) -> Body {
        let frames =
            (0..n).map(move |_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; size]))));
        Body::new(StreamBody::new(futures::stream::iter(frames)))
    }

    #[tokio::test]
    async fn an_oversized_body_is_read_to_its_end_before_the_413() {
        let mut body = chunks(100, 1000);
        let e = read(&mut body, &HeaderMap::new(), 5000).await.unwrap_err();
        assert!(matches!(e, ReadError::TooLarge));
        assert!(body.frame().await.is_none(), "the rest was discarded");
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_returned_whole() {
        let mut body = chunks(5, 1000);
        let bytes = read(&mut body, &HeaderMap::new(), 5000).await.unwrap();
        assert_eq!(bytes.len(), 5000);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, BoxError>>());
        let mut body = Body::new(ReadDeadline::new(stalled, Duration::from_millis(300)));
        let e = read(&mut body, &HeaderMap::new(), 5000).await.unwrap_err();
        assert!(
            matches!(e, ReadError::TimedOut(d) if d == Duration::from_millis(300)),
            "{e:?}"
        );
    }
}
