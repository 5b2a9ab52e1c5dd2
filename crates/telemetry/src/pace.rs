//! Cooperative CPU pacing for batch work: turning a batch into spans, encoding it and
//! compressing it takes milliseconds of CPU in one go, and on a busy host that burst sits in
//! front of request threads.
//!
//! The kernel does not reliably preempt a running thread for one that just woke: the woken
//! request thread (or the upstream answer it waits for) can queue behind the batch on one core
//! while the other core goes idle, for up to a scheduler tick. That is where the c=1 tail with
//! destinations on came from. A thread that opts in here offers its core back every
//! [`SLICE`] of work with `sched_yield`. When nothing else is runnable on that core the call
//! returns at once; when something is, it runs first, and the batch keeps its fair share.
//!
//! Pacing is per thread and off unless switched on, so request threads, tests and library
//! users never yield. The gateway switches it on for every thread of its control runtime,
//! where all delivery work runs.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The longest stretch of batch work between two offers of the core.
pub const SLICE: Duration = Duration::from_micros(50);

thread_local! {
    /// When this thread last offered its core; `None` while pacing is off.
    static LAST_OFFER: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Switches pacing on for the calling thread, for the rest of its life. Meant for a runtime's
/// `on_thread_start`.
pub fn enable_on_this_thread() {
    LAST_OFFER.with(|last| last.set(Some(Instant::now())));
}

/// Whether the calling thread paces its batch work.
pub fn enabled_on_this_thread() -> bool {
    LAST_OFFER.with(|last| last.get().is_some())
}

/// A point in batch work where the core may be handed over: free when pacing is off, one
/// clock read otherwise, and a `sched_yield` once per [`SLICE`].
#[inline]
pub fn checkpoint() {
    LAST_OFFER.with(|last| {
        let Some(since) = last.get() else { return };
        let now = Instant::now();
        if now.duration_since(since) >= SLICE {
            std::thread::yield_now();
            last.set(Some(Instant::now()));
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pacing_is_off_until_a_thread_switches_it_on_and_stays_per_thread() {
        std::thread::spawn(|| {
            assert!(!enabled_on_this_thread());
            checkpoint();
            assert!(
                !enabled_on_this_thread(),
                "a checkpoint must not switch pacing on"
            );
            enable_on_this_thread();
            assert!(enabled_on_this_thread());
            std::thread::spawn(|| assert!(!enabled_on_this_thread()))
                .join()
                .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_paced_thread_offers_its_core_once_per_slice() {
        std::thread::spawn(|| {
            enable_on_this_thread();
            let before = LAST_OFFER.with(Cell::get);
            checkpoint();
            // Well inside the first slice: no offer, the mark stays.
            assert_eq!(LAST_OFFER.with(Cell::get), before);
            std::thread::sleep(SLICE * 2);
            checkpoint();
            let after = LAST_OFFER.with(Cell::get);
            assert!(
                after > before,
                "a checkpoint past the slice must record its offer"
            );
        })
        .join()
        .unwrap();
    }
}
