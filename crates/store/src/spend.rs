//! Spend per UTC day, virtual key, user and model: batches of sums added atomically (every
//! replica adds into the same rows), and read back whole or grouped by one dimension.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::db::{Db as _, Sql};
use crate::{Store, StoreError};

/// Nano-dollars in a dollar: spend is stored in whole nano-dollars (see the migration).
pub const NANOS_PER_USD: f64 = 1e9;

/// The row a spend adds to. `key` and `user` are empty when the request had none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpendKey {
    pub day: NaiveDate,
    pub key: String,
    pub user: String,
    pub model: String,
}

/// What a batch of requests added up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendSums {
    pub cost_nanousd: i64,
    pub requests: i64,
    /// Requests with usage but no cost: their model has no price, so `usd` leaves them out.
    pub unpriced_requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub reasoning_output_tokens: i64,
}

impl SpendSums {
    pub fn add(&mut self, other: &SpendSums) {
        let add = |a: &mut i64, b: i64| *a = a.saturating_add(b);
        add(&mut self.cost_nanousd, other.cost_nanousd);
        add(&mut self.requests, other.requests);
        add(&mut self.unpriced_requests, other.unpriced_requests);
        add(&mut self.input_tokens, other.input_tokens);
        add(&mut self.output_tokens, other.output_tokens);
        add(
            &mut self.cache_read_input_tokens,
            other.cache_read_input_tokens,
        );
        add(
            &mut self.cache_creation_input_tokens,
            other.cache_creation_input_tokens,
        );
        add(
            &mut self.reasoning_output_tokens,
            other.reasoning_output_tokens,
        );
    }

    pub fn usd(&self) -> f64 {
        self.cost_nanousd as f64 / NANOS_PER_USD
    }
}

/// The dimension a spend report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpendBy {
    Key,
    User,
    Model,
    Day,
}

impl SpendBy {
    fn column(self) -> &'static str {
        match self {
            SpendBy::Key => "key_name",
            SpendBy::User => "user_name",
            SpendBy::Model => "model",
            SpendBy::Day => "day",
        }
    }
}

impl std::str::FromStr for SpendBy {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "key" => Ok(SpendBy::Key),
            "user" => Ok(SpendBy::User),
            "model" => Ok(SpendBy::Model),
            "day" => Ok(SpendBy::Day),
            other => Err(StoreError::invalid(
                "by",
                format!("`{other}` is not one of key, user, model or day"),
            )),
        }
    }
}

/// One line of a spend report: the dimensions it covers (all four ungrouped, one grouped),
/// its cost in dollars and its sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub usd: f64,
    #[serde(flatten)]
    pub sums: SpendSums,
}

const SUM_COLUMNS: [&str; 8] = [
    "cost_nanousd",
    "requests",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
];

const UPSERT: &str = "INSERT INTO spend (day, key_name, user_name, model, cost_nanousd, requests, \
     unpriced_requests, input_tokens, output_tokens, cache_read_input_tokens, \
     cache_creation_input_tokens, reasoning_output_tokens) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (day, key_name, user_name, model) DO UPDATE SET \
     cost_nanousd = spend.cost_nanousd + excluded.cost_nanousd, \
     requests = spend.requests + excluded.requests, \
     unpriced_requests = spend.unpriced_requests + excluded.unpriced_requests, \
     input_tokens = spend.input_tokens + excluded.input_tokens, \
     output_tokens = spend.output_tokens + excluded.output_tokens, \
     cache_read_input_tokens = spend.cache_read_input_tokens + excluded.cache_read_input_tokens, \
     cache_creation_input_tokens = spend.cache_creation_input_tokens + excluded.cache_creation_input_tokens, \
     reasoning_output_tokens = spend.reasoning_output_tokens + excluded.reasoning_output_tokens";

/// Both backends decode the same row; ungrouped dimensions come back as ''.
#[derive(sqlx::FromRow)]
struct Row {
    day: String,
    key_name: String,
    user_name: String,
    model: String,
    cost_nanousd: i64,
    requests: i64,
    unpriced_requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_input_tokens: i64,
    cache_creation_input_tokens: i64,
    reasoning_output_tokens: i64,
}

