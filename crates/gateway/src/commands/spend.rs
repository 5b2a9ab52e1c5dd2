//! `gatecast spend`.

use super::{block_on, open};
use crate::cli::{SpendByArg, StoreTarget};
use crate::error::GatewayError;
use crate::spend::report;

pub fn run(
    since: Option<&str>,
    by: Option<SpendByArg>,
    json: bool,
    target: &StoreTarget,
) -> Result<(), GatewayError> {
    let since =
        report::parse_since("--since", since).map_err(|e| GatewayError::Failed(e.to_string()))?;
    let by = by.map(|b| match b {
        SpendByArg::Key => gatecast_store::SpendBy::Key,
        SpendByArg::User => gatecast_store::SpendBy::User,
        SpendByArg::Model => gatecast_store::SpendBy::Model,
        SpendByArg::Day => gatecast_store::SpendBy::Day,
    });
    block_on(async move {
        let (_, store) = open(target).await?;
        let rows = store.spend(since, by).await;
        store.close().await;
        let rows = rows?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report::json(&rows, since, by)).unwrap_or_default()
            );
        } else {
            print!("{}", report::table(&rows));
        }
        Ok(())
    })
}
