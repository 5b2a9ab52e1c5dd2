//! Liveness and readiness.

use axum::Json;
use serde_json::{json, Value};

/// The process is up and serving HTTP.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Config is loaded and the router is built (a gateway that fails either never starts serving).
pub async fn ready() -> Json<Value> {
    Json(json!({"status": "ready"}))
}
