//! `https://` upstreams, and `http://` ones whose URL carries credentials: reqwest's
//! TLS-capable pooled client.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use http::HeaderMap;

use super::{error_chain, PoolSettings};
use crate::providers::upstream_url::{redacted, scrub};
use crate::providers::{UpstreamError, UpstreamResponse};

/// `https://`: the TLS-capable client.
pub(crate) struct TlsHttp {
    url: reqwest::Url,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl TlsHttp {
    pub(super) fn new(
        url: &reqwest::Url,
        headers: HeaderMap,
        pool: &PoolSettings,
    ) -> Result<Self, String> {
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

    pub(super) fn send(
        &self,
        url: Option<&reqwest::Url>,
        body: Bytes,
        extra: &HeaderMap,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let url = url.unwrap_or(&self.url).clone();
        let mut headers = self.headers.clone();
        for (name, value) in extra {
            headers.insert(name, value.clone());
        }
        let call = self
            .client
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send();
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
