//! The request path: the `Proxy` type takes a request through start, prepare (parse and
//! validate), route, forward (each target in turn, with retries) and respond.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatecast_telemetry::ids;
use gatecast_telemetry::metadata;
use gatecast_telemetry::record::{Attempt, Content, GenerationRecord, RouteInfo};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use serde_json::value::RawValue;

use crate::api::responses::ResponseStore;
use crate::api::{ClientApi, Parsed};
use crate::body::ProxyBody;
use crate::capture::Accumulator;
use crate::convert::messages_to_chat;
use crate::error::{ApiError, ApiShape, ErrorType, ProxyError};
use crate::exchange::{Exchange, RecordSink};
use crate::providers::{UpstreamCall, UpstreamError, UpstreamResponse};
use crate::retry::{Next, RetryPolicy};
use crate::routing::{Router, Target};
use crate::stream::reshape::{Reshape, ReshapedBody};
use crate::stream::sse::SseSplitter;
use crate::stream::tee::{Mode, TeeBody};
use crate::trace_headers;

pub const TRACE_ID_HEADER: &str = "x-gatecast-trace-id";
pub const PRIVACY_HEADER: &str = "x-gatecast-privacy";
pub const SESSION_HEADER: &str = "x-session-id";

/// Provider response headers a client may rely on.
const PASSTHROUGH_HEADERS: [&str; 6] = [
    "retry-after",
    "request-id",
    "retry-after-ms",
    "x-request-id",
    "openai-processing-ms",
    "cache-control",
];

#[derive(Debug, Clone)]
pub struct Settings {
    /// Most content bytes (messages, tools, output) one record keeps.
    pub max_capture_bytes: usize,
    /// Prices each record before it is published; `None` leaves records unpriced.
    pub pricer: Option<Arc<gatecast_telemetry::cost::Pricer>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_capture_bytes: 1 << 20,
            pricer: None,
        }
    }
}

/// What the HTTP layer knows about a request before the proxy sees the body.
pub struct Incoming {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The virtual key's name, as the gateway's key ring holds it.
    pub key_name: Option<Arc<str>>,
    pub accepted: Instant,
    pub accepted_unix_nanos: u64,
}

impl Incoming {
    pub fn now(headers: HeaderMap, body: Bytes) -> Self {
        Self {
            headers,
            body,
            key_name: None,
            accepted: Instant::now(),
            accepted_unix_nanos: unix_nanos(),
        }
    }
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub struct Proxy {
    router: Router,
    sink: Arc<dyn RecordSink>,
    settings: Settings,
    /// Where Responses turns are kept for `previous_response_id`; none in a bare proxy.
    turns: Option<Arc<dyn ResponseStore>>,
}

impl Proxy {
    pub fn new(router: Router, sink: Arc<dyn RecordSink>, settings: Settings) -> Self {
        Self {
            router,
            sink,
            settings,
            turns: None,
        }
    }

    /// Keeps Responses turns in `turns`, so that `previous_response_id` works.
    pub fn with_response_store(mut self, turns: Arc<dyn ResponseStore>) -> Self {
        self.turns = Some(turns);
        self
    }

    pub fn response_store(&self) -> Option<&Arc<dyn ResponseStore>> {
        self.turns.as_ref()
    }

