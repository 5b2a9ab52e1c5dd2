//! Deterministic sampling per destination.
//!
//! The decision hashes the session id (or, without one, the trace id) into [0, 1) and keeps
//! the record when the point falls under the rate. A session is therefore kept or dropped
//! whole, and a destination at 10% receives a subset of what one at 50% receives.

use sha2::{Digest, Sha256};

use crate::record::GenerationRecord;

pub const MIN_RATE: f64 = 0.0001;

/// Where this record falls in [0, 1), the same for every record of a session.
pub fn sample_point(record: &GenerationRecord) -> f64 {
    let digest = match record.context.session_id.as_deref() {
        Some(session) => Sha256::digest(session.as_bytes()),
        None => Sha256::digest(record.context.trace_id),
    };
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    // 53 bits fill an f64 mantissa exactly.
    (u64::from_be_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
}

pub fn keeps(rate: f64, record: &GenerationRecord) -> bool {
    rate >= 1.0 || sample_point(record) < rate
}

/// `sampling_rate` must be within 0.0001..=1.
pub fn validate_rate(rate: f64) -> Result<(), String> {
    if (MIN_RATE..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!("must be between {MIN_RATE} and 1, got {rate}"))
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn session(s: String) -> GenerationRecord {
        let mut r = GenerationRecord::default();
        r.context.session_id = Some(s);
        r
    }

    #[test]
    fn rate_is_kept_within_tolerance_over_10k_sessions() {
        for rate in [0.01, 0.1, 0.5, 0.9] {
            let kept = (0..10_000)
                .filter(|i| keeps(rate, &session(format!("session-{i}"))))
                .count();
            let got = kept as f64 / 10_000.0;
            assert!((got - rate).abs() < 0.02, "rate {rate}: kept {got}");
        }
    }

    #[test]
    fn decisions_are_stable_per_session_and_nested_across_rates() {
        for i in 0..2_000 {
            let r = session(format!("s{i}"));
            assert_eq!(keeps(0.3, &r), keeps(0.3, &session(format!("s{i}"))));
            if keeps(0.1, &r) {
                assert!(keeps(0.5, &r), "10% must be a subset of 50%");
            }
        }
        assert!(keeps(1.0, &session("x".into())));
    }

    #[test]
    fn without_a_session_the_trace_id_decides() {
        let mut a = GenerationRecord::default();
        a.context.trace_id = [7; 16];
        let b = a.clone();
        assert_eq!(sample_point(&a), sample_point(&b));
    }

    #[test]
    fn rate_bounds() {
        assert!(validate_rate(0.0001).is_ok());
        assert!(validate_rate(1.0).is_ok());
        assert!(validate_rate(0.0).is_err());
        assert!(validate_rate(1.5).is_err());
        assert!(validate_rate(f64::NAN).is_err());
    }
}
