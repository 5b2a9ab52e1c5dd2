//! One client connection: hyper's HTTP/1.1 on it, and a [`Tracker`] that knows whether the
//! connection waits for a request head, so that its request thread (`super::thread`) can time
//! it out, shed it at the connection cap and end it at shutdown.
//!
//! hyper's own `header_read_timeout` is not used: it starts when the previous response ends,
//! so it would also cut every kept-alive connection after that long, and a keep-alive idle
//! time shorter than the load balancer's turns its reuse of a closing connection into errors.
//! Here a connection's first head has `header_read_timeout_ms` from the accept, and a later
//! one `idle_timeout_ms` from the end of the previous response.
//!
//! Per request this costs two counter stores, a clock read when the response ends, a
//! reference-count increment for the response body, a flag load per poll of the request
//! future and per response frame, and a look at the content type of a response of unknown
//! length; there is no task, timer or allocation of its own.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::future::RouteFuture;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::request_body::ReadDeadline;
use super::socket::Socket;
use crate::api_error::{self, ApiShape};

/// The connection timers of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// A new connection's first request head must be read within this of the accept.
    pub header: Duration,
    /// A kept-alive connection's next head must be read within this of the last response.
    pub idle: Duration,
    /// A request body must arrive within this once the handler waits for it.
    pub body: Duration,
}

/// Signals from the request thread to a connection's task.
const DRAIN: u8 = 1;
const CUT: u8 = 2;
const CLOSE: u8 = 4;

/// Where one connection is, shared by its task, its service, its request and response
/// bodies and its request thread's list. Every field is written on the connection's own
/// thread; the atomics only make it shareable.
pub struct Tracker {
    accepted: Instant,
    /// Requests whose head was read.
    started: AtomicU32,
    /// Responses sent to the end or dropped.
    finished: AtomicU32,
    /// When the last response finished, in ms after `accepted`.
    idle_since_ms: AtomicU64,
    /// Some byte has arrived on the connection.
    heard: AtomicBool,
    /// The connection's task has run, so hyper has read what had arrived.
    polled: AtomicBool,
    signals: AtomicU8,
    /// The connection task's waker, kept (not taken) by [`Tracker::signal`].
    waker: Mutex<Option<Waker>>,
}

/// What a connection is doing, as its request thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Accepted and no request head read yet (`heard`: some bytes of it have arrived).
    FirstHead { since: Instant, heard: bool },
    /// Served before; waiting for its next request head since the last response ended.
    NextHead { since: Instant },
}

impl Tracker {
    pub fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            started: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            heard: AtomicBool::new(false),
            polled: AtomicBool::new(false),
            signals: AtomicU8::new(0),
            waker: Mutex::new(None),
        })
    }

    /// `None` while a request is in flight (its head read, its response not finished),
    /// before hyper first looked at the connection (its head may be there already), or once
    /// the connection was told to close.
    pub fn waiting(&self) -> Option<Waiting> {
        let started = self.started.load(Ordering::Relaxed);
        if started != self.finished.load(Ordering::Relaxed)
            || !self.polled.load(Ordering::Relaxed)
            || self.closing()
        {
            return None;
        }
        Some(if started == 0 {
            Waiting::FirstHead {
                since: self.accepted,
                heard: self.heard.load(Ordering::Relaxed),
            }
        } else {
            let ms = self.idle_since_ms.load(Ordering::Relaxed);
            Waiting::NextHead {
                since: self.accepted + Duration::from_millis(ms),
            }
        })
    }

    /// When this connection is to be closed for want of a request head; `None` while busy.
    pub fn deadline(&self, timers: &Timers) -> Option<(Instant, Waiting)> {
        self.waiting().map(|w| match w {
            Waiting::FirstHead { since, .. } => (since + timers.header, w),
            Waiting::NextHead { since } => (since + timers.idle, w),
        })
    }

    /// Whether the connection was told to close (it may still be closing).
    pub fn closing(&self) -> bool {
        self.signals.load(Ordering::Relaxed) & CLOSE != 0
    }

    /// Lets the connection finish what is in flight and then close (hyper's graceful
    /// shutdown: an idle kept-alive connection closes at once).
    pub fn drain(&self) {
        self.signal(DRAIN);
    }

    /// The shutdown deadline: a request still waiting for its response head is answered
    /// 503, and a response of unknown length (a stream) ends at its next frame.
    pub fn cut(&self) {
        self.signal(CUT);
    }

    /// Drops the connection, with whatever it was doing.
    pub fn close(&self) {
        self.signal(CLOSE);
    }

    fn is_cut(&self) -> bool {
        self.signals.load(Ordering::Acquire) & CUT != 0
    }

    fn signal(&self, flag: u8) {
        self.signals.fetch_or(flag, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = waker.as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Some byte of the connection has arrived (see [`Socket`]).
    pub(super) fn heard(&self) {
        self.heard.store(true, Ordering::Relaxed);
    }

    fn request_started(&self) {
        // Single writer: a load and a store, not a read-modify-write.
        let n = self.started.load(Ordering::Relaxed);
        self.started.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    fn response_finished(&self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::Relaxed);
        let n = self.finished.load(Ordering::Relaxed);
        self.finished.store(n.wrapping_add(1), Ordering::Relaxed);
    }
}

/// hyper's HTTP/1.1 with keep-alive and without its own header timer (see the module doc).
pub fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    builder
}