    /// Serves `POST /v1/responses`.
    pub async fn responses(&self, incoming: Incoming) -> Response<ProxyBody> {
        self.serve(ClientApi::Responses, incoming).await
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Serves `POST /v1/chat/completions`.
    pub async fn chat(&self, incoming: Incoming) -> Response<ProxyBody> {
        self.serve(ClientApi::ChatCompletions, incoming).await
    }

    /// Serves `POST /v1/messages`, Anthropic's API.
    pub async fn messages(&self, incoming: Incoming) -> Response<ProxyBody> {
        self.serve(ClientApi::Messages, incoming).await
    }

    /// One request of `api`: read, route, forward, answer in the API's own shape.
    pub async fn serve(&self, api: ClientApi, incoming: Incoming) -> Response<ProxyBody> {
        let mut exchange = self.start(&incoming);
        let shape = api.shape();
        let parsed = match self.prepare(api, &incoming, &mut exchange).await {
            Ok(parsed) => parsed,
            Err(e) => return self.reject_exchange(exchange, e, shape),
        };
        let Some(route) = self.router.resolve(parsed.req.model()) else {
            let error = ProxyError::model_not_found(parsed.req.model());
            return self.reject_exchange(exchange, error, shape);
        };
        self.forward(exchange, &parsed, &route.targets, &incoming.headers)
            .await
    }

    /// Refuses a chat request before it is parsed (body too large, bad key), and still
    /// traces it.
    pub fn reject(&self, incoming: &Incoming, error: ProxyError) -> Response<ProxyBody> {
        self.reject_as(ClientApi::ChatCompletions, incoming, error)
    }

    /// Refuses a request of `api` before it is parsed, in that API's shape, and traces it.
    pub fn reject_as(
        &self,
        api: ClientApi,
        incoming: &Incoming,
        error: ProxyError,
    ) -> Response<ProxyBody> {
        let exchange = self.start(incoming);
        self.reject_exchange(exchange, error, api.shape())
    }

    fn start(&self, incoming: &Incoming) -> Exchange {
        let traceparent = header_str(&incoming.headers, "traceparent");
        let from_headers = trace_headers::from_headers(&incoming.headers);
        let resolved = ids::resolve(&from_headers, traceparent);
        let mut record = GenerationRecord::default();
        record.timings.accepted_unix_nanos = incoming.accepted_unix_nanos;
        record.context.trace_id = resolved.trace_id;
        record.context.parent_span_id = resolved.parent_span_id;
        record.context.traceparent = traceparent.map(str::to_owned);
        record.key_name = incoming.key_name.as_deref().map(str::to_owned);
        record.privacy = header_str(&incoming.headers, PRIVACY_HEADER)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "on" | "true" | "1"));
        Exchange::new(record, incoming.accepted, self.sink.clone())
            .with_pricer(self.settings.pricer.clone())
    }

    /// Parses and validates the body, filling the request half of the record.
    async fn prepare(
        &self,
        api: ClientApi,
        incoming: &Incoming,
        exchange: &mut Exchange,
    ) -> Result<Parsed, ProxyError> {
        let mut parsed = api
            .parse(
                &incoming.body,
                &incoming.headers,
                self.turns.as_deref(),
                incoming.key_name.as_deref(),
            )
            .await?;
        let req = &mut parsed.req;
        let record = &mut exchange.record;
        record.request = req.info.clone();
        let from_headers = trace_headers::from_headers(&incoming.headers);
        if req.trace.is_some() || !from_headers.is_empty() {
            let trace = trace_headers::merge(from_headers, req.trace.take());
            let (trace, dropped) = metadata::sanitize(trace);
            let resolved = ids::resolve(&trace, record.context.traceparent.as_deref());
            record.context.trace_id = resolved.trace_id;
            record.context.parent_span_id = resolved.parent_span_id;
            record.context.trace = trace;
            record.context.dropped_metadata_keys = dropped;
        }
        if req.user.is_none() {
            req.user = trace_headers::user(&incoming.headers);
        }
        record.context.user = req.user.clone();
        record.context.session_id = req.session_id.clone();
        if req
            .user
            .as_ref()
            .is_some_and(|u| u.chars().count() > metadata::MAX_USER_CHARS)
        {
            return Err(ProxyError::InvalidRequest {
                message: format!(
                    "`user` is longer than {} characters",
                    metadata::MAX_USER_CHARS
                ),
                param: Some("user".into()),
            });
        }
        if req
            .session_id
            .as_ref()
            .is_some_and(|s| s.chars().count() > metadata::MAX_SESSION_CHARS)
        {
            return Err(ProxyError::InvalidRequest {
                message: format!(
                    "`session_id` is longer than {} characters",
                    metadata::MAX_SESSION_CHARS
                ),
                param: Some("session_id".into()),
            });
        }
        let keep_content = self.keeps_content(record.privacy);
        let limit = self.settings.max_capture_bytes;
        let content = |field: &str| {
            keep_content
                .then(|| req.raw_field(field).map(|raw| bounded_array(raw, limit)))
                .flatten()
        };
        record.request.messages = content("messages");
        record.request.tools = content("tools");
        Ok(parsed)
    }

