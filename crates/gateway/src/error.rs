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
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

impl GatewayError {
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
