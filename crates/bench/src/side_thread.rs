//! A server the bench hosts itself (the OTLP sink, the TCP relay), on a thread and runtime of
//! its own.
//!
//! Sharing the load generator's thread would put the helper's work in front of the next
//! measured request and charge it to whatever is being measured.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use tokio::sync::oneshot;

pub struct SideThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SideThread {
    /// Runs `serve` on a new single-threaded runtime until it returns or this is dropped.
    /// Dropping the runtime closes every socket the server still holds.
    pub fn spawn<F, Fut>(name: &str, serve: F) -> Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("starting the runtime of {name}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = serve() => {}
                        _ = stopped => {}
                    }
                });
            })
            .with_context(|| format!("starting the thread of {name}"))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl SideThread {
    /// Binds a loopback port and runs `serve` on its listener on a thread of its own.
    pub fn serve_tcp<F, Fut>(name: &str, serve: F) -> Result<(SocketAddr, Self)>
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .with_context(|| format!("binding {name}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let thread = Self::spawn(name, move || async move {
            // Registering the socket needs the thread's own runtime, so it happens there.
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                serve(listener).await;
            }
        })?;
        Ok((addr, thread))
    }
}

impl Drop for SideThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
