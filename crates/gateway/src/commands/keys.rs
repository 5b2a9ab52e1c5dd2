//! `gatecast keys`.

use super::{actor, block_on, open};
use crate::cli::KeysCommand;
use crate::error::GatewayError;

pub fn run(command: KeysCommand) -> Result<(), GatewayError> {
    block_on(async move {
        match command {
            KeysCommand::Create { name, target } => {
                let (_, store) = open(&target).await?;
                let (info, key) = store.create_key(&name, &actor()).await?;
                println!("{key}");
                eprintln!(
                    "created key `{}` ({}...). This is the only time it is shown: store it now.",
                    info.name, info.prefix
                );
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
                    println!("{:<24} {:<10} {:<26} STATUS", "NAME", "PREFIX", "CREATED");
                    for k in &keys {
                        let status = match k.revoked_at {
                            Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M:%S")),
                            None => "active".into(),
                        };
                        println!(
                            "{:<24} {:<10} {:<26} {status}",
                            k.name,
                            k.prefix,
                            k.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
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
