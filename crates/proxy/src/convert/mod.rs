//! Converters between wire formats, one folder per pair: `{client API}_to_{provider wire}`.
//!
//! The gateway's neutral form is OpenAI chat completions. A pair converts the client's request
//! into the provider's wire, and the provider's answer (whole, streamed, or an error) back into
//! what the client's API expects.

pub mod adapt;
pub(crate) mod chat;
pub mod chat_to_messages;
pub mod messages_to_chat;
pub mod responses_as_chat;
pub mod responses_to_chat;

use bytes::BytesMut;

pub use chat::InvalidUpstream;

/// Turns a provider's stream into the client's, one event at a time, holding nothing back.
pub trait StreamConverter: Send + 'static {
    /// One complete SSE event as the provider sent it, blank line included. Appends zero or
    /// more complete events, in the client's format, to `out`.
    fn event(&mut self, event: &[u8], out: &mut BytesMut);
    /// The provider's stream ended cleanly; appends whatever the client's format still needs.
    /// Not called when the stream broke: the client then sees the break itself.
    fn end(&mut self, out: &mut BytesMut);
}
