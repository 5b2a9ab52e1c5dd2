//! The `Store` handle: one pool over either SQLite or Postgres, opening and migrating it,
//! the secret key check, and the few primitives every query and every write goes through.
//!
//! The two backends are two concrete sqlx pools behind an enum rather than `sqlx::Any`, so each
//! keeps its native column types (Postgres `JSONB`, `TIMESTAMPTZ`, `BOOLEAN`) and Postgres can
//! LISTEN. The SQL text is shared (sqlx's SQLite driver accepts `$N` placeholders): a statement
//! is written once as a [`Sql`] and bound to the backend in use when it runs, so this is the
//! only module that matches on the backend (with the change feed, for LISTEN).

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{
    Arguments as _, Connection as _, Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type,
};
use tokio::sync::watch;

use crate::{SecretKey, StoreError};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Postgres channel that mutations NOTIFY, so other replicas reload without waiting a poll.
pub const NOTIFY_CHANNEL: &str = "gatecast_config";

/// Known plaintext sealed into `meta` on first start; failing to open it means the key is not
/// the one the database was created with, which must stop start-up before any secret is used.
const KEY_CHECK_NAME: &str = "secret_key_check";
const KEY_CHECK_PLAINTEXT: &str = "gatecast secret key check v1";

const BUMP_VERSION: &str =
    "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version";
const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The runtime configuration database. Cheap to clone; clones share one pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) key: SecretKey,
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

    pub(crate) fn is_closed(&self) -> bool {
        match &self.inner.pool {
            Pool::Sqlite(p) => p.is_closed(),
            Pool::Postgres(p) => p.is_closed(),
        }
    }

    /// A round trip to the database, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.pool.execute(Sql::new("SELECT 1")).await?;
        Ok(())
    }

    /// Closes the pool and waits for its connections to finish; watchers then stop.
    pub async fn close(&self) {
        match &self.inner.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
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
                self.inner
                    .pool
                    .execute(
                        Sql::new(
                            "INSERT INTO meta (name, value) VALUES ($1, $2) \
                             ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(KEY_CHECK_NAME)
                        .bind(&sealed),
                    )
                    .await?;
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
        let row: Option<(String,)> = self
            .inner
            .pool
            .fetch_optional(Sql::new("SELECT value FROM meta WHERE name = $1").bind(KEY_CHECK_NAME))
            .await?;
        Ok(row.map(|(value,)| value))
    }

    /// The current config version; every mutation increases it by one.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let (version,): (i64,) = self
            .inner
            .pool
            .fetch_one(Sql::new("SELECT version FROM config_version WHERE id = 1"))
            .await?;
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

    /// Starts a write: a transaction whose first statement bumps the config version (and, on
    /// Postgres, queues the NOTIFY that wakes the other replicas on commit).
    pub(crate) async fn begin_write(&self) -> Result<Tx<'_>, StoreError> {
        let conn = match &self.inner.pool {
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin().await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        let mut tx = Tx {
            conn,
            version: 0,
            store: self,
        };
        let (version,): (i64,) = tx.fetch_one(Sql::new(BUMP_VERSION)).await?;
        if let TxConn::Postgres(_) = tx.conn {
            // Delivered by Postgres only on commit, so a rolled-back change wakes nobody.
            let payload = version.to_string();
            tx.execute(
                Sql::new("SELECT pg_notify($1, $2)")
                    .bind(NOTIFY_CHANNEL)
                    .bind(&payload),
            )
            .await?;
        }
        tx.version = version;
        Ok(tx)
    }

    /// Starts a transaction that is not a configuration change (spend): no version bump, no
    /// NOTIFY, no audit entry, so running gateways do not reload for it.
    pub(crate) async fn begin_unversioned(&self) -> Result<Tx<'_>, StoreError> {
        let conn = match &self.inner.pool {
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin().await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        // Version 0 is never newer than the one published, so the commit wakes nobody.
        Ok(Tx {
            conn,
            version: 0,
            store: self,
        })
    }
}

