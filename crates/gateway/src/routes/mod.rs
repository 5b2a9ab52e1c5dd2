//! HTTP handlers, one file per surface.

pub mod chat;
pub mod health;
pub mod metrics;
pub mod models;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

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
