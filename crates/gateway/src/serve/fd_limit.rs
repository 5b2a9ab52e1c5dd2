//! The process's file-descriptor limit, and the connection cap it allows.
//!
//! Every client connection is a descriptor, and so is the upstream connection a request
//! holds. A gateway that runs out of descriptors cannot accept, so not even `/health` gets
//! in: the cap on client connections is kept below the limit instead.

/// Descriptors kept back from the cap for the store, destinations, spool and log files,
/// and each runtime's own epoll and wake-up descriptors.
const RESERVED: u64 = 64;
/// The most connections a derived cap allows: at the cap, each connection waiting for a
/// slow client holds about 10 KiB of hyper's buffers, so 4096 of them stay near 40 MB.
const MAX_DERIVED: usize = 4096;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as far as the system allows (the
/// default soft limit of 1024 is far below what a gateway may need). Returns the soft limit
/// in force afterwards; `None` when it is unlimited or cannot be read.
pub fn raise() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let now = getrlimit(Resource::Nofile);
        if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
            if soft < hard {
                let raised = Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                };
                if let Err(e) = setrlimit(Resource::Nofile, raised) {
                    tracing::warn!(soft, hard, error = %e, "cannot raise the file-descriptor limit");
                }
            }
        }
    }
    current()
}

/// The soft `RLIMIT_NOFILE` in force; `None` when unlimited or unknown.
pub fn current() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap for `server.max_connections` (0: derived) under a descriptor limit of
/// `limit`: half of what the reserve leaves, since each client connection may hold an
/// upstream one, at most [`MAX_DERIVED`] and at least 1.
pub fn connection_cap(configured: usize, limit: Option<u64>) -> usize {
    let fits = limit.map_or(usize::MAX, |l| {
        usize::try_from(l.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX)
    });
    if configured == 0 {
        return fits.clamp(1, MAX_DERIVED);
    }
    if configured > fits {
        tracing::warn!(
            max_connections = configured,
            fd_limit = limit,
            "server.max_connections is above half the file-descriptor limit: accepts may fail for want of descriptors before the cap is reached"
        );
    }
    configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(0, Some(256)), 96);
        assert_eq!(connection_cap(0, Some(1024)), 480);
        assert_eq!(connection_cap(0, Some(1 << 20)), MAX_DERIVED);
        assert_eq!(connection_cap(0, None), MAX_DERIVED);
        assert_eq!(connection_cap(0, Some(10)), 1, "never zero");
    }

    #[test]
    fn an_explicit_cap_is_kept() {
        assert_eq!(connection_cap(50, Some(256)), 50);
        assert_eq!(connection_cap(5000, Some(256)), 5000);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = current();
        let after = raise();
        assert!(after >= before, "{before:?} -> {after:?}");
    }
}
