//! The disk spool against real HTTP receivers: a destination that is down longer than the
//! retry window, and a gateway restart in between, lose nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use gatecast_mock::otlp::{closed_port, Behaviour, Receiver};
use gatecast_telemetry::destinations::{OtlpConfig, Protocol};
use gatecast_telemetry::stats::DestinationStats;
use gatecast_telemetry::{BroadcastConfig, Broadcaster, DestinationConfig};

fn otlp(endpoint: String, spool: &Path) -> DestinationConfig {
    let mut otlp = OtlpConfig::new(endpoint);
    otlp.protocol = Some(Protocol::HttpProtobuf);
    let mut d = DestinationConfig::new("collector", otlp);
    d.flush_interval_ms = 10;
    d.timeout_ms = 2_000;
    d.spool_dir = Some(spool.to_path_buf());
    d
}

fn broadcaster(d: DestinationConfig) -> Broadcaster {
    Broadcaster::new(BroadcastConfig {
        service_name: "gatecast-test".into(),
        destinations: vec![d],
    })
    .unwrap()
}

fn stats(b: &Broadcaster) -> DestinationStats {
    b.stats().remove(0)
}

fn batch_files(spool: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(spool.join("collector")) else {
        return Vec::new();
    };
    read.map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "batch"))
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retries_is_spooled_then_delivered_once() {
    let spool = tempfile::tempdir().unwrap();
    // Five attempts (the retry policy) answered 503, then the collector is healthy.
    let mut answers = vec![(503, "unavailable"); 5];
    answers.push((200, "{}"));
    let rx = Receiver::scripted(answers).await;
    let b = broadcaster(otlp(rx.url("/v1/traces"), spool.path()));
    for i in 0..3 {
        b.publish(record_saying(&format!("run-{i}"), "hello"));
    }
    until("spooled", || stats(&b).spooled_batches >= 1).await;
    let s = stats(&b);
    assert_eq!(
        s.dropped_export_failed + s.dropped_shutdown + s.dropped_spool_full,
        0,
        "{s:?}"
    );

    until("replayed", || stats(&b).spool_files == 0).await;
    let s = stats(&b);
    assert_eq!(s.exported_batches, s.spooled_batches, "{s:?}");
    assert_eq!(s.exported_spans, 6);
    assert!(batch_files(spool.path()).is_empty());
    let requests = rx.requests();
    let accepted: Vec<_> = requests.iter().skip(5).collect();
    assert_eq!(accepted.len() as u64, s.exported_batches, "each batch once");
    let spans: usize = accepted
        .iter()
        .map(|r| {
            r.export_protobuf().resource_spans[0].scope_spans[0]
                .spans
                .len()
        })
        .sum();
    assert_eq!(spans, 6);
    assert!(
        accepted
            .iter()
            .any(|r| r.export_protobuf() == requests[0].export_protobuf()),
        "the refused batch is delivered as it was encoded"
    );
    assert!(accepted
        .iter()
        .all(|r| r.header("content-encoding") == Some("gzip")));
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_survive_a_restart_and_reach_the_collector_when_it_is_up() {
    let spool = tempfile::tempdir().unwrap();
    let port = closed_port().await;
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");

    // First run: nothing listens, so batches end up on disk.
    let first = broadcaster(otlp(endpoint.clone(), spool.path()));
    for i in 0..4 {
        first.publish(record_saying(&format!("run-{i}"), "hello"));
    }
    until("spooled", || stats(&first).spooled_spans == 8).await;
    first.shutdown(Duration::from_secs(5)).await;
    let s = stats(&first);
    assert_eq!(
        s.dropped_export_failed + s.dropped_shutdown,
        0,
        "connection refused loses nothing: {s:?}"
    );
    assert_eq!(batch_files(spool.path()).len() as u64, s.spooled_batches);

    // Second run, collector up on the same port: the spool is replayed at start.
    let rx = Receiver::http_on(port, Behaviour::script(vec![(200, "{}")])).await;
    let second = broadcaster(otlp(endpoint, spool.path()));
    until("replayed", || stats(&second).exported_spans == 8).await;
    until("deleted", || batch_files(spool.path()).is_empty()).await;
    let spans: usize = rx
        .requests()
        .iter()
        .map(|r| {
            r.export_protobuf().resource_spans[0].scope_spans[0]
                .spans
                .len()
        })
        .sum();
    assert_eq!(spans, 8, "every span exactly once");
    second.shutdown(Duration::from_secs(5)).await;
}

/// Trace ids of every span the receiver decoded, with how often each arrived.
fn spans_by_trace(rx: &Receiver) -> std::collections::BTreeMap<Vec<u8>, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in rx.requests() {
        for span in r
            .export_protobuf()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
        {
            *seen.entry(span.trace_id).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_hanging_export_spools_everything_for_the_next_start() {
    const RECORDS: usize = 40;
    let spool = tempfile::tempdir().unwrap();
    let hanging = Receiver::http(Behaviour::Silent).await;
    let mut d = otlp(hanging.url("/v1/traces"), spool.path());
    // The export outlasts the shutdown deadline, and the records make several batches: one
    // in flight, the others still queued or open when shutdown begins.
    d.timeout_ms = 60_000;
    d.max_batch_spans = 16;
    let first = broadcaster(d);
    for i in 0..RECORDS {
        first.publish(record_saying(&format!("hang-{i}"), "hello"));
    }
    until("an export reached the hanging receiver", || {
        hanging.connections() > 0
    })
    .await;
    let started = Instant::now();
    // Short beside the export's timeout; its last quarter is left for the spool writes.
    first.shutdown(Duration::from_secs(3)).await;
    let took = started.elapsed();
    let s = stats(&first);
    eprintln!(
        "shutdown took {took:?}: spooled {} records' spans {}, dropped_shutdown {}",
        s.spooled_spans / 2,
        s.spooled_spans,
        s.dropped_shutdown
    );
    assert!(
        took < Duration::from_secs(6),
        "bounded by its deadline: {took:?}"
    );

    // Next start, the collector is healthy: what the spool kept is replayed.
    let rx = Receiver::scripted(vec![(200, "{}")]).await;
    let second = broadcaster(otlp(rx.url("/v1/traces"), spool.path()));
    until("spool replayed", || batch_files(spool.path()).is_empty()).await;
    until("replay counted", || {
        stats(&second).exported_spans == s.spooled_spans
    })
    .await;
    let seen = spans_by_trace(&rx);
    eprintln!(
        "records kept across the shutdown: {} of {RECORDS}",
        seen.len()
    );
    assert_eq!(seen.len(), RECORDS, "every record reaches the collector");
    assert!(
        seen.values().all(|&n| n == 2),
        "each record's two spans exactly once: {seen:?}"
    );
    assert_eq!(
        s.dropped_shutdown + s.dropped_export_failed,
        0,
        "nothing counted lost: {s:?}"
    );
    assert_eq!(s.spooled_spans, 2 * RECORDS as u64, "counted as spooled");
    second.shutdown(Duration::from_secs(5)).await;
}