/// Serves `io` with `router` until the connection ends or its tracker closes it.
pub fn serve<I>(
    builder: &http1::Builder,
    io: Socket<I>,
    router: axum::Router,
    timers: &Timers,
    tracker: Arc<Tracker>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io.heard_by(tracker.clone()));
    let service = Service {
        router: RefCell::new(router),
        tracker: tracker.clone(),
        body_timeout: timers.body,
    };
    Task {
        conn: builder.serve_connection(io, service),
        tracker,
        waker: None,
        draining: false,
    }
}

pin_project_lite::pin_project! {
    /// The connection's task: hyper's connection, and the tracker's signals.
    struct Task<C> {
        #[pin]
        conn: C,
        tracker: Arc<Tracker>,
        // The waker last handed to the tracker.
        waker: Option<Waker>,
        draining: bool,
    }
}

impl<I> Future for Task<http1::Connection<TokioIo<Socket<I>>, Service>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let first = this.waker.is_none();
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            *this
                .tracker
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
            *this.waker = Some(waker);
        }
        let signals = this.tracker.signals.load(Ordering::Acquire);
        if signals & CLOSE != 0 {
            return Poll::Ready(());
        }
        if signals & DRAIN != 0 && !*this.draining {
            *this.draining = true;
            this.conn.as_mut().graceful_shutdown();
        }
        // A connection error (a client gone mid-request) ends only this connection.
        let polled = this.conn.poll(cx).map(|_| ());
        if first {
            this.tracker.polled.store(true, Ordering::Relaxed);
        }
        polled
    }
}

/// The router, seen by hyper, for one connection.
struct Service {
    /// `Router::call` wants `&mut`; hyper calls with `&` and never twice at once. A `RefCell`
    /// saves the router clone per request that a `&`-to-`&mut` adapter makes.
    router: RefCell<axum::Router>,
    tracker: Arc<Tracker>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Call;

    fn call(&self, request: Request<Incoming>) -> Call {
        self.tracker.request_started();
        let shape = api_error::shape_of(request.uri().path());
        let request = request.map(|body| ReadDeadline::new(body, self.body_timeout));
        let inner = tower::Service::call(&mut *self.router.borrow_mut(), request);
        Call {
            inner,
            tracker: Some(self.tracker.clone()),
            shape,
        }
    }
}

pin_project_lite::pin_project! {
    /// One request's response future; answers 503 instead once the shutdown deadline cut it.
    struct Call {
        #[pin]
        inner: RouteFuture<Infallible>,
        tracker: Option<Arc<Tracker>>,
        // The request's API, which the 503 and a cut stream's last event are written in.
        shape: ApiShape,
    }
}

impl Future for Call {
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(tracker) = this.tracker.as_ref() else {
            // Polled after it finished: hyper never does.
            return Poll::Pending;
        };
        let response = if tracker.is_cut() {
            // Dropping the handler's future cancels the provider request with it.
            shutting_down(*this.shape)
        } else {
            match ready!(this.inner.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        let tracker = this.tracker.take();
        // Only a stream can be cut, so only its type is looked at.
        let sse = response.body().size_hint().exact().is_none()
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let shape = *this.shape;
        Poll::Ready(Ok(response.map(|body| Tracked {
            body,
            tracker,
            sse,
            shape,
        })))
    }
}

/// The answer to a request still waiting for its response at the shutdown deadline.
fn shutting_down(shape: ApiShape) -> Response<Body> {
    let mut response = api_error::respond(&api_error::shutting_down(), shape);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response body that tells the tracker when it is done, and ends a stream at the
/// shutdown deadline with a proper last chunk rather than a dropped socket; an SSE stream
/// gets an error event first, so that SDKs raise an error instead of taking the cut answer
/// as complete. A body of known length is left to finish: cutting it would break its framing.
pub struct Tracked {
    body: Body,
    tracker: Option<Arc<Tracker>>,
    /// A `text/event-stream` of unknown length, not yet told of the shutdown.
    sse: bool,
    shape: ApiShape,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.tracker.as_ref().is_some_and(|t| t.is_cut())
            && self.body.size_hint().exact().is_none()
        {
            if std::mem::take(&mut self.sse) {
                // The blank lines first end an event the provider's last chunk may have left
                // open.
                let mut event = b"\n\n".to_vec();
                event.extend(self.shape.event(&api_error::stream_cut()));
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))));
            }
            return Poll::Ready(None);
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(tracker) = &self.tracker {
            tracker.response_finished();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_waits_for_a_head_between_requests_only() {
        let accepted = Instant::now();
        let t = Tracker::new(accepted);
        assert_eq!(
            t.waiting(),
            None,
            "not looked at yet: its head may be there"
        );
        t.polled.store(true, Ordering::Relaxed);
        let timers = Timers {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(75),
            body: Duration::from_secs(30),
        };
        assert_eq!(
            t.deadline(&timers),
            Some((
                accepted + timers.header,
                Waiting::FirstHead {
                    since: accepted,
                    heard: false
                }
            ))
        );
        t.request_started();
        assert_eq!(t.deadline(&timers), None, "busy: no head timer");
        t.response_finished();
        match t.deadline(&timers) {
            Some((at, Waiting::NextHead { since })) => {
                assert!(since >= accepted);
                assert_eq!(at, since + timers.idle);
            }
            other => panic!("{other:?}"),
        }
        t.close();
        assert_eq!(t.waiting(), None, "a closing connection is not a candidate");
    }
}
