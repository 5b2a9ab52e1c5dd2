//! Forwarding OpenAI-compatible chat requests to providers, and capturing each exchange.
//!
//! This crate knows nothing about destinations: a finished [`GenerationRecord`] goes to a
//! [`RecordSink`], which must never block.
//!
//! [`GenerationRecord`]: gatecast_telemetry::GenerationRecord

pub mod api;
pub mod body;
mod capture;
pub mod config;
pub mod convert;
pub mod dialects;
pub mod error;
mod exchange;
pub mod providers;
pub mod proxy;
pub mod request;
mod retry;
pub mod routing;
pub mod stream;
pub mod trace_headers;
pub mod transport;

pub use body::ProxyBody;
pub use config::{ModelAlias, ProviderConfig, ProviderKind};
pub use error::ProxyError;
pub use exchange::{NullSink, RecordSink};
pub use proxy::{Incoming, Proxy, Settings};
pub use routing::{Router, RoutingError};
