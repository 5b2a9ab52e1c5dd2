//! The response body: provider bytes go to the client as they arrive, while a side path
//! folds them into the exchange's record.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use gatecast_telemetry::record::ErrorKind;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::capture::{Accumulator, ChunkKind};
use crate::exchange::Exchange;
use crate::providers::BodyStream;
use crate::stream::sse::{event_data, EventTooLarge, SseSplitter};

/// Why the body ended early; hyper then aborts the connection, so the client sees a broken
/// stream rather than a clean end.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(&'static str);

/// Events left for a later poll at most: a provider that never leaves the body waiting
/// (a whole answer in one burst) has its events parsed as they come, not kept.
const MAX_UNREAD: usize = 32;
/// Bytes of events left for a later poll at most, so big events are not held 32 at a time.
const MAX_UNREAD_BYTES: usize = 1 << 20;

/// How the provider's bytes are read on the side.
pub enum Mode {
    /// An SSE stream. With `hide_usage`, the usage-only chunk that the gateway asked for (and
    /// the `"usage":null` it adds to every chunk) is removed, so the client sees what it would
    /// have seen without the gateway.
    Sse {
        splitter: SseSplitter,
        hide_usage: bool,
    },
    /// A whole JSON body, read once at the end. The chunks are reference-counted, not copied,
    /// and held only up to `limit` bytes (`max_response_bytes`).
    Whole {
        chunks: Vec<Bytes>,
        held: usize,
        limit: usize,
    },
}

impl Mode {
    pub fn whole(limit: usize) -> Self {
        Mode::Whole {
            chunks: Vec::new(),
            held: 0,
            limit,
        }
    }
}

/// The provider sent more than the gateway holds; the message goes into the record.
struct TooLarge(String);

pub struct TeeBody {
    upstream: BodyStream,
    mode: Mode,
    acc: Option<Accumulator>,
    exchange: Option<Exchange>,
    deadline: Option<Pin<Box<Sleep>>>,
    upstream_status: u16,
    /// Bytes still expected when the provider declared a length. hyper stops polling a body
    /// once it has that many bytes, so the exchange must be closed with the last chunk.
    remaining: Option<u64>,
    /// A failure already recorded, whose error is returned on the next poll: one pending poll
    /// in between lets the server write what is buffered, since hyper drops the unwritten
    /// head and frames of a body that fails within the same poll.
    broken: Option<&'static str>,
    /// The `data` of SSE events handed to the client but not yet folded into the record.
    /// hyper polls the body again before it writes what it was given, so parsing an event
    /// there would delay the event itself (most of all the first, run by cold code); the
    /// parse waits for a later poll instead.
    unread: Vec<Vec<u8>>,
    /// Bytes in `unread`.
    unread_bytes: usize,
    /// Set when the body yielded so that hyper writes first: the next poll folds `unread`.
    fold_next: bool,
    /// A failure already recorded whose last frame (an error event) has just been handed
    /// over: the stream breaks after the server has written it.
    break_next: Option<&'static str>,
}

impl TeeBody {
    pub fn new(
        upstream: BodyStream,
        mode: Mode,
        acc: Accumulator,
        exchange: Exchange,
        deadline: Pin<Box<Sleep>>,
        upstream_status: u16,
        content_length: Option<u64>,
    ) -> Self {
        Self {
            upstream,
            mode,
            acc: Some(acc),
            exchange: Some(exchange),
            deadline: Some(deadline),
            upstream_status,
            remaining: content_length,
            broken: None,
            unread: Vec::new(),
            unread_bytes: 0,
            fold_next: false,
            break_next: None,
        }
    }

    fn push_unread(&mut self, data: Vec<u8>) {
        self.unread_bytes += data.len();
        self.unread.push(data);
    }

