//! The HTTP call to an OpenAI-compatible provider.
//!
//! Plain `http://` upstreams (local model servers, sidecars, the benchmark's mock) go through a
//! bare pooled HTTP/1 client with a URI and headers built once; `https://` upstreams use the
//! TLS-capable client. Both send the same request and hand back the body as it streams.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use http::header::{HeaderValue, ACCEPT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyDataStream, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::{UpstreamError, UpstreamResponse};

/// Connection-pool settings shared by both clients.
pub(crate) struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

pub(crate) enum Transport {
    Plain(Box<PlainHttp>),
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
            PlainHttp::new(url, headers, pool).map(|t| Transport::Plain(Box::new(t)))
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

/// `http://`: hyper's pooled client, no redirect, retry-policy or decompression layers; the
/// gateway passes the bytes through as they come. One pool per request thread (see
/// [`crate::lane`]), so with one request thread per core a connection is used only by the
/// thread that drives it.
pub(crate) struct PlainHttp {
    uri: Uri,
    headers: HeaderMap,
    clients: Vec<Client<HttpConnector, Full<Bytes>>>,
}

impl PlainHttp {
    fn new(
        url: &reqwest::Url,
        mut headers: HeaderMap,
        pool: &PoolSettings,
    ) -> Result<Self, String> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| format!("invalid URL: {e}"))?;
        // What the TLS client sends by default, so a provider sees the same request either way.
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(pool.connect_timeout));
        let clients = (0..crate::lane::count().max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(pool.idle_timeout)
                    .pool_max_idle_per_host(pool.max_idle_per_host)
                    .build(connector.clone())
            })
            .collect();
        Ok(Self {
            uri,
            headers,
            clients,
        })
    }

    fn send(&self, body: Bytes) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        let lane = crate::lane::current() % self.clients.len().max(1);
        let Some(client) = self.clients.get(lane) else {
            return futures::future::ready(Err(UpstreamError::Connect(
                "no upstream connection pool".into(),
            )))
            .boxed();
        };
        let call = client.request(request);
        let uri = self.uri.clone();
        async move {
            let resp = call.await.map_err(|e| {
                if is_timeout(&e) {
                    UpstreamError::Timeout
                } else {
                    UpstreamError::Connect(format!(
                        "error sending request for url ({uri}): {}",
                        error_chain(&e)
                    ))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = BodyDataStream::new(body).map_err(|e| {
                UpstreamError::Body(format!("error decoding response body: {}", error_chain(&e)))
            });
            Ok(UpstreamResponse {
                status: parts.status,
                headers: parts.headers,
                body: Box::pin(body),
            })
        }
        .boxed()
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
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// A connect timeout surfaces as an I/O `TimedOut` somewhere in the cause chain.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}
