//! `http://` upstreams (local model servers, sidecars, the benchmark's mock): HTTP/1.1
//! connections driven by the request that uses them.
//!
//! A pooled client runs each connection as a task of its own, so every request crosses two
//! channels and wakes a second task three times: to send, to hand back the head, and to hand
//! over each body chunk. Here the connection's state machine is polled inside the request's own
//! future and then inside its response body, so the upstream socket wakes the task that serves
//! the client directly. Between requests a connection sits in its request thread's pool (see
//! [`super::lane`]), unpolled; it is checked before reuse and a janitor task closes those
//! idle too long or closed by the provider.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{poll_fn, BoxFuture};
use futures::{FutureExt, Stream};
use http::header::{HeaderValue, ACCEPT, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body::Body;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{error_chain, PoolSettings};
use crate::providers::upstream_url::redacted;
use crate::providers::{UpstreamError, UpstreamResponse};

type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One upstream connection: the handle requests are sent on and the state machine that writes
/// and reads them.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Driving,
}

/// A connection's state machine and whether it has returned. Apart from the sender, so that a
/// request in flight (which borrows the sender) can drive it too.
struct Driving {
    driver: Driver,
    /// The driver has returned: the connection is closed or failed.
    done: bool,
}

impl Driving {
    /// Polls the connection's reads and writes; a finished connection is only marked, because
    /// its error, if any, reaches the request or the body through hyper.
    fn poll(&mut self, cx: &mut Context<'_>) {
        if !self.done && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.done = true;
        }
    }
}

impl Conn {
    fn drive(&mut self, cx: &mut Context<'_>) {
        self.driver.poll(cx);
    }

    fn done(&self) -> bool {
        self.driver.done
    }

    /// Whether an idle connection can take a request now. A provider that closed it while it
    /// sat in the pool shows up here as the driver finishing on its EOF.
    fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        !self.done() && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections of one request thread, most recently used last.
#[derive(Default)]
struct Lane {
    idle: Mutex<Vec<Idle>>,
    /// A janitor is on duty for this lane.
    janitor: Arc<AtomicBool>,
}

struct Pool {
    lanes: Vec<Lane>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    fn lane_index(&self) -> usize {
        super::lane::current() % self.lanes.len().max(1)
    }

    fn take(&self) -> Option<Idle> {
        let lane = self.lanes.get(self.lane_index())?;
        let mut idle = lane.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout {
                return Some(entry);
            }
        }
        None
    }

    /// Puts a connection whose exchange is complete back for the next request of this thread.
    fn put(self: &Arc<Self>, conn: Conn) {
        if conn.done() || self.max_idle == 0 {
            return;
        }
        let index = self.lane_index();
        let Some(lane) = self.lanes.get(index) else {
            return;
        };
        let evicted = {
            let mut idle = lane.idle.lock().unwrap_or_else(|e| e.into_inner());
            // The oldest goes: the newest is the one whose socket is warm.
            let evicted = (idle.len() >= self.max_idle).then(|| idle.remove(0));
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
            evicted
        };
        // Its socket is closed outside the lock.
        drop(evicted);
        // The flag is cleared under the lock by a janitor that found the lane empty, so a
        // connection pushed after that check always finds it cleared and starts another.
        if !lane.janitor.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let duty = Duty(Some(lane.janitor.clone()));
                    drop(handle.spawn(janitor(Arc::downgrade(self), index, duty)));
                }
                Err(_) => lane.janitor.store(false, Ordering::Release),
            }
        }
    }
}

/// A janitor's hold on its lane's flag. A janitor that finds its lane empty clears the flag
/// itself, under the lane's lock; one dropped with its runtime clears it here, so the next
/// connection put back starts another on a live runtime.
struct Duty(Option<Arc<AtomicBool>>);

impl Drop for Duty {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(false, Ordering::Release);
        }
    }
}

