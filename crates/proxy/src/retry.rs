//! When to try a provider again, and after how long: a provider's `max_retries`, `retry_on`,
//! `retry_backoff_ms` and `max_retry_after_ms` as one policy.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use rand::Rng;

use crate::config::ProviderConfig;

/// The longest backoff step, whatever the base and the number of tries.
const BACKOFF_CAP_MS: u64 = 30_000;

/// One provider's retry settings. It borrows them from the provider's config, so the request
/// path builds one per target without an allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy<'a> {
    /// Tries after the first one, per target.
    pub max_retries: u32,
    /// Statuses worth another try; any other failing status goes to the client as it is.
    pub retry_on: &'a [u16],
    /// The first backoff step; each later one doubles, with jitter, up to 30 s.
    pub backoff_base_ms: u64,
    /// The longest `Retry-After` waited out; a longer one goes to the client.
    pub max_retry_after: Duration,
}

/// What follows a try that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try the same provider again after this wait.
    Retry(Duration),
    /// Give this answer to the client: its status is not one to retry, or it asks for a
    /// longer wait than the policy allows.
    Respond,
    /// This target's tries are spent: go on to the next target, if there is one.
    Fallback,
}

impl<'a> RetryPolicy<'a> {
    pub(crate) fn of(config: &'a ProviderConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            retry_on: &config.retry_on,
            backoff_base_ms: config.retry_backoff_ms,
            max_retry_after: Duration::from_millis(config.max_retry_after_ms),
        }
    }

    /// `tries` is how many retries the target has had so far (0 after its first try);
    /// `answer` is the failing status and headers the provider sent, `None` when it sent none
    /// (the connection failed or the try timed out).
    pub(crate) fn next(&self, tries: u32, answer: Option<(StatusCode, &HeaderMap)>) -> Next {
        match answer {
            Some((status, _)) if !self.retry_on.contains(&status.as_u16()) => Next::Respond,
            _ if tries >= self.max_retries => Next::Fallback,
            None => Next::Retry(backoff(self.backoff_base_ms, tries)),
            Some((_, headers)) => match retry_after(headers) {
                Some(wait) if wait > self.max_retry_after => Next::Respond,
                Some(wait) => Next::Retry(wait),
                None => Next::Retry(backoff(self.backoff_base_ms, tries)),
            },
        }
    }
}

