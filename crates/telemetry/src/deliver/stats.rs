//! Per-destination delivery counters, readable without locks on the hot path.
//!
//! The same numbers go to the `metrics` facade (`gatecast_destination_*`, labelled by
//! destination), so the binary's Prometheus recorder exports them, and to [`DestinationStats`]
//! for the admin API.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge};
use serde::Serialize;

/// Why records were lost; the label of `gatecast_destination_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    ExportFailed,
    Shutdown,
    /// The disk spool reached `spool_max_bytes`: its oldest batches were deleted.
    SpoolFull,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::ExportFailed => "export_failed",
            DropReason::Shutdown => "shutdown",
            DropReason::SpoolFull => "spool_full",
        }
    }
}

/// A snapshot for `/admin/v1/destinations/.../stats`. Drops count records; exports count
/// spans and batches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationStats {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub privacy_mode: bool,
    /// Records accepted into the queue since start.
    pub queued: u64,
    /// Records waiting in the queue right now.
    pub queue_depth: u64,
    pub exported_spans: u64,
    pub exported_batches: u64,
    pub retries: u64,
    pub dropped_queue_full: u64,
    pub dropped_export_failed: u64,
    pub dropped_shutdown: u64,
    /// Records whose spooled batches were deleted to keep the spool under `spool_max_bytes`.
    pub dropped_spool_full: u64,
    /// Batches (and their spans) written to the disk spool instead of being dropped.
    pub spooled_batches: u64,
    pub spooled_spans: u64,
    /// Spooled batches (and their spans) delivered from the spool: after an outage, at a
    /// restart, or written there while another export was out. Delivery is at least once, so
    /// a batch delivered just before a crash, and not yet deleted, is replayed again.
    pub replayed_batches: u64,
    pub replayed_spans: u64,
    /// What the disk spool holds right now.
    pub spool_files: u64,
    pub spool_bytes: u64,
    pub last_success_unix_ms: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct Counters {
    pub queued: AtomicU64,
    pub exported_spans: AtomicU64,
    pub exported_batches: AtomicU64,
    pub retries: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_export_failed: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub dropped_spool_full: AtomicU64,
    pub spooled_batches: AtomicU64,
    pub spooled_spans: AtomicU64,
    pub replayed_batches: AtomicU64,
    pub replayed_spans: AtomicU64,
    /// Gauges: the spool's current content.
    pub spool_files: AtomicU64,
    pub spool_bytes: AtomicU64,
    /// 0 until the first success.
    pub last_success_unix_ms: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    destination: String,
    metrics: OnceLock<Metrics>,
}

#[derive(Debug)]
struct Metrics {
    queued: Counter,
    exported_spans: Counter,
    exported_batches: Counter,
    retries: Counter,
    dropped_queue_full: Counter,
    dropped_export_failed: Counter,
    dropped_shutdown: Counter,
    dropped_spool_full: Counter,
    spooled_batches: Counter,
    spooled_spans: Counter,
    replayed_batches: Counter,
    replayed_spans: Counter,
    spool_bytes: Gauge,
}

impl Metrics {
    fn register(destination: &str) -> Self {
        let name = destination.to_owned();
        let dropped = |reason: DropReason| {
            metrics::counter!("gatecast_destination_dropped_total",
                "destination" => name.clone(), "reason" => reason.as_str())
        };
        Self {
            queued: metrics::counter!("gatecast_destination_queued_total", "destination" => name.clone()),
            exported_spans: metrics::counter!("gatecast_destination_exported_spans_total", "destination" => name.clone()),
            exported_batches: metrics::counter!("gatecast_destination_exported_batches_total", "destination" => name.clone()),
            retries: metrics::counter!("gatecast_destination_retries_total", "destination" => name.clone()),
            dropped_queue_full: dropped(DropReason::QueueFull),
            dropped_export_failed: dropped(DropReason::ExportFailed),
            dropped_shutdown: dropped(DropReason::Shutdown),
            dropped_spool_full: dropped(DropReason::SpoolFull),
            spooled_batches: metrics::counter!("gatecast_destination_spooled_batches_total", "destination" => name.clone()),
            spooled_spans: metrics::counter!("gatecast_destination_spooled_spans_total", "destination" => name.clone()),
            replayed_batches: metrics::counter!("gatecast_destination_replayed_batches_total", "destination" => name.clone()),
            replayed_spans: metrics::counter!("gatecast_destination_replayed_spans_total", "destination" => name.clone()),
            spool_bytes: metrics::gauge!("gatecast_destination_spool_bytes", "destination" => name.clone()),
        }
    }
}

