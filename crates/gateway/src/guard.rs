//! The client API's door for browsers: a JSON body on every POST, browser origins only when
//! `[server] cors_origins` lists them, and, while no virtual key exists, a `Host` the gateway
//! is known by.
//!
//! A keyless gateway on a laptop would otherwise serve any web page its owner visits: a
//! `text/plain` POST needs no CORS preflight, and a DNS name rebound to 127.0.0.1 makes the
//! page same-origin with the gateway. One layer in front of the client routes checks all of it
//! with a few header lookups; nothing is allocated for a request that passes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HOST, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api_error::{self, ApiShape};
use crate::config::ServerConfig;
use crate::control::Control;
use crate::error::GatewayError;

/// `Sec-Fetch-Site`, sent by browsers with every request since 2020–2023.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// The headers a preflight is granted when it names none: those Gatecast reads.
const DEFAULT_ALLOW_HEADERS: &str = "authorization, content-type, traceparent, tracestate, \
     x-session-id, x-gatecast-privacy, x-request-id";
/// What a browser page may read of a response besides the CORS-safelisted headers.
const EXPOSE_HEADERS: &str = "x-gatecast-trace-id, x-request-id";
/// Quoted client values (a host, an origin, a content type) are cut to this many chars.
const QUOTE_CHARS: usize = 200;

/// The settings of [`GuardLayer`], resolved from `[server]` once.
pub struct Policy {
    hosts: Hosts,
    origins: Origins,
}

/// Which `Host` values a keyless gateway answers to.
struct Hosts {
    listen: Listen,
    /// `[server] allowed_hosts`, lowercased, without brackets or a trailing dot.
    allowed: Box<[Box<str>]>,
    any: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// 127.0.0.0/8 or ::1: `localhost` and loopback addresses.
    Loopback,
    /// 0.0.0.0 or ::: `localhost` and any IP address, as the gateway may be reached at any.
    Any,
    /// One other address: that address.
    Ip(IpAddr),
}

/// `[server] cors_origins`, lowercased.
enum Origins {
    List(Box<[Box<str>]>),
    Any,
}

impl Policy {
    pub fn new(server: &ServerConfig) -> Result<Self, GatewayError> {
        let mut allowed = Vec::new();
        let mut any_host = false;
        for (i, raw) in server.allowed_hosts.iter().enumerate() {
            match normalize_host(raw) {
                Ok(h) if h == "*" => any_host = true,
                Ok(h) => allowed.push(h.into_boxed_str()),
                Err(e) => {
                    return Err(GatewayError::config(
                        format!("server.allowed_hosts[{i}]"),
                        e,
                    ))
                }
            }
        }
        let mut origins = Vec::new();
        let mut any_origin = false;
        for (i, raw) in server.cors_origins.iter().enumerate() {
            match normalize_origin(raw) {
                Ok(o) if o == "*" => any_origin = true,
                Ok(o) => origins.push(o.into_boxed_str()),
                Err(e) => return Err(GatewayError::config(format!("server.cors_origins[{i}]"), e)),
            }
        }
        let ip = server.listen.ip();
        let listen = if ip.is_loopback() {
            Listen::Loopback
        } else if ip.is_unspecified() {
            Listen::Any
        } else {
            Listen::Ip(ip)
        };
        Ok(Self {
            hosts: Hosts {
                listen,
                allowed: allowed.into(),
                any: any_host,
            },
            origins: if any_origin {
                Origins::Any
            } else {
                Origins::List(origins.into())
            },
        })
    }

    /// Whether every browser origin may call the client API.
    pub fn any_origin(&self) -> bool {
        matches!(self.origins, Origins::Any)
    }

