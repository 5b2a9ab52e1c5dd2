//! One request thread: its runtime, its accept loop, and the connections it accepted, from
//! their first byte to the shutdown deadline.
//!
//! The thread keeps its connections' [`Tracker`]s in accept order and one timer for all of
//! them: it fires at the earliest head deadline (at most every [`TICK`]), closes the
//! connections past theirs and sets itself for the next. A thread with no connection has no
//! timer, and a connection costs no timer of its own.
//!
//! At `server.max_connections` the thread makes room for a new client by closing the
//! connection that has waited longest for its first request head, else the one idle longest
//! between requests; a connection with a request in flight, or that has waited less than
//! its grace ([`FIRST_HEAD_GRACE`], [`IDLE_GRACE`]), is never shed. A client that sends its request as soon as it connects (a
//! health check, any real client) is therefore served even while hundreds of slow
//! connections hold the cap: it is accepted as soon as the clients ahead of it in the listen
//! backlog are, and its head is read long before it could be shed. With nothing to shed, new
//! clients wait in the backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::Counter;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::balance::{Admission, Balanced, Seat};
use super::conn::{self, Timers, Tracker, Waiting};
use crate::error::GatewayError;

/// Where the gateway is in its life; request threads follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// Shutdown began: accept no more, finish what is in flight.
    Draining,
    /// The drain deadline: answer what still waits 503, end streams.
    Cutting,
    /// Drop whatever is left.
    Done,
}

/// What every request thread is told at start.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub timers: Timers,
    /// `server.busy_poll_us`, when set.
    pub busy_poll: Option<Duration>,
}

/// The shortest time between two sweeps of a thread's connections: a head deadline is met
/// this late at worst, and a thousand connections reaching theirs one by one cost four
/// sweeps a second, not a thousand.
const TICK: Duration = Duration::from_millis(250);

/// How long a new connection must have waited for its first request head before it may be
/// shed. A client writes its request as it connects, so the head comes right behind the
/// handshake; longer would let slow clients that reconnect at once keep every connection
/// too young to shed, and a new client waiting behind them that long.
const FIRST_HEAD_GRACE: Duration = Duration::from_millis(100);
/// How long a kept-alive connection must have been idle before it may be shed: a client that
/// just got its answer may be about to send its next request on it.
const IDLE_GRACE: Duration = Duration::from_secs(1);
/// At most one warning about the cap per thread in this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Runs request thread `seat` until `phase` says it is done or, once draining, its last
/// connection has closed.
pub fn thread(
    listener: std::net::TcpListener,
    seat: Seat,
    router: axum::Router,
    settings: Settings,
    phase: watch::Receiver<Phase>,
) -> Result<(), GatewayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Serve)?;
    runtime.block_on(async move {
        if let Some(window) = settings.busy_poll {
            tokio::spawn(super::busy_poll::run(window));
        }
        let listener = seat
            .clone()
            .listen(TcpListener::from_std(listener).map_err(GatewayError::Serve)?);
        run(listener, seat, router, settings.timers, phase).await;
        Ok(())
    })
}

async fn run(
    mut listener: Balanced<TcpListener>,
    seat: Seat,
    router: axum::Router,
    timers: Timers,
    mut phase: watch::Receiver<Phase>,
) {
    let builder = conn::builder();
    let mut conns = Connections::new(timers);
    let sweep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sweep);
    let mut armed = false;
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Serving {
                    break;
                }
            }
            () = &mut sweep, if armed => {
                armed = conns.sweep(sweep.as_mut());
            }
            (io, _, admission) = listener.accept_or_shed(|| conns.can_shed()) => {
                let _ = io.get_ref().set_nodelay(true);
                // Room is made among the connections already there, never the new one.
                if admission == Admission::Shed {
                    conns.shed_one();
                }
                let tracker = Tracker::new(Instant::now());
                tokio::spawn(conn::serve(&builder, io, router.clone(), &timers, tracker.clone()));
                conns.opened(tracker, seat.live());
                let first_head = Instant::now() + timers.header;
                if !armed || first_head < sweep.deadline().into_std() {
                    sweep.as_mut().reset(first_head.into());
                    armed = true;
                }
            }
        }
    }
    // New clients are refused from here on rather than left in the backlog.
    drop(listener);
    conns.drain();
    let mut cut = false;
    loop {
        let changed = seat.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if seat.live() == 0 {
            return;
        }
        // The current phase, not only a change: the drain may have been skipped over.
        match *phase.borrow_and_update() {
            Phase::Done => return,
            Phase::Cutting if !cut => {
                cut = true;
                conns.cut();
            }
            _ => {}
        }
        tokio::select! {
            biased;
            moved = phase.changed() => {
                if moved.is_err() {
                    return;
                }
            }
            () = &mut sweep, if armed => {
                armed = conns.sweep(sweep.as_mut());
            }
            () = &mut changed => {}
        }
    }
}

