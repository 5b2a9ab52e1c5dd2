//! The fallback of the whole HTTP surface: a path no route serves.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use crate::api_error::{self, ApiShape};
use crate::app::AppState;

/// Answered in the closest API's shape (Anthropic's under `/v1/messages` or when the request
/// carries `anthropic-version`), counted, and logged at info with the path alone, so an
/// operator sees a client calling something the gateway does not serve. The query's values
/// and the body are never read.
pub async fn fallback(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let accepted = Instant::now();
    let path = uri.path();
    let shape = if headers.contains_key("anthropic-version") {
        ApiShape::Anthropic
    } else {
        api_error::shape_of(path)
    };
    tracing::info!(
        method = %method,
        path = %api_error::quoted_path(path),
        "unknown route"
    );
    let response = api_error::respond(
        &api_error::unknown_route_error(method.as_str(), path),
        shape,
    );
    state.request_metrics.unknown_route();
    state
        .request_metrics
        .record(response.status(), accepted.elapsed());
    response
}
