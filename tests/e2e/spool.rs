//! What the disk spool keeps when the real gateway stops during a destination outage: a
//! SIGTERM while an export hangs, and a SIGKILL while the destination answers 503 with
//! `Retry-After: 30` (a collector in maintenance), so a batch waits in its retries far longer
//! than the test runs. What arrives after a restart with the destination back is counted
//! with the in-process OTLP receiver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatecast_mock::otlp::{Behaviour, Receiver};
use serde_json::json;

use crate::harness::hex;
use crate::process::{self, Gateway};

/// Records published before the spool is checked, and after it: the second lot is what
/// the last flush interval holds when the gateway dies.
const SETTLED: usize = 30;
const LAST_INTERVAL: usize = 10;
const FLUSH_INTERVAL_MS: u64 = 200;

/// SIGTERM, as an orchestrator stops it; returns how long the gateway took to exit.
async fn terminate(mut gateway: Gateway) -> Duration {
    let started = Instant::now();
    gateway.terminate();
    assert!(
        gateway.exited(Duration::from_secs(30)).await.is_some(),
        "the gateway did not exit after SIGTERM"
    );
    started.elapsed()
}

fn write_config(dir: &Path, run: &str, mock: &str, endpoint: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[server]
shutdown_timeout_ms = 4000

[store]
url = "sqlite://{dir}/gatecast.db"

[providers.up]
kind = "openai"
base_url = "{mock}"
models = ["gpt-4o-mini"]

[[destinations]]
name = "collector"
type = "otlp"
endpoint = "{endpoint}"
protocol = "http/protobuf"
flush_interval_ms = {FLUSH_INTERVAL_MS}
spool_dir = "{dir}/spool"
{extra}
"#,
        dir = dir.display()
    );
    let path = dir.join(format!("gatecast-{run}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(dir: &Path, config: &Path) -> Gateway {
    process::start_config(dir, config, None).await
}

/// Sends one chat request; returns its trace id.
async fn chat(client: &reqwest::Client, base: &str, i: usize) -> String {
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "up/gpt-4o-mini",
                      "messages": [{"role": "user", "content": format!("crash-{i}")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()
        .get("x-gatecast-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// A destination counter from `/metrics`.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(r#"destination="collector""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Waits until the spool of `collector` under `dir` is empty: replayed and deleted.
async fn replayed(dir: &Path) {
    let started = Instant::now();
    while spool_files(dir) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the spool was never replayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool/collector")).map_or(0, |read| {
        read.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
            .count()
    })
}

struct Outcome {
    published: usize,
    /// Spans on disk (written to the spool) when the gateway was killed.
    spooled_at_kill: u64,
    /// How often each published trace arrived after the restart.
    arrived: BTreeMap<String, usize>,
    /// Of those, the ones published before the last flush interval.
    settled_arrived: usize,
}

/// Publishes `SETTLED` records, waits up to `patience` for the spool to hold them, publishes
/// `LAST_INTERVAL` more and kills the gateway at once; then restarts it with the collector
/// up and counts what arrives.
async fn crash_during_an_outage(mode: &str, patience: Duration) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let down = Receiver::http(Behaviour::FailFirst {
        status: 503,
        n: u32::MAX,
        retry_after: Some(30),
    })
    .await;
    let client = reqwest::Client::new();
    let config = write_config(
        dir.path(),
        "first",
        &mock.base_url(),
        &down.url("/v1/traces"),
        &format!("spool_mode = \"{mode}\""),
    );
    let first = start(dir.path(), &config).await;
    let mut settled = Vec::new();
    for i in 0..SETTLED {
        settled.push(chat(&client, &first.base, i).await);
    }
    let spooled = "gatecast_destination_spooled_spans_total";
    let started = Instant::now();
    while metric(&client, &first.base, spooled).await < SETTLED as u64
        && started.elapsed() < patience
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut last = Vec::new();
    for i in SETTLED..SETTLED + LAST_INTERVAL {
        last.push(chat(&client, &first.base, i).await);
    }
    let spooled_at_kill = metric(&client, &first.base, spooled).await;
    first.crash();

    let up = Receiver::http(Behaviour::Ok).await;
    let config = write_config(
        dir.path(),
        "second",
        &mock.base_url(),
        &up.url("/v1/traces"),
        &format!("spool_mode = \"{mode}\""),
    );
    let second = start(dir.path(), &config).await;
    replayed(dir.path()).await;
    // Deleted after the collector took them: every replayed span is in by now.
    let replayed = metric(
        &client,
        &second.base,
        "gatecast_destination_replayed_spans_total",
    )
    .await;
    drop(second);
    let outcome = count(&up, &settled, &last, spooled_at_kill);
    assert_eq!(
        replayed,
        outcome.arrived.values().sum::<usize>() as u64,
        "every arrival is a counted replay"
    );
    outcome
}

fn count(up: &Receiver, settled: &[String], last: &[String], spooled_at_kill: u64) -> Outcome {
    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for span in up.spans() {
        *arrived.entry(hex(&span.trace_id)).or_default() += 1;
    }
    let published: Vec<&String> = settled.iter().chain(last).collect();
    arrived.retain(|id, _| published.contains(&id));
    let settled_arrived = settled
        .iter()
        .filter(|id| arrived.contains_key(*id))
        .count();
    Outcome {
        published: published.len(),
        spooled_at_kill,
        arrived,
        settled_arrived,
    }
}

fn report(mode: &str, o: &Outcome) {
    eprintln!(
        "spool_mode = {mode}: {} of {} records arrived after kill -9 ({} of the {SETTLED} \
         published before the last flush interval; {} spans on disk at the kill)",
        o.arrived.len(),
        o.published,
        o.settled_arrived,
        o.spooled_at_kill
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_spool_mode_always_a_crash_loses_at_most_the_last_flush_interval() {
    let o = crash_during_an_outage("always", Duration::from_secs(30)).await;
    report("always", &o);
    assert!(
        o.spooled_at_kill >= SETTLED as u64,
        "the spool held the settled records before the kill"
    );
    assert_eq!(
        o.settled_arrived, SETTLED,
        "everything published before the last flush interval survives"
    );
    assert!(o.arrived.len() >= o.published - LAST_INTERVAL);
    assert!(
        o.arrived.values().all(|&n| n == 1),
        "nothing was taken before the crash, so each arrives once: {:?}",
        o.arrived
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_spool_mode_on_failure_a_crash_loses_what_waits_for_its_retries() {
    // The same run: the batch waits for its retries in memory, with what queued behind it,
    // so the spool has nothing by the time the gateway dies.
    let o = crash_during_an_outage("on_failure", Duration::from_secs(5)).await;
    report("on_failure", &o);
    assert_eq!(o.spooled_at_kill, 0, "nothing reached the disk");
    assert!(
        o.arrived.is_empty(),
        "what was only in memory is gone: {:?}",
        o.arrived
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_an_export_hangs_keeps_every_record_in_the_spool() {
    const RECORDS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let hanging = Receiver::http(Behaviour::Hang).await;
    let client = reqwest::Client::new();
    // The export outlasts the 4 s shutdown; the records make several batches.
    let config = write_config(
        dir.path(),
        "first",
        &mock.base_url(),
        &hanging.url("/v1/traces"),
        "timeout_ms = 60000\nmax_batch_spans = 4",
    );
    let first = start(dir.path(), &config).await;
    let mut published = Vec::new();
    for i in 0..RECORDS {
        published.push(chat(&client, &first.base, i).await);
    }
    let started = Instant::now();
    while hanging.calls() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no export went out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = terminate(first).await;

    let up = Receiver::http(Behaviour::Ok).await;
    let config = write_config(
        dir.path(),
        "second",
        &mock.base_url(),
        &up.url("/v1/traces"),
        "",
    );
    let second = start(dir.path(), &config).await;
    replayed(dir.path()).await;
    drop(second);
    let o = count(&up, &published, &[], 0);
    eprintln!(
        "SIGTERM during a hanging export: {} of {RECORDS} records kept (exit took {took:?})",
        o.arrived.len()
    );
    assert!(
        took < Duration::from_secs(10),
        "shutdown is bounded: {took:?}"
    );
    assert_eq!(
        o.arrived.len(),
        RECORDS,
        "every record was spooled and replayed"
    );
    assert!(o.arrived.values().all(|&n| n == 1), "{:?}", o.arrived);
}
