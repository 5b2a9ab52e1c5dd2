//! Destination writes shared by the admin API and the CLI: parse the flat shape, check
//! everything that can be checked (fields, name, the `[security]` bounds), test the
//! connection when delivery could break, then store (as overrides, for a destination of the
//! config file). Nothing with a side effect (the test
//! may create a file) runs before every check passed. Applying the change is the caller's
//! job.

use gatecast_store::{
    restore_masked, DestinationPatch, DestinationRecord, OverridesPatch, Source, Store, StoreError,
};
use gatecast_telemetry::probe::{self, ProbeOptions, ProbeReport};
use gatecast_telemetry::{destinations, DestinationConfig};
use serde_json::{Map, Value};

use super::AdminError;
use crate::control::{bridge, Guard};

/// Creates an API-owned destination from the flat shape, after a passing test unless skipped.
pub async fn create(
    store: &Store,
    guard: &Guard,
    flat: Value,
    actor: &str,
    skip_test: bool,
) -> Result<(DestinationRecord, Option<ProbeReport>), AdminError> {
    let config = bridge::parse_flat(flat).map_err(AdminError::Field)?;
    let record = bridge::to_record(&config, Source::Api);
    record.validate()?;
    // A taken name fails now, before a connection test it could not use.
    if let Some(existing) = store.get_destination(&config.name).await? {
        return Err(match existing.source {
            Source::File => StoreError::ReadOnly {
                name: existing.name,
            },
            Source::Api => StoreError::AlreadyExists {
                what: "destination",
                name: existing.name,
            },
        }
        .into());
    }
    guard
        .check_runtime(&config, |_| true)
        .await
        .map_err(AdminError::Field)?;
    let test = gate_on_test(&config, &guard.probe_options(Source::Api), skip_test).await?;
    let saved = store.create_destination(record, actor).await?;
    Ok((saved, test))
}

/// The fields of a config-file destination that can be changed at runtime, as overrides.
const OVERRIDABLE: [&str; 2] = ["privacy_mode", "enabled"];

/// Applies a partial update in the flat shape. A change to how the destination is reached
/// (endpoint, DSN, headers...) re-runs the test unless skipped.
///
/// On a config-file destination only `privacy_mode` and `enabled` may be given: they become
/// runtime overrides, and `null` clears one (back to the file's value). Any other field is
/// refused as read-only, and nothing is saved.
pub async fn update(
    store: &Store,
    guard: &Guard,
    name: &str,
    patch: &Map<String, Value>,
    actor: &str,
    skip_test: bool,
) -> Result<(DestinationRecord, Option<ProbeReport>), AdminError> {
    if let Some(new_name) = patch.get("name") {
        if new_name.as_str() != Some(name) {
            return Err(AdminError::Field(bridge::FieldError {
                path: "name".into(),
                message: "cannot be changed; create a new destination instead".into(),
            }));
        }
    }
    let current = store
        .get_destination(name)
        .await?
        .ok_or_else(|| AdminError::NotFound {
            what: "destination",
            name: name.to_owned(),
        })?;
    if current.source == Source::File {
        let change = overrides_patch(name, patch)?;
        let saved = store.set_destination_overrides(name, change, actor).await?;
        return Ok((saved, None));
    }
    if let Some(field) = OVERRIDABLE
        .iter()
        .find(|f| patch.get(**f).is_some_and(Value::is_null))
    {
        return Err(AdminError::Field(bridge::FieldError {
            path: (*field).into(),
            message: "null resets a config-file destination's override; this destination was \
                      created at runtime and has no file value: send true or false"
                .into(),
        }));
    }
    let before = bridge::flat_json(&current);
    let merged = merge(&before, patch);
    let config = bridge::parse_flat(Value::Object(merged.clone())).map_err(AdminError::Field)?;
    let record = bridge::to_record(&config, Source::Api);
    record.validate()?;
    let changed = |field: &str| before.get(field) != merged.get(field);
    guard
        .check_runtime(&config, changed)
        .await
        .map_err(AdminError::Field)?;
    // The type says which of its fields decide how it is reached.
    let test = if destinations::needs_retest(config.kind.as_str(), changed) {
        gate_on_test(&config, &guard.probe_options(Source::Api), skip_test).await?
    } else {
        None
    };
    let changes = DestinationPatch {
        kind: Some(record.kind),
        config: Some(record.config),
        enabled: Some(record.enabled),
        privacy_mode: Some(record.privacy_mode),
        sampling_rate: Some(record.sampling_rate),
        filters: Some(record.filters),
    };
    let saved = store.update_destination(name, changes, actor).await?;
    Ok((saved, test))
}

