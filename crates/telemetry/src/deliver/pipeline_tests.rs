#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::*;
use crate::destinations::{EncodedBatch, Encoding, ExportError, ExportErrorKind};
use crate::record::{RouteInfo, Usage};

/// A sink that answers from a script, then succeeds; records what it received.
#[derive(Clone, Default)]
struct ScriptedSink {
    script: Arc<StdMutex<VecDeque<Result<(), ExportError>>>>,
    received: Arc<StdMutex<Vec<EncodedBatch>>>,
    hang: bool,
    /// While set, every export fails as if the destination refused connections.
    down: Arc<std::sync::atomic::AtomicBool>,
    /// A spool directory whose batch files each export counts, before it answers.
    watch: Option<std::path::PathBuf>,
    on_disk_at_export: Arc<StdMutex<Vec<usize>>>,
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
        if let Some(dir) = &self.watch {
            self.on_disk_at_export
                .lock()
                .unwrap()
                .push(spooled_files(dir).len());
        }
        if self.hang {
            std::future::pending::<()>().await;
        }
        if self.down.load(Relaxed) {
            return Err(ExportError::retryable("connection refused"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_goes_out_long_before_the_flush_interval() {
    // The busy worker polls its queue, so the batch leaves once full, not an hour later.
    let mut c = config();
    c.flush_interval_ms = 3_600_000;
    c.max_batch_spans = 8;
    let sink = ScriptedSink::default();
    let p = start(&c, sink.clone());
    let started = Instant::now();
    for i in 0..10 {
        assert!(p.offer(shared(i), false));
        // Each record on its own, so the worker sees the first alone and opens a batch.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while sink.received().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a full batch never went out: {:?}",
            p.stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = decode(&sink.received()[0]).resource_spans[0].scope_spans[0]
        .spans
        .len();
    assert!(
        first >= 8,
        "a full batch went out, not a partial one: {first}"
    );
    stop(&p).await;
    let spans = spans_received(&sink);
    assert_eq!(spans, 10, "the rest goes out at shutdown");
}

/// Every span the sink has received, over all its batches.
fn spans_received(sink: &ScriptedSink) -> usize {
    sink.received()
        .iter()
        .map(|b| decode(b).resource_spans[0].scope_spans[0].spans.len())
        .sum()
}

/// A pipeline whose worker has just become busy (one record taken, a batch open) and whose
/// batch is neither full nor due for an hour, with a queue of `queue_capacity`.
async fn busy_pipeline(queue_capacity: usize) -> (Pipeline, ScriptedSink) {
    let mut c = config();
    c.flush_interval_ms = 3_600_000;
    c.max_batch_spans = 10_000;
    c.queue_capacity = queue_capacity;
    let sink = ScriptedSink::default();
    let p = start(&c, sink.clone());
    assert!(p.offer(shared(0), false));
    tokio::time::sleep(Duration::from_millis(20)).await;
    (p, sink)
}

/// Waits up to 5 s for the queue to empty, failing with `what` and the stats.
async fn queue_empties(p: &Pipeline, what: &str) {
    let started = Instant::now();
    while p.stats().queue_depth > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            p.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_takes_records_from_its_queue_without_being_woken() {
    // Far below the doorbell (half of 64) and far below a batch: nothing rings and nothing
    // is due, yet the queue empties into the open batch within a few polls.
    let (p, sink) = busy_pipeline(64).await;
    for i in 1..=20 {
        assert!(p.offer(shared(i), false));
    }
    queue_empties(&p, "the busy worker never took its queue").await;
    assert!(sink.received().is_empty(), "nothing was due yet");
    stop(&p).await;
    let spans = spans_received(&sink);
    assert_eq!(spans, 21, "everything taken goes out at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_half_fills_the_queue_rings_the_worker() {
    // The worker polls once an hour here, so only the doorbell (at half of 10) can empty the
    // queue: four bursts of five records each leave it within seconds, and nothing drops.
    let mut c = config();
    c.flush_interval_ms = 3_600_000;
    c.max_batch_spans = 10_000;
    c.queue_capacity = 10;
    let mut s = settings(&c);
    s.poll_every = Duration::from_secs(3600);
    let p = Pipeline::spawn(
        &c,
        ScriptedSink::default(),
        s,
        &tokio::runtime::Handle::current(),
    );
    assert!(p.offer(shared(0), false));
    for burst in 0..4 {
        for i in 0..5 {
            assert!(p.offer(shared(1 + burst * 5 + i), false));
        }
        queue_empties(
            &p,
            &format!("burst {burst}: the doorbell never emptied the queue"),
        )
        .await;
    }
    assert_eq!(p.stats().dropped_queue_full, 0);
    stop(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_not_full_waits_for_the_flush_interval() {
    let mut c = config();
    c.flush_interval_ms = 300;
    c.max_batch_spans = 40;
    let sink = ScriptedSink::default();
    let p = start(&c, sink.clone());
    let started = Instant::now();
    for i in 0..3 {
        assert!(p.offer(shared(i), false));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sink.received().is_empty(), "sent before the batch was due");
    while sink.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "never flushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        decode(&sink.received()[0]).resource_spans[0].scope_spans[0]
            .spans
            .len(),
        3
    );
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
    // The first try's timeout must have fired before shutdown begins; on a loaded host the
    // batch may start late, so wait for it instead of a fixed 20 ms.
    let waited = Instant::now();
    while !p
        .stats()
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("timed out")
        && waited.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
        .map(|b| String::from_utf8(b.body.to_vec()).unwrap())
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

// ---- disk spool ----

fn spool_config(dir: &std::path::Path) -> DestinationConfig {
    let mut c = config();
    c.spool_dir = Some(dir.to_path_buf());
    c
}

fn start_spooling(
    config: &DestinationConfig,
    sink: ScriptedSink,
    max_bytes: Option<u64>,
) -> Pipeline {
    let mut s = settings(config);
    s.spool_retry_interval = Duration::from_millis(20);
    if let (Some(spool), Some(max)) = (s.spool.as_mut(), max_bytes) {
        spool.max_bytes = max;
    }
    Pipeline::spawn(config, sink, s, &tokio::runtime::Handle::current())
}

/// Spool files of destination `t`, oldest first.
fn spooled_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(read) = std::fs::read_dir(dir.join("t")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = read.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn start_time(batch: &EncodedBatch) -> u64 {
    decode(batch).resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano
}

/// Spools `n` single-record batches (records `first..first + n`) while the sink is down.
async fn spool_batches(p: &Pipeline, first: u64, n: u64) {
    for i in first..first + n {
        let before = p.stats().spooled_batches;
        assert!(p.offer(shared(i), false));
        until("batch spooled", || p.stats().spooled_batches > before).await;
    }
}

#[tokio::test]
async fn a_down_destination_spools_then_replays_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::default();
    sink.down.store(true, Relaxed);
    let p = start_spooling(&spool_config(dir.path()), sink.clone(), None);
    spool_batches(&p, 1, 3).await;
    let s = p.stats();
    assert_eq!((s.spooled_batches, s.spooled_spans), (3, 3));
    assert_eq!(s.spool_files, 3);
    let files = spooled_files(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let on_disk: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert_eq!(s.spool_bytes, on_disk);
    assert!(
        s.retries >= 6,
        "each batch went through the retry policy first"
    );
    assert_eq!(
        s.dropped_export_failed + s.dropped_shutdown + s.dropped_spool_full,
        0
    );
    assert_eq!(s.exported_batches, 0);

    // The destination comes back: the periodic try finds it and drains the spool.
    sink.down.store(false, Relaxed);
    until("spool drained", || p.stats().spool_files == 0).await;
    let received = sink.received();
    assert_eq!(received.len(), 3, "each spooled batch exactly once");
    let starts: Vec<u64> = received.iter().map(start_time).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "oldest first");
    let s = p.stats();
    assert_eq!((s.exported_batches, s.exported_spans), (3, 3));
    assert_eq!((s.replayed_batches, s.replayed_spans), (3, 3));
    assert_eq!(s.spool_bytes, 0);
    assert!(spooled_files(dir.path()).is_empty());
    stop(&p).await;
    assert_eq!(sink.received().len(), 3);
}

#[tokio::test]
async fn a_live_success_replays_the_spool_too() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::default();
    sink.down.store(true, Relaxed);
    let mut s = settings(&spool_config(dir.path()));
    s.spool_retry_interval = Duration::from_secs(3600);
    let p = Pipeline::spawn(
        &spool_config(dir.path()),
        sink.clone(),
        s,
        &tokio::runtime::Handle::current(),
    );
    spool_batches(&p, 1, 2).await;
    sink.down.store(false, Relaxed);
    p.offer(shared(10), false);
    until("live batch and spool sent", || sink.received().len() == 3).await;
    let starts: Vec<u64> = sink.received().iter().map(start_time).collect();
    assert!(
        starts[0] > starts[1] && starts[1] < starts[2],
        "live first, then the backlog oldest first: {starts:?}"
    );
    until("spool empty", || p.stats().spool_files == 0).await;
    stop(&p).await;
}

#[tokio::test]
async fn a_spooled_batch_refused_as_too_large_is_split_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = spool_config(dir.path());
    // Long enough that the four records below leave as one batch.
    config.flush_interval_ms = 200;
    let too_large = ExportError {
        kind: ExportErrorKind::TooLarge,
        message: "HTTP 413".into(),
    };
    let sink = ScriptedSink::failing(vec![too_large.clone(), too_large]);
    sink.down.store(true, Relaxed);
    let p = start_spooling(&config, sink.clone(), None);
    for i in 1..=4 {
        assert!(p.offer(shared(i), false));
    }
    until("big batch spooled", || p.stats().spooled_spans == 4).await;
    assert_eq!(p.stats().spooled_batches, 1, "one batch of four records");
    assert!(p.offer(shared(5), false));
    until("later batch spooled", || p.stats().spooled_spans == 5).await;

    sink.down.store(false, Relaxed);
    until("spool drained", || p.stats().spool_files == 0).await;
    let received = sink.received();
    let per_batch: Vec<usize> = received.iter().map(|b| b.spans).collect();
    assert_eq!(
        per_batch,
        vec![1, 1, 2, 1],
        "4 → 2+2, then the first 2 → 1+1, all before the later batch"
    );
    let starts: Vec<u64> = received
        .iter()
        .flat_map(|b| decode(b).resource_spans[0].scope_spans[0].spans.clone())
        .map(|span| span.start_time_unix_nano)
        .collect();
    let mut expected = starts.clone();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(starts.len(), 5, "every span once: {starts:?}");
    assert_eq!(starts, expected, "in the order they were spooled");
    let s = p.stats();
    assert_eq!(s.exported_spans, 5);
    assert_eq!(
        s.dropped_export_failed + s.dropped_shutdown + s.dropped_spool_full,
        0,
        "{s:?}"
    );
    assert_eq!(s.spool_bytes, 0);
    assert!(spooled_files(dir.path()).is_empty());
    stop(&p).await;
}

#[tokio::test]
async fn a_spooled_single_span_refused_as_too_large_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::failing(vec![ExportError {
        kind: ExportErrorKind::TooLarge,
        message: "HTTP 413".into(),
    }]);
    sink.down.store(true, Relaxed);
    let p = start_spooling(&spool_config(dir.path()), sink.clone(), None);
    spool_batches(&p, 1, 1).await;
    sink.down.store(false, Relaxed);
    until("spool emptied", || p.stats().spool_files == 0).await;
    let s = p.stats();
    assert_eq!(s.dropped_export_failed, 1, "{s:?}");
    assert_eq!(s.exported_spans, 0);
    assert_eq!(s.last_error.as_deref(), Some("HTTP 413"));
    assert!(spooled_files(dir.path()).is_empty());
    stop(&p).await;
}

#[tokio::test]
async fn spooled_batches_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = spool_config(dir.path());
    let down = ScriptedSink::default();
    down.down.store(true, Relaxed);
    let first = start_spooling(&config, down, None);
    spool_batches(&first, 1, 2).await;
    stop(&first).await;
    assert_eq!(first.stats().dropped_shutdown, 0);
    assert_eq!(spooled_files(dir.path()).len(), 2);

    let healthy = ScriptedSink::default();
    let second = start_spooling(&config, healthy.clone(), None);
    until("replayed after restart", || healthy.received().len() == 2).await;
    until("spool empty", || second.stats().spool_files == 0).await;
    assert!(spooled_files(dir.path()).is_empty());
    assert_eq!(second.stats().exported_spans, 2);
    stop(&second).await;
}

#[tokio::test]
async fn a_full_spool_drops_its_oldest_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = spool_config(dir.path());
    // Learn the size of one single-record batch.
    let probe_dir = tempfile::tempdir().unwrap();
    let down = ScriptedSink::default();
    down.down.store(true, Relaxed);
    let probe = start_spooling(&spool_config(probe_dir.path()), down.clone(), None);
    spool_batches(&probe, 0, 1).await;
    let size = probe.stats().spool_bytes;
    stop(&probe).await;

    // Room for two and a half batches.
    let p = start_spooling(&config, down, Some(size * 5 / 2));
    spool_batches(&p, 1, 4).await;
    let s = p.stats();
    assert_eq!(s.spooled_batches, 4);
    assert_eq!(s.dropped_spool_full, 2, "the two oldest records: {s:?}");
    assert_eq!(s.spool_files, 2);
    assert!(s.spool_bytes <= size * 5 / 2);
    let files = spooled_files(dir.path());
    assert_eq!(files.len(), 2);
    let kept: Vec<u64> = files
        .iter()
        .map(|f| {
            let batch = EncodedBatch {
                body: std::fs::read(f).unwrap().into(),
                spans: 1,
                wire: None,
            };
            start_time(&batch)
        })
        .collect();
    let expected: Vec<u64> = [3u64, 4]
        .iter()
        .map(|&i| shared(i).spans()[0].start_unix_nanos)
        .collect();
    assert_eq!(kept, expected, "the newest batches stay");
    assert_eq!(DropReason::SpoolFull.as_str(), "spool_full");
    stop(&p).await;
}

#[tokio::test]
async fn permanent_errors_are_not_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::failing(vec![ExportError::from_status(400, None, "bad request")]);
    let p = start_spooling(&spool_config(dir.path()), sink, None);
    p.offer(shared(1), false);
    stop(&p).await;
    let s = p.stats();
    assert_eq!(s.dropped_export_failed, 1);
    assert_eq!(s.spooled_batches, 0);
    assert!(spooled_files(dir.path()).is_empty());
}

#[tokio::test]
async fn shutdown_spools_what_a_hanging_destination_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = spool_config(dir.path());
    c.timeout_ms = 20;
    c.flush_interval_ms = 60_000;
    let sink = ScriptedSink {
        hang: true,
        ..Default::default()
    };
    let p = start_spooling(&c, sink, None);
    for i in 0..3 {
        assert!(p.offer(shared(i), false));
    }
    p.begin_shutdown();
    p.finish_shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    let s = p.stats();
    assert_eq!(s.retries, 0, "no backoff at shutdown with a spool");
    assert_eq!((s.spooled_batches, s.spooled_spans), (1, 3));
    assert_eq!(
        s.dropped_shutdown + s.dropped_export_failed,
        0,
        "nothing lost: {s:?}"
    );
    assert_eq!(spooled_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn spooled_batches_in_another_encoding_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config = spool_config(dir.path());
    let down = ScriptedSink::default();
    down.down.store(true, Relaxed);
    let first = start_spooling(&config, down, None);
    spool_batches(&first, 1, 1).await;
    stop(&first).await;
    let file = spooled_files(dir.path()).remove(0);
    let renamed = file
        .to_str()
        .unwrap()
        .replace(".json.batch", ".protobuf.batch");
    std::fs::rename(&file, &renamed).unwrap();

    let sink = ScriptedSink::default();
    let second = start_spooling(&config, sink.clone(), None);
    until("dropped", || second.stats().dropped_export_failed == 1).await;
    until("deleted", || spooled_files(dir.path()).is_empty()).await;
    assert!(sink.received().is_empty());
    stop(&second).await;
}

#[tokio::test]
async fn at_the_deadline_a_batch_waiting_for_its_retry_is_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let c = spool_config(dir.path());
    // The destination asks for a minute's pause: the batch waits in its backoff at shutdown.
    let sink = ScriptedSink::failing(vec![ExportError {
        kind: ExportErrorKind::Retryable {
            retry_after: Some(Duration::from_secs(60)),
        },
        message: "HTTP 503".into(),
    }]);
    let mut s = settings(&c);
    s.retry.max_backoff = Duration::from_secs(60);
    let p = Pipeline::spawn(&c, sink.clone(), s, &tokio::runtime::Handle::current());
    for i in 0..3 {
        assert!(p.offer(shared(i), false));
    }
    until("first try refused", || p.stats().retries == 1).await;
    assert!(p.offer(shared(3), false), "queued behind the waiting batch");
    p.begin_shutdown();
    let started = Instant::now();
    p.finish_shutdown(Instant::now() + Duration::from_secs(2))
        .await;
    assert!(started.elapsed() < Duration::from_secs(4), "bounded");
    let s = p.stats();
    assert_eq!(s.spooled_spans, 4, "the waiting batch and the queue: {s:?}");
    assert_eq!(s.dropped_shutdown + s.dropped_export_failed, 0, "{s:?}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn without_a_spool_the_deadline_still_counts_what_is_left_as_lost() {
    let mut c = config();
    c.timeout_ms = 60_000;
    let sink = ScriptedSink {
        hang: true,
        ..Default::default()
    };
    let p = start(&c, sink);
    for i in 0..3 {
        assert!(p.offer(shared(i), false));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.begin_shutdown();
    let started = Instant::now();
    p.finish_shutdown(Instant::now() + Duration::from_millis(300))
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited to the end"
    );
    let s = p.stats();
    assert_eq!(s.dropped_shutdown, 3, "{s:?}");
    assert_eq!(s.spooled_batches, 0);
}

// ---- spool_mode = "always" ----

fn always_config(dir: &std::path::Path) -> DestinationConfig {
    let mut c = spool_config(dir);
    c.spool_mode = crate::destinations::SpoolMode::Always;
    c
}

/// A sink that counts the spool files of destination `t` under `dir` at each export.
fn watching(dir: &std::path::Path) -> ScriptedSink {
    ScriptedSink {
        watch: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

#[tokio::test]
async fn always_writes_each_batch_before_its_first_send_and_deletes_it_once_taken() {
    let dir = tempfile::tempdir().unwrap();
    let sink = watching(dir.path());
    let p = start_spooling(&always_config(dir.path()), sink.clone(), None);
    for i in 0..3 {
        assert!(p.offer(shared(i), false));
        until("sent", || sink.received().len() as u64 > i).await;
    }
    until("deleted", || p.stats().spool_files == 0).await;
    stop(&p).await;
    assert_eq!(
        *sink.on_disk_at_export.lock().unwrap(),
        vec![1, 1, 1],
        "each batch was on disk while it was sent"
    );
    let s = p.stats();
    assert_eq!((s.spooled_batches, s.exported_batches), (3, 3));
    assert_eq!(s.replayed_batches, 0, "sent live, not replayed");
    assert_eq!(s.spool_bytes, 0);
    assert!(spooled_files(dir.path()).is_empty());
    assert_eq!(s.dropped_export_failed + s.dropped_shutdown, 0);
}

#[tokio::test]
async fn always_keeps_a_failed_batch_on_disk_once_and_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::default();
    sink.down.store(true, Relaxed);
    let p = start_spooling(&always_config(dir.path()), sink.clone(), None);
    assert!(p.offer(shared(1), false));
    // Three tries live (two retries), then the periodic replays retry it too.
    until("live tries used up", || p.stats().retries >= 4).await;
    let s = p.stats();
    assert_eq!(s.spooled_batches, 1, "written once, before the first send");
    assert_eq!(s.spool_files, 1);
    sink.down.store(false, Relaxed);
    until("replayed", || p.stats().spool_files == 0).await;
    stop(&p).await;
    let s = p.stats();
    assert_eq!(s.spooled_batches, 1, "not written again after the failure");
    assert_eq!((s.replayed_batches, s.exported_batches), (1, 1));
    assert_eq!(sink.received().len(), 1);
    assert_eq!(s.dropped_export_failed + s.dropped_shutdown, 0);
}

#[tokio::test]
async fn always_deletes_a_batch_refused_for_good_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ScriptedSink::failing(vec![ExportError::from_status(400, None, "bad")]);
    let p = start_spooling(&always_config(dir.path()), sink, None);
    p.offer(shared(1), false);
    until("dropped", || p.stats().dropped_export_failed == 1).await;
    stop(&p).await;
    let s = p.stats();
    assert_eq!((s.spooled_batches, s.spool_files), (1, 0));
    assert!(spooled_files(dir.path()).is_empty());
}

#[tokio::test]
async fn always_splits_a_batch_too_large_on_disk_by_records() {
    let dir = tempfile::tempdir().unwrap();
    let too_large = ExportError {
        kind: ExportErrorKind::TooLarge,
        message: "413".into(),
    };
    let mut sink = ScriptedSink::failing(vec![too_large.clone(), too_large]);
    sink.watch = Some(dir.path().to_path_buf());
    let mut c = always_config(dir.path());
    c.flush_interval_ms = 200;
    let p = start_spooling(&c, sink.clone(), None);
    for i in 0..4 {
        p.offer(shared(i), false);
    }
    stop(&p).await;
    let per_batch: Vec<usize> = sink.received().iter().map(|b| b.spans).collect();
    assert_eq!(per_batch, vec![1, 1, 2], "4 → 2+2, then the first 2 → 1+1");
    assert_eq!(
        *sink.on_disk_at_export.lock().unwrap(),
        vec![1, 2, 3, 2, 1],
        "the whole, then its halves in its place, until each is taken"
    );
    let s = p.stats();
    assert_eq!(s.exported_spans, 4);
    assert_eq!(s.dropped_export_failed + s.dropped_shutdown, 0, "{s:?}");
    assert!(spooled_files(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_keeps_writing_batches_to_disk_while_an_export_hangs() {
    // What a crash would lose: with the export stuck, records published since are still
    // written out one flush interval at a time.
    let dir = tempfile::tempdir().unwrap();
    let mut c = always_config(dir.path());
    c.timeout_ms = 60_000;
    let hanging = ScriptedSink {
        hang: true,
        ..Default::default()
    };
    let p = start_spooling(&c, hanging, None);
    assert!(p.offer(shared(0), false));
    until("first batch on disk", || p.stats().spooled_batches == 1).await;
    for i in 1..6 {
        assert!(p.offer(shared(i), false));
        until("next batch on disk", || p.stats().spooled_spans == i + 1).await;
    }
    assert_eq!(
        p.stats().exported_batches,
        0,
        "the first export still hangs"
    );
    assert_eq!(spooled_files(dir.path()).len(), 6);

    // The next run finds them all: each record exactly once.
    p.begin_shutdown();
    p.finish_shutdown(Instant::now() + Duration::from_millis(400))
        .await;
    assert_eq!(p.stats().dropped_shutdown, 0);
    let healthy = ScriptedSink::default();
    let next = start_spooling(&c, healthy.clone(), None);
    until("replayed", || next.stats().spool_files == 0).await;
    stop(&next).await;
    let mut starts: Vec<u64> = healthy.received().iter().map(start_time).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 6);
    assert_eq!(next.stats().replayed_spans, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_with_a_full_spool_drops_the_oldest_batches_but_not_the_one_out() {
    // The size of one single-record batch.
    let probe_dir = tempfile::tempdir().unwrap();
    let down = ScriptedSink::default();
    down.down.store(true, Relaxed);
    let probe = start_spooling(&spool_config(probe_dir.path()), down, None);
    spool_batches(&probe, 0, 1).await;
    let size = probe.stats().spool_bytes;
    stop(&probe).await;

    // Room for two and a half batches; the first export hangs while three more are written.
    let dir = tempfile::tempdir().unwrap();
    let mut c = always_config(dir.path());
    c.timeout_ms = 60_000;
    let hanging = ScriptedSink {
        hang: true,
        ..Default::default()
    };
    let p = start_spooling(&c, hanging, Some(size * 5 / 2));
    for i in 0..4 {
        assert!(p.offer(shared(i), false));
        until("batch on disk", || p.stats().spooled_batches == i + 1).await;
    }
    let s = p.stats();
    assert_eq!(s.dropped_spool_full, 2, "two batches evicted: {s:?}");
    assert_eq!(s.spool_files, 2);
    assert!(s.spool_bytes <= size * 5 / 2);
    p.begin_shutdown();
    p.finish_shutdown(Instant::now() + Duration::from_millis(400))
        .await;
    assert_eq!(p.stats().dropped_shutdown, 0);

    let healthy = ScriptedSink::default();
    let next = start_spooling(&c, healthy.clone(), None);
    until("replayed", || next.stats().spool_files == 0).await;
    stop(&next).await;
    let starts: Vec<u64> = healthy.received().iter().map(start_time).collect();
    let expected: Vec<u64> = [0u64, 3]
        .iter()
        .map(|&i| shared(i).spans()[0].start_unix_nanos)
        .collect();
    assert_eq!(starts, expected, "the batch out and the newest one stay");
}