    fn keeps_content(&self, request_private: bool) -> bool {
        !request_private && self.sink.wants_content()
    }

    fn reject_exchange(
        &self,
        mut exchange: Exchange,
        error: ProxyError,
        shape: ApiShape,
    ) -> Response<ProxyBody> {
        exchange.fail(
            error.kind(),
            Some(error.status().as_u16()),
            error.to_string(),
        );
        let trace_id = exchange.record.context.trace_id;
        exchange.publish();
        error_response_in(&error, &trace_id, shape)
    }

    /// Tries the targets in order, each as often as its provider's retry policy says, and
    /// answers with the first response to keep, or else with the last target's outcome.
    async fn forward(
        &self,
        mut exchange: Exchange,
        parsed: &Parsed,
        targets: &[Target],
        client_headers: &HeaderMap,
    ) -> Response<ProxyBody> {
        let req = &parsed.req;
        let shape = parsed.api.shape();
        let mut last = None;
        for (ti, target) in targets.iter().enumerate() {
            let cfg = target.provider.config();
            let policy = RetryPolicy::of(cfg);
            let timeout = Duration::from_millis(cfg.timeout_ms);
            set_route(&mut exchange, target, req.model());
            let native = parsed
                .native
                .as_ref()
                .filter(|_| parsed.api.native_wire() == Some(target.provider.wire()));
            let call = match native {
                Some(body) => Ok(UpstreamCall {
                    body: Bytes::from(body.write(&target.model)),
                    url: None,
                }),
                None => target.provider.chat_call(req, &target.model),
            };
            let call = match call {
                Ok(call) => call,
                Err(e) => return self.reject_exchange(exchange, e, shape),
            };
            let passthrough = native.is_some();
            let mut tries = 0u32;
            let outcome = loop {
                let (result, deadline) = try_once(
                    &mut exchange,
                    target,
                    timeout,
                    &call,
                    client_headers,
                    passthrough,
                )
                .await;
                let next = match &result {
                    Ok(resp) if resp.status.is_success() => Next::Respond,
                    Ok(resp) => {
                        // `retry_on` may name the provider's own status (Anthropic's 529) or
                        // the one the client sees (503).
                        let own = exchange
                            .record
                            .attempts
                            .last()
                            .and_then(|a| a.http_status)
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .unwrap_or(resp.status);
                        match policy.next(tries, Some((resp.status, &resp.headers))) {
                            Next::Retry(wait) => Next::Retry(wait),
                            _ if own != resp.status => {
                                policy.next(tries, Some((own, &resp.headers)))
                            }
                            other => other,
                        }
                    }
                    Err(_) => policy.next(tries, None),
                };
                match (next, result) {
                    (Next::Retry(wait), result) => {
                        drop(result);
                        tokio::time::sleep(wait).await;
                        tries += 1;
                    }
                    (Next::Respond, Ok(resp)) => {
                        return self.respond(exchange, parsed, resp, deadline, target, passthrough)
                    }
                    (_, Ok(resp)) => break Ok((resp, deadline)),
                    (_, Err(e)) => break Err(e),
                }
            };
            last = Some((outcome, target, passthrough));
            if ti + 1 < targets.len() {
                tracing::debug!(
                    provider = %target.provider.name(),
                    "falling back to the next target"
                );
            }
        }
        match last {
            Some((Ok((resp, deadline)), target, passthrough)) => {
                self.respond(exchange, parsed, resp, deadline, target, passthrough)
            }
            Some((Err(e), target, _)) => {
                self.reject_exchange(exchange, unanswered(e, target), shape)
            }
            None => {
                let error = ProxyError::model_not_found(req.model());
                self.reject_exchange(exchange, error, shape)
            }
        }
    }

