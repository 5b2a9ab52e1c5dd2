//! `POST /v1/responses`: OpenAI's Responses API, bridged onto chat completions for every
//! provider (`convert/responses_to_chat/`).
//!
//! The gateway keeps each turn's conversation items (through a [`ResponseStore`]: the store
//! every replica shares, bounded in time and size), so `previous_response_id` works on any
//! replica; `GET /v1/responses/{id}` answers with what was kept.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::future::BoxFuture;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::chat_completions::session_header;
use super::{ClientApi, Parsed};
use crate::convert::responses_to_chat::{self, ChatToResponsesStream, Turn};
use crate::convert::StreamConverter;
use crate::error::ProxyError;
use crate::request::ChatRequest;

/// One kept turn: what a follow-up needs (every item of the conversation so far) and what
/// `GET /v1/responses/{id}` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTurn {
    pub id: String,
    /// The virtual key that created it: only the same key may read it or continue from it.
    pub key: Option<String>,
    pub created_at: u64,
    /// The conversation's items through this turn: earlier turns', this turn's input, its
    /// output.
    pub items: Vec<Value>,
    /// The `response` object as the client received it.
    pub response: Value,
}

/// Where turns are kept. `save` must never block: it is called as an answer ends.
pub trait ResponseStore: Send + Sync + 'static {
    fn load(
        &self,
        id: String,
        key: Option<String>,
    ) -> BoxFuture<'static, Result<Option<StoredTurn>, String>>;
    fn save(&self, turn: StoredTurn);
}

/// What the answer of a bridged turn needs to be written and kept.
#[derive(Clone)]
pub(crate) struct ResponsesTurn {
    pub turn: Turn,
    /// The conversation's items before this turn's output.
    pub items: Vec<Value>,
    /// `store: false` keeps nothing.
    pub store: bool,
    pub key: Option<String>,
}

pub(crate) async fn parse(
    body: &[u8],
    headers: &HeaderMap,
    store: Option<&dyn ResponseStore>,
    key: Option<&str>,
) -> Result<Parsed, ProxyError> {
    #[derive(Deserialize)]
    struct Head {
        previous_response_id: Option<String>,
        store: Option<bool>,
    }
    let head: Head = serde_json::from_slice(body).map_err(|e| ProxyError::InvalidRequest {
        message: format!("invalid JSON body: {e}"),
        param: None,
    })?;
    let history = match head.previous_response_id.filter(|id| !id.is_empty()) {
        None => Vec::new(),
        Some(id) => {
            let not_found = || ProxyError::InvalidRequest {
                message: format!("Previous response with id '{id}' not found."),
                param: Some("previous_response_id".into()),
            };
            let store = store.ok_or_else(not_found)?;
            match store.load(id.clone(), key.map(str::to_owned)).await {
                Ok(Some(turn)) => turn.items,
                Ok(None) => return Err(not_found()),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a stored response");
                    return Err(ProxyError::Unavailable {
                        message: "the stored responses cannot be read right now".into(),
                    });
                }
            }
        }
    };
    let converted = responses_to_chat::request(body, &history)?;
    let req = ChatRequest::parse(&converted.chat_body, session_header(headers))?;
    let mut items = history;
    items.extend(converted.input_items);
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Parsed {
        api: ClientApi::Responses,
        req,
        native: None,
        responses: Some(ResponsesTurn {
            turn: Turn {
                id: new_id(),
                created_at,
                echo: converted.echo,
            },
            items,
            store: head.store.unwrap_or(true),
            key: key.map(str::to_owned),
        }),
    })
}

/// `resp_` and 48 random hex digits, as OpenAI's ids look.
fn new_id() -> String {
    let bytes: [u8; 24] = rand::random();
    let mut id = String::with_capacity(53);
    id.push_str("resp_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

impl ResponsesTurn {
    /// Keeps the turn once its output is known.
    fn keep(self, store: &dyn ResponseStore, output: &[Value], response: Value) {
        if !self.store {
            return;
        }
        let mut items = self.items;
        items.extend(output.iter().cloned());
        store.save(StoredTurn {
            id: self.turn.id,
            key: self.key,
            created_at: self.turn.created_at,
            items,
            response,
        });
    }

    /// The whole answer, written as a `response` and kept.
    pub(crate) fn whole(
        self,
        chat: &[u8],
        store: Option<std::sync::Arc<dyn ResponseStore>>,
    ) -> Result<Vec<u8>, String> {
        let output = responses_to_chat::response(chat, &self.turn).map_err(|e| e.0)?;
        if let Some(store) = store {
            let response = serde_json::from_slice(&output.body).unwrap_or(Value::Null);
            self.keep(store.as_ref(), &output.output_items, response);
        }
        Ok(output.body)
    }

    /// The stream converter, which keeps the turn when the stream ends cleanly.
    pub(crate) fn stream(self, store: Option<std::sync::Arc<dyn ResponseStore>>) -> KeepingStream {
        KeepingStream {
            inner: ChatToResponsesStream::new(self.turn.clone()),
            keep: store.map(|s| (self, s)),
        }
    }
}

/// [`ChatToResponsesStream`], keeping its turn at the end.
pub(crate) struct KeepingStream {
    inner: ChatToResponsesStream,
    keep: Option<(ResponsesTurn, std::sync::Arc<dyn ResponseStore>)>,
}

impl StreamConverter for KeepingStream {
    fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        self.inner.event(event, out);
    }

    fn end(&mut self, out: &mut BytesMut) {
        self.inner.end(out);
        if let Some((turn, store)) = self.keep.take() {
            let response = self.inner.final_response().cloned().unwrap_or(Value::Null);
            turn.keep(store.as_ref(), self.inner.output_items(), response);
        }
    }
}
