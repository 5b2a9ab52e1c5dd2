//! A deterministic mock LLM speaking OpenAI's chat-completions wire format, and beside it
//! Anthropic Messages ([`Mock::messages`]), Azure OpenAI's paths ([`Mock::azure_chat`]), the
//! Responses API ([`Mock::responses`]) and embeddings ([`Mock::embeddings`]); docs/mock.md.
//!
//! The same [`Mock`] responder serves the gateway's built-in `mock` provider in-process and the
//! `gatecast-mock` HTTP server, so offline runs and networked tests see identical bytes. The
//! request itself can inject faults (`#mock:error=429,retry_after=2` in the last user message,
//! or an `x-mock` header); see [`Directives`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod answer;
mod azure;
mod directives;
mod embeddings;
mod error_reply;
mod fail_counter;
mod messages;
#[cfg(feature = "otlp")]
pub mod otlp;
mod recorder;
mod reply;
mod request;
mod responder;
mod responses;
mod server;
mod sse;
mod stream_shape;
mod wire;

pub use directives::{DirectiveError, Directives, HEADER as DIRECTIVES_HEADER};
pub use embeddings::DEFAULT_DIMENSIONS as DEFAULT_EMBEDDING_DIMENSIONS;
pub use recorder::{redaction_marker, RecordedRequest};
pub use reply::{MockAbort, MockBody, MockReply};
pub use responder::Mock;
pub use server::{start, MockServer};

#[cfg(test)]
mod dialect_fuzz_tests;
#[cfg(test)]
mod responder_tests;
