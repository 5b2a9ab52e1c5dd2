//! The task behind one pipeline: the loop that takes records from the queue into a batch
//! and flushes it when it is full or due, and the hand-off of each batch's encoding (the
//! destination's view, the body, gzip) to the background runner. What becomes of an encoded
//! batch is in `export`; batches spooled earlier are sent again by `replay`. With
//! `spool_mode = "always"` the loop keeps taking records while an export is out and writes
//! each batch that comes due to the spool; at the shutdown deadline, what it holds is
//! spilled there.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::background::Abandoned;
use super::export::Encoded;
use super::pipeline::{Queued, WorkerSettings};
use super::replay::Replay;
use super::spool::{Entry, Ledger, Spool, Stored};
use super::stats::Counters;
use crate::destinations::{EncodedBatch, ExportError, Sink, SpoolMode};
use crate::encode::view::{destination_view, SpanView, View};

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
pub(super) struct State {
    rx: mpsc::Receiver<Queued>,
    batch: Vec<Queued>,
    batch_spans: usize,
    /// Set while a batch is open: when it goes out even if it is not full.
    flush_at: Option<Instant>,
    /// Set while records keep arriving: when the worker next takes what is queued. `None`
    /// means idle, waiting on the queue itself, so the next record wakes it.
    poll_at: Option<Instant>,
    stopping: bool,
    pub(super) replay_at: Option<Instant>,
    /// Replaying a backlog: the next spooled batch follows at once.
    pub(super) draining: bool,
    /// Batches collected while an export was out that the spool could not take (too large,
    /// disk error): sent after it, as without the spool.
    pub(super) held: Vec<Encoded>,
}

/// A worker that ends, or is aborted, while behind must not leave batch work unpaced.
impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        if self.behind.swap(false, Relaxed) {
            crate::deliver::pace::pressure(false);
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
            crate::deliver::pace::pressure(behind);
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

    /// Every batch goes to the spool before its first send.
    pub(super) fn always(&self) -> bool {
        self.spool.is_some() && self.settings.spool_mode == SpoolMode::Always
    }

    /// The shutdown deadline is near: exports are abandoned, and what is held goes to disk.
    pub(super) fn spilling(&self) -> bool {
        *self.spill.borrow()
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
    /// idle threads are started (see `background`); when spilling at shutdown, never on them.
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
                crate::deliver::pace::checkpoint();
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
            crate::deliver::background::run(work).await
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

    /// Sends a batch. With `spool_mode = "always"` the worker meanwhile keeps taking records
    /// from its queue and writes each batch that comes due to the spool, so a slow or failing
    /// export (its timeout, its retries) never keeps more than a flush interval of records in
    /// memory; those batches go out from the spool afterwards.
    pub(super) async fn send_keeping_up(
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
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
