//! The store commands of the CLI. They work on the database directly, so they need no
//! running gateway; running gateways pick the changes up through the config version.

mod destinations;
mod keys;
mod spend;

pub use destinations::run as destinations;
pub use keys::run as keys;
pub use spend::run as spend;

use gatecast_store::{Store, StoreError};

use crate::cli::{ConfigTarget, StoreTarget};
use crate::config::Config;
use crate::control::{open_existing_store, open_store};
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

/// Opens the config's store. Unless `--create` is given, a database that does not exist yet
/// is an error naming where it was looked for: a wrong `--config` or a relative path must not
/// silently start an empty database and report success.
async fn open(target: &StoreTarget) -> Result<(Config, Store), GatewayError> {
    let path = Config::locate(target.config.as_deref());
    let config = Config::load(&path)?;
    let migrate = config.store.run_migrations;
    let store = if target.create {
        open_store(&config.store, migrate).await?
    } else {
        open_existing_store(&config.store, migrate)
            .await
            .map_err(|e| match e {
                GatewayError::Store(StoreError::NoDatabase { location }) => {
                    GatewayError::Failed(format!(
                        "no Gatecast database at `{location}` (the `[store] url` of {}); nothing \
                         was created. Check --config, or create it with `gatecast migrate \
                         --config {}` or by adding --create",
                        path.display(),
                        path.display()
                    ))
                }
                other => other,
            })?
    };
    Ok((config, store))
}

/// The audit log's "who" for CLI changes.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub fn migrate(target: &ConfigTarget) -> Result<(), GatewayError> {
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