/// A configuration change in progress, from [`Store::begin_write`]. Bumping the version first
/// takes the write lock first, which serialises all mutations across replicas (a row lock on
/// Postgres, the database lock on SQLite), so the read-check-write steps after it cannot race,
/// and SQLite never has to upgrade a read lock. Dropping it without [`Tx::commit`] rolls it all
/// back, the bump included, so a write that turns out to change nothing moves no version.
pub(crate) struct Tx<'s> {
    conn: TxConn,
    version: i64,
    store: &'s Store,
}

enum TxConn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx<'_> {
    /// Records the change in the audit log, in the same transaction as the change itself.
    pub(crate) async fn audit(
        &mut self,
        actor: &str,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<(), StoreError> {
        self.execute(
            Sql::new(INSERT_AUDIT)
                .bind(Utc::now())
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(&detail),
        )
        .await?;
        Ok(())
    }

    /// Commits the change, then wakes this process's watchers.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let Tx {
            conn,
            version,
            store,
        } = self;
        match conn {
            TxConn::Sqlite(tx) => tx.commit().await?,
            TxConn::Postgres(tx) => tx.commit().await?,
        }
        store.published(version);
        Ok(())
    }
}

/// One statement and its bind values, written once for both backends.
pub(crate) struct Sql<'a> {
    text: &'a str,
    args: Vec<Arg<'a>>,
}

/// A bind value of one of the column types the schema uses.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Real(f64),
    Bool(bool),
    MaybeBool(Option<bool>),
    MaybeReal(Option<f64>),
    MaybeText(Option<&'a str>),
    Time(DateTime<Utc>),
    Json(&'a Value),
}

impl<'a> Sql<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Sql {
            text,
            args: Vec::new(),
        }
    }

    /// Binds the next `$N`.
    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The bind values as `DB`'s arguments; generic so the one list serves both backends.
    fn arguments<DB: Database>(&self) -> Result<DB::Arguments<'a>, sqlx::Error>
    where
        &'a str: Encode<'a, DB> + Type<DB>,
        i64: Encode<'a, DB> + Type<DB>,
        f64: Encode<'a, DB> + Type<DB>,
        bool: Encode<'a, DB> + Type<DB>,
        Option<bool>: Encode<'a, DB> + Type<DB>,
        Option<f64>: Encode<'a, DB> + Type<DB>,
        Option<&'a str>: Encode<'a, DB> + Type<DB>,
        DateTime<Utc>: Encode<'a, DB> + Type<DB>,
        Json<&'a Value>: Encode<'a, DB> + Type<DB>,
    {
        let mut out = DB::Arguments::<'a>::default();
        for arg in &self.args {
            match *arg {
                Arg::Text(v) => out.add(v),
                Arg::Int(v) => out.add(v),
                Arg::Real(v) => out.add(v),
                Arg::Bool(v) => out.add(v),
                Arg::MaybeBool(v) => out.add(v),
                Arg::MaybeReal(v) => out.add(v),
                Arg::MaybeText(v) => out.add(v),
                Arg::Time(v) => out.add(v),
                Arg::Json(v) => out.add(Json(v)),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(out)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<Option<bool>> for Arg<'_> {
    fn from(v: Option<bool>) -> Self {
        Arg::MaybeBool(v)
    }
}

impl From<Option<f64>> for Arg<'_> {
    fn from(v: Option<f64>) -> Self {
        Arg::MaybeReal(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::MaybeText(v)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(v)
    }
}

/// A JSON value is stored as a JSON column (`JSONB` on Postgres), never as text.
impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        Arg::Json(v)
    }
}

/// A row both backends can decode: a `#[derive(sqlx::FromRow)]` struct or a tuple.
pub(crate) trait Row:
    Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
}

impl<T> Row for T where T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{}

