//! Spend accumulated in memory, off the request path: each finished exchange adds its cost
//! and tokens to one entry per (UTC day, key, user, model), and a background task writes the
//! entries to the store in one batch (see [`super::Spend::spawn`]). Bounded: past
//! `spend.max_pending_entries` distinct entries a new one is dropped and counted.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use gatecast_store::{SpendKey, SpendSums, Store, StoreError, NANOS_PER_USD};
use gatecast_telemetry::GenerationRecord;

use super::clock::Clock;

/// How many chars of a client's `user` field a spend row keeps: it is the client's text, and
/// the report groups by it.
pub const MAX_USER_CHARS: usize = 128;

pub struct SpendMeter {
    pending: Mutex<Pending>,
    hasher: RandomState,
    max_entries: usize,
    clock: Arc<dyn Clock>,
}

/// The entries by the hash of their key, so that a record finds its entry from the strings it
/// already holds: only a new entry allocates its key.
#[derive(Default)]
struct Pending {
    by_hash: HashMap<u64, Vec<(SpendKey, SpendSums)>>,
    len: usize,
}

impl SpendMeter {
    pub fn new(max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            hasher: RandomState::new(),
            max_entries,
            clock,
        }
    }

    /// Adds what a finished exchange used. An exchange with neither usage nor cost (refused,
    /// or failed before the provider answered) adds nothing; one with usage but no cost (a
    /// model without a price) counts its tokens and an unpriced request.
    pub fn record(&self, record: &GenerationRecord) {
        if record.usage.is_none() && record.cost.is_none() {
            return;
        }
        let model = record
            .route
            .as_ref()
            .map(|r| r.model.as_str())
            .filter(|m| !m.is_empty())
            .unwrap_or(record.request.model.as_str());
        let user = record.context.user.as_deref().unwrap_or("");
        let user = match user.char_indices().nth(MAX_USER_CHARS) {
            Some((end, _)) => &user[..end],
            None => user,
        };
        let key = record.key_name.as_deref().unwrap_or("");
        let tokens = |n: Option<u64>| i64::try_from(n.unwrap_or(0)).unwrap_or(i64::MAX);
        let usage = record.usage.as_ref();
        let sums = SpendSums {
            // `as` saturates, and a NaN becomes 0: a bad price cannot wrap the sum.
            cost_nanousd: record
                .cost
                .as_ref()
                .map_or(0, |c| (c.total_usd * NANOS_PER_USD).round().max(0.0) as i64),
            requests: 1,
            unpriced_requests: i64::from(record.cost.is_none()),
            input_tokens: tokens(usage.map(|u| u.input_tokens)),
            output_tokens: tokens(usage.map(|u| u.output_tokens)),
            cache_read_input_tokens: tokens(usage.and_then(|u| u.cache_read_input_tokens)),
            cache_creation_input_tokens: tokens(usage.and_then(|u| u.cache_creation_input_tokens)),
            reasoning_output_tokens: tokens(usage.and_then(|u| u.reasoning_output_tokens)),
        };
        self.add_to(self.clock.now().date_naive(), key, user, model, &sums);
    }

    /// Adds `sums` to the entry of `key`; a new entry past the bound is dropped and counted.
    pub fn add(&self, key: &SpendKey, sums: &SpendSums) {
        self.add_to(key.day, &key.key, &key.user, &key.model, sums);
    }

    fn add_to(&self, day: NaiveDate, key: &str, user: &str, model: &str, sums: &SpendSums) {
        let hash = self.hasher.hash_one((day, key, user, model));
        let same =
            |k: &SpendKey| k.day == day && k.key == key && k.user == user && k.model == model;
        let mut pending = self.lock();
        let full = pending.len >= self.max_entries;
        let bucket = pending.by_hash.entry(hash).or_default();
        if let Some((_, entry)) = bucket.iter_mut().find(|(k, _)| same(k)) {
            entry.add(sums);
            return;
        }
        if full {
            if bucket.is_empty() {
                pending.by_hash.remove(&hash);
            }
            drop(pending);
            metrics::counter!("gatecast_spend_dropped_total").increment(1);
            return;
        }
        let new = SpendKey {
            day,
            key: key.to_owned(),
            user: user.to_owned(),
            model: model.to_owned(),
        };
        bucket.push((new, *sums));
        pending.len += 1;
    }

    /// Entries waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.lock().len
    }

    /// Writes every pending entry to the store in one batch. On failure the batch is put back
    /// (merged with what arrived meanwhile), to be written with the next flush.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.lock());
        let batch: Vec<(SpendKey, SpendSums)> = taken.by_hash.into_values().flatten().collect();
        if batch.is_empty() {
            return Ok(());
        }
        match store.add_spend(&batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                metrics::counter!("gatecast_spend_flush_errors_total").increment(1);
                for (key, sums) in &batch {
                    self.add(key, sums);
                }
                Err(e)
            }
        }
    }

    /// A poisoned lock still holds sound sums (each `add` is one map operation).
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn snapshot(&self) -> HashMap<SpendKey, SpendSums> {
        self.lock().by_hash.values().flatten().cloned().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spend::clock::ManualClock;
    use gatecast_telemetry::record::{Cost, RouteInfo, Usage};

    fn meter(max: usize) -> SpendMeter {
        let clock = ManualClock::new("2026-05-04T23:00:00Z".parse().unwrap());
        SpendMeter::new(max, Arc::new(clock))
    }

    fn record(key: &str, user: Option<&str>, cost: Option<f64>) -> GenerationRecord {
        let mut r = GenerationRecord {
            key_name: Some(key.into()),
            ..GenerationRecord::default()
        };
        r.context.user = user.map(str::to_owned);
        r.route = Some(RouteInfo {
            model: "gpt-4o-mini".into(),
            ..RouteInfo::default()
        });
        r.request.model = "up/gpt-4o-mini".into();
        r.usage = Some(Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_input_tokens: Some(40),
            cache_creation_input_tokens: None,
            reasoning_output_tokens: Some(5),
        });
        r.cost = cost.map(|total_usd| Cost {
            input_usd: 0.0,
            output_usd: total_usd,
            total_usd,
        });
        r
    }

    #[test]
    fn one_entry_per_day_key_user_and_model() {
        let m = meter(10);
        m.record(&record("team-a", Some("alice"), Some(0.0015)));
        m.record(&record("team-a", Some("alice"), Some(0.0005)));
        m.record(&record("team-a", None, None));
        m.record(&GenerationRecord::default());
        let pending = m.snapshot();
        assert_eq!(pending.len(), 2, "{pending:?}");
        let alice = SpendKey {
            day: "2026-05-04".parse().unwrap(),
            key: "team-a".into(),
            user: "alice".into(),
            model: "gpt-4o-mini".into(),
        };
        assert_eq!(
            pending[&alice],
            SpendSums {
                cost_nanousd: 2_000_000,
                requests: 2,
                unpriced_requests: 0,
                input_tokens: 200,
                output_tokens: 40,
                cache_read_input_tokens: 80,
                cache_creation_input_tokens: 0,
                reasoning_output_tokens: 10,
            }
        );
        let nobody = SpendKey {
            user: String::new(),
            ..alice
        };
        assert_eq!(pending[&nobody].unpriced_requests, 1);
        assert_eq!(pending[&nobody].cost_nanousd, 0);
    }

    #[test]
    fn bounded_and_the_users_text_is_cut() {
        let m = meter(2);
        let long = "u".repeat(10_000);
        m.record(&record("a", Some(&long), Some(1.0)));
        m.record(&record("b", None, Some(1.0)));
        m.record(&record("c", None, Some(1.0)));
        m.record(&record("a", Some(&long), Some(1.0)));
        let pending = m.snapshot();
        assert_eq!(pending.len(), 2, "the third entry is dropped");
        let a = pending.iter().find(|(k, _)| k.key == "a").unwrap();
        assert_eq!(a.0.user.chars().count(), MAX_USER_CHARS);
        assert_eq!(a.1.requests, 2, "an existing entry still adds up when full");
    }

    /// A flush writes the batch and empties the meter; one the store refuses is kept whole and
    /// written by the next flush that succeeds.
    #[tokio::test]
    async fn a_failed_flush_keeps_its_batch_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let open = || Store::connect(&url, gatecast_store::SecretKey::from_bytes([9; 32]), true);
        let store = open().await.unwrap();
        let m = meter(10);
        m.record(&record("a", Some("alice"), Some(0.5)));
        m.flush(&store).await.unwrap();
        assert_eq!(m.pending(), 0);
        m.record(&record("a", Some("alice"), Some(0.25)));
        m.record(&record("b", None, None));
        store.close().await;
        assert!(m.flush(&store).await.is_err());
        assert_eq!(m.pending(), 2, "kept for the next flush");
        m.record(&record("a", Some("alice"), Some(0.25)));
        let store = open().await.unwrap();
        m.flush(&store).await.unwrap();
        let rows = store
            .spend(None, Some(gatecast_store::SpendBy::Key))
            .await
            .unwrap();
        let shown: Vec<(&str, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.key.as_deref().unwrap(),
                    r.sums.cost_nanousd,
                    r.sums.requests,
                )
            })
            .collect();
        assert_eq!(shown, [("a", 1_000_000_000, 3), ("b", 0, 1)]);
    }

    #[test]
    fn a_bad_cost_cannot_wrap_the_sum() {
        let m = meter(10);
        m.record(&record("a", None, Some(f64::NAN)));
        m.record(&record("a", None, Some(-3.0)));
        m.record(&record("a", None, Some(f64::INFINITY)));
        let pending = m.snapshot();
        let sums = pending.values().next().unwrap();
        assert_eq!(sums.cost_nanousd, i64::MAX);
        assert_eq!(sums.requests, 3);
    }
}
