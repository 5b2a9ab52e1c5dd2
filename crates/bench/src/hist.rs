//! Latency histograms in nanoseconds, and the summaries the report prints.
//!
//! HDR histograms keep three significant digits over the whole range, so a 30 µs median and a
//! 40 ms stall land in the same structure without bucketing either into meaninglessness.

use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// One minute: anything slower is a hung request, recorded at the ceiling rather than lost.
const MAX_NANOS: u64 = 60_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_NANOS, SIGNIFICANT_DIGITS)
            .context("creating a latency histogram")?;
        Ok(Self { hist })
    }

    pub fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(MAX_NANOS);
        self.hist.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    pub fn merge(&mut self, other: &Latencies) -> Result<()> {
        self.hist
            .add(&other.hist)
            .context("merging latency histograms")
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// `q` in 0..=1.
    pub fn quantile_us(&self, q: f64) -> f64 {
        nanos_to_us(self.hist.value_at_quantile(q))
    }

    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.count(),
            mean_us: self.hist.mean() / 1_000.0,
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: nanos_to_us(self.hist.max()),
        }
    }
}

fn nanos_to_us(n: u64) -> f64 {
    n as f64 / 1_000.0
}

/// Percentiles in microseconds. Quantiles of one run, not of differences: "added p99" in the
/// report is gateway p99 minus direct p99, as every peer comparison defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Gateway minus direct at each percentile: the cost of the extra hop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Added {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Added {
    pub fn between(direct: &Summary, via: &Summary) -> Self {
        Self {
            p50_us: via.p50_us - direct.p50_us,
            p90_us: via.p90_us - direct.p90_us,
            p99_us: via.p99_us - direct.p99_us,
            p999_us: via.p999_us - direct.p999_us,
        }
    }

    /// What this path adds beyond `other`'s, percentile by percentile: two paths measured
    /// in the same run against their own baselines.
    pub fn minus(&self, other: &Added) -> Self {
        Self {
            p50_us: self.p50_us - other.p50_us,
            p90_us: self.p90_us - other.p90_us,
            p99_us: self.p99_us - other.p99_us,
            p999_us: self.p999_us - other.p999_us,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_of_a_uniform_run() {
        let mut h = Latencies::new().unwrap();
        for i in 1..=1000 {
            h.record(us(i));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        // Three significant digits: within 0.1% of the exact order statistic.
        assert!((s.p50_us - 500.0).abs() <= 0.5, "{s:?}");
        assert!((s.p90_us - 900.0).abs() <= 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.p999_us - 999.0).abs() <= 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() <= 1.0, "{s:?}");
        assert!((s.mean_us - 500.5).abs() <= 0.5, "{s:?}");
    }

    #[test]
    fn sub_microsecond_and_hung_requests_are_kept() {
        let mut h = Latencies::new().unwrap();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        assert_eq!(h.count(), 2);
        assert!(h.summary().max_us >= 59_000_000.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Latencies::new().unwrap();
        let mut b = Latencies::new().unwrap();
        for _ in 0..10 {
            a.record(us(10));
            b.record(us(1000));
        }
        a.merge(&b).unwrap();
        let s = a.summary();
        assert_eq!(s.count, 20);
        assert!((s.p50_us - 10.0).abs() < 0.1);
        assert!((s.p99_us - 1000.0).abs() < 1.0);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latencies::new().unwrap().summary(), Summary::default());
    }

    #[test]
    fn added_is_gateway_minus_direct() {
        let direct = Summary {
            p50_us: 30.0,
            p90_us: 40.0,
            p99_us: 60.0,
            p999_us: 100.0,
            ..Summary::default()
        };
        let via = Summary {
            p50_us: 70.0,
            p90_us: 85.0,
            p99_us: 150.0,
            p999_us: 90.0,
            ..Summary::default()
        };
        let added = Added::between(&direct, &via);
        assert_eq!(added.p50_us, 40.0);
        assert_eq!(added.p90_us, 45.0);
        assert_eq!(added.p99_us, 90.0);
        // Tails are noisy; a negative difference is reported as measured, not clamped.
        assert_eq!(added.p999_us, -10.0);
    }
}