    /// Starts the client response: status and useful headers now, body as it streams.
    /// `passthrough`: the answer is in the client's own wire (not chat), and goes as it is.
    fn respond(
        &self,
        exchange: Exchange,
        parsed: &Parsed,
        resp: UpstreamResponse,
        deadline: Instant,
        target: &Target,
        passthrough: bool,
    ) -> Response<ProxyBody> {
        let req = &parsed.req;
        let shape = parsed.api.shape();
        let cfg = target.provider.config();
        let status = resp.status;
        let is_sse = header_str(&resp.headers, CONTENT_TYPE.as_str())
            .is_some_and(|ct| ct.contains("text/event-stream"));
        let mode = if is_sse && status.is_success() {
            Mode::Sse {
                splitter: SseSplitter::new(cfg.max_sse_event_bytes),
                hide_usage: !passthrough && req.stream() && !req.client_wants_usage,
            }
        } else {
            Mode::whole(cfg.max_response_bytes)
        };
        let content_length: Option<u64> = match mode {
            Mode::Whole { .. } => {
                header_str(&resp.headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
            }
            Mode::Sse { .. } => None,
        };
        // A body declared too big to hold is refused before anything reaches the client.
        if let Some(length) = content_length.filter(|&n| n > cfg.max_response_bytes as u64) {
            return self.reject_exchange(
                exchange,
                ProxyError::ResponseTooLarge {
                    provider: target.provider.name().to_owned(),
                    length,
                    limit: cfg.max_response_bytes,
                },
                shape,
            );
        }
        let mut builder = Response::builder().status(status);
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in &resp.headers {
                let n = name.as_str();
                if n == CONTENT_TYPE
                    || PASSTHROUGH_HEADERS.contains(&n)
                    || n.starts_with("x-ratelimit-")
                    || n.starts_with("anthropic-ratelimit-")
                {
                    headers.insert(name.clone(), value.clone());
                }
            }
            headers.insert(
                HeaderName::from_static(TRACE_ID_HEADER),
                trace_header(&exchange.record.context.trace_id),
            );
        }
        let keep_content = self.keeps_content(exchange.record.privacy) || !status.is_success();
        let limit = self.settings.max_capture_bytes;
        let acc = match (parsed.api, passthrough) {
            (ClientApi::Messages, true) => Accumulator::messages(keep_content, limit),
            _ => Accumulator::new(keep_content, limit),
        };
        let sleep = Box::pin(tokio::time::sleep_until(deadline.into()));
        let body = TeeBody::new(
            resp.body,
            mode,
            acc,
            exchange,
            sleep,
            status.as_u16(),
            content_length,
        );
        let body = match (parsed.api, passthrough) {
            (ClientApi::ChatCompletions, _) | (_, true) => ProxyBody::tee(body),
            // A provider's error is already in OpenAI's shape, the Responses API's.
            (ClientApi::Responses, false) if !status.is_success() => ProxyBody::tee(body),
            (ClientApi::Responses, false) => {
                let Some(turn) = parsed.responses.clone() else {
                    return fallback_500();
                };
                let turns = self.turns.clone();
                let reshape = if is_sse {
                    Reshape::Events {
                        splitter: SseSplitter::new(usize::MAX),
                        converter: Box::new(turn.stream(turns)),
                    }
                } else {
                    Reshape::Whole {
                        held: Default::default(),
                        convert: Some(Box::new(move |chat: &[u8]| {
                            turn.whole(chat, turns)
                                .unwrap_or_else(|e| unreadable(&e, shape))
                        })),
                    }
                };
                ProxyBody::Reshaped(Box::new(ReshapedBody::new(body, reshape)))
            }
            (ClientApi::Messages, false) => {
                let reshape = if is_sse && status.is_success() {
                    Reshape::Events {
                        splitter: SseSplitter::new(usize::MAX),
                        converter: Box::new(messages_to_chat::ChatToMessagesStream::new()),
                    }
                } else {
                    Reshape::Whole {
                        held: Default::default(),
                        convert: Some(Box::new(move |chat: &[u8]| {
                            if status.is_success() {
                                messages_to_chat::response(chat)
                                    .unwrap_or_else(|e| unreadable(&e.0, shape))
                            } else {
                                messages_to_chat::error::error(status, chat)
                            }
                        })),
                    }
                };
                if let Some(headers) = builder.headers_mut() {
                    if !is_sse {
                        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    }
                }
                ProxyBody::Reshaped(Box::new(ReshapedBody::new(body, reshape)))
            }
        };
        builder.body(body).unwrap_or_else(|_| fallback_500())
    }
}

