//! The task behind one pipeline: batch, apply the destination's view, encode, export with
//! timeout and retries, spool what the destination cannot take (or, with `spool_mode =
//! "always"`, every batch before its first send) and replay it later, spill what it holds to
//! the spool at the shutdown deadline, count every outcome.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::background::Abandoned;
use crate::destinations::{EncodedBatch, Encoding, ExportError, ExportErrorKind, Sink, SpoolMode};
use crate::error::TelemetryError;
use crate::flavor::apply_sentry_flavor;
use crate::limits;
use crate::model::SpanModel;
use crate::otlp::{self, SpanView};
use crate::pipeline::{Queued, WorkerSettings};
use crate::privacy::apply_privacy;
use crate::spool::{Entry, Half, Ledger, Spool, Stored};
use crate::stats::{Counters, DropReason};

pub(crate) struct Worker<S> {
    pub sink: S,
    pub settings: WorkerSettings,
    pub counters: Arc<Counters>,
    /// Shared with the pipeline handle, which counts what is still pending at a missed deadline.
    pub ledger: Ledger,
    pub stop: Arc<Notify>,
    /// Rung by publishers when the queue is half full; see `Pipeline::doorbell`.
    pub doorbell: Arc<Notify>,
    /// The queue is at least a quarter full: set by a publisher or by this worker, cleared
    /// by this worker, and counted in `pace` while set, so batch work runs unpaced.
    pub behind: Arc<AtomicBool>,
    /// Set by the pipeline handle at shutdown, before the worker sees `stop`.
    pub closing: Arc<AtomicBool>,
    /// Set by the pipeline handle near the shutdown deadline (see `Pipeline::finish_shutdown`):
    /// exports are abandoned and everything held goes to the spool.
    pub spill: watch::Receiver<bool>,
    pub spool: Option<Spool>,
    /// The last export, live or replayed, failed with a retryable error.
    pub down: AtomicBool,
    pub name: String,
}

/// The queue, the batch being collected and the replay schedule, apart from the worker so
/// that both can be borrowed at once: an export in flight borrows the worker while records
/// keep being taken from the queue (see `Worker::send_keeping_up`).
struct State {
    rx: mpsc::Receiver<Queued>,
    batch: Vec<Queued>,
    batch_spans: usize,
    /// Set while a batch is open: when it goes out even if it is not full.
    flush_at: Option<Instant>,
    /// Set while records keep arriving: when the worker next takes what is queued. `None`
    /// means idle, waiting on the queue itself, so the next record wakes it.
    poll_at: Option<Instant>,
    stopping: bool,
    replay_at: Option<Instant>,
    /// Replaying a backlog: the next spooled batch follows at once.
    draining: bool,
    /// Batches collected while an export was out that the spool could not take (too large,
    /// disk error): sent after it, as without the spool.
    held: Vec<Encoded>,
}

/// A worker that ends, or is aborted, while behind must not leave batch work unpaced.
impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        if self.behind.swap(false, Relaxed) {
            crate::pace::pressure(false);
        }
    }
}

impl State {
    fn new(rx: mpsc::Receiver<Queued>) -> Self {
        Self {
            rx,
            batch: Vec::new(),
            batch_spans: 0,
            flush_at: None,
            poll_at: None,
            stopping: false,
            replay_at: None,
            draining: false,
            held: Vec::new(),
        }
    }

    /// The earlier of the next poll and the open batch's deadline.
    fn next_look(&self) -> Option<Instant> {
        match (self.poll_at, self.flush_at) {
            (Some(p), Some(f)) => Some(p.min(f)),
            (p, f) => p.or(f),
        }
    }

    /// Adds one record to the open batch; whether the batch is now full. Counted, not built:
    /// building happens with the rest of the batch work.
    fn push(&mut self, item: Queued, settings: &WorkerSettings) -> bool {
        self.batch_spans += item.record.span_count();
        self.batch.push(item);
        self.flush_at
            .get_or_insert_with(|| Instant::now() + settings.flush_interval);
        self.batch_spans >= settings.max_batch_spans
    }

    fn due(&self) -> bool {
        self.flush_at.is_some_and(|at| Instant::now() >= at)
    }

    /// The open batch, taken for encoding.
    fn take_batch(&mut self) -> Vec<Queued> {
        self.batch_spans = 0;
        self.flush_at = None;
        std::mem::take(&mut self.batch)
    }
}

/// What one replay step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// A spooled batch was resolved (sent, or dropped for good): try the next one soon.
    Progress,
    /// The destination is still down; the batch stays.
    Failed,
    /// Nothing spooled.
    Empty,
}

