//! Spreads client connections evenly over the request threads.
//!
//! Every request thread accepts from the same socket, and a connection stays on the thread
//! that accepted it. Left alone, the first thread to wake keeps accepting until the backlog is
//! empty: a client that opens its keep-alive pool at once (an SDK, a load balancer, wrk with 8
//! connections) landed on one thread in 3 runs of 4, and the other thread served nothing. Here
//! a thread accepts only while it holds no more live connections than the least loaded
//! thread; the others wait until a count changes.
//!
//! The same counts enforce `server.max_connections` over all threads. At the cap a thread
//! accepts only while it has a connection it could shed to make room (`super::thread`), and
//! sheds it as the new client comes; otherwise new clients wait in the listen backlog until a
//! connection closes, and the connections already open keep being served.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use tokio::sync::Notify;

use super::socket::Socket;

/// Live connections per request thread, shared by all of them.
pub struct Shares {
    threads: Box<[ThreadShare]>,
    changed: Notify,
    /// `server.max_connections`, over all threads.
    max: usize,
}

/// How often a thread at the cap looks again for a connection it could shed: one that was
/// busy may have gone idle, or one that could be shed may have got a request, without any
/// count changing.
const RECHECK_AT_CAP: Duration = Duration::from_millis(100);

/// Why a thread took a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Below the cap, on this thread's turn.
    Free,
    /// At the cap: one of this thread's connections is to be shed for it.
    Shed,
}

struct ThreadShare {
    live: AtomicUsize,
    /// `gatecast_request_thread_connections{thread}`, registered once rather than looked up
    /// per connection.
    gauge: metrics::Gauge,
}

impl Shares {
    /// Registers the per-thread gauge, so the metrics recorder must be installed first.
    /// `max` caps the connections of all threads together.
    pub fn new(threads: usize, max: usize) -> Arc<Self> {
        Arc::new(Self {
            threads: (0..threads.max(1))
                .map(|index| ThreadShare {
                    live: AtomicUsize::new(0),
                    gauge: metrics::gauge!(
                        "gatecast_request_thread_connections",
                        "thread" => index.to_string()
                    ),
                })
                .collect(),
            changed: Notify::new(),
            max: max.max(1),
        })
    }

    /// Request thread `index`'s place among the shares.
    pub fn seat(self: &Arc<Self>, index: usize) -> Seat {
        Seat {
            shares: self.clone(),
            index,
        }
    }

    /// Whether thread `index` holds no more connections than the least loaded thread.
    pub fn may_accept(&self, index: usize) -> bool {
        let mine = self.live(index);
        self.threads.iter().all(|t| mine <= t.live.load(Relaxed))
    }

    pub fn live(&self, index: usize) -> usize {
        self.threads.get(index).map_or(0, |t| t.live.load(Relaxed))
    }

    /// Live connections over all threads.
    pub fn total(&self) -> usize {
        self.threads.iter().map(|t| t.live.load(Relaxed)).sum()
    }

    /// Whether all threads together hold `server.max_connections`. Threads waiting in
    /// `accept` when the last room went may pass it by a connection each.
    pub fn at_cap(&self) -> bool {
        self.total() >= self.max
    }

    /// Resolves when a connection opens or closes on any thread after it was enabled.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn opened(&self, index: usize) {
        if let Some(t) = self.threads.get(index) {
            t.live.fetch_add(1, Relaxed);
            t.gauge.increment(1.0);
        }
        self.changed.notify_waiters();
    }

    fn closed(&self, index: usize) {
        if let Some(t) = self.threads.get(index) {
            // Paired with `opened`; never below zero.
            if t.live
                .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                t.gauge.decrement(1.0);
            }
        }
        self.changed.notify_waiters();
    }
}

/// One request thread's place among the shares.
#[derive(Clone)]
pub struct Seat {
    shares: Arc<Shares>,
    index: usize,
}

impl Seat {
    /// `inner`, accepting only while this thread's share is the smallest.
    pub fn listen<L: Listener>(self, inner: L) -> Balanced<L> {
        Balanced { inner, seat: self }
    }

    /// This thread's live connections.
    pub fn live(&self) -> usize {
        self.shares.live(self.index)
    }

    /// Resolves when a connection opens or closes on any thread after it was enabled.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.shares.changed()
    }
}

/// A request thread's view of the shared socket: accepts only while this thread's share
/// is the smallest.
pub struct Balanced<L> {
    inner: L,
    seat: Seat,
}

