//! The `Store`: one handle over either SQLite or Postgres.
//!
//! The two backends are two concrete sqlx pools behind an enum rather than `sqlx::Any`, so each
//! keeps its native column types (Postgres `JSONB`, `TIMESTAMPTZ`, `BOOLEAN`) and Postgres can
//! LISTEN. The SQL text is shared (sqlx's SQLite driver accepts `$N` placeholders); `on_pool!`
//! compiles one body once per backend.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString as _};
use rand::RngCore as _;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::Connection as _;
use subtle::ConstantTimeEq as _;
use tokio::sync::watch;

use crate::record::{validate_name, validate_record};
use crate::secret::{decrypt_config, encrypt_config, restore_masked};
use crate::{
    AuditEntry, DestinationPatch, DestinationRecord, KeyInfo, Overrides, OverridesPatch,
    ReplicaStatus, SecretKey, Source, StoreError,
};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Postgres channel that mutations NOTIFY, so other replicas reload without waiting a poll.
pub const NOTIFY_CHANNEL: &str = "gatecast_config";

/// Actor recorded in the audit log for changes that come from the config file.
pub const CONFIG_FILE_ACTOR: &str = "config-file";

/// Known plaintext sealed into `meta` on first start; failing to open it means the key is not
/// the one the database was created with, which must stop start-up before any secret is used.
const KEY_CHECK_NAME: &str = "secret_key_check";
const KEY_CHECK_PLAINTEXT: &str = "gatecast secret key check v1";

const KEY_PREFIX: &str = "gk_";
const KEY_RANDOM_LEN: usize = 40;
const KEY_DISPLAY_LEN: usize = 8;

const SELECT_DEST_BY_NAME: &str = "SELECT id, name, type, config, enabled, privacy_mode, \
     sampling_rate, filters, source, privacy_mode_override, enabled_override \
     FROM destinations WHERE name = $1";
const SELECT_ALL_DEST: &str = "SELECT id, name, type, config, enabled, privacy_mode, \
     sampling_rate, filters, source, privacy_mode_override, enabled_override \
     FROM destinations ORDER BY name";
const UPDATE_OVERRIDES: &str = "UPDATE destinations SET privacy_mode_override = $1, \
     enabled_override = $2, updated_at = $3 WHERE id = $4";
/// A heartbeat; the applied version only moves forward, so a late write of an older reading
/// cannot hide a newer one.
const UPSERT_REPLICA: &str = "INSERT INTO replicas (id, applied_version, started_at, last_seen) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
     applied_version = CASE WHEN excluded.applied_version > replicas.applied_version \
     THEN excluded.applied_version ELSE replicas.applied_version END, \
     started_at = excluded.started_at, last_seen = excluded.last_seen";
const INSERT_DEST: &str = "INSERT INTO destinations (id, name, type, config, enabled, \
     privacy_mode, sampling_rate, filters, source, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)";
const UPDATE_DEST: &str = "UPDATE destinations SET type = $1, config = $2, enabled = $3, \
     privacy_mode = $4, sampling_rate = $5, filters = $6, updated_at = $7 WHERE id = $8";
const KEY_COLUMNS: &str = "id, name, key_hash, prefix, created_at, revoked_at";
const BUMP_VERSION: &str =
    "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version";
const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool of whichever backend is in use.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Bumps the config version as the transaction's first write. Taking the write lock first
/// serialises all mutations (a row lock on Postgres, the database lock on SQLite), so the
/// read-check-write steps after it cannot race, and SQLite never has to upgrade a read lock.
macro_rules! bump_version {
    ($tx:expr, $postgres:expr) => {{
        let version: i64 = sqlx::query_scalar(BUMP_VERSION)
            .fetch_one(&mut *$tx)
            .await?;
        if $postgres {
            // Delivered by Postgres only on commit, so a rolled-back change wakes nobody.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(version.to_string())
                .execute(&mut *$tx)
                .await?;
        }
        version
    }};
}

