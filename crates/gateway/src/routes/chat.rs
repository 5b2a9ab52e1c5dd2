//! `POST /v1/chat/completions`, and the body reading every inbound API shares.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use gatecast_proxy::api::ClientApi;
use gatecast_proxy::error::ApiShape;
use gatecast_proxy::proxy::unix_nanos;
use gatecast_proxy::{Incoming, ProxyError};

use crate::api_error;
use crate::app::AppState;
use crate::auth::KeyName;
use crate::serve::request_body::{self, ReadError};

/// Takes the request whole: a `HeaderMap` extractor would copy the headers. Authenticated by
/// the client API's [`crate::auth::AuthLayer`], which leaves the key's name in the extensions.
pub async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    serve(state, request, ClientApi::ChatCompletions).await
}

/// Reads the body within `server.max_body_bytes` and hands the request to the proxy's entry
/// for `api`; every refusal is in that API's shape and traced.
pub(crate) async fn serve(state: Arc<AppState>, request: Request, api: ClientApi) -> Response {
    let shape: ApiShape = api.shape();
    let accepted = Instant::now();
    let (mut parts, mut body) = request.into_parts();
    let accepted_unix_nanos = unix_nanos();
    crate::serve::busy_poll::activity();
    let key_name = parts.extensions.remove::<KeyName>().map(|k| k.0);
    let headers = parts.headers;
    let limit = state.max_body_bytes;
    let (bytes, too_large) = match request_body::read(&mut body, &headers, limit).await {
        Ok(bytes) => (bytes, false),
        Err(ReadError::TooLarge) => (Default::default(), true),
        Err(ReadError::TimedOut(after)) => {
            let response = api_error::respond(&api_error::body_timeout(after), shape);
            state
                .request_metrics
                .record(response.status(), accepted.elapsed());
            return response;
        }
        Err(ReadError::Broken) => {
            let response = api_error::respond(&api_error::body_broken(), shape);
            state
                .request_metrics
                .record(response.status(), accepted.elapsed());
            return response;
        }
    };
    let incoming = Incoming {
        headers,
        body: bytes,
        key_name,
        accepted,
        accepted_unix_nanos,
    };
    let response = if too_large {
        state
            .proxy
            .reject_as(api, &incoming, ProxyError::PayloadTooLarge { limit })
    } else {
        state.proxy.serve(api, incoming).await
    };
    state
        .request_metrics
        .record(response.status(), accepted.elapsed());
    response.map(Body::new)
}
