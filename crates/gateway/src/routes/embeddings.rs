//! `POST /v1/embeddings`, OpenAI's embeddings API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use gatecast_proxy::api::ClientApi;

use crate::app::AppState;

/// Authenticated by the OpenAI API's [`crate::auth::AuthLayer`]; spends, so budgets apply.
pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    super::chat::serve(state, request, ClientApi::Embeddings).await
}
