//! How an OTLP/HTTP receiver answers: per request ([`Behaviour::answer`]) or, for the
//! connection-level behaviours, by not speaking HTTP at all.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers every export with 200 and an empty `ExportTraceServiceResponse`, in the
    /// request's encoding (`{}` for JSON, no bytes for protobuf).
    Ok,
    /// Answers `status` ("try later", with `Retry-After: SECS` if given) to the first `n`
    /// requests, then as [`Behaviour::Ok`].
    FailFirst {
        status: u16,
        n: u32,
        retry_after: Option<u64>,
    },
    /// Always answers this status, with no body.
    Always(u16),
    /// Reads each request and never answers it.
    Hang,
    /// Answers 307 to this address's `/v1/traces`, with a credential in the location.
    RedirectTo(SocketAddr),
    /// The `n`-th request gets `answers[n]`, every later one the last answer; no answers is
    /// [`Behaviour::Ok`].
    Script(Vec<Answer>),
    /// Accepts connections and reads whatever arrives (HTTP/1 or HTTP/2) without a word, until
    /// the client gives up.
    Silent,
    /// Accepts connections and never reads or answers: the destination that hangs, which is
    /// worse for a gateway than one that refuses, as the peer's writes back up.
    Blackhole,
}

impl Behaviour {
    pub fn script<A: Into<Answer>>(answers: impl IntoIterator<Item = A>) -> Self {
        Behaviour::Script(answers.into_iter().map(Into::into).collect())
    }

    /// The answer to the request numbered `call` (from 0), or `None` to leave it unanswered.
    pub(super) fn answer(&self, call: u64, request: &HeaderMap) -> Option<Response<Full<Bytes>>> {
        match self {
            Behaviour::Ok => Some(export_accepted(request)),
            Behaviour::FailFirst {
                status,
                n,
                retry_after,
            } if call < u64::from(*n) => {
                let mut resp = reply(*status, Bytes::from_static(b"try later"));
                let headers = resp.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                if let Some(secs) = retry_after {
                    headers.insert(RETRY_AFTER, HeaderValue::from(*secs));
                }
                Some(resp)
            }
            Behaviour::FailFirst { .. } => Some(export_accepted(request)),
            Behaviour::Always(status) => Some(reply(*status, Bytes::new())),
            Behaviour::RedirectTo(to) => {
                let mut resp = reply(307, Bytes::new());
                let location = format!("http://{to}/v1/traces?token=redirect-secret");
                if let Ok(location) = HeaderValue::try_from(location) {
                    resp.headers_mut().insert(LOCATION, location);
                }
                Some(resp)
            }
            Behaviour::Script(answers) => {
                let index = usize::try_from(call).unwrap_or(usize::MAX);
                match answers.get(index).or(answers.last()) {
                    Some(answer) => Some(answer.response()),
                    None => Some(export_accepted(request)),
                }
            }
            // Silent and Blackhole never get as far as a request.
            Behaviour::Hang | Behaviour::Silent | Behaviour::Blackhole => None,
        }
    }
}

/// One scripted answer: status, extra headers (a `content-type` replaces `text/plain`), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from(body.into()),
        }
    }

    /// # Panics
    /// When `name` or `value` cannot be an HTTP header: a mistake in the test.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).unwrap_or_else(|e| panic!("header {name:?}: {e}"));
        let value = HeaderValue::try_from(value)
            .unwrap_or_else(|e| panic!("header {name}: {value:?}: {e}"));
        self.headers.push((name, value));
        self
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = reply(self.status, self.body.clone());
        let headers = resp.headers_mut();
        if !self.headers.iter().any(|(k, _)| k == CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        for (k, v) in &self.headers {
            headers.append(k.clone(), v.clone());
        }
        resp
    }
}

impl<B: Into<Vec<u8>>> From<(u16, B)> for Answer {
    fn from((status, body): (u16, B)) -> Self {
        Answer::new(status, body)
    }
}

/// An empty `ExportTraceServiceResponse`: zero bytes in protobuf, `{}` in JSON.
fn export_accepted(request: &HeaderMap) -> Response<Full<Bytes>> {
    let json = request
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let (content_type, body) = if json {
        ("application/json", Bytes::from_static(b"{}"))
    } else {
        ("application/x-protobuf", Bytes::new())
    };
    let mut resp = reply(200, body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A status that is not one (a test's typo) answers 500 rather than failing the server.
pub(super) fn reply(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}