    /// What to do with `req`. `open` says whether the gateway runs without keys right now;
    /// it is asked only for a `Host` outside the policy.
    fn check(&self, req: &Request, shape: ApiShape, open: impl FnOnce() -> bool) -> Verdict {
        let headers = req.headers();
        // HTTP/2 carries the host in the URI instead of a header. A request with no host at all
        // is not a browser's, so only a given host is checked.
        let host = headers
            .get(HOST)
            .map(HeaderValue::as_bytes)
            .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()))
            .filter(|h| !h.is_empty());
        if let Some(host) = host {
            if !self.hosts.allows(host) && open() {
                return Verdict::Answer(refusal(
                    shape,
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!(
                        "Host `{}` is not one this gateway answers to while it runs without virtual keys \
                         (a DNS-rebinding guard): add it to [server] allowed_hosts, or create a virtual key",
                        quote(host)
                    ),
                    "host",
                ));
            }
        }
        let origin = headers.get(ORIGIN);
        match origin {
            Some(o) if !self.origins.allows(o.as_bytes()) => {
                return Verdict::Answer(refusal(
                    shape,
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    format!(
                        "requests from the browser origin `{}` are refused: add it to [server] cors_origins to allow it",
                        quote(o.as_bytes())
                    ),
                    "origin",
                ));
            }
            None if cross_site(headers) => {
                return Verdict::Answer(refusal(
                    shape,
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "cross-site browser requests are refused (Sec-Fetch-Site without an Origin): \
                     list the page's origin in [server] cors_origins"
                        .to_owned(),
                    "origin",
                ));
            }
            _ => {}
        }
        let method = req.method();
        if method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            if let Some(origin) = origin {
                return Verdict::Answer(preflight(origin, headers));
            }
        }
        if method == Method::POST {
            let content_type = headers.get(CONTENT_TYPE);
            if !content_type.is_some_and(|v| is_json(v.as_bytes())) {
                let message = match content_type {
                    Some(v) => format!(
                        "Content-Type `{}` is not supported: send the body as JSON with `Content-Type: application/json`",
                        quote(v.as_bytes())
                    ),
                    None => "the request has no Content-Type: send the body as JSON with `Content-Type: application/json`".to_owned(),
                };
                let mut response = refusal(
                    shape,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    message,
                    "content_type",
                );
                // An allowed page should be able to read why.
                if let Some(origin) = origin {
                    add_cors(response.headers_mut(), origin.clone());
                }
                return Verdict::Answer(response);
            }
        }
        Verdict::Pass(origin.cloned())
    }
}

enum Verdict {
    /// On to the route; with the allowed origin to answer CORS for.
    Pass(Option<HeaderValue>),
    /// Answered here: a refusal or a preflight.
    Answer(Response),
}

impl Hosts {
    fn allows(&self, host: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let name = host_name(host);
        if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return true;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return matches!(self.listen, Listen::Loopback | Listen::Any);
        }
        let Ok(ip) = name.parse::<IpAddr>() else {
            return false;
        };
        match self.listen {
            Listen::Loopback => ip.is_loopback(),
            Listen::Any => true,
            Listen::Ip(own) => ip == own,
        }
    }
}

impl Origins {
    fn allows(&self, origin: &[u8]) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(list) => list
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin)),
        }
    }
}

/// The name in a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), without the port,
/// the brackets or a trailing dot.
fn host_name(host: &str) -> &str {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// `Sec-Fetch-Site: cross-site` or `same-site` (another port of `localhost` is the same site):
/// a browser request from another page, even one that sent no `Origin`.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get(SEC_FETCH_SITE)
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site")
}