/// A batch's encoded body, remembering how many spans each record has, so a refused batch
/// can be split along record boundaries.
struct Encoded {
    lens: Vec<usize>,
    span_count: usize,
    body: Result<Vec<u8>, TelemetryError>,
    /// The body gzipped, for sinks that send it so.
    wire: Option<Result<bytes::Bytes, ExportError>>,
}

impl Encoded {
    fn new(
        lens: Vec<usize>,
        spans: &[SpanView<'_>],
        resource: &Resource,
        encoding: Encoding,
    ) -> Self {
        let body = if spans.is_empty() {
            Ok(Vec::new())
        } else {
            encode_views(spans, resource, encoding)
        };
        Self {
            lens,
            span_count: spans.len(),
            body,
            wire: None,
        }
    }

    /// A half of a refused batch, encoded again by `split_body`.
    fn half(lens: &[usize], body: Result<Vec<u8>, TelemetryError>) -> Self {
        Self {
            span_count: lens.iter().sum(),
            lens: lens.to_vec(),
            body,
            wire: None,
        }
    }

    /// Compresses the body now, with the rest of the batch work.
    fn gzipped(mut self) -> Self {
        if let Ok(body) = &self.body {
            self.wire = Some(crate::destinations::http::gzip(body));
        }
        self
    }
}

impl<S: Sink> Worker<S> {
    pub(crate) async fn run(self, rx: mpsc::Receiver<Queued>) {
        let mut st = State::new(rx);
        st.draining = true;
        // Batches spooled by an earlier run go out first, as soon as the queue is idle.
        if let Some(spool) = &self.spool {
            if let Err(e) = spool.rescan(true).await {
                spool.io_error(&self.name, "scan", &e);
            }
            st.replay_at = Some(Instant::now());
        }
        loop {
            let next = if st.stopping {
                st.rx.recv().await
            } else {
                let busy = st.poll_at.is_some();
                let look = st.next_look();
                tokio::select! {
                    biased;
                    () = self.stop.notified() => {
                        // Nothing new gets in; what is queued still goes out.
                        st.rx.close();
                        st.stopping = true;
                        continue;
                    }
                    // Idle: the first record wakes the worker. Busy: it takes what is queued
                    // every `poll_every` (or at the batch's deadline, or when a burst rings),
                    // so records published in between wake nobody.
                    item = st.rx.recv(), if !busy => item,
                    () = self.doorbell.notified(), if busy => {
                        self.poll(&mut st).await;
                        continue;
                    }
                    () = sleep_until(look), if busy => {
                        self.poll(&mut st).await;
                        continue;
                    }
                    () = sleep_until(st.replay_at), if st.replay_at.is_some() => {
                        // Between drained batches the directory is not read again; on the
                        // periodic tries it is, to find batches another run left behind.
                        if !st.draining {
                            if let Some(spool) = &self.spool {
                                if let Err(e) = spool.rescan(false).await {
                                    spool.io_error(&self.name, "scan", &e);
                                }
                            }
                        }
                        let outcome = self.replay_one(&mut st).await;
                        st.replay_at = self.next_replay(outcome, &mut st.draining);
                        continue;
                    }
                }
            };
            let Some(item) = next else {
                self.finish(&mut st).await;
                return;
            };
            self.add(&mut st, item).await;
            // While shutting down, a steady queue keeps `recv` ready ahead of the timer.
            self.flush_if_due(&mut st).await;
            if !st.stopping {
                st.poll_at = Some(Instant::now() + self.settings.poll_every);
            }
        }
    }

    /// Adds one record to the batch; flushes when the batch is full.
    async fn add(&self, st: &mut State, item: Queued) {
        if st.push(item, &self.settings) {
            self.flush_batch(st).await;
        }
    }

    /// Takes every record queued so far, without waiting, then sends the batch if it is
    /// due. Overdue batches are checked only after the queue is empty, so records that
    /// queued together leave together. A look that finds nothing, with no batch open, ends
    /// the busy spell: the worker goes back to waiting on the queue.
    async fn poll(&self, st: &mut State) {
        self.report_pressure(&st.rx);
        let mut took = 0usize;
        while let Ok(item) = st.rx.try_recv() {
            self.add(st, item).await;
            took += 1;
        }
        self.flush_if_due(st).await;
        st.poll_at = if took == 0 && st.batch.is_empty() {
            None
        } else {
            Some(Instant::now() + self.settings.poll_every)
        };
    }