/// A request thread's connections, oldest first.
struct Connections {
    list: Vec<Arc<Tracker>>,
    timers: Timers,
    /// When this thread last warned that the cap was reached.
    warned: Option<Instant>,
    header_timeouts: Counter,
    idle_timeouts: Counter,
    shed: Counter,
}

impl Connections {
    fn new(timers: Timers) -> Self {
        let closed = |reason: &'static str| metrics::counter!("gatecast_connections_closed_total", "reason" => reason);
        Self {
            list: Vec::new(),
            timers,
            warned: None,
            header_timeouts: closed("header_timeout"),
            idle_timeouts: closed("idle_timeout"),
            shed: closed("shed"),
        }
    }

    /// Only the list holds a tracker whose connection has ended.
    fn ended(t: &Arc<Tracker>) -> bool {
        Arc::strong_count(t) == 1
    }

    fn opened(&mut self, tracker: Arc<Tracker>, live: usize) {
        // Ended connections leave the list at sweeps; prune here too so that a thread
        // whose connections never reach a deadline does not keep them all.
        if self.list.len() > 2 * live + 32 {
            self.list.retain(|t| !Self::ended(t));
        }
        self.list.push(tracker);
    }

    /// Closes connections past their head deadline; sets `timer` for the next sweep and
    /// says whether one is needed.
    fn sweep(&mut self, timer: std::pin::Pin<&mut tokio::time::Sleep>) -> bool {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut busy = false;
        let Self {
            list,
            timers,
            header_timeouts,
            idle_timeouts,
            ..
        } = self;
        list.retain(|t| {
            if Self::ended(t) || t.closing() {
                return false;
            }
            match t.deadline(timers) {
                None => {
                    busy = true;
                    true
                }
                Some((at, waiting)) if at <= now => {
                    match waiting {
                        Waiting::FirstHead { .. } => header_timeouts.increment(1),
                        Waiting::NextHead { .. } => idle_timeouts.increment(1),
                    }
                    t.close();
                    true
                }
                Some((at, _)) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    true
                }
            }
        });
        // A busy connection's next head deadline is an idle timeout after its response.
        if busy {
            let soonest = now + self.timers.idle;
            next = Some(next.map_or(soonest, |n| n.min(soonest)));
        }
        match next {
            Some(at) => {
                timer.reset(at.max(now + TICK).into());
                true
            }
            None => false,
        }
    }

    /// Whether a connection could be shed now (see [`Connections::shed_one`]).
    fn can_shed(&self) -> bool {
        let now = Instant::now();
        self.list
            .iter()
            .any(|t| !Self::ended(t) && t.waiting().is_some_and(|w| past_grace(w, now)))
    }

    /// Closes the connection that has waited longest for its first head, else the one idle
    /// longest, once past its grace. The list is in accept order, so the first one waiting
    /// for a first head is the oldest.
    fn shed_one(&mut self) {
        let now = Instant::now();
        let mut idlest: Option<(Instant, &Arc<Tracker>)> = None;
        let mut victim = None;
        for t in &self.list {
            if Self::ended(t) {
                continue;
            }
            match t.waiting() {
                Some(w @ Waiting::FirstHead { .. }) if past_grace(w, now) => {
                    victim = Some(t);
                    break;
                }
                Some(w @ Waiting::NextHead { since })
                    if past_grace(w, now) && idlest.is_none_or(|(s, _)| since < s) =>
                {
                    idlest = Some((since, t));
                }
                _ => {}
            }
        }
        let Some(victim) = victim.or(idlest.map(|(_, t)| t)) else {
            return;
        };
        self.shed.increment(1);
        victim.close();
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.warned = Some(Instant::now());
            tracing::warn!(
                "server.max_connections reached: closing the connections that wait longest for a request head to make room"
            );
        }
    }

    /// Shutdown: connections with a request in flight or part of a head finish it; those
    /// that never sent a byte close now.
    fn drain(&self) {
        for t in &self.list {
            match t.waiting() {
                Some(Waiting::FirstHead { heard: false, .. }) => t.close(),
                _ => t.drain(),
            }
        }
    }

    /// The drain deadline: requests still in flight are answered or their streams ended,
    /// and connections still waiting for a head close.
    fn cut(&self) {
        for t in &self.list {
            if t.waiting().is_some() {
                t.close();
            } else {
                t.cut();
            }
        }
    }
}

/// Whether a waiting connection has waited long enough to be shed.
fn past_grace(waiting: Waiting, now: Instant) -> bool {
    let (since, grace) = match waiting {
        Waiting::FirstHead { since, .. } => (since, FIRST_HEAD_GRACE),
        Waiting::NextHead { since } => (since, IDLE_GRACE),
    };
    now.saturating_duration_since(since) >= grace
}
