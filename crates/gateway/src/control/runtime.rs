//! The replica's view of the store: destinations and keys loaded at start, and reloaded
//! whenever the config version moves (a local write, another replica, or the CLI); each
//! version applied is reported back through the heartbeat.

use std::sync::Arc;
use std::time::Duration;

use gatecast_store::{SecretKey, Source, Store};
use gatecast_telemetry::{Broadcaster, DestinationConfig};
use tokio::sync::Mutex;

use super::bridge;
use super::guard::Guard;
use super::heartbeat::{Heartbeat, HEARTBEAT_INTERVAL};
use super::keys::KeyRing;
use crate::config::{Config, StoreConfig};
use crate::error::GatewayError;

/// Opens the store with the secret key from `GATECAST_SECRET_KEY` or the data directory,
/// creating the database on first start.
pub async fn open_store(config: &StoreConfig, migrate: bool) -> Result<Store, GatewayError> {
    let secret = SecretKey::from_env_or_file(&config.data_dir())?;
    Ok(Store::connect(&config.url, secret, migrate).await?)
}

/// Opens a store that must already exist: a missing SQLite file fails before anything (the
/// secret key file included) is created, with [`StoreError::NoDatabase`].
///
/// [`StoreError::NoDatabase`]: gatecast_store::StoreError::NoDatabase
pub async fn open_existing_store(
    config: &StoreConfig,
    migrate: bool,
) -> Result<Store, GatewayError> {
    if let Some(file) = config.sqlite_file().filter(|f| !f.exists()) {
        return Err(gatecast_store::StoreError::NoDatabase {
            location: file.display().to_string(),
        }
        .into());
    }
    let secret = SecretKey::from_env_or_file(&config.data_dir())?;
    Ok(Store::connect_existing(&config.url, secret, migrate).await?)
}

pub struct Control {
    pub store: Store,
    pub broadcaster: Broadcaster,
    pub keys: KeyRing,
    /// What destinations may reach (`[security]`).
    pub guard: Guard,
    /// The config version this replica runs. Held across a reload, so reloads run one at a
    /// time and an older read never overwrites a newer one.
    applied: Mutex<i64>,
    /// Tells the store which version that is, for the CLI to report.
    heartbeat: Heartbeat,
}

impl Control {
    /// Syncs the config file's destinations into the store, then loads what the store holds.
    /// Must run inside a tokio runtime: destination pipelines start here.
    pub async fn start(config: &Config) -> Result<Self, GatewayError> {
        let guard = Guard::from_config(config)?;
        let store = open_store(&config.store, config.store.run_migrations).await?;
        let declared = config
            .destinations
            .iter()
            .map(|d| bridge::to_record(d, Source::File))
            .collect();
        let summary = store.sync_file_destinations(declared).await?;
        if !summary.is_empty() {
            tracing::info!(created = ?summary.created, updated = ?summary.updated, removed = ?summary.removed, "config file destinations synced to the store");
        }
        // Read before the rows: a write in between is then applied again at the next change.
        let version = store.config_version().await?;
        let records = store.list_destinations().await?;
        for r in records.iter().filter(|r| !r.overrides.is_empty()) {
            // Else an operator who edits the file sees no effect and no reason.
            tracing::info!(destination = %r.name, overrides = ?r.overrides, file_privacy_mode = r.privacy_mode, file_enabled = r.enabled,
                "runtime overrides win over the config file for this destination; `gatecast destinations reset NAME` clears them");
        }
        let destinations = configs_of(&records);
        // Started through `reconfigure`, so one destination that cannot start (a file it
        // cannot open) is reported in its stats and logs instead of keeping the gateway down.
        let broadcaster = Broadcaster::with_host_policy(
            gatecast_telemetry::BroadcastConfig {
                service_name: config.telemetry.service_name.clone(),
                destinations: Vec::new(),
            },
            guard.connect_policy(),
        )
        .map_err(|e| GatewayError::Telemetry(e.to_string()))?;
        broadcaster
            .reconfigure(&destinations)
            .await
            .map_err(|e| GatewayError::Telemetry(e.to_string()))?;
        let keys = KeyRing::new(config.auth.require_key);
        load_keys(&store, &keys).await?;
        tracing::info!(
            store = store.backend(),
            destinations = broadcaster.destinations().len(),
            virtual_keys = keys.active_count(),
            "runtime config loaded"
        );
        let heartbeat = Heartbeat::new();
        heartbeat.forget_the_dead(&store).await;
        heartbeat.beat(&store, version).await;
        Ok(Self {
            store,
            broadcaster,
            keys,
            guard,
            applied: Mutex::new(version),
            heartbeat,
        })
    }

    /// Re-reads destinations and keys and swaps them in, unless this replica already runs the
    /// store's current version (a write here is applied by its handler, then seen again by
    /// the watcher). On error the previous set stays and the next change retries.
    pub async fn reload(&self) -> Result<(), GatewayError> {
        let mut applied = self.applied.lock().await;
        let version = self.store.config_version().await?;
        if version == *applied {
            return Ok(());
        }
        let destinations = load_destinations(&self.store).await?;
        load_keys(&self.store, &self.keys).await?;
        let summary = self
            .broadcaster
            .reconfigure(&destinations)
            .await
            .map_err(|e| GatewayError::Telemetry(e.to_string()))?;
        if !summary.is_empty() {
            tracing::info!(added = ?summary.added, restarted = ?summary.restarted, updated = ?summary.updated, removed = ?summary.removed, "destinations reloaded");
        }
        *applied = version;
        self.heartbeat.beat(&self.store, version).await;
        Ok(())
    }

    /// At shutdown: this replica stops counting as running for writers waiting on it.
    pub async fn leave(&self) {
        self.heartbeat.leave(&self.store).await;
    }

    /// Follows the config version until the process ends: a poll every `interval`, plus
    /// NOTIFY on Postgres. Also beats every [`HEARTBEAT_INTERVAL`], so writers see this
    /// replica as running.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) {
        let mut versions = self.store.watch(interval);
        let control = Arc::downgrade(self);
        tokio::spawn(async move {
            while versions.changed().await.is_ok() {
                let Some(control) = control.upgrade() else {
                    break;
                };
                let version = *versions.borrow_and_update();
                match control.reload().await {
                    Ok(()) => tracing::debug!(version, "applied config version"),
                    Err(e) => {
                        tracing::error!(version, error = %e, "cannot apply the new config version; keeping the previous one")
                    }
                }
            }
        });
        let control = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate, and `start` has just beaten.
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(control) = control.upgrade() else {
                    break;
                };
                let applied = *control.applied.lock().await;
                control.heartbeat.beat(&control.store, applied).await;
            }
        });
    }
}

async fn load_keys(store: &Store, ring: &KeyRing) -> Result<(), GatewayError> {
    let active = store.active_key_hashes().await?;
    let any_created = !active.is_empty() || !store.list_keys().await?.is_empty();
    ring.replace(active, any_created);
    Ok(())
}

/// Every stored destination as a config. A row that no longer parses (written by a newer
/// version, say) is skipped with an error rather than taking every destination down.
async fn load_destinations(store: &Store) -> Result<Vec<DestinationConfig>, GatewayError> {
    Ok(configs_of(&store.list_destinations().await?))
}

fn configs_of(records: &[gatecast_store::DestinationRecord]) -> Vec<DestinationConfig> {
    records
        .iter()
        .filter_map(|r| match bridge::from_record(r) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(destination = %r.name, error = %e, "stored destination is invalid; skipped");
                None
            }
        })
        .collect()
}
