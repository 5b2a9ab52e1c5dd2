//! Turns served exchanges into GenAI traces and delivers them to destinations.
//!
//! This crate owns no HTTP server. The proxy hands it finished [`GenerationRecord`]s.

pub mod ids;
pub mod metadata;
pub mod record;

pub use record::GenerationRecord;
