//! Conversions between the config's flat destination shape and the store's record, which
//! keeps selection fields in columns and the type-specific rest in one JSON object.
//!
//! The admin API and the CLI speak the flat shape, so one set of field names serves the
//! config file, the API and the database.

use gatecast_store::{DestinationRecord, Source};
pub use gatecast_telemetry::destinations::FieldError;
use gatecast_telemetry::DestinationConfig;
use serde_json::{json, Map, Value};

/// Fields the store keeps in their own columns; everything else goes into `config`.
const COLUMNS: [&str; 6] = [
    "name",
    "type",
    "enabled",
    "privacy_mode",
    "sampling_rate",
    "filters",
];

pub fn to_record(config: &DestinationConfig, source: Source) -> DestinationRecord {
    let mut flat = config.to_flat().unwrap_or_default();
    let mut take = |k: &str| flat.remove(k);
    let filters = take("filters").unwrap_or_else(|| Value::Object(Map::new()));
    for k in COLUMNS {
        take(k);
    }
    DestinationRecord {
        id: String::new(),
        name: config.name.clone(),
        kind: config.kind.as_str().to_owned(),
        config: Value::Object(flat),
        enabled: config.enabled,
        privacy_mode: config.privacy_mode,
        sampling_rate: config.sampling_rate,
        filters,
        source,
        overrides: Default::default(),
    }
}

/// The flat JSON of a record with its effective switches (overrides applied), as the gateway
/// runs it and the API shows it (call on a masked record for reads).
pub fn flat_json(record: &DestinationRecord) -> Map<String, Value> {
    let mut flat = match &record.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    flat.insert("name".into(), record.name.clone().into());
    flat.insert("type".into(), record.kind.clone().into());
    flat.insert("enabled".into(), record.effective_enabled().into());
    flat.insert(
        "privacy_mode".into(),
        record.effective_privacy_mode().into(),
    );
    flat.insert("sampling_rate".into(), record.sampling_rate.into());
    let filters_empty = record.filters.as_object().is_some_and(Map::is_empty);
    if !record.filters.is_null() && !filters_empty {
        flat.insert("filters".into(), record.filters.clone());
    }
    flat
}

/// What a read shows (admin API, `destinations list --json`): the flat shape with secrets
/// masked and the effective switches, where the destination came from, the `overrides` in
/// force and, for a config-file destination, the file's own values under `config_file`.
pub fn view(record: &DestinationRecord) -> Map<String, Value> {
    let mut flat = flat_json(&record.masked());
    flat.insert("source".into(), record.source.as_str().into());
    flat.insert("overrides".into(), json!(record.overrides));
    if record.source == Source::File {
        flat.insert(
            "config_file".into(),
            json!({"enabled": record.enabled, "privacy_mode": record.privacy_mode}),
        );
    }
    flat
}

/// The config a gateway runs for `record`: overrides applied.
pub fn from_record(record: &DestinationRecord) -> Result<DestinationConfig, FieldError> {
    parse_flat(Value::Object(flat_json(record)))
}

/// Parses the flat shape and validates it, with errors naming the field (`body` for the
/// object as a whole).
pub fn parse_flat(value: Value) -> Result<DestinationConfig, FieldError> {
    let at_body = |e: FieldError| {
        if e.path.is_empty() {
            FieldError::new("body", e.message)
        } else {
            e
        }
    };
    let Value::Object(flat) = value else {
        return Err(FieldError::new("body", "expected a JSON object"));
    };
    let config = DestinationConfig::from_flat(flat).map_err(at_body)?;
    config.check().map_err(at_body)?;
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_field() {
        let config = parse_flat(json!({
            "name": "collector", "type": "otlp", "endpoint": "http://127.0.0.1:4318/v1/traces",
            "protocol": "http/json", "compression": "none",
            "headers": {"authorization": "Bearer t"}, "privacy_mode": true,
            "sampling_rate": 0.5, "enabled": false, "flush_interval_ms": 50,
            "resource_attributes": {"deployment.environment.name": "prod"},
            "filters": {"include_keys": ["team-a"], "exclude_keys": [], "groups": []}
        }))
        .unwrap();
        let record = to_record(&config, Source::Api);
        assert_eq!(record.kind, "otlp");
        assert!(record.privacy_mode && !record.enabled);
        assert_eq!(record.config["headers"]["authorization"], "Bearer t");
        assert!(
            record.config.get("privacy_mode").is_none(),
            "kept in its column"
        );
        assert!(record.config.get("name").is_none());
        assert_eq!(from_record(&record).unwrap(), config);
    }

    #[test]
    fn overrides_decide_the_running_config_and_show_beside_the_files_values() {
        let config = parse_flat(json!({"name": "f", "type": "file", "path": "t.jsonl"})).unwrap();
        let mut record = to_record(&config, Source::File);
        assert!(record.overrides.is_empty());
        record.overrides.privacy_mode = Some(true);
        record.overrides.enabled = Some(false);
        let running = from_record(&record).unwrap();
        assert!(running.privacy_mode && !running.enabled);
        let shown = view(&record);
        assert_eq!(shown["privacy_mode"], true);
        assert_eq!(shown["enabled"], false);
        assert_eq!(
            shown["config_file"],
            json!({"privacy_mode": false, "enabled": true})
        );
        assert_eq!(
            shown["overrides"],
            json!({"privacy_mode": true, "enabled": false})
        );
        let api = view(&to_record(&config, Source::Api));
        assert_eq!(api["overrides"], json!({}));
        assert!(api.get("config_file").is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_flat(json!({"name": "x", "type": "otlp", "endpoint": 5})).unwrap_err();
        assert_eq!(e.path, "endpoint");
        let e = parse_flat(json!({"name": "x", "type": "kafka"})).unwrap_err();
        assert_eq!(e.path, "type");
        let e = parse_flat(json!({"name": "x", "type": "file", "path": "p", "sampling_rate": 2.0}))
            .unwrap_err();
        assert_eq!(e.path, "sampling_rate", "{e}");
        let e = parse_flat(json!({"name": "x", "type": "file", "bogus": 1})).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
    }
}
