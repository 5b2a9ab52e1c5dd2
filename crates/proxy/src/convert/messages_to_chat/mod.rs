//! An Anthropic Messages client served by a chat-completions provider: the request, the whole
//! answer, the stream, errors, and a token-count estimate for `/v1/messages/count_tokens`.

pub mod count_tokens;
pub mod error;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use count_tokens::count_tokens;
pub use request::request;
pub use response::response;
pub use stream::ChatToMessagesStream;

use crate::error::ProxyError;

/// A 400 naming the request field at fault (`messages.2.content.0.type`).
pub(crate) fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}