macro_rules! audit {
    ($tx:expr, $actor:expr, $action:expr, $target:expr, $detail:expr) => {
        sqlx::query(INSERT_AUDIT)
            .bind(Utc::now())
            .bind($actor)
            .bind($action)
            .bind($target)
            .bind(Json($detail))
            .execute(&mut *$tx)
            .await?
    };
}

macro_rules! insert_destination {
    ($tx:expr, $rec:expr, $stored_config:expr, $now:expr) => {
        sqlx::query(INSERT_DEST)
            .bind(&$rec.id)
            .bind(&$rec.name)
            .bind(&$rec.kind)
            .bind(Json(&$stored_config))
            .bind($rec.enabled)
            .bind($rec.privacy_mode)
            .bind($rec.sampling_rate)
            .bind(Json(&$rec.filters))
            .bind($rec.source.as_str())
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

macro_rules! update_destination_row {
    ($tx:expr, $rec:expr, $stored_config:expr, $now:expr) => {
        sqlx::query(UPDATE_DEST)
            .bind(&$rec.kind)
            .bind(Json(&$stored_config))
            .bind($rec.enabled)
            .bind($rec.privacy_mode)
            .bind($rec.sampling_rate)
            .bind(Json(&$rec.filters))
            .bind($now)
            .bind(&$rec.id)
            .execute(&mut *$tx)
            .await?
    };
}

#[derive(sqlx::FromRow)]
struct DestRow {
    id: String,
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    config: Json<Value>,
    enabled: bool,
    privacy_mode: bool,
    sampling_rate: f64,
    filters: Json<Value>,
    source: String,
    privacy_mode_override: Option<bool>,
    enabled_override: Option<bool>,
}

impl DestRow {
    fn source(&self) -> Result<Source, StoreError> {
        Source::parse(&self.source).ok_or_else(|| StoreError::CorruptRow {
            table: "destinations",
            reason: format!(
                "destination `{}` has unknown source `{}`",
                self.name, self.source
            ),
        })
    }

    fn into_record(self, key: &SecretKey) -> Result<DestinationRecord, StoreError> {
        let source = self.source()?;
        let config = decrypt_config(key, &self.config.0, &self.name)?;
        Ok(DestinationRecord {
            id: self.id,
            name: self.name,
            kind: self.kind,
            config,
            enabled: self.enabled,
            privacy_mode: self.privacy_mode,
            sampling_rate: self.sampling_rate,
            filters: self.filters.0,
            source,
            overrides: Overrides {
                privacy_mode: self.privacy_mode_override,
                enabled: self.enabled_override,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct ReplicaRow {
    id: String,
    applied_version: i64,
    started_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    key_hash: String,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for KeyInfo {
    fn from(row: KeyRow) -> Self {
        KeyInfo {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    detail: Json<Value>,
}

/// What `sync_file_destinations` changed, by destination name; empty when the file and the
/// database already agreed (and then the config version was not bumped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl SyncSummary {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// The runtime configuration database. Cheap to clone; clones share one pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    key: SecretKey,
    /// Latest version this process knows of; mutations publish here so local watchers wake at
    /// once instead of at the next poll.
    pub(crate) local: watch::Sender<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens `sqlite://PATH` (file and parent directory created on first start, WAL mode) or
    /// `postgres://...`, optionally applies pending migrations, and refuses to start when
    /// `secret` is not the key the database's secrets were sealed with.
    pub async fn connect(
        url: &str,
        secret: SecretKey,
        run_migrations: bool,
    ) -> Result<Store, StoreError> {
        Self::open(url, secret, run_migrations, true).await
    }

    /// As [`Store::connect`], for tools that must not start a new database by mistake: when
    /// the SQLite file does not exist, or the database has no Gatecast tables yet, it fails
    /// with [`StoreError::NoDatabase`] and creates nothing.
    pub async fn connect_existing(
        url: &str,
        secret: SecretKey,
        run_migrations: bool,
    ) -> Result<Store, StoreError> {
        Self::open(url, secret, run_migrations, false).await
    }

    async fn open(
        url: &str,
        secret: SecretKey,
        run_migrations: bool,
        create: bool,
    ) -> Result<Store, StoreError> {
        let pool = open_pool(url, create).await?;
        let store = Store {
            inner: Arc::new(Inner {
                pool,
                key: secret,
                local: watch::Sender::new(0),
            }),
        };
        if !create {
            if let Err(StoreError::Database(e)) = store.config_version().await {
                store.close().await;
                return Err(if is_missing_table(&e) {
                    StoreError::NoDatabase {
                        location: redact_url(url),
                    }
                } else {
                    StoreError::Database(e)
                });
            }
        }
        if run_migrations {
            store.apply_migrations().await?;
        }
        store.check_secret_key().await?;
        store.seal_plain_urls().await?;
        let version = store.config_version().await?;
        store.inner.local.send_replace(version);
        Ok(store)
    }

    /// Applies pending migrations (for `gatecast migrate`, or when `connect` was told not to).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.apply_migrations().await?;
        self.check_secret_key().await?;
        self.seal_plain_urls().await
    }

    /// Seals, in place, what rows written by earlier versions hold in plain text that is now
    /// encrypted at rest (URLs carrying a credential). The configuration itself does not
    /// change, so the version does not move and nothing is audited. The write is conditional
    /// on the row being as read: a row another replica changed meanwhile keeps that change,
    /// which that replica sealed.
    async fn seal_plain_urls(&self) -> Result<(), StoreError> {
        let rows: Vec<DestRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(SELECT_ALL_DEST).fetch_all(p).await?
        });
        for row in rows {
            let stored = &row.config.0;
            let sealed = encrypt_config(&self.inner.key, stored)?;
            if &sealed == stored {
                continue;
            }
            let written = on_pool!(&self.inner.pool, p => {
                sqlx::query("UPDATE destinations SET config = $1 WHERE id = $2 AND config = $3")
                    .bind(Json(&sealed))
                    .bind(&row.id)
                    .bind(Json(stored))
                    .execute(p)
                    .await?
                    .rows_affected()
            });
            if written > 0 {
                tracing::info!(destination = %row.name, "sealed a stored URL that carries a credential");
            }
        }
        Ok(())
    }

    async fn apply_migrations(&self) -> Result<(), StoreError> {
        match &self.inner.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.inner.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self.inner.pool, Pool::Postgres(_))
    }

    pub(crate) fn is_closed(&self) -> bool {
        on_pool!(&self.inner.pool, p => p.is_closed())
    }

    /// A round trip to the database, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.inner.pool, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Closes the pool and waits for its connections to finish; watchers then stop.
    pub async fn close(&self) {
        on_pool!(&self.inner.pool, p => p.close().await)
    }

    async fn check_secret_key(&self) -> Result<(), StoreError> {
        let stored = match self.read_key_check().await {
            Ok(v) => v,
            Err(e) if is_missing_table(&e) => return Err(StoreError::NotMigrated { source: e }),
            Err(e) => return Err(e.into()),
        };
        let stored = match stored {
            Some(v) => v,
            None => {
                let sealed = self.inner.key.encrypt(KEY_CHECK_PLAINTEXT)?;
                on_pool!(&self.inner.pool, p => {
                    sqlx::query(
                        "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(KEY_CHECK_NAME)
                    .bind(&sealed)
                    .execute(p)
                    .await?;
                });
                // Read back: a replica starting at the same moment may have won with its key.
                self.read_key_check()
                    .await?
                    .ok_or_else(|| StoreError::CorruptRow {
                        table: "meta",
                        reason: "the secret key check value vanished right after it was written"
                            .to_owned(),
                    })?
            }
        };
        match self.inner.key.decrypt(&stored) {
            Some(Ok(plain)) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreError::WrongSecretKey),
        }
    }

    async fn read_key_check(&self) -> Result<Option<String>, sqlx::Error> {
        on_pool!(&self.inner.pool, p => {
            sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
                .bind(KEY_CHECK_NAME)
                .fetch_optional(p)
                .await
        })
    }

    /// The current config version; every mutation increases it by one.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let version: i64 = on_pool!(&self.inner.pool, p => {
            sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
                .fetch_one(p)
                .await?
        });
        Ok(version)
    }

    fn published(&self, version: i64) {
        self.inner.local.send_if_modified(|current| {
            if version > *current {
                *current = version;
                true
            } else {
                false
            }
        });
    }

    // ----- destinations -------------------------------------------------------------------

    /// All destinations with secrets decrypted, for the gateway's own use; show people
    /// [`DestinationRecord::masked`] instead.
    pub async fn list_destinations(&self) -> Result<Vec<DestinationRecord>, StoreError> {
        let rows: Vec<DestRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(SELECT_ALL_DEST).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|row| row.into_record(&self.inner.key))
            .collect()
    }

    /// One destination with secrets decrypted, or `None`.
    pub async fn get_destination(
        &self,
        name: &str,
    ) -> Result<Option<DestinationRecord>, StoreError> {
        let row: Option<DestRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(SELECT_DEST_BY_NAME)
                .bind(name)
                .fetch_optional(p)
                .await?
        });
        row.map(|r| r.into_record(&self.inner.key)).transpose()
    }

    /// Creates an API-owned destination (`source` and `id` of `rec` are ignored) and returns it
    /// as stored, secrets decrypted.
    pub async fn create_destination(
        &self,
        mut rec: DestinationRecord,
        actor: &str,
    ) -> Result<DestinationRecord, StoreError> {
        rec.source = Source::Api;
        rec.id = new_id();
        validate_record(&mut rec)?;
        let stored_config = encrypt_config(&self.inner.key, &rec.config)?;
        let detail = create_detail(&rec);
        let now = Utc::now();
        let postgres = self.is_postgres();
        let version = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let existing: Option<String> =
                sqlx::query_scalar("SELECT source FROM destinations WHERE name = $1")
                    .bind(&rec.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(source) = existing {
                return Err(if source == Source::File.as_str() {
                    StoreError::ReadOnly { name: rec.name }
                } else {
                    StoreError::AlreadyExists { what: "destination", name: rec.name }
                });
            }
            insert_destination!(tx, rec, stored_config, now);
            audit!(tx, actor, "destination.create", &rec.name, detail);
            tx.commit().await?;
            version
        });
        self.published(version);
        Ok(rec)
    }

    /// Applies a partial update to an API-owned destination and returns the result. A patch
    /// that changes nothing writes nothing and leaves the config version alone.
    pub async fn update_destination(
        &self,
        name: &str,
        patch: DestinationPatch,
        actor: &str,
    ) -> Result<DestinationRecord, StoreError> {
        let postgres = self.is_postgres();
        let key = &self.inner.key;
        let (version, rec) = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let row: Option<DestRow> = sqlx::query_as(SELECT_DEST_BY_NAME)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound { what: "destination", name: name.to_owned() });
            };
            if row.source()? == Source::File {
                return Err(StoreError::ReadOnly { name: name.to_owned() });
            }
            let mut rec = row.into_record(key)?;
            let changed = apply_patch(&mut rec, patch);
            validate_record(&mut rec)?;
            if changed.is_empty() {
                // Dropping the transaction rolls the version bump back.
                drop(tx);
                (None, rec)
            } else {
                let stored_config = encrypt_config(key, &rec.config)?;
                update_destination_row!(tx, rec, stored_config, Utc::now());
                audit!(tx, actor, "destination.update", name, update_detail(&rec, &changed));
                tx.commit().await?;
                (Some(version), rec)
            }
        });
        if let Some(version) = version {
            self.published(version);
        }
        Ok(rec)
    }

    /// Deletes an API-owned destination.
    pub async fn delete_destination(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        let postgres = self.is_postgres();
        let version = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let existing: Option<(String, String)> =
                sqlx::query_as("SELECT source, type FROM destinations WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((source, kind)) = existing else {
                return Err(StoreError::NotFound { what: "destination", name: name.to_owned() });
            };
            if source == Source::File.as_str() {
                return Err(StoreError::ReadOnly { name: name.to_owned() });
            }
            sqlx::query("DELETE FROM destinations WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            audit!(tx, actor, "destination.delete", name, json!({ "type": kind }));
            tx.commit().await?;
            version
        });
        self.published(version);
        Ok(())
    }

    /// Sets or clears runtime overrides of a config-file destination's `privacy_mode` and
    /// `enabled`, and returns the destination. They live beside the file's values, which the
    /// start-up sync keeps writing, so they hold across restarts until cleared. A destination
    /// created through the API has none: change it with [`Store::update_destination`]. A patch
    /// that changes nothing writes nothing and leaves the config version alone.
    pub async fn set_destination_overrides(
        &self,
        name: &str,
        patch: OverridesPatch,
        actor: &str,
    ) -> Result<DestinationRecord, StoreError> {
        let postgres = self.is_postgres();
        let key = &self.inner.key;
        let (version, rec) = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let row: Option<DestRow> = sqlx::query_as(SELECT_DEST_BY_NAME)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound { what: "destination", name: name.to_owned() });
            };
            if row.source()? != Source::File {
                return Err(StoreError::NotOverridable { name: name.to_owned() });
            }
            let mut rec = row.into_record(key)?;
            let next = patch.apply(rec.overrides);
            if next == rec.overrides {
                drop(tx);
                (None, rec)
            } else {
                sqlx::query(UPDATE_OVERRIDES)
                    .bind(next.privacy_mode)
                    .bind(next.enabled)
                    .bind(Utc::now())
                    .bind(&rec.id)
                    .execute(&mut *tx)
                    .await?;
                audit!(tx, actor, "destination.override", name, override_detail(&rec, next));
                rec.overrides = next;
                tx.commit().await?;
                (Some(version), rec)
            }
        });
        if let Some(version) = version {
            self.published(version);
        }
        Ok(rec)
    }

    /// Makes the `source = file` destinations equal to `records` (the config file's list):
    /// creates and updates them, removes file destinations the file no longer declares, and
    /// never touches API-owned ones. A file destination whose name an API destination already
    /// has is an error naming it, and nothing is changed. Run at every start, so when nothing
    /// differs nothing is written and the version stays put.
    pub async fn sync_file_destinations(
        &self,
        records: Vec<DestinationRecord>,
    ) -> Result<SyncSummary, StoreError> {
        let mut wanted = BTreeMap::new();
        for mut rec in records {
            rec.source = Source::File;
            validate_record(&mut rec)?;
            let name = rec.name.clone();
            if wanted.insert(name.clone(), rec).is_some() {
                return Err(StoreError::invalid(
                    "config file",
                    format!("destination `{name}` is declared twice"),
                ));
            }
        }
        let postgres = self.is_postgres();
        let key = &self.inner.key;
        let (version, summary) = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let rows: Vec<DestRow> = sqlx::query_as(SELECT_ALL_DEST).fetch_all(&mut *tx).await?;
            let mut summary = SyncSummary::default();
            let mut seen = HashSet::new();
            let now = Utc::now();
            for row in rows {
                let source = row.source()?;
                match (source, wanted.get_mut(&row.name)) {
                    (Source::Api, Some(_)) => {
                        return Err(StoreError::NameClash { name: row.name });
                    }
                    (Source::Api, None) => {}
                    (Source::File, None) => {
                        sqlx::query("DELETE FROM destinations WHERE id = $1")
                            .bind(&row.id)
                            .execute(&mut *tx)
                            .await?;
                        audit!(tx, CONFIG_FILE_ACTOR, "destination.delete", &row.name,
                            json!({ "type": row.kind, "source": "file" }));
                        summary.removed.push(row.name);
                    }
                    (Source::File, Some(rec)) => {
                        seen.insert(row.name.clone());
                        let current = row.into_record(key)?;
                        rec.id = current.id.clone();
                        let changed = differences(&current, rec);
                        if !changed.is_empty() {
                            let stored_config = encrypt_config(key, &rec.config)?;
                            update_destination_row!(tx, rec, stored_config, now);
                            audit!(tx, CONFIG_FILE_ACTOR, "destination.update", &rec.name,
                                update_detail(rec, &changed));
                            summary.updated.push(rec.name.clone());
                        }
                    }
                }
            }
            for rec in wanted.values_mut().filter(|r| !seen.contains(&r.name)) {
                rec.id = new_id();
                let stored_config = encrypt_config(key, &rec.config)?;
                insert_destination!(tx, rec, stored_config, now);
                audit!(tx, CONFIG_FILE_ACTOR, "destination.create", &rec.name, create_detail(rec));
                summary.created.push(rec.name.clone());
            }
            if summary.is_empty() {
                drop(tx);
                (None, summary)
            } else {
                tx.commit().await?;
                (Some(version), summary)
            }
        });
        if let Some(version) = version {
            self.published(version);
        }
        Ok(summary)
    }

    // ----- virtual keys -------------------------------------------------------------------

    /// Creates a virtual key and returns it in full, the only time it is ever available: only
    /// its SHA-256 is stored.
    pub async fn create_key(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<(KeyInfo, String), StoreError> {
        validate_name("key name", name)?;
        let full = format!(
            "{KEY_PREFIX}{}",
            Alphanumeric.sample_string(&mut rand::rng(), KEY_RANDOM_LEN)
        );
        let info = KeyInfo {
            id: new_id(),
            name: name.to_owned(),
            prefix: full.chars().take(KEY_DISPLAY_LEN).collect(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let hash = sha256_hex(&full);
        let postgres = self.is_postgres();
        let version = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT id FROM virtual_keys WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                return Err(StoreError::AlreadyExists { what: "active key", name: name.to_owned() });
            }
            sqlx::query(
                "INSERT INTO virtual_keys (id, name, key_hash, prefix, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(&info.id)
            .bind(&info.name)
            .bind(&hash)
            .bind(&info.prefix)
            .bind(info.created_at)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "key.create", name, json!({ "id": info.id, "prefix": info.prefix }));
            tx.commit().await?;
            version
        });
        self.published(version);
        Ok((info, full))
    }

    /// All keys, revoked ones included (with `revoked_at`), oldest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM virtual_keys ORDER BY created_at, name");
        let rows: Vec<KeyRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(&sql).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(KeyInfo::from).collect())
    }

    /// Revokes the active key called `name`; its name can then be reused for a new key.
    pub async fn revoke_key(&self, name: &str, actor: &str) -> Result<KeyInfo, StoreError> {
        let sql = format!(
            "UPDATE virtual_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL \
             RETURNING {KEY_COLUMNS}"
        );
        let postgres = self.is_postgres();
        let (version, info) = on_pool!(&self.inner.pool, p => {
            let mut tx = p.begin().await?;
            let version = bump_version!(tx, postgres);
            let row: Option<KeyRow> = sqlx::query_as(&sql)
                .bind(Utc::now())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound { what: "active key", name: name.to_owned() });
            };
            let info = KeyInfo::from(row);
            audit!(tx, actor, "key.revoke", name, json!({ "id": info.id, "prefix": info.prefix }));
            tx.commit().await?;
            (version, info)
        });
        self.published(version);
        Ok(info)
    }

    /// The active key matching `presented`, or `None`. A database error also gives `None`
    /// (after logging it): failing closed is the safe answer for authentication.
    pub async fn verify_key(&self, presented: &str) -> Option<KeyInfo> {
        // Real keys are 43 characters; anything far longer is not worth hashing.
        if presented.len() > 256 {
            return None;
        }
        let hash = sha256_hex(presented);
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM virtual_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        );
        let found: Result<Option<KeyRow>, sqlx::Error> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(&sql).bind(&hash).fetch_optional(p).await
        });
        match found {
            Ok(Some(row)) if bool::from(row.key_hash.as_bytes().ct_eq(hash.as_bytes())) => {
                Some(row.into())
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot look up a virtual key; rejecting the request");
                None
            }
        }
    }

    /// The active keys as `(sha256 hex, info)`, so a gateway can check keys in memory and
    /// refresh the set once per config change instead of querying once per request.
    pub async fn active_key_hashes(&self) -> Result<Vec<(String, KeyInfo)>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM virtual_keys WHERE revoked_at IS NULL ORDER BY name"
        );
        let rows: Vec<KeyRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(&sql).fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|row| (row.key_hash.clone(), KeyInfo::from(row)))
            .collect())
    }

    /// Number of keys not revoked; zero means the gateway runs open.
    pub async fn active_key_count(&self) -> Result<i64, StoreError> {
        let count: i64 = on_pool!(&self.inner.pool, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM virtual_keys WHERE revoked_at IS NULL")
                .fetch_one(p)
                .await?
        });
        Ok(count)
    }

    // ----- replicas -----------------------------------------------------------------------

    /// Records that replica `id` (started at `started_at`) runs config version `applied`, now.
    /// Not a configuration change: the version does not move and nothing is audited.
    pub async fn record_replica(
        &self,
        id: &str,
        applied: i64,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.pool, p => {
            sqlx::query(UPSERT_REPLICA)
                .bind(id)
                .bind(applied)
                .bind(started_at)
                .bind(Utc::now())
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Every replica that has sent a heartbeat and not left, most recently seen first.
    pub async fn replicas(&self) -> Result<Vec<ReplicaStatus>, StoreError> {
        let rows: Vec<ReplicaRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as("SELECT id, applied_version, started_at, last_seen FROM replicas")
                .fetch_all(p)
                .await?
        });
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
        on_pool!(&self.inner.pool, p => {
            sqlx::query("DELETE FROM replicas WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?;
        });
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

    // ----- audit --------------------------------------------------------------------------

    /// The newest `limit` audit entries (at most 10 000), newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = limit.clamp(0, 10_000);
        let rows: Vec<AuditRow> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
        });
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

