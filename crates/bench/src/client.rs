//! The load generator's HTTP client: one hyper HTTP/1.1 connection per worker, over a raw
//! `TcpStream` with TCP_NODELAY, reused for every request (keep-alive).
//!
//! No pool, no retries, no redirects: anything a general-purpose client adds between "send"
//! and "received" would be measured as gateway latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::api_path::ClientApi;

/// A request that has not finished by then is a hang, counted as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where requests go: the mock directly, a gateway, or another vendor's gateway.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `Host` header value.
    pub authority: String,
    /// Full path of the chat-completions route, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The `model` field to send.
    pub model: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The API `path` speaks: how the body is written and which stream events carry content.
    pub api: ClientApi,
}

impl Endpoint {
    /// Chat completions on a local server.
    pub fn local(addr: SocketAddr, model: &str) -> Self {
        Self::local_api(addr, ClientApi::Chat, model)
    }

    /// `api`'s route on a local server, with the headers its SDK sends.
    pub fn local_api(addr: SocketAddr, api: ClientApi, model: &str) -> Self {
        Self {
            addr,
            authority: addr.to_string(),
            path: api.route().to_owned(),
            model: model.to_owned(),
            headers: api.headers(),
            api,
        }
    }

    /// `http://host:port/base` (the OpenAI-style base URL); `/chat/completions` is appended.
    /// Only plain HTTP: TLS would measure the handshake library, not the gateway.
    pub async fn from_base_url(url: &str, model: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--target must be an http:// URL, got `{url}`"))?;
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("--target `{url}` has no host");
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{with_port} resolved to no address"))?;
        Ok(Self {
            addr,
            authority: authority.to_owned(),
            path: format!("{base}/chat/completions"),
            model: model.to_owned(),
            headers: Vec::new(),
            api: ClientApi::Chat,
        })
    }

    /// A request in this endpoint's API whose last user message carries mock directives
    /// (see [`ClientApi::body`]).
    pub fn body(&self, stream: bool, directives: &str) -> Bytes {
        self.api.body(&self.model, stream, directives)
    }
}

/// What one exchange looked like from the client.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub status: u16,
    pub body_bytes: usize,
    /// From send to the response head.
    pub head: Duration,
    /// From send to the first body frame.
    pub first_frame: Option<Duration>,
    /// From send to the last byte.
    pub total: Duration,
    /// Only when asked for: arrival offsets of every body frame, and SSE events seen.
    pub frames: Vec<Duration>,
    pub events: usize,
    /// Likewise, of the frames that carry answer content, and the content events seen
    /// ([`ClientApi::content_events`]).
    pub content_frames: Vec<Duration>,
    pub content_events: usize,
}

impl Outcome {
    /// The longest silence between two consecutive body frames.
    pub fn max_gap(&self) -> Duration {
        max_gap(&self.frames)
    }

    /// The longest silence between two consecutive frames that carry content.
    pub fn max_content_gap(&self) -> Duration {
        max_gap(&self.content_frames)
    }
}

