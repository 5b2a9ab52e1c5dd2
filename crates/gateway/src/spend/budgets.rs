//! Budget enforcement from memory: per key with a budget, what it has spent in its current
//! period, refreshed from the store by a background task (see [`super::Spend::spawn`]), so
//! the check on the request path is one map lookup and never waits on the database.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use gatecast_proxy::ProxyError;
use gatecast_store::{Budget, Store, StoreError, Window, NANOS_PER_USD};

use super::clock::Clock;

/// One key's budget and what the store said it had spent in the period `window` covers.
#[derive(Debug, Clone, Copy)]
struct KeyBudget {
    budget: Budget,
    spent_nanousd: i64,
    window: Window,
}

pub struct Budgets {
    view: ArcSwap<HashMap<Arc<str>, KeyBudget>>,
    clock: Arc<dyn Clock>,
}

impl Budgets {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            view: ArcSwap::from_pointee(HashMap::new()),
            clock,
        }
    }

    /// Refuses `key` when it has spent its budget in the current period. A period that has
    /// ended since the last refresh counts as a fresh one, so a key is let through at the
    /// reset itself rather than a refresh later.
    pub fn check(&self, key: &str) -> Result<(), ProxyError> {
        let view = self.view.load();
        let Some(entry) = view.get(key) else {
            return Ok(());
        };
        let spent = entry.spent_nanousd as f64 / NANOS_PER_USD;
        if spent < entry.budget.usd {
            return Ok(());
        }
        let resets_at = entry.window.resets_at;
        if resets_at.is_some_and(|at| self.clock.now() >= at) {
            return Ok(());
        }
        Err(ProxyError::BudgetExceeded {
            key: key.to_owned(),
            period: entry.budget.period.adjective(),
            budget_usd: entry.budget.usd,
            spent_usd: spent,
            resets_at: resets_at.map(shown),
        })
    }

    /// Re-reads the budgets and each one's spend in the period the clock is in: one query
    /// for the budgets and one per distinct period start.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let budgets = store.key_budgets().await?;
        let now = self.clock.now();
        let mut spent_since: HashMap<Window, HashMap<String, i64>> = HashMap::new();
        let mut view = HashMap::with_capacity(budgets.len());
        for (name, budget) in budgets {
            let window = budget.period.window(now);
            let per_key = match spent_since.entry(window) {
                Entry::Occupied(seen) => seen.into_mut(),
                Entry::Vacant(new) => {
                    let spent = store.spend_per_key(window.since).await?;
                    new.insert(spent.into_iter().collect())
                }
            };
            let spent_nanousd = per_key.get(&name).copied().unwrap_or(0);
            view.insert(
                Arc::from(name.as_str()),
                KeyBudget {
                    budget,
                    spent_nanousd,
                    window,
                },
            );
        }
        self.view.store(Arc::new(view));
        Ok(())
    }
}

/// How a reset time is shown: UTC, to the second.
fn shown(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spend::clock::ManualClock;
    use gatecast_store::{BudgetPeriod, SecretKey, SpendKey, SpendSums};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, SecretKey::from_bytes([3; 32]), true)
            .await
            .unwrap();
        (dir, store)
    }

    fn spent(day: &str, key: &str, usd: f64) -> (SpendKey, SpendSums) {
        (
            SpendKey {
                day: day.parse().unwrap(),
                key: key.into(),
                user: String::new(),
                model: "m".into(),
            },
            SpendSums {
                cost_nanousd: (usd * NANOS_PER_USD) as i64,
                requests: 1,
                ..SpendSums::default()
            },
        )
    }

    /// Over budget within the period: refused with the budget, the spend and the reset; the
    /// next period (the clock moved, with and without a refresh): allowed again.
    #[tokio::test]
    async fn refused_within_the_period_allowed_in_the_next() {
        let (_dir, store) = store().await;
        let clock = Arc::new(ManualClock::new("2026-05-06T12:00:00Z".parse().unwrap()));
        let budgets = Budgets::new(clock.clone());
        for (name, budget) in [
            ("daily", Budget::new(1.0, BudgetPeriod::Day).unwrap()),
            ("weekly", Budget::new(2.0, BudgetPeriod::Week).unwrap()),
            ("total", Budget::new(2.5, BudgetPeriod::Total).unwrap()),
        ] {
            store
                .create_key_with_budget(name, Some(budget), "t")
                .await
                .unwrap();
        }
        store.create_key("free", "t").await.unwrap();
        store
            .add_spend(&[
                spent("2026-05-06", "daily", 0.75),
                spent("2026-05-05", "daily", 9.0),
                spent("2026-05-04", "weekly", 1.0),
                spent("2026-05-06", "weekly", 0.5),
                spent("2026-04-01", "total", 2.0),
                spent("2026-05-06", "free", 100.0),
            ])
            .await
            .unwrap();
        budgets.refresh(&store).await.unwrap();
        for key in ["daily", "weekly", "total", "free", "unknown"] {
            assert!(budgets.check(key).is_ok(), "{key}");
        }

        store
            .add_spend(&[
                spent("2026-05-06", "daily", 0.25),
                spent("2026-05-06", "weekly", 0.5),
                spent("2026-05-06", "total", 0.5),
            ])
            .await
            .unwrap();
        budgets.refresh(&store).await.unwrap();
        let daily = budgets.check("daily").unwrap_err();
        assert_eq!(
            daily.to_string(),
            "virtual key `daily` has used its daily budget: spent $1.00 of $1.00; it resets at 2026-05-07 00:00:00 UTC"
        );
        let weekly = budgets.check("weekly").unwrap_err().to_string();
        assert!(
            weekly.contains(
                "weekly budget: spent $2.00 of $2.00; it resets at 2026-05-11 00:00:00 UTC"
            ),
            "{weekly}"
        );
        assert!(budgets
            .check("total")
            .unwrap_err()
            .to_string()
            .contains("does not reset"));
        assert!(budgets.check("free").is_ok());

        // Midnight: the day's budget is whole again before any refresh, the week's is not.
        clock.set("2026-05-07T00:00:00Z".parse().unwrap());
        assert!(budgets.check("daily").is_ok());
        assert!(budgets.check("weekly").is_err());
        budgets.refresh(&store).await.unwrap();
        assert!(budgets.check("daily").is_ok());
        assert!(budgets.check("weekly").is_err());
        // The next Monday.
        clock.set("2026-05-11T00:00:01Z".parse().unwrap());
        budgets.refresh(&store).await.unwrap();
        assert!(budgets.check("weekly").is_ok());
        assert!(
            budgets.check("total").is_err(),
            "a total budget never resets"
        );

        // Clearing a budget lets the key through from the next refresh.
        store.set_key_budget("total", None, "t").await.unwrap();
        budgets.refresh(&store).await.unwrap();
        assert!(budgets.check("total").is_ok());
    }
}