    /// The queue is closed and empty: the open batch goes out. With `spool_mode = "always"`
    /// the batches written to the spool while an export was out follow, while the destination
    /// takes them; whatever it does not take stays on disk for the next start.
    async fn finish(&self, st: &mut State) {
        while !st.batch.is_empty() || !st.held.is_empty() {
            self.flush(st).await;
        }
        if self.always() {
            while !self.down.load(Relaxed) && !self.spilling() {
                if self.replay_one(st).await != Replay::Progress {
                    break;
                }
            }
        }
    }

    /// Tells `pace` when this worker's queue is back below a quarter of its capacity, or has
    /// reached it (publishers report that too, the moment it happens).
    fn report_pressure(&self, rx: &mpsc::Receiver<Queued>) {
        let behind = rx.len().saturating_mul(4) >= rx.max_capacity();
        if self.behind.swap(behind, Relaxed) != behind {
            crate::pace::pressure(behind);
        }
    }

    async fn flush_if_due(&self, st: &mut State) {
        if st.due() {
            self.flush_batch(st).await;
        }
    }

    async fn flush_batch(&self, st: &mut State) {
        // A batch is encoded, compressed and written unpaced when the queue has backed up.
        self.report_pressure(&st.rx);
        let delivered = self.flush(st).await;
        if delivered && !st.stopping {
            self.replay_after_success(st).await;
        }
    }

    /// The destination just took a live batch: one spooled batch follows it, so a backlog
    /// drains alongside live traffic without holding it up.
    async fn replay_after_success(&self, st: &mut State) {
        let Some(spool) = &self.spool else { return };
        if spool.is_empty() {
            return;
        }
        let outcome = self.replay_one(st).await;
        st.replay_at = self.next_replay(outcome, &mut st.draining);
    }

    fn next_replay(&self, outcome: Replay, draining: &mut bool) -> Option<Instant> {
        self.spool.as_ref()?;
        *draining = outcome == Replay::Progress;
        Some(match outcome {
            Replay::Progress => Instant::now(),
            Replay::Failed | Replay::Empty => Instant::now() + self.settings.spool_retry_interval,
        })
    }

    /// Every batch goes to the spool before its first send.
    fn always(&self) -> bool {
        self.spool.is_some() && self.settings.spool_mode == SpoolMode::Always
    }

    /// The shutdown deadline is near: exports are abandoned, and what is held goes to disk.
    fn spilling(&self) -> bool {
        *self.spill.borrow()
    }

    /// Sends the oldest spooled batch with the usual timeout and retries.
    async fn replay_one(&self, st: &mut State) -> Replay {
        let Some(spool) = &self.spool else {
            return Replay::Empty;
        };
        let Some(entry) = spool.oldest() else {
            return Replay::Empty;
        };
        if entry.encoding != Some(self.sink.encoding()) {
            self.discard(
                spool,
                &entry,
                "spooled batch has another encoding than the destination now uses",
            )
            .await;
            return Replay::Progress;
        }
        let body = match spool.read(&entry).await {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                spool.forget(&entry);
                return Replay::Progress;
            }
            Err(e) => {
                spool.io_error(&self.name, "read", &e);
                self.discard(spool, &entry, &format!("spooled batch unreadable: {e}"))
                    .await;
                return Replay::Progress;
            }
        };
        let batch = EncodedBatch {
            body: body.into(),
            spans: entry.spans,
            wire: None,
        };
        let outcome = match self.send_keeping_up(st, &batch, Some(&entry)).await {
            Ok(()) => {
                self.down.store(false, Relaxed);
                // Counted before the delete: a cancelled worker still completes the delete.
                self.counters.exported(entry.spans as u64);
                self.counters.replayed(entry.spans as u64);
                if let Err(e) = spool.remove(&entry).await {
                    spool.io_error(&self.name, "delete", &e);
                }
                Replay::Progress
            }
            Err(e) if e.kind == ExportErrorKind::TooLarge && entry.spans > 1 => {
                self.split_spooled(spool, &entry, batch.body).await
            }
            Err(e) if e.is_retryable() => {
                self.down.store(true, Relaxed);
                Replay::Failed
            }
            Err(e) => {
                self.discard(spool, &entry, &e.message).await;
                Replay::Progress
            }
        };
        // Batches the spool could not take while this one was out are sent as they are.
        if !st.held.is_empty() {
            self.deliver(st, None).await;
        }
        outcome
    }

