//! One encoded batch's way to the destination: the export with its timeout and retries
//! (abandoned at the shutdown deadline, when the batch stays in the spool), the split of a
//! batch refused as too large, the spool hand-off (before the first send with `spool_mode =
//! "always"`, after a failure otherwise), and the count of every outcome.

use std::sync::atomic::Ordering::Relaxed;

use opentelemetry_proto::tonic::resource::v1::Resource;

use super::spool::{Entry, Half, Spool, Stored};
use super::stats::DropReason;
use super::worker::{State, Worker};
use crate::destinations::{EncodedBatch, Encoding, ExportError, ExportErrorKind, Sink};
use crate::encode::{self, view::SpanView};
use crate::error::TelemetryError;

/// A batch's encoded body, remembering how many spans each record has, so a refused batch
/// can be split along record boundaries.
pub(super) struct Encoded {
    pub(super) lens: Vec<usize>,
    pub(super) span_count: usize,
    pub(super) body: Result<Vec<u8>, TelemetryError>,
    /// The body gzipped, for sinks that send it so.
    pub(super) wire: Option<Result<bytes::Bytes, ExportError>>,
}

impl Encoded {
    pub(super) fn new(
        lens: Vec<usize>,
        spans: &[SpanView<'_>],
        resource: &Resource,
        encoding: Encoding,
    ) -> Self {
        let body = if spans.is_empty() {
            Ok(Vec::new())
        } else {
            encode::body(spans, resource, encoding)
        };
        Self {
            lens,
            span_count: spans.len(),
            body,
            wire: None,
        }
    }

    /// A half of a refused batch, encoded again by `encode::split`.
    fn half(lens: &[usize], body: Result<Vec<u8>, TelemetryError>) -> Self {
        Self {
            span_count: lens.iter().sum(),
            lens: lens.to_vec(),
            body,
            wire: None,
        }
    }

    /// Compresses the body now, with the rest of the batch work.
    pub(super) fn gzipped(mut self) -> Self {
        if let Ok(body) = &self.body {
            self.wire = Some(crate::encode::gzip::gzip(body));
        }
        self
    }
}

impl<S: Sink> Worker<S> {
    /// A spooled batch that can never be delivered: deleted and counted as failed.
    pub(super) async fn discard(&self, spool: &Spool, entry: &Entry, message: &str) {
        self.counters
            .dropped(DropReason::ExportFailed, entry.records);
        self.counters.set_last_error(message.to_owned());
        tracing::warn!(destination = %self.name, records = entry.records, error = %message, "spooled batch dropped");
        if let Err(e) = spool.remove(entry).await {
            spool.io_error(&self.name, "delete", &e);
        }
    }

    /// Sends `first`, then what `held` has. Each batch carries its spool entry once it is on
    /// disk (`spool_mode = "always"`): its records were resolved when it was written, and the
    /// outcome deletes the file instead.
    pub(super) async fn deliver(&self, st: &mut State, first: Option<Encoded>) -> bool {
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
                        tokio::task::spawn_blocking(move || encode::split(&body, encoding, cut));
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

    pub(super) async fn store(
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
    pub(super) fn resolved(&self, records: usize) {
        self.ledger.pending.fetch_sub(records as u64, Relaxed);
    }

    pub(super) fn fail(&self, records: usize, message: &str) {
        self.counters
            .dropped(DropReason::ExportFailed, records as u64);
        self.resolved(records);
        self.counters.set_last_error(message.to_owned());
        tracing::warn!(destination = %self.name, records, error = %message, "export failed; batch dropped");
    }

    /// One export with the timeout and retries. With a spool, it gives up at once when the
    /// pipeline spills at the shutdown deadline: the batch is then kept on disk.
    pub(super) async fn send(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
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
