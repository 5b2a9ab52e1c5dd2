//! The store commands of the CLI. They work on the database directly, so they need no
//! running gateway; running gateways pick the changes up through the config version.

mod destinations;
mod keys;

pub use destinations::run as destinations;
pub use keys::run as keys;

use gatecast_store::Store;

use crate::cli::StoreTarget;
use crate::config::Config;
use crate::control::open_store;
use crate::error::GatewayError;

/// A tokio runtime for one command: the CLI is synchronous at the top.
fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, GatewayError>>,
) -> Result<T, GatewayError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Serve)?
        .block_on(work)
}

async fn open(target: &StoreTarget) -> Result<(Config, Store), GatewayError> {
    let path = Config::locate(target.config.as_deref());
    let config = Config::load(&path)?;
    let store = open_store(&config.store, config.store.run_migrations).await?;
    Ok((config, store))
}

/// The audit log's "who" for CLI changes.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub fn migrate(target: &StoreTarget) -> Result<(), GatewayError> {
    block_on(async {
        let path = Config::locate(target.config.as_deref());
        let config = Config::load(&path)?;
        // Connecting with migrations on applies whatever is pending, then checks the key.
        let store = open_store(&config.store, true).await?;
        println!(
            "{}: migrations applied ({})",
            gatecast_store::redact_url(&config.store.url),
            store.backend()
        );
        store.close().await;
        Ok(())
    })
}