/// Closes the idle connections of one lane that timed out or that the provider closed, and
/// stops once the lane is empty.
async fn janitor(pool: Weak<Pool>, index: usize, mut duty: Duty) {
    loop {
        let Some(period) = pool.upgrade().map(|p| {
            (p.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
        }) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let Some(lane) = pool.lanes.get(index) else {
            return;
        };
        let (closed, empty) = {
            let mut idle = lane.idle.lock().unwrap_or_else(|e| e.into_inner());
            // A no-op waker is enough: a request that takes a connection polls it again with
            // its own before it waits on it.
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let mut closed = Vec::new();
            let mut kept = Vec::with_capacity(idle.len());
            for mut entry in idle.drain(..) {
                entry.conn.drive(&mut cx);
                if entry.conn.done() || entry.since.elapsed() >= pool.idle_timeout {
                    closed.push(entry);
                } else {
                    kept.push(entry);
                }
            }
            *idle = kept;
            let empty = idle.is_empty();
            if empty {
                lane.janitor.store(false, Ordering::Release);
                duty.0 = None;
            }
            (closed, empty)
        };
        // Sockets are closed outside the lock.
        drop(closed);
        if empty {
            return;
        }
    }
}

pub(crate) struct PlainHttp {
    uri: Uri,
    host: HeaderValue,
    headers: HeaderMap,
    upstream: Arc<Upstream>,
}

/// What a request's future needs after `send` returns, shared so that it costs one count.
struct Upstream {
    /// For error messages: redacted, since a query may carry a key.
    url: String,
    addr: (String, u16),
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

impl PlainHttp {
    pub(crate) fn new(
        url: &reqwest::Url,
        mut headers: HeaderMap,
        pool: &PoolSettings,
    ) -> Result<Self, String> {
        let host = url.host_str().ok_or("URL has no host")?;
        let port = url.port_or_known_default().ok_or("URL has no port")?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let uri: Uri = path_and_query(url)
            .parse()
            .map_err(|e| format!("invalid URL: {e}"))?;
        let host_header =
            HeaderValue::from_str(&authority).map_err(|e| format!("invalid URL host: {e}"))?;
        // What the TLS client sends by default, so a provider sees the same request either way.
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        // `[::1]` in a URL is `::1` to the socket.
        let socket_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            uri,
            host: host_header,
            headers,
            upstream: Arc::new(Upstream {
                url: redacted(url).to_string(),
                addr: (socket_host, port),
                connect_timeout: pool.connect_timeout,
                pool: Arc::new(Pool {
                    lanes: (0..super::lane::count().max(1))
                        .map(|_| Lane::default())
                        .collect(),
                    idle_timeout: pool.idle_timeout,
                    max_idle: pool.max_idle_per_host,
                }),
            }),
        })
    }

    fn request(&self, uri: Uri, body: Bytes, extra: &HeaderMap) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 1);
        headers.insert(HOST, self.host.clone());
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        for (name, value) in extra {
            headers.insert(name, value.clone());
        }
        request
    }

    /// Sends to `url`'s path and query on this upstream's origin, or to the base URL's.
    pub(crate) fn send(
        &self,
        url: Option<&reqwest::Url>,
        body: Bytes,
        extra: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let uri = match url {
            None => self.uri.clone(),
            Some(url) => match path_and_query(url).parse() {
                Ok(uri) => uri,
                Err(e) => {
                    let error = self.upstream.error(&format!("invalid URL: {e}"));
                    return async move { Err(error) }.boxed();
                }
            },
        };
        let request = self.request(uri, body, extra);
        let upstream = self.upstream.clone();
        async move { upstream.send(request).await }.boxed()
    }
}

fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

impl Upstream {
    async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        // A pooled connection the provider closed just as it was taken gives the request
        // back unsent; it then goes on a new connection, once.
        if let Some(Idle { conn, .. }) = checkout(&self.pool).await {
            match exchange(conn, request).await {
                Ok(out) => return Ok(respond(out, &self.pool)),
                Err(Failure::Unsent(back)) => request = *back,
                Err(Failure::Failed(e)) => return Err(self.error(&error_chain(&e))),
            }
        }
        let conn = connect(&self.addr, self.connect_timeout)
            .await
            .map_err(|e| match e {
                ConnectError::Timeout => UpstreamError::Timeout,
                ConnectError::Io(e) => self.error(&format!("client error (Connect): {e}")),
            })?;
        match exchange(conn, request).await {
            Ok(out) => Ok(respond(out, &self.pool)),
            Err(Failure::Unsent(_)) => {
                Err(self.error("connection closed before the request was sent"))
            }
            Err(Failure::Failed(e)) => Err(self.error(&error_chain(&e))),
        }
    }

    fn error(&self, cause: &str) -> UpstreamError {
        UpstreamError::Connect(format!(
            "error sending request for url ({}): {cause}",
            self.url
        ))
    }
}

