//! `POST /v1/chat/completions`: OpenAI's chat API, the neutral form itself.

use http::HeaderMap;

use super::{ClientApi, Parsed};
use crate::error::ProxyError;
use crate::request::ChatRequest;

pub(crate) fn parse(body: &[u8], headers: &HeaderMap) -> Result<Parsed, ProxyError> {
    Ok(Parsed {
        api: ClientApi::ChatCompletions,
        req: ChatRequest::parse(body, session_header(headers))?,
        native: None,
        responses: None,
    })
}

/// `x-session-id`; the body's `session_id` wins.
pub(crate) fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(crate::proxy::SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
}
