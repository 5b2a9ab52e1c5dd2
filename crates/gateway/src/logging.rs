//! Process logging. Request and response bodies are never logged, at any level.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// `GATECAST_LOG` (or `RUST_LOG`) sets the filter; the default is `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("GATECAST_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
