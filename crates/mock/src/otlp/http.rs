//! The OTLP/HTTP server: HTTP/1.1 with keep-alive (hyper), or, for [`Behaviour::Silent`] and
//! [`Behaviour::Blackhole`], a socket that never speaks.

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::behaviour::{reply, Behaviour};
use super::{Received, Receiver, Seen};

/// An OTLP/HTTP receiver's settings, before it runs. [`Receiver::http`] is the usual way to
/// start one; this is for running it elsewhere, say on a thread of its own.
pub struct HttpServer {
    behaviour: Behaviour,
    record: bool,
    only_path: Option<String>,
}

/// What every request of one server reads: one `Arc` clone per request.
struct Shared {
    behaviour: Behaviour,
    record: bool,
    only_path: Option<String>,
    seen: Arc<Seen>,
}

impl HttpServer {
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            record: true,
            only_path: None,
        }
    }

    /// Keeps the counts and nothing else: no request is copied or decoded, so a receiver under
    /// load spends no CPU the process measuring it needs.
    pub fn counting_only(mut self) -> Self {
        self.record = false;
        self
    }

    /// Answers 404 to anything but a POST to `path`, neither recorded nor counted (its
    /// connection is), so a misaddressed exporter fails instead of counting.
    pub fn only_path(mut self, path: &str) -> Self {
        self.only_path = Some(path.to_owned());
        self
    }

    /// Serves on `listener`, bound by the caller: the handle on what it sees, and the server,
    /// to run on a runtime of the caller's choice (the socket is registered there).
    pub fn on(
        self,
        listener: std::net::TcpListener,
    ) -> io::Result<(Receiver, impl Future<Output = ()> + Send + 'static)> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Seen::default());
        let shared = Arc::new(Shared {
            behaviour: self.behaviour,
            record: self.record,
            only_path: self.only_path,
            seen: seen.clone(),
        });
        let serve = async move {
            if let Ok(listener) = TcpListener::from_std(listener) {
                accept_loop(listener, shared).await;
            }
        };
        Ok((Receiver::new(addr, seen), serve))
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Held, never read: a blackhole's peers must see an open, silent connection.
    let mut held = Vec::new();
    // Dropped with the loop, so a stopped receiver closes its open connections too.
    let mut connections = JoinSet::new();
    while let Ok((tcp, _)) = listener.accept().await {
        shared.seen.connections.fetch_add(1, SeqCst);
        while connections.try_join_next().is_some() {}
        match shared.behaviour {
            Behaviour::Blackhole => held.push(tcp),
            Behaviour::Silent => {
                connections.spawn(read_forever(tcp));
            }
            _ => {
                let _ = tcp.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, shared.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        }
    }
}

/// Reads and drops whatever arrives, until the peer closes.
async fn read_forever(mut tcp: TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = tcp.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    if let Some(only) = &shared.only_path {
        if parts.method != Method::POST || parts.uri.path() != only {
            drain(body).await?;
            return Ok(reply(404, Bytes::new()));
        }
    }
    let (len, body) = if shared.record {
        let body = body.collect().await?.to_bytes();
        (body.len() as u64, body)
    } else {
        (drain(body).await?, Bytes::new())
    };
    let seen = &shared.seen;
    let call = seen.calls.fetch_add(1, SeqCst);
    seen.bytes.fetch_add(len, SeqCst);
    let answer = shared.behaviour.answer(call, &parts.headers);
    if shared.record {
        seen.requests().push(Received {
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            method: parts.method,
            headers: parts.headers,
            body,
            at: Instant::now(),
            accepted: answer.as_ref().is_some_and(|r| r.status().is_success()),
            grpc: false,
        });
    }
    match answer {
        Some(resp) => Ok(resp),
        None => std::future::pending().await,
    }
}

/// Reads a body to its end without keeping it; returns its length.
async fn drain(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len() as u64;
        }
    }
    Ok(bytes)
}
