//! The audit log, read side. Every configuration change writes its entry in the same
//! transaction as the change itself (`Tx::audit`, in `db`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{Db as _, Sql};
use crate::{AuditEntry, Store, StoreError};

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    detail: Json<Value>,
}

impl Store {
    /// The newest `limit` audit entries (at most 10 000), newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = limit.clamp(0, 10_000);
        let rows: Vec<AuditRow> = self
            .inner
            .pool
            .fetch_all(
                Sql::new(
                    "SELECT id, at, actor, action, target, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(limit),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                target: r.target,
                detail: r.detail.0,
            })
            .collect())
    }
}
