//! Turns served exchanges into GenAI traces and delivers them to destinations.
//!
//! This crate owns no HTTP server. The proxy hands it finished [`GenerationRecord`]s; a
//! [`Broadcaster`] maps each to spans once and fans them out to one pipeline per destination.
//! There is no global tracer provider: every destination owns its queue, batching and retries.

mod deliver;
mod encode;
mod span;

pub mod cost;
pub mod destinations;
pub mod error;
pub mod filter;
pub mod ids;
pub mod metadata;
pub mod probe;
pub mod record;
pub mod sampling;

// The public paths from before the crate was laid out in `span/`, `encode/` and `deliver/`.
pub use deliver::{background, broadcaster, pace, pipeline, retry, spool, stats};
pub use encode::otlp;
pub use span::{build as spans, flavor, limits, model, privacy};

pub use broadcaster::{BroadcastConfig, Broadcaster, ReconfigureSummary};
pub use destinations::DestinationConfig;
pub use error::{FieldError, TelemetryError};
pub use probe::{send_test_trace, test_connection, ProbeAttempt, ProbeReport};
pub use record::GenerationRecord;
