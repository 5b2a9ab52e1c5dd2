//! Load shapes: closed loop at a fixed concurrency, open loop at a fixed rate, and the
//! interleaved one-at-a-time loop the latency scenario uses.
//!
//! Open loop measures each request from the moment it *should* have been sent. A closed loop
//! only sends when a worker is free, so a server stall delays the next send and hides itself
//! (coordinated omission); the open loop's schedule does not wait for anyone.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, Mutex};

use crate::client::{Conn, Endpoint, Outcome};
use crate::hist::Latencies;

/// A worker whose connection broke waits this long before reconnecting, so a dead server
/// costs a few error counts instead of a busy loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(20);

/// An open-loop run still draining its backlog this long after the schedule ended is
/// overloaded beyond measuring; the rest is counted as not sent.
const OPEN_LOOP_DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Streaming measurements, kept only when the run asked for them.
#[derive(Clone, Debug)]
pub struct StreamStats {
    pub first_frame: Latencies,
    pub max_gap: Latencies,
    pub frames: u64,
    pub events: u64,
    /// The same over the frames that carry answer content, which compare across wires.
    pub max_content_gap: Latencies,
    pub content_frames: u64,
    pub content_events: u64,
}

impl StreamStats {
    fn new() -> Result<Self> {
        Ok(Self {
            first_frame: Latencies::new()?,
            max_gap: Latencies::new()?,
            frames: 0,
            events: 0,
            max_content_gap: Latencies::new()?,
            content_frames: 0,
            content_events: 0,
        })
    }

    fn add(&mut self, out: &Outcome) {
        if let Some(first) = out.first_frame {
            self.first_frame.record(first);
        }
        self.max_gap.record(out.max_gap());
        self.frames += out.frames.len() as u64;
        self.events += out.events as u64;
        self.max_content_gap.record(out.max_content_gap());
        self.content_frames += out.content_frames.len() as u64;
        self.content_events += out.content_events as u64;
    }

    fn merge(&mut self, other: &StreamStats) -> Result<()> {
        self.first_frame.merge(&other.first_frame)?;
        self.max_gap.merge(&other.max_gap)?;
        self.frames += other.frames;
        self.events += other.events;
        self.max_content_gap.merge(&other.max_content_gap)?;
        self.content_frames += other.content_frames;
        self.content_events += other.content_events;
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct RunResult {
    pub latencies: Latencies,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub stream: Option<StreamStats>,
}

impl RunResult {
    fn new(stream: bool) -> Result<Self> {
        Ok(Self {
            latencies: Latencies::new()?,
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            stream: if stream {
                Some(StreamStats::new()?)
            } else {
                None
            },
        })
    }

    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn add(&mut self, result: Result<Outcome>, latency: impl FnOnce(&Outcome) -> Duration) {
        match result {
            Ok(out) => {
                self.ok += 1;
                self.latencies.record(latency(&out));
                if let Some(s) = &mut self.stream {
                    s.add(&out);
                }
            }
            Err(e) => self.error(&e),
        }
    }

    fn error(&mut self, e: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }

    fn merge(&mut self, other: &RunResult) -> Result<()> {
        self.latencies.merge(&other.latencies)?;
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        if let (Some(a), Some(b)) = (&mut self.stream, &other.stream) {
            a.merge(b)?;
        }
        Ok(())
    }
}

/// What a load run sends.
#[derive(Clone, Debug)]
pub struct Workload {
    pub endpoint: Arc<Endpoint>,
    pub body: Bytes,
    /// Record frame arrival times (streaming).
    pub stream: bool,
}

/// Keeps one connection, reconnecting after a failure.
struct Worker {
    conn: Option<Conn>,
}

impl Worker {
    fn new() -> Self {
        Self { conn: None }
    }

    async fn exchange(&mut self, w: &Workload) -> Result<Outcome> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(Conn::connect(w.endpoint.addr).await?),
        };
        let result = conn.post(&w.endpoint, w.body.clone(), w.stream).await;
        if result.is_err() {
            // The connection state is unknown after any failure; start clean.
            self.conn = None;
            tokio::time::sleep(RECONNECT_BACKOFF).await;
        }
        result
    }
}

/// `concurrency` workers, each sending its next request as soon as the last one finished,
/// until `duration` has passed.
pub async fn closed_loop(
    w: &Workload,
    concurrency: usize,
    duration: Duration,
) -> Result<RunResult> {
    closed_loop_spread(w, concurrency, duration, Duration::ZERO).await
}

