//! What the HTTP server received, so tests can check what a gateway actually forwarded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Headers whose values are credentials; the HTTP read of the recorder shows only that they
/// were present, with a short fingerprint so a test can still tell which key was sent.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "x-goog-api-key",
];

/// Enough history for any test, small enough that a benchmark cannot exhaust memory.
const MAX_RECORDED: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query string, without the `?`, when the request had one.
    #[serde(default)]
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// `Value::Null` when the body was not JSON.
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// This request with each credential replaced by [`redaction_marker`].
    pub fn redacted(mut self) -> Self {
        for (name, value) in &mut self.headers {
            if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                *value = redaction_marker(value);
            }
        }
        self
    }
}

/// `[redacted; present, sha256:<8 hex>]`: says the header was sent and which value, without it.
pub fn redaction_marker(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    format!("[redacted; present, sha256:{}]", hex::encode(&digest[..4]))
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder {
    requests: Arc<Mutex<VecDeque<RecordedRequest>>>,
}

impl Recorder {
    pub fn push(&self, request: RecordedRequest) {
        let mut requests = self.lock();
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Recording is append-only, so a panic elsewhere cannot leave it half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(i: usize) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: format!("/{i}"),
            query: None,
            headers: vec![],
            body: serde_json::Value::Null,
        }
    }

    #[test]
    fn redaction_hides_credentials_and_keeps_the_rest() {
        let mut r = request(0);
        r.headers = vec![
            ("Authorization".into(), "Bearer sk-secret".into()),
            ("x-api-key".into(), "sk-ant-secret".into()),
            ("api-key".into(), "azure-secret".into()),
            ("anthropic-version".into(), "2023-06-01".into()),
        ];
        let shown = serde_json::to_string(&r.clone().redacted()).unwrap();
        assert!(!shown.contains("secret"), "{shown}");
        let redacted = r.redacted();
        assert_eq!(redacted.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            redacted.header("authorization"),
            Some(redaction_marker("Bearer sk-secret").as_str())
        );
        assert!(redaction_marker("a").starts_with("[redacted; present, sha256:"));
        assert_ne!(redaction_marker("a"), redaction_marker("b"));
    }

    #[test]
    fn keeps_only_the_latest() {
        let recorder = Recorder::default();
        for i in 0..MAX_RECORDED + 3 {
            recorder.push(request(i));
        }
        let all = recorder.snapshot();
        assert_eq!(all.len(), MAX_RECORDED);
        assert_eq!(all[0].path, "/3");
        assert_eq!(all.last().unwrap().path, format!("/{}", MAX_RECORDED + 2));
        recorder.clear();
        assert!(recorder.snapshot().is_empty());
    }
}
