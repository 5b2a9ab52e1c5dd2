//! An in-process OTLP/HTTP receiver: fast enough never to be the bottleneck, and able to play
//! dead.
//!
//! It counts what arrives instead of decoding it: decoding would spend CPU on the same two
//! cores as the gateway under test, and the gateway's own tests already check the content.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::side_thread::SideThread;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkMode {
    /// Answers every export with 200.
    Counting,
    /// Accepts connections and never reads or answers: the destination that hangs, which is
    /// worse for a gateway than one that refuses.
    Blackhole,
}

#[derive(Debug, Default)]
pub struct SinkCounters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkSnapshot {
    pub connections: u64,
    pub requests: u64,
    pub bytes: u64,
}

impl SinkSnapshot {
    pub fn since(&self, earlier: &SinkSnapshot) -> SinkSnapshot {
        SinkSnapshot {
            connections: self.connections.saturating_sub(earlier.connections),
            requests: self.requests.saturating_sub(earlier.requests),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

pub struct OtlpSink {
    pub addr: SocketAddr,
    pub mode: SinkMode,
    counters: Arc<SinkCounters>,
    _thread: SideThread,
}

impl OtlpSink {
    /// Starts the sink on a thread of its own (see [`SideThread`]).
    pub async fn start(mode: SinkMode) -> Result<Self> {
        let counters = Arc::new(SinkCounters::default());
        let c = counters.clone();
        let (addr, thread) =
            SideThread::serve_tcp("otlp-sink", move |listener| accept_loop(listener, mode, c))?;
        Ok(Self {
            addr,
            mode,
            counters,
            _thread: thread,
        })
    }

    /// The URL a gateway's OTLP destination points at.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn snapshot(&self) -> SinkSnapshot {
        SinkSnapshot {
            connections: self.counters.connections.load(Relaxed),
            requests: self.counters.requests.load(Relaxed),
            bytes: self.counters.bytes.load(Relaxed),
        }
    }
}

async fn accept_loop(listener: TcpListener, mode: SinkMode, c: Arc<SinkCounters>) {
    // Held, never read: a blackhole's peers must see an open, silent connection.
    let mut held = Vec::new();
    while let Ok((tcp, _)) = listener.accept().await {
        c.connections.fetch_add(1, Relaxed);
        match mode {
            SinkMode::Blackhole => held.push(tcp),
            SinkMode::Counting => {
                let _ = tcp.set_nodelay(true);
                let c = c.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, c.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    counters: Arc<SinkCounters>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let json = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let is_traces = req.method() == http::Method::POST && req.uri().path() == "/v1/traces";
    let mut body = req.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len() as u64;
        }
    }
    if !is_traces {
        return Ok(status_only(StatusCode::NOT_FOUND));
    }
    counters.requests.fetch_add(1, Relaxed);
    counters.bytes.fetch_add(bytes, Relaxed);
    // An empty ExportTraceServiceResponse: zero bytes in protobuf, `{}` in JSON.
    let (content_type, body) = if json {
        ("application/json", Bytes::from_static(b"{}"))
    } else {
        ("application/x-protobuf", Bytes::new())
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(resp)
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;
    use crate::client::Conn;

    #[tokio::test]
    async fn counting_sink_answers_and_counts() {
        let sink = OtlpSink::start(SinkMode::Counting).await.unwrap();
        let mut conn = Conn::connect(sink.addr).await.unwrap();
        let ep = crate::client::Endpoint {
            path: "/v1/traces".into(),
            ..crate::client::Endpoint::local(sink.addr, "m")
        };
        let out = conn
            .post(&ep, Bytes::from_static(b"0123456789"), false)
            .await
            .unwrap();
        assert_eq!(out.status, 200);
        let snap = sink.snapshot();
        assert_eq!(snap.requests, 1);
        assert_eq!(snap.bytes, 10);
        assert_eq!(snap.connections, 1);
    }

    #[tokio::test]
    async fn blackhole_never_answers() {
        let sink = OtlpSink::start(SinkMode::Blackhole).await.unwrap();
        let mut conn = Conn::connect(sink.addr).await.unwrap();
        let ep = crate::client::Endpoint {
            path: "/v1/traces".into(),
            ..crate::client::Endpoint::local(sink.addr, "m")
        };
        let answer = tokio::time::timeout(
            Duration::from_millis(200),
            conn.post(&ep, Bytes::from_static(b"x"), false),
        )
        .await;
        assert!(answer.is_err(), "a blackhole must not answer");
        assert_eq!(sink.snapshot().requests, 0);
    }
}
