//! Start-up and configuration errors of the gateway binary.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error("store: {0}")]
    Store(#[from] gatecast_store::StoreError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// A command ran but did not succeed (a failed test, a missing name); already explained.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Admin(#[from] crate::admin::AdminError),
}

impl GatewayError {
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
