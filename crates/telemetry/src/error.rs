//! The crate's one error type, and the config error every crate's settings report in. Only
//! set-up and encoding can fail: publishing never does.

use std::path::PathBuf;

/// A setting that is wrong, named by its path; one type for provider and destination settings.
pub use crate::destinations::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A destination's settings cannot work; the message names the field.
    #[error("destination `{destination}`: {message}")]
    InvalidDestination {
        destination: String,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Pipelines are tasks: they need a tokio runtime to start in.
    #[error("telemetry pipelines must start inside a tokio runtime")]
    NoRuntime,
    #[error("encoding OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A batch refused as too large is decoded from its own body to be cut in two.
    #[error("decoding a batch to split it: {0}")]
    Decode(#[from] prost::DecodeError),
}