/// Applies `patch` and names the fields that really changed.
fn apply_patch(rec: &mut DestinationRecord, patch: DestinationPatch) -> Vec<&'static str> {
    let mut next = rec.clone();
    if let Some(kind) = patch.kind {
        next.kind = kind;
    }
    if let Some(mut config) = patch.config {
        restore_masked(&mut config, &rec.config);
        next.config = config;
    }
    if let Some(enabled) = patch.enabled {
        next.enabled = enabled;
    }
    if let Some(privacy) = patch.privacy_mode {
        next.privacy_mode = privacy;
    }
    if let Some(rate) = patch.sampling_rate {
        next.sampling_rate = rate;
    }
    if let Some(filters) = patch.filters {
        next.filters = filters;
    }
    let changed = differences(rec, &next);
    *rec = next;
    changed
}

fn differences(old: &DestinationRecord, new: &DestinationRecord) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.kind != new.kind {
        changed.push("type");
    }
    if old.config != new.config {
        changed.push("config");
    }
    if old.enabled != new.enabled {
        changed.push("enabled");
    }
    if old.privacy_mode != new.privacy_mode {
        changed.push("privacy_mode");
    }
    if old.sampling_rate != new.sampling_rate {
        changed.push("sampling_rate");
    }
    if old.filters != new.filters {
        changed.push("filters");
    }
    changed
}

