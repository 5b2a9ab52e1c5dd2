//! When to try an export again: exponential backoff with jitter, bounded in attempts.
//!
//! Jitter keeps replicas that failed together from retrying together; the bound keeps a dead
//! destination from holding a batch (and memory) forever.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries per batch, the first one included.
    pub max_attempts: u32,
    pub base: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `retry + 2`. A server's `Retry-After` is honoured, capped
    /// so one answer cannot park the pipeline.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_backoff.saturating_mul(3));
        }
        let ceiling = self.ceiling(retry);
        // "Equal jitter": at least half the ceiling, so waits still grow.
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// The longest a batch can wait before it is resolved against a destination that accepts
    /// connections and never answers: every try runs into `timeout`, every backoff is at its
    /// ceiling. From then on a pipeline stuck on such a destination repeats the same cycle, so
    /// this is when its memory can be judged.
    pub fn longest_resolution(&self, timeout: Duration) -> Duration {
        let backoffs = (0..self.max_attempts.saturating_sub(1))
            .map(|retry| self.ceiling(retry))
            .fold(Duration::ZERO, Duration::saturating_add);
        timeout
            .saturating_mul(self.max_attempts.max(1))
            .saturating_add(backoffs)
    }

    fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 0..20 {
            let ceiling = (p.base * 2u32.pow(retry.min(16))).min(p.max_backoff);
            let d = p.backoff(retry, None);
            assert!(d >= ceiling / 2 && d <= ceiling, "retry {retry}: {d:?}");
        }
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn the_longest_resolution_is_every_try_timing_out_after_the_longest_backoffs() {
        let cases = [
            // 5 tries of 10 s, and backoffs of 0.2 + 0.4 + 0.8 + 1.6 s between them.
            (5, 10_000, 53_000),
            (1, 3_000, 3_000),
            // 0.2 .. 6.4 s, then 10 s (capped) three times: 12.6 + 30 s of backoff.
            (10, 1_000, 10_000 + 42_600),
        ];
        for (max_attempts, timeout_ms, expected_ms) in cases {
            let p = RetryPolicy {
                max_attempts,
                ..RetryPolicy::default()
            };
            assert_eq!(
                p.longest_resolution(Duration::from_millis(timeout_ms)),
                Duration::from_millis(expected_ms),
                "{max_attempts} tries of {timeout_ms} ms"
            );
        }
    }
}
