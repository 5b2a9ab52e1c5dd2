//! Spend and budgets per virtual key: [`meter`] adds up what each finished exchange cost, off
//! the request path; [`budgets`] refuses keys over their budget from an in-memory view; one
//! background task writes the meter to the store and then refreshes the view, every
//! `spend.flush_interval_ms`. A key can therefore overspend by what its requests in flight
//! cost plus about one interval's spend (docs/cost.md, "Budgets").

pub mod budgets;
pub mod clock;
pub mod meter;
pub mod report;

use std::sync::Arc;
use std::time::Duration;

use gatecast_store::Store;

pub use budgets::Budgets;
pub use clock::{Clock, ManualClock, SystemClock};
pub use meter::SpendMeter;

use crate::config::SpendConfig;

pub struct Spend {
    pub meter: SpendMeter,
    pub budgets: Budgets,
    interval: Duration,
}

impl Spend {
    pub fn new(config: &SpendConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            meter: SpendMeter::new(config.max_pending_entries, clock.clone()),
            budgets: Budgets::new(clock),
            interval: Duration::from_millis(config.flush_interval_ms),
        }
    }

    /// One step of the background task: the meter to the store, then the budgets back, so a
    /// spend reaches every replica's view within about one interval of its exchange ending.
    pub async fn sync(&self, store: &Store) {
        if let Err(e) = self.meter.flush(store).await {
            tracing::warn!(error = %e, pending = self.meter.pending(), "cannot write spend to the store; kept for the next flush");
        }
        if let Err(e) = self.budgets.refresh(store).await {
            metrics::counter!("gatecast_budget_refresh_errors_total").increment(1);
            tracing::warn!(error = %e, "cannot refresh budgets from the store; enforcing the last ones read");
        }
    }

    /// Runs [`Spend::sync`] every interval until the gateway is dropped.
    pub fn spawn(self: &Arc<Self>, store: Store) {
        let spend = Arc::downgrade(self);
        let interval = self.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(spend) = spend.upgrade() else {
                    break;
                };
                spend.sync(&store).await;
            }
        });
    }
}
