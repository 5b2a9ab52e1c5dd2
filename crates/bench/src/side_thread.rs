//! A server the bench hosts itself (the OTLP sink, the TCP relay), on a thread and runtime of
//! its own.
//!
//! Sharing the load generator's thread would put the helper's work in front of the next
//! measured request and charge it to whatever is being measured.

use std::future::Future;
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
