//! OTLP over HTTP for the `otlp` (http/protobuf, http/json), `sentry` and `webhook` types.
//! The status is classified so the pipeline knows whether to retry, split or give up.

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};

use super::{EncodedBatch, Encoding, ExportError, Sink};

/// Bytes compressed between two pacing checkpoints: about 50 µs of `Compression::fast()`.
const GZIP_SLICE: usize = 16 * 1024;

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
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("invalid URL: the scheme must be http or https".into());
        }
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
}

impl Sink for HttpSink {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn gzip(&self) -> bool {
        self.gzip
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let body = self.body(batch)?;
        let resp = self.request().body(body).send().await.map_err(|e| {
            ExportError::retryable(if e.is_timeout() {
                "timed out".to_owned()
            } else {
                // reqwest names the URL, which may carry a token in its query string.
                let text = e.to_string();
                match e.url() {
                    Some(u) => text.replace(u.as_str(), "<endpoint>"),
                    None => text,
                }
            })
        })?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.bytes().await.unwrap_or_default();
        Err(ExportError::from_status(
            status,
            retry_after,
            &excerpt(&text),
        ))
    }
}

/// The first 200 bytes of a reply, for the destination's last error.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// Gzips an export body at the fast level: on a loopback collector the CPU is the cost, and
/// the fast level already shrinks OTLP by about four times.
pub fn gzip(body: &[u8]) -> Result<bytes::Bytes, ExportError> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    // In slices, so a large batch does not hold the core in one piece (see `pace`).
    body.chunks(GZIP_SLICE)
        .try_for_each(|piece| {
            crate::pace::checkpoint();
            enc.write_all(piece)
        })
        .and_then(|_| enc.finish())
        .map(bytes::Bytes::from)
        .map_err(|e| ExportError::permanent(format!("gzip failed: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    use super::*;

    fn sink(gzip: bool) -> HttpSink {
        HttpSink::new(
            "http://127.0.0.1:9/v1/traces",
            reqwest::Method::POST,
            &[],
            Encoding::Protobuf,
            gzip,
            Duration::from_secs(1),
        )
        .unwrap()
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
