//! The HTTP call to an OpenAI-compatible provider.
//!
//! Plain `http://` upstreams (local model servers, sidecars, the benchmark's mock) go through
//! [`plain`], HTTP/1.1 connections driven by the request itself, with a URI and headers
//! built once; `https://` upstreams use the TLS-capable client. Both send the same request and
//! hand back the body as it streams.

mod lane;
mod plain;
mod tls;

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::HeaderMap;

use crate::providers::{UpstreamError, UpstreamResponse};

/// Tells the transports that the calling thread is request thread `index`; call it once as
/// the thread starts, before it serves. `http://` connections are pooled per request thread
/// (`transport/lane.rs`), so a request, its upstream connection and its response stream
/// stay on one thread. A thread that never calls it shares the first thread's pool.
pub fn enter_request_thread(index: usize) {
    lane::enter(index);
}

/// Connection-pool settings shared by both clients.
pub(crate) struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

pub(crate) enum Transport {
    Plain(Box<plain::PlainHttp>),
    Tls(tls::TlsHttp),
}

impl Transport {
    pub(crate) fn new(
        url: &reqwest::Url,
        headers: HeaderMap,
        pool: &PoolSettings,
    ) -> Result<Self, String> {
        // Credentials in the URL are turned into basic auth by the TLS-capable client only.
        if url.scheme() == "http" && url.username().is_empty() && url.password().is_none() {
            plain::PlainHttp::new(url, headers, pool).map(|t| Transport::Plain(Box::new(t)))
        } else {
            tls::TlsHttp::new(url, headers, pool).map(Transport::Tls)
        }
    }

    /// Posts `body` to `url`, which shares the base URL's origin, or to the base URL itself.
    pub(crate) fn send(
        &self,
        url: Option<&reqwest::Url>,
        body: Bytes,
        extra: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        match self {
            Transport::Plain(t) => t.send(url, body, extra),
            Transport::Tls(t) => t.send(url, body, extra),
        }
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
            match transport
                .send(None, Bytes::from_static(b"{}"), &HeaderMap::new())
                .await
            {
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
