//! Virtual keys: created once in full, stored as a SHA-256 digest, revoked by name; each
//! may carry a budget.

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::db::{new_id, Db as _, Sql};
use crate::record::validate_name;
use crate::{Budget, BudgetPeriod, KeyInfo, Store, StoreError};

const KEY_PREFIX: &str = "gk_";
const KEY_RANDOM_LEN: usize = 40;
const KEY_DISPLAY_LEN: usize = 8;
const KEY_COLUMNS: &str =
    "id, name, key_hash, prefix, created_at, revoked_at, budget_usd, budget_period";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    key_hash: String,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    budget_usd: Option<f64>,
    budget_period: Option<String>,
}

impl From<KeyRow> for KeyInfo {
    fn from(row: KeyRow) -> Self {
        // The columns' CHECKs admit only valid budgets; a row that still does not parse
        // (written by a newer version) is shown without one rather than failing the list.
        let budget = match (row.budget_usd, row.budget_period.as_deref()) {
            (Some(usd), Some(period)) => period
                .parse::<BudgetPeriod>()
                .ok()
                .and_then(|period| Budget::new(usd, period).ok()),
            _ => None,
        };
        KeyInfo {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            budget,
        }
    }
}

impl Store {
    /// Creates a virtual key and returns it in full, the only time it is ever available: only
    /// its SHA-256 is stored.
    pub async fn create_key(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<(KeyInfo, String), StoreError> {
        self.create_key_with_budget(name, None, actor).await
    }

    /// As [`Store::create_key`], with a spending cap from the start.
    pub async fn create_key_with_budget(
        &self,
        name: &str,
        budget: Option<Budget>,
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
            budget,
        };
        let hash = sha256_hex(&full);
        let mut tx = self.begin_write().await?;
        let taken: Option<(String,)> = tx
            .fetch_optional(
                Sql::new("SELECT id FROM virtual_keys WHERE name = $1 AND revoked_at IS NULL")
                    .bind(name),
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "active key",
                name: name.to_owned(),
            });
        }
        tx.execute(
            Sql::new(
                "INSERT INTO virtual_keys \
                 (id, name, key_hash, prefix, created_at, revoked_at, budget_usd, budget_period) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
            )
            .bind(&info.id)
            .bind(&info.name)
            .bind(&hash)
            .bind(&info.prefix)
            .bind(info.created_at)
            .bind(budget.map(|b| b.usd))
            .bind(budget.map(|b| b.period.as_str())),
        )
        .await?;
        let mut detail = json!({ "id": info.id, "prefix": info.prefix });
        if let Some(b) = budget {
            detail["budget"] = json!(b);
        }
        tx.audit(actor, "key.create", name, detail).await?;
        tx.commit().await?;
        Ok((info, full))
    }

    /// All keys, revoked ones included (with `revoked_at`), oldest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM virtual_keys ORDER BY created_at, name");
        let rows: Vec<KeyRow> = self.inner.pool.fetch_all(Sql::new(&sql)).await?;
        Ok(rows.into_iter().map(KeyInfo::from).collect())
    }

    /// Revokes the active key called `name`; its name can then be reused for a new key.
    pub async fn revoke_key(&self, name: &str, actor: &str) -> Result<KeyInfo, StoreError> {
        let sql = format!(
            "UPDATE virtual_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL \
             RETURNING {KEY_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row: Option<KeyRow> = tx
            .fetch_optional(Sql::new(&sql).bind(Utc::now()).bind(name))
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "active key",
                name: name.to_owned(),
            });
        };
        let info = KeyInfo::from(row);
        tx.audit(
            actor,
            "key.revoke",
            name,
            json!({ "id": info.id, "prefix": info.prefix }),
        )
        .await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Sets (or, with `None`, removes) the budget of the active key called `name`. Running
    /// gateways enforce it from their next budget refresh, within about a second.
    pub async fn set_key_budget(
        &self,
        name: &str,
        budget: Option<Budget>,
        actor: &str,
    ) -> Result<KeyInfo, StoreError> {
        let sql = format!(
            "UPDATE virtual_keys SET budget_usd = $1, budget_period = $2 \
             WHERE name = $3 AND revoked_at IS NULL RETURNING {KEY_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row: Option<KeyRow> = tx
            .fetch_optional(
                Sql::new(&sql)
                    .bind(budget.map(|b| b.usd))
                    .bind(budget.map(|b| b.period.as_str()))
                    .bind(name),
            )
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "active key",
                name: name.to_owned(),
            });
        };
        let info = KeyInfo::from(row);
        tx.audit(
            actor,
            "key.budget",
            name,
            json!({ "id": info.id, "budget": budget }),
        )
        .await?;
        tx.commit().await?;
        Ok(info)
    }

    /// The active keys that have a budget, by name.
    pub async fn key_budgets(&self) -> Result<Vec<(String, Budget)>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM virtual_keys \
             WHERE revoked_at IS NULL AND budget_usd IS NOT NULL ORDER BY name"
        );
        let rows: Vec<KeyRow> = self.inner.pool.fetch_all(Sql::new(&sql)).await?;
        Ok(rows
            .into_iter()
            .map(KeyInfo::from)
            .filter_map(|k| Some((k.name, k.budget?)))
            .collect())
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
        let found: Result<Option<KeyRow>, sqlx::Error> = self
            .inner
            .pool
            .fetch_optional(Sql::new(&sql).bind(&hash))
            .await;
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
        let rows: Vec<KeyRow> = self.inner.pool.fetch_all(Sql::new(&sql)).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.key_hash.clone(), KeyInfo::from(row)))
            .collect())
    }

    /// Number of keys not revoked; zero means the gateway runs open.
    pub async fn active_key_count(&self) -> Result<i64, StoreError> {
        let (count,): (i64,) = self
            .inner
            .pool
            .fetch_one(Sql::new(
                "SELECT COUNT(*) FROM virtual_keys WHERE revoked_at IS NULL",
            ))
            .await?;
        Ok(count)
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The digest a virtual key is stored and looked up under.
pub fn key_hash(presented: &str) -> String {
    sha256_hex(presented)
}
