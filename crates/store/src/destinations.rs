//! Telemetry destinations: the API's own (created, patched, deleted), the config file's (synced
//! at every start, read-only but for runtime overrides of `privacy_mode` and `enabled`), their
//! secrets sealed at rest, and what each change records in the audit log.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::types::Json;

use crate::db::{new_id, Db as _, Sql, Tx};
use crate::record::validate_record;
use crate::secret::{decrypt_config, encrypt_config, restore_masked};
use crate::{
    DestinationPatch, DestinationRecord, Overrides, OverridesPatch, SecretKey, Source, Store,
    StoreError,
};

/// Actor recorded in the audit log for changes that come from the config file.
pub const CONFIG_FILE_ACTOR: &str = "config-file";

const SELECT_DEST_BY_NAME: &str = "SELECT id, name, type, config, enabled, privacy_mode, \
     sampling_rate, filters, source, privacy_mode_override, enabled_override \
     FROM destinations WHERE name = $1";
const SELECT_ALL_DEST: &str = "SELECT id, name, type, config, enabled, privacy_mode, \
     sampling_rate, filters, source, privacy_mode_override, enabled_override \
     FROM destinations ORDER BY name";
const UPDATE_OVERRIDES: &str = "UPDATE destinations SET privacy_mode_override = $1, \
     enabled_override = $2, updated_at = $3 WHERE id = $4";
const INSERT_DEST: &str = "INSERT INTO destinations (id, name, type, config, enabled, \
     privacy_mode, sampling_rate, filters, source, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)";
const UPDATE_DEST: &str = "UPDATE destinations SET type = $1, config = $2, enabled = $3, \
     privacy_mode = $4, sampling_rate = $5, filters = $6, updated_at = $7 WHERE id = $8";

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

/// Writes a new destination row; `stored_config` is `rec.config` sealed.
async fn insert_destination(
    tx: &mut Tx<'_>,
    rec: &DestinationRecord,
    stored_config: &Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    tx.execute(
        Sql::new(INSERT_DEST)
            .bind(&rec.id)
            .bind(&rec.name)
            .bind(&rec.kind)
            .bind(stored_config)
            .bind(rec.enabled)
            .bind(rec.privacy_mode)
            .bind(rec.sampling_rate)
            .bind(&rec.filters)
            .bind(rec.source.as_str())
            .bind(now),
    )
    .await?;
    Ok(())
}

/// Rewrites a destination row from `rec` (its overrides aside); `stored_config` is
/// `rec.config` sealed.
async fn update_destination_row(
    tx: &mut Tx<'_>,
    rec: &DestinationRecord,
    stored_config: &Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    tx.execute(
        Sql::new(UPDATE_DEST)
            .bind(&rec.kind)
            .bind(stored_config)
            .bind(rec.enabled)
            .bind(rec.privacy_mode)
            .bind(rec.sampling_rate)
            .bind(&rec.filters)
            .bind(now)
            .bind(&rec.id),
    )
    .await?;
    Ok(())
}

impl Store {
    /// Seals, in place, what rows written by earlier versions hold in plain text that is now
    /// encrypted at rest (URLs carrying a credential). The configuration itself does not
    /// change, so the version does not move and nothing is audited. The write is conditional
    /// on the row being as read: a row another replica changed meanwhile keeps that change,
    /// which that replica sealed.
    pub(crate) async fn seal_plain_urls(&self) -> Result<(), StoreError> {
        let rows: Vec<DestRow> = self.inner.pool.fetch_all(Sql::new(SELECT_ALL_DEST)).await?;
        for row in rows {
            let stored = &row.config.0;
            let sealed = encrypt_config(&self.inner.key, stored)?;
            if &sealed == stored {
                continue;
            }
            let written = self
                .inner
                .pool
                .execute(
                    Sql::new("UPDATE destinations SET config = $1 WHERE id = $2 AND config = $3")
                        .bind(&sealed)
                        .bind(&row.id)
                        .bind(stored),
                )
                .await?;
            if written > 0 {
                tracing::info!(destination = %row.name, "sealed a stored URL that carries a credential");
            }
        }
        Ok(())
    }

    /// All destinations with secrets decrypted, for the gateway's own use; show people
    /// [`DestinationRecord::masked`] instead.
    pub async fn list_destinations(&self) -> Result<Vec<DestinationRecord>, StoreError> {
        let rows: Vec<DestRow> = self.inner.pool.fetch_all(Sql::new(SELECT_ALL_DEST)).await?;
        rows.into_iter()
            .map(|row| row.into_record(&self.inner.key))
            .collect()
    }