/// Jittered exponential backoff: base·2ⁿ scaled by a random factor in [0.5, 1], capped at 30 s.
fn backoff(base_ms: u64, tries: u32) -> Duration {
    let exp = base_ms
        .saturating_mul(1u64 << tries.min(16))
        .min(BACKOFF_CAP_MS);
    let jitter = rand::rng().random_range(0.5..=1.0);
    Duration::from_millis((exp as f64 * jitter) as u64)
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds. HTTP dates are not honoured.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
    {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_millis(ms as u64));
    }
    let secs = header_str(headers, "retry-after")?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn policy(max_retries: u32) -> RetryPolicy<'static> {
        RetryPolicy {
            max_retries,
            retry_on: &[429, 500, 502, 503, 504],
            backoff_base_ms: 200,
            max_retry_after: Duration::from_secs(10),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_static(value));
        }
        h
    }

    /// The backoff step for `tries`, which must lie in [exp/2, exp] with exp = 200 ms·2ⁿ ≤ 30 s.
    fn assert_backoff(next: Next, tries: u32) {
        let exp = Duration::from_millis((200u64 << tries.min(16)).min(30_000));
        match next {
            Next::Retry(wait) => assert!(
                wait >= exp / 2 && wait <= exp,
                "try {tries}: {wait:?} outside [{:?}, {exp:?}]",
                exp / 2
            ),
            other => panic!("try {tries}: expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for tries in 0..40 {
            let d = backoff(200, tries);
            assert!(d <= Duration::from_secs(30));
            assert!(d >= Duration::from_millis((200u64 << tries.min(16)).min(30_000) / 2));
        }
    }

    #[test]
    fn the_config_fields_make_the_policy() {
        let config: ProviderConfig = toml::from_str(
            "kind = \"mock\"\nmax_retries = 3\nretry_on = [503]\nretry_backoff_ms = 50\nmax_retry_after_ms = 1500",
        )
        .unwrap();
        let p = RetryPolicy::of(&config);
        assert_eq!(p.max_retries, 3);
        assert_eq!(p.retry_on, &[503]);
        assert_eq!(p.backoff_base_ms, 50);
        assert_eq!(p.max_retry_after, Duration::from_millis(1500));
    }

    #[test]
    fn retry_after_seconds_are_waited_out_up_to_the_cap() {
        let p = policy(2);
        let h = headers(&[("retry-after", "2")]);
        let status = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            p.next(0, Some((status, &h))),
            Next::Retry(Duration::from_secs(2))
        );
        let h = headers(&[("retry-after", " 1.5 ")]);
        assert_eq!(
            p.next(1, Some((status, &h))),
            Next::Retry(Duration::from_millis(1500))
        );
        let h = headers(&[("retry-after", "10")]);
        assert_eq!(
            p.next(0, Some((status, &h))),
            Next::Retry(Duration::from_secs(10)),
            "the cap itself is waited out"
        );
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let p = policy(1);
        let h = headers(&[("retry-after", "9"), ("retry-after-ms", "250")]);
        assert_eq!(
            p.next(0, Some((StatusCode::SERVICE_UNAVAILABLE, &h))),
            Next::Retry(Duration::from_millis(250))
        );
        // A `retry-after-ms` that parses but is negative hides `retry-after`: backoff then.
        let h = headers(&[("retry-after", "9"), ("retry-after-ms", "-5")]);
        assert_backoff(p.next(0, Some((StatusCode::SERVICE_UNAVAILABLE, &h))), 0);
    }

    #[test]
    fn a_longer_retry_after_than_the_cap_goes_to_the_client_while_tries_are_left() {
        let p = policy(2);
        let status = StatusCode::TOO_MANY_REQUESTS;
        for value in ["11", "1e30", "86401"] {
            let h = headers(&[("retry-after", value)]);
            assert_eq!(p.next(0, Some((status, &h))), Next::Respond, "{value}");
        }
        let h = headers(&[("retry-after-ms", "10001")]);
        assert_eq!(p.next(1, Some((status, &h))), Next::Respond);
        // Once the tries are spent the next target gets its turn, whatever the header says.
        let h = headers(&[("retry-after", "11")]);
        assert_eq!(p.next(2, Some((status, &h))), Next::Fallback);
    }

    #[test]
    fn an_http_date_or_a_bad_retry_after_means_backoff() {
        let p = policy(5);
        for value in ["Wed, 21 Oct 2015 07:28:00 GMT", "-1", "NaN", "inf", "soon"] {
            let h = headers(&[("retry-after", value)]);
            assert_backoff(p.next(2, Some((StatusCode::BAD_GATEWAY, &h))), 2);
        }
    }

    #[test]
    fn statuses_not_listed_go_to_the_client_at_once() {
        let h = HeaderMap::new();
        for max_retries in [0, 3] {
            let p = policy(max_retries);
            for status in [
                StatusCode::BAD_REQUEST,
                StatusCode::UNAUTHORIZED,
                StatusCode::NOT_FOUND,
                StatusCode::NOT_IMPLEMENTED,
            ] {
                assert_eq!(p.next(0, Some((status, &h))), Next::Respond, "{status}");
            }
        }
        let p = RetryPolicy {
            retry_on: &[418],
            ..policy(1)
        };
        assert_eq!(
            p.next(0, Some((StatusCode::INTERNAL_SERVER_ERROR, &h))),
            Next::Respond
        );
        assert_backoff(p.next(0, Some((StatusCode::IM_A_TEAPOT, &h))), 0);
    }

    #[test]
    fn a_listed_status_is_retried_until_the_tries_are_spent() {
        let p = policy(3);
        let h = HeaderMap::new();
        for tries in 0..3 {
            assert_backoff(p.next(tries, Some((StatusCode::BAD_GATEWAY, &h))), tries);
        }
        assert_eq!(
            p.next(3, Some((StatusCode::BAD_GATEWAY, &h))),
            Next::Fallback
        );
        assert_eq!(
            policy(0).next(0, Some((StatusCode::BAD_GATEWAY, &h))),
            Next::Fallback
        );
    }

    #[test]
    fn connection_errors_back_off_then_fall_back() {
        let p = policy(2);
        assert_backoff(p.next(0, None), 0);
        assert_backoff(p.next(1, None), 1);
        assert_eq!(p.next(2, None), Next::Fallback);
        assert_eq!(policy(0).next(0, None), Next::Fallback);
    }

    #[test]
    fn backoff_jitter_stays_within_half_to_whole_step_and_the_cap() {
        let p = RetryPolicy {
            max_retries: u32::MAX,
            ..policy(0)
        };
        let mut shortest = Duration::MAX;
        let mut longest = Duration::ZERO;
        for _ in 0..200 {
            for tries in [0, 1, 4, 7, 8, 16, 17, 40, u32::MAX - 1] {
                assert_backoff(p.next(tries, None), tries);
            }
            if let Next::Retry(wait) = p.next(0, None) {
                shortest = shortest.min(wait);
                longest = longest.max(wait);
            }
        }
        assert!(shortest < longest, "the wait is jittered: {shortest:?}");
        // A base so large that doubling it overflows still waits at most the cap.
        let p = RetryPolicy {
            backoff_base_ms: u64::MAX,
            ..policy(1)
        };
        match p.next(0, None) {
            Next::Retry(wait) => {
                assert!(wait >= Duration::from_secs(15) && wait <= Duration::from_secs(30))
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}