    /// Turns one provider chunk into what the client receives (possibly nothing yet).
    fn on_chunk(&mut self, chunk: Bytes) -> Result<Option<Bytes>, TooLarge> {
        if self.acc.is_none() {
            return Ok(Some(chunk));
        }
        if self.unread.len() >= MAX_UNREAD || self.unread_bytes >= MAX_UNREAD_BYTES {
            self.fold_unread();
        }
        match &mut self.mode {
            Mode::Whole {
                chunks,
                held,
                limit,
            } => {
                *held += chunk.len();
                if *held > *limit {
                    let limit = *limit;
                    chunks.clear();
                    return Err(TooLarge(format!(
                        "the provider's answer is larger than max_response_bytes ({limit} bytes)"
                    )));
                }
                chunks.push(chunk.clone());
                Ok(Some(chunk))
            }
            Mode::Sse {
                splitter,
                hide_usage: false,
            } => {
                let events = splitter.push(&chunk).map_err(event_too_large)?;
                for data in events.iter().filter_map(|e| event_data(e)) {
                    self.push_unread(data);
                }
                Ok(Some(chunk))
            }
            Mode::Sse {
                splitter,
                hide_usage: true,
            } => {
                let events = splitter.push(&chunk).map_err(event_too_large)?;
                let mut out = BytesMut::new();
                for event in events {
                    let Some(data) = event_data(&event) else {
                        out.extend_from_slice(&event);
                        continue;
                    };
                    if !may_be_usage_only(&data) {
                        // Not the hidden chunk, so it goes out now and is parsed later. Only
                        // JSON objects carry the `"usage":null` to remove.
                        if data.first() == Some(&b'{') {
                            strip_usage_null(&event, &mut out);
                        } else {
                            out.extend_from_slice(&event);
                        }
                        self.push_unread(data);
                        continue;
                    }
                    // Whether it is hidden takes a parse, after the events before it.
                    self.fold_unread();
                    let kind = self.acc.as_mut().map(|acc| acc.on_chunk(&data));
                    match kind {
                        Some(ChunkKind::UsageOnly) => {}
                        Some(ChunkKind::Regular) => strip_usage_null(&event, &mut out),
                        _ => out.extend_from_slice(&event),
                    }
                }
                Ok((!out.is_empty()).then(|| out.freeze()))
            }
        }
    }

    /// Folds the events handed over so far into the record, in order.
    fn fold_unread(&mut self) {
        self.unread_bytes = 0;
        if let Some(acc) = self.acc.as_mut() {
            for data in self.unread.drain(..) {
                acc.on_chunk(&data);
            }
        }
    }

    /// A stream's last, unterminated event (`data: [DONE]` with one newline, say) is read for
    /// the record, so that how the stream ended is judged on everything the provider sent.
    fn read_remainder(&mut self) {
        let data = match &self.mode {
            Mode::Sse { splitter, .. } => event_data(splitter.remainder()),
            Mode::Whole { .. } => None,
        };
        if let Some(data) = data {
            self.push_unread(data);
        }
    }

    /// What closing the exchange needs, taken out of the body: `None` once taken.
    fn closing(&mut self) -> Option<Closing> {
        self.fold_unread();
        let (exchange, acc) = (self.exchange.take()?, self.acc.take()?);
        let (chunks, stream) = match &mut self.mode {
            Mode::Whole { chunks, .. } => (std::mem::take(chunks), false),
            Mode::Sse { .. } => (Vec::new(), true),
        };
        Some(Closing {
            exchange,
            acc,
            chunks,
            upstream_status: self.upstream_status,
            stream,
        })
    }

    fn finish(&mut self, failure: Option<(ErrorKind, &str)>) {
        if let Some(closing) = self.closing() {
            closing.run(failure);
        }
    }

    /// Closes a complete exchange after the frame being returned is written: hyper writes it
    /// in the same poll of the connection, and the task spawned here runs once that poll
    /// returns, so reading a whole body and building the record stay off the client's path.
    /// Polled outside a runtime (the deadline's timer makes that a bug), the work runs at once
    /// rather than panicking.
    fn finish_after_write(&mut self) {
        let Some(mut closing) = self.closing() else {
            return;
        };
        closing.exchange.end_now();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let deferred = Deferred(Some(closing));
                runtime.spawn(async move { drop(deferred) });
            }
            Err(_) => closing.run(None),
        }
    }
}

/// Closing an exchange: the whole body read once, the record built and handed over.
struct Closing {
    exchange: Exchange,
    acc: Accumulator,
    chunks: Vec<Bytes>,
    upstream_status: u16,
    /// An SSE stream, whose end is checked: a 200 that carried an error is not a success.
    stream: bool,
}

