//! The mock as an HTTP server, for tests and benchmarks that need a real network hop.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
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
        .route("/v1/models", get(models))
        .route("/__mock/requests", get(recorded).delete(clear_recorded))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn chat(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let directives = headers
        .get(crate::DIRECTIVES_HEADER)
        .and_then(|v| v.to_str().ok());
    let reply = state.mock.respond(&body, directives);
    state.recorder.push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: header_pairs(&headers),
        body,
    });
    send(reply).await
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

async fn recorded(State(state): State<AppState>) -> Json<Vec<RecordedRequest>> {
    Json(state.recorder.snapshot())
}

async fn clear_recorded(State(state): State<AppState>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}
