#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::*;
use crate::destination::{EncodedBatch, Encoding, ExportError, ExportErrorKind};
use crate::record::{RouteInfo, Usage};

/// A sink that answers from a script, then succeeds; records what it received.
#[derive(Clone, Default)]
struct ScriptedSink {
    script: Arc<StdMutex<VecDeque<Result<(), ExportError>>>>,
    received: Arc<StdMutex<Vec<EncodedBatch>>>,
    hang: bool,
}

impl ScriptedSink {
    fn failing(errors: Vec<ExportError>) -> Self {
        let sink = Self::default();
        sink.script
            .lock()
            .unwrap()
            .extend(errors.into_iter().map(Err));
        sink
    }

    fn received(&self) -> Vec<EncodedBatch> {
        self.received.lock().unwrap().clone()
    }
}

impl Sink for ScriptedSink {
    fn encoding(&self) -> Encoding {
        Encoding::Json
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        let next = self.script.lock().unwrap().pop_front();
        let result = next.unwrap_or(Ok(()));
        if result.is_ok() {
            self.received.lock().unwrap().push(batch.clone());
        }
        result
    }
}

fn record(i: u64) -> GenerationRecord {
    let mut r = GenerationRecord::default();
    r.context.trace_id = [1; 16];
    r.timings.accepted_unix_nanos = 1_700_000_000_000_000_000 + i;
    r.request.model = "m".into();
    r.route = Some(RouteInfo {
        provider: "up".into(),
        provider_kind: "openai".into(),
        model: "m".into(),
        ..Default::default()
    });
    r.usage = Some(Usage {
        input_tokens: 1,
        output_tokens: 2,
        ..Default::default()
    });
    r
}

fn settings(config: &DestinationConfig) -> WorkerSettings {
    let mut s = WorkerSettings::from_config(config, "test");
    s.retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };
    s
}

fn config() -> DestinationConfig {
    let mut c = DestinationConfig::file("t", "unused");
    c.flush_interval_ms = 5;
    c
}

fn start(config: &DestinationConfig, sink: ScriptedSink) -> Pipeline {
    Pipeline::spawn(
        config,
        sink,
        settings(config),
        &tokio::runtime::Handle::current(),
    )
}

fn shared(i: u64) -> Arc<SharedRecord> {
    Arc::new(SharedRecord::new(record(i), SpanOptions::default()))
}

async fn stop(p: &Pipeline) {
    p.begin_shutdown();
    p.finish_shutdown(Instant::now() + Duration::from_secs(5))
        .await;
}

fn decode(batch: &EncodedBatch) -> ExportTraceServiceRequest {
    serde_json::from_slice(&batch.body).unwrap()
}

#[tokio::test]
async fn retryable_errors_are_retried_then_succeed() {
    let sink = ScriptedSink::failing(vec![
        ExportError::retryable("503"),
        ExportError::retryable("connection reset"),
    ]);
    let p = start(&config(), sink.clone());
    assert!(p.offer(shared(1), false));
    stop(&p).await;
    let s = p.stats();
    assert_eq!(s.retries, 2);
    assert_eq!(s.exported_batches, 1);
    assert_eq!(s.exported_spans, 1);
    assert_eq!(s.dropped_export_failed, 0);
    assert_eq!(s.last_error.as_deref(), Some("connection reset"));
    assert!(s.last_success_unix_ms.is_some());
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded_and_permanent_errors_drop() {
    let sink = ScriptedSink::failing(vec![ExportError::retryable("503"); 3]);
    let p = start(&config(), sink.clone());
    p.offer(shared(1), false);
    p.offer(shared(2), false);
    stop(&p).await;
    let s = p.stats();
    assert_eq!(s.retries, 2, "three attempts in all");
    assert_eq!(s.dropped_export_failed, 2, "both records of the batch");
    assert_eq!(s.exported_spans, 0);

    let sink = ScriptedSink::failing(vec![ExportError::from_status(401, None, "bad key")]);
    let p = start(&config(), sink.clone());
    p.offer(shared(1), false);
    stop(&p).await;
    let s = p.stats();
    assert_eq!(s.retries, 0, "a 4xx is never retried");
    assert_eq!(s.dropped_export_failed, 1);
    assert_eq!(s.last_error.as_deref(), Some("HTTP 401: bad key"));
}

#[tokio::test]
async fn a_batch_too_large_is_split_by_records() {
    let too_large = ExportError {
        kind: ExportErrorKind::TooLarge,
        message: "413".into(),
    };
    let sink = ScriptedSink::failing(vec![too_large.clone(), too_large]);
    let p = start(&config(), sink.clone());
    for i in 0..4 {
        p.offer(shared(i), false);
    }
    stop(&p).await;
    let received = sink.received();
    let per_batch: Vec<usize> = received.iter().map(|b| b.spans).collect();
    assert_eq!(per_batch, vec![1, 1, 2], "4 → 2+2, then the first 2 → 1+1");
    let s = p.stats();
    assert_eq!(s.exported_spans, 4);
    assert_eq!(s.dropped_export_failed, 0);
    for b in &received {
        let req = decode(b);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), b.spans);
    }
}

