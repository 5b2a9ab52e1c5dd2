//! What the gateway itself answers a client API with, outside the proxy: a missing key, a
//! guard refusal, a body that did not arrive, an unknown route or method, a caught panic, the
//! shutdown's 503. Each is one [`ApiError`], rendered in the route's [`ApiShape`] by the same
//! renderer as the proxy's own refusals, so no error JSON is spelled out anywhere else.

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
pub use gatecast_proxy::error::{ApiError, ApiShape, ErrorType};

use crate::control::AuthFailure;

/// `error` as the response, in `shape`.
pub fn respond(error: &ApiError, shape: ApiShape) -> Response {
    error.response(shape).map(Body::from)
}

/// The inbound API a request path belongs to, for answers given outside its route's own
/// layers (an unknown route, the shutdown's 503): Anthropic's under `/v1/messages`, OpenAI's
/// everywhere else.
pub fn shape_of(path: &str) -> ApiShape {
    let messages = ["/v1/messages", "/messages"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if messages {
        ApiShape::Anthropic
    } else {
        ApiShape::OpenAi
    }
}

/// How many chars of a client's path an error quotes.
const QUOTED_PATH_CHARS: usize = 256;

/// The path as an error or a log line quotes it: bounded, and never the query.
pub fn quoted_path(path: &str) -> String {
    match path.char_indices().nth(QUOTED_PATH_CHARS) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    }
}

/// No route has this path: the error names the method and path, with a code (LangChain
/// reports a null code on a 404 as "model not found").
pub fn unknown_route_error(method: &str, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorType::NotFound,
        format!(
            "Gatecast does not serve {method} {}: see docs/apis.md for the endpoints it serves",
            quoted_path(path)
        ),
    )
    .code("unknown_route")
}

/// The 401 OpenAI's SDKs expect for a bad API key.
pub fn unauthorized(failure: AuthFailure) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorType::Authentication,
        failure.message(),
    )
    .code("invalid_api_key")
}

/// A request refused for what it is (its origin, its host, its content type).
pub fn refused(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::new(status, ErrorType::InvalidRequest, message).code(code)
}

/// The body did not arrive within `server.body_read_timeout_ms`.
pub fn body_timeout(after: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorType::InvalidRequest,
        format!(
            "the request body did not arrive within {} ms",
            after.as_millis()
        ),
    )
}

/// The client broke its body off.
pub fn body_broken() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorType::InvalidRequest,
        "the request body could not be read",
    )
}

/// A request still waiting for its answer at the shutdown deadline.
pub fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::Api,
        "the gateway is shutting down and could not finish this request; retry it",
    )
    .code("shutting_down")
}

/// A stream still running at the shutdown deadline, as its last event.
pub fn stream_cut() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::Api,
        "the gateway is shutting down and ended this stream before its end; retry the request",
    )
    .code("shutting_down")
}

/// A route that does not take the request's method; axum adds the `Allow` header.
pub async fn method_not_allowed(uri: Uri) -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorType::InvalidRequest,
        "this route does not take this method: the `Allow` header lists those it takes",
    );
    respond(&error, shape_of(uri.path()))
}

/// The answer to a handler that panicked, in the shape of the routes it guards.
#[derive(Clone, Copy)]
pub struct PanicAnswer(pub ApiShape);

impl tower_http::catch_panic::ResponseForPanic for PanicAnswer {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, _: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Api,
            "internal error",
        );
        respond(&error, self.0)
    }
}
