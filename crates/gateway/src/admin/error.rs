//! Admin API errors, rendered once: OpenAI's error object, with the field at fault as its
//! `param` and, for a failed connection test, the test's report beside it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatecast_proxy::error::{ApiError, ErrorType, OpenAiError};
use gatecast_store::StoreError;
use gatecast_telemetry::probe::ProbeReport;
use serde::Serialize;
use serde_json::Value;

use crate::control::bridge::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("missing or wrong admin token: send `Authorization: Bearer $GATECAST_ADMIN_TOKEN`")]
    Unauthorized,
    #[error("invalid request body: {0}")]
    BadBody(String),
    #[error("{0}")]
    Field(FieldError),
    #[error("the connection test failed: {}", .0.message)]
    TestFailed(Box<ProbeReport>),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{what} `{name}` not found")]
    NotFound { what: &'static str, name: String },
    #[error("saved, but this replica could not apply it yet: {0}")]
    Apply(String),
    #[error("unknown admin route")]
    NoRoute,
    #[error("this admin route does not take this method: the `Allow` header lists those it takes")]
    MethodNotAllowed,
}

/// The admin API's error body.
#[derive(Serialize)]
struct Body<'a> {
    error: OpenAiError<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<Value>,
}

impl AdminError {
    fn status_and_type(&self) -> (StatusCode, ErrorType) {
        match self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorType::Authentication),
            AdminError::BadBody(_) => (StatusCode::BAD_REQUEST, ErrorType::InvalidRequest),
            AdminError::Field(_) | AdminError::TestFailed(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorType::InvalidRequest)
            }
            AdminError::NotFound { .. } | AdminError::NoRoute => {
                (StatusCode::NOT_FOUND, ErrorType::NotFound)
            }
            AdminError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorType::InvalidRequest)
            }
            AdminError::Apply(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorType::Api),
            AdminError::Store(e) => match e {
                StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, ErrorType::NotFound),
                StoreError::AlreadyExists { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::NotOverridable { .. }
                | StoreError::NameClash { .. } => (StatusCode::CONFLICT, ErrorType::Conflict),
                StoreError::Invalid { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, ErrorType::InvalidRequest)
                }
                _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorType::Api),
            },
        }
    }

    pub fn into_response_inner(self) -> Response {
        let (status, kind) = self.status_and_type();
        let message = match &self {
            // Database errors can carry connection details: log them, answer generically.
            AdminError::Store(e) if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, "admin request failed in the store");
                "internal store error; see the gateway's log".to_owned()
            }
            other => other.to_string(),
        };
        let mut error = ApiError::new(status, kind, message);
        error.param = match &self {
            AdminError::Field(f) => Some(f.path.clone().into()),
            AdminError::Store(StoreError::Invalid { field, .. }) => Some(field.clone().into()),
            _ => None,
        };
        let test = match &self {
            // A map, as before: its keys come out sorted.
            AdminError::TestFailed(report) => serde_json::to_value(report).ok(),
            _ => None,
        };
        let body = Body {
            error: OpenAiError::from(&error),
            test,
        };
        (status, axum::Json(body)).into_response()
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.into_response_inner()
    }
}

pub async fn not_found() -> AdminError {
    AdminError::NoRoute
}

pub async fn method_not_allowed() -> AdminError {
    AdminError::MethodNotAllowed
}
