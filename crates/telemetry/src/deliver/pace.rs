//! Cooperative CPU pacing for batch work: turning a batch into spans, encoding it and
//! compressing it takes milliseconds of CPU in one go, and on a busy host that burst sits in
//! front of request threads.
//!
//! The kernel does not reliably preempt a running thread for one that just woke: the woken
//! request thread (or the upstream answer it waits for) can queue behind the batch on one core
//! while the other core goes idle, for up to a scheduler tick. That is where the c=1 tail with
//! destinations on came from. A thread that opts in here offers its core back every
//! [`SLICE`] of work with `sched_yield`. When nothing else is runnable on that core the call
//! returns at once; when something is, it runs first.
//!
//! Pacing is per thread and off unless switched on, so request threads, tests and library
//! users never yield. The gateway switches it on for every thread of its control runtime,
//! where all delivery work runs.
//!
//! Pacing also stops while any destination falls behind. On a saturated host a yield hands
//! the core to every other runnable thread before the batch gets it back, and paced workers
//! fell so far behind that their queues overflowed (over half of the records dropped at c=64
//! on two cores, none without pacing). A worker whose queue is a quarter full reports
//! [`pressure`]; until it reports relief, batch work runs unpaced, at its fair share.

use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Destinations whose queue is at least a quarter full. Each destination's flag flips by
/// `swap`, so its raises and reliefs alternate, but two threads may apply a raise and the
/// relief that follows it in either order: the count is signed, and a moment below zero
/// nets out.
static BEHIND: AtomicIsize = AtomicIsize::new(0);

/// A destination's queue reached a quarter of its capacity (`true`), or fell back below it.
/// Every `true` must be followed by exactly one `false`.
pub fn pressure(behind: bool) {
    if behind {
        BEHIND.fetch_add(1, Relaxed);
    } else {
        BEHIND.fetch_sub(1, Relaxed);
    }
}

/// Whether some destination is behind, so batch work is not paced.
pub(crate) fn under_pressure() -> bool {
    BEHIND.load(Relaxed) > 0
}

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

/// A point in batch work where the core may be handed over: free when pacing is off, one
/// clock read otherwise, and a `sched_yield` once per [`SLICE`] unless a destination is
/// behind.
#[inline]
pub fn checkpoint() {
    LAST_OFFER.with(|last| {
        let Some(since) = last.get() else { return };
        if under_pressure() {
            return;
        }
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

    fn enabled_on_this_thread() -> bool {
        LAST_OFFER.with(|last| last.get().is_some())
    }

    /// The pressure count is process-wide; tests that depend on it take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    fn pressure_counts_destinations_behind_and_a_relief_applied_first_nets_out() {
        let _turn = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(!under_pressure());
        pressure(true);
        pressure(true);
        assert!(under_pressure());
        std::thread::spawn(|| {
            enable_on_this_thread();
            let before = LAST_OFFER.with(Cell::get);
            std::thread::sleep(SLICE * 2);
            checkpoint();
            assert_eq!(
                LAST_OFFER.with(Cell::get),
                before,
                "a destination is behind: no offer"
            );
        })
        .join()
        .unwrap();
        pressure(false);
        assert!(under_pressure(), "one destination is still behind");
        pressure(false);
        assert!(!under_pressure());
        // A relief that lands before its raise (two threads, either order) nets to zero.
        pressure(false);
        assert!(!under_pressure());
        pressure(true);
        assert!(!under_pressure(), "the pair is complete: nobody is behind");
        pressure(true);
        assert!(under_pressure());
        pressure(false);
        assert!(!under_pressure());
    }

    #[test]
    fn a_paced_thread_offers_its_core_once_per_slice() {
        let _turn = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