/// Audit detail for a new destination. Config values may be secrets, so only the field names
/// are recorded.
fn create_detail(rec: &DestinationRecord) -> Value {
    json!({
        "type": rec.kind,
        "source": rec.source.as_str(),
        "enabled": rec.enabled,
        "privacy_mode": rec.privacy_mode,
        "sampling_rate": rec.sampling_rate,
        "config_fields": config_fields(&rec.config),
    })
}

/// Audit detail for a change: the changed field names, with new values for the plain fields.
fn update_detail(rec: &DestinationRecord, changed: &[&'static str]) -> Value {
    let mut detail = serde_json::Map::new();
    detail.insert("changed".to_owned(), json!(changed));
    for field in changed {
        let value = match *field {
            "type" => json!(rec.kind),
            "enabled" => json!(rec.enabled),
            "privacy_mode" => json!(rec.privacy_mode),
            "sampling_rate" => json!(rec.sampling_rate),
            "config" => json!(config_fields(&rec.config)),
            _ => continue,
        };
        let key = if *field == "config" {
            "config_fields"
        } else {
            field
        };
        detail.insert(key.to_owned(), value);
    }
    Value::Object(detail)
}

/// Audit detail for an override change: the fields that changed with their new override
/// (`null`: cleared), and the file's values they override.
fn override_detail(rec: &DestinationRecord, next: Overrides) -> Value {
    let mut detail = serde_json::Map::new();
    let mut changed = Vec::new();
    if next.privacy_mode != rec.overrides.privacy_mode {
        changed.push("privacy_mode");
        detail.insert("privacy_mode".to_owned(), json!(next.privacy_mode));
    }
    if next.enabled != rec.overrides.enabled {
        changed.push("enabled");
        detail.insert("enabled".to_owned(), json!(next.enabled));
    }
    detail.insert("changed".to_owned(), json!(changed));
    detail.insert(
        "config_file".to_owned(),
        json!({ "privacy_mode": rec.privacy_mode, "enabled": rec.enabled }),
    );
    Value::Object(detail)
}

fn config_fields(config: &Value) -> Vec<&str> {
    config
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A random UUID v4 in its usual text form.
fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The digest a virtual key is stored and looked up under.
pub fn key_hash(presented: &str) -> String {
    sha256_hex(presented)
}

fn is_missing_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
        }
        _ => false,
    }
}

