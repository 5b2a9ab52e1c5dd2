//! The pure record → spans mapping: the span model, building a record's spans, and what a
//! destination may change in them (privacy, attribute limits, the Sentry flavor).

pub mod build;
mod content;
pub mod flavor;
mod generation;
pub mod limits;
pub mod model;
pub mod privacy;
