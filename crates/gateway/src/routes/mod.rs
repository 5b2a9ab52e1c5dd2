//! HTTP handlers, one file per surface.

pub mod chat;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod request_metrics;
pub mod responses;
pub mod usage_metrics;
