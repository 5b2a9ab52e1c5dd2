//! One exchange in progress: the record being filled and where it goes when done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatecast_telemetry::cost::Pricer;
use gatecast_telemetry::record::{ErrorInfo, ErrorKind, GenerationRecord, Status};

/// Receives finished records. Implemented by the broadcaster; `publish` must never block.
pub trait RecordSink: Send + Sync + 'static {
    fn publish(&self, record: GenerationRecord);
    /// False when every destination strips content: the proxy then keeps no copy of it.
    fn wants_content(&self) -> bool;
}

/// A sink that drops everything, for gateways with no destinations and for tests.
pub struct NullSink;

impl RecordSink for NullSink {
    fn publish(&self, _record: GenerationRecord) {}
    fn wants_content(&self) -> bool {
        false
    }
}

/// The record of one exchange, published exactly once: when the exchange ends, or when it is
/// dropped half-way (the client went away).
pub struct Exchange {
    pub record: GenerationRecord,
    started: Instant,
    sink: Arc<dyn RecordSink>,
    /// Prices the record once, just before it is published.
    pricer: Option<Arc<Pricer>>,
    published: bool,
    /// When the answer's last byte came in, if the record is built later.
    ended: Option<Duration>,
}

impl Exchange {
    pub fn new(record: GenerationRecord, started: Instant, sink: Arc<dyn RecordSink>) -> Self {
        Self {
            record,
            started,
            sink,
            pricer: None,
            published: false,
            ended: None,
        }
    }

    /// Prices the record with `pricer` when it is published.
    pub fn with_pricer(mut self, pricer: Option<Arc<Pricer>>) -> Self {
        self.pricer = pricer;
        self
    }

    /// Stamps the end now, for a record that is built and published a little later.
    pub fn end_now(&mut self) {
        if self.ended.is_none() {
            self.ended = Some(self.elapsed());
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn fail(&mut self, kind: ErrorKind, http_status: Option<u16>, message: String) {
        self.record.status = Status::Error(ErrorInfo {
            kind,
            http_status,
            message,
        });
    }

    /// Stamps the end time, closes the last attempt, and hands the record over.
    pub fn publish(mut self) {
        self.publish_now();
    }

    fn publish_now(&mut self) {
        if std::mem::replace(&mut self.published, true) {
            return;
        }
        let end = self.ended.unwrap_or_else(|| self.elapsed());
        let timings = &mut self.record.timings;
        timings.end = end;
        if let Some(last) = self.record.attempts.last_mut() {
            if last.end.is_zero() {
                last.end = end;
            }
        }
        if let (Some(first), Some(last)) =
            (self.record.attempts.first(), self.record.attempts.last())
        {
            timings.upstream_total = last.end.saturating_sub(first.start);
        }
        // Whatever the status: a failed exchange with usage is priced on what it used.
        if let Some(pricer) = &self.pricer {
            pricer.apply(&mut self.record);
        }
        let record = std::mem::take(&mut self.record);
        self.sink.publish(record);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Dropped before it was published: the client went away while the gateway was still
        // waiting on the provider, and the server dropped the request future.
        if !self.published {
            self.fail(
                ErrorKind::Cancelled,
                None,
                "client disconnected before the answer started".into(),
            );
            self.publish_now();
        }
    }
}
