//! `POST /v1/responses` (OpenAI's Responses API, bridged onto chat) and
//! `GET /v1/responses/{id}` (a turn the gateway kept).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatecast_proxy::api::ClientApi;
use gatecast_proxy::error::{ApiError, ApiShape, ErrorType};
use http::StatusCode;

use crate::app::AppState;
use crate::auth::KeyName;

pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    super::chat::serve(state, request, ClientApi::Responses).await
}

/// Only the key that made a turn can read it.
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let key = request
        .extensions()
        .get::<KeyName>()
        .map(|k| k.0.to_string());
    let not_found = || {
        let error = ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            format!("No response found with id '{id}'."),
        );
        crate::api_error::respond(&error, ApiShape::OpenAi)
    };
    let Some(turns) = state.proxy.response_store() else {
        return not_found();
    };
    match turns.load(id.clone(), key).await {
        Ok(Some(turn)) => Json(turn.response).into_response(),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read a stored response");
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::Api,
                "the stored responses cannot be read right now",
            );
            crate::api_error::respond(&error, ApiShape::OpenAi)
        }
    }
}
