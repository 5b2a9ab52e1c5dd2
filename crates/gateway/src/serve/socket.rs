//! A client connection's socket as hyper reads and writes it: the one wrapper every byte of
//! a connection passes through, so that what the runtime needs to know of a socket costs one
//! layer of forwarding, not one per concern.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::balance::Slot;
use super::conn::Tracker;

/// The socket of one accepted connection. It holds the connection's place in its thread's
/// share ([`Slot`], counted out when the socket drops) and tells the connection's
/// [`Tracker`] when the first byte arrives.
pub struct Socket<T> {
    io: T,
    _slot: Slot,
    /// Told of the first byte, then let go.
    unheard: Option<Arc<Tracker>>,
}

impl<T> Socket<T> {
    pub(super) fn new(io: T, slot: Slot) -> Self {
        Self {
            io,
            _slot: slot,
            unheard: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Tells `tracker` when the connection's first byte arrives.
    pub(super) fn heard_by(mut self, tracker: Arc<Tracker>) -> Self {
        self.unheard = Some(tracker);
        self
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Socket<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.unheard.is_some() && buf.filled().len() > before {
            if let Some(tracker) = self.unheard.take() {
                tracker.heard();
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Socket<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
