//! The broadcaster end to end with file destinations in a temp dir: publish records, read
//! the lines back with the official OTLP types.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use gatecast_telemetry::destinations::SentryConfig;
use gatecast_telemetry::{
    BroadcastConfig, Broadcaster, DestinationConfig, GenerationRecord, TelemetryError,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

fn dest(name: &str, path: &Path) -> DestinationConfig {
    fast_file(name, path)
}

fn record(i: u32) -> GenerationRecord {
    record_saying(&format!("run-{i}"), &format!("secret-{i}"))
}

fn read(path: &Path) -> Vec<ExportTraceServiceRequest> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn spans(path: &Path) -> Vec<Span> {
    read(path)
        .into_iter()
        .flat_map(|r| r.resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn broadcaster(dests: Vec<DestinationConfig>) -> Broadcaster {
    Broadcaster::new(BroadcastConfig {
        service_name: "gatecast-test".into(),
        destinations: dests,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_records_land_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/traces.jsonl");
    let b = broadcaster(vec![dest("file", &path)]);
    assert!(b.wants_content());
    let records: Vec<GenerationRecord> = (0..25).map(record).collect();
    let trace_ids: HashSet<Vec<u8>> = records
        .iter()
        .map(|r| r.context.trace_id.to_vec())
        .collect();
    for r in records {
        b.publish(r);
    }
    let started = Instant::now();
    while spans(&path).len() < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} spans",
            spans(&path).len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = spans(&path);
    assert_eq!(got.len(), 50, "a span and a generation per record");
    let ids: HashSet<&Vec<u8>> = got.iter().map(|s| &s.span_id).collect();
    assert_eq!(ids.len(), 50);
    assert!(got
        .iter()
        .all(|s| s.span_id.len() == 8 && s.span_id.iter().any(|b| *b != 0)));
    let seen: HashSet<Vec<u8>> = got.iter().map(|s| s.trace_id.clone()).collect();
    assert_eq!(seen, trace_ids);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("secret-7"),
        "content reaches a destination without privacy"
    );
    let req = &read(&path)[0];
    let service = &req.resource_spans[0].resource.as_ref().unwrap().attributes[0];
    assert_eq!(service.key, "service.name");

    b.shutdown(Duration::from_secs(5)).await;
    let stats = &b.stats()[0];
    assert_eq!((stats.queued, stats.exported_spans), (25, 50));
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_export_failed + stats.dropped_shutdown,
        0
    );
    assert!(stats.last_success_unix_ms.is_some());
}

#[tokio::test]
async fn spans_are_shared_and_privacy_is_per_destination_and_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.jsonl");
    let private = dir.path().join("private.jsonl");
    let mut p = dest("private", &private);
    p.privacy_mode = true;
    let b = broadcaster(vec![dest("open", &open), p]);
    assert!(b.wants_content(), "one destination still wants content");
    b.publish(record(1));
    let mut tightened = record(2);
    tightened.privacy = true;
    b.publish(tightened);
    b.shutdown(Duration::from_secs(5)).await;

    let (a, z) = (spans(&open), spans(&private));
    assert_eq!(a.len(), 4);
    let ids = |s: &[Span]| s.iter().map(|x| x.span_id.clone()).collect::<HashSet<_>>();
    assert_eq!(
        ids(&a),
        ids(&z),
        "spans are built once: same ids everywhere"
    );
    let open_text = std::fs::read_to_string(&open).unwrap();
    assert!(open_text.contains("secret-1"));
    assert!(
        !open_text.contains("secret-2"),
        "the request's own privacy applies everywhere"
    );
    let private_text = std::fs::read_to_string(&private).unwrap();
    assert!(!private_text.contains("secret-"));
    assert!(private_text.contains("gen_ai.usage.input_tokens"));
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    // A current-thread runtime: the worker cannot run until the test yields, so the queue
    // fills deterministically.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    rt.block_on(async {
        let mut d = dest("small", &path);
        d.queue_capacity = 4;
        let b = broadcaster(vec![d]);
        let started = Instant::now();
        for i in 0..50 {
            b.publish(record(i));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "publish never waits"
        );
        let s = &b.stats()[0];
        assert_eq!((s.queued, s.queue_depth, s.dropped_queue_full), (4, 4, 46));
        b.shutdown(Duration::from_secs(5)).await;
        assert_eq!(b.stats()[0].exported_spans, 8);
        assert_eq!(spans(&path).len(), 8);
    });
}

