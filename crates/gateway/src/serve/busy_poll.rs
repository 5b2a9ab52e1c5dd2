//! Optional busy polling on the request threads.
//!
//! At one request at a time, most of what a proxy hop adds is not work but wake-ups: the
//! request thread sleeps in `epoll_wait` while the provider thinks and while the client
//! turns round, and waking a sleeping thread on an idle vCPU costs tens of microseconds on
//! a VM. With `server.busy_poll_us` set, a request thread keeps polling its sockets for that
//! long after the last request started instead of sleeping, so the provider's answer and
//! the client's next request are picked up at once. It spends CPU to save latency, only
//! while requests arrive: an idle gateway sleeps as usual.

use std::cell::Cell;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

thread_local! {
    static LAST_ACTIVITY: Cell<Option<Instant>> = const { Cell::new(None) };
    static SLEEPING: Cell<bool> = const { Cell::new(false) };
    /// One per request thread, which lives as long as the process.
    static WAKE: &'static Notify = Box::leak(Box::new(Notify::new()));
    static ENABLED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the start of request work on this thread; wakes the poller if it went to sleep.
pub fn activity() {
    if !ENABLED.with(Cell::get) {
        return;
    }
    LAST_ACTIVITY.with(|l| l.set(Some(Instant::now())));
    if SLEEPING.with(|s| s.replace(false)) {
        WAKE.with(|w| w.notify_one());
    }
}

/// The poller for the current request thread; spawn it on that thread's runtime.
pub async fn run(window: Duration) {
    ENABLED.with(|e| e.set(true));
    let wake = WAKE.with(|w| *w);
    loop {
        let recent = LAST_ACTIVITY
            .with(Cell::get)
            .is_some_and(|at| at.elapsed() < window);
        if recent {
            // Let any other runnable thread on this core go first, then poll the sockets
            // (a yielded task runs again only after the runtime has checked for I/O).
            std::thread::yield_now();
            tokio::task::yield_now().await;
        } else {
            SLEEPING.with(|s| s.set(true));
            wake.notified().await;
        }
    }
}