/// A closed loop whose workers start `spread / concurrency` apart. Identical long requests
/// started together stay in lockstep for the whole run (each ends and restarts with the
/// others), so every request would arrive in a burst of `concurrency`; spread over one
/// request's length, they arrive the way independent clients do.
pub async fn closed_loop_spread(
    w: &Workload,
    concurrency: usize,
    duration: Duration,
    spread: Duration,
) -> Result<RunResult> {
    let started = Instant::now();
    let deadline = started + duration;
    let concurrency = concurrency.max(1);
    let mut tasks = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let w = w.clone();
        let mut local = RunResult::new(w.stream)?;
        let offset = spread.mul_f64(index as f64 / concurrency as f64);
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new();
            tokio::time::sleep_until((started + offset).into()).await;
            while Instant::now() < deadline {
                let result = worker.exchange(&w).await;
                local.add(result, |o| o.total);
            }
            local
        }));
    }
    let mut total = RunResult::new(w.stream)?;
    for t in tasks {
        total.merge(&t.await.context("load worker panicked")?)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Closed loops on each target in turn, `rounds` times, each `total / rounds` long, merged
/// per target: drift on the machine during the run lands on every target alike.
pub async fn alternating(
    targets: &[Workload],
    concurrency: usize,
    total: Duration,
    rounds: u32,
    spread: Duration,
) -> Result<Vec<RunResult>> {
    let rounds = rounds.max(1);
    let each = total / rounds;
    let mut results = targets
        .iter()
        .map(|t| RunResult::new(t.stream))
        .collect::<Result<Vec<_>>>()?;
    for _ in 0..rounds {
        for (target, result) in targets.iter().zip(&mut results) {
            let run = closed_loop_spread(target, concurrency, each, spread).await?;
            result.merge(&run)?;
            result.elapsed += run.elapsed;
        }
    }
    Ok(results)
}

/// One request at a time on each target in turn, `per_round` requests per turn, so slow drift
/// on the machine (another process, thermal, page cache) lands on every target alike.
pub async fn interleaved(
    targets: &[Workload],
    per_target: u64,
    rounds: u64,
) -> Result<Vec<RunResult>> {
    let rounds = rounds.clamp(1, per_target.max(1));
    let per_round = per_target.div_ceil(rounds);
    let mut workers: Vec<Worker> = targets.iter().map(|_| Worker::new()).collect();
    let mut results = targets
        .iter()
        .map(|t| RunResult::new(t.stream))
        .collect::<Result<Vec<_>>>()?;
    let mut sent = vec![0u64; targets.len()];
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            let n = per_round.min(per_target - sent[i]);
            for _ in 0..n {
                let result = workers[i].exchange(target).await;
                results[i].add(result, |o| o.total);
            }
            sent[i] += n;
        }
    }
    let elapsed = started.elapsed();
    for r in &mut results {
        r.elapsed = elapsed;
    }
    Ok(results)
}

/// Sends `count` requests back to back and forgets them: connections warm, pools filled.
pub async fn warm_up(w: &Workload, count: u64) -> Result<()> {
    let mut worker = Worker::new();
    let mut last_error = None;
    let mut ok = 0;
    for _ in 0..count {
        match worker.exchange(w).await {
            Ok(_) => ok += 1,
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) if ok == 0 => Err(e.context(format!(
            "every warm-up request to {} failed",
            w.endpoint.authority
        ))),
        _ => Ok(()),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenLoopStats {
    pub rate: f64,
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    /// Scheduled but never sent because the backlog could not drain in time.
    pub not_sent: u64,
    pub achieved_rps: f64,
}

pub struct OpenLoopResult {
    /// From the intended send time: what a user arriving on schedule would wait.
    pub from_intended: Latencies,
    /// From the actual send: the server's share alone.
    pub service: Latencies,
    pub stats: OpenLoopStats,
    pub first_error: Option<String>,
}

/// Requests at a fixed `rate` for `duration`, spread over `connections` keep-alive
/// connections.
///
/// The schedule comes from a plain thread sleeping with `std::thread::sleep` (tens of µs of
/// timer slack) rather than from tokio's millisecond timer wheel, which would release requests
/// in 1 ms bursts and count the burst wait as latency. Whatever lateness the pacer itself has
/// is included, equally for every target, so the gateway-minus-direct difference cancels it.
pub async fn open_loop(
    w: &Workload,
    rate: f64,
    duration: Duration,
    connections: usize,
) -> Result<OpenLoopResult> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(anyhow!("open-loop rate must be positive, got {rate}"));
    }
    let scheduled = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let started = Instant::now() + Duration::from_millis(5);
    let give_up = started + duration + OPEN_LOOP_DRAIN_LIMIT;
    let not_sent = Arc::new(AtomicU64::new(0));

    let pacer = std::thread::Builder::new()
        .name("open-loop-pacer".into())
        .spawn(move || {
            for i in 0..scheduled {
                let at = started + interval.mul_f64(i as f64);
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if tx.send(at).is_err() {
                    break;
                }
            }
        })
        .context("starting the pacer thread")?;

    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let w = w.clone();
        let rx = rx.clone();
        let not_sent = not_sent.clone();
        let mut from_intended = RunResult::new(false)?;
        let mut service = Latencies::new()?;
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some(intended) = next else { break };
                if Instant::now() > give_up {
                    not_sent.fetch_add(1, Relaxed);
                    continue;
                }
                let sent = Instant::now();
                let result = worker.exchange(&w).await;
                let done = Instant::now();
                if result.is_ok() {
                    service.record(done - sent);
                }
                from_intended.add(result, |_| done.saturating_duration_since(intended));
            }
            (from_intended, service)
        }));
    }
    let mut total = RunResult::new(false)?;
    let mut service = Latencies::new()?;
    for t in tasks {
        let (a, b) = t.await.context("open-loop worker panicked")?;
        total.merge(&a)?;
        service.merge(&b)?;
    }
    pacer
        .join()
        .map_err(|_| anyhow!("the pacer thread panicked"))?;
    let elapsed = started.elapsed();
    Ok(OpenLoopResult {
        from_intended: total.latencies,
        service,
        stats: OpenLoopStats {
            rate,
            scheduled,
            ok: total.ok,
            errors: total.errors,
            not_sent: not_sent.load(Relaxed),
            achieved_rps: total.ok as f64 / elapsed.as_secs_f64().max(1e-9),
        },
        first_error: total.first_error,
    })
}