    /// A spooled batch refused as too large goes back into the spool as two halves, in its
    /// place. The spool keeps no record boundaries, so the cut is by spans, and the records
    /// are shared out so that the counters still add up.
    async fn split_spooled(&self, spool: &Spool, entry: &Entry, body: bytes::Bytes) -> Replay {
        let encoding = self.sink.encoding();
        let cut = entry.spans / 2;
        let work = tokio::task::spawn_blocking(move || split_body(&body, encoding, cut));
        let split = work.await.map_err(|e| e.to_string()).and_then(|halves| {
            let [first, second] = halves.map_err(|e| e.to_string())?;
            Ok([
                first.map_err(|e| e.to_string())?,
                second.map_err(|e| e.to_string())?,
            ])
        });
        let [first, second] = match split {
            Ok(halves) => halves,
            Err(reason) => {
                let message = format!("spooled batch refused as too large and not split: {reason}");
                self.discard(spool, entry, &message).await;
                return Replay::Progress;
            }
        };
        let first_records = entry.records.div_ceil(2);
        let halves = [
            Half {
                body: first,
                records: first_records,
                spans: cut,
            },
            Half {
                body: second,
                records: entry.records - first_records,
                spans: entry.spans - cut,
            },
        ];
        match spool.split(entry, halves).await {
            Ok(_) => Replay::Progress,
            // The whole stays spooled; the next try splits it again.
            Err(e) => {
                spool.io_error(&self.name, "split", &e);
                Replay::Failed
            }
        }
    }

    /// A spooled batch that can never be delivered: deleted and counted as failed.
    async fn discard(&self, spool: &Spool, entry: &Entry, message: &str) {
        self.counters
            .dropped(DropReason::ExportFailed, entry.records);
        self.counters.set_last_error(message.to_owned());
        tracing::warn!(destination = %self.name, records = entry.records, error = %message, "spooled batch dropped");
        if let Err(e) = spool.remove(entry).await {
            spool.io_error(&self.name, "delete", &e);
        }
    }

    /// Whether anything of the batch reached the destination. Also sends what `held` has.
    async fn flush(&self, st: &mut State) -> bool {
        let encoded = self.encode(st, self.sink.gzip()).await;
        if encoded.is_none() && st.held.is_empty() {
            return false;
        }
        self.deliver(st, encoded).await
    }

    /// Takes the open batch and encodes it (and gzips it when `gzip`). Span building,
    /// conversion, encoding and gzip of a whole batch take milliseconds of CPU, so they run
    /// off the runtime's threads: on the blocking pool, paced, or at idle priority when the
    /// lane is started (see `background`); when spilling at shutdown, never on the idle lane.
    /// On the blocking pool the records are released there too.
    async fn encode(&self, st: &mut State, gzip: bool) -> Option<Encoded> {
        if st.batch.is_empty() {
            return None;
        }
        let items = st.take_batch();
        let records = items.len();
        let settings = self.settings.clone();
        let encoding = self.sink.encoding();
        // Pure, as `background::run` needs: it may run twice.
        let work = move |abandoned: &Abandoned| {
            let mut views = Vec::with_capacity(items.len());
            for item in &items {
                if abandoned.is_set() {
                    return None;
                }
                crate::pace::checkpoint();
                views.push(destination_view(
                    &settings,
                    item.record.spans(),
                    item.private,
                    item.record.max_attribute_bytes(),
                ));
            }
            let lens = views.iter().map(View::len).collect();
            let spans: Vec<SpanView<'_>> = views.iter().flat_map(View::spans).collect();
            let encoded = Encoded::new(lens, &spans, &settings.resource, encoding);
            Some(if gzip { encoded.gzipped() } else { encoded })
        };
        let done = if self.spilling() {
            tokio::task::spawn_blocking(move || work(&Abandoned::default())).await
        } else {
            crate::background::run(work).await
        };
        match done {
            Ok(Some(encoded)) => Some(encoded),
            // Only an abandoned run stops early, and its result is never returned.
            Ok(None) => {
                self.fail(records, "encoding a batch was abandoned");
                None
            }
            Err(e) => {
                self.fail(records, &format!("encoding a batch failed: {e}"));
                None
            }
        }
    }

