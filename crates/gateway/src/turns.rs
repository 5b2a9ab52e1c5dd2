//! Where the proxy keeps Responses turns: a bounded map of this replica's latest turns in
//! front of the store every replica shares.
//!
//! A client may send its follow-up the moment a stream ends, before the write of the turn
//! has landed; the map answers that from memory, and the store answers every other replica
//! and every turn the map has let go. Writes happen on a background task through a bounded
//! queue: keeping a turn never waits on the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use gatecast_proxy::api::responses::{ResponseStore, StoredTurn};
use gatecast_store::{Store, StoredResponse};
use serde::Deserialize;
use tokio::sync::mpsc;

/// `[responses]`: how Responses turns are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// How long a turn can be continued from (`previous_response_id`) or read back.
    #[serde(default = "defaults::ttl_s")]
    pub store_ttl_s: u64,
    /// A turn whose conversation is larger than this is not kept (a follow-up then gets a
    /// 400 naming its id), so no client can fill the store with one conversation.
    #[serde(default = "defaults::max_bytes")]
    pub max_stored_bytes: usize,
    /// Latest turns this replica remembers without the store.
    #[serde(default = "defaults::recent")]
    pub recent_turns: usize,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            store_ttl_s: defaults::ttl_s(),
            max_stored_bytes: defaults::max_bytes(),
            recent_turns: defaults::recent(),
        }
    }
}

mod defaults {
    pub fn ttl_s() -> u64 {
        7 * 24 * 3600
    }
    pub fn max_bytes() -> usize {
        4 << 20
    }
    pub fn recent() -> usize {
        1024
    }
}

/// Turns waiting for their write; past it a turn is kept in memory only, and counted.
const WRITE_QUEUE: usize = 1024;

pub struct Turns {
    store: Store,
    config: ResponsesConfig,
    recent: Mutex<Recent>,
    writes: mpsc::Sender<StoredResponse>,
}

#[derive(Default)]
struct Recent {
    turns: HashMap<String, StoredTurn>,
    order: VecDeque<String>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Turns {
    /// Starts the writer and the purge of expired turns on the current runtime.
    pub fn start(store: Store, config: ResponsesConfig) -> Arc<Self> {
        let (writes, mut queue) = mpsc::channel::<StoredResponse>(WRITE_QUEUE);
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(turn) = queue.recv().await {
                if let Err(e) = writer.save_response(&turn).await {
                    metrics::counter!("gatecast_responses_store_errors_total").increment(1);
                    tracing::warn!(error = %e, "could not keep a Responses turn");
                }
            }
        });
        let purger = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                if let Err(e) = purger.purge_responses(now()).await {
                    tracing::warn!(error = %e, "could not delete expired Responses turns");
                }
            }
        });
        Arc::new(Self {
            store,
            config,
            recent: Mutex::new(Recent::default()),
            writes,
        })
    }

    fn remember(&self, turn: StoredTurn) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        let id = turn.id.clone();
        if recent.turns.insert(id.clone(), turn).is_none() {
            recent.order.push_back(id);
        }
        while recent.order.len() > self.config.recent_turns {
            if let Some(old) = recent.order.pop_front() {
                recent.turns.remove(&old);
            }
        }
    }

    fn recalled(&self, id: &str, key: &str) -> Option<StoredTurn> {
        let recent = self.recent.lock().ok()?;
        let turn = recent.turns.get(id)?;
        let expired = turn.created_at as i64 + self.config.store_ttl_s as i64 <= now();
        (turn.key.as_deref().unwrap_or_default() == key && !expired).then(|| turn.clone())
    }
}

impl ResponseStore for Turns {
    fn load(
        &self,
        id: String,
        key: Option<String>,
    ) -> BoxFuture<'static, Result<Option<StoredTurn>, String>> {
        let key = key.unwrap_or_default();
        if let Some(turn) = self.recalled(&id, &key) {
            return async move { Ok(Some(turn)) }.boxed();
        }
        let store = self.store.clone();
        async move {
            let Some(row) = store
                .load_response(&id, &key, now())
                .await
                .map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            let items = serde_json::from_str(&row.items).map_err(|e| e.to_string())?;
            let response = serde_json::from_str(&row.response).map_err(|e| e.to_string())?;
            Ok(Some(StoredTurn {
                id: row.id,
                key: (!row.key_name.is_empty()).then_some(row.key_name),
                created_at: u64::try_from(row.created_at).unwrap_or(0),
                items,
                response,
            }))
        }
        .boxed()
    }

    fn save(&self, turn: StoredTurn) {
        let items = serde_json::to_string(&turn.items).unwrap_or_default();
        let response = serde_json::to_string(&turn.response).unwrap_or_default();
        if items.len() + response.len() > self.config.max_stored_bytes {
            metrics::counter!("gatecast_responses_not_stored_total", "reason" => "too_large")
                .increment(1);
            return;
        }
        let created_at = i64::try_from(turn.created_at).unwrap_or(i64::MAX);
        let row = StoredResponse {
            id: turn.id.clone(),
            key_name: turn.key.clone().unwrap_or_default(),
            created_at,
            expires_at: created_at.saturating_add(self.config.store_ttl_s as i64),
            items,
            response,
        };
        self.remember(turn);
        if self.writes.try_send(row).is_err() {
            metrics::counter!("gatecast_responses_not_stored_total", "reason" => "queue_full")
                .increment(1);
        }
    }
}