#[tokio::test]
async fn shutdown_flushes_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let mut d = dest("slow-flush", &path);
    d.flush_interval_ms = 3_600_000;
    d.max_batch_spans = 10_000;
    let b = broadcaster(vec![d]);
    for i in 0..10 {
        b.publish(record(i));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(spans(&path).is_empty(), "still batching");
    let started = Instant::now();
    b.shutdown(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(spans(&path).len(), 20);
    assert_eq!(read(&path).len(), 1, "one batch, one line");

    b.publish(record(11));
    assert_eq!(
        b.stats()[0].dropped_shutdown,
        1,
        "after shutdown records are counted, not lost silently"
    );
    b.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn configuration_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let err = |dests| {
        Broadcaster::new(BroadcastConfig {
            service_name: String::new(),
            destinations: dests,
        })
        .err()
        .unwrap()
    };

    let e = err(vec![dest("a", &path), dest("a", &path)]);
    assert!(
        e.to_string().contains("`a`") && e.to_string().contains("name"),
        "{e}"
    );

    let mut sentry = dest("s", &path);
    sentry.kind = SentryConfig::default().into();
    let e = err(vec![sentry.clone()]);
    assert!(e.to_string().contains("dsn: required"), "{e}");
    sentry.kind = SentryConfig::new("https://short@o1.ingest.sentry.io/1").into();
    let e = err(vec![sentry]);
    assert!(e.to_string().contains("32 hex digits"), "{e}");

    std::fs::write(dir.path().join("file"), "").unwrap();
    let e = err(vec![dest("f", &dir.path().join("file/below.jsonl"))]);
    assert!(matches!(e, TelemetryError::Io { .. }), "{e}");

    let mut bad = dest("r", &path);
    bad.sampling_rate = 2.0;
    assert!(err(vec![bad]).to_string().contains("sampling_rate"));
}

#[test]
fn without_a_runtime_new_fails_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let e = Broadcaster::new(BroadcastConfig {
        service_name: "x".into(),
        destinations: vec![dest("f", &dir.path().join("t.jsonl"))],
    })
    .err()
    .unwrap();
    assert!(matches!(e, TelemetryError::NoRuntime));
}

#[tokio::test]
async fn disabled_destinations_and_the_disabled_broadcaster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never/t.jsonl");
    let mut d = dest("off", &path);
    d.enabled = false;
    let b = broadcaster(vec![d]);
    assert!(!b.wants_content());
    b.publish(record(1));
    b.shutdown(Duration::from_secs(1)).await;
    assert!(!path.exists(), "a disabled destination opens nothing");
    let s = &b.stats()[0];
    assert!(!s.enabled);
    assert_eq!(s.queued, 0);

    let mut p = dest("private", &dir.path().join("p.jsonl"));
    p.privacy_mode = true;
    assert!(
        !broadcaster(vec![p]).wants_content(),
        "no one wants content: the proxy keeps none"
    );

    let off = Broadcaster::disabled();
    off.publish(record(1));
    assert!(!off.wants_content());
    assert!(off.stats().is_empty());
    off.shutdown(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn stats_serialize_for_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let b = broadcaster(vec![dest("f", &dir.path().join("t.jsonl"))]);
    let v = serde_json::to_value(b.stats()).unwrap();
    assert_eq!(v[0]["name"], "f");
    assert_eq!(v[0]["type"], "file");
    for key in [
        "queued",
        "exported_spans",
        "exported_batches",
        "retries",
        "dropped_queue_full",
        "dropped_export_failed",
        "last_success_unix_ms",
        "last_error",
    ] {
        assert!(v[0].get(key).is_some(), "{key}");
    }
    b.shutdown(Duration::from_secs(1)).await;
}
