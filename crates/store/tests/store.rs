//! Store behaviour against real databases. Every test body takes a database URL, and
//! `both_backends!` runs it on a fresh SQLite file and, when `GATECAST_TEST_POSTGRES_URL` is
//! set (see `scripts/postgres-test-cluster.sh`), on a fresh database of that Postgres server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::NaiveDate;
use gatecast_store::{
    Budget, BudgetPeriod, DestinationPatch, DestinationRecord, Overrides, OverridesPatch,
    SecretKey, Source, SpendBy, SpendKey, SpendSums, Store, StoreError,
};
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::Digest as _;

const SENTRY_DSN: &str = "https://0123456789abcdef0123456789abcdef@o42.ingest.sentry.io/4242";
const DSN_KEY: &str = "0123456789abcdef0123456789abcdef";
const AUTH_HEADER: &str = "Bearer otlp-token-zyxw9876";

struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A nested path proves the parent directories are created on first start.
        let url = format!("sqlite://{}/data/nested/gatecast.db", dir.path().display());
        TestDb {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let admin = std::env::var("GATECAST_TEST_POSTGRES_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let mut suffix = [0u8; 6];
        rand::rng().fill_bytes(&mut suffix);
        let name = format!("gatecast_test_{}", hex::encode(suffix));
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("GATECAST_TEST_POSTGRES_URL is set but the server cannot be reached");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            url: url.to_string(),
            _dir: None,
            postgres: Some((admin, name)),
        })
    }

    async fn cleanup(self) {
        if let Some((admin, name)) = &self.postgres {
            let pool = sqlx::PgPool::connect(admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(url: &str)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite();
                    super::$name(&db.url).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else {
                        eprintln!("skipped: GATECAST_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    super::$name(&db.url).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

both_backends!(
    crud,
    file_destinations_are_read_only,
    sync_semantics,
    secrets_are_encrypted_at_rest,
    plain_urls_of_earlier_rows_are_sealed_at_start,
    masking,
    wrong_secret_key_fails_at_start,
    keys_create_verify_revoke_list,
    audit_rows_have_no_secrets,
    config_version_bumps_once_per_change,
    watch_sees_changes_from_another_replica,
    watch_sees_local_changes_at_once,
    concurrent_mutations_serialize,
    not_migrated_is_a_clear_error,
    connect_existing_refuses_a_new_database,
    overrides_of_file_destinations_outlive_the_sync_until_reset,
    replica_heartbeats,
    spend_from_two_writers_adds_up_exactly,
    spend_reports_group_and_start_at_a_day,
    key_budgets_are_set_listed_and_cleared,
);

fn key_a() -> SecretKey {
    SecretKey::from_bytes([0xA5; 32])
}

async fn open(url: &str) -> Store {
    Store::connect(url, key_a(), true).await.unwrap()
}

/// A webhook URL whose query carries the credential.
const TOKEN_URL: &str = "https://hooks.example.com/in/abc?token=url-token-9876&v=2";

fn sentry(name: &str) -> DestinationRecord {
    DestinationRecord {
        id: String::new(),
        name: name.to_owned(),
        kind: "sentry".to_owned(),
        config: json!({ "dsn": SENTRY_DSN }),
        enabled: true,
        privacy_mode: false,
        sampling_rate: 1.0,
        filters: json!({}),
        source: Source::Api,
        overrides: Overrides::default(),
    }
}

fn otlp(name: &str) -> DestinationRecord {
    DestinationRecord {
        kind: "otlp".to_owned(),
        config: json!({
            "endpoint": "http://127.0.0.1:4318/v1/traces",
            "protocol": "http/protobuf",
            "headers": { "authorization": AUTH_HEADER },
        }),
        sampling_rate: 0.5,
        filters: json!({ "exclude_keys": ["load-test"] }),
        ..sentry(name)
    }
}

fn file_dest(name: &str, path: &str) -> DestinationRecord {
    DestinationRecord {
        kind: "file".to_owned(),
        config: json!({ "path": path }),
        source: Source::File,
        ..sentry(name)
    }
}

/// Runs `$body` with `$pool` connected straight to the database at `$url`, bypassing the
/// store, on whichever backend the URL names; the pool is closed after.
macro_rules! with_raw_pool {
    ($url:expr, $pool:ident => $body:expr) => {
        if $url.starts_with("sqlite:") {
            let $pool = sqlx::SqlitePool::connect($url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::PgPool::connect($url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        }
    };
}

/// Text columns read with a plain query, bypassing the store.
async fn raw_texts(url: &str, sql: &str) -> Vec<String> {
    with_raw_pool!(url, pool => sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap())
}

/// A statement with one text parameter, bypassing the store; Postgres has its own spelling.
async fn raw_execute(url: &str, sqlite_sql: &str, postgres_sql: &str, text: &str) {
    let sql = if url.starts_with("sqlite:") {
        sqlite_sql
    } else {
        postgres_sql
    };
    with_raw_pool!(url, pool => {
        sqlx::query(sql).bind(text).execute(&pool).await.unwrap();
    })
}

/// Every byte SQLite has on disk (main file and WAL), to prove plaintext never reached it.
fn sqlite_bytes(url: &str) -> Option<Vec<u8>> {
    let path = url.strip_prefix("sqlite://")?;
    let mut bytes = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    Some(bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn crud(url: &str) {
    let store = open(url).await;
    assert!(store.list_destinations().await.unwrap().is_empty());

    let created = store
        .create_destination(otlp("collector"), "alice")
        .await
        .unwrap();
    assert_eq!(created.source, Source::Api);
    assert_eq!(created.id.len(), 36, "a UUID-like id is assigned");
    let got = store.get_destination("collector").await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(got.config["headers"]["authorization"], AUTH_HEADER);
    assert_eq!(got.sampling_rate, 0.5);
    assert_eq!(got.filters, json!({ "exclude_keys": ["load-test"] }));

    store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_destinations()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["collector", "sentry"]);

    // Partial update: only privacy changes.
    let patched = store
        .update_destination(
            "collector",
            DestinationPatch {
                privacy_mode: Some(true),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap();
    assert!(patched.privacy_mode);
    assert_eq!(patched.config, created.config);
    assert_eq!(patched.id, created.id);

    // A client that sends the masked config back keeps the real secret.
    let mut config = patched.masked().config;
    config["endpoint"] = json!("http://127.0.0.1:4319/v1/traces");
    let patched = store
        .update_destination(
            "collector",
            DestinationPatch {
                config: Some(config),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(patched.config["headers"]["authorization"], AUTH_HEADER);
    assert_eq!(
        patched.config["endpoint"],
        "http://127.0.0.1:4319/v1/traces"
    );
    let reread = store.get_destination("collector").await.unwrap().unwrap();
    assert_eq!(reread, patched);

    // Validation.
    let err = store
        .update_destination(
            "collector",
            DestinationPatch {
                sampling_rate: Some(0.0),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("sampling_rate"), "{err}");
    let mut bad = sentry("bad name with spaces");
    bad.name = "bad name".to_owned();
    assert!(matches!(
        store.create_destination(bad, "alice").await.unwrap_err(),
        StoreError::Invalid { .. }
    ));

    // Conflicts and missing names.
    let err = store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    let err = store
        .update_destination("nope", DestinationPatch::default(), "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store.delete_destination("nope", "bob").await.unwrap_err();
    assert_eq!(err.to_string(), "destination `nope` not found");

    store
        .delete_destination("collector", "carol")
        .await
        .unwrap();
    assert!(store.get_destination("collector").await.unwrap().is_none());
    assert_eq!(store.list_destinations().await.unwrap().len(), 1);

    // A record deserialized from an admin API body gets sensible defaults.
    let body: DestinationRecord =
        serde_json::from_value(json!({"name": "f", "type": "file", "config": {"path": "x"}}))
            .unwrap();
    let created = store.create_destination(body, "alice").await.unwrap();
    assert!(created.enabled && !created.privacy_mode);
    assert_eq!(created.sampling_rate, 1.0);
    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["type"], "file");
    assert_eq!(json["source"], "api");
}

async fn file_destinations_are_read_only(url: &str) {
    let store = open(url).await;
    store
        .sync_file_destinations(vec![file_dest("local", "data/traces.jsonl")])
        .await
        .unwrap();
    let local = store.get_destination("local").await.unwrap().unwrap();
    assert_eq!(local.source, Source::File);
    let version = store.config_version().await.unwrap();

    let err = store
        .update_destination(
            "local",
            DestinationPatch {
                privacy_mode: Some(true),
                ..Default::default()
            },
            "alice",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ReadOnly { name } if name == "local"),
        "{err}"
    );
    assert!(err.to_string().contains("config file"), "{err}");
    let err = store
        .delete_destination("local", "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    let err = store
        .create_destination(file_dest("local", "elsewhere"), "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");

    // Refused writes change nothing, not even the version.
    assert_eq!(store.config_version().await.unwrap(), version);
    assert_eq!(
        store.get_destination("local").await.unwrap().unwrap(),
        local
    );
}

async fn sync_semantics(url: &str) {
    let store = open(url).await;
    store
        .create_destination(sentry("api-one"), "alice")
        .await
        .unwrap();
    let api_one = store.get_destination("api-one").await.unwrap().unwrap();

    let v0 = store.config_version().await.unwrap();
    let summary = store
        .sync_file_destinations(vec![file_dest("a", "a.jsonl"), file_dest("b", "b.jsonl")])
        .await
        .unwrap();
    assert_eq!(summary.created, ["a", "b"]);
    assert!(summary.updated.is_empty() && summary.removed.is_empty());
    assert_eq!(
        store.config_version().await.unwrap(),
        v0 + 1,
        "one bump per sync"
    );
    let a_id = store.get_destination("a").await.unwrap().unwrap().id;

    // Same file again: nothing to do, no bump.
    let summary = store
        .sync_file_destinations(vec![file_dest("b", "b.jsonl"), file_dest("a", "a.jsonl")])
        .await
        .unwrap();
    assert!(summary.is_empty(), "{summary:?}");
    assert_eq!(store.config_version().await.unwrap(), v0 + 1);

    // Change a, drop b, add c.
    let mut a = file_dest("a", "a2.jsonl");
    a.privacy_mode = true;
    let summary = store
        .sync_file_destinations(vec![a, file_dest("c", "c.jsonl")])
        .await
        .unwrap();
    assert_eq!(summary.created, ["c"]);
    assert_eq!(summary.updated, ["a"]);
    assert_eq!(summary.removed, ["b"]);
    let a = store.get_destination("a").await.unwrap().unwrap();
    assert_eq!(a.id, a_id, "an updated file destination keeps its id");
    assert_eq!(a.config["path"], "a2.jsonl");
    assert!(a.privacy_mode);
    assert!(store.get_destination("b").await.unwrap().is_none());
    assert_eq!(
        store.get_destination("api-one").await.unwrap().unwrap(),
        api_one,
        "API destinations are never touched by a sync"
    );

    // A clash with an API destination names it and changes nothing.
    let version = store.config_version().await.unwrap();
    let err = store
        .sync_file_destinations(vec![file_dest("a", "a2.jsonl"), file_dest("api-one", "x")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NameClash { name } if name == "api-one"),
        "{err}"
    );
    assert!(err.to_string().contains("`api-one`"), "{err}");
    assert_eq!(store.config_version().await.unwrap(), version);
    assert!(store.get_destination("c").await.unwrap().is_some());
    assert_eq!(
        store
            .get_destination("api-one")
            .await
            .unwrap()
            .unwrap()
            .source,
        Source::Api
    );

    // Duplicates in the file are rejected.
    let err = store
        .sync_file_destinations(vec![file_dest("d", "1"), file_dest("d", "2")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declared twice"), "{err}");

    // An empty file removes every file destination and keeps the API ones.
    let summary = store.sync_file_destinations(vec![]).await.unwrap();
    assert_eq!(summary.removed, ["a", "c"]);
    let names: Vec<_> = store
        .list_destinations()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["api-one"]);
}

async fn secrets_are_encrypted_at_rest(url: &str) {
    let store = open(url).await;
    store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap();
    store
        .create_destination(otlp("collector"), "alice")
        .await
        .unwrap();
    store
        .create_destination(
            DestinationRecord {
                kind: "webhook".to_owned(),
                config: json!({ "url": TOKEN_URL, "method": "POST" }),
                ..sentry("token-hook")
            },
            "alice",
        )
        .await
        .unwrap();
    store
        .sync_file_destinations(vec![DestinationRecord {
            config: json!({ "url": "http://127.0.0.1:9/hook", "method": "POST",
                            "headers": { "x-api-key": "file-secret-1234" } }),
            kind: "webhook".to_owned(),
            ..file_dest("hook", "")
        }])
        .await
        .unwrap();

    let raw = raw_texts(
        url,
        "SELECT CAST(config AS TEXT) FROM destinations ORDER BY name",
    )
    .await;
    assert_eq!(raw.len(), 4);
    let all = raw.join("\n");
    for secret in [
        SENTRY_DSN,
        DSN_KEY,
        AUTH_HEADER,
        "otlp-token",
        "file-secret-1234",
        "url-token-9876",
    ] {
        assert!(
            !all.contains(secret),
            "plaintext `{secret}` found at rest: {all}"
        );
    }
    assert_eq!(all.matches("enc:v1:").count(), 4, "{all}");
    // Non-secret fields, and URLs that carry no credential, stay readable for operators.
    assert!(all.contains("http://127.0.0.1:4318/v1/traces"), "{all}");
    assert!(all.contains("http://127.0.0.1:9/hook"), "{all}");
    assert!(all.contains("http/protobuf"), "{all}");

    if let Some(bytes) = sqlite_bytes(url) {
        for secret in [
            SENTRY_DSN,
            DSN_KEY,
            AUTH_HEADER,
            "file-secret-1234",
            "url-token-9876",
        ] {
            assert!(
                !contains(&bytes, secret),
                "`{secret}` is in the SQLite files"
            );
        }
    }

    // The store hands the gateway decrypted records.
    let sentry = store.get_destination("sentry").await.unwrap().unwrap();
    assert_eq!(sentry.config["dsn"], SENTRY_DSN);
    let hook = store.get_destination("hook").await.unwrap().unwrap();
    assert_eq!(hook.config["headers"]["x-api-key"], "file-secret-1234");
    let token_hook = store.get_destination("token-hook").await.unwrap().unwrap();
    assert_eq!(token_hook.config["url"], TOKEN_URL);
}

async fn plain_urls_of_earlier_rows_are_sealed_at_start(url: &str) {
    let store = open(url).await;
    let hook = DestinationRecord {
        kind: "webhook".to_owned(),
        config: json!({ "url": TOKEN_URL, "method": "POST" }),
        ..sentry("old-hook")
    };
    store.create_destination(hook, "alice").await.unwrap();
    let version = store.config_version().await.unwrap();
    store.close().await;

    // What a row written before URLs were sealed looks like.
    let plain = json!({ "url": TOKEN_URL, "method": "POST" }).to_string();
    raw_execute(
        url,
        "UPDATE destinations SET config = $1 WHERE name = 'old-hook'",
        "UPDATE destinations SET config = ($1::text)::jsonb WHERE name = 'old-hook'",
        &plain,
    )
    .await;
    let sql = "SELECT CAST(config AS TEXT) FROM destinations WHERE name = 'old-hook'";
    assert!(raw_texts(url, sql).await[0].contains("url-token-9876"));

    let store = open(url).await;
    let raw = raw_texts(url, sql).await.join("");
    assert!(!raw.contains("url-token-9876"), "sealed at start: {raw}");
    assert!(raw.contains("enc:v1:"), "{raw}");
    let read = store.get_destination("old-hook").await.unwrap().unwrap();
    assert_eq!(read.config["url"], TOKEN_URL);
    assert_eq!(
        store.config_version().await.unwrap(),
        version,
        "sealing is not a configuration change"
    );
    // A second start finds nothing to do and leaves the row as it is.
    store.close().await;
    let again = open(url).await;
    assert_eq!(raw_texts(url, sql).await.join(""), raw);
    again.close().await;
}

async fn masking(url: &str) {
    let store = open(url).await;
    let mut rec = otlp("collector");
    rec.config["headers"]["x-short"] = json!("abc");
    rec.config["api_key"] = json!("sk-live-abcdefgh1a2b");
    store.create_destination(rec, "alice").await.unwrap();
    store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap();

    let masked = store
        .get_destination("collector")
        .await
        .unwrap()
        .unwrap()
        .masked();
    assert_eq!(masked.config["headers"]["authorization"], "****9876");
    assert_eq!(masked.config["headers"]["x-short"], "****");
    assert_eq!(masked.config["api_key"], "****1a2b");
    assert_eq!(masked.config["endpoint"], "http://127.0.0.1:4318/v1/traces");
    assert_eq!(masked.config["protocol"], "http/protobuf");
    let masked = store
        .get_destination("sentry")
        .await
        .unwrap()
        .unwrap()
        .masked();
    assert_eq!(masked.config["dsn"], "****4242");
    let shown = serde_json::to_string(&masked).unwrap();
    assert!(!shown.contains(DSN_KEY), "{shown}");
}

async fn wrong_secret_key_fails_at_start(url: &str) {
    let store = open(url).await;
    store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap();
    store.close().await;

    let err = Store::connect(url, SecretKey::from_bytes([0x11; 32]), true)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongSecretKey), "{err}");
    assert!(
        err.to_string()
            .starts_with("wrong GATECAST_SECRET_KEY: cannot decrypt stored secrets"),
        "{err}"
    );

    // The right key still works after the failed attempt.
    let store = Store::connect(url, key_a(), false).await.unwrap();
    let sentry = store.get_destination("sentry").await.unwrap().unwrap();
    assert_eq!(sentry.config["dsn"], SENTRY_DSN);
}

async fn keys_create_verify_revoke_list(url: &str) {
    let store = open(url).await;
    assert_eq!(store.active_key_count().await.unwrap(), 0);
    let (info, full) = store.create_key("ci", "alice").await.unwrap();
    assert!(full.starts_with("gk_"), "{full}");
    assert_eq!(full.len(), 43);
    assert!(full[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(info.prefix, full[..8]);
    assert_eq!(info.name, "ci");
    assert!(info.is_active());

    let (_, other) = store.create_key("bench", "alice").await.unwrap();
    assert_ne!(full, other);
    assert_eq!(store.active_key_count().await.unwrap(), 2);
    let hashes = store.active_key_hashes().await.unwrap();
    let names: Vec<&str> = hashes.iter().map(|(_, k)| k.name.as_str()).collect();
    assert_eq!(names, ["bench", "ci"]);
    let ci_hash = &hashes.iter().find(|(_, k)| k.name == "ci").unwrap().0;
    assert_eq!(ci_hash.len(), 64);
    assert_ne!(ci_hash, &full, "a hash, never the key");

    let verified = store.verify_key(&full).await.unwrap();
    assert_eq!(verified.name, "ci");
    assert_eq!(verified.id, info.id);
    assert!(store.verify_key(&full[..42]).await.is_none());
    assert!(store.verify_key("").await.is_none());
    assert!(store.verify_key(&format!("{full}x")).await.is_none());
    assert!(store.verify_key(&"a".repeat(10_000)).await.is_none());

    // Only the hash is stored.
    let raw = raw_texts(
        url,
        "SELECT id || '|' || name || '|' || key_hash || '|' || prefix || '|' || CAST(created_at AS TEXT) FROM virtual_keys",
    )
    .await;
    let all = raw.join("\n");
    assert!(!all.contains(&full), "full key stored: {all}");
    assert!(!all.contains(&full[8..]), "key body stored: {all}");
    let expected_hash = hex::encode(sha2::Sha256::digest(full.as_bytes()));
    assert!(all.contains(&expected_hash), "{all}");

    let err = store.create_key("ci", "alice").await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    let err = store.create_key("no spaces", "alice").await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");

    let revoked = store.revoke_key("ci", "bob").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.verify_key(&full).await.is_none(), "revoked keys fail");
    assert!(store.verify_key(&other).await.is_some());
    assert_eq!(store.active_key_count().await.unwrap(), 1);
    let err = store.revoke_key("ci", "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // The name can be reused after rotation; the list shows both.
    let (new_info, new_full) = store.create_key("ci", "alice").await.unwrap();
    assert_eq!(store.verify_key(&new_full).await.unwrap().id, new_info.id);
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 3);
    let ci: Vec<_> = keys.iter().filter(|k| k.name == "ci").collect();
    assert_eq!(ci.len(), 2);
    assert_eq!(ci.iter().filter(|k| k.is_active()).count(), 1);
    let listed = serde_json::to_string(&keys).unwrap();
    assert!(!listed.contains(&expected_hash) && !listed.contains(&full));
}

async fn audit_rows_have_no_secrets(url: &str) {
    let store = open(url).await;
    store
        .create_destination(sentry("sentry"), "alice")
        .await
        .unwrap();
    store
        .create_destination(otlp("collector"), "alice")
        .await
        .unwrap();
    let mut config = otlp("x").config;
    config["headers"]["authorization"] = json!("Bearer rotated-secret-5555");
    store
        .update_destination(
            "collector",
            DestinationPatch {
                config: Some(config),
                privacy_mode: Some(true),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap();
    store.delete_destination("sentry", "carol").await.unwrap();
    let (_, full) = store.create_key("ci", "dave").await.unwrap();
    store.revoke_key("ci", "dave").await.unwrap();
    store
        .sync_file_destinations(vec![DestinationRecord {
            config: json!({"dsn": "https://ffffffffffffffffffffffffffffffff@sentry.example/1"}),
            kind: "sentry".to_owned(),
            ..file_dest("file-sentry", "")
        }])
        .await
        .unwrap();

    let log = store.audit_log(100).await.unwrap();
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("config-file", "destination.create", "file-sentry"),
            ("dave", "key.revoke", "ci"),
            ("dave", "key.create", "ci"),
            ("carol", "destination.delete", "sentry"),
            ("bob", "destination.update", "collector"),
            ("alice", "destination.create", "collector"),
            ("alice", "destination.create", "sentry"),
        ]
    );
    assert_eq!(log[4].detail["changed"], json!(["config", "privacy_mode"]));
    assert_eq!(log[4].detail["privacy_mode"], json!(true));
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(store.audit_log(2).await.unwrap().len(), 2);

    let raw = raw_texts(url, "SELECT CAST(detail AS TEXT) FROM audit_log").await;
    let all = format!(
        "{}\n{}",
        raw.join("\n"),
        serde_json::to_string(&log).unwrap()
    );
    for secret in [
        SENTRY_DSN,
        DSN_KEY,
        AUTH_HEADER,
        "rotated-secret-5555",
        "ffffffffffffffffffffffffffffffff",
        &full,
        "enc:v1:",
    ] {
        assert!(!all.contains(secret), "`{secret}` in the audit log: {all}");
    }
}

async fn config_version_bumps_once_per_change(url: &str) {
    let store = open(url).await;
    let v0 = store.config_version().await.unwrap();
    store.create_destination(sentry("s"), "a").await.unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 1);
    let patch = DestinationPatch {
        enabled: Some(false),
        ..Default::default()
    };
    store
        .update_destination("s", patch.clone(), "a")
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 2);
    // The same patch again changes nothing and does not bump.
    let unchanged = store.update_destination("s", patch, "a").await.unwrap();
    assert!(!unchanged.enabled);
    assert_eq!(store.config_version().await.unwrap(), v0 + 2);
    store.create_key("k", "a").await.unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 3);
    store.revoke_key("k", "a").await.unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 4);
    store.delete_destination("s", "a").await.unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 5);
    // Failed mutations leave it alone.
    assert!(store.delete_destination("s", "a").await.is_err());
    assert!(store.revoke_key("k", "a").await.is_err());
    assert_eq!(store.config_version().await.unwrap(), v0 + 5);
    // A second handle on the same database sees the same version.
    let other = Store::connect(url, key_a(), false).await.unwrap();
    assert_eq!(other.config_version().await.unwrap(), v0 + 5);
}

async fn watch_sees_changes_from_another_replica(url: &str) {
    let watcher = open(url).await;
    let writer = Store::connect(url, key_a(), false).await.unwrap();
    // On Postgres the interval is far longer than the wait below, so only LISTEN/NOTIFY can
    // deliver the change in time; on SQLite, polling does.
    let interval = if url.starts_with("postgres") {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(50)
    };
    let mut rx = watcher.watch(interval);
    let start = *rx.borrow_and_update();
    // Let the LISTEN connection come up first so the wake really comes from NOTIFY.
    tokio::time::sleep(Duration::from_millis(300)).await;

    writer
        .create_destination(sentry("s"), "alice")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("watch did not see the change within 10 s")
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), start + 1);

    writer.create_key("k", "alice").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("watch did not see the second change within 10 s")
        .unwrap();
    assert_eq!(*rx.borrow(), start + 2);
}

async fn watch_sees_local_changes_at_once(url: &str) {
    let store = open(url).await;
    let mut rx = store.watch(Duration::from_secs(3600));
    let start = *rx.borrow_and_update();
    store
        .create_destination(sentry("s"), "alice")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a local change must wake the watcher without waiting for a poll")
        .unwrap();
    assert_eq!(*rx.borrow(), start + 1);
    drop(rx);
    // With every receiver gone the task ends; the store keeps working.
    store.delete_destination("s", "alice").await.unwrap();
}

async fn concurrent_mutations_serialize(url: &str) {
    let store = open(url).await;
    let v0 = store.config_version().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.spawn(async move {
            if i % 3 == 0 {
                store.create_key(&format!("k{i}"), "t").await.map(|_| ())
            } else {
                store
                    .create_destination(sentry(&format!("d{i}")), "t")
                    .await
                    .map(|_| ())
            }
        });
    }
    // Two writers racing for the same name: exactly one wins.
    for _ in 0..2 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .create_destination(sentry("same"), "t")
                .await
                .map(|_| ())
        });
    }
    let mut ok = 0;
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::AlreadyExists { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, conflicts), (13, 1));
    assert_eq!(store.config_version().await.unwrap(), v0 + 13);
    assert_eq!(store.list_destinations().await.unwrap().len(), 9);
    assert_eq!(store.audit_log(100).await.unwrap().len(), 13);
}

async fn not_migrated_is_a_clear_error(url: &str) {
    let err = Store::connect(url, key_a(), false).await.unwrap_err();
    assert!(matches!(err, StoreError::NotMigrated { .. }), "{err}");
    assert!(err.to_string().contains("gatecast migrate"), "{err}");
    // Migrating (as `gatecast migrate` does) fixes it, and is idempotent.
    let store = Store::connect(url, key_a(), true).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.config_version().await.unwrap(), 0);
}

