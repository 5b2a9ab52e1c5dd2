//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;

/// The process is up and serving HTTP.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready while the store answers: a replica that cannot see config changes should not take
/// traffic. Requests themselves never touch the store, so this only steers load balancers.
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.control.store.ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "the store does not answer"})),
        ),
    }
}
