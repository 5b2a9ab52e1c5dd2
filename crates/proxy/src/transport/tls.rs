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

use crate::providers::upstream_url::{redacted, scrub};
use crate::providers::{UpstreamError, UpstreamResponse};

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
        let url = self.url.clone();
        async move {
            let resp = call.await.map_err(|e| classify(e, &url))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp
                .bytes_stream()
                .map(|chunk| chunk.map_err(|e| UpstreamError::Body(e.without_url().to_string())));
            Ok(UpstreamResponse {
                status,
                headers,
                body: Box::pin(body),
            })
        }
        .boxed()
    }
}

/// reqwest's message names the URL, which may carry credentials (userinfo, a key in the
/// query): it is swapped for the redacted form before anything reads it.
fn classify(e: reqwest::Error, url: &reqwest::Url) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        let e = e.with_url(redacted(url));
        UpstreamError::Connect(scrub(&error_chain(&e), url))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::providers::upstream_url::chat_url;

    /// Credentials in the URL send a request through the TLS-capable client, whose errors
    /// quote the URL: the message keeps the host and loses the userinfo and query values.
    #[tokio::test]
    async fn a_connect_error_never_quotes_url_credentials() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        for base in [
            format!("http://bob:SECRET@127.0.0.1:{port}/v1?key=SECRET"),
            format!("http://127.0.0.1:{port}/v1?key=SECRET&api-version=1"),
        ] {
            let url = chat_url(&base).unwrap();
            let transport = Transport::new(
                &url,
                HeaderMap::new(),
                &PoolSettings {
                    connect_timeout: Duration::from_secs(2),
                    idle_timeout: Duration::from_secs(1),
                    max_idle_per_host: 1,
                },
            )
            .unwrap();
            match transport.send(Bytes::from_static(b"{}")).await {
                Err(UpstreamError::Connect(message)) => {
                    assert!(!message.contains("SECRET"), "{message}");
                    assert!(
                        message.contains(&format!("127.0.0.1:{port}")),
                        "the host is named: {message}"
                    );
                    assert!(message.contains("key=REDACTED"), "{message}");
                }
                Err(other) => panic!("expected a connect error, got {other:?}"),
                Ok(_) => panic!("nothing listens on port {port}"),
            }
        }
    }
}
