//! In-process OTLP receivers on real loopback sockets, for the end-to-end tests, the telemetry
//! tests and the bench: OTLP/HTTP (protobuf or JSON, gzip or not, any path) and OTLP/gRPC.
//!
//! A [`Receiver`] records every request it gets, as sent, and decodes it on demand with the
//! official `opentelemetry-proto` types (prost for protobuf, serde for JSON), so a test checks
//! the bytes on the wire, not our own reading of them. How it answers is a [`Behaviour`]: an
//! empty export response, scripted statuses with `Retry-After`, a redirect, a request never
//! answered, a connection never answered or never read. The bench runs the same server
//! [counting only](HttpServer::counting_only), on a thread of its own.
//!
//! A receiver that cannot bind or decode panics on purpose: that is a failed test. The module
//! is behind the `otlp` feature, which the gateway binary never enables.

mod behaviour;
mod grpc;
mod http;
mod received;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Serialize;
use tokio::task::JoinHandle;

pub use behaviour::{Answer, Behaviour};
pub use http::HttpServer;
pub use received::Received;

/// A handle on a running receiver: where it listens and what it has seen. Clones share the
/// receiver; the last one dropped stops it (its listener and open connections close).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    _server: Option<Arc<AbortOnDrop>>,
}

/// What a receiver has seen, shared by its server and its handles.
#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    calls: AtomicU64,
    bytes: AtomicU64,
    /// Empty when the server only counts.
    requests: Mutex<Vec<Received>>,
}

impl Seen {
    fn requests(&self) -> MutexGuard<'_, Vec<Received>> {
        // A test that panicked while holding it leaves the records intact.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The counters of a receiver at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// TCP connections accepted (OTLP/HTTP receivers; gRPC ones leave it at 0).
    pub connections: u64,
    /// Requests that arrived, whatever the answer (see [`Receiver::calls`]).
    pub requests: u64,
    /// Body bytes of those requests, as sent (compressed if they were; for gRPC, the
    /// decoded messages).
    pub bytes: u64,
}

impl Counts {
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            connections: self.connections.saturating_sub(earlier.connections),
            requests: self.requests.saturating_sub(earlier.requests),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Receiver {
    /// An OTLP/HTTP receiver on 127.0.0.1, on a free port, served by the current runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound: this is test scaffolding.
    pub async fn http(behaviour: Behaviour) -> Receiver {
        Self::http_on(0, behaviour).await
    }

    /// Like [`Receiver::http`], on a given local port (a destination that comes back).
    pub async fn http_on(port: u16, behaviour: Behaviour) -> Receiver {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|e| panic!("binding an OTLP receiver on port {port}: {e}"));
        let (receiver, serve) = HttpServer::new(behaviour)
            .on(listener)
            .unwrap_or_else(|e| panic!("starting an OTLP receiver: {e}"));
        receiver.running(tokio::spawn(serve))
    }

    /// An OTLP/HTTP receiver whose `n`-th request gets `answers[n]`, and every later one the
    /// last answer: `Receiver::scripted([(503, "busy"), (200, "")])`.
    pub async fn scripted<A: Into<Answer>>(answers: impl IntoIterator<Item = A>) -> Receiver {
        Self::http(Behaviour::script(answers)).await
    }

    /// An OTLP/gRPC receiver on 127.0.0.1 accepting gzip, answering every export with OK.
    pub async fn grpc() -> Receiver {
        grpc::start(None).await
    }

    /// An OTLP/gRPC receiver that records every export and refuses it with `code`.
    pub async fn grpc_refusing(code: tonic::Code) -> Receiver {
        grpc::start(Some(code)).await
    }

    fn new(addr: SocketAddr, seen: Arc<Seen>) -> Receiver {
        Receiver {
            addr,
            seen,
            _server: None,
        }
    }

    fn running(mut self, server: JoinHandle<()>) -> Receiver {
        self._server = Some(Arc::new(AbortOnDrop(server)));
        self
    }

    /// `http://ADDR` followed by `path` (`""` for a gRPC endpoint).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, oldest first, whatever the answer (none when counting only).
    pub fn requests(&self) -> Vec<Received> {
        self.seen.requests().clone()
    }

    /// Requests that arrived so far, answered or not (a hanging receiver counts the ones it
    /// holds).
    pub fn calls(&self) -> u64 {
        self.seen.calls.load(SeqCst)
    }

    /// Connections accepted so far: a silent receiver records no requests, but an export has
    /// reached it once a connection is open.
    pub fn connections(&self) -> u64 {
        self.seen.connections.load(SeqCst)
    }

    pub fn counts(&self) -> Counts {
        Counts {
            connections: self.seen.connections.load(SeqCst),
            requests: self.seen.calls.load(SeqCst),
            bytes: self.seen.bytes.load(SeqCst),
        }
    }

    /// The spans of every export the receiver accepted (a 2xx answer or gRPC OK).
    ///
    /// # Panics
    /// When an accepted body is not an OTLP export.
    pub fn spans(&self) -> Vec<Span> {
        self.requests()
            .iter()
            .filter(|r| r.accepted)
            .flat_map(Received::spans)
            .collect()
    }

    /// Waits until at least `n` spans were accepted, or `within` passed, and returns them.
    pub async fn wait_spans(&self, n: usize, within: Duration) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if spans.len() >= n || started.elapsed() > within {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything received, headers and decoded exports, as text: for "contains no canary"
    /// checks.
    pub fn dump(&self) -> String {
        self.requests()
            .iter()
            .map(Received::readable)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading a bound port: {e}"))
        .port()
}
