//! Spooled batches sent again, the oldest first: at start, after each live batch the
//! destination took, and every `spool_retry_interval` while it is down. A backlog drains one
//! batch after another.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::spool::{Entry, Half, Spool};
use super::worker::{State, Worker};
use crate::destinations::{EncodedBatch, ExportErrorKind, Sink};
use crate::encode;

/// What one replay step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// A spooled batch was resolved (sent, or dropped for good): try the next one soon.
    Progress,
    /// The destination is still down; the batch stays.
    Failed,
    /// Nothing spooled.
    Empty,
}

impl<S: Sink> Worker<S> {
    /// The destination just took a live batch: one spooled batch follows it, so a backlog
    /// drains alongside live traffic without holding it up.
    pub(super) async fn replay_after_success(&self, st: &mut State) {
        let Some(spool) = &self.spool else { return };
        if spool.is_empty() {
            return;
        }
        let outcome = self.replay_one(st).await;
        st.replay_at = self.next_replay(outcome, &mut st.draining);
    }

    pub(super) fn next_replay(&self, outcome: Replay, draining: &mut bool) -> Option<Instant> {
        self.spool.as_ref()?;
        *draining = outcome == Replay::Progress;
        Some(match outcome {
            Replay::Progress => Instant::now(),
            Replay::Failed | Replay::Empty => Instant::now() + self.settings.spool_retry_interval,
        })
    }

    /// Sends the oldest spooled batch with the usual timeout and retries.
    pub(super) async fn replay_one(&self, st: &mut State) -> Replay {
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
        let work = tokio::task::spawn_blocking(move || encode::split(&body, encoding, cut));
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
}
