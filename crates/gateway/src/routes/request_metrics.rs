//! The per-request metrics, resolved once.
//!
//! `counter!` and `histogram!` look their key up in the recorder's registry on every call (a
//! hash of the name and labels under a lock, and a `String` for the status label). Those
//! calls run after the provider's response head has arrived and before the client's is
//! written, so a stream's first chunk waited for them. Handles resolved once cost an atomic
//! add each.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use metrics::{Counter, Histogram};

/// Status codes with a handle of their own: 100–599. Any other (`http` allows up to 999) is
/// looked up on each answer, as before.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

pub struct RequestMetrics {
    headers_seconds: Histogram,
    /// `gatecast_unknown_route_requests_total`: requests for a path no route serves.
    unknown_routes: Counter,
    /// `gatecast_requests_total{status}`, registered the first time a status is answered so
    /// that `/metrics` lists only the statuses seen.
    by_status: Box<[OnceLock<Counter>]>,
}

impl RequestMetrics {
    /// Must run after the global recorder is installed: handles made before it count nothing.
    pub fn new() -> Self {
        Self {
            headers_seconds: metrics::histogram!("gatecast_request_headers_seconds"),
            unknown_routes: metrics::counter!("gatecast_unknown_route_requests_total"),
            by_status: (0..STATUSES).map(|_| OnceLock::new()).collect(),
        }
    }

    /// A request for a path no route serves (its status is counted by [`Self::record`]).
    pub fn unknown_route(&self) {
        self.unknown_routes.increment(1);
    }

    /// One answered request: its status and how long its response head took.
    pub fn record(&self, status: StatusCode, head_after: Duration) {
        let code = status.as_u16();
        let slot = code
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.by_status.get(usize::from(i)));
        match slot {
            Some(slot) => slot.get_or_init(|| requests_total(code)).increment(1),
            None => requests_total(code).increment(1),
        }
        self.headers_seconds.record(head_after.as_secs_f64());
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn requests_total(code: u16) -> Counter {
    metrics::counter!("gatecast_requests_total", "status" => code.to_string())
}