/// `application/json` or `application/<anything>+json`, with any parameters.
fn is_json(value: &[u8]) -> bool {
    let essence = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    const PREFIX: &[u8] = b"application/";
    const SUFFIX: &[u8] = b"+json";
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > PREFIX.len() + SUFFIX.len()
            && essence[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
            && essence[essence.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// The answer to a CORS preflight from an allowed origin. The origin is trusted with the API,
/// so it gets the headers it asks for: SDKs add their own (`x-stainless-*`, `openai-*`).
fn preflight(origin: &HeaderValue, headers: &HeaderMap) -> Response {
    let allow_headers = headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(DEFAULT_ALLOW_HEADERS));
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    add_cors(h, origin.clone());
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.append(
        VARY,
        HeaderValue::from_static("access-control-request-method, access-control-request-headers"),
    );
    response
}

fn add_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.append(VARY, HeaderValue::from_static("origin"));
}

/// Refused requests are not traced, like unauthenticated ones, so a page cannot flood the
/// destinations; they are counted by reason.
fn refusal(
    shape: ApiShape,
    status: StatusCode,
    code: &'static str,
    message: String,
    reason: &'static str,
) -> Response {
    metrics::counter!("gatecast_requests_refused_total", "reason" => reason).increment(1);
    api_error::respond(&api_error::refused(status, code, message), shape)
}

/// A client's header value for a message: lossy UTF-8, at most [`QUOTE_CHARS`] chars.
fn quote(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `scheme://host[:port]` lowercased without a trailing slash, or `*`.
pub fn normalize_origin(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t == "*" {
        return Ok(t.to_owned());
    }
    let lower = t.strip_suffix('/').unwrap_or(t).to_ascii_lowercase();
    let valid = lower.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@'])
            && !rest.contains(char::is_whitespace)
    });
    if valid {
        Ok(lower)
    } else {
        Err(format!(
            "`{}` is not an origin: write scheme://host[:port] as the browser sends it, e.g. \
             https://app.example.com or http://localhost:3000, or \"*\"",
            quote(raw.as_bytes())
        ))
    }
}