    /// Sends `first`, then what `held` has. Each batch carries its spool entry once it is on
    /// disk (`spool_mode = "always"`): its records were resolved when it was written, and the
    /// outcome deletes the file instead.
    async fn deliver(&self, st: &mut State, first: Option<Encoded>) -> bool {
        let mut delivered = false;
        // Work stack: a batch refused as too large comes back as two halves, encoded again.
        let mut stack: Vec<(Encoded, Option<Entry>)> =
            first.into_iter().map(|e| (e, None)).collect();
        loop {
            let next = match stack.pop() {
                Some(next) => next,
                None if !st.held.is_empty() => (st.held.remove(0), None),
                None => break,
            };
            let (
                Encoded {
                    lens,
                    span_count,
                    body,
                    wire,
                },
                entry,
            ) = next;
            let records = lens.len();
            if span_count == 0 {
                self.resolved(records);
                continue;
            }
            let body = match body {
                Ok(body) => body,
                Err(e) => {
                    self.give_up(records, entry.as_ref(), &e.to_string()).await;
                    continue;
                }
            };
            let wire = match wire.transpose() {
                Ok(wire) => wire,
                Err(e) => {
                    self.give_up(records, entry.as_ref(), &e.message).await;
                    continue;
                }
            };
            let batch = EncodedBatch {
                body: body.into(),
                spans: span_count,
                wire,
            };
            // Shutting down with a destination known to be down, or at the deadline:
            // straight to the spool (a batch already there stays).
            if self.spool.is_some()
                && self.closing.load(Relaxed)
                && (self.down.load(Relaxed) || self.spilling())
            {
                if entry.is_none() {
                    self.spool_or_fail(records, batch, "destination down at shutdown")
                        .await;
                }
                continue;
            }
            let entry = match entry {
                None if self.always() => match self.write_ahead(records, &batch).await {
                    Ahead::OnDisk(entry) => Some(entry),
                    Ahead::InMemory => None,
                    Ahead::Lost => continue,
                },
                entry => entry,
            };
            match self.send_keeping_up(st, &batch, entry.as_ref()).await {
                Ok(()) => {
                    self.down.store(false, Relaxed);
                    delivered = true;
                    self.counters.exported(span_count as u64);
                    self.settle(records, entry.as_ref()).await;
                }
                Err(e) if e.kind == ExportErrorKind::TooLarge && records > 1 => {
                    let mid = records / 2;
                    let cut = lens[..mid].iter().sum::<usize>();
                    let encoding = self.sink.encoding();
                    let body = batch.body.clone();
                    let work =
                        tokio::task::spawn_blocking(move || split_body(&body, encoding, cut));
                    let [first, second] = match work.await {
                        Ok(Ok(halves)) => halves,
                        Ok(Err(e)) => {
                            self.give_up(records, entry.as_ref(), &e.to_string()).await;
                            continue;
                        }
                        Err(e) => {
                            let message = format!("splitting a batch failed: {e}");
                            self.give_up(records, entry.as_ref(), &message).await;
                            continue;
                        }
                    };
                    let [first, second] = match entry {
                        None => [
                            (Encoded::half(&lens[..mid], first), None),
                            (Encoded::half(&lens[mid..], second), None),
                        ],
                        Some(whole) => match self.split_on_disk(&whole, &lens, first, second).await
                        {
                            Some(halves) => halves,
                            None => continue,
                        },
                    };
                    // Pushed second half first, so the first half is sent first.
                    stack.push(second);
                    stack.push(first);
                }
                Err(e) if e.is_retryable() => {
                    self.down.store(true, Relaxed);
                    match entry {
                        Some(_) => {
                            tracing::warn!(destination = %self.name, records, spans = span_count, error = %e.message, "export failed; batch kept in the spool");
                        }
                        None => self.spool_or_fail(records, batch, &e.message).await,
                    }
                }
                Err(e) => self.give_up(records, entry.as_ref(), &e.message).await,
            }
        }
        delivered
    }

    /// The halves of a batch on disk that was refused as too large take its place in the
    /// spool before they are sent, so a crash in between still finds them. `None` when they
    /// could not be written: the whole stays spooled and is split when it is replayed.
    async fn split_on_disk(
        &self,
        whole: &Entry,
        lens: &[usize],
        first: Result<Vec<u8>, TelemetryError>,
        second: Result<Vec<u8>, TelemetryError>,
    ) -> Option<[(Encoded, Option<Entry>); 2]> {
        let spool = self.spool.as_ref()?;
        let (first, second) = match (first, second) {
            (Ok(first), Ok(second)) => (first, second),
            (Err(e), _) | (_, Err(e)) => {
                let message = format!("batch refused as too large and not split: {e}");
                self.discard(spool, whole, &message).await;
                return None;
            }
        };
        let (head, tail) = lens.split_at(lens.len() / 2);
        let halves = [
            Half {
                body: first.clone(),
                records: head.len() as u64,
                spans: head.iter().sum(),
            },
            Half {
                body: second.clone(),
                records: tail.len() as u64,
                spans: tail.iter().sum(),
            },
        ];
        match spool.split(whole, halves).await {
            Ok([a, b]) => Some([
                (Encoded::half(head, Ok(first)), Some(a)),
                (Encoded::half(tail, Ok(second)), Some(b)),
            ]),
            Err(e) => {
                spool.io_error(&self.name, "split", &e);
                None
            }
        }
    }

