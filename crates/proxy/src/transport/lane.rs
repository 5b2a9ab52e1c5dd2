//! Which request thread the current code runs on: its lane.
//!
//! The gateway serves from one single-threaded runtime per core. A pooled upstream
//! connection is driven by a task on the runtime that opened it, so a request that borrows a
//! connection opened by another thread wakes that thread twice (to send, and to hand back
//! the response). Each request thread therefore enters its own lane, and the plain-HTTP
//! transport keeps one pool per lane: a request, its upstream connection and its response
//! stream stay on one thread.

use std::cell::Cell;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as request thread `index`; called once as the thread starts.
pub(crate) fn enter(index: usize) {
    LANE.with(|l| l.set(index));
}

/// The calling thread's lane; threads that never entered one share lane 0.
pub(crate) fn current() -> usize {
    LANE.with(Cell::get)
}

/// How many lanes per-lane resources are made for: one per core, the gateway's default
/// number of request threads. More threads than lanes share them round the table.
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_lane() {
        enter(3);
        assert_eq!(current(), 3);
        let other = std::thread::spawn(current).join().unwrap_or(usize::MAX);
        assert_eq!(other, 0, "a new thread starts on lane 0");
        assert_eq!(current(), 3);
    }
}
