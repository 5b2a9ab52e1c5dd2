//! Database: runtime destinations, virtual keys and their budgets, spend, config version.
//!
//! The database is the runtime truth that every replica shares (DESIGN §5): destinations
//! declared in the config file are synced into it as read-only rows (but for runtime overrides
//! of their `privacy_mode` and `enabled`), the admin API and CLI add their own, and each change
//! bumps one config version that replicas watch to reload and report having applied.
//! Destination secrets are sealed with a key that never enters the database.
//!
//! Modules: `db` (the `Store` handle: pool, migrations, the secret key check, and the one
//! place a statement is bound to SQLite or Postgres, with the write transaction that bumps the
//! version and writes the audit entry), `destinations`, `keys`, `replicas` (heartbeats),
//! `audit` (reading the log), `spend` (spend per day, key, user and model), `budget` (a key's
//! cap and its period), `watch` (the change feed), `secret` (sealing), `record` (the
//! public types).

mod audit;
mod budget;
mod db;
mod destinations;
mod error;
mod keys;
mod record;
mod replicas;
mod responses;
mod secret;
mod spend;
mod watch;

pub use budget::{Budget, BudgetPeriod, Window};
pub use db::{redact_url, sqlite_file, Store, NOTIFY_CHANNEL};
pub use destinations::{SyncSummary, CONFIG_FILE_ACTOR};
pub use error::StoreError;
pub use keys::key_hash;
pub use record::{
    AuditEntry, DestinationPatch, DestinationRecord, KeyInfo, Overrides, OverridesPatch,
    ReplicaStatus, Source, MIN_SAMPLING_RATE,
};
pub use responses::StoredResponse;
pub use secret::{mask_secret, restore_masked, SecretKey, SECRET_KEY_ENV, SECRET_KEY_FILE};
pub use spend::{SpendBy, SpendKey, SpendRow, SpendSums, NANOS_PER_USD};
pub use watch::DEFAULT_WATCH_INTERVAL;

/// Default database URL, relative to the working directory like the rest of `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/gatecast.db";
