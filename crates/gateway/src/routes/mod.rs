//! HTTP handlers, one file per surface.

pub mod chat;
pub mod health;
pub mod metrics;
pub mod models;
pub mod request_metrics;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::control::AuthFailure;

/// OpenAI's error shape, for errors raised outside the proxy.
pub fn openai_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The virtual key's name, or why the request is refused. Unauthenticated requests are
/// refused before anything is parsed or recorded, so they cannot flood the destinations.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, AuthFailure> {
    state
        .control
        .keys
        .authenticate(headers)
        .map(|name| name.map(|n| n.to_string()))
}

/// The 401 in OpenAI's shape, as its SDKs expect for a bad API key.
pub fn unauthorized(failure: AuthFailure) -> Response {
    ::metrics::counter!("gatecast_requests_unauthorized_total").increment(1);
    let body = serde_json::json!({"error": {
        "message": failure.message(),
        "type": "authentication_error",
        "param": null,
        "code": "invalid_api_key",
    }});
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    openai_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown route",
    )
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    openai_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "internal error",
    )
}