/// The first idle connection of this thread that can take a request now.
async fn checkout(pool: &Pool) -> Option<Idle> {
    while let Some(mut idle) = pool.take() {
        if poll_fn(|cx| Poll::Ready(idle.conn.ready(cx))).await {
            return Some(idle);
        }
    }
    None
}

enum ConnectError {
    Timeout,
    Io(std::io::Error),
}

async fn connect(addr: &(String, u16), timeout: Duration) -> Result<Conn, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((addr.0.as_str(), addr.1)))
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Io)?;
    stream.set_nodelay(true).map_err(ConnectError::Io)?;
    let (sender, driver) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ConnectError::Io(std::io::Error::other(e)))?;
    Ok(Conn {
        sender,
        driver: Driving {
            driver,
            done: false,
        },
    })
}

enum Failure {
    /// The connection could not take the request; it comes back untouched.
    Unsent(Box<Request<Full<Bytes>>>),
    Failed(hyper::Error),
}

/// Sends the request and drives the connection until the response head is in.
async fn exchange(
    mut conn: Conn,
    request: Request<Full<Bytes>>,
) -> Result<(http::Response<Incoming>, Conn), Failure> {
    let Conn { sender, driver } = &mut conn;
    let mut response = std::pin::pin!(sender.try_send_request(request));
    let result = poll_fn(|cx| {
        driver.poll(cx);
        response.as_mut().poll(cx)
    })
    .await;
    match result {
        Ok(resp) => Ok((resp, conn)),
        Err(mut e) => match e.take_message() {
            Some(request) => Err(Failure::Unsent(Box::new(request))),
            None => Err(Failure::Failed(e.into_error())),
        },
    }
}

fn respond((resp, conn): (http::Response<Incoming>, Conn), pool: &Arc<Pool>) -> UpstreamResponse {
    let (parts, body) = resp.into_parts();
    let mut driven = DrivenBody {
        body,
        conn: Some(conn),
        pool: pool.clone(),
    };
    if driven.body.is_end_stream() {
        driven.release();
    }
    UpstreamResponse {
        status: parts.status,
        headers: parts.headers,
        body: Box::pin(driven),
    }
}