    /// Writes a batch to the spool before its first send (`spool_mode = "always"`). A batch
    /// the spool cannot take is sent all the same, and spooled on failure as without it.
    async fn write_ahead(&self, records: usize, batch: &EncodedBatch) -> Ahead {
        let Some(spool) = &self.spool else {
            return Ahead::InMemory;
        };
        match self
            .store(spool, records, batch.body.clone(), batch.spans)
            .await
        {
            Ok(Stored::Spooled(entry)) => Ahead::OnDisk(entry),
            Ok(Stored::Abandoned) => Ahead::Lost,
            Ok(Stored::TooLarge) => Ahead::InMemory,
            Err(e) => {
                spool.io_error(&self.name, "write", &e);
                Ahead::InMemory
            }
        }
    }

    async fn store(
        &self,
        spool: &Spool,
        records: usize,
        body: bytes::Bytes,
        spans: usize,
    ) -> std::io::Result<Stored> {
        spool
            .store(
                body,
                records as u64,
                spans,
                self.sink.encoding(),
                &self.ledger,
            )
            .await
    }

    /// Sends a batch. With `spool_mode = "always"` the worker meanwhile keeps taking records
    /// from its queue and writes each batch that comes due to the spool, so a slow or failing
    /// export (its timeout, its retries) never keeps more than a flush interval of records in
    /// memory; those batches go out from the spool afterwards.
    async fn send_keeping_up(
        &self,
        st: &mut State,
        batch: &EncodedBatch,
        entry: Option<&Entry>,
    ) -> Result<(), ExportError> {
        let Some(spool) = self.spool.as_ref().filter(|_| self.always()) else {
            return self.send(batch).await;
        };
        spool.sending(entry);
        let send = self.send(batch);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                result = &mut send => {
                    spool.sending(None);
                    return result;
                }
                () = self.doorbell.notified() => {}
                () = tokio::time::sleep(self.settings.poll_every) => {}
            }
            self.report_pressure(&st.rx);
            while let Ok(item) = st.rx.try_recv() {
                if st.push(item, &self.settings) {
                    self.stash(st).await;
                }
            }
            if st.due() {
                self.stash(st).await;
            }
            // What was taken and not yet written keeps the worker looking once this returns.
            if !st.batch.is_empty() && !st.stopping {
                st.poll_at
                    .get_or_insert_with(|| Instant::now() + self.settings.poll_every);
            }
        }
    }

    /// Encodes the open batch and writes it to the spool without sending it: it goes out
    /// from there once the export in flight is done. A batch the spool cannot take waits in
    /// `held` instead.
    async fn stash(&self, st: &mut State) {
        let Some(spool) = &self.spool else { return };
        let Some(encoded) = self.encode(st, false).await else {
            return;
        };
        let Encoded {
            lens,
            span_count,
            body,
            ..
        } = encoded;
        let records = lens.len();
        if span_count == 0 {
            self.resolved(records);
            return;
        }
        let body = match body {
            Ok(body) => bytes::Bytes::from(body),
            Err(e) => return self.fail(records, &e.to_string()),
        };
        let resolved = match self.store(spool, records, body.clone(), span_count).await {
            // Abandoned: shutdown counted these records as lost already.
            Ok(Stored::Spooled(_) | Stored::Abandoned) => true,
            Ok(Stored::TooLarge) => false,
            Err(e) => {
                spool.io_error(&self.name, "write", &e);
                false
            }
        };
        if !resolved {
            st.held.push(Encoded {
                lens,
                span_count,
                body: Ok(Vec::from(body)),
                wire: None,
            });
        }
    }

    /// A batch the destination took: deleted from the spool when it is there, resolved
    /// otherwise.
    async fn settle(&self, records: usize, entry: Option<&Entry>) {
        match (entry, &self.spool) {
            (Some(entry), Some(spool)) => {
                if let Err(e) = spool.remove(entry).await {
                    spool.io_error(&self.name, "delete", &e);
                }
            }
            _ => self.resolved(records),
        }
    }

    /// A batch that can never be delivered: counted as failed, and deleted from the spool
    /// when it is there.
    async fn give_up(&self, records: usize, entry: Option<&Entry>, message: &str) {
        match (entry, &self.spool) {
            (Some(entry), Some(spool)) => self.discard(spool, entry, message).await,
            _ => self.fail(records, message),
        }
    }

    /// A batch the destination could not take for now: kept in the spool when there is one,
    /// dropped otherwise. Spool failures fall back to dropping.
    async fn spool_or_fail(&self, records: usize, batch: EncodedBatch, message: &str) {
        let Some(spool) = &self.spool else {
            return self.fail(records, message);
        };
        let spans = batch.spans;
        match self.store(spool, records, batch.body, spans).await {
            Ok(Stored::Spooled(_)) => {
                tracing::warn!(destination = %self.name, records, spans, error = %message, "export failed; batch spooled to disk");
            }
            // Shutdown counted these records as lost already.
            Ok(Stored::Abandoned) => {}
            Ok(Stored::TooLarge) => {
                self.counters.dropped(DropReason::SpoolFull, records as u64);
                self.resolved(records);
                self.counters
                    .set_last_error(format!("{message}; batch larger than spool_max_bytes"));
                tracing::warn!(destination = %self.name, records, error = %message, "export failed; batch larger than the spool, dropped");
            }
            Err(e) => {
                spool.io_error(&self.name, "write", &e);
                self.fail(records, &format!("{message}; spool write failed: {e}"));
            }
        }
    }

    /// Counted in the same poll as the outcome, so an aborted worker never leaves a
    /// resolved record pending.
    fn resolved(&self, records: usize) {
        self.ledger.pending.fetch_sub(records as u64, Relaxed);
    }

    fn fail(&self, records: usize, message: &str) {
        self.counters
            .dropped(DropReason::ExportFailed, records as u64);
        self.resolved(records);
        self.counters.set_last_error(message.to_owned());
        tracing::warn!(destination = %self.name, records, error = %message, "export failed; batch dropped");
    }

    /// One export with the timeout and retries. With a spool, it gives up at once when the
    /// pipeline spills at the shutdown deadline: the batch is then kept on disk.
    async fn send(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        if self.spool.is_none() {
            return self.attempts(batch).await;
        }
        let mut spill = self.spill.clone();
        let spilled = async move {
            // A pipeline handle that is gone never spills.
            if spill.wait_for(|&spill| spill).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = spilled => Err(ExportError::retryable(
                "shutdown deadline near: export abandoned, batch kept in the spool",
            )),
            result = self.attempts(batch) => result,
        }
    }

    async fn attempts(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let policy = self.settings.retry;
        let mut retry = 0u32;
        loop {
            let result =
                match tokio::time::timeout(self.settings.timeout, self.sink.export(batch)).await {
                    Ok(result) => result,
                    Err(_) => Err(ExportError::retryable(format!(
                        "timed out after {} ms",
                        self.settings.timeout.as_millis()
                    ))),
                };
            let error = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.counters.set_last_error(error.message.clone());
            // At shutdown a spooled batch is safe; a retry might not finish before the deadline.
            let spool_now = self.spool.is_some() && self.closing.load(Relaxed);
            let retry_after = match error.kind {
                ExportErrorKind::Retryable { retry_after }
                    if retry + 1 < policy.max_attempts && !spool_now =>
                {
                    retry_after
                }
                _ => return Err(error),
            };
            self.counters.retried();
            tracing::debug!(destination = %self.name, retry, error = %error.message, "export failed; retrying");
            tokio::time::sleep(policy.backoff(retry, retry_after)).await;
            retry += 1;
        }
    }
}

