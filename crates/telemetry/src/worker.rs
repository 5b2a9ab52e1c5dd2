//! The task behind one pipeline: batch, apply the destination's view, encode, export with
//! timeout and retries, count every outcome.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::destination::{EncodedBatch, Encoding, ExportError, ExportErrorKind, Sink};
use crate::error::TelemetryError;
use crate::flavor::apply_sentry_flavor;
use crate::limits;
use crate::otlp;
use crate::pipeline::{SharedRecord, WorkerSettings};
use crate::privacy::apply_privacy;
use crate::stats::{Counters, DropReason};

pub(crate) struct Worker<S> {
    pub sink: S,
    pub rx: mpsc::Receiver<Arc<SharedRecord>>,
    pub settings: WorkerSettings,
    pub counters: Arc<Counters>,
    /// Shared with the pipeline handle, which counts what is still pending at a missed deadline.
    pub pending: Arc<AtomicU64>,
    pub stop: Arc<Notify>,
    pub name: String,
}

/// Records of one batch, converted and ready to encode, remembering where each record's
/// spans start so a refused batch can be split along record boundaries.
struct Chunk {
    spans: Vec<Span>,
    lens: Vec<usize>,
}

/// A chunk as one export request and its encoded body.
struct Encoded {
    lens: Vec<usize>,
    span_count: usize,
    request: ExportTraceServiceRequest,
    body: Result<Vec<u8>, TelemetryError>,
}

impl Encoded {
    fn new(chunk: Chunk, resource: &Resource, encoding: Encoding) -> Self {
        let span_count = chunk.spans.len();
        let request = otlp::export_request(chunk.spans, resource.clone());
        let body = if span_count == 0 {
            Ok(Vec::new())
        } else {
            encode(&request, encoding)
        };
        Self {
            lens: chunk.lens,
            span_count,
            request,
            body,
        }
    }
}