/// A host name or IP address lowercased, without brackets or a trailing dot, or `*`.
pub fn normalize_host(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t == "*" {
        return Ok(t.to_owned());
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    let bare = bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase();
    let bad = |why: &str| {
        Err(format!(
            "`{}` is not a host name{why}: write the name clients put in `Host`, e.g. gatecast.internal",
            quote(raw.as_bytes())
        ))
    };
    if bare.is_empty()
        || bare.contains("://")
        || bare.contains(['/', '?', '#', '@'])
        || bare.contains(char::is_whitespace)
    {
        return bad("");
    }
    if bare.contains(':') && bare.parse::<std::net::Ipv6Addr>().is_err() {
        return bad(" (leave the port out: any port is accepted)");
    }
    Ok(bare)
}

/// Puts the [`Policy`] in front of every route of a router; its refusals are in `shape`,
/// the routes' API's.
#[derive(Clone)]
pub struct GuardLayer {
    policy: Arc<Policy>,
    control: Arc<Control>,
    shape: ApiShape,
}

impl GuardLayer {
    pub fn new(policy: Arc<Policy>, control: Arc<Control>, shape: ApiShape) -> Self {
        Self {
            policy,
            control,
            shape,
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let keys = &self.layer.control.keys;
        match self
            .layer
            .policy
            .check(&req, self.layer.shape, || !keys.enforced())
        {
            Verdict::Pass(origin) => GuardFuture::Passed {
                inner: self.inner.call(req),
                origin,
            },
            Verdict::Answer(response) => GuardFuture::Answered {
                response: Some(response),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The route's answer, with CORS headers for an allowed origin, or the guard's own.
    #[project = GuardProj]
    pub enum GuardFuture<F> {
        Answered { response: Option<Response> },
        Passed { #[pin] inner: F, origin: Option<HeaderValue> },
    }
}

impl<F, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardProj::Answered { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
            GuardProj::Passed { inner, origin } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                if let Some(origin) = origin.take() {
                    add_cors(response.headers_mut(), origin);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(listen: &str, hosts: &[&str], origins: &[&str]) -> Policy {
        let server = ServerConfig {
            listen: listen.parse().unwrap(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        };
        Policy::new(&server).unwrap()
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/vnd.api+json",
            "application/merge-patch+JSON; x=1",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain; charset=application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/+json",
            "text/json+json",
            "",
        ] {
            assert!(!is_json(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn hosts_of_a_loopback_listener() {
        let p = policy("127.0.0.1:8080", &["gatecast.internal"], &[]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.0.0.1:9999",
            "localhost",
            "LOCALHOST:8080",
            "localhost.:8080",
            "[::1]",
            "[::1]:8080",
            "gatecast.internal",
            "Gatecast.Internal:443",
        ] {
            assert!(p.hosts.allows(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.5:8080",
            "[::2]",
        ] {
            assert!(!p.hosts.allows(bad.as_bytes()), "{bad}");
        }
        assert!(!p.hosts.allows(b"\xff\xfe"));
    }

    #[test]
    fn hosts_of_wildcard_and_specific_listeners() {
        let any = policy("0.0.0.0:8080", &[], &[]);
        for ok in ["10.1.2.3:8080", "localhost:8080", "[fe80::1]", "127.0.0.1"] {
            assert!(any.hosts.allows(ok.as_bytes()), "{ok}");
        }
        assert!(!any.hosts.allows(b"gatecast.default.svc:8080"));
        let one = policy("192.168.1.5:8080", &[], &[]);
        assert!(one.hosts.allows(b"192.168.1.5:8080"));
        assert!(!one.hosts.allows(b"192.168.1.6:8080"));
        assert!(!one.hosts.allows(b"localhost:8080"));
        let star = policy("127.0.0.1:8080", &["*"], &[]);
        assert!(star.hosts.allows(b"anything.example"));
    }

    #[test]
    fn origins_match_exactly_and_any_case() {
        let p = policy("127.0.0.1:8080", &[], &["https://App.example/"]);
        assert!(p.origins.allows(b"https://app.example"));
        assert!(!p.origins.allows(b"http://app.example"));
        assert!(!p.origins.allows(b"https://app.example:8443"));
        assert!(!p.origins.allows(b"null"));
        assert!(!p.any_origin());
        let any = policy("127.0.0.1:8080", &[], &["*"]);
        assert!(any.origins.allows(b"null"));
        assert!(any.any_origin());
    }

    #[test]
    fn settings_are_validated() {
        assert!(normalize_origin("app.example").is_err());
        assert!(normalize_origin("https://app.example/path").is_err());
        assert!(normalize_origin("https://").is_err());
        assert_eq!(
            normalize_origin("http://LOCALHOST:3000/").unwrap(),
            "http://localhost:3000"
        );
        assert!(normalize_host("http://gatecast").is_err());
        assert!(normalize_host("gatecast:8080")
            .unwrap_err()
            .contains("port"));
        assert!(normalize_host("").is_err());
        assert_eq!(normalize_host("[::1]").unwrap(), "::1");
        assert_eq!(normalize_host("Gatecast.Local.").unwrap(), "gatecast.local");
    }

    fn status(verdict: Verdict) -> Option<StatusCode> {
        match verdict {
            Verdict::Pass(_) => None,
            Verdict::Answer(r) => Some(r.status()),
        }
    }

    #[test]
    fn the_host_comes_from_the_uri_without_a_header_and_is_checked_only_while_open() {
        let p = policy("127.0.0.1:8080", &[], &[]);
        let req = |uri: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header(CONTENT_TYPE, "application/json")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        // As HTTP/2 sends it: `:authority` only.
        let rebound = req("http://evil.example:8080/v1/chat/completions");
        assert_eq!(
            status(p.check(&rebound, ApiShape::OpenAi, || true)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(p.check(&rebound, ApiShape::OpenAi, || false)),
            None,
            "keys decide"
        );
        let local = req("http://localhost:8080/v1/chat/completions");
        assert_eq!(status(p.check(&local, ApiShape::OpenAi, || true)), None);
        let no_host = req("/v1/chat/completions");
        assert_eq!(status(p.check(&no_host, ApiShape::OpenAi, || true)), None);
        let mut empty = req("/v1/chat/completions");
        empty
            .headers_mut()
            .insert(HOST, HeaderValue::from_static(""));
        assert_eq!(status(p.check(&empty, ApiShape::OpenAi, || true)), None);
    }

    #[test]
    fn quotes_are_bounded() {
        let q = quote("é".repeat(1000).as_bytes());
        assert_eq!(q.chars().count(), QUOTE_CHARS + 1);
        assert!(q.ends_with('…'));
        assert_eq!(quote(b"text/plain"), "text/plain");
    }
}
