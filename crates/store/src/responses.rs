//! Responses API turns kept for `previous_response_id` and `GET /v1/responses/{id}`.

use crate::db::{Db as _, Sql};
use crate::{Store, StoreError};

/// One kept turn, as stored. `items` and `response` are JSON text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredResponse {
    pub id: String,
    /// The virtual key that made it; '' when the gateway has none.
    pub key_name: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub items: String,
    pub response: String,
}

impl Store {
    /// Keeps a turn; an id kept already is left as it is (ids are random, so a clash is a
    /// replay of the same turn).
    pub async fn save_response(&self, turn: &StoredResponse) -> Result<(), StoreError> {
        self.inner
            .pool
            .execute(
                Sql::new(
                    "INSERT INTO stored_responses (id, key_name, created_at, expires_at, items, response) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&turn.id)
                .bind(&turn.key_name)
                .bind(turn.created_at)
                .bind(turn.expires_at)
                .bind(&turn.items)
                .bind(&turn.response),
            )
            .await?;
        Ok(())
    }

    /// The turn `id` made with `key_name`, unless it expired before `now` (Unix seconds).
    pub async fn load_response(
        &self,
        id: &str,
        key_name: &str,
        now: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        Ok(self
            .inner
            .pool
            .fetch_optional(
                Sql::new(
                    "SELECT id, key_name, created_at, expires_at, items, response FROM stored_responses \
                     WHERE id = $1 AND key_name = $2 AND expires_at > $3",
                )
                .bind(id)
                .bind(key_name)
                .bind(now),
            )
            .await?)
    }

    /// Deletes the turns that expired before `now`; returns how many.
    pub async fn purge_responses(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .pool
            .execute(Sql::new("DELETE FROM stored_responses WHERE expires_at <= $1").bind(now))
            .await?)
    }
}
