//! One delivery pipeline per destination: bounded queue, batching, privacy, encoding,
//! export with timeout and retries, counters.
//!
//! Pipelines share nothing but the records' spans, so a destination that is slow, down or
//! hanging fills only its own queue and never slows requests or another destination.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::deliver::retry::RetryPolicy;
use crate::deliver::spool::{Ledger, Spool, SpoolSettings};
use crate::deliver::stats::{Counters, DestinationStats, DropReason};
use crate::deliver::worker::Worker;
use crate::destinations::{DestinationConfig, Flavor, HostPolicy, Sink, SpoolMode};
use crate::encode::otlp::ResourceInfo;
use crate::error::TelemetryError;
use crate::record::GenerationRecord;
use crate::span::build::{build_spans, SpanOptions};
use crate::span::model::SpanModel;

/// A record on its way to the destinations that selected it. Its spans are built once, by
/// whichever worker gets to it first, so every destination exports the same span ids; the
/// record itself is released as soon as they exist.
pub struct SharedRecord {
    record: Mutex<Option<GenerationRecord>>,
    private: bool,
    span_count: usize,
    options: SpanOptions,
    spans: OnceLock<Vec<SpanModel>>,
}

impl SharedRecord {
    pub fn new(record: GenerationRecord, options: SpanOptions) -> Self {
        Self {
            private: record.privacy,
            span_count: crate::span::build::span_count(&record),
            record: Mutex::new(Some(record)),
            options,
            spans: OnceLock::new(),
        }
    }

    /// The attribute limit the spans were built with; stricter destinations cut further.
    pub fn max_attribute_bytes(&self) -> usize {
        self.options.max_attribute_bytes
    }

    /// Whether the request asked for privacy at every destination.
    pub fn private(&self) -> bool {
        self.private
    }

    /// How many spans [`SharedRecord::spans`] holds, known before they are built.
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    pub fn spans(&self) -> &[SpanModel] {
        self.spans.get_or_init(|| {
            let record = self.record.lock().unwrap_or_else(|p| p.into_inner()).take();
            record
                .map(|r| build_spans(&r, &self.options))
                .unwrap_or_default()
        })
    }
}

/// One record in a destination's queue. Privacy is decided when the record is queued, so a
/// toggle applies exactly to the records published after it, whatever is still in the queue.
pub struct Queued {
    pub record: Arc<SharedRecord>,
    pub private: bool,
}

/// While records keep arriving, a worker takes what is queued this often instead of being
/// woken for it: publishers run on request threads, and a cross-thread wake-up there costs the
/// request that makes it (a futex or eventfd write and, across cores, an interrupt). 5 ms of
/// traffic fits in the default queue up to about 400 000 records a second; beyond that the
/// doorbell at half the queue wakes the worker early.
pub const POLL_EVERY: Duration = Duration::from_millis(5);

/// The most of a shutdown window a spooling destination keeps for writing what it still
/// holds to disk; see [`spill_at`].
pub const SPILL_RESERVE: Duration = Duration::from_secs(2);

/// When a destination with a spool stops waiting for its exports and writes everything it
/// holds to disk instead: a quarter of the window before `deadline`, at most
/// [`SPILL_RESERVE`]. The write then runs inside the deadline; what it has not committed
/// when the deadline passes is counted lost.
pub fn spill_at(now: Instant, deadline: Instant) -> Instant {
    let window = deadline.saturating_duration_since(now);
    deadline - (window / 4).min(SPILL_RESERVE)
}

/// What a worker needs from its destination's config, resolved once. Privacy is not here:
/// it can change while the worker runs, and travels with each [`Queued`] record instead.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub sentry_flavor: bool,
    pub max_batch_spans: usize,
    pub flush_interval: Duration,
    /// How often a worker that records keep reaching looks at its queue.
    pub poll_every: Duration,
    pub timeout: Duration,
    pub max_attribute_bytes: usize,
    pub resource: Resource,
    pub retry: RetryPolicy,
    /// The disk spool, when the destination has one.
    pub spool: Option<SpoolSettings>,
    /// Whether every batch goes to the spool before its first send, or only failed ones.
    pub spool_mode: SpoolMode,
    /// How often a non-empty spool is offered to the destination again while it is down.
    pub spool_retry_interval: Duration,
}

