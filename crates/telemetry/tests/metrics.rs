//! Destination counters reach the `metrics` facade, even when the binary installs its
//! recorder after the pipelines started (as the gateway does).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gatecast_telemetry::{BroadcastConfig, Broadcaster, DestinationConfig};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::json;

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Counters by `name{label=value,...}`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<HashMap<String, Arc<Cell>>>>);

impl Capture {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let cell = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn counters_reach_a_recorder_installed_later() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let mut d = DestinationConfig::file("metered", dir.path().join("t.jsonl"));
        d.queue_capacity = 2;
        let b = Broadcaster::new(BroadcastConfig {
            service_name: "x".into(),
            destinations: vec![d],
        })
        .unwrap();
        let capture = Capture::default();
        metrics::set_global_recorder(capture.clone()).unwrap();
        for i in 0..3 {
            b.publish(with_trace(
                base(),
                json!({"trace_id": format!("m{i}")}),
                None,
            ));
        }
        b.shutdown(Duration::from_secs(5)).await;
        let dest = "destination=metered";
        assert_eq!(
            capture.get(&format!("gatecast_destination_queued_total{{{dest}}}")),
            2
        );
        assert_eq!(
            capture.get(&format!(
                "gatecast_destination_exported_spans_total{{{dest}}}"
            )),
            2
        );
        assert_eq!(
            capture.get(&format!(
                "gatecast_destination_exported_batches_total{{{dest}}}"
            )),
            1
        );
        assert_eq!(
            capture.get(&format!(
                "gatecast_destination_dropped_total{{{dest},reason=queue_full}}"
            )),
            1
        );
    });
}
