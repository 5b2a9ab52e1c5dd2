//! Change feed: lets every replica notice config changes made by any other one.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::db::{Pool, NOTIFY_CHANNEL};
use crate::Store;

/// Default poll interval: changes show up within about a second even without LISTEN/NOTIFY.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Floor for the poll interval, so a zero passed by mistake cannot turn into a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Log a persistent failure on its first attempt, then again only every this many attempts.
const LOG_EVERY: u32 = 60;

impl Store {
    /// A receiver of the config version that changes whenever any writer, in this process or
    /// another replica, commits a change. A background task polls the version every
    /// `interval` and wakes early on local writes and, on Postgres, on `NOTIFY
    /// gatecast_config`. The task ends when every receiver is dropped or the store is closed.
    ///
    /// Must be called inside a Tokio runtime; outside one it logs an error and the receiver
    /// never changes.
    pub fn watch(&self, interval: Duration) -> watch::Receiver<i64> {
        let interval = interval.max(MIN_INTERVAL);
        let (tx, rx) = watch::channel(*self.inner.local.borrow());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.clone().watch_loop(tx, interval));
            }
            Err(_) => {
                tracing::error!("Store::watch called outside a Tokio runtime: config changes from other replicas will not be seen");
            }
        }
        rx
    }

    async fn watch_loop(self, tx: watch::Sender<i64>, interval: Duration) {
        let wake = Arc::new(Notify::new());
        let _listener = match &self.inner.pool {
            Pool::Postgres(pool) => Some(AbortOnDrop(tokio::spawn(listen(
                pool.clone(),
                Arc::clone(&wake),
                interval,
            )))),
            Pool::Sqlite(_) => None,
        };
        let mut local = self.inner.local.subscribe();
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
                changed = local.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            if self.is_closed() {
                break;
            }
            match self.config_version().await {
                Ok(version) => {
                    if failures > 0 {
                        tracing::info!(failures, "reading the config version works again");
                    }
                    failures = 0;
                    tx.send_if_modified(|current| {
                        if *current != version {
                            *current = version;
                            true
                        } else {
                            false
                        }
                    });
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures % LOG_EVERY == 1 {
                        tracing::error!(error = %e, failures, "cannot read the config version; retrying");
                    }
                }
            }
        }
    }
}

/// Keeps a LISTEN connection open and turns each notification into a wake-up. Runs in its own
/// task because `PgListener::recv` is not documented as cancel-safe, so it must never be
/// dropped half-way through inside a `select!`.
async fn listen(pool: PgPool, wake: Arc<Notify>, interval: Duration) {
    let retry = interval.clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut failures: u32 = 0;
    loop {
        if pool.is_closed() {
            return;
        }
        let outcome: Result<std::convert::Infallible, sqlx::Error> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            // Anything committed while we were not listening is caught by this extra poll.
            wake.notify_one();
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        }
        .await;
        let Err(e) = outcome;
        if matches!(e, sqlx::Error::PoolClosed) {
            return;
        }
        failures = failures.saturating_add(1);
        if failures % LOG_EVERY == 1 {
            tracing::warn!(error = %e, "LISTEN {NOTIFY_CHANNEL} failed; relying on polling until it reconnects");
        }
        tokio::time::sleep(retry).await;
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