    /// One destination with secrets decrypted, or `None`.
    pub async fn get_destination(
        &self,
        name: &str,
    ) -> Result<Option<DestinationRecord>, StoreError> {
        let row: Option<DestRow> = self
            .inner
            .pool
            .fetch_optional(Sql::new(SELECT_DEST_BY_NAME).bind(name))
            .await?;
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
        let mut tx = self.begin_write().await?;
        let existing: Option<(String,)> = tx
            .fetch_optional(
                Sql::new("SELECT source FROM destinations WHERE name = $1").bind(&rec.name),
            )
            .await?;
        if let Some((source,)) = existing {
            return Err(if source == Source::File.as_str() {
                StoreError::ReadOnly { name: rec.name }
            } else {
                StoreError::AlreadyExists {
                    what: "destination",
                    name: rec.name,
                }
            });
        }
        insert_destination(&mut tx, &rec, &stored_config, now).await?;
        tx.audit(actor, "destination.create", &rec.name, detail)
            .await?;
        tx.commit().await?;
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
        let key = &self.inner.key;
        let mut tx = self.begin_write().await?;
        let row: Option<DestRow> = tx
            .fetch_optional(Sql::new(SELECT_DEST_BY_NAME).bind(name))
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "destination",
                name: name.to_owned(),
            });
        };
        if row.source()? == Source::File {
            return Err(StoreError::ReadOnly {
                name: name.to_owned(),
            });
        }
        let mut rec = row.into_record(key)?;
        let changed = apply_patch(&mut rec, patch);
        validate_record(&mut rec)?;
        if changed.is_empty() {
            // Dropping the transaction rolls the version bump back.
            drop(tx);
            return Ok(rec);
        }
        let stored_config = encrypt_config(key, &rec.config)?;
        update_destination_row(&mut tx, &rec, &stored_config, Utc::now()).await?;
        tx.audit(
            actor,
            "destination.update",
            name,
            update_detail(&rec, &changed),
        )
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Deletes an API-owned destination.
    pub async fn delete_destination(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let existing: Option<(String, String)> = tx
            .fetch_optional(
                Sql::new("SELECT source, type FROM destinations WHERE name = $1").bind(name),
            )
            .await?;
        let Some((source, kind)) = existing else {
            return Err(StoreError::NotFound {
                what: "destination",
                name: name.to_owned(),
            });
        };
        if source == Source::File.as_str() {
            return Err(StoreError::ReadOnly {
                name: name.to_owned(),
            });
        }
        tx.execute(Sql::new("DELETE FROM destinations WHERE name = $1").bind(name))
            .await?;
        tx.audit(actor, "destination.delete", name, json!({ "type": kind }))
            .await?;
        tx.commit().await
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
        let mut tx = self.begin_write().await?;
        let row: Option<DestRow> = tx
            .fetch_optional(Sql::new(SELECT_DEST_BY_NAME).bind(name))
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "destination",
                name: name.to_owned(),
            });
        };
        if row.source()? != Source::File {
            return Err(StoreError::NotOverridable {
                name: name.to_owned(),
            });
        }
        let mut rec = row.into_record(&self.inner.key)?;
        let next = patch.apply(rec.overrides);
        if next == rec.overrides {
            drop(tx);
            return Ok(rec);
        }
        tx.execute(
            Sql::new(UPDATE_OVERRIDES)
                .bind(next.privacy_mode)
                .bind(next.enabled)
                .bind(Utc::now())
                .bind(&rec.id),
        )
        .await?;
        tx.audit(
            actor,
            "destination.override",
            name,
            override_detail(&rec, next),
        )
        .await?;
        rec.overrides = next;
        tx.commit().await?;
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
        let key = &self.inner.key;
        let mut tx = self.begin_write().await?;
        let rows: Vec<DestRow> = tx.fetch_all(Sql::new(SELECT_ALL_DEST)).await?;
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
                    tx.execute(Sql::new("DELETE FROM destinations WHERE id = $1").bind(&row.id))
                        .await?;
                    tx.audit(
                        CONFIG_FILE_ACTOR,
                        "destination.delete",
                        &row.name,
                        json!({ "type": row.kind, "source": "file" }),
                    )
                    .await?;
                    summary.removed.push(row.name);
                }
                (Source::File, Some(rec)) => {
                    seen.insert(row.name.clone());
                    let current = row.into_record(key)?;
                    rec.id = current.id.clone();
                    let changed = differences(&current, rec);
                    if !changed.is_empty() {
                        let stored_config = encrypt_config(key, &rec.config)?;
                        update_destination_row(&mut tx, rec, &stored_config, now).await?;
                        tx.audit(
                            CONFIG_FILE_ACTOR,
                            "destination.update",
                            &rec.name,
                            update_detail(rec, &changed),
                        )
                        .await?;
                        summary.updated.push(rec.name.clone());
                    }
                }
            }
        }
        for rec in wanted.values_mut().filter(|r| !seen.contains(&r.name)) {
            rec.id = new_id();
            let stored_config = encrypt_config(key, &rec.config)?;
            insert_destination(&mut tx, rec, &stored_config, now).await?;
            tx.audit(
                CONFIG_FILE_ACTOR,
                "destination.create",
                &rec.name,
                create_detail(rec),
            )
            .await?;
            summary.created.push(rec.name.clone());
        }
        if summary.is_empty() {
            drop(tx);
        } else {
            tx.commit().await?;
        }
        Ok(summary)
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