async fn connect_existing_refuses_a_new_database(url: &str) {
    let err = Store::connect_existing(url, key_a(), true)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoDatabase { .. }), "{err}");
    if let Some(file) = gatecast_store::sqlite_file(url) {
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        assert!(!file.exists(), "nothing is created");
        assert!(!file.parent().unwrap().exists(), "not even the directory");
    } else {
        assert!(!err.to_string().contains("password"), "{err}");
        // Nothing was migrated into the empty database either.
        let err = Store::connect(url, key_a(), false).await.unwrap_err();
        assert!(matches!(err, StoreError::NotMigrated { .. }), "{err}");
    }
    let store = open(url).await;
    store.create_key("k", "a").await.unwrap();
    store.close().await;
    let store = Store::connect_existing(url, key_a(), true).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

async fn overrides_of_file_destinations_outlive_the_sync_until_reset(url: &str) {
    let store = open(url).await;
    store
        .sync_file_destinations(vec![file_dest("local", "a.jsonl")])
        .await
        .unwrap();
    store
        .create_destination(sentry("api"), "alice")
        .await
        .unwrap();
    let v0 = store.config_version().await.unwrap();

    let privacy_on = OverridesPatch {
        privacy_mode: Some(Some(true)),
        ..Default::default()
    };
    let rec = store
        .set_destination_overrides("local", privacy_on, "alice")
        .await
        .unwrap();
    assert_eq!(rec.overrides.privacy_mode, Some(true));
    assert!(rec.effective_privacy_mode() && !rec.privacy_mode, "{rec:?}");
    assert_eq!(store.config_version().await.unwrap(), v0 + 1);
    let entry = &store.audit_log(1).await.unwrap()[0];
    assert_eq!(
        (
            entry.actor.as_str(),
            entry.action.as_str(),
            entry.target.as_str()
        ),
        ("alice", "destination.override", "local")
    );
    assert_eq!(entry.detail["privacy_mode"], true);
    assert_eq!(entry.detail["config_file"]["privacy_mode"], false);

    // The same override again writes nothing.
    store
        .set_destination_overrides("local", privacy_on, "alice")
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), v0 + 1);

    // A start-up sync of the same file keeps it; so does one that changes the file.
    assert!(store
        .sync_file_destinations(vec![file_dest("local", "a.jsonl")])
        .await
        .unwrap()
        .is_empty());
    let mut changed = file_dest("local", "b.jsonl");
    changed.enabled = false;
    let summary = store.sync_file_destinations(vec![changed]).await.unwrap();
    assert_eq!(summary.updated, ["local"]);
    let rec = store.get_destination("local").await.unwrap().unwrap();
    assert_eq!(rec.config["path"], "b.jsonl");
    assert_eq!(
        rec.overrides,
        Overrides {
            privacy_mode: Some(true),
            enabled: None
        }
    );
    assert!(!rec.effective_enabled(), "no override: the file's value");
    assert_eq!(
        store.list_destinations().await.unwrap()[1].overrides,
        rec.overrides
    );

    // Both switches, then a reset of one, then of all.
    let v1 = store.config_version().await.unwrap();
    store
        .set_destination_overrides(
            "local",
            OverridesPatch {
                enabled: Some(Some(true)),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap();
    let rec = store
        .set_destination_overrides(
            "local",
            OverridesPatch {
                privacy_mode: Some(None),
                ..Default::default()
            },
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(
        rec.overrides,
        Overrides {
            privacy_mode: None,
            enabled: Some(true)
        }
    );
    assert!(rec.effective_enabled() && !rec.effective_privacy_mode());
    let rec = store
        .set_destination_overrides("local", OverridesPatch::RESET, "bob")
        .await
        .unwrap();
    assert!(rec.overrides.is_empty());
    assert_eq!(store.config_version().await.unwrap(), v1 + 3);
    let entry = &store.audit_log(1).await.unwrap()[0];
    assert_eq!(entry.detail["changed"], json!(["enabled"]));
    assert_eq!(entry.detail["enabled"], Value::Null, "cleared");

    // Only config-file destinations have overrides.
    let err = store
        .set_destination_overrides("api", privacy_on, "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotOverridable { .. }), "{err}");
    let err = store
        .set_destination_overrides("nope", privacy_on, "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // Removed from the file, the destination goes with its overrides; re-added, it has none.
    store
        .set_destination_overrides("local", privacy_on, "bob")
        .await
        .unwrap();
    store.sync_file_destinations(vec![]).await.unwrap();
    store
        .sync_file_destinations(vec![file_dest("local", "a.jsonl")])
        .await
        .unwrap();
    let rec = store.get_destination("local").await.unwrap().unwrap();
    assert!(rec.overrides.is_empty(), "{rec:?}");
}

async fn replica_heartbeats(url: &str) {
    let store = open(url).await;
    let version = store.config_version().await.unwrap();
    let started = chrono::Utc::now();
    store.record_replica("a", 3, started).await.unwrap();
    store.record_replica("b", 5, started).await.unwrap();
    let seen = store.replicas().await.unwrap();
    let ids: Vec<_> = seen.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"], "most recently seen first");
    let a_first_seen = seen[1].last_seen;
    assert!(a_first_seen >= started);

    // A late, older reading never moves a replica's version back.
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.record_replica("a", 2, started).await.unwrap();
    let a = |all: Vec<gatecast_store::ReplicaStatus>| all.into_iter().find(|r| r.id == "a");
    let now = a(store.replicas().await.unwrap()).unwrap();
    assert_eq!(now.applied_version, 3);
    assert!(now.last_seen > a_first_seen, "but it is seen again");
    assert_eq!(
        now.started_at.timestamp_micros(),
        started.timestamp_micros()
    );
    store.record_replica("a", 7, started).await.unwrap();
    assert_eq!(
        a(store.replicas().await.unwrap()).unwrap().applied_version,
        7
    );

    store.forget_replica("b").await.unwrap();
    assert_eq!(store.replicas().await.unwrap().len(), 1);
    let pruned = store
        .forget_replicas_unseen_since(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(pruned, 0, "seen just now");
    let pruned = store
        .forget_replicas_unseen_since(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(store.replicas().await.unwrap().is_empty());
    assert_eq!(
        store.config_version().await.unwrap(),
        version,
        "heartbeats are not configuration"
    );
    assert!(store.audit_log(10).await.unwrap().is_empty());
}

// ----- SQLite-only -------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_creates_file_and_parent_dirs_in_wal_mode() {
    let db = TestDb::sqlite();
    let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    assert!(!std::path::Path::new(&path).exists());
    let store = open(&db.url).await;
    assert_eq!(store.backend(), "sqlite");
    store.ping().await.unwrap();
    assert!(std::path::Path::new(&path).is_file());
    let mode = raw_texts(&db.url, "PRAGMA journal_mode").await;
    assert_eq!(mode, ["wal"]);
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = Store::connect("sqlite::memory:", key_a(), true)
        .await
        .unwrap();
    store.create_destination(sentry("s"), "a").await.unwrap();
    assert_eq!(store.list_destinations().await.unwrap().len(), 1);
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    let err = Store::connect("mysql://u:hunter2@db/x", key_a(), true)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unsupported database URL"), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    // Port 9 on loopback: nothing listens there, so the connection is refused at once.
    let err = Store::connect("postgres://gc:hunter2@127.0.0.1:9/gatecast", key_a(), true)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to database"), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
}

#[test]
fn masked_record_serializes_with_type_and_lowercase_source() {
    let rec = file_dest("local", "data/traces.jsonl").masked();
    let v: Value = serde_json::to_value(&rec).unwrap();
    assert_eq!(v["type"], "file");
    assert_eq!(v["source"], "file");
    assert_eq!(v["config"]["path"], "data/traces.jsonl");
    let patch: Result<DestinationPatch, _> = serde_json::from_value(json!({ "privacy": true }));
    assert!(
        patch.is_err(),
        "unknown PATCH fields are rejected, not ignored"
    );
    let patch: DestinationPatch =
        serde_json::from_value(json!({ "privacy_mode": true, "type": "otlp" })).unwrap();
    assert_eq!(patch.privacy_mode, Some(true));
    assert_eq!(patch.kind.as_deref(), Some("otlp"));
}

fn spend_key(day: &str, key: &str, user: &str, model: &str) -> SpendKey {
    SpendKey {
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
        key: key.into(),
        user: user.into(),
        model: model.into(),
    }
}

fn sums(cost_nanousd: i64, input: i64, output: i64) -> SpendSums {
    SpendSums {
        cost_nanousd,
        requests: 1,
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: 1,
        ..SpendSums::default()
    }
}

/// Two replicas (two handles, two pools) adding to the same row at once: every addition
/// lands, none is lost to a read-modify-write race, and no batch deadlocks the other.
async fn spend_from_two_writers_adds_up_exactly(url: &str) {
    let first = open(url).await;
    let second = Store::connect(url, key_a(), false).await.unwrap();
    const BATCHES: i64 = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for (n, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        tasks.spawn(async move {
            for i in 0..BATCHES {
                // The shared row and one of the writer's own, in opposite orders each time:
                // the store sorts them, so the two writers lock rows in one order.
                let mut batch = vec![
                    (
                        spend_key("2026-05-04", "team-a", "alice", "gpt-4o-mini"),
                        sums(1_234_567, 10, 3),
                    ),
                    (
                        spend_key("2026-05-04", "team-a", &format!("writer-{n}"), "gpt-4o"),
                        sums(7, 1, 1),
                    ),
                ];
                if i % 2 == 1 {
                    batch.reverse();
                }
                store.add_spend(&batch).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let rows = first.spend(None, None).await.unwrap();
    let shared = rows
        .iter()
        .find(|r| r.user.as_deref() == Some("alice"))
        .unwrap();
    assert_eq!(shared.sums.requests, 2 * BATCHES);
    assert_eq!(shared.sums.cost_nanousd, 2 * BATCHES * 1_234_567);
    assert_eq!(shared.sums.input_tokens, 2 * BATCHES * 10);
    assert_eq!(shared.sums.output_tokens, 2 * BATCHES * 3);
    assert_eq!(shared.sums.cache_read_input_tokens, 2 * BATCHES);
    assert_eq!(shared.usd, (2 * BATCHES * 1_234_567) as f64 / 1e9);
    let per_key = second.spend_per_key(None).await.unwrap();
    assert_eq!(
        per_key,
        [("team-a".to_owned(), 2 * BATCHES * (1_234_567 + 7))]
    );
    second.close().await;
}

async fn spend_reports_group_and_start_at_a_day(url: &str) {
    let store = open(url).await;
    assert!(store.spend(None, None).await.unwrap().is_empty());
    store
        .add_spend(&[
            (
                spend_key("2026-04-30", "team-a", "", "gpt-4o"),
                sums(100, 1, 1),
            ),
            (
                spend_key("2026-05-01", "team-a", "bob", "gpt-4o"),
                sums(20, 2, 2),
            ),
            (
                spend_key("2026-05-01", "team-b", "bob", "o3"),
                sums(3, 4, 4),
            ),
            (spend_key("2026-05-02", "", "", "o3"), sums(5, 8, 8)),
        ])
        .await
        .unwrap();
    let all = store.spend(None, None).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].day.as_deref(), Some("2026-04-30"));
    assert_eq!(all[0].user.as_deref(), Some(""), "no user is shown as ''");

    let may = NaiveDate::from_ymd_opt(2026, 5, 1);
    let by_key = store.spend(may, Some(SpendBy::Key)).await.unwrap();
    let shown: Vec<(&str, i64, i64)> = by_key
        .iter()
        .map(|r| {
            (
                r.key.as_deref().unwrap(),
                r.sums.cost_nanousd,
                r.sums.requests,
            )
        })
        .collect();
    assert_eq!(shown, [("", 5, 1), ("team-a", 20, 1), ("team-b", 3, 1)]);
    assert!(by_key.iter().all(|r| r.day.is_none() && r.model.is_none()));

    let by_model = store.spend(None, Some(SpendBy::Model)).await.unwrap();
    let shown: Vec<(&str, i64, i64)> = by_model
        .iter()
        .map(|r| {
            (
                r.model.as_deref().unwrap(),
                r.sums.cost_nanousd,
                r.sums.input_tokens,
            )
        })
        .collect();
    assert_eq!(shown, [("gpt-4o", 120, 3), ("o3", 8, 12)]);
    let by_day = store.spend(None, Some(SpendBy::Day)).await.unwrap();
    assert_eq!(by_day.len(), 3);
    assert_eq!(by_day[1].sums.cost_nanousd, 23);
    let by_user = store.spend(may, Some(SpendBy::User)).await.unwrap();
    assert_eq!(by_user.len(), 2);

    // The budget check's sums leave out requests without a key.
    let per_key = store.spend_per_key(may).await.unwrap();
    let mut per_key: Vec<(String, i64)> = per_key;
    per_key.sort();
    assert_eq!(
        per_key,
        [("team-a".to_owned(), 20), ("team-b".to_owned(), 3)]
    );
    // Spend is not a config change: running gateways do not reload for it.
    let v = store.config_version().await.unwrap();
    store
        .add_spend(&[(spend_key("2026-05-02", "", "", "o3"), sums(1, 1, 1))])
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), v);
}

async fn key_budgets_are_set_listed_and_cleared(url: &str) {
    let store = open(url).await;
    let daily = Budget::new(50.0, BudgetPeriod::Day).unwrap();
    let (info, _) = store
        .create_key_with_budget("team-a", Some(daily), "alice")
        .await
        .unwrap();
    assert_eq!(info.budget, Some(daily));
    store.create_key("team-b", "alice").await.unwrap();
    assert_eq!(
        store.key_budgets().await.unwrap(),
        [("team-a".to_owned(), daily)]
    );
    let v = store.config_version().await.unwrap();
    let monthly = Budget::new(0.25, BudgetPeriod::Month).unwrap();
    let changed = store
        .set_key_budget("team-b", Some(monthly), "bob")
        .await
        .unwrap();
    assert_eq!(changed.budget, Some(monthly));
    assert_eq!(store.config_version().await.unwrap(), v + 1);
    let listed = store.list_keys().await.unwrap();
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(json[1]["budget"], json!({"usd": 0.25, "period": "month"}));
    let cleared = store.set_key_budget("team-a", None, "bob").await.unwrap();
    assert_eq!(cleared.budget, None);
    assert!(serde_json::to_value(&cleared)
        .unwrap()
        .get("budget")
        .is_none());
    assert_eq!(
        store.key_budgets().await.unwrap(),
        [("team-b".to_owned(), monthly)]
    );
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log[0].action, "key.budget");
    assert_eq!(log[0].detail["budget"], Value::Null);
    let err = store
        .set_key_budget("nobody", None, "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    // A revoked key's budget no longer counts.
    store.revoke_key("team-b", "bob").await.unwrap();
    assert!(store.key_budgets().await.unwrap().is_empty());
}