impl<L: Listener> Balanced<L> {
    /// The next connection: below the cap on this thread's turn, and at the cap while
    /// `can_shed` says one of this thread's connections could make room for it (turns do not
    /// count then). A thread that accepts at the cap and then finds nothing left to shed
    /// takes the connection anyway, one over the cap; looking again every
    /// [`RECHECK_AT_CAP`] while it waits keeps that rare.
    pub async fn accept_or_shed(
        &mut self,
        mut can_shed: impl FnMut() -> bool,
    ) -> (Socket<L::Io>, L::Addr, Admission) {
        let Seat { shares, index } = &self.seat;
        let (admission, (io, addr)) = loop {
            // Registered before the check, so a change in between is not missed.
            let changed = shares.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !shares.at_cap() {
                if shares.may_accept(*index) {
                    break (Admission::Free, self.inner.accept().await);
                }
                changed.await;
            } else if can_shed() {
                let accepted = tokio::time::timeout(RECHECK_AT_CAP, self.inner.accept()).await;
                if let Ok(accepted) = accepted {
                    break (Admission::Shed, accepted);
                }
            } else {
                let _ = tokio::time::timeout(RECHECK_AT_CAP, changed).await;
            }
        };
        shares.opened(*index);
        let slot = Slot {
            seat: self.seat.clone(),
        };
        (Socket::new(io, slot), addr, admission)
    }
}

impl<L: Listener> Listener for Balanced<L> {
    type Io = Socket<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr, _) = self.accept_or_shed(|| false).await;
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One live connection in its thread's share: counts itself out when dropped, with the
/// connection's [`Socket`].
pub struct Slot {
    seat: Seat,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.seat.shares.closed(self.seat.index);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn only_the_least_loaded_threads_may_accept() {
        let s = Shares::new(3, 100);
        assert!((0..3).all(|i| s.may_accept(i)), "all empty: everyone");
        s.opened(1);
        assert!(s.may_accept(0) && !s.may_accept(1) && s.may_accept(2));
        s.opened(0);
        s.opened(2);
        assert!((0..3).all(|i| s.may_accept(i)), "all even again");
        s.closed(2);
        assert!(!s.may_accept(0) && !s.may_accept(1) && s.may_accept(2));
        s.closed(2);
        s.closed(2);
        assert_eq!(s.live(2), 0, "a count never goes below zero");
    }

    #[test]
    fn the_cap_counts_every_thread() {
        let s = Shares::new(2, 3);
        s.opened(0);
        s.opened(1);
        assert!(!s.at_cap());
        s.opened(1);
        assert_eq!(s.total(), 3);
        assert!(s.at_cap());
        s.closed(0);
        assert!(!s.at_cap());
    }

    #[tokio::test]
    async fn at_the_cap_a_thread_accepts_only_what_it_can_make_room_for() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shares = Shares::new(1, 1);
        let mut listener = shares
            .seat(0)
            .listen(TcpListener::from_std(std_listener).unwrap());
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let (_held, _) = listener.accept().await;
        let _c2 = TcpStream::connect(addr).await.unwrap();

        // At the cap with nothing to shed: the client waits...
        let waiting = tokio::time::timeout(
            Duration::from_millis(300),
            listener.accept_or_shed(|| false),
        )
        .await;
        assert!(
            waiting.is_err(),
            "no accept at the cap with nothing to shed"
        );
        // ...until something can be shed for it.
        let (_conn, _, admission) =
            tokio::time::timeout(Duration::from_secs(5), listener.accept_or_shed(|| true))
                .await
                .unwrap();
        assert_eq!(admission, Admission::Shed);
        assert_eq!(
            shares.live(0),
            2,
            "the thread sheds one to get back under the cap"
        );
    }

    #[tokio::test]
    async fn a_thread_ahead_waits_until_the_other_catches_up_or_a_connection_closes() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shares = Shares::new(2, 100);
        let mut first = shares
            .seat(0)
            .listen(TcpListener::from_std(std_listener).unwrap());
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let (conn, _) = first.accept().await;
        assert_eq!(shares.live(0), 1);

        // Thread 0 is ahead of thread 1, so it leaves the next client in the backlog...
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let ahead = tokio::time::timeout(Duration::from_millis(100), first.accept()).await;
        assert!(ahead.is_err(), "a thread ahead of another must not accept");

        // ...until its own connection closes and the shares are even again.
        drop(conn);
        assert_eq!(shares.live(0), 0);
        let (_conn, _) = tokio::time::timeout(Duration::from_secs(5), first.accept())
            .await
            .unwrap();
        assert_eq!(shares.live(0), 1);
    }
}