impl Closing {
    fn run(self, failure: Option<(ErrorKind, &str)>) {
        let Self {
            mut exchange,
            mut acc,
            chunks,
            upstream_status: status,
            stream,
        } = self;
        acc.on_chunks(&chunks);
        drop(chunks);
        let stream_error = if stream && failure.is_none() {
            acc.stream_error()
        } else {
            None
        };
        let (output, usage, provider_message) = acc.finish();
        exchange.record.output = output;
        exchange.record.usage = usage;
        if let Some((kind, message)) = failure {
            exchange.fail(kind, Some(status), message.to_owned());
        } else if status >= 400 {
            let message = provider_message.unwrap_or_else(|| format!("provider answered {status}"));
            exchange.fail(ErrorKind::Provider, Some(status), message);
        } else if let Some(message) = stream_error {
            exchange.fail(ErrorKind::StreamError, Some(status), message);
        }
        exchange.publish();
    }
}

/// A deferred close that also runs when its task is dropped unpolled, as a runtime shutting
/// down does: the record of a complete answer is never lost or marked cancelled.
struct Deferred(Option<Closing>);

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(closing) = self.0.take() {
            closing.run(None);
        }
    }
}

/// Whether an event's data may be the usage-only chunk: it has a `"usage"` key whose value
/// is an object. Anything else cannot be (its usage is absent or null), so it can go to the
/// client before it is parsed. A false positive only costs a parse before the write.
fn may_be_usage_only(data: &[u8]) -> bool {
    memchr::memmem::find_iter(data, b"\"usage\"").any(|at| {
        let rest = &data[at + 7..];
        let mut bytes = rest.iter().skip_while(|b| b.is_ascii_whitespace());
        bytes.next() == Some(&b':') && bytes.find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
    })
}

fn event_too_large(e: EventTooLarge) -> TooLarge {
    TooLarge(format!(
        "a provider event is larger than max_sse_event_bytes ({} bytes)",
        e.limit
    ))
}

/// What a client whose stream the gateway ends for a too-large event gets before the break:
/// the error event OpenAI's SDKs raise as an API error.
fn too_large_event() -> Bytes {
    let error = crate::error::ApiError::new(
        http::StatusCode::BAD_GATEWAY,
        crate::error::ErrorType::Api,
        "the provider sent an event larger than the gateway's max_sse_event_bytes",
    )
    .code("upstream_response_too_large");
    Bytes::from(crate::error::ApiShape::OpenAi.event(&error))
}

/// Removes the `"usage":null` that `include_usage` adds to every chunk.
fn strip_usage_null(event: &[u8], out: &mut BytesMut) {
    const NEEDLE: &[u8] = b",\"usage\":null";
    match memchr::memmem::find(event, NEEDLE) {
        Some(at) => {
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + NEEDLE.len()..]);
        }
        None => out.extend_from_slice(event),
    }
}

