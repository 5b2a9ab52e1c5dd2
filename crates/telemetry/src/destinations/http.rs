//! OTLP over HTTP for the `otlp` (http/protobuf, http/json), `sentry` and `webhook` types.
//! The status is classified so the pipeline knows whether to retry, split or give up.
//!
//! Redirects are never followed, to the same origin or another: a redirect would re-send
//! the credential headers (`x-sentry-auth`, custom tokens) and the spans to whatever host it
//! names, and a 301/302/303 turns the POST into a GET without a body that "succeeds" while
//! the spans are lost. A redirect is an export error naming the new location instead.

use std::sync::Arc;
use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};

use super::host_policy::HostPolicy;
use super::resolve::{refusal, GuardedResolver};
use super::{reply, EncodedBatch, Encoding, ExportError, Sink};
// A batch the worker did not gzip (replayed from the spool, a half of a split) is gzipped
// here, by the same encoder as the worker's.
pub use crate::encode::gzip::gzip;

pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: HeaderMap,
    encoding: Encoding,
    gzip: bool,
}

impl HttpSink {
    pub fn new(
        url: &str,
        method: reqwest::Method,
        headers: &[(String, String)],
        encoding: Encoding,
        gzip: bool,
        timeout: Duration,
        hosts: &Arc<HostPolicy>,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("invalid URL: the scheme must be http or https".into());
        }
        // IP literals never reach the resolver, so they are checked here, once: the URL is
        // fixed for the sink's life.
        hosts.check_url(&url).map_err(|e| e.to_string())?;
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| format!("headers: invalid name `{k}`"))?;
            let mut value = HeaderValue::try_from(v.as_str())
                .map_err(|_| format!("headers: invalid value for `{k}`"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        let content_type = match encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        map.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzip {
            map.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(hosts.clone(), &url)))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self {
            client,
            url,
            method,
            headers: map,
            encoding,
            gzip,
        })
    }

    /// The body as sent, compressed when the destination asks for gzip (already done when
    /// the worker prepared it).
    pub(crate) fn body(&self, batch: &EncodedBatch) -> Result<bytes::Bytes, ExportError> {
        if !self.gzip {
            return Ok(batch.body.clone());
        }
        match &batch.wire {
            Some(wire) => Ok(wire.clone()),
            None => gzip(&batch.body),
        }
    }

    /// A request carrying the destination's method, URL and headers, so the connection test
    /// reaches the receiver exactly as an export does.
    pub(crate) fn request(&self) -> reqwest::RequestBuilder {
        self.client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
    }

    /// Why an answer is a redirect the sink does not follow, naming where it pointed.
    pub(crate) fn redirect_error(&self, status: u16, headers: &HeaderMap) -> String {
        format!(
            "redirected to {} (HTTP {status}); destinations do not follow redirects: set the \
             destination to the new location if it is the right one",
            redirect_target(&self.url, headers)
        )
    }
}

/// Why a request failed to send, without the URL (its query may carry a token); a refusal
/// by the destination host policy says so.
pub(crate) fn send_error(e: &reqwest::Error) -> ExportError {
    if let Some(refused) = refusal(e) {
        // Not retried: the same addresses would be refused again.
        return ExportError::permanent(format!(
            "refused by the destination host policy: {refused}"
        ));
    }
    ExportError::retryable(if e.is_timeout() {
        "timed out".to_owned()
    } else {
        let text = e.to_string();
        match e.url() {
            Some(u) => text.replace(u.as_str(), "<endpoint>"),
            None => text,
        }
    })
}

/// Where a redirect pointed, resolved against the request's URL, without credentials: no
/// user or password, query values masked, no fragment, and bounded.
pub(crate) fn redirect_target(base: &reqwest::Url, headers: &HeaderMap) -> String {
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return "no location".into();
    };
    let Ok(mut target) = base.join(location.trim()) else {
        return "a location that is not a URL".into();
    };
    let _ = target.set_username("");
    let _ = target.set_password(None);
    target.set_fragment(None);
    let keys: Vec<String> = target.query_pairs().map(|(k, _)| k.into_owned()).collect();
    if keys.is_empty() {
        target.set_query(None);
    } else {
        target
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
    }
    let shown: String = target.as_str().chars().take(MAX_LOCATION_CHARS).collect();
    if shown.len() < target.as_str().len() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// A location longer than this is cut: a receiver must not make the last error long.
const MAX_LOCATION_CHARS: usize = 200;

impl Sink for HttpSink {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn gzip(&self) -> bool {
        self.gzip
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let body = self.body(batch)?;
        let resp = self
            .request()
            .body(body)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            return Err(ExportError::permanent(format!(
                "HTTP {status}: {}",
                self.redirect_error(status, resp.headers())
            )));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.bytes().await.unwrap_or_default();
        let shown = reply::text(content_type.as_deref(), &text);
        Err(ExportError::from_status(
            status,
            retry_after,
            &excerpt(shown.as_bytes()),
        ))
    }
}

/// The first 200 bytes of a reply, for the destination's last error.
pub fn excerpt(body: &[u8]) -> String {
    let text = reply::printable(body);
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    use super::*;

    /// More than one read of the decoder's buffer.
    const GZIP_SLICE: usize = 16 * 1024;

    fn sink(gzip: bool) -> HttpSink {
        HttpSink::new(
            "http://127.0.0.1:9/v1/traces",
            reqwest::Method::POST,
            &[],
            Encoding::Protobuf,
            gzip,
            Duration::from_secs(1),
            &Arc::default(),
        )
        .unwrap()
    }

    #[test]
    fn redirect_locations_are_shown_without_credentials() {
        let base = reqwest::Url::parse("http://collector:4318/v1/traces?token=own").unwrap();
        let at = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
            redirect_target(&base, &headers)
        };
        assert_eq!(
            at("https://u:p@other.example:8443/in?api_key=abc&sig=def#frag"),
            "https://other.example:8443/in?api_key=***&sig=***"
        );
        assert_eq!(at("/v2/traces"), "http://collector:4318/v2/traces");
        assert_eq!(at("//evil.example/x?"), "http://evil.example/x");
        assert!(at(&format!("/{}", "a".repeat(500))).ends_with("..."));
        assert_eq!(redirect_target(&base, &HeaderMap::new()), "no location");
        assert_eq!(at("http://[::1"), "a location that is not a URL");
    }

    #[test]
    fn a_body_compressed_in_slices_decompresses_to_the_batch() {
        let body: Vec<u8> = (0..GZIP_SLICE * 4 + 5)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let batch = EncodedBatch {
            body: body.clone().into(),
            spans: 1,
            wire: None,
        };
        let sent = sink(true).body(&batch).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&sent[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        // Without gzip the batch goes out as it is.
        assert_eq!(sink(false).body(&batch).unwrap(), body);
    }

    #[test]
    fn a_body_gzipped_by_the_worker_is_sent_as_it_is() {
        let body = bytes::Bytes::from_static(b"spans spans spans spans");
        let wire = gzip(&body).unwrap();
        let batch = EncodedBatch {
            body: body.clone(),
            spans: 1,
            wire: Some(wire.clone()),
        };
        assert!(sink(true).gzip());
        assert_eq!(sink(true).body(&batch).unwrap(), wire);
        // A sink that does not gzip sends the plain body, whatever was prepared.
        assert!(!sink(false).gzip());
        assert_eq!(sink(false).body(&batch).unwrap(), body);
    }
}