#[tokio::test]
async fn batches_are_bounded_by_span_count() {
    let mut c = config();
    c.max_batch_spans = 2;
    c.flush_interval_ms = 60_000;
    let sink = ScriptedSink::default();
    let p = start(&c, sink.clone());
    for i in 0..5 {
        p.offer(shared(i), false);
    }
    stop(&p).await;
    let per_batch: Vec<usize> = sink.received().iter().map(|b| b.spans).collect();
    assert_eq!(per_batch, vec![2, 2, 1]);
}

#[tokio::test]
async fn the_flush_interval_sends_partial_batches() {
    let sink = ScriptedSink::default();
    let p = start(&config(), sink.clone());
    p.offer(shared(1), false);
    let started = Instant::now();
    while sink.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "never flushed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(p.stats().exported_spans, 1);
    stop(&p).await;
}

#[tokio::test]
async fn a_hanging_sink_times_out_and_shutdown_respects_its_deadline() {
    let mut c = config();
    c.timeout_ms = 10;
    let sink = ScriptedSink {
        hang: true,
        ..Default::default()
    };
    let p = start(&c, sink);
    p.offer(shared(1), false);
    p.offer(shared(2), false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.begin_shutdown();
    let started = Instant::now();
    p.finish_shutdown(Instant::now() + Duration::from_millis(15))
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let s = p.stats();
    assert!(s.last_error.as_deref().unwrap_or("").contains("timed out"));
    assert_eq!(
        s.dropped_export_failed + s.dropped_shutdown,
        2,
        "every record is accounted for: {s:?}"
    );
    assert!(!p.offer(shared(3), false), "closed after shutdown");
    assert_eq!(p.stats().dropped_shutdown, s.dropped_shutdown + 1);
}

#[tokio::test]
async fn privacy_decided_at_queue_time_applies_per_record() {
    let sink = ScriptedSink::default();
    let p = start(&config(), sink.clone());
    let mut private = record(1);
    private.privacy = true;
    private.context.user = Some("u".into());
    private.request.messages = Some(crate::record::Content {
        json: r#"[{"role":"user","content":"canary-private"}]"#.into(),
        truncated: false,
    });
    let mut open = private.clone();
    open.privacy = false;
    open.request.messages = Some(crate::record::Content {
        json: r#"[{"role":"user","content":"visible-open"}]"#.into(),
        truncated: false,
    });
    p.offer(
        Arc::new(SharedRecord::new(private, SpanOptions::default())),
        true,
    );
    p.offer(
        Arc::new(SharedRecord::new(open, SpanOptions::default())),
        false,
    );
    stop(&p).await;
    let body: String = sink
        .received()
        .iter()
        .map(|b| String::from_utf8(b.body.clone()).unwrap())
        .collect();
    assert!(!body.contains("canary-private"));
    assert!(body.contains("visible-open"));
}

#[tokio::test]
async fn spans_are_built_once_and_shared() {
    let item = shared(1);
    let a = item.spans().as_ptr();
    let b = item.spans().as_ptr();
    assert_eq!(a, b);
    assert!(
        item.record.lock().unwrap().is_none(),
        "record released after building"
    );
}