fn max_gap(frames: &[Duration]) -> Duration {
    frames
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends one POST and reads the whole answer. `trace_frames` records when each body frame
    /// arrived, for the streaming scenario; the plain path skips that bookkeeping.
    pub async fn post(
        &mut self,
        ep: &Endpoint,
        body: Bytes,
        trace_frames: bool,
    ) -> Result<Outcome> {
        let started = Instant::now();
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.post_inner(ep, body, trace_frames, started),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => bail!("no complete answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    async fn post_inner(
        &mut self,
        ep: &Endpoint,
        body: Bytes,
        trace_frames: bool,
        started: Instant,
    ) -> Result<Outcome> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(ep.path.as_str())
            .header(HOST, ep.authority.as_str())
            .header(CONTENT_TYPE, "application/json");
        for (k, v) in &ep.headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).context("building the request")?;
        self.sender.ready().await.context("connection closed")?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .context("sending the request")?;
        let mut out = Outcome {
            status: resp.status().as_u16(),
            head: started.elapsed(),
            ..Outcome::default()
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the response body")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let at = started.elapsed();
            out.first_frame.get_or_insert(at);
            out.body_bytes += data.len();
            if trace_frames {
                out.frames.push(at);
                out.events += count_events(&data);
                let content = ep.api.content_events(&data);
                if content > 0 {
                    out.content_frames.push(at);
                    out.content_events += content;
                }
            }
        }
        out.total = started.elapsed();
        if !(200..300).contains(&out.status) {
            bail!("HTTP {}", out.status);
        }
        Ok(out)
    }

    /// One POST whatever its status, with the answer's status and body: for checking that a
    /// route exists before measuring it.
    pub async fn post_status(&mut self, ep: &Endpoint, body: Bytes) -> Result<(u16, Bytes)> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(ep.path.as_str())
            .header(HOST, ep.authority.as_str())
            .header(CONTENT_TYPE, "application/json");
        for (k, v) in &ep.headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).context("building the request")?;
        self.sender.ready().await.context("connection closed")?;
        let answer = async {
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(result) => result,
            Err(_) => bail!("no complete answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    /// A GET for readiness probes; returns the status.
    pub async fn get(&mut self, authority: &str, path: &str) -> Result<u16> {
        Ok(self.get_body(authority, path).await?.0)
    }

    /// The body of a GET, for scraping `/metrics`.
    pub async fn get_text(&mut self, authority: &str, path: &str) -> Result<String> {
        let (_, bytes) = self.get_body(authority, path).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn get_body(&mut self, authority: &str, path: &str) -> Result<(u16, Bytes)> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, authority)
            .body(Full::new(Bytes::new()))
            .context("building the request")?;
        self.sender.ready().await.context("connection closed")?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// SSE events end with a blank line; counting them per frame shows whether a hop coalesces.
pub fn count_events(data: &[u8]) -> usize {
    data.windows(2).filter(|w| w == b"\n\n").count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counts_sse_events() {
        assert_eq!(count_events(b""), 0);
        assert_eq!(count_events(b"data: {}\n\n"), 1);
        assert_eq!(count_events(b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"), 3);
        assert_eq!(count_events(b"data: partial"), 0);
    }

    #[test]
    fn max_gap_between_frames() {
        let ms = Duration::from_millis;
        let out = Outcome {
            frames: vec![ms(1), ms(6), ms(20), ms(25)],
            content_frames: vec![ms(6), ms(25)],
            ..Outcome::default()
        };
        assert_eq!(out.max_gap(), ms(14));
        assert_eq!(out.max_content_gap(), ms(19));
        assert_eq!(Outcome::default().max_gap(), Duration::ZERO);
    }

    #[tokio::test]
    async fn parses_target_urls() {
        let ep = Endpoint::from_base_url("http://127.0.0.1:4000/v1/", "m")
            .await
            .unwrap();
        assert_eq!(ep.addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(ep.path, "/v1/chat/completions");
        assert_eq!(ep.authority, "127.0.0.1:4000");
        let ep = Endpoint::from_base_url("http://127.0.0.1:4000", "m")
            .await
            .unwrap();
        assert_eq!(ep.path, "/chat/completions");
        assert!(Endpoint::from_base_url("https://x:1/v1", "m")
            .await
            .is_err());
    }

    #[test]
    fn body_carries_model_and_directives() {
        let ep = Endpoint::local("127.0.0.1:1".parse().unwrap(), "up/gpt-4o-mini");
        let v: serde_json::Value = serde_json::from_slice(&ep.body(true, "chunks=20")).unwrap();
        assert_eq!(v["model"], "up/gpt-4o-mini");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v["messages"][1]["content"]
            .as_str()
            .unwrap()
            .ends_with("#mock:chunks=20"));
    }
}
