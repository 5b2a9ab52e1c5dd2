//! `gatecast keys`.

use gatecast_store::KeyInfo;

use super::{actor, block_on, open};
use crate::cli::{BudgetPeriodArg, KeysCommand};
use crate::error::GatewayError;
use crate::spend::report;

pub fn run(command: KeysCommand) -> Result<(), GatewayError> {
    block_on(async move {
        match command {
            KeysCommand::Create {
                name,
                budget_usd,
                budget_period,
                target,
            } => {
                let budget = budget_of(
                    budget_usd,
                    budget_period,
                    ("--budget-usd", "--budget-period"),
                )?;
                let (_, store) = open(&target).await?;
                let (info, key) = store
                    .create_key_with_budget(&name, budget, &actor())
                    .await?;
                println!("{key}");
                eprintln!(
                    "created key `{}` ({}...){}. This is the only time it is shown: store it now.",
                    info.name,
                    info.prefix,
                    budget_text(&info)
                        .map(|b| format!(" with a budget of {b}"))
                        .unwrap_or_default()
                );
                store.close().await;
            }
            KeysCommand::Budget {
                name,
                usd,
                period,
                clear,
                target,
            } => {
                let budget = if clear {
                    None
                } else {
                    budget_of(usd, period, ("--usd", "--period"))?
                };
                let (_, store) = open(&target).await?;
                let info = store.set_key_budget(&name, budget, &actor()).await?;
                match budget_text(&info) {
                    Some(b) => println!("key `{}` now has a budget of {b}", info.name),
                    None => println!("key `{}` has no budget now", info.name),
                }
                store.close().await;
            }
            KeysCommand::List { target, json } => {
                let (_, store) = open(&target).await?;
                let keys = store.list_keys().await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&keys).unwrap_or_default()
                    );
                } else {
                    println!(
                        "{:<24} {:<10} {:<26} {:<20} STATUS",
                        "NAME", "PREFIX", "CREATED", "BUDGET"
                    );
                    for k in &keys {
                        let status = match k.revoked_at {
                            Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M:%S")),
                            None => "active".into(),
                        };
                        println!(
                            "{:<24} {:<10} {:<26} {:<20} {status}",
                            k.name,
                            k.prefix,
                            k.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                            budget_text(k).unwrap_or_else(|| "-".into())
                        );
                    }
                }
                store.close().await;
            }
            KeysCommand::Revoke { name, target } => {
                let (_, store) = open(&target).await?;
                let info = store.revoke_key(&name, &actor()).await?;
                println!("revoked key `{}` ({}...)", info.name, info.prefix);
                store.close().await;
            }
        }
        Ok(())
    })
}

fn budget_of(
    usd: Option<f64>,
    period: Option<BudgetPeriodArg>,
    flags: (&str, &str),
) -> Result<Option<gatecast_store::Budget>, GatewayError> {
    report::parse_budget(usd, period.map(BudgetPeriodArg::as_str), flags)
        .map_err(|e| GatewayError::Failed(e.to_string()))
}

/// `$50.00 a day`, `$10.00 in total`.
fn budget_text(info: &KeyInfo) -> Option<String> {
    let b = info.budget?;
    let per = match b.period {
        gatecast_store::BudgetPeriod::Day => "a day",
        gatecast_store::BudgetPeriod::Week => "a week",
        gatecast_store::BudgetPeriod::Month => "a month",
        gatecast_store::BudgetPeriod::Total => "in total",
    };
    Some(format!("${:.2} {per}", b.usd))
}