/// The first day of all: `day >= $1` with it matches every row.
const EVER: &str = "0000-01-01";

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl Store {
    /// Adds a batch in one transaction: each row's sums are added to what is stored
    /// (`ON CONFLICT ... DO UPDATE SET x = spend.x + excluded.x`), so replicas adding to the
    /// same row at once lose nothing. Rows are written in key order, so two replicas' batches
    /// lock them in the same order and cannot deadlock on Postgres.
    pub async fn add_spend(&self, batch: &[(SpendKey, SpendSums)]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&(SpendKey, SpendSums)> = batch.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.begin_unversioned().await?;
        for (key, sums) in sorted {
            let day = day_text(key.day);
            tx.execute(
                Sql::new(UPSERT)
                    .bind(&day)
                    .bind(&key.key)
                    .bind(&key.user)
                    .bind(&key.model)
                    .bind(sums.cost_nanousd)
                    .bind(sums.requests)
                    .bind(sums.unpriced_requests)
                    .bind(sums.input_tokens)
                    .bind(sums.output_tokens)
                    .bind(sums.cache_read_input_tokens)
                    .bind(sums.cache_creation_input_tokens)
                    .bind(sums.reasoning_output_tokens),
            )
            .await?;
        }
        tx.commit().await
    }

    /// Spend from `since` (a UTC day, inclusive; `None`: all of it), one row per day, key,
    /// user and model, or summed per value of `by`; ordered by those dimensions.
    pub async fn spend(
        &self,
        since: Option<NaiveDate>,
        by: Option<SpendBy>,
    ) -> Result<Vec<SpendRow>, StoreError> {
        let since = since.map_or_else(|| EVER.to_owned(), day_text);
        let sql = match by {
            None => format!(
                "SELECT day, key_name, user_name, model, {} FROM spend WHERE day >= $1 \
                 ORDER BY day, key_name, user_name, model",
                SUM_COLUMNS.join(", ")
            ),
            Some(by) => {
                let dims = ["day", "key_name", "user_name", "model"]
                    .map(|c| {
                        if c == by.column() {
                            c.to_owned()
                        } else {
                            format!("'' AS {c}")
                        }
                    })
                    .join(", ");
                let sums = SUM_COLUMNS
                    .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
                    .join(", ");
                let col = by.column();
                format!(
                    "SELECT {dims}, {sums} FROM spend WHERE day >= $1 GROUP BY {col} ORDER BY {col}"
                )
            }
        };
        let rows: Vec<Row> = self
            .inner
            .pool
            .fetch_all(Sql::new(&sql).bind(&since))
            .await?;
        let shown = |dim: SpendBy, value: String| match by {
            None => Some(value),
            Some(b) if b == dim => Some(value),
            Some(_) => None,
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                let sums = SpendSums {
                    cost_nanousd: r.cost_nanousd,
                    requests: r.requests,
                    unpriced_requests: r.unpriced_requests,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    cache_read_input_tokens: r.cache_read_input_tokens,
                    cache_creation_input_tokens: r.cache_creation_input_tokens,
                    reasoning_output_tokens: r.reasoning_output_tokens,
                };
                SpendRow {
                    day: shown(SpendBy::Day, r.day),
                    key: shown(SpendBy::Key, r.key_name),
                    user: shown(SpendBy::User, r.user_name),
                    model: shown(SpendBy::Model, r.model),
                    usd: sums.usd(),
                    sums,
                }
            })
            .collect())
    }

    /// Each named key's cost in nano-dollars from `since` (inclusive; `None`: ever), for the
    /// budget check.
    pub async fn spend_per_key(
        &self,
        since: Option<NaiveDate>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let since = since.map_or_else(|| EVER.to_owned(), day_text);
        let rows: Vec<(String, i64)> = self
            .inner
            .pool
            .fetch_all(
                Sql::new(
                    "SELECT key_name, CAST(SUM(cost_nanousd) AS BIGINT) FROM spend \
                     WHERE day >= $1 AND key_name <> '' GROUP BY key_name",
                )
                .bind(&since),
            )
            .await?;
        Ok(rows)
    }
}
