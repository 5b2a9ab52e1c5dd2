//! Replica heartbeats: which gateway processes share this database and the config version
//! each has applied. Not configuration: nothing here moves the version or is audited.

use chrono::{DateTime, Utc};

use crate::db::{Db as _, Sql};
use crate::{ReplicaStatus, Store, StoreError};

/// A heartbeat; the applied version only moves forward, so a late write of an older reading
/// cannot hide a newer one.
const UPSERT_REPLICA: &str = "INSERT INTO replicas (id, applied_version, started_at, last_seen) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
     applied_version = CASE WHEN excluded.applied_version > replicas.applied_version \
     THEN excluded.applied_version ELSE replicas.applied_version END, \
     started_at = excluded.started_at, last_seen = excluded.last_seen";

#[derive(sqlx::FromRow)]
struct ReplicaRow {
    id: String,
    applied_version: i64,
    started_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

impl Store {
    /// Records that replica `id` (started at `started_at`) runs config version `applied`, now.
    /// Not a configuration change: the version does not move and nothing is audited.
    pub async fn record_replica(
        &self,
        id: &str,
        applied: i64,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner
            .pool
            .execute(
                Sql::new(UPSERT_REPLICA)
                    .bind(id)
                    .bind(applied)
                    .bind(started_at)
                    .bind(Utc::now()),
            )
            .await?;
        Ok(())
    }

    /// Every replica that has sent a heartbeat and not left, most recently seen first.
    pub async fn replicas(&self) -> Result<Vec<ReplicaStatus>, StoreError> {
        let rows: Vec<ReplicaRow> = self
            .inner
            .pool
            .fetch_all(Sql::new(
                "SELECT id, applied_version, started_at, last_seen FROM replicas",
            ))
            .await?;
        let mut out: Vec<ReplicaStatus> = rows
            .into_iter()
            .map(|r| ReplicaStatus {
                id: r.id,
                applied_version: r.applied_version,
                started_at: r.started_at,
                last_seen: r.last_seen,
            })
            .collect();
        // Sorted here rather than in SQL: SQLite keeps timestamps as text.
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Removes replica `id`'s heartbeat, when it stops.
    pub async fn forget_replica(&self, id: &str) -> Result<(), StoreError> {
        self.inner
            .pool
            .execute(Sql::new("DELETE FROM replicas WHERE id = $1").bind(id))
            .await?;
        Ok(())
    }

    /// Removes the heartbeats of replicas last seen before `cutoff` (those that crashed, or
    /// were killed), and returns how many.
    pub async fn forget_replicas_unseen_since(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let stale: Vec<String> = self
            .replicas()
            .await?
            .into_iter()
            .filter(|r| r.last_seen < cutoff)
            .map(|r| r.id)
            .collect();
        for id in &stale {
            self.forget_replica(id).await?;
        }
        Ok(stale.len())
    }
}
