use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::mask_config;
use crate::Budget;
use crate::StoreError;

/// Where a destination was declared, which decides who may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Declared in the config file; the file is the truth, so API writes are refused, except
    /// for [`Overrides`] of `privacy_mode` and `enabled`.
    File,
    /// Created through the admin API or the CLI.
    #[default]
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "file" => Some(Source::File),
            "api" => Some(Source::Api),
            _ => None,
        }
    }
}

/// One telemetry destination. `config` holds the type-specific fields; the store does not
/// interpret them beyond finding the secrets in it, so new destination types need no migration.
///
/// Defaults let an admin API body omit everything but `name`, `type` and `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRecord {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub privacy_mode: bool,
    #[serde(default = "default_sampling_rate")]
    pub sampling_rate: f64,
    #[serde(default = "empty_object")]
    pub filters: Value,
    #[serde(default)]
    pub source: Source,
    /// Runtime overrides, only ever set on config-file destinations. `enabled` and
    /// `privacy_mode` above stay the file's values; the effective ones are
    /// [`DestinationRecord::effective_enabled`] and [`DestinationRecord::effective_privacy_mode`].
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
}

impl DestinationRecord {
    /// The checks a write applies (name, type, sampling rate...), for a caller that must
    /// refuse a record before acting on it: the admin API runs a connection test, which may
    /// create a file, before it saves.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_record(&mut self.clone())
    }

    /// The record as it may be shown to a person or returned by the admin API: each secret
    /// becomes `****` plus its last four characters.
    pub fn masked(&self) -> DestinationRecord {
        DestinationRecord {
            config: mask_config(&self.config),
            ..self.clone()
        }
    }

    /// Whether the gateway delivers here: the override if one is set, else the declared value.
    pub fn effective_enabled(&self) -> bool {
        self.overrides.enabled.unwrap_or(self.enabled)
    }

    /// Whether content is stripped here: the override if one is set, else the declared value.
    pub fn effective_privacy_mode(&self) -> bool {
        self.overrides.privacy_mode.unwrap_or(self.privacy_mode)
    }
}

/// The switches of a config-file destination changed at runtime (admin API, CLI). They are kept
/// in the database, so every replica applies them and a restart keeps them; `None` means the
/// file's value applies. Only an explicit reset clears them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_mode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self == &Overrides::default()
    }
}

/// A change to [`Overrides`]: per field, `None` leaves it, `Some(Some(v))` sets it and
/// `Some(None)` clears it, back to the file's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverridesPatch {
    pub privacy_mode: Option<Option<bool>>,
    pub enabled: Option<Option<bool>>,
}

impl OverridesPatch {
    /// Clears every override.
    pub const RESET: OverridesPatch = OverridesPatch {
        privacy_mode: Some(None),
        enabled: Some(None),
    };

    pub fn is_empty(&self) -> bool {
        self == &OverridesPatch::default()
    }

    pub(crate) fn apply(&self, current: Overrides) -> Overrides {
        Overrides {
            privacy_mode: self.privacy_mode.unwrap_or(current.privacy_mode),
            enabled: self.enabled.unwrap_or(current.enabled),
        }
    }
}

/// A running gateway as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub id: String,
    /// The config version this replica runs.
    pub applied_version: i64,
    pub started_at: DateTime<Utc>,
    /// By the replica's clock.
    pub last_seen: DateTime<Utc>,
}

/// A partial update (`PATCH`): `None` leaves the field as it is. `config` replaces the whole
/// config object; secret values sent back masked (`****1a2b`) keep the stored secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_mode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
}

impl DestinationPatch {
    pub fn is_empty(&self) -> bool {
        self == &DestinationPatch::default()
    }
}

/// A virtual key as listed; the hash and the key itself are never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// First 8 characters of the key (`gk_` plus 5), enough to recognise it in a list.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key's spending cap; `None`: it may spend without limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl KeyInfo {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// One change to the runtime configuration. `detail` never contains secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn default_true() -> bool {
    true
}

fn default_sampling_rate() -> f64 {
    1.0
}

/// Lowest sampling rate accepted (DESIGN §5): lower values would keep nothing in practice.
pub const MIN_SAMPLING_RATE: f64 = 0.0001;

/// Names go into admin URLs (`/admin/v1/destinations/{name}`) and CLI arguments, so they are
/// limited to characters that need no quoting in either.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 128 {
        return Err(StoreError::invalid(
            field,
            "must be 1 to 128 characters long",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(StoreError::invalid(
            field,
            format!("`{name}` may only contain letters, digits, `-`, `_`, `.` and `:`"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_record(rec: &mut DestinationRecord) -> Result<(), StoreError> {
    validate_name("destination name", &rec.name)?;
    let prefix = format!("destination `{}`", rec.name);
    if rec.kind.trim().is_empty() {
        return Err(StoreError::invalid(
            format!("{prefix}: type"),
            "must not be empty",
        ));
    }
    if !rec.config.is_object() {
        return Err(StoreError::invalid(
            format!("{prefix}: config"),
            "must be a JSON object",
        ));
    }
    if rec.filters.is_null() {
        rec.filters = empty_object();
    }
    if !rec.filters.is_object() {
        return Err(StoreError::invalid(
            format!("{prefix}: filters"),
            "must be a JSON object",
        ));
    }
    if !(MIN_SAMPLING_RATE..=1.0).contains(&rec.sampling_rate) {
        return Err(StoreError::invalid(
            format!("{prefix}: sampling_rate"),
            format!(
                "{} is out of range: must be between {MIN_SAMPLING_RATE} and 1",
                rec.sampling_rate
            ),
        ));
    }
    Ok(())
}
