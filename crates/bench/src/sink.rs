//! The bench's OTLP/HTTP sink: the mock's receiver, counting only, on a thread of its own;
//! fast enough never to be the bottleneck, and able to play dead.
//!
//! It counts what arrives instead of decoding it: decoding would spend CPU on the same two
//! cores as the gateway under test, and the gateway's own tests already check the content.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use gatecast_mock::otlp::{Behaviour, Counts, HttpServer, Receiver};

use crate::side_thread::SideThread;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkMode {
    /// Answers every export with 200.
    Counting,
    /// Accepts connections and never reads or answers: the destination that hangs, which is
    /// worse for a gateway than one that refuses.
    Blackhole,
}

pub struct OtlpSink {
    pub addr: SocketAddr,
    pub mode: SinkMode,
    receiver: Receiver,
    _thread: SideThread,
}

impl OtlpSink {
    /// Starts the sink on a thread of its own (see [`SideThread`]).
    pub async fn start(mode: SinkMode) -> Result<Self> {
        let behaviour = match mode {
            SinkMode::Counting => Behaviour::Ok,
            SinkMode::Blackhole => Behaviour::Blackhole,
        };
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the OTLP sink")?;
        let (receiver, serve) = HttpServer::new(behaviour)
            .counting_only()
            .only_path("/v1/traces")
            .on(listener)
            .context("starting the OTLP sink")?;
        let thread = SideThread::spawn("otlp-sink", move || serve)?;
        Ok(Self {
            addr: receiver.addr,
            mode,
            receiver,
            _thread: thread,
        })
    }

    /// The URL a gateway's OTLP destination points at.
    pub fn endpoint(&self) -> String {
        self.receiver.url("/v1/traces")
    }

    pub fn snapshot(&self) -> Counts {
        self.receiver.counts()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use bytes::Bytes;

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
