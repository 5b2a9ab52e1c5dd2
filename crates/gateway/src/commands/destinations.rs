//! `gatecast destinations`.

use std::time::Duration;

use gatecast_store::{DestinationRecord, Source, Store};
use gatecast_telemetry::probe::{self, ProbeReport};
use gatecast_telemetry::DestinationConfig;
use serde_json::{json, Map, Value};

use super::{actor, block_on, open};
use crate::admin::ops;
use crate::cli::{ApplyWait, DestinationFields, DestinationsCommand, StoreTarget, Switch};
use crate::config::Config;
use crate::control::{bridge, heartbeat, Guard};
use crate::error::GatewayError;

pub fn run(command: DestinationsCommand) -> Result<(), GatewayError> {
    block_on(async move {
        match command {
            DestinationsCommand::List { target, json } => {
                let (_, store) = open(&target).await?;
                list(&store, json).await?;
                store.close().await;
            }
            DestinationsCommand::Add {
                name,
                fields,
                skip_test,
                target,
                wait,
            } => {
                let (config, store) = open(&target).await?;
                let guard = Guard::from_config(&config)?;
                let mut flat = fields_to_json(&fields)?;
                flat.insert("name".into(), json!(name));
                let (saved, test) =
                    ops::create(&store, &guard, Value::Object(flat), &actor(), skip_test).await?;
                print_test(test.as_ref());
                println!("added destination `{}` ({})", saved.name, saved.kind);
                report_apply(&store, &config, wait).await;
                store.close().await;
            }
            DestinationsCommand::Update {
                name,
                fields,
                skip_test,
                target,
                wait,
            } => {
                let patch = fields_to_json(&fields)?;
                if patch.is_empty() {
                    return Err(usage("nothing to change: give at least one field flag"));
                }
                let (config, store) = open(&target).await?;
                let guard = Guard::from_config(&config)?;
                let (saved, test) =
                    ops::update(&store, &guard, &name, &patch, &actor(), skip_test).await?;
                print_test(test.as_ref());
                println!("updated destination `{}`", saved.name);
                report_apply(&store, &config, wait).await;
                store.close().await;
            }
            DestinationsCommand::Remove { name, target, wait } => {
                let (config, store) = open(&target).await?;
                store.delete_destination(&name, &actor()).await?;
                println!("removed destination `{name}`");
                report_apply(&store, &config, wait).await;
                store.close().await;
            }
            DestinationsCommand::Privacy {
                name,
                state,
                target,
                wait,
            } => {
                let value = match state {
                    Switch::On => json!(true),
                    Switch::Off => json!(false),
                    Switch::Reset => Value::Null,
                };
                switch(&target, wait, &name, "privacy_mode", value).await?;
            }
            DestinationsCommand::Enable { name, target, wait } => {
                switch(&target, wait, &name, "enabled", json!(true)).await?;
            }
            DestinationsCommand::Disable { name, target, wait } => {
                switch(&target, wait, &name, "enabled", json!(false)).await?;
            }
            DestinationsCommand::Reset { name, target, wait } => {
                let (config, store) = open(&target).await?;
                let saved = ops::reset_overrides(&store, &name, &actor()).await?;
                println!(
                    "`{name}` follows the config file again: {}",
                    describe_switches(&saved)
                );
                report_apply(&store, &config, wait).await;
                store.close().await;
            }
            DestinationsCommand::Test { name, target } => {
                let (config, store) = open(&target).await?;
                let guard = Guard::from_config(&config)?;
                let all = known_destinations(&config, &store).await?;
                store.close().await;
                let chosen: Vec<&(DestinationConfig, Source)> = match &name {
                    Some(n) => vec![all
                        .iter()
                        .find(|(d, _)| &d.name == n)
                        .ok_or_else(|| not_found(n))?],
                    None => all.iter().collect(),
                };
                if chosen.is_empty() {
                    println!("no destinations configured");
                }
                let mut failed = 0;
                for (d, source) in chosen {
                    let report =
                        probe::test_connection_with(d, &guard.probe_options(*source)).await;
                    println!("{}", describe(&report));
                    failed += usize::from(!report.passed);
                }
                if failed > 0 {
                    return Err(GatewayError::Failed(format!(
                        "{failed} destination(s) failed the connection test"
                    )));
                }
            }
            DestinationsCommand::SendTestTrace { name, target } => {
                let (config, store) = open(&target).await?;
                let guard = Guard::from_config(&config)?;
                let all = known_destinations(&config, &store).await?;
                store.close().await;
                let (d, source) = all
                    .iter()
                    .find(|(d, _)| d.name == name)
                    .ok_or_else(|| not_found(&name))?;
                let report = probe::send_test_trace_with(
                    d,
                    &config.telemetry.service_name,
                    &guard.probe_options(*source),
                )
                .await;
                println!("{}", describe(&report));
                if !report.passed {
                    return Err(GatewayError::Failed(
                        "the test trace was not accepted".into(),
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Sets one switch (`privacy_mode` or `enabled`; `null` resets it) the way the admin API's
/// PATCH does: an update of a runtime destination, an override of a config-file one.
async fn switch(
    target: &StoreTarget,
    wait: ApplyWait,
    name: &str,
    field: &str,
    value: Value,
) -> Result<(), GatewayError> {
    let (config, store) = open(target).await?;
    let guard = Guard::from_config(&config)?;
    let mut patch = Map::new();
    patch.insert(field.into(), value);
    let (saved, _) = ops::update(&store, &guard, name, &patch, &actor(), true).await?;
    println!("`{name}`: {}", describe_switches(&saved));
    report_apply(&store, &config, wait).await;
    store.close().await;
    Ok(())
}

/// After a write: says whether the running gateways have applied it, waiting a few seconds
/// at most. The change is saved either way, so this never fails the command.
async fn report_apply(store: &Store, config: &Config, wait: ApplyWait) {
    if wait.no_wait {
        println!("saved; running gateways apply it within about a second (not waiting)");
        return;
    }
    let watch = Duration::from_millis(config.store.watch_interval_ms);
    let bound = (watch * 3).clamp(Duration::from_secs(5), Duration::from_secs(30));
    let reached = match store.config_version().await {
        Ok(version) => heartbeat::wait_until_applied(store, version, bound).await,
        Err(e) => Err(e),
    };
    match reached {
        Ok(reach) => println!("{}", reach.describe()),
        Err(e) => println!("saved; cannot tell whether running gateways applied it: {e}"),
    }
}

/// `privacy: on (override; file says off), enabled: true`.
fn describe_switches(r: &DestinationRecord) -> String {
    format!("privacy: {}, enabled: {}", privacy_cell(r), enabled_cell(r))
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn privacy_cell(r: &DestinationRecord) -> String {
    match r.overrides.privacy_mode {
        Some(on) => format!(
            "{} (override; file says {})",
            on_off(on),
            on_off(r.privacy_mode)
        ),
        None => on_off(r.privacy_mode).to_owned(),
    }
}

fn enabled_cell(r: &DestinationRecord) -> String {
    match r.overrides.enabled {
        Some(on) => format!("{on} (override; file says {})", r.enabled),
        None => r.enabled.to_string(),
    }
}

async fn list(store: &Store, json_out: bool) -> Result<(), GatewayError> {
    let records = store.list_destinations().await?;
    if json_out {
        let views: Vec<Value> = records
            .iter()
            .map(|r| Value::Object(bridge::view(r)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&views).unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            let masked = r.masked();
            // The field the type says it delivers to, as reads show it.
            let field = bridge::from_record(r).ok().and_then(|d| {
                d.target()
                    .map(|t| t.field)
                    .or_else(|| d.kind.module().local_file().map(|(f, _)| f))
            });
            let target = field
                .and_then(|k| masked.config.get(k).and_then(Value::as_str))
                .unwrap_or("-")
                .to_owned();
            [
                r.name.clone(),
                r.kind.clone(),
                r.source.as_str().to_owned(),
                enabled_cell(r),
                privacy_cell(r),
                r.sampling_rate.to_string(),
                target,
            ]
        })
        .collect();
    let header = [
        "NAME", "TYPE", "SOURCE", "ENABLED", "PRIVACY", "SAMPLING", "WHERE",
    ];
    // Columns as wide as their widest cell, so an override's note keeps the table aligned.
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$} "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    Ok(())
}

/// What a gateway started with this config would deliver to: the file's destinations as
/// written now (they may not be synced yet), plus those created through the API or CLI.
async fn known_destinations(
    config: &Config,
    store: &Store,
) -> Result<Vec<(DestinationConfig, Source)>, GatewayError> {
    let mut all: Vec<(DestinationConfig, Source)> = config
        .destinations
        .iter()
        .map(|d| (d.clone(), Source::File))
        .collect();
    for record in store.list_destinations().await? {
        if record.source == Source::Api && !all.iter().any(|(d, _)| d.name == record.name) {
            match bridge::from_record(&record) {
                Ok(d) => all.push((d, Source::Api)),
                Err(e) => eprintln!("skipping stored destination `{}`: {e}", record.name),
            }
        }
    }
    Ok(all)
}

fn fields_to_json(f: &DestinationFields) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    };
    put("type", &f.by_type.kind);
    for (field, value) in &f.by_type.values {
        out.insert((*field).into(), json!(value));
    }
    for (field, flag, given) in &f.by_type.pairs {
        let mut pairs = Map::new();
        for h in given {
            let (k, v) = h
                .split_once('=')
                .ok_or_else(|| usage(&format!("--{flag} `{h}`: expected NAME=VALUE")))?;
            pairs.insert(k.trim().to_owned(), json!(v.trim()));
        }
        out.insert((*field).into(), Value::Object(pairs));
    }
    if f.privacy || f.no_privacy {
        out.insert("privacy_mode".into(), json!(f.privacy));
    }
    if let Some(rate) = f.sampling_rate {
        out.insert("sampling_rate".into(), json!(rate));
    }
    if f.enable || f.disable {
        out.insert("enabled".into(), json!(f.enable));
    }
    for s in &f.set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| usage(&format!("--set `{s}`: expected FIELD=VALUE")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
        out.insert(k.trim().to_owned(), value);
    }
    Ok(out)
}

fn describe(report: &ProbeReport) -> String {
    let mut line = report.summary();
    if let Some(excerpt) = report.body_excerpt.as_deref().filter(|e| !e.is_empty()) {
        line.push_str(&format!("\n  reply: {excerpt}"));
    }
    line
}

fn print_test(report: Option<&ProbeReport>) {
    if let Some(r) = report {
        println!("{}", describe(r));
    }
}

fn usage(message: &str) -> GatewayError {
    GatewayError::Failed(message.to_owned())
}

fn not_found(name: &str) -> GatewayError {
    GatewayError::Failed(format!("destination `{name}` not found"))
}