impl TeeBody {
    fn break_after_flush(
        &mut self,
        why: &'static str,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.broken = Some(why);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            if let Some(why) = this.broken.take() {
                return Poll::Ready(Some(Err(BodyError(why))));
            }
            if let Some(why) = this.break_next.take() {
                return this.break_after_flush(why, cx);
            }
            if this.exchange.is_none() {
                return Poll::Ready(None);
            }
            if std::mem::take(&mut this.fold_next) {
                this.fold_unread();
            }
            if let Some(deadline) = this.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    this.finish(Some((
                        ErrorKind::Timeout,
                        "provider did not finish the answer in time",
                    )));
                    return this.break_after_flush("provider timed out mid-answer", cx);
                }
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(ex) = this.exchange.as_mut() {
                        if ex.record.timings.first_chunk.is_none() {
                            ex.record.timings.first_chunk = Some(ex.elapsed());
                        }
                    }
                    match this.on_chunk(chunk) {
                        Ok(Some(out)) => {
                            if let Some(left) = this.remaining.as_mut() {
                                *left = left.saturating_sub(out.len() as u64);
                                if *left == 0 {
                                    this.finish_after_write();
                                }
                            }
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                        Ok(None) => {}
                        Err(TooLarge(message)) => {
                            this.finish(Some((ErrorKind::ResponseTooLarge, &message)));
                            const WHY: &str = "the provider's answer is too large";
                            // A client that has seen only whole events gets a reason first.
                            if let Mode::Sse {
                                hide_usage: true, ..
                            } = this.mode
                            {
                                this.break_next = Some(WHY);
                                let event = too_large_event();
                                return Poll::Ready(Some(Ok(Frame::data(event))));
                            }
                            return this.break_after_flush(WHY, cx);
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    this.finish(Some((
                        ErrorKind::StreamAborted,
                        "provider broke the stream",
                    )));
                    return this.break_after_flush("provider broke the stream", cx);
                }
                Poll::Ready(None) => {
                    this.read_remainder();
                    let rest = match &this.mode {
                        Mode::Sse {
                            splitter,
                            hide_usage: true,
                        } if !splitter.remainder().is_empty() => {
                            Some(Bytes::copy_from_slice(splitter.remainder()))
                        }
                        _ => None,
                    };
                    this.finish_after_write();
                    return Poll::Ready(rest.map(|b| Ok(Frame::data(b))));
                }
                Poll::Pending if !this.unread.is_empty() => {
                    // Nothing more to write yet: let hyper write what it has, then read it.
                    this.fold_next = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none() && self.broken.is_none() && self.break_next.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away. Dropping `upstream` cancels the call.
        self.finish(Some((
            ErrorKind::Cancelled,
            "client disconnected before the answer was complete",
        )));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use gatecast_telemetry::record::Status;
    use gatecast_telemetry::GenerationRecord;
    use http_body_util::BodyExt;
    use tokio::time::Instant;

    use super::*;
    use crate::exchange::RecordSink;

    #[derive(Default)]
    struct Collect(Mutex<Vec<GenerationRecord>>);

    impl RecordSink for Collect {
        fn publish(&self, record: GenerationRecord) {
            self.0.lock().unwrap().push(record);
        }
        fn wants_content(&self) -> bool {
            true
        }
    }

    impl Collect {
        fn taken(&self) -> Vec<GenerationRecord> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    const ANSWER: &[u8] = br#"{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

    /// A whole answer with a declared length, in two chunks.
    fn answer(sink: &Arc<Collect>) -> TeeBody {
        let (a, b) = ANSWER.split_at(17);
        let chunks = vec![Ok(Bytes::from_static(a)), Ok(Bytes::from_static(b))];
        let sink: Arc<dyn RecordSink> = sink.clone();
        TeeBody::new(
            Box::pin(futures::stream::iter(chunks)),
            Mode::whole(1 << 20),
            Accumulator::new(true, 1 << 20),
            Exchange::new(GenerationRecord::default(), std::time::Instant::now(), sink),
            Box::pin(tokio::time::sleep_until(
                Instant::now() + Duration::from_secs(60),
            )),
            200,
            Some(ANSWER.len() as u64),
        )
    }

    async fn read_all(body: &mut TeeBody) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        got
    }

    fn assert_complete(records: &[GenerationRecord]) {
        assert_eq!(records.len(), 1, "published exactly once");
        let record = &records[0];
        assert_eq!(record.status, Status::Ok);
        assert_eq!(record.usage.as_ref().map(|u| u.output_tokens), Some(2));
        assert!(!record.timings.end.is_zero(), "the end is stamped");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_complete_answer_is_recorded_after_its_last_frame_is_handed_over() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let mut body = answer(&sink);
            assert_eq!(read_all(&mut body).await, ANSWER);
            assert!(body.is_end_stream());
            assert!(
                sink.taken().is_empty(),
                "the record is built after the caller wrote the last frame"
            );
            let mut records = Vec::new();
            for _ in 0..10 {
                tokio::task::yield_now().await;
                records.extend(sink.taken());
            }
            assert_complete(&records);
        });
    }

    #[test]
    fn a_broken_stream_yields_once_before_its_error_so_frames_so_far_are_written() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let event = Bytes::from_static(b"data: {\"choices\":[]}\n\n");
            let chunks = vec![Ok(event.clone()), Err(crate::providers::UpstreamError::Body("reset".into()))];
            let mut body = sse_tee(Box::pin(futures::stream::iter(chunks)), &sink);
            let woken = Arc::new(WakeCount::default());
            let waker = std::task::Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut body = Pin::new(&mut body);
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.into_data().unwrap(), event),
                other => panic!("first poll: {:?}", other.map(|o| o.map(|r| r.is_ok()))),
            }
            assert!(body.as_mut().poll_frame(&mut cx).is_pending(), "one pending poll");
            assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 1, "and a wake");
            assert!(!body.is_end_stream(), "not a clean end");
            assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(Some(Err(_)))));
            let records = sink.taken();
            assert_eq!(records.len(), 1);
            assert!(
                matches!(&records[0].status, Status::Error(e) if e.kind == ErrorKind::StreamAborted),
                "recorded as a broken stream"
            );
        });
    }

    /// An SSE passthrough body over `upstream`, recording into `sink`.
    fn sse_tee(upstream: crate::providers::BodyStream, sink: &Arc<Collect>) -> TeeBody {
        let sink: Arc<dyn RecordSink> = sink.clone();
        TeeBody::new(
            upstream,
            Mode::Sse {
                splitter: SseSplitter::default(),
                hide_usage: false,
            },
            Accumulator::new(true, 1 << 20),
            Exchange::new(GenerationRecord::default(), std::time::Instant::now(), sink),
            Box::pin(tokio::time::sleep_until(
                Instant::now() + Duration::from_secs(60),
            )),
            200,
            None,
        )
    }

    /// An SSE passthrough body fed by hand, so a test decides when the provider is pending.
    fn sse_body(
        sink: &Arc<Collect>,
    ) -> (
        TeeBody,
        futures::channel::mpsc::UnboundedSender<Result<Bytes, crate::providers::UpstreamError>>,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (sse_tee(Box::pin(rx), sink), tx)
    }

    fn delta(text: &str) -> Bytes {
        Bytes::from(format!(
            "data: {{\"id\":\"r1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        ))
    }

    fn wakes(count: &WakeCount) -> usize {
        count.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn a_passed_through_chunk_is_read_for_the_record_only_after_the_server_could_write_it() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let (mut body, tx) = sse_body(&sink);
            let woken = Arc::new(WakeCount::default());
            let waker = std::task::Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut body = Pin::new(&mut body);

            tx.unbounded_send(Ok(delta("Hel"))).unwrap();
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    assert_eq!(frame.into_data().unwrap(), delta("Hel"))
                }
                other => panic!("first poll: {:?}", other.map(|o| o.map(|r| r.is_ok()))),
            }
            assert!(!body.unread.is_empty(), "handed over before it is read");
            assert!(body.as_mut().poll_frame(&mut cx).is_pending());
            assert_eq!(
                wakes(&woken),
                1,
                "one pending poll and a wake, so the server writes"
            );
            assert!(
                !body.unread.is_empty(),
                "still unread while the server writes"
            );
            assert!(body.as_mut().poll_frame(&mut cx).is_pending());
            assert!(body.unread.is_empty(), "read on the poll after");
            assert_eq!(
                wakes(&woken),
                1,
                "and no more wakes while the provider is pending"
            );

            // Two chunks at once: the first is read before the second is handed over. The
            // stream ends as a finished one does, with `[DONE]`.
            let done = Bytes::from_static(b"data: [DONE]\n\n");
            tx.unbounded_send(Ok(delta("lo"))).unwrap();
            tx.unbounded_send(Ok(delta(" you"))).unwrap();
            tx.unbounded_send(Ok(done.clone())).unwrap();
            for expected in [delta("lo"), delta(" you"), done] {
                match body.as_mut().poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        assert_eq!(frame.into_data().unwrap(), expected)
                    }
                    other => panic!("burst: {:?}", other.map(|o| o.map(|r| r.is_ok()))),
                }
            }
            drop(tx);
            assert!(matches!(
                body.as_mut().poll_frame(&mut cx),
                Poll::Ready(None)
            ));
            let mut records = Vec::new();
            for _ in 0..10 {
                tokio::task::yield_now().await;
                records.extend(sink.taken());
            }
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].status, Status::Ok);
            assert_eq!(
                records[0].output.choices[0].text, "Hello you",
                "every chunk is in the record"
            );
        });
    }

    #[test]
    fn a_client_leaving_right_after_a_chunk_still_has_that_chunk_recorded() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let (mut body, tx) = sse_body(&sink);
            tx.unbounded_send(Ok(delta("only"))).unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), delta("only"));
            drop(body);
            let records = sink.taken();
            assert_eq!(records.len(), 1);
            assert!(
                matches!(&records[0].status, Status::Error(e) if e.kind == ErrorKind::Cancelled),
                "recorded as cancelled"
            );
            assert_eq!(records[0].output.choices[0].text, "only");
        });
    }

    #[test]
    fn the_usage_only_chunk_is_told_apart_without_a_parse() {
        for yes in [
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices": [], "usage" :  {"prompt_tokens": 1}}"#,
            "{\"usage\":\n{}}",
            // A false positive: parsed before the write, as every event was before.
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#,
        ] {
            assert!(may_be_usage_only(yes.as_bytes()), "{yes}");
        }
        for no in [
            r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#,
            r#"{"choices":[{"delta":{"content":"\"usage\":{"}}]}"#,
            r#"{"choices":[]}"#,
            "[DONE]",
            r#"{"usage""#,
            "",
        ] {
            assert!(!may_be_usage_only(no.as_bytes()), "{no}");
        }
    }

    proptest::proptest! {
        /// Every chunk the parse calls usage-only is caught by the scan, however the provider
        /// lays out its JSON and whatever the text says.
        #[test]
        fn the_scan_never_misses_a_usage_only_chunk(
            text in ".{0,24}",
            choices in proptest::bool::ANY,
            usage in 0u8..3,
            pretty in proptest::bool::ANY,
        ) {
            let mut chunk = serde_json::json!({"id": "c", "model": text.clone()});
            chunk["choices"] = if choices {
                serde_json::json!([{"index": 0, "delta": {"content": text}}])
            } else {
                serde_json::json!([])
            };
            match usage {
                0 => {}
                1 => chunk["usage"] = serde_json::Value::Null,
                _ => chunk["usage"] = serde_json::json!({"prompt_tokens": 2, "completion_tokens": 1}),
            }
            let data = if pretty {
                serde_json::to_vec_pretty(&chunk).unwrap()
            } else {
                serde_json::to_vec(&chunk).unwrap()
            };
            let mut acc = Accumulator::new(true, 1 << 20);
            if acc.on_chunk(&data) == ChunkKind::UsageOnly {
                proptest::prop_assert!(may_be_usage_only(&data));
            }
        }
    }

    #[test]
    fn with_usage_hidden_chunks_go_out_before_their_parse_and_the_usage_chunk_never_does() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let (mut body, tx) = sse_body(&sink);
            body.mode = Mode::Sse {
                splitter: SseSplitter::default(),
                hide_usage: true,
            };
            let woken = Arc::new(WakeCount::default());
            let waker = std::task::Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut body = Pin::new(&mut body);

            let regular = |text: &str| {
                Bytes::from(format!(
                    "data: {{\"id\":\"r1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}],\"usage\":null}}\n\n"
                ))
            };
            tx.unbounded_send(Ok(regular("Hi"))).unwrap();
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.into_data().unwrap(), delta("Hi")),
                other => panic!("first poll: {:?}", other.map(|o| o.map(|r| r.is_ok()))),
            }
            assert!(!body.unread.is_empty(), "handed over before it is parsed");
            assert!(body.as_mut().poll_frame(&mut cx).is_pending());
            assert!(body.as_mut().poll_frame(&mut cx).is_pending());
            assert!(body.unread.is_empty());

            // The text, then the hidden usage chunk and the end in one read.
            let usage = "data: {\"id\":\"r1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n";
            let mut burst = regular(" there").to_vec();
            burst.extend_from_slice(usage.as_bytes());
            burst.extend_from_slice(b"data: [DONE]\n\n");
            tx.unbounded_send(Ok(Bytes::from(burst))).unwrap();
            let mut expected = delta(" there").to_vec();
            expected.extend_from_slice(b"data: [DONE]\n\n");
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.into_data().unwrap(), expected),
                other => panic!("burst: {:?}", other.map(|o| o.map(|r| r.is_ok()))),
            }
            drop(tx);
            assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(None)));
            let mut records = Vec::new();
            for _ in 0..10 {
                tokio::task::yield_now().await;
                records.extend(sink.taken());
            }
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].output.choices[0].text, "Hi there");
            assert_eq!(records[0].usage.as_ref().map(|u| u.input_tokens), Some(3));
        });
    }

    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_deferred_record_is_published_when_its_runtime_shuts_down_first() {
        let sink = Arc::new(Collect::default());
        let rt = runtime();
        let body = rt.block_on(async {
            let mut body = answer(&sink);
            assert_eq!(read_all(&mut body).await, ANSWER);
            body
        });
        assert!(sink.taken().is_empty(), "the close task has not run yet");
        drop(rt);
        assert_complete(&sink.taken());
        drop(body);
        assert!(
            sink.taken().is_empty(),
            "dropping the finished body publishes nothing more"
        );
    }

    /// A body over `chunks` in `mode`, recording into `sink`.
    fn tee_over(chunks: Vec<Bytes>, mode: Mode, sink: &Arc<Collect>) -> TeeBody {
        let sink: Arc<dyn RecordSink> = sink.clone();
        let chunks = chunks.into_iter().map(Ok).collect::<Vec<_>>();
        TeeBody::new(
            Box::pin(futures::stream::iter(chunks)),
            mode,
            Accumulator::new(true, 1 << 20),
            Exchange::new(GenerationRecord::default(), std::time::Instant::now(), sink),
            Box::pin(tokio::time::sleep_until(
                Instant::now() + Duration::from_secs(60),
            )),
            200,
            None,
        )
    }

    fn sse_mode(limit: usize, hide_usage: bool) -> Mode {
        Mode::Sse {
            splitter: SseSplitter::new(limit),
            hide_usage,
        }
    }

    /// Everything the client receives, and whether the body ended in an error.
    async fn drain(body: &mut TeeBody) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
                Err(_) => return (got, true),
            }
        }
        (got, false)
    }

    async fn published(sink: &Collect) -> Vec<GenerationRecord> {
        let mut records = Vec::new();
        for _ in 0..10 {
            tokio::task::yield_now().await;
            records.extend(sink.taken());
        }
        records
    }

    fn error_of(record: &GenerationRecord) -> Option<(ErrorKind, &str)> {
        match &record.status {
            Status::Error(e) => Some((e.kind, e.message.as_str())),
            Status::Ok => None,
        }
    }

    #[test]
    fn a_whole_answer_past_its_limit_breaks_and_lets_go_of_what_it_held() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let chunks = vec![Bytes::from(vec![b'x'; 600]), Bytes::from(vec![b'x'; 600])];
            let mut body = tee_over(chunks, Mode::whole(1000), &sink);
            let (got, broken) = drain(&mut body).await;
            assert_eq!(got.len(), 600, "what came before the limit went out");
            assert!(broken, "then the answer breaks");
            match &body.mode {
                Mode::Whole { chunks, .. } => assert!(chunks.is_empty()),
                Mode::Sse { .. } => unreachable!(),
            }
            let records = published(&sink).await;
            assert_eq!(records.len(), 1);
            let (kind, message) = error_of(&records[0]).unwrap();
            assert_eq!(kind, ErrorKind::ResponseTooLarge);
            assert!(
                message.contains("max_response_bytes (1000 bytes)"),
                "{message}"
            );
        });
    }

    #[test]
    fn an_event_that_never_ends_breaks_the_stream_at_the_event_limit() {
        for hide_usage in [false, true] {
            let sink = Arc::new(Collect::default());
            runtime().block_on(async {
                let first = delta("Hi");
                let mut chunks = vec![first.clone(), Bytes::from_static(b"data: {\"choices\":")];
                chunks.extend((0..100).map(|_| Bytes::from(vec![b'x'; 100])));
                let mut body = tee_over(chunks, sse_mode(1000, hide_usage), &sink);
                let (got, broken) = drain(&mut body).await;
                assert!(
                    broken,
                    "hide_usage={hide_usage}: the client's stream breaks"
                );
                assert!(got.starts_with(&first));
                assert!(got.len() < 1000 + first.len() + 200, "{}", got.len());
                if hide_usage {
                    // It has seen only whole events, so it gets the reason as one.
                    let rest = &got[first.len()..];
                    assert_eq!(rest, too_large_event());
                    let data = event_data(rest).unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
                    assert_eq!(v["error"]["code"], "upstream_response_too_large");
                }
                let records = published(&sink).await;
                assert_eq!(records.len(), 1);
                let (kind, message) = error_of(&records[0]).unwrap();
                assert_eq!(kind, ErrorKind::ResponseTooLarge);
                assert!(
                    message.contains("max_sse_event_bytes (1000 bytes)"),
                    "{message}"
                );
                assert_eq!(records[0].output.choices[0].text, "Hi");
            });
        }
    }

    /// A stream cut into chunks at `cuts`.
    fn cut(stream: &[u8], cuts: &[usize]) -> Vec<Bytes> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([stream.len()]) {
            if p > prev {
                chunks.push(Bytes::copy_from_slice(&stream[prev..p]));
            }
            prev = p;
        }
        chunks
    }

    proptest::proptest! {
        /// Wherever the chunks split the stream, an error event in a 200 stream makes the
        /// exchange a `stream_error` carrying the provider's message, and the client's bytes
        /// are the provider's.
        #[test]
        fn an_error_event_is_found_on_any_chunk_boundary(
            texts in proptest::collection::vec("[a-z ]{0,12}", 0..6),
            error_at in 0usize..6,
            done_after in proptest::bool::ANY,
            crlf in proptest::bool::ANY,
            hide_usage in proptest::bool::ANY,
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let sep = if crlf { "\r\n\r\n" } else { "\n\n" };
            let mut events: Vec<String> = texts
                .iter()
                .map(|t| format!(r#"data: {{"choices":[{{"index":0,"delta":{{"content":"{t}"}}}}]}}{sep}"#))
                .collect();
            let error = format!(r#"data: {{"error":{{"message":"overloaded mid-way","type":"server_error"}}}}{sep}"#);
            events.insert(error_at.min(events.len()), error);
            if done_after {
                events.push(format!("data: [DONE]{sep}"));
            }
            let stream = events.concat().into_bytes();
            let sink = Arc::new(Collect::default());
            let (got, broken, records) = runtime().block_on(async {
                let mut body = tee_over(cut(&stream, &cuts), sse_mode(1 << 20, hide_usage), &sink);
                let (got, broken) = drain(&mut body).await;
                (got, broken, published(&sink).await)
            });
            proptest::prop_assert!(!broken);
            proptest::prop_assert_eq!(got, stream, "the client gets the provider's bytes");
            proptest::prop_assert_eq!(records.len(), 1);
            let failure = error_of(&records[0]);
            proptest::prop_assert_eq!(failure, Some((ErrorKind::StreamError, "overloaded mid-way")));
        }

        /// Arbitrary bytes on arbitrary boundaries, with a small event limit: no panic, one
        /// record, and the client never gets more than the provider sent (plus the reason).
        #[test]
        fn any_bytes_on_any_boundary_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..8),
            limit in 1usize..300,
            hide_usage in proptest::bool::ANY,
        ) {
            let sent: usize = chunks.iter().map(Vec::len).sum();
            let chunks = chunks.into_iter().map(Bytes::from).collect();
            let sink = Arc::new(Collect::default());
            let (got, records) = runtime().block_on(async {
                let mut body = tee_over(chunks, sse_mode(limit, hide_usage), &sink);
                let (got, _) = drain(&mut body).await;
                drop(body);
                (got, published(&sink).await)
            });
            proptest::prop_assert_eq!(records.len(), 1);
            proptest::prop_assert!(got.len() <= sent + too_large_event().len());
        }
    }

    #[test]
    fn a_stream_that_stops_without_done_or_a_finish_reason_is_a_stream_error() {
        let sink = Arc::new(Collect::default());
        runtime().block_on(async {
            let mut body = tee_over(
                vec![delta("Hel"), delta("lo")],
                sse_mode(1 << 20, false),
                &sink,
            );
            let (got, broken) = drain(&mut body).await;
            assert!(
                !broken,
                "the client's bytes are the provider's, ending as they ended"
            );
            assert_eq!(got, [delta("Hel"), delta("lo")].concat());
            let records = published(&sink).await;
            let (kind, message) = error_of(&records[0]).unwrap();
            assert_eq!(kind, ErrorKind::StreamError);
            assert!(message.contains("without [DONE]"), "{message}");
            assert_eq!(records[0].output.choices[0].text, "Hello");

            // `[DONE]` with a single newline at the very end still counts.
            let sink = Arc::new(Collect::default());
            let chunks = vec![delta("ok"), Bytes::from_static(b"data: [DONE]\n")];
            let mut body = tee_over(chunks, sse_mode(1 << 20, true), &sink);
            drain(&mut body).await;
            assert_eq!(published(&sink).await[0].status, Status::Ok);
        });
    }
}
