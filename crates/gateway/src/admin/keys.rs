//! Virtual key endpoints, and the audit log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ActorExt, AdminError};
use crate::app::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
}

/// Creates a key and returns it in full, the only time it is shown.
pub async fn create(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let new: NewKey =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body))
            .map_err(|e| AdminError::BadBody(format!("{}: {}", e.path(), e.inner())))?;
    let (info, key) = state
        .control
        .store
        .create_key(&new.name, &actor.0 .0)
        .await?;
    state
        .control
        .reload()
        .await
        .map_err(|e| AdminError::Apply(e.to_string()))?;
    let mut body = json!(info);
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, AdminError> {
    let keys = state.control.store.list_keys().await?;
    Ok(Json(json!({"object": "list", "data": keys})))
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let info = state.control.store.revoke_key(&name, &actor.0 .0).await?;
    state
        .control
        .reload()
        .await
        .map_err(|e| AdminError::Apply(e.to_string()))?;
    Ok(Json(json!(info)))
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Value>, AdminError> {
    let entries = state
        .control
        .store
        .audit_log(params.limit.clamp(1, 1000))
        .await?;
    Ok(Json(json!({"object": "list", "data": entries})))
}
