//! `POST /v1/messages`, Anthropic's Messages API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use gatecast_proxy::api::ClientApi;

use crate::app::AppState;

/// Authenticated by the Anthropic API's [`crate::auth::AuthLayer`] (`x-api-key` or bearer).
pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    super::chat::serve(state, request, ClientApi::Messages).await
}