impl Counters {
    pub fn new(destination: &str) -> Self {
        Self {
            queued: AtomicU64::new(0),
            exported_spans: AtomicU64::new(0),
            exported_batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_export_failed: AtomicU64::new(0),
            dropped_shutdown: AtomicU64::new(0),
            dropped_spool_full: AtomicU64::new(0),
            spooled_batches: AtomicU64::new(0),
            spooled_spans: AtomicU64::new(0),
            replayed_batches: AtomicU64::new(0),
            replayed_spans: AtomicU64::new(0),
            spool_files: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            last_success_unix_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            destination: destination.to_owned(),
            metrics: OnceLock::new(),
        }
    }

    /// Handles are registered at first use, not at construction: the binary may install its
    /// recorder after the pipelines start, and a handle taken before that stays a no-op.
    /// Afterwards counting is an atomic add with no lookup.
    fn metrics(&self) -> &Metrics {
        self.metrics
            .get_or_init(|| Metrics::register(&self.destination))
    }

    pub fn queued(&self) {
        self.queued.fetch_add(1, Relaxed);
        self.metrics().queued.increment(1);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
        self.metrics().retries.increment(1);
    }

    pub fn exported(&self, spans: u64) {
        self.exported_spans.fetch_add(spans, Relaxed);
        self.exported_batches.fetch_add(1, Relaxed);
        let m = self.metrics();
        m.exported_spans.increment(spans);
        m.exported_batches.increment(1);
        self.last_success_unix_ms.store(now_unix_ms(), Relaxed);
    }

    pub fn dropped(&self, reason: DropReason, records: u64) {
        if records == 0 {
            return;
        }
        let m = self.metrics();
        let (counter, metric) = match reason {
            DropReason::QueueFull => (&self.dropped_queue_full, &m.dropped_queue_full),
            DropReason::ExportFailed => (&self.dropped_export_failed, &m.dropped_export_failed),
            DropReason::Shutdown => (&self.dropped_shutdown, &m.dropped_shutdown),
            DropReason::SpoolFull => (&self.dropped_spool_full, &m.dropped_spool_full),
        };
        counter.fetch_add(records, Relaxed);
        metric.increment(records);
    }

    /// One batch written to the spool.
    pub fn spooled(&self, spans: u64) {
        self.spooled_batches.fetch_add(1, Relaxed);
        self.spooled_spans.fetch_add(spans, Relaxed);
        let m = self.metrics();
        m.spooled_batches.increment(1);
        m.spooled_spans.increment(spans);
    }

    /// One spooled batch delivered from the spool (it is counted as exported too).
    pub fn replayed(&self, spans: u64) {
        self.replayed_batches.fetch_add(1, Relaxed);
        self.replayed_spans.fetch_add(spans, Relaxed);
        let m = self.metrics();
        m.replayed_batches.increment(1);
        m.replayed_spans.increment(spans);
    }

    /// The spool's current content, after every change to it.
    pub fn spool_size(&self, files: u64, bytes: u64) {
        self.spool_files.store(files, Relaxed);
        self.spool_bytes.store(bytes, Relaxed);
        self.metrics().spool_bytes.set(bytes as f64);
    }

    pub fn set_last_error(&self, message: String) {
        let mut slot = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(message);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
