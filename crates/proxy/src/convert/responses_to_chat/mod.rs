//! An OpenAI Responses client served by a chat-completions provider: the request (with the
//! stored items of `previous_response_id` before it), the whole answer and the stream, each
//! also giving the items the gateway stores for the next turn.
//!
//! Errors need no converter: Responses clients read OpenAI's error shape, which is the chat
//! provider's own.

pub mod request;
pub mod response;
pub mod stream;

pub use request::{request, Converted, Echo};
pub use response::{response, Output, Turn};
pub use stream::ChatToResponsesStream;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use crate::error::ProxyError;

/// A 400 naming the request field at fault (`input.3.content.0.type`).
pub(crate) fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}
