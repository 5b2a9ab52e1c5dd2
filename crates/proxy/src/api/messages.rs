//! `POST /v1/messages`: Anthropic's Messages API. To an Anthropic provider the body goes as
//! sent (minus the gateway's fields); to any other it is translated to chat completions and
//! the answer back (`convert/messages_to_chat/`). Either way the record reads the chat form.

use http::HeaderMap;

use super::chat_completions::session_header;
use super::{ClientApi, Parsed};
use crate::convert::messages_to_chat;
use crate::error::ProxyError;
use crate::request::{ChatRequest, NativeBody};

pub(crate) fn parse(body: &[u8], headers: &HeaderMap) -> Result<Parsed, ProxyError> {
    let native = NativeBody::parse(body)?;
    let chat = messages_to_chat::request(body)?;
    let req = ChatRequest::parse(&chat, session_header(headers))?;
    Ok(Parsed {
        api: ClientApi::Messages,
        req,
        native: Some(native),
        responses: None,
    })
}
