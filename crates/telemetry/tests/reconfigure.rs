//! Live reconfiguration: the destination set is swapped while records flow, with file
//! destinations read back through the official OTLP types.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use gatecast_telemetry::{BroadcastConfig, Broadcaster, DestinationConfig, GenerationRecord};

fn dest(name: &str, path: &Path) -> DestinationConfig {
    fast_file(name, path)
}

fn record(i: u32) -> GenerationRecord {
    record_saying(&format!("reload-{i}"), &format!("canary-{i}"))
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_toggle_applies_to_records_published_after_it_and_keeps_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let mut d = dest("f", &path);
    // A long flush interval keeps record 1 queued across the toggle.
    d.flush_interval_ms = 300;
    let b = Broadcaster::new(BroadcastConfig {
        service_name: "t".into(),
        destinations: vec![d.clone()],
    })
    .unwrap();
    b.publish(record(1));

    let mut private = d.clone();
    private.privacy_mode = true;
    let summary = b.reconfigure(&[private.clone()]).await.unwrap();
    assert_eq!(summary.updated, vec!["f".to_owned()]);
    assert!(summary.restarted.is_empty() && summary.added.is_empty());
    assert!(!b.wants_content(), "the only destination is private now");
    b.publish(record(2));

    wait_for("both records exported", || b.stats()[0].exported_spans >= 4).await;
    let body = text(&path);
    assert!(body.contains("canary-1"), "queued before the toggle: kept");
    assert!(
        !body.contains("canary-2"),
        "published after the toggle: stripped"
    );
    let s = b.stats_for("f").unwrap();
    assert!(s.privacy_mode);
    assert_eq!(s.queued, 2, "same pipeline, same counters");

    let mut open = private;
    open.privacy_mode = false;
    b.reconfigure(&[open]).await.unwrap();
    assert!(b.wants_content());
    b.publish(record(3));
    b.shutdown(Duration::from_secs(5)).await;
    assert!(text(&path).contains("canary-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_changed_and_removed_destinations_deliver_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let a2 = dir.path().join("a2.jsonl");
    let c = dir.path().join("c.jsonl");
    let mut slow = dest("a", &a);
    slow.flush_interval_ms = 400;
    let b = Broadcaster::new(BroadcastConfig {
        service_name: "t".into(),
        destinations: vec![slow.clone(), dest("c", &c)],
    })
    .unwrap();
    b.publish(record(1));

    // `a` moves to another file (a transport change) and `c` is removed, while both still
    // hold record 1 in their queues; `n` is new.
    let n = dir.path().join("n.jsonl");
    let mut moved = slow.clone();
    moved.kind = gatecast_telemetry::destinations::FileConfig::new(a2.clone()).into();
    let summary = b.reconfigure(&[moved, dest("n", &n)]).await.unwrap();
    assert_eq!(summary.restarted, vec!["a".to_owned()]);
    assert_eq!(summary.added, vec!["n".to_owned()]);
    assert_eq!(summary.removed, vec!["c".to_owned()]);
    b.publish(record(2));

    wait_for("the replaced pipeline flushed its queue", || {
        text(&a).contains("canary-1")
    })
    .await;
    wait_for("the removed destination flushed", || {
        text(&c).contains("canary-1")
    })
    .await;
    wait_for("the new pipelines deliver", || {
        text(&a2).contains("canary-2") && text(&n).contains("canary-2")
    })
    .await;
    assert!(!text(&a).contains("canary-2"));
    assert!(!text(&c).contains("canary-2"));
    let names: Vec<String> = b.stats().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a", "n"]);
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_set_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let b = Broadcaster::new(BroadcastConfig {
        service_name: "t".into(),
        destinations: vec![dest("f", &path)],
    })
    .unwrap();
    let mut bad = dest("g", &dir.path().join("g.jsonl"));
    bad.sampling_rate = 0.0;
    let err = b
        .reconfigure(&[dest("f", &path), bad])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sampling_rate"), "{err}");
    let dup = b
        .reconfigure(&[dest("f", &path), dest("f", &path)])
        .await
        .unwrap_err()
        .to_string();
    assert!(dup.contains("name"), "{dup}");
    assert_eq!(b.destinations(), vec![dest("f", &path)]);
    b.publish(record(9));
    b.shutdown(Duration::from_secs(5)).await;
    assert!(text(&path).contains("canary-9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_stops_selection_and_enabling_starts_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let b = Broadcaster::disabled();
    let mut off = dest("f", &path);
    off.enabled = false;
    b.reconfigure(&[off.clone()]).await.unwrap();
    b.publish(record(1));
    let mut on = off;
    on.enabled = true;
    let summary = b.reconfigure(&[on]).await.unwrap();
    assert_eq!(summary.restarted, vec!["f".to_owned()]);
    b.publish(record(2));
    b.shutdown(Duration::from_secs(5)).await;
    let body = text(&path);
    assert!(
        !body.contains("canary-1") && body.contains("canary-2"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_cannot_start_does_not_block_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let b = Broadcaster::disabled();
    let broken = dest("broken", &blocker.join("t.jsonl"));
    let mut private = dest("good", &good);
    private.privacy_mode = true;
    b.reconfigure(&[broken.clone(), private]).await.unwrap();
    let stats = b.stats_for("broken").unwrap();
    assert!(stats.last_error.is_some(), "{stats:?}");
    b.publish(record(1));

    // Retried at the next reconfiguration, and works once its path does.
    std::fs::remove_file(&blocker).unwrap();
    let summary = b.reconfigure(&[broken, dest("good", &good)]).await.unwrap();
    assert_eq!(summary.restarted, vec!["broken".to_owned()]);
    b.publish(record(2));
    b.shutdown(Duration::from_secs(5)).await;
    let body = text(&good);
    assert!(
        !body.contains("canary-1") && body.contains("canary-2"),
        "{body}"
    );
    assert!(
        text(&blocker.join("t.jsonl")).contains("canary-2"),
        "{:?}",
        b.stats_for("broken")
    );
}
