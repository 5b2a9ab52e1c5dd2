//! HTTP handlers, one file per surface.

pub mod chat;
pub mod health;
pub mod metrics;
pub mod models;
pub mod request_metrics;

use axum::http::HeaderMap;
use axum::response::Response;
use gatecast_proxy::error::ApiShape;

use crate::api_error;
use crate::app::AppState;
use crate::control::AuthFailure;

/// The virtual key's name, or why the request is refused. Unauthenticated requests are
/// refused before anything is parsed or recorded, so they cannot flood the destinations.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, AuthFailure> {
    state
        .control
        .keys
        .authenticate(headers)
        .map(|name| name.map(|n| n.to_string()))
}

/// The 401, as OpenAI's SDKs expect for a bad API key.
pub fn unauthorized(failure: AuthFailure) -> Response {
    ::metrics::counter!("gatecast_requests_unauthorized_total").increment(1);
    api_error::respond(&api_error::unauthorized(failure), ApiShape::OpenAi)
}
