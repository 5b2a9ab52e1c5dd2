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

    /// Prices the record as it stands and returns its cost, for an answer that says it
    /// (`x-gatecast-cost-usd`) before the record is published; publishing prices it again,
    /// as the record may still change.
    /// Whether records are priced at all.
    pub fn prices(&self) -> bool {
        self.pricer.is_some()
    }

    pub fn price_now(&mut self) -> Option<&gatecast_telemetry::record::Cost> {
        let pricer = self.pricer.as_ref()?;
        pricer.apply(&mut self.record);
        self.record.cost.as_ref()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gatecast_telemetry::record::{RouteInfo, Usage};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Keep(Mutex<Vec<GenerationRecord>>);

    impl RecordSink for Keep {
        fn publish(&self, record: GenerationRecord) {
            self.0.lock().unwrap().push(record);
        }
        fn wants_content(&self) -> bool {
            false
        }
    }

    fn exchange(sink: Arc<Keep>, pricer: Option<Arc<Pricer>>) -> Exchange {
        let record = GenerationRecord {
            route: Some(RouteInfo {
                provider: "up".into(),
                provider_kind: "openai".into(),
                model: "gpt-4o-mini".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Exchange::new(record, Instant::now(), sink).with_pricer(pricer)
    }

    #[test]
    fn a_failed_exchange_with_usage_is_priced_once_at_publish() {
        let sink = Arc::new(Keep::default());
        let mut ex = exchange(sink.clone(), Some(Arc::new(Pricer::shipped())));
        // A stream that broke after its usage chunk: gpt-4o-mini at 0.15 / 0.60 per Mtok.
        ex.record.usage = Some(Usage {
            input_tokens: 1000,
            output_tokens: 50,
            ..Default::default()
        });
        ex.fail(ErrorKind::StreamAborted, Some(200), "broken".into());
        let now = ex.price_now().cloned().unwrap();
        ex.publish();
        let got = sink.0.lock().unwrap();
        let cost = got[0].cost.clone().unwrap();
        let want = (1000.0 * 0.15 + 50.0 * 0.60) / 1e6;
        assert!((cost.total_usd - want).abs() < 1e-15, "{cost:?}");
        assert_eq!(now, cost, "priced the same before and at publish");
        assert!(!got[0].cost_unknown_model);
    }

    #[test]
    fn without_a_pricer_or_usage_nothing_is_priced() {
        let sink = Arc::new(Keep::default());
        let mut ex = exchange(sink.clone(), None);
        ex.record.usage = Some(Usage::default());
        ex.publish();
        // Dropped half-way, with a pricer but no usage.
        drop(exchange(sink.clone(), Some(Arc::new(Pricer::shipped()))));
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert!(got
            .iter()
            .all(|r| r.cost.is_none() && !r.cost_unknown_model));
    }
}
