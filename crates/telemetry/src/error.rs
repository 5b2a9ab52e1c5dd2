//! The crate's one error type, and the config error every crate's settings report in. Only
//! set-up and encoding can fail: publishing never does.

use std::path::PathBuf;

/// A setting that cannot work, named by its full path (`providers.up.api_key`,
/// `destinations[0].endpoint`), so that every config error says which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

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
