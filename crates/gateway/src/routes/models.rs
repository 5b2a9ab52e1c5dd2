//! `GET /v1/models`, in OpenAI's list shape.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;

/// Authenticated by the client API's [`crate::auth::AuthLayer`].
pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    let data: Vec<Value> = state
        .proxy
        .router()
        .model_ids()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "gatecast"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}
