//! `GET /v1/models` and `GET /v1/models/{id}`: every id that routes (aliases,
//! `provider/model`, and the bare names exactly one provider lists), in OpenAI's shape, or in
//! Anthropic's when the request carries `anthropic-version` (Anthropic's SDKs always do).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api_error::{self, ApiShape};
use crate::app::AppState;

/// Models have no creation date here; Anthropic's SDKs parse `created_at` as RFC 3339.
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

fn shape(headers: &HeaderMap) -> ApiShape {
    if headers.contains_key("anthropic-version") {
        ApiShape::Anthropic
    } else {
        ApiShape::OpenAi
    }
}

fn object(id: &str, shape: ApiShape) -> Value {
    match shape {
        ApiShape::OpenAi => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": "gatecast"})
        }
        ApiShape::Anthropic => {
            json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
        }
    }
}

/// Authenticated by the client API's [`crate::auth::AuthLayer`].
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let router = state.proxy.router();
    let ids: Vec<String> = router
        .model_ids()
        .into_iter()
        .chain(router.bare_ids())
        .collect();
    let shape = shape(&headers);
    let data: Vec<Value> = ids.iter().map(|id| object(id, shape)).collect();
    let body = match shape {
        ApiShape::OpenAi => json!({"object": "list", "data": data}),
        // One page holds every model: the gateway's list is its config, never long.
        ApiShape::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }),
    };
    Json(body).into_response()
}

/// `client.models.retrieve(id)`: the id may hold `/` (`up/gpt-4o-mini`), hence the wildcard
/// route. A 404 in the request's shape when it does not route.
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let shape = shape(&headers);
    if state.proxy.router().resolve(&id).is_some() {
        return Json(object(&id, shape)).into_response();
    }
    let error = gatecast_proxy::error::ProxyError::model_not_found(&id).api_error();
    api_error::respond(&error, shape)
}