impl<S: Sink> Worker<S> {
    pub(crate) async fn run(mut self) {
        let mut batch: Vec<Arc<SharedRecord>> = Vec::new();
        let mut batch_spans = 0usize;
        let mut flush_at: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let next = if stopping {
                self.rx.recv().await
            } else {
                let due = flush_at;
                tokio::select! {
                    biased;
                    () = self.stop.notified() => {
                        // Nothing new gets in; what is queued still goes out.
                        self.rx.close();
                        stopping = true;
                        continue;
                    }
                    item = self.rx.recv() => item,
                    () = sleep_until(due), if due.is_some() => {
                        self.flush(&mut batch).await;
                        batch_spans = 0;
                        flush_at = None;
                        continue;
                    }
                }
            };
            let Some(item) = next else {
                self.flush(&mut batch).await;
                return;
            };
            batch_spans += item.spans().len();
            batch.push(item);
            let due =
                *flush_at.get_or_insert_with(|| Instant::now() + self.settings.flush_interval);
            // A steady stream keeps `recv` ready ahead of the timer, so the deadline is also
            // checked here.
            if batch_spans >= self.settings.max_batch_spans || Instant::now() >= due {
                self.flush(&mut batch).await;
                batch_spans = 0;
                flush_at = None;
            }
        }
    }

    /// Conversion and encoding of a whole batch take milliseconds of CPU, so they run on the
    /// blocking pool: the runtime's worker threads keep serving requests meanwhile.
    async fn flush(&self, batch: &mut Vec<Arc<SharedRecord>>) {
        if batch.is_empty() {
            return;
        }
        let items = std::mem::take(batch);
        let records = items.len();
        let settings = self.settings.clone();
        let encoding = self.sink.encoding();
        let work = tokio::task::spawn_blocking(move || {
            let mut chunk = Chunk {
                spans: Vec::new(),
                lens: Vec::with_capacity(items.len()),
            };
            for item in &items {
                let spans = prepare(&settings, item);
                chunk.lens.push(spans.len());
                chunk.spans.extend(spans);
            }
            // The records are released here too, off the runtime's threads.
            drop(items);
            Encoded::new(chunk, &settings.resource, encoding)
        });
        match work.await {
            Ok(encoded) => self.deliver(encoded).await,
            Err(e) => self.fail(records, &format!("encoding a batch failed: {e}")),
        }
    }

    async fn deliver(&self, first: Encoded) {
        // Work stack: a batch refused as too large comes back as two halves, encoded again.
        let mut stack = vec![first];
        while let Some(next) = stack.pop() {
            let Encoded {
                lens,
                span_count,
                request,
                body,
            } = next;
            let records = lens.len();
            if span_count == 0 {
                self.resolved(records);
                continue;
            }
            let body = match body {
                Ok(body) => body,
                Err(e) => {
                    self.fail(records, &e.to_string());
                    continue;
                }
            };
            let batch = EncodedBatch {
                body,
                spans: span_count,
            };
            match self.send(&batch).await {
                Ok(()) => {
                    self.counters.exported(span_count as u64);
                    self.resolved(records);
                }
                Err(e) if e.kind == ExportErrorKind::TooLarge && records > 1 => {
                    let spans = take_spans(request);
                    let mid = records / 2;
                    let cut = lens[..mid].iter().sum::<usize>().min(spans.len());
                    let mut first = spans;
                    let second = first.split_off(cut);
                    // Pushed second half first, so the first half is sent first.
                    let halves = [
                        Chunk {
                            spans: second,
                            lens: lens[mid..].to_vec(),
                        },
                        Chunk {
                            spans: first,
                            lens: lens[..mid].to_vec(),
                        },
                    ];
                    for half in halves {
                        let half_records = half.lens.len();
                        let resource = self.settings.resource.clone();
                        let encoding = self.sink.encoding();
                        let work = tokio::task::spawn_blocking(move || {
                            Encoded::new(half, &resource, encoding)
                        });
                        match work.await {
                            Ok(encoded) => stack.push(encoded),
                            Err(e) => {
                                self.fail(half_records, &format!("encoding a batch failed: {e}"))
                            }
                        }
                    }
                }
                Err(e) => self.fail(records, &e.message),
            }
        }
    }

    /// Counted in the same poll as the outcome, so an aborted worker never leaves a
    /// resolved record pending.
    fn resolved(&self, records: usize) {
        self.pending.fetch_sub(records as u64, Relaxed);
    }

    fn fail(&self, records: usize, message: &str) {
        self.counters
            .dropped(DropReason::ExportFailed, records as u64);
        self.resolved(records);
        self.counters.set_last_error(message.to_owned());
        tracing::warn!(destination = %self.name, records, error = %message, "export failed; batch dropped");
    }

    async fn send(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
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
            let retry_after = match error.kind {
                ExportErrorKind::Retryable { retry_after } if retry + 1 < policy.max_attempts => {
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

/// This destination's view of a record: privacy (its own or the request's), its own
/// attribute limit, and its flavor, on a copy of the shared spans.
fn prepare(s: &WorkerSettings, item: &SharedRecord) -> Vec<Span> {
    let private = s.privacy_mode || item.private();
    if s.max_attribute_bytes >= item.max_attribute_bytes() && !s.sentry_flavor {
        // Nothing to change but privacy: convert the shared spans without copying them.
        let convert = if private {
            otlp::to_private_proto_span
        } else {
            otlp::to_proto_span
        };
        return item.spans().iter().map(convert).collect();
    }
    let mut spans = item.spans().to_vec();
    if private {
        apply_privacy(&mut spans);
    }
    if s.max_attribute_bytes < item.max_attribute_bytes() {
        for span in &mut spans {
            limits::enforce(span, s.max_attribute_bytes);
        }
    }
    if s.sentry_flavor {
        apply_sentry_flavor(&mut spans);
    }
    spans.iter().map(otlp::to_proto_span).collect()
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

fn encode(
    request: &ExportTraceServiceRequest,
    encoding: Encoding,
) -> Result<Vec<u8>, TelemetryError> {
    Ok(match encoding {
        Encoding::Json => otlp::to_json_line(request)?.into_bytes(),
        Encoding::Protobuf => otlp::to_protobuf(request),
    })
}
