//! The HTTP call to an OpenAI-compatible provider.
//!
//! Plain `http://` upstreams (local model servers, sidecars, the benchmark's mock) go through
//! [`super::plain`], HTTP/1.1 connections driven by the request itself, with a URI and headers
//! built once; `https://` upstreams use the TLS-capable client. Both send the same request and
//! hand back the body as it streams.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use http::HeaderMap;

use super::{UpstreamError, UpstreamResponse};

/// Connection-pool settings shared by both clients.
pub(crate) struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

pub(crate) enum Transport {
    Plain(Box<super::plain::PlainHttp>),
    Tls(TlsHttp),
}

impl Transport {
    pub(crate) fn new(
        url: &reqwest::Url,
        headers: HeaderMap,
        pool: &PoolSettings,
    ) -> Result<Self, String> {
        // Credentials in the URL are turned into basic auth by the TLS-capable client only.
        if url.scheme() == "http" && url.username().is_empty() && url.password().is_none() {
            super::plain::PlainHttp::new(url, headers, pool).map(|t| Transport::Plain(Box::new(t)))
        } else {
            TlsHttp::new(url, headers, pool).map(Transport::Tls)
        }
    }

    pub(crate) fn send(
        &self,
        body: Bytes,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        match self {
            Transport::Plain(t) => t.send(body),
            Transport::Tls(t) => t.send(body),
        }
    }
}

/// `https://`: the TLS-capable client.
pub(crate) struct TlsHttp {
    url: reqwest::Url,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl TlsHttp {
    fn new(url: &reqwest::Url, headers: HeaderMap, pool: &PoolSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(pool.connect_timeout)
            .pool_idle_timeout(pool.idle_timeout)
            .pool_max_idle_per_host(pool.max_idle_per_host)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self {
            url: url.clone(),
            headers,
            client,
        })
    }

    fn send(&self, body: Bytes) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let call = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send();
        async move {
            let resp = call.await.map_err(classify)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp
                .bytes_stream()
                .map(|chunk| chunk.map_err(|e| UpstreamError::Body(e.to_string())));
            Ok(UpstreamResponse {
                status,
                headers,
                body: Box::pin(body),
            })
        }
        .boxed()
    }
}

fn classify(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        // reqwest's message names the URL; the URL never carries credentials here.
        UpstreamError::Connect(e.to_string())
    }
}

/// An error and its causes on one line, as `a: b: c`.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