/// The response body, which keeps its connection going while it is read and puts it back in
/// the pool once the last byte is in. Dropped early, it drops the connection with it: an
/// HTTP/1.1 connection with an unread response on it cannot be reused.
struct DrivenBody {
    body: Incoming,
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl DrivenBody {
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

impl Stream for DrivenBody {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(conn) = &mut this.conn {
                conn.drive(cx);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if this.body.is_end_stream() {
                        this.release();
                    }
                    match frame.into_data() {
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        // Trailers carry nothing the gateway forwards.
                        Err(_) => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(UpstreamError::Body(format!(
                        "error decoding response body: {}",
                        error_chain(&e)
                    )))));
                }
                Poll::Ready(None) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::AtomicUsize;

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A provider that counts connections and requests, answers `ok` to each request and, when
    /// told to, closes a connection that has been idle for `close_idle`.
    struct Provider {
        url: reqwest::Url,
        connections: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        /// Connections the gateway closed itself (EOF while waiting for a request).
        closed_by_client: Arc<AtomicUsize>,
    }

    async fn provider(close_idle: Option<Duration>) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let (c, r, k) = (
            connections.clone(),
            requests.clone(),
            closed_by_client.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let (r, k) = (r.clone(), k.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let read = match close_idle {
                            Some(idle) if buf.is_empty() => {
                                match tokio::time::timeout(idle, socket.read(&mut chunk)).await {
                                    Ok(read) => read,
                                    Err(_) => return, // idle too long: close
                                }
                            }
                            _ => socket.read(&mut chunk).await,
                        };
                        let n = match read {
                            Ok(0) | Err(_) => {
                                k.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() < head_end + 4 + length {
                            continue;
                        }
                        assert!(text.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
                        assert!(text.contains("\r\nhost: 127.0.0.1:"), "{text}");
                        buf.clear();
                        r.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Provider {
            url: reqwest::Url::parse(&url).unwrap(),
            connections,
            requests,
            closed_by_client,
        }
    }

    fn client(p: &Provider, idle_timeout: Duration) -> PlainHttp {
        PlainHttp::new(
            &p.url,
            HeaderMap::new(),
            &PoolSettings {
                connect_timeout: Duration::from_secs(2),
                idle_timeout,
                max_idle_per_host: 4,
            },
        )
        .unwrap()
    }

    async fn call(client: &PlainHttp) -> Result<Vec<u8>, UpstreamError> {
        let resp = client
            .send(None, Bytes::from_static(b"{}"), &HeaderMap::new())
            .await?;
        assert_eq!(resp.status, 200);
        let mut body = resp.body;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let p = provider(None).await;
        let client = client(&p, Duration::from_secs(30));
        for _ in 0..5 {
            assert_eq!(call(&client).await.unwrap(), b"ok");
        }
        assert_eq!(p.requests.load(Ordering::SeqCst), 5);
        assert_eq!(p.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_unread_takes_its_connection_with_it() {
        let p = provider(None).await;
        let client = client(&p, Duration::from_secs(30));
        let resp = client
            .send(None, Bytes::from_static(b"{}"), &HeaderMap::new())
            .await
            .unwrap();
        drop(resp);
        assert_eq!(call(&client).await.unwrap(), b"ok");
        assert_eq!(p.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_provider_closed_while_idle_is_not_used() {
        let p = provider(Some(Duration::from_millis(50))).await;
        let client = client(&p, Duration::from_secs(30));
        assert_eq!(call(&client).await.unwrap(), b"ok");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            call(&client).await.unwrap(),
            b"ok",
            "no error reaches the caller"
        );
        assert_eq!(p.requests.load(Ordering::SeqCst), 2);
        assert_eq!(p.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let p = provider(None).await;
        let client = client(&p, Duration::from_millis(200));
        assert_eq!(call(&client).await.unwrap(), b"ok");
        for _ in 0..40 {
            if p.closed_by_client.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            p.closed_by_client.load(Ordering::SeqCst),
            1,
            "the janitor closed the idle connection"
        );
        assert_eq!(call(&client).await.unwrap(), b"ok");
        assert_eq!(p.connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_janitor_dropped_with_its_runtime_leaves_the_lane_to_the_next_one() {
        let rt = |threads| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .unwrap()
        };
        let provider_rt = rt(1);
        let p = provider_rt.block_on(provider(None));
        let client = client(&p, Duration::from_millis(200));
        let first = rt(1);
        first.block_on(async { assert_eq!(call(&client).await.unwrap(), b"ok") });
        drop(first);
        rt(1).block_on(async {
            // The idle connection belongs to the runtime just dropped: this call opens another.
            assert_eq!(call(&client).await.unwrap(), b"ok");
            for _ in 0..40 {
                if p.closed_by_client.load(Ordering::SeqCst) == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        assert_eq!(p.connections.load(Ordering::SeqCst), 2);
        assert_eq!(
            p.closed_by_client.load(Ordering::SeqCst),
            2,
            "the second runtime's janitor closed its idle connection"
        );
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_connect_error_naming_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        drop(listener);
        let p = Provider {
            url: reqwest::Url::parse(&url).unwrap(),
            connections: Default::default(),
            requests: Default::default(),
            closed_by_client: Default::default(),
        };
        match call(&client(&p, Duration::from_secs(1))).await {
            Err(UpstreamError::Connect(message)) => {
                assert!(message.contains(&url), "{message}");
                assert!(message.contains("refused"), "{message}");
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