fn set_route(exchange: &mut Exchange, target: &Target, requested: &str) {
    let endpoint = target.provider.endpoint();
    exchange.record.route = Some(RouteInfo {
        provider: target.provider.name().to_owned(),
        provider_kind: target.provider.config().provider_name().to_owned(),
        model: target.model.clone(),
        route: requested.to_owned(),
        server_address: endpoint.host.clone(),
        server_port: endpoint.port,
    });
}

/// One try of `target` within its provider's timeout; the attempt goes on the record. Returns
/// the try's result and its deadline, which a response's body keeps.
async fn try_once(
    exchange: &mut Exchange,
    target: &Target,
    timeout: Duration,
    call: &UpstreamCall,
    client_headers: &HeaderMap,
    passthrough: bool,
) -> (Result<UpstreamResponse, UpstreamError>, Instant) {
    let provider = &target.provider;
    let start = exchange.elapsed();
    if exchange.record.timings.upstream_start.is_none() {
        exchange.record.timings.upstream_start = Some(start);
    }
    let deadline = Instant::now() + timeout;
    let sent = provider.send(call, client_headers);
    let result = match tokio::time::timeout_at(deadline.into(), sent).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout),
    };
    let mut attempt = Attempt {
        provider: provider.name().to_owned(),
        model: target.model.clone(),
        url: provider.endpoint().url.clone(),
        start,
        ..Attempt::default()
    };
    match &result {
        Ok(resp) if resp.status.is_success() => {
            attempt.http_status = Some(resp.status.as_u16());
        }
        Ok(resp) => {
            let status = resp.status.as_u16();
            attempt.http_status = Some(status);
            attempt.error = Some(format!("http {status}"));
            attempt.end = exchange.elapsed().max(start + Duration::from_nanos(1));
        }
        Err(e) => {
            // The class only: the message may quote the provider's URL.
            attempt.error = Some(e.class().to_owned());
            attempt.end = exchange.elapsed().max(start + Duration::from_nanos(1));
        }
    }
    exchange.record.attempts.push(attempt);
    // The attempt keeps the provider's own status (Anthropic's 529); the client and the retry
    // policy see the answer as chat completions, unless it goes to the client as it came.
    if passthrough {
        return (result, deadline);
    }
    (
        result.map(|response| provider.chat_response(response)),
        deadline,
    )
}

/// A provider's answer that could not be turned into the client's shape.
fn unreadable(detail: &str, shape: ApiShape) -> Vec<u8> {
    let error = ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorType::Api,
        format!("the provider's answer could not be read: {detail}"),
    );
    shape.body(&error)
}

