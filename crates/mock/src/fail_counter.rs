//! Memory for `fail_times`: the only state the responder keeps, so a retrying client can see
//! an error turn into a success without the test coordinating anything.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// A long benchmark sending unique prompts must not grow the map without end.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct FailCounter {
    seen: Mutex<HashMap<String, u32>>,
}

impl FailCounter {
    /// True while this request is among the first `limit` of its kind; always true without a
    /// limit. Requests are of a kind when the directive header and the last user message
    /// (which holds its own directives) are the same.
    pub fn should_fail(&self, limit: Option<u32>, header: Option<&str>, user_text: &str) -> bool {
        let Some(limit) = limit else { return true };
        let key = format!("{}\n{}", header.unwrap_or(""), user_text);
        // A panic elsewhere while holding the lock leaves the counts intact, so keep using them.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&key) {
            seen.clear();
        }
        let count = seen.entry(key).or_insert(0);
        if *count < limit {
            *count += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind_of_request() {
        let counter = FailCounter::default();
        assert!(counter.should_fail(Some(2), None, "a"));
        assert!(counter.should_fail(Some(2), None, "a"));
        assert!(!counter.should_fail(Some(2), None, "a"));
        assert!(
            counter.should_fail(Some(2), Some("error=500"), "a"),
            "another header is another kind"
        );
        assert!(counter.should_fail(Some(2), None, "b"));
        assert!(!counter.should_fail(Some(0), None, "c"));
        assert!(
            counter.should_fail(None, None, "a"),
            "no limit fails every time"
        );
    }

    #[test]
    fn stays_bounded() {
        let counter = FailCounter::default();
        for i in 0..MAX_TRACKED + 5 {
            counter.should_fail(Some(1), None, &i.to_string());
        }
        assert!(counter.seen.lock().unwrap().len() <= MAX_TRACKED);
    }
}
