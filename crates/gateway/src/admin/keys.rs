//! Virtual key endpoints (budgets included), spend, and the audit log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ActorExt, AdminError};
use crate::app::AppState;
use crate::spend::report;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    #[serde(default)]
    budget_usd: Option<f64>,
    #[serde(default)]
    budget_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBudget {
    usd: f64,
    period: String,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
        .map_err(|e| AdminError::BadBody(format!("{}: {}", e.path(), e.inner())))
}

/// Creates a key and returns it in full, the only time it is shown.
pub async fn create(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let new: NewKey = parse_body(&body)?;
    let budget = report::parse_budget(
        new.budget_usd,
        new.budget_period.as_deref(),
        ("budget_usd", "budget_period"),
    )
    .map_err(AdminError::Field)?;
    let (info, key) = state
        .control
        .store
        .create_key_with_budget(&new.name, budget, &actor.0 .0)
        .await?;
    apply(&state).await?;
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
    apply(&state).await?;
    Ok(Json(json!(info)))
}

/// `PUT /keys/{name}/budget` `{"usd": 50, "period": "day"}`: sets or replaces the budget.
pub async fn set_budget(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let new: NewBudget = parse_body(&body)?;
    let budget = report::parse_budget(Some(new.usd), Some(&new.period), ("usd", "period"))
        .map_err(AdminError::Field)?;
    let info = state
        .control
        .store
        .set_key_budget(&name, budget, &actor.0 .0)
        .await?;
    apply(&state).await?;
    Ok(Json(json!(info)))
}

/// `DELETE /keys/{name}/budget`: the key may spend without limit again.
pub async fn clear_budget(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let info = state
        .control
        .store
        .set_key_budget(&name, None, &actor.0 .0)
        .await?;
    apply(&state).await?;
    Ok(Json(json!(info)))
}

/// A key change in force on this replica at once: the key ring and the budget view (other
/// replicas follow at their next reload and budget refresh).
async fn apply(state: &AppState) -> Result<(), AdminError> {
    state
        .control
        .reload()
        .await
        .map_err(|e| AdminError::Apply(e.to_string()))?;
    state
        .spend
        .budgets
        .refresh(&state.control.store)
        .await
        .map_err(|e| AdminError::Apply(e.to_string()))
}

#[derive(Debug, Deserialize)]
pub struct SpendParams {
    since: Option<String>,
    by: Option<String>,
}

/// `GET /spend?since=YYYY-MM-DD&by=key|user|model|day`, as `gatecast spend --json` prints it.
pub async fn spend(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SpendParams>,
) -> Result<Json<Value>, AdminError> {
    let since = report::parse_since("since", params.since.as_deref()).map_err(AdminError::Field)?;
    let by = report::parse_by("by", params.by.as_deref()).map_err(AdminError::Field)?;
    let rows = state.control.store.spend(since, by).await?;
    Ok(Json(report::json(&rows, since, by)))
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
