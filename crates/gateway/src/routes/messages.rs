//! `POST /v1/messages`, Anthropic's Messages API, and its `count_tokens`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use gatecast_proxy::api::ClientApi;
use gatecast_proxy::error::ApiShape;
use gatecast_proxy::{Incoming, ProxyError};

use crate::api_error;
use crate::app::AppState;
use crate::auth::KeyName;
use crate::serve::request_body::{self, ReadError};

/// Authenticated by the Anthropic API's [`crate::auth::AuthLayer`] (`x-api-key` or bearer).
pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    super::chat::serve(state, request, ClientApi::Messages).await
}

/// `POST /v1/messages/count_tokens`: read within `server.max_body_bytes` and counted in the
/// request metrics, but not traced, as a count is no model call.
pub async fn count_tokens(State(state): State<Arc<AppState>>, request: Request) -> Response {
    const SHAPE: ApiShape = ApiShape::Anthropic;
    let accepted = Instant::now();
    let (mut parts, mut body) = request.into_parts();
    let key_name = parts.extensions.remove::<KeyName>().map(|k| k.0);
    let limit = state.max_body_bytes;
    let response = match request_body::read(&mut body, &parts.headers, limit).await {
        Ok(bytes) => {
            let mut incoming = Incoming::now(parts.headers, bytes);
            incoming.key_name = key_name;
            incoming.accepted = accepted;
            state.proxy.count_tokens(incoming).await.map(Body::new)
        }
        Err(ReadError::TooLarge) => {
            let error = ProxyError::PayloadTooLarge { limit }.api_error();
            api_error::respond(&error, SHAPE)
        }
        Err(ReadError::TimedOut(after)) => {
            api_error::respond(&api_error::body_timeout(after), SHAPE)
        }
        Err(ReadError::Broken) => api_error::respond(&api_error::body_broken(), SHAPE),
    };
    state
        .request_metrics
        .record(response.status(), accepted.elapsed());
    response
}