/// Where a batch stands after `Worker::write_ahead`.
enum Ahead {
    /// On disk; its records are resolved.
    OnDisk(Entry),
    /// Not on disk (too large for the spool, or the write failed): sent as without `always`.
    InMemory,
    /// Shutdown already counted its records as lost.
    Lost,
}

/// One record's spans as one destination exports them.
pub(crate) enum View<'a> {
    /// The shared spans, seen through privacy alone: nothing is copied.
    Shared {
        spans: &'a [SpanModel],
        private: bool,
    },
    /// A copy the destination changed beyond privacy (attribute limit, flavor), with
    /// privacy already applied.
    Owned(Vec<SpanModel>),
}

impl View<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            View::Shared { spans, .. } => spans.len(),
            View::Owned(spans) => spans.len(),
        }
    }

    pub(crate) fn spans(&self) -> impl Iterator<Item = SpanView<'_>> {
        let (spans, private) = match self {
            View::Shared { spans, private } => (*spans, *private),
            View::Owned(spans) => (spans.as_slice(), false),
        };
        spans.iter().map(move |s| SpanView::new(s, private))
    }
}

/// This destination's view of a record: privacy (the destination's or the request's, as
/// decided by the caller), its own attribute limit, and its flavor. Shared with the test
/// trace, so what a user checks is what real traffic produces.
pub(crate) fn destination_view<'a>(
    settings: &WorkerSettings,
    shared: &'a [SpanModel],
    private: bool,
    built_with_max_attribute_bytes: usize,
) -> View<'a> {
    if settings.max_attribute_bytes >= built_with_max_attribute_bytes && !settings.sentry_flavor {
        return View::Shared {
            spans: shared,
            private,
        };
    }
    let mut spans = shared.to_vec();
    if private {
        apply_privacy(&mut spans);
    }
    if settings.max_attribute_bytes < built_with_max_attribute_bytes {
        for span in &mut spans {
            limits::enforce(span, settings.max_attribute_bytes);
        }
    }
    if settings.sentry_flavor {
        apply_sentry_flavor(&mut spans);
    }
    View::Owned(spans)
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn take_spans(mut request: ExportTraceServiceRequest) -> Vec<Span> {
    request
        .resource_spans
        .pop()
        .and_then(|mut r| r.scope_spans.pop())
        .map(|s| s.spans)
        .unwrap_or_default()
}

