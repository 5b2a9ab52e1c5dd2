//! Span models to export bodies: OTLP protobuf and OTLP/JSON.

pub(crate) mod json_string;
pub mod otlp;
mod protobuf;