/// Clears every override of a config-file destination: it runs as the file says again.
pub async fn reset_overrides(
    store: &Store,
    name: &str,
    actor: &str,
) -> Result<DestinationRecord, AdminError> {
    Ok(store
        .set_destination_overrides(name, OverridesPatch::RESET, actor)
        .await?)
}

/// A PATCH of a config-file destination as overrides: `true`/`false` sets one, `null` clears
/// it; a field other than the switches (and an unchanged `name`) makes it read-only.
fn overrides_patch(name: &str, patch: &Map<String, Value>) -> Result<OverridesPatch, AdminError> {
    let mut change = OverridesPatch::default();
    for (field, value) in patch {
        let slot = match field.as_str() {
            "name" => continue,
            "privacy_mode" => &mut change.privacy_mode,
            "enabled" => &mut change.enabled,
            _ => {
                return Err(StoreError::ReadOnly {
                    name: name.to_owned(),
                }
                .into())
            }
        };
        *slot = Some(match value {
            Value::Bool(on) => Some(*on),
            Value::Null => None,
            _ => {
                return Err(AdminError::Field(bridge::FieldError {
                    path: field.clone(),
                    message:
                        "must be true or false, or null to reset it to the config file's value"
                            .into(),
                }))
            }
        });
    }
    Ok(change)
}

/// Runs the connection test unless skipped; a failure stops the write.
pub async fn gate_on_test(
    config: &DestinationConfig,
    options: &ProbeOptions,
    skip: bool,
) -> Result<Option<ProbeReport>, AdminError> {
    if skip {
        return Ok(None);
    }
    let report = probe::test_connection_with(config, options).await;
    if report.passed {
        Ok(Some(report))
    } else {
        Err(AdminError::TestFailed(Box::new(report)))
    }
}

/// Top-level fields of `patch` replace those of `base`. A secret sent back exactly as reads
/// show it (`****1a2b`) keeps the stored value, by the store's own rule, so the connection
/// test runs with the real secret.
fn merge(base: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = base.clone();
    out.extend(patch.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut merged = Value::Object(out);
    restore_masked(&mut merged, &Value::Object(base.clone()));
    match merged {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masked_secrets_sent_back_keep_the_stored_value() {
        let base = json!({"dsn": "https://k@h/1", "headers": {"authorization": "Bearer s3cret", "x": "1"}, "privacy_mode": false});
        let patch = json!({"dsn": "****@h/1", "headers": {"authorization": "****cret", "y": "2"}, "privacy_mode": true});
        let out = merge(base.as_object().unwrap(), patch.as_object().unwrap());
        assert_eq!(out["dsn"], "https://k@h/1");
        assert_eq!(
            out["headers"],
            json!({"authorization": "Bearer s3cret", "y": "2"})
        );
        assert_eq!(out["privacy_mode"], true);
    }

    #[test]
    fn a_config_file_destination_takes_only_its_switches() {
        let patch = |v: Value| overrides_patch("f", v.as_object().unwrap());
        let change = patch(json!({"name": "f", "privacy_mode": true, "enabled": null})).unwrap();
        assert_eq!(
            change,
            OverridesPatch {
                privacy_mode: Some(Some(true)),
                enabled: Some(None)
            }
        );
        assert!(matches!(
            patch(json!({"privacy_mode": true, "sampling_rate": 0.5})),
            Err(AdminError::Store(StoreError::ReadOnly { .. }))
        ));
        assert!(matches!(
            patch(json!({"enabled": "yes"})),
            Err(AdminError::Field(f)) if f.path == "enabled"
        ));
    }
}
