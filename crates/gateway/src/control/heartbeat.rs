//! Heartbeats: every replica records in the store which config version it has applied, so a
//! writer (the CLI) can say when a change has reached the running gateways.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gatecast_store::{ReplicaStatus, Store, StoreError};

/// How often a replica says it is alive, besides right after each config version it applies.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A replica not heard from for this long counts as stopped (killed, crashed, cut off).
pub const LIVE_WINDOW: Duration = Duration::from_secs(15);

/// Heartbeats this old are deleted when a replica starts, so dead replicas do not pile up.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Log a persistent failure on its first attempt, then again only every this many attempts.
const LOG_EVERY: u32 = 60;

/// This replica's heartbeat row.
pub struct Heartbeat {
    id: String,
    started_at: DateTime<Utc>,
    stopped: AtomicBool,
    failures: AtomicU32,
}

impl Heartbeat {
    pub fn new() -> Self {
        Self {
            id: replica_id(),
            started_at: Utc::now(),
            stopped: AtomicBool::new(false),
            failures: AtomicU32::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records that this replica runs `applied`. A failure is logged, never returned: a
    /// heartbeat only informs the CLI, and must not stop a reload.
    pub async fn beat(&self, store: &Store, applied: i64) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        match store
            .record_replica(&self.id, applied, self.started_at)
            .await
        {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed);
                if failures.is_multiple_of(LOG_EVERY) {
                    tracing::warn!(error = %e, replica = %self.id, "cannot record this replica's heartbeat; the CLI will not count it as running");
                }
            }
        }
    }

    /// Deletes heartbeats of replicas long gone.
    pub async fn forget_the_dead(&self, store: &Store) {
        let Ok(after) = chrono::TimeDelta::from_std(FORGET_AFTER) else {
            return;
        };
        match store.forget_replicas_unseen_since(Utc::now() - after).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "forgot the heartbeats of replicas gone for a day"),
            Err(e) => tracing::debug!(error = %e, "cannot prune old replica heartbeats"),
        }
    }

    /// On shutdown: stops beating and removes this replica's row, so writers stop waiting for
    /// it. Bounded, as shutdown has a deadline.
    pub async fn leave(&self, store: &Store) {
        self.stopped.store(true, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(2), store.forget_replica(&self.id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove this replica's heartbeat"),
            Err(_) => tracing::warn!("removing this replica's heartbeat timed out"),
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// `host/pid`, with a counter when one process runs several gateways (tests do): readable in
/// the CLI's report, and unique among live replicas as long as hostnames are (as in
/// Kubernetes and compose, where every container is pid 1).
fn replica_id() -> String {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let pid = std::process::id();
    match STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}/{pid}"),
        n => format!("{host}/{pid}/{n}"),
    }
}

/// How far a config version has reached across the running gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Replicas seen within [`LIVE_WINDOW`] that run the version or a later one.
    pub applied: Vec<ReplicaStatus>,
    /// Replicas seen within [`LIVE_WINDOW`] still on an older one.
    pub behind: Vec<ReplicaStatus>,
}

impl Reach {
    pub fn live(&self) -> usize {
        self.applied.len() + self.behind.len()
    }

    /// What the CLI prints.
    pub fn describe(&self) -> String {
        let window = LIVE_WINDOW.as_secs();
        match (self.applied.len(), self.behind.len()) {
            (0, 0) => format!(
                "saved; no running gateway has applied it yet (none seen in the last {window}s)"
            ),
            (n, 0) => format!("applied by {n} running gateway(s)"),
            (n, _) => {
                let waiting: Vec<String> = self
                    .behind
                    .iter()
                    .map(|r| format!("{} (at version {})", r.id, r.applied_version))
                    .collect();
                format!(
                    "saved; applied by {n} of {} running gateway(s) so far, not yet by {}",
                    self.live(),
                    waiting.join(", ")
                )
            }
        }
    }
}

/// Where `version` stands now.
pub async fn reach(store: &Store, version: i64) -> Result<Reach, StoreError> {
    let now = Utc::now();
    let window = chrono::TimeDelta::from_std(LIVE_WINDOW).unwrap_or(chrono::TimeDelta::MAX);
    let (applied, behind) = store
        .replicas()
        .await?
        .into_iter()
        .filter(|r| now.signed_duration_since(r.last_seen) <= window)
        .partition(|r| r.applied_version >= version);
    Ok(Reach { applied, behind })
}

/// Waits until every live replica runs `version`, or `bound` passes, and says where it
/// stands then. With no live replica there is nothing to wait for.
pub async fn wait_until_applied(
    store: &Store,
    version: i64,
    bound: Duration,
) -> Result<Reach, StoreError> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let reach = reach(store, version).await?;
        if reach.behind.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(reach);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: &str, applied_version: i64) -> ReplicaStatus {
        ReplicaStatus {
            id: id.into(),
            applied_version,
            started_at: Utc::now(),
            last_seen: Utc::now(),
        }
    }

    #[test]
    fn the_report_names_who_is_behind() {
        let none = Reach {
            applied: vec![],
            behind: vec![],
        };
        assert_eq!(
            none.describe(),
            "saved; no running gateway has applied it yet (none seen in the last 15s)"
        );
        let all = Reach {
            applied: vec![replica("a/1", 5), replica("b/1", 6)],
            behind: vec![],
        };
        assert_eq!(all.describe(), "applied by 2 running gateway(s)");
        let some = Reach {
            applied: vec![replica("a/1", 5)],
            behind: vec![replica("b/1", 4)],
        };
        assert_eq!(
            some.describe(),
            "saved; applied by 1 of 2 running gateway(s) so far, not yet by b/1 (at version 4)"
        );
    }

    #[test]
    fn replica_ids_are_unique_in_a_process() {
        assert_ne!(replica_id(), replica_id());
    }
}