impl WorkerSettings {
    pub fn from_config(config: &DestinationConfig, service_name: &str) -> Self {
        let resource = ResourceInfo {
            service_name: service_name.to_owned(),
            attributes: config
                .resource_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ResourceInfo::default()
        };
        Self {
            sentry_flavor: config.kind.module().flavor() == Flavor::Sentry,
            max_batch_spans: config.max_batch_spans.max(1),
            flush_interval: config.flush_interval(),
            poll_every: config
                .flush_interval()
                .clamp(Duration::from_millis(1), POLL_EVERY),
            timeout: config.timeout(),
            max_attribute_bytes: config.max_attribute_bytes,
            resource: resource.to_proto(),
            retry: RetryPolicy::default(),
            spool: config
                .spool_dir
                .as_deref()
                .map(|dir| SpoolSettings::new(dir, &config.name, config.spool_max_bytes)),
            spool_mode: config.spool_mode,
            spool_retry_interval: (config.flush_interval() * 5)
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

pub struct Pipeline {
    config: DestinationConfig,
    /// `None` for a disabled destination: it has no worker and receives nothing.
    tx: Option<mpsc::Sender<Queued>>,
    counters: Arc<Counters>,
    /// Records accepted but not yet exported, spooled or dropped; lost if shutdown runs out
    /// of time.
    ledger: Ledger,
    stop: Arc<Notify>,
    /// Rung when the queue holds `wake_depth` records. A busy worker polls its queue
    /// ([`POLL_EVERY`]) instead of waiting on it, so publishing a record wakes nobody; the
    /// doorbell only keeps a burst from filling the queue between two polls.
    doorbell: Arc<Notify>,
    wake_depth: usize,
    /// Shared with the worker: the queue is at least a quarter full.
    behind: Arc<AtomicBool>,
    /// Set at shutdown, so records stop entering even while the worker is busy exporting,
    /// and a worker with a spool stops retrying.
    closed: Arc<AtomicBool>,
    /// Set near the shutdown deadline for a worker with a spool: it abandons the export in
    /// flight and spools everything it holds.
    spill: watch::Sender<bool>,
    /// The worker has a spool, so shutdown spills instead of waiting to the end.
    spools: bool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Queue depth at which a publisher wakes a busy worker before its next poll: half the
/// queue, which steady traffic does not reach between two polls.
fn wake_depth(config: &DestinationConfig) -> usize {
    (config.queue_capacity / 2).max(1)
}

impl Pipeline {
    /// Builds the destination's sink, connecting only where `hosts` allows, and starts its
    /// worker on `runtime`.
    pub fn start(
        config: &DestinationConfig,
        service_name: &str,
        hosts: &Arc<HostPolicy>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, TelemetryError> {
        if !config.enabled {
            return Ok(Self::idle(config));
        }
        let settings = WorkerSettings::from_config(config, service_name);
        let sink = config.build(hosts)?.sink;
        Ok(Self::spawn(config, sink, settings, runtime))
    }

    /// A pipeline that never runs, for a disabled destination: it only reports stats.
    pub fn start_disabled(config: &DestinationConfig) -> Self {
        Self::idle(config)
    }

    /// A pipeline for a destination that could not start: it receives nothing and its stats
    /// carry the reason.
    pub fn failed(config: &DestinationConfig, message: String) -> Self {
        let pipeline = Self::idle(config);
        pipeline.counters.set_last_error(message);
        pipeline
    }

    fn idle(config: &DestinationConfig) -> Self {
        Self {
            config: config.clone(),
            tx: None,
            counters: Arc::new(Counters::new(&config.name)),
            ledger: Ledger::default(),
            stop: Arc::new(Notify::new()),
            doorbell: Arc::new(Notify::new()),
            wake_depth: wake_depth(config),
            behind: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
            spill: watch::channel(false).0,
            spools: false,
            worker: Mutex::new(None),
        }
    }

    /// Starts a worker around any sink; the seam the later transports and the tests use.
    pub fn spawn<S: Sink>(
        config: &DestinationConfig,
        sink: S,
        settings: WorkerSettings,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let mut pipeline = Self::idle(config);
        let spool = settings
            .spool
            .clone()
            .map(|s| Spool::new(s, pipeline.counters.clone()));
        pipeline.spools = spool.is_some();
        let worker = Worker {
            sink,
            settings,
            counters: pipeline.counters.clone(),
            ledger: pipeline.ledger.clone(),
            stop: pipeline.stop.clone(),
            doorbell: pipeline.doorbell.clone(),
            behind: pipeline.behind.clone(),
            closing: pipeline.closed.clone(),
            spill: pipeline.spill.subscribe(),
            spool,
            down: AtomicBool::new(false),
            name: config.name.clone(),
        };
        pipeline.tx = Some(tx);
        pipeline.worker = Mutex::new(Some(runtime.spawn(worker.run(rx))));
        pipeline
    }

    pub fn config(&self) -> &DestinationConfig {
        &self.config
    }

    pub fn is_running(&self) -> bool {
        self.tx.is_some()
    }

    /// Never waits: a full queue drops the record and counts it. `private` strips content at
    /// this destination whatever its config says later.
    pub fn offer(&self, record: Arc<SharedRecord>, private: bool) -> bool {
        let Some(tx) = &self.tx else { return false };
        if self.closed.load(Relaxed) {
            self.counters.dropped(DropReason::Shutdown, 1);
            return false;
        }
        self.ledger.pending.fetch_add(1, Relaxed);
        match tx.try_send(Queued { record, private }) {
            Ok(()) => {
                self.counters.queued();
                let depth = tx.max_capacity() - tx.capacity();
                // Backing up: batch work stops yielding its core at once, not at the
                // worker's next look (see `pace`).
                if depth.saturating_mul(4) >= tx.max_capacity()
                    && !self.behind.load(Relaxed)
                    && !self.behind.swap(true, Relaxed)
                {
                    crate::deliver::pace::pressure(true);
                }
                if depth >= self.wake_depth {
                    self.doorbell.notify_one();
                }
                true
            }
            Err(e) => {
                self.ledger.pending.fetch_sub(1, Relaxed);
                let reason = match e {
                    TrySendError::Full(_) => DropReason::QueueFull,
                    TrySendError::Closed(_) => DropReason::Shutdown,
                };
                self.counters.dropped(reason, 1);
                false
            }
        }
    }

    pub fn stats(&self) -> DestinationStats {
        let c = &self.counters;
        let depth = self
            .tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity().saturating_sub(tx.capacity()));
        DestinationStats {
            name: self.config.name.clone(),
            kind: self.config.kind.as_str().to_owned(),
            enabled: self.config.enabled,
            privacy_mode: self.config.privacy_mode,
            queued: c.queued.load(Relaxed),
            queue_depth: depth as u64,
            exported_spans: c.exported_spans.load(Relaxed),
            exported_batches: c.exported_batches.load(Relaxed),
            retries: c.retries.load(Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Relaxed),
            dropped_export_failed: c.dropped_export_failed.load(Relaxed),
            dropped_shutdown: c.dropped_shutdown.load(Relaxed),
            dropped_spool_full: c.dropped_spool_full.load(Relaxed),
            spooled_batches: c.spooled_batches.load(Relaxed),
            spooled_spans: c.spooled_spans.load(Relaxed),
            replayed_batches: c.replayed_batches.load(Relaxed),
            replayed_spans: c.replayed_spans.load(Relaxed),
            spool_files: c.spool_files.load(Relaxed),
            spool_bytes: c.spool_bytes.load(Relaxed),
            last_success_unix_ms: Some(c.last_success_unix_ms.load(Relaxed)).filter(|&t| t > 0),
            last_error: c.last_error(),
        }
    }

    /// Asks the worker to stop taking records, drain its queue and flush.
    pub fn begin_shutdown(&self) {
        self.closed.store(true, Relaxed);
        self.stop.notify_one();
    }

    /// Waits for the worker until `deadline`; whatever is still pending then is counted lost.
    /// A worker with a spool is told to spill at [`spill_at`]: what it still holds (queue,
    /// open batch, the batch in flight or waiting for a retry) goes to disk before the deadline.
    pub async fn finish_shutdown(&self, deadline: Instant) {
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut handle) = handle else { return };
        if self.spools {
            let spill = spill_at(Instant::now(), deadline);
            if tokio::time::timeout_at(spill, &mut handle).await.is_ok() {
                return;
            }
            self.spill.send_replace(true);
        }
        if tokio::time::timeout_at(deadline, &mut handle)
            .await
            .is_err()
        {
            handle.abort();
            // Wait for the cancellation to land, so no batch is counted both as lost here
            // and as exported or failed by the worker. A spool write still running on a
            // blocking thread commits under the same lock, before or not at all.
            let _ = handle.await;
            let abandoned = self.ledger.abandoned.clone();
            let mut abandoned = abandoned.lock().unwrap_or_else(|p| p.into_inner());
            *abandoned = true;
            let lost = self.ledger.pending.swap(0, Relaxed);
            drop(abandoned);
            self.counters.dropped(DropReason::Shutdown, lost);
            tracing::warn!(
                destination = %self.config.name,
                lost_records = lost,
                "shutdown deadline reached before the destination flushed"
            );
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