/// The database file a `sqlite:` URL names, as the driver reads it; `None` for in-memory
/// databases and other URLs.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || sqlite_in_memory(url) {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

fn sqlite_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// `create`: a missing SQLite file (and its directory) is created; otherwise it is an error.
async fn open_pool(url: &str, create: bool) -> Result<Pool, StoreError> {
    let shown = redact_url(url);
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::InvalidUrl {
                url: shown.clone(),
                source,
            })?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = sqlite_in_memory(url);
        if !create && !in_memory && !options.get_filename().exists() {
            return Err(StoreError::NoDatabase {
                location: options.get_filename().display().to_string(),
            });
        }
        if create && !in_memory {
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                        action: "cannot create the database directory",
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
            }
        }
        let mut pool = SqlitePoolOptions::new().max_connections(4);
        if in_memory {
            // An in-memory database lives only as long as a connection to it does.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { url: shown, source })?;
        Ok(Pool::Sqlite(pool))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
            url: shown.clone(),
            source,
        })?;
        // One direct attempt first: the pool retries refused connections until its acquire
        // timeout and then reports only "timed out", hiding the reason the operator needs.
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.clone(),
                source,
            })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { url: shown, source })?;
        Ok(Pool::Postgres(pool))
    } else {
        Err(StoreError::UnsupportedUrl { url: shown })
    }
}

/// The URL with its password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(at) = authority.rfind('@') {
        if let Some(colon) = authority[..at].find(':') {
            return format!(
                "{}://{}:****{}",
                &url[..scheme_end],
                &authority[..colon],
                &rest[at..]
            );
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://gc:s3cr%40t@db:5432/gatecast?sslmode=require"),
            "postgres://gc:****@db:5432/gatecast?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://gc@db/gatecast"),
            "postgres://gc@db/gatecast"
        );
        assert_eq!(
            redact_url("sqlite://data/gatecast.db"),
            "sqlite://data/gatecast.db"
        );
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_id());
    }
}
