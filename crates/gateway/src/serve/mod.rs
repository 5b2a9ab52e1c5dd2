//! The thread-per-core runtime: request threads that each accept from the one listening
//! socket and serve, time out and shut down their own connections.
//!
//! - [`run`] starts the threads and walks them through the shutdown phases;
//! - [`mod@thread`]: one request thread's runtime, accept loop and connection list;
//! - [`conn`]: one connection, hyper's HTTP/1.1 on it and its [`conn::Tracker`];
//! - [`socket`]: the one IO wrapper a connection's socket is read and written through;
//! - [`balance`]: which thread accepts next, and the connection cap;
//! - [`busy_poll`], [`fd_limit`], [`request_body`]: latency mode, the descriptor limit, and
//!   reading a request body within its limits.

pub mod balance;
pub mod busy_poll;
pub mod conn;
pub mod fd_limit;
pub mod request_body;
pub mod socket;
pub mod thread;

use std::future::Future;
use std::time::{Duration, Instant};

pub use thread::{thread, Phase, Settings};

use crate::error::GatewayError;

/// How `server.shutdown_timeout_ms` is shared out, so that the whole shutdown fits in it.
/// In-flight requests get all of it but a reserve (a quarter, at most 5 s). At that drain
/// deadline a request still waiting for its answer gets a 503 and a stream ends with a last
/// chunk, within a short grace. The destinations then flush with whatever is left: all of
/// the timeout when nothing was in flight, most of the reserve at worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPlan {
    /// How long in-flight requests may take.
    pub drain: Duration,
    /// How long the 503s and the ends of streams then get to be written.
    pub cut: Duration,
    /// How long the request threads get to drop what is still left.
    pub drop: Duration,
}

/// The flush reserve is a quarter of the shutdown timeout, at most this.
const FLUSH_RESERVE_MAX: Duration = Duration::from_secs(5);

impl ShutdownPlan {
    pub fn new(total: Duration) -> Self {
        let reserve = (total / 4).min(FLUSH_RESERVE_MAX);
        Self {
            drain: total.saturating_sub(reserve),
            cut: (reserve / 4).min(Duration::from_secs(1)),
            drop: (reserve / 10).min(Duration::from_millis(200)),
        }
    }
}

/// How the request threads ended.
pub struct Stopped {
    /// When shutdown began (or the threads stopped on their own).
    pub began: Instant,
    /// The first thread that could not serve, and why.
    pub failure: Option<GatewayError>,
}

/// Serves `router` from `threads` request threads until `shutdown` resolves, then drains
/// them along `plan`.
///
/// Each request thread runs its own single-threaded runtime and accepts from the same
/// listening socket, so a request, its upstream connection (see
/// [`gatecast_proxy::lane`]) and its response stream live on one thread and cost no
/// cross-thread wake-ups. Whatever runs the future this returns (destinations, the store
/// watcher, the metrics upkeep) never takes a request thread.
pub async fn run(
    listener: std::net::TcpListener,
    router: axum::Router,
    threads: usize,
    max_connections: usize,
    settings: Settings,
    plan: ShutdownPlan,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stopped, GatewayError> {
    listener
        .set_nonblocking(true)
        .map_err(GatewayError::Serve)?;
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Serving);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let shares = balance::Shares::new(threads.max(1), max_connections);
    metrics::gauge!("gatecast_connections_max").set(max_connections as f64);
    // Threads already started must not keep serving without their owner.
    let abandon = |e| {
        let _ = phase_tx.send(Phase::Done);
        GatewayError::Serve(e)
    };
    for index in 0..threads.max(1) {
        let listener = listener.try_clone().map_err(abandon)?;
        let router = router.clone();
        let phase = phase_rx.clone();
        let done = done_tx.clone();
        let seat = shares.seat(index);
        let spawned = std::thread::Builder::new()
            .name(format!("gatecast-serve-{index}"))
            .spawn(move || {
                gatecast_proxy::transport::enter_request_thread(index);
                let _ = done.send(thread(listener, seat, router, settings, phase));
            });
        spawned.map_err(abandon)?;
    }
    drop(done_tx);
    // Only the threads' copies stay open, so the socket closes when they stop accepting
    // and new clients are refused rather than left in the backlog.
    drop(listener);
    let served = async {
        let mut failure = None;
        while let Some(result) = done_rx.recv().await {
            if let Err(e) = result {
                // One thread cannot serve: stop the others and report why.
                let _ = phase_tx.send(Phase::Done);
                failure.get_or_insert(e);
            }
        }
        failure
    };
    tokio::pin!(served);
    let (failure, began) = tokio::select! {
        failure = &mut served => (failure, Instant::now()),
        () = shutdown => {
            let began = Instant::now();
            let _ = phase_tx.send(Phase::Draining);
            let failure = match tokio::time::timeout(plan.drain, &mut served).await {
                Ok(failure) => failure,
                Err(_) => {
                    tracing::warn!("shutdown: requests still in flight at the drain deadline are answered 503 and their streams ended");
                    let _ = phase_tx.send(Phase::Cutting);
                    match tokio::time::timeout(plan.cut, &mut served).await {
                        Ok(failure) => failure,
                        Err(_) => {
                            let _ = phase_tx.send(Phase::Done);
                            // The runtimes drop what is left; the records of requests
                            // dropped so reach the broadcaster as they go.
                            tokio::time::timeout(plan.drop, &mut served)
                                .await
                                .ok()
                                .flatten()
                        }
                    }
                }
            };
            (failure, began)
        }
    };
    Ok(Stopped { began, failure })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_plan_fits_in_the_timeout_and_keeps_a_reserve_for_the_flush() {
        for ms in [0, 1, 100, 2000, 30_000, 600_000] {
            let total = Duration::from_millis(ms);
            let plan = ShutdownPlan::new(total);
            let requests = plan.drain + plan.cut + plan.drop;
            assert!(requests <= total, "{ms}: {plan:?}");
            let reserve = (total / 4).min(FLUSH_RESERVE_MAX);
            assert!(total - requests >= reserve / 2, "{ms}: {plan:?}");
        }
        let plan = ShutdownPlan::new(Duration::from_secs(30));
        assert_eq!(plan.drain, Duration::from_secs(25));
        assert_eq!(plan.cut, Duration::from_secs(1));
    }
}
