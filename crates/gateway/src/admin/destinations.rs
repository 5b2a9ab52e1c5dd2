//! Destination endpoints. Bodies use the config file's field names (the flat shape).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatecast_store::{DestinationRecord, Source};
use gatecast_telemetry::probe::{self, ProbeReport};
use gatecast_telemetry::DestinationConfig;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{ops, ActorExt, AdminError};
use crate::app::AppState;
use crate::control::bridge;

#[derive(Debug, Default, Deserialize)]
pub struct TestParams {
    #[serde(default)]
    skip_test: bool,
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, AdminError> {
    let records = state.control.store.list_destinations().await?;
    let data: Vec<Value> = records.iter().map(|r| view(&state, r)).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let record = find(&state, &name).await?;
    Ok(Json(view(&state, &record)))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Query(params): Query<TestParams>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let (saved, test) = ops::create(
        &state.control.store,
        &state.control.guard,
        Value::Object(json_object(&body)?),
        &actor.0 .0,
        params.skip_test,
    )
    .await?;
    let body = applied(&state, &saved, test).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
    Query(params): Query<TestParams>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let patch = json_object(&body)?;
    let (saved, test) = ops::update(
        &state.control.store,
        &state.control.guard,
        &name,
        &patch,
        &actor.0 .0,
        params.skip_test,
    )
    .await?;
    Ok(Json(applied(&state, &saved, test).await?))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    state
        .control
        .store
        .delete_destination(&name, &actor.0 .0)
        .await?;
    apply(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears the runtime overrides of a config-file destination; answers it as it now runs.
pub async fn reset_overrides(
    State(state): State<Arc<AppState>>,
    actor: ActorExt,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let saved = ops::reset_overrides(&state.control.store, &name, &actor.0 .0).await?;
    Ok(Json(applied(&state, &saved, None).await?))
}

/// Tests a destination that is not saved; the answer is the report, passed or not. It is
/// held to the bounds of a destination about to be created, since it reaches the same hosts.
pub async fn test_unsaved(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<ProbeReport>, AdminError> {
    let config =
        bridge::parse_flat(Value::Object(json_object(&body)?)).map_err(AdminError::Field)?;
    let guard = &state.control.guard;
    guard
        .check_runtime(&config, |_| true)
        .await
        .map_err(AdminError::Field)?;
    let options = guard.probe_options(Source::Api);
    Ok(Json(probe::test_connection_with(&config, &options).await))
}

pub async fn test_saved(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ProbeReport>, AdminError> {
    let (config, source) = saved_config(&state, &name).await?;
    let options = state.control.guard.probe_options(source);
    Ok(Json(probe::test_connection_with(&config, &options).await))
}

pub async fn send_test_trace(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ProbeReport>, AdminError> {
    let (config, source) = saved_config(&state, &name).await?;
    let options = state.control.guard.probe_options(source);
    Ok(Json(
        probe::send_test_trace_with(&config, &state.service_name, &options).await,
    ))
}

pub async fn stats(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    state
        .broadcaster()
        .stats_for(&name)
        .map(|s| Json(json!(s)))
        .ok_or(AdminError::NotFound {
            what: "destination",
            name,
        })
}

/// After a write: applies it here, and answers the saved destination with its test result.
async fn applied(
    state: &AppState,
    saved: &DestinationRecord,
    test: Option<ProbeReport>,
) -> Result<Value, AdminError> {
    apply(state).await?;
    let mut body = view(state, saved);
    if let Some(test) = test {
        body["test"] = json!(test);
    }
    Ok(body)
}

/// Applies the stored state to this replica now, rather than at the next poll.
async fn apply(state: &AppState) -> Result<(), AdminError> {
    state
        .control
        .reload()
        .await
        .map_err(|e| AdminError::Apply(e.to_string()))
}

async fn find(state: &AppState, name: &str) -> Result<DestinationRecord, AdminError> {
    state
        .control
        .store
        .get_destination(name)
        .await?
        .ok_or_else(|| AdminError::NotFound {
            what: "destination",
            name: name.to_owned(),
        })
}

async fn saved_config(
    state: &AppState,
    name: &str,
) -> Result<(DestinationConfig, Source), AdminError> {
    let record = find(state, name).await?;
    let config = bridge::from_record(&record).map_err(AdminError::Field)?;
    Ok((config, record.source))
}

/// What a read shows ([`bridge::view`]), and whether this replica is delivering to it.
fn view(state: &AppState, record: &DestinationRecord) -> Value {
    let mut flat = bridge::view(record);
    if let Some(stats) = state.broadcaster().stats_for(&record.name) {
        flat.insert("stats".into(), json!(stats));
    }
    Value::Object(flat)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AdminError::BadBody("expected a JSON object".into())),
        Err(e) => Err(AdminError::BadBody(format!("not valid JSON: {e}"))),
    }
}