/// The client's error when a target's last try got no answer.
fn unanswered(error: UpstreamError, target: &Target) -> ProxyError {
    let provider = &target.provider;
    match error {
        UpstreamError::Timeout => ProxyError::Timeout {
            provider: provider.name().to_owned(),
            timeout_ms: provider.config().timeout_ms,
        },
        other => ProxyError::Unreachable {
            provider: provider.name().to_owned(),
            detail: other.to_string(),
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn trace_header(trace_id: &[u8; 16]) -> HeaderValue {
    // 32 lowercase hex digits are always a valid header value.
    HeaderValue::from_str(&hex_lower(trace_id)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The proxy's refusal in OpenAI's shape, the chat completions API's, with the trace id.
pub fn error_response(error: &ProxyError, trace_id: &[u8; 16]) -> Response<ProxyBody> {
    error_response_in(error, trace_id, ApiShape::OpenAi)
}

/// The proxy's refusal in `shape`, with the trace id.
pub fn error_response_in(
    error: &ProxyError,
    trace_id: &[u8; 16],
    shape: ApiShape,
) -> Response<ProxyBody> {
    let mut response = error.api_error().response(shape);
    response.headers_mut().insert(
        HeaderName::from_static(TRACE_ID_HEADER),
        trace_header(trace_id),
    );
    response.map(ProxyBody::full)
}

fn fallback_500() -> Response<ProxyBody> {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorType::Api,
        "internal error",
    )
    .response(ApiShape::OpenAi)
    .map(ProxyBody::full)
}

/// Keeps a JSON array within `limit` bytes by dropping whole elements from the middle, so the
/// start of a conversation and its latest turns survive and the JSON stays valid.
fn bounded_array(raw: &str, limit: usize) -> Content {
    if raw.len() <= limit {
        return Content {
            json: raw.to_owned(),
            truncated: false,
        };
    }
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw) else {
        return Content {
            json: "[]".into(),
            truncated: true,
        };
    };
    let mut keep_head = 0usize;
    let mut keep_tail = 0usize;
    let mut size = 2usize;
    let (mut lo, mut hi) = (0usize, items.len());
    // Alternate between the newest and the oldest element while they fit.
    let mut take_tail = true;
    while lo < hi {
        let idx = if take_tail { hi - 1 } else { lo };
        let len = items[idx].get().len() + 1;
        if size + len > limit {
            break;
        }
        size += len;
        if take_tail {
            hi -= 1;
            keep_tail += 1;
        } else {
            lo += 1;
            keep_head += 1;
        }
        take_tail = !take_tail;
    }
    let kept: Vec<&str> = items[..keep_head]
        .iter()
        .chain(items[items.len() - keep_tail..].iter())
        .map(|r| r.get())
        .collect();
    Content {
        json: format!("[{}]", kept.join(",")),
        truncated: true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounded_array_drops_from_the_middle() {
        let raw = r#"[{"a":"1111"},{"b":"2222"},{"c":"3333"},{"d":"4444"}]"#;
        let c = bounded_array(raw, 1000);
        assert!(!c.truncated);
        let c = bounded_array(raw, 32);
        assert!(c.truncated);
        let v: Vec<serde_json::Value> = serde_json::from_str(&c.json).unwrap();
        assert_eq!(
            v,
            vec![
                serde_json::json!({"a":"1111"}),
                serde_json::json!({"d":"4444"})
            ]
        );
    }

    /// Keeps every record the proxy publishes.
    #[derive(Default)]
    struct Keep(std::sync::Mutex<Vec<GenerationRecord>>);

    impl RecordSink for Keep {
        fn publish(&self, record: GenerationRecord) {
            self.0.lock().unwrap().push(record);
        }
        fn wants_content(&self) -> bool {
            false
        }
    }

    /// `a` (mock, retried once), then `b` (mock), behind the alias `m`; `dead` refuses
    /// connections and falls back to `b` behind `d`. `a_config` is added to `a`'s table.
    fn gateway(a_config: &str) -> (Proxy, Arc<Keep>) {
        #[derive(serde::Deserialize)]
        struct Config {
            providers: std::collections::BTreeMap<String, crate::ProviderConfig>,
            models: std::collections::BTreeMap<String, crate::ModelAlias>,
        }
        // A port nobody listens on: bound, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let config: Config = toml::from_str(&format!(
            r#"
            [providers.a]
            kind = "mock"
            retry_backoff_ms = 1
            {a_config}
            [providers.b]
            kind = "mock"
            [providers.dead]
            kind = "openai"
            base_url = "http://127.0.0.1:{port}/v1"
            max_retries = 1
            retry_backoff_ms = 1
            [models.m]
            provider = "a"
            model = "x"
            fallbacks = ["b/y"]
            [models.d]
            provider = "dead"
            model = "x"
            fallbacks = ["b/y"]
            "#
        ))
        .unwrap();
        let router = Router::new(&config.providers, &config.models).unwrap();
        let keep = Arc::new(Keep::default());
        let proxy = Proxy::new(router, keep.clone(), Settings::default());
        (proxy, keep)
    }

    /// Sends `text` as the last user message to `model`; returns the status, the body and the
    /// tries (`provider status-or-error`) of the record.
    async fn chat(
        proxy: &Proxy,
        keep: &Keep,
        model: &str,
        text: &str,
        headers: HeaderMap,
    ) -> (u16, serde_json::Value, Vec<String>) {
        use http_body_util::BodyExt;
        let body =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]});
        let resp = proxy
            .chat(Incoming::now(headers, Bytes::from(body.to_string())))
            .await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_default();
        // A finished exchange publishes from a task on this runtime.
        let deadline = Instant::now() + Duration::from_secs(30);
        let record = loop {
            if let Some(record) = keep.0.lock().unwrap().pop() {
                break record;
            }
            assert!(Instant::now() < deadline, "no record published");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let tries = record
            .attempts
            .iter()
            .map(|a| {
                let outcome = match (a.http_status, &a.error) {
                    (_, Some(error)) => error.clone(),
                    (Some(status), None) => status.to_string(),
                    (None, None) => "?".into(),
                };
                format!("{} {outcome}", a.provider)
            })
            .collect();
        (status, body, tries)
    }

    #[tokio::test]
    async fn a_status_not_to_retry_goes_to_the_client_without_a_fallback() {
        let (proxy, keep) = gateway("max_retries = 2");
        let (status, body, tries) =
            chat(&proxy, &keep, "m", "#mock:error=400 no", HeaderMap::new()).await;
        assert_eq!(status, 400);
        assert!(body["error"].is_object(), "{body}");
        assert_eq!(tries, ["a http 400"]);
    }

    #[tokio::test]
    async fn a_retryable_status_falls_back_once_the_tries_are_spent() {
        let (proxy, keep) = gateway("max_retries = 1");
        let (status, _, tries) = chat(
            &proxy,
            &keep,
            "m",
            "#mock:error=503 again",
            HeaderMap::new(),
        )
        .await;
        assert_eq!(status, 503, "the last target's answer goes to the client");
        assert_eq!(tries, ["a http 503", "a http 503", "b http 503"]);
    }

    #[tokio::test]
    async fn a_retry_after_past_the_cap_goes_to_the_client_while_tries_are_left() {
        let (proxy, keep) = gateway("max_retries = 2\nmax_retry_after_ms = 1000");
        let text = "#mock:error=429,retry_after=60 later";
        let (status, _, tries) = chat(&proxy, &keep, "m", text, HeaderMap::new()).await;
        assert_eq!(status, 429);
        assert_eq!(tries, ["a http 429"]);
        // With no tries left, the fallback gets its turn whatever the header says.
        let (proxy, keep) = gateway("max_retries = 0\nmax_retry_after_ms = 1000");
        let (status, _, tries) = chat(&proxy, &keep, "m", text, HeaderMap::new()).await;
        assert_eq!(status, 429);
        assert_eq!(tries, ["a http 429", "b http 429"]);
    }

    #[tokio::test]
    async fn a_short_retry_after_is_waited_out_and_the_retry_can_succeed() {
        let (proxy, keep) = gateway("max_retries = 1");
        let text = "#mock:error=429,retry_after=0,fail_times=1 soon";
        let (status, body, tries) = chat(&proxy, &keep, "m", text, HeaderMap::new()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(tries, ["a http 429", "a 200"]);
    }

    #[tokio::test]
    async fn connection_errors_are_retried_then_fall_back() {
        let (proxy, keep) = gateway("");
        let (status, body, tries) = chat(&proxy, &keep, "d", "hello", HeaderMap::new()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "y");
        assert_eq!(tries, ["dead connect", "dead connect", "b 200"]);
        let (status, body, tries) = chat(&proxy, &keep, "dead/x", "hello", HeaderMap::new()).await;
        assert_eq!(status, 502);
        assert_eq!(body["error"]["code"], "upstream_unreachable");
        assert_eq!(tries, ["dead connect", "dead connect"]);
    }

    #[tokio::test]
    async fn the_x_mock_header_reaches_the_built_in_mock() {
        let (proxy, keep) = gateway("");
        let mut headers = HeaderMap::new();
        headers.insert("x-mock", HeaderValue::from_static("error=418"));
        let (status, _, tries) = chat(&proxy, &keep, "a/x", "hello", headers).await;
        assert_eq!(status, 418);
        assert_eq!(tries, ["a http 418"]);
    }
}
