//! The mock as an HTTP server, for tests and benchmarks that need a real network hop.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::recorder::{RecordedRequest, Recorder};
use crate::reply::MockReply;
use crate::responder::Mock;

/// Benchmarks may send large prompts; the gateway in front enforces the real limit.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Streams still running at shutdown (long `chunk_delay_ms`) must not hold the caller forever.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const MODELS: [&str; 3] = ["mock-model", "gpt-4o-mini", "gpt-4o"];

#[derive(Clone)]
struct AppState {
    mock: Mock,
    recorder: Recorder,
}

pub struct MockServer {
    pub addr: SocketAddr,
    recorder: Recorder,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl MockServer {
    /// Oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.snapshot()
    }

    pub fn clear(&self) {
        self.recorder.clear();
    }

    /// The OpenAI-style base URL, ready for a client's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops accepting at once; returns when open connections have finished or after a grace
    /// period, whichever is first.
    pub async fn shutdown(self) {
        let MockServer { stop, mut task, .. } = self;
        let _ = stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Binds (use "127.0.0.1:0" for a random port), spawns the server on the current tokio
/// runtime, and returns once it is listening.
pub async fn start(addr: SocketAddr) -> io::Result<MockServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let recorder = Recorder::default();
    let app = router(AppState {
        mock: Mock::new(),
        recorder: recorder.clone(),
    });
    // Latency benchmarks measure the gateway, not Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown_signal = async move {
        // Dropping the handle without `shutdown` leaves the server running.
        if stopped.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal)
            .await
    });
    Ok(MockServer {
        addr,
        recorder,
        stop,
        task,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/messages/count_tokens", post(count_tokens))
        .route("/v1/responses", post(responses))
        .route("/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_deployment_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_deployment_embeddings),
        )
        .route("/openai/v1/chat/completions", post(azure_v1_chat))
        .route("/openai/v1/embeddings", post(azure_v1_embeddings))
        .route("/openai/v1/responses", post(azure_v1_responses))
        .route("/v1/models", get(models))
        .route("/__mock/requests", get(recorded).delete(clear_recorded))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// What every POST route needs: the parsed body (`Null` when it is not JSON) and its headers;
/// it becomes the recorder's entry once answered.
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Value,
}

impl Received {
    fn new(method: Method, uri: Uri, headers: HeaderMap, body: &Bytes) -> Self {
        Received {
            method,
            uri,
            headers,
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn directives(&self) -> Option<&str> {
        self.header(crate::DIRECTIVES_HEADER)
    }

    fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// Recorded before the reply's latency, so a test can see a request still in flight; the
    /// body moves into the record, uncopied.
    async fn answer(self, state: &AppState, reply: impl FnOnce(&Self) -> MockReply) -> Response {
        let reply = reply(&self);
        state.recorder.push(RecordedRequest {
            method: self.method.to_string(),
            path: self.uri.path().to_owned(),
            query: self.uri.query().map(str::to_owned),
            headers: header_pairs(&self.headers),
            body: self.body,
        });
        send(reply).await
    }
}

async fn chat(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| state.mock.respond(&r.body, r.directives()))
        .await
}

async fn messages(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        anthropic_refusal(r).unwrap_or_else(|| state.mock.messages(&r.body, r.directives()))
    })
    .await
}

async fn count_tokens(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        anthropic_refusal(r).unwrap_or_else(|| state.mock.count_tokens(&r.body, r.directives()))
    })
    .await
}

/// Anthropic wants a key (`x-api-key`, or a bearer token) and an `anthropic-version`.
fn anthropic_refusal(req: &Received) -> Option<MockReply> {
    let tag = crate::responder::request_tag(&req.body);
    let has_key = req.header("x-api-key").is_some_and(|k| !k.is_empty())
        || req.header("authorization").is_some_and(|a| !a.is_empty());
    if !has_key {
        let message = "x-api-key header is required";
        return Some(crate::messages::error(
            401,
            message,
            &tag,
            None,
            Duration::ZERO,
        ));
    }
    if req.header("anthropic-version").is_none_or(str::is_empty) {
        let message = "anthropic-version: header is required";
        return Some(crate::messages::error(
            400,
            message,
            &tag,
            None,
            Duration::ZERO,
        ));
    }
    None
}

async fn responses(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| state.mock.responses(&r.body, r.directives()))
        .await
}

async fn embeddings(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| state.mock.embeddings(&r.body, r.directives()))
        .await
}

async fn azure_deployment_chat(
    State(state): State<AppState>,
    Path(deployment): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        azure_refusal(r, true).unwrap_or_else(|| {
            state
                .mock
                .azure_chat(&r.body, r.directives(), Some(&deployment))
        })
    })
    .await
}

async fn azure_v1_chat(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        azure_refusal(r, false)
            .unwrap_or_else(|| state.mock.azure_chat(&r.body, r.directives(), None))
    })
    .await
}

async fn azure_deployment_embeddings(
    State(state): State<AppState>,
    Path(deployment): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        azure_refusal(r, true).unwrap_or_else(|| {
            // The deployment names the model; the record keeps the body as it came.
            let mut body = r.body.clone();
            if let Some(object) = body.as_object_mut() {
                object.insert("model".into(), Value::String(deployment));
            }
            state.mock.embeddings(&body, r.directives())
        })
    })
    .await
}

async fn azure_v1_embeddings(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        azure_refusal(r, false).unwrap_or_else(|| state.mock.embeddings(&r.body, r.directives()))
    })
    .await
}

async fn azure_v1_responses(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received::new(method, uri, headers, &body);
    req.answer(&state, |r| {
        azure_refusal(r, false).unwrap_or_else(|| state.mock.responses(&r.body, r.directives()))
    })
    .await
}

/// The deployment form needs `api-version` (404 without, as Azure answers); both need a key.
fn azure_refusal(req: &Received, needs_version: bool) -> Option<MockReply> {
    if needs_version {
        if let Some(missing) = crate::azure::missing_api_version(req.query(), &req.body) {
            return Some(missing);
        }
    }
    crate::azure::missing_key(
        req.header("api-key"),
        req.header("authorization"),
        &req.body,
    )
}

async fn send(mut reply: MockReply) -> Response {
    if !reply.latency.is_zero() {
        tokio::time::sleep(reply.latency).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = std::mem::take(&mut reply.headers);
    let body = match reply.json_bytes() {
        Some(bytes) => Body::from(bytes),
        // Streamed so that an abort tears the chunked response instead of ending it cleanly.
        None => Body::from_stream(reply.into_body_stream()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn models() -> Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": crate::wire::CREATED, "owned_by": "gatecast-mock"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Secret-bearing headers are redacted here: this read is open to anything that reaches the
/// port, unlike [`MockServer::requests`] in the test's own process.
async fn recorded(State(state): State<AppState>) -> Json<Vec<RecordedRequest>> {
    Json(
        state
            .recorder
            .snapshot()
            .into_iter()
            .map(RecordedRequest::redacted)
            .collect(),
    )
}

async fn clear_recorded(State(state): State<AppState>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}
