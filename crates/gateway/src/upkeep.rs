//! Background housekeeping the process needs whether or not anyone scrapes `/metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// How often histogram observations are folded into their buckets.
pub const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their fixed buckets every few seconds. Without it the
/// recorder keeps every sample until the next scrape, so a gateway nobody scrapes grows by a few
/// bytes per request forever. The task lives as long as the runtime it was spawned on.
pub fn spawn_metrics_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    })
}
