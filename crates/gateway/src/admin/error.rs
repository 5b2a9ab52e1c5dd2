//! Admin API errors, rendered once in the gateway's OpenAI error shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatecast_store::StoreError;
use gatecast_telemetry::probe::ProbeReport;
use serde_json::json;

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
}

impl AdminError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "authentication_error"),
            AdminError::BadBody(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            AdminError::Field(_) | AdminError::TestFailed(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error")
            }
            AdminError::NotFound { .. } | AdminError::NoRoute => {
                (StatusCode::NOT_FOUND, "not_found_error")
            }
            AdminError::Apply(_) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            AdminError::Store(e) => match e {
                StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found_error"),
                StoreError::AlreadyExists { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::NotOverridable { .. }
                | StoreError::NameClash { .. } => (StatusCode::CONFLICT, "conflict_error"),
                StoreError::Invalid { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error")
                }
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
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
        let param = match &self {
            AdminError::Field(f) => json!(f.path),
            AdminError::Store(StoreError::Invalid { field, .. }) => json!(field),
            _ => json!(null),
        };
        let mut body =
            json!({"error": {"message": message, "type": kind, "param": param, "code": null}});
        if let AdminError::TestFailed(report) = &self {
            body["test"] = json!(report);
        }
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
