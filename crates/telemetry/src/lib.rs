//! Turns served exchanges into GenAI traces and delivers them to destinations.
//!
//! This crate owns no HTTP server. The proxy hands it finished [`GenerationRecord`]s; a
//! [`Broadcaster`] maps each to spans once and fans them out to one pipeline per destination.
//! There is no global tracer provider: every destination owns its queue, batching and retries.

pub mod background;
mod content;
mod generation;

pub mod broadcaster;
pub mod destination;
pub mod error;
pub mod filter;
pub mod flavor;
pub mod ids;
mod json_string;
pub mod limits;
pub mod metadata;
pub mod model;
pub mod otlp;
mod otlp_body;
pub mod pace;
pub mod pipeline;
pub mod privacy;
pub mod probe;
pub mod record;
pub mod retry;
pub mod sampling;
pub mod spans;
pub mod spool;
pub mod stats;
mod worker;

pub use broadcaster::{BroadcastConfig, Broadcaster, ReconfigureSummary};
pub use destination::DestinationConfig;
pub use error::{FieldError, TelemetryError};
pub use probe::{send_test_trace, test_connection, ProbeAttempt, ProbeReport};
pub use record::GenerationRecord;