/// What runs a [`Sql`]: the pool (`&Pool`, each statement on its own) or a write (`&mut Tx`).
pub(crate) trait Db {
    /// Runs a statement and returns the number of rows it affected.
    async fn execute(self, q: Sql<'_>) -> Result<u64, sqlx::Error>;
    async fn fetch_one<T: Row>(self, q: Sql<'_>) -> Result<T, sqlx::Error>;
    async fn fetch_optional<T: Row>(self, q: Sql<'_>) -> Result<Option<T>, sqlx::Error>;
    async fn fetch_all<T: Row>(self, q: Sql<'_>) -> Result<Vec<T>, sqlx::Error>;
}

impl Db for &Pool {
    async fn execute(self, q: Sql<'_>) -> Result<u64, sqlx::Error> {
        let done = match self {
            Pool::Sqlite(p) => sqlx::query_with(q.text, q.arguments::<Sqlite>()?)
                .execute(p)
                .await?
                .rows_affected(),
            Pool::Postgres(p) => sqlx::query_with(q.text, q.arguments::<Postgres>()?)
                .execute(p)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    async fn fetch_one<T: Row>(self, q: Sql<'_>) -> Result<T, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_one(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_one(p)
                    .await
            }
        }
    }

    async fn fetch_optional<T: Row>(self, q: Sql<'_>) -> Result<Option<T>, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_optional(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_optional(p)
                    .await
            }
        }
    }

    async fn fetch_all<T: Row>(self, q: Sql<'_>) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_all(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_all(p)
                    .await
            }
        }
    }
}

impl Db for &mut Tx<'_> {
    async fn execute(self, q: Sql<'_>) -> Result<u64, sqlx::Error> {
        let done = match &mut self.conn {
            TxConn::Sqlite(tx) => sqlx::query_with(q.text, q.arguments::<Sqlite>()?)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            TxConn::Postgres(tx) => sqlx::query_with(q.text, q.arguments::<Postgres>()?)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    async fn fetch_one<T: Row>(self, q: Sql<'_>) -> Result<T, sqlx::Error> {
        match &mut self.conn {
            TxConn::Sqlite(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_one(&mut **tx)
                    .await
            }
            TxConn::Postgres(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_one(&mut **tx)
                    .await
            }
        }
    }

    async fn fetch_optional<T: Row>(self, q: Sql<'_>) -> Result<Option<T>, sqlx::Error> {
        match &mut self.conn {
            TxConn::Sqlite(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_optional(&mut **tx)
                    .await
            }
            TxConn::Postgres(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
    }

    async fn fetch_all<T: Row>(self, q: Sql<'_>) -> Result<Vec<T>, sqlx::Error> {
        match &mut self.conn {
            TxConn::Sqlite(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Sqlite>()?)
                    .fetch_all(&mut **tx)
                    .await
            }
            TxConn::Postgres(tx) => {
                sqlx::query_as_with(q.text, q.arguments::<Postgres>()?)
                    .fetch_all(&mut **tx)
                    .await
            }
        }
    }
}

/// A random UUID v4 in its usual text form, for new rows.
pub(crate) fn new_id() -> String {
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
#[allow(clippy::unwrap_used)]
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

    /// The seam every write goes through: its version bump and audit entry commit with it or
    /// not at all, and only a commit wakes this process's watchers.
    #[tokio::test]
    async fn a_write_commits_its_bump_and_audit_entry_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, SecretKey::from_bytes([7; 32]), true)
            .await
            .unwrap();
        let v0 = store.config_version().await.unwrap();

        let mut tx = store.begin_write().await.unwrap();
        tx.audit("t", "test.dropped", "x", serde_json::json!({}))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(store.config_version().await.unwrap(), v0);
        assert!(store.audit_log(10).await.unwrap().is_empty());
        assert_eq!(*store.inner.local.borrow(), v0);

        let mut tx = store.begin_write().await.unwrap();
        tx.audit("t", "test.committed", "x", serde_json::json!({ "n": 1 }))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.config_version().await.unwrap(), v0 + 1);
        let log = store.audit_log(10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].action.as_str(), &log[0].detail),
            ("test.committed", &serde_json::json!({ "n": 1 }))
        );
        assert_eq!(*store.inner.local.borrow(), v0 + 1);
        store.close().await;
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_id());
    }
}