/// A batch refused as too large, cut after its first `cut` spans and each half encoded
/// again. Rare, so the body is decoded and re-encoded by the libraries, which write exactly
/// what `encode_views` writes.
fn split_body(
    body: &[u8],
    encoding: Encoding,
    cut: usize,
) -> Result<[Result<Vec<u8>, TelemetryError>; 2], TelemetryError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    };
    let resource = request
        .resource_spans
        .first()
        .and_then(|r| r.resource.clone())
        .unwrap_or_default();
    let mut first = take_spans(request);
    let second = first.split_off(cut.min(first.len()));
    Ok([first, second]
        .map(|spans| encode(&otlp::export_request(spans, resource.clone()), encoding)))
}

/// The body of converted spans, as the test trace has them.
pub(crate) fn encode(
    request: &ExportTraceServiceRequest,
    encoding: Encoding,
) -> Result<Vec<u8>, TelemetryError> {
    Ok(match encoding {
        Encoding::Json => otlp::to_json_bytes(request)?,
        Encoding::Protobuf => otlp::to_protobuf(request),
    })
}

/// A batch's body, written straight from the destination's views.
fn encode_views(
    spans: &[SpanView<'_>],
    resource: &Resource,
    encoding: Encoding,
) -> Result<Vec<u8>, TelemetryError> {
    match encoding {
        Encoding::Json => otlp::json_body(spans, resource),
        Encoding::Protobuf => Ok(otlp::protobuf_body(spans, resource)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{SpanKind, SpanRole, SpanStatus};
    use crate::otlp::ResourceInfo;

    fn span(i: u8) -> SpanModel {
        SpanModel {
            trace_id: [i; 16],
            span_id: [i; 8],
            parent_span_id: (i > 0).then_some([0; 8]),
            parent_is_remote: false,
            name: format!("span {i}"),
            kind: SpanKind::Client,
            role: SpanRole::Generation,
            start_unix_nanos: 1_700_000_000_000_000_000 + u64::from(i),
            end_unix_nanos: 1_700_000_000_000_000_100,
            attributes: vec![
                ("gen_ai.usage.input_tokens".into(), i64::from(i).into()),
                ("gen_ai.input.messages".into(), "secret prompt".into()),
            ],
            status: SpanStatus::Error("provider said: secret".into()),
        }
    }

    #[test]
    fn a_split_body_is_each_half_encoded_on_its_own() {
        let spans: Vec<SpanModel> = (0..5).map(span).collect();
        let views: Vec<_> = spans.iter().map(|s| SpanView::new(s, true)).collect();
        let resource = ResourceInfo::default().to_proto();
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let whole = encode_views(&views, &resource, encoding).unwrap();
            let [first, second] = split_body(&whole, encoding, 2).unwrap();
            assert_eq!(
                first.unwrap(),
                encode_views(&views[..2], &resource, encoding).unwrap()
            );
            let second = second.unwrap();
            assert_eq!(
                second,
                encode_views(&views[2..], &resource, encoding).unwrap()
            );
            let text = String::from_utf8_lossy(&second);
            assert!(!text.contains("secret"), "privacy survives the split");
        }
    }

    #[test]
    fn a_body_that_does_not_decode_is_an_error_not_a_panic() {
        assert!(split_body(b"\xff\xff\xff", Encoding::Protobuf, 1).is_err());
        assert!(split_body(b"{not json", Encoding::Json, 1).is_err());
    }
}
