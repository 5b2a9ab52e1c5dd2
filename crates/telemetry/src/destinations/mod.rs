//! Where traces go. A destination is the settings every type shares (name, switches,
//! sampling, filters, batching, queue, timeout, spool) plus one [`DestinationKind`]: the
//! module of its type (`file`, `sentry`, `otlp`, `webhook`) owns the type's fields, their
//! validation, the sink it builds and how its connection test judges it. `http`, `grpc`,
//! `resolve`, `host_policy`, `reply` and `sentry_dsn` are the transports and helpers the
//! types share; `sink` is the seam the pipelines call.
//!
//! The flat shape (the config file's `[[destinations]]`, the admin API's bodies, the store's
//! rows) is read in two steps: the common keys first, then the type's struct from the rest,
//! so each error names its exact field.

pub mod fields;
pub mod file;
pub mod grpc;
pub mod host_policy;
pub mod http;
pub mod otlp;
pub mod reply;
pub mod resolve;
pub mod sentry;
pub mod sentry_dsn;
pub mod sink;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::TelemetryError;
pub use fields::{Compression, FieldError, FieldSpec, Flag, Secret};
pub use file::FileConfig;
pub use host_policy::HostPolicy;
pub use otlp::{OtlpConfig, Protocol};
pub use sentry::SentryConfig;
pub use sink::{EncodedBatch, Encoding, ExportError, ExportErrorKind, Sink, Transport};
pub use webhook::{WebhookConfig, WebhookMethod};

/// A destination's type and the settings only it has: the one switch over the types.
#[derive(Debug, Clone, PartialEq)]
pub enum DestinationKind {
    File(FileConfig),
    Sentry(SentryConfig),
    Otlp(OtlpConfig),
    Webhook(WebhookConfig),
}

/// Every type, by the name the flat shape's `type` gives, in the order errors list them.
pub static TYPES: &[&TypeInfo] = &[&file::INFO, &sentry::INFO, &otlp::INFO, &webhook::INFO];

impl DestinationKind {
    /// The registry: the type's module, for everything the type decides.
    pub fn module(&self) -> &dyn DestinationType {
        match self {
            DestinationKind::File(c) => c,
            DestinationKind::Sentry(c) => c,
            DestinationKind::Otlp(c) => c,
            DestinationKind::Webhook(c) => c,
        }
    }

    /// The type's name: `file`, `sentry`, `otlp` or `webhook`.
    pub fn as_str(&self) -> &'static str {
        self.module().info().name
    }

    /// The type's own fields from the flat shape's keys that are not common settings. Keys
    /// another type declares are left out, as the flat shape always allowed: a stored row
    /// whose type was changed keeps the old type's keys. A key no type declares is refused.
    pub fn parse(name: &str, mut rest: Map<String, Value>) -> Result<Self, FieldError> {
        let info = TypeInfo::named(name).ok_or_else(|| {
            let names: Vec<String> = TYPES.iter().map(|t| format!("`{}`", t.name)).collect();
            FieldError::new(
                "type",
                format!(
                    "unknown variant `{name}`, expected one of {}",
                    names.join(", ")
                ),
            )
        })?;
        let own = |k: &str| info.fields.iter().any(|f| f.name == k);
        let some_types = |k: &str| TYPES.iter().any(|t| t.fields.iter().any(|f| f.name == k));
        rest.retain(|k, _| own(k) || !some_types(k));
        if let Some(unknown) = rest.keys().find(|k| !own(k)) {
            let known: Vec<String> = COMMON_FIELDS
                .iter()
                .chain(info.fields.iter().map(|f| &f.name))
                .map(|n| format!("`{n}`"))
                .collect();
            return Err(FieldError::new(
                "",
                format!(
                    "unknown field `{unknown}` for a {name} destination, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        (info.parse)(rest)
    }
}

/// What a destination type knows about itself. Each type's module implements it; nothing
/// outside the module matches on the type.
pub trait DestinationType: std::fmt::Debug + Send + Sync {
    fn info(&self) -> &'static TypeInfo;

    /// The type's keys of the flat shape (without `type`).
    fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error>;

    /// Checks what serde cannot; the error names the field.
    fn validate(&self) -> Result<(), FieldError>;

    /// The URL a network destination sends to, and the field it comes from, for the host
    /// policy. `None` for a destination that sends nowhere.
    fn target(&self) -> Option<Target> {
        None
    }

    /// The local file a destination writes, and its field, for `[security]`'s directory.
    fn local_file(&self) -> Option<(&'static str, &Path)> {
        None
    }

    /// The sink, connecting only where `ctx.hosts` allows, and how a connection test proves
    /// it works.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Built, BuildError>;

    /// How spans are dressed for this destination.
    fn flavor(&self) -> Flavor {
        Flavor::Standard
    }

    /// Values of the settings that must never reach a probe report (DSN keys, header
    /// values, URL credentials).
    fn secrets(&self) -> Vec<String>;

    /// The settings with relative paths taken against `base`, when the type holds any.
    fn relative_to(&self, _base: &Path) -> Option<DestinationKind> {
        None
    }
}

/// A type's name, its fields and how its struct is read: one entry of [`TYPES`].
#[derive(Debug)]
pub struct TypeInfo {
    pub name: &'static str,
    pub fields: &'static [FieldSpec],
    pub parse: fn(Map<String, Value>) -> Result<DestinationKind, FieldError>,
}

impl TypeInfo {
    pub fn named(name: &str) -> Option<&'static TypeInfo> {
        TYPES.iter().copied().find(|t| t.name == name)
    }
}

/// Every field some type declares, once per name, in registry order, with the types that
/// declare it (for the CLI's flags and the store's secret handling).
pub fn all_fields() -> Vec<(FieldSpec, Vec<&'static str>)> {
    let mut out: Vec<(FieldSpec, Vec<&'static str>)> = Vec::new();
    for info in TYPES {
        for field in info.fields {
            match out.iter_mut().find(|(f, _)| f.name == field.name) {
                Some((_, types)) => types.push(info.name),
                None => out.push((*field, vec![info.name])),
            }
        }
    }
    out
}

/// Whether an update must re-run the connection test: the type changed, or one of the
/// type's fields that decide how it is reached did.
pub fn needs_retest(kind: &str, changed: impl Fn(&str) -> bool) -> bool {
    changed("type")
        || TypeInfo::named(kind)
            .is_some_and(|t| t.fields.iter().any(|f| f.needs_retest && changed(f.name)))
}

/// How spans are dressed for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The GenAI conventions alone.
    Standard,
    /// Sentry's span ops and totals beside them.
    Sentry,
}

/// What [`DestinationType::build`] may use.
pub struct BuildContext<'a> {
    /// Per export attempt (a probe caps it).
    pub timeout: Duration,
    pub hosts: &'a Arc<HostPolicy>,
}

/// A destination's sink and the connection test that goes with it.
pub struct Built {
    pub sink: Transport,
    pub probe: ConnectionProbe,
}

/// How a connection test proves a destination works; `probe` runs it.
pub enum ConnectionProbe {
    /// Building the sink proved it (a file opened for append); nothing is sent.
    Opened { message: String },
    /// An empty export through the sink, marked `x-test-connection: true`.
    EmptyExport(ExportProbe),
}

/// The type's policy for judging its answers to an empty export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportProbe {
    /// A status besides 2xx that still proves the destination is reachable, and why.
    pub also_passes: Option<(u16, &'static str)>,
    /// Ask a second time after a pause: that answer decides.
    pub recheck: Option<Recheck>,
}

#[derive(Debug, Clone, Copy)]
pub struct Recheck {
    pub after: Duration,
    /// Statuses of the second answer that get `note`.
    pub refused: &'static [u16],
    pub note: &'static str,
}

/// Why a sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Field(FieldError),
    /// A local file could not be opened for append.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// When a destination's batches are written to its spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolMode {
    /// Only what the destination could not take after the retries, and what is left at
    /// shutdown. A crash loses what is still in memory (up to the whole retry window).
    #[default]
    OnFailure,
    /// Every batch before its first send, deleted once the destination takes it (or refuses it
    /// for good): a crash loses at most the records of the last flush interval.
    Always,
}

/// One destination as written in `[[destinations]]` or stored by the admin API: the common
/// settings, and `kind` (the flat shape's `type` and the type's own keys).
///
/// Serde's traits read and write the whole flat shape ([`from_flat`](Self::from_flat),
/// [`to_flat`](Self::to_flat)); the derive below (`remote = "Self"`) only makes the inherent
/// `DestinationConfig::deserialize`/`serialize` those two use for the common keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    #[serde(skip, default = "defaults::kind")]
    pub kind: DestinationKind,
    /// Strip content for every record sent here.
    #[serde(default)]
    pub privacy_mode: bool,
    /// Fraction of sessions kept, 0.0001..=1.
    #[serde(default = "defaults::sampling_rate")]
    pub sampling_rate: f64,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::flush_interval_ms")]
    pub flush_interval_ms: u64,
    #[serde(default = "defaults::max_batch_spans")]
    pub max_batch_spans: usize,
    /// Records waiting for this destination; beyond it new records are dropped and counted.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// Per export attempt.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    #[serde(default = "defaults::max_attribute_bytes")]
    pub max_attribute_bytes: usize,
    /// Which records this destination wants (DESIGN §5); empty means all.
    #[serde(default, skip_serializing_if = "is_default")]
    pub filters: crate::filter::Filters,
    /// Turns on the disk spool, under `<spool_dir>/<name>/`: batches that still fail after
    /// the retries, and records left at shutdown, are kept on disk and sent again later, so an
    /// outage longer than the retry window or a restart of the gateway loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Bounds the spool, so a long outage cannot fill the disk: beyond it the oldest batches
    /// are deleted and counted as dropped (`spool_full`).
    #[serde(default = "defaults::spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// `on_failure` (default) or `always`; `always` needs `spool_dir`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub spool_mode: SpoolMode,
}

/// The keys of the flat shape that are common settings; `type` picks the struct that reads
/// the rest.
pub const COMMON_FIELDS: [&str; 15] = [
    "name",
    "type",
    "privacy_mode",
    "sampling_rate",
    "enabled",
    "flush_interval_ms",
    "max_batch_spans",
    "queue_capacity",
    "timeout_ms",
    "resource_attributes",
    "max_attribute_bytes",
    "filters",
    "spool_dir",
    "spool_max_bytes",
    "spool_mode",
];

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

mod defaults {
    pub fn kind() -> super::DestinationKind {
        super::DestinationKind::File(super::FileConfig::default())
    }
    pub fn sampling_rate() -> f64 {
        1.0
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn flush_interval_ms() -> u64 {
        1000
    }
    pub fn max_batch_spans() -> usize {
        512
    }
    pub fn queue_capacity() -> usize {
        2048
    }
    pub fn timeout_ms() -> u64 {
        10_000
    }
    pub fn max_attribute_bytes() -> usize {
        crate::limits::DEFAULT_MAX_ATTRIBUTE_BYTES
    }
    pub fn spool_max_bytes() -> u64 {
        256 * 1024 * 1024
    }
}

/// Smallest sampling rate a destination may use.
pub const MIN_SAMPLING_RATE: f64 = 0.0001;

/// Smallest spool a destination may configure: room for a few full batches.
pub const MIN_SPOOL_MAX_BYTES: u64 = 1024 * 1024;

impl<'de> Deserialize<'de> for DestinationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let flat = Map::<String, Value>::deserialize(deserializer)?;
        Self::from_flat(flat).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DestinationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_flat()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl DestinationConfig {
    /// A destination with every default, for code and tests that build configs directly.
    pub fn new(name: impl Into<String>, kind: impl Into<DestinationKind>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            privacy_mode: false,
            sampling_rate: defaults::sampling_rate(),
            enabled: defaults::enabled(),
            flush_interval_ms: defaults::flush_interval_ms(),
            max_batch_spans: defaults::max_batch_spans(),
            queue_capacity: defaults::queue_capacity(),
            timeout_ms: defaults::timeout_ms(),
            resource_attributes: BTreeMap::new(),
            max_attribute_bytes: defaults::max_attribute_bytes(),
            filters: Default::default(),
            spool_dir: None,
            spool_max_bytes: defaults::spool_max_bytes(),
            spool_mode: SpoolMode::OnFailure,
        }
    }

    /// A `file` destination with every default.
    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::new(name, FileConfig::new(path))
    }

    /// Reads the flat shape: the common keys, then the type's struct from the rest. The
    /// error's path is the key at fault (empty for the object as a whole).
    pub fn from_flat(mut flat: Map<String, Value>) -> Result<Self, FieldError> {
        let kind_name = match flat.remove("type") {
            None => return Err(FieldError::new("", "missing field `type`")),
            Some(value) => {
                String::deserialize(value).map_err(|e| FieldError::new("type", e.to_string()))?
            }
        };
        let (common, rest): (Map<String, Value>, Map<String, Value>) = flat
            .into_iter()
            .partition(|(k, _)| COMMON_FIELDS.contains(&k.as_str()));
        let mut track = serde_path_to_error::Track::new();
        let mut config = Self::deserialize(serde_path_to_error::Deserializer::new(
            Value::Object(common),
            &mut track,
        ))
        .map_err(|e| FieldError::from_serde(serde_path_to_error::Error::new(track.path(), e)))?;
        config.kind = DestinationKind::parse(&kind_name, rest)?;
        Ok(config)
    }

    /// The flat shape: the common keys, `type` and the type's own keys.
    pub fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let mut flat = match Self::serialize(self, serde_json::value::Serializer)? {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        flat.insert("type".into(), self.kind.as_str().into());
        flat.extend(self.kind.module().to_flat()?);
        Ok(flat)
    }

    /// Checks what serde cannot; the error names the field.
    pub fn check(&self) -> Result<(), FieldError> {
        let fail = |path: &str, message: String| Err(FieldError::new(path, message));
        if self.name.trim().is_empty() {
            return fail("name", "must not be empty".into());
        }
        if !(MIN_SAMPLING_RATE..=1.0).contains(&self.sampling_rate) {
            return fail(
                "sampling_rate",
                format!(
                    "must be between {MIN_SAMPLING_RATE} and 1, got {}",
                    self.sampling_rate
                ),
            );
        }
        for (field, value) in [
            ("max_batch_spans", self.max_batch_spans),
            ("queue_capacity", self.queue_capacity),
            ("max_attribute_bytes", self.max_attribute_bytes),
        ] {
            if value == 0 {
                return fail(field, "must be at least 1".into());
            }
        }
        if self.timeout_ms == 0 {
            return fail("timeout_ms", "must be at least 1".into());
        }
        if let Some(dir) = &self.spool_dir {
            if dir.as_os_str().is_empty() {
                return fail("spool_dir", "must not be empty".into());
            }
            if self.spool_max_bytes < MIN_SPOOL_MAX_BYTES {
                return fail(
                    "spool_max_bytes",
                    format!(
                        "must be at least {MIN_SPOOL_MAX_BYTES} (1 MiB), got {}",
                        self.spool_max_bytes
                    ),
                );
            }
        } else if self.spool_mode == SpoolMode::Always {
            return fail("spool_mode", "\"always\" needs spool_dir".into());
        }
        if let Err(e) = crate::filter::CompiledFilters::compile(&self.filters) {
            return fail(&e.path, e.message);
        }
        self.kind.module().validate()
    }

    /// [`check`](Self::check), as the error the broadcaster reports.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        self.check()
            .map_err(|e| TelemetryError::InvalidDestination {
                destination: self.name.clone(),
                message: e.to_string(),
            })
    }

    /// Builds the destination's sink, connecting only where `hosts` allows.
    pub fn build(&self, hosts: &Arc<HostPolicy>) -> Result<Built, TelemetryError> {
        let ctx = BuildContext {
            timeout: self.timeout(),
            hosts,
        };
        self.kind.module().build(&ctx).map_err(|e| match e {
            BuildError::Field(e) => TelemetryError::InvalidDestination {
                destination: self.name.clone(),
                message: e.to_string(),
            },
            BuildError::Io { path, source } => TelemetryError::Io { path, source },
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// See [`DestinationType::target`].
    pub fn target(&self) -> Option<Target> {
        self.kind.module().target()
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// Where a network destination sends: see [`DestinationType::target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The config field the URL comes from, for errors.
    pub field: &'static str,
    /// `None` when the field does not hold a URL (validation says why).
    pub url: Option<url::Url>,
}

/// The check each type's own tests run on an example that sets every field: the type is
/// registered in [`TYPES`], declares exactly the fields its struct has, none of them hides a
/// common setting, and the flat shape round-trips through the registry.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn assert_registered(example: DestinationKind) {
    let info = example.module().info();
    assert!(
        TYPES.iter().any(|t| std::ptr::eq(*t, info)),
        "`{}` is missing from TYPES",
        info.name
    );
    let keys: Vec<String> = example
        .module()
        .to_flat()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut declared: Vec<String> = info.fields.iter().map(|f| f.name.to_owned()).collect();
    declared.sort();
    assert_eq!(
        keys, declared,
        "{}: the example must set every field",
        info.name
    );
    assert!(
        info.fields.iter().all(|f| !COMMON_FIELDS.contains(&f.name)),
        "{}: a type field hides a common one",
        info.name
    );
    let config = DestinationConfig::new("d", example);
    let back = DestinationConfig::from_flat(config.to_flat().unwrap()).unwrap();
    assert_eq!(back, config);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_and_field_names() {
        let c: DestinationConfig =
            serde_json::from_str(r#"{"name": "f", "type": "file", "path": "/tmp/x.jsonl"}"#)
                .unwrap();
        assert_eq!(c, DestinationConfig::file("f", "/tmp/x.jsonl"));
        assert!(c.validate().is_ok());
        assert_eq!(c.flush_interval_ms, 1000);
        assert_eq!(c.max_batch_spans, 512);
        assert_eq!(c.queue_capacity, 2048);
        assert_eq!(c.timeout_ms, 10_000);
        assert_eq!(c.max_attribute_bytes, 65_536);
        assert!(c.enabled && !c.privacy_mode);

        let all: DestinationConfig = serde_json::from_str(
            r#"{"name": "s", "type": "sentry", "privacy_mode": true, "sampling_rate": 0.5,
                "enabled": false, "flush_interval_ms": 5, "max_batch_spans": 7, "queue_capacity": 9,
                "timeout_ms": 11, "resource_attributes": {"deployment.region": "eu"},
                "max_attribute_bytes": 100}"#,
        )
        .unwrap();
        assert_eq!(all.kind.as_str(), "sentry");
        assert_eq!(all.resource_attributes["deployment.region"], "eu");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(serde_json::from_str::<DestinationConfig>(
            r#"{"name": "f", "type": "file", "path": "x", "what": 1}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<DestinationConfig>(r#"{"name": "f", "type": "kafka"}"#).is_err()
        );
        let mut c = DestinationConfig::file("f", "x");
        c.sampling_rate = 0.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sampling_rate"));
        let mut c = DestinationConfig::file("f", "x");
        c.kind = DestinationKind::File(FileConfig { path: None });
        assert!(c.validate().unwrap_err().to_string().contains("path"));
        let mut c = DestinationConfig::file("f", "x");
        c.queue_capacity = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("queue_capacity"));
    }

    #[test]
    fn urls_must_be_http_and_errors_name_the_field() {
        let with = |kind: DestinationKind| {
            DestinationConfig::new("d", kind)
                .validate()
                .map_err(|e| e.to_string())
        };
        let sentry = |dsn: &str, otlp_endpoint: Option<&str>| {
            DestinationKind::Sentry(SentryConfig {
                dsn: Some(dsn.into()),
                otlp_endpoint: otlp_endpoint.map(Into::into),
                ..SentryConfig::default()
            })
        };
        let e = with(OtlpConfig::new("file:///etc/passwd").into());
        assert!(e
            .unwrap_err()
            .ends_with("endpoint: the scheme must be http or https, not `file`"),);
        let e = with(WebhookConfig::new("gopher://h:70/").into());
        assert!(e
            .unwrap_err()
            .contains("url: the scheme must be http or https"));
        let e = with(sentry(
            "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1",
            Some("ftp://h/"),
        ));
        assert!(e.unwrap_err().contains("otlp_endpoint: the scheme"));
        let e = with(sentry(
            "gopher://0123456789abcdef0123456789abcdef@h/1",
            None,
        ));
        assert!(e
            .unwrap_err()
            .contains("dsn: invalid DSN: the scheme must be http or https"));
        let e = with(sentry("file://0123456789abcdef0123456789abcdef@h/1", None));
        assert!(e.unwrap_err().contains("dsn: invalid DSN"));
        let e = with(OtlpConfig::new("collector:4318").into());
        assert!(e.unwrap_err().contains("endpoint: "));
        assert!(with(OtlpConfig::new("https://collector:4318/v1/traces").into()).is_ok());
    }

    #[test]
    fn targets_name_the_field_they_come_from() {
        let mut c = DestinationConfig::file("d", "x");
        assert_eq!(c.target(), None);
        let mut sentry =
            SentryConfig::new("https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42");
        c.kind = sentry.clone().into();
        let t = c.target().unwrap();
        assert_eq!(t.field, "dsn");
        assert_eq!(
            t.url.unwrap().as_str(),
            "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces"
        );
        sentry.otlp_endpoint = Some("https://eu.example/v1/traces".into());
        c.kind = sentry.into();
        assert_eq!(c.target().unwrap().field, "otlp_endpoint");
    }

    #[test]
    fn spool_fields_round_trip_and_are_validated() {
        let c: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_dir": "/var/spool/gatecast",
                "spool_max_bytes": 2097152}"#,
        )
        .unwrap();
        assert_eq!(
            c.spool_dir.as_deref(),
            Some(Path::new("/var/spool/gatecast"))
        );
        assert_eq!(c.spool_max_bytes, 2 * 1024 * 1024);
        assert!(c.validate().is_ok());
        let back: DestinationConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let plain = DestinationConfig::file("f", "x");
        assert_eq!(plain.spool_dir, None);
        assert_eq!(plain.spool_max_bytes, 256 * 1024 * 1024);
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("spool_dir").is_none());

        let mut small = c.clone();
        small.spool_max_bytes = 1000;
        let message = small.validate().unwrap_err().to_string();
        assert!(
            message.contains("spool_max_bytes: must be at least"),
            "{message}"
        );
        // Without a spool the bound is not used, so it is not checked.
        small.spool_dir = None;
        assert!(small.validate().is_ok());
    }

    #[test]
    fn spool_mode_defaults_to_on_failure_and_always_needs_a_spool() {
        let plain = DestinationConfig::file("f", "x");
        assert_eq!(plain.spool_mode, SpoolMode::OnFailure);
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("spool_mode")
            .is_none());
        let c: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_dir": "/s", "spool_mode": "always"}"#,
        )
        .unwrap();
        assert_eq!(c.spool_mode, SpoolMode::Always);
        assert!(c.validate().is_ok());
        let back: DestinationConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let on_failure: DestinationConfig = serde_json::from_str(
            r#"{"name": "f", "type": "file", "path": "x", "spool_mode": "on_failure"}"#,
        )
        .unwrap();
        assert_eq!(on_failure.spool_mode, SpoolMode::OnFailure);
        assert!(serde_json::from_str::<DestinationConfig>(
            r#"{"name": "f", "type": "file", "path": "x", "spool_mode": "sometimes"}"#
        )
        .is_err());

        let mut no_dir = c;
        no_dir.spool_dir = None;
        let message = no_dir.validate().unwrap_err().to_string();
        assert!(
            message.contains(r#"spool_mode: "always" needs spool_dir"#),
            "{message}"
        );
    }

    fn flat(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_bad_field_of_each_type_is_reported_at_its_exact_path() {
        let parsed = |v: Value| DestinationConfig::from_flat(flat(v)).map(|_| ());
        let cases = [
            (
                serde_json::json!({"name": "f", "type": "file", "path": 5}),
                "path",
            ),
            (
                serde_json::json!({"name": "s", "type": "sentry", "dsn": ["x"]}),
                "dsn",
            ),
            (
                serde_json::json!({"name": "s", "type": "sentry", "dsn": "d", "otlp_endpoint": 1}),
                "otlp_endpoint",
            ),
            (
                serde_json::json!({"name": "o", "type": "otlp", "protocol": "carrier-pigeon"}),
                "protocol",
            ),
            (
                serde_json::json!({"name": "o", "type": "otlp", "compression": "zstd"}),
                "compression",
            ),
            (
                serde_json::json!({"name": "o", "type": "otlp", "headers": {"x-a": 5}}),
                "headers.x-a",
            ),
            (
                serde_json::json!({"name": "w", "type": "webhook", "method": "GET"}),
                "method",
            ),
            (
                serde_json::json!({"name": "w", "type": "webhook", "url": false}),
                "url",
            ),
            (
                serde_json::json!({"name": "w", "type": "webhook", "sampling_rate": "all"}),
                "sampling_rate",
            ),
            (serde_json::json!({"name": "x", "type": "kafka"}), "type"),
        ];
        for (value, path) in cases {
            let e = parsed(value.clone()).unwrap_err();
            assert_eq!(e.path, path, "{value}: {e}");
        }

        // What serde cannot check is reported at the field too.
        let checked = |kind: DestinationKind| DestinationConfig::new("d", kind).check();
        let cases: [(DestinationKind, &str); 6] = [
            (FileConfig { path: None }.into(), "path"),
            (
                SentryConfig::new("https://short@o1.ingest.sentry.io/1").into(),
                "dsn",
            ),
            (
                SentryConfig {
                    otlp_endpoint: Some("ftp://h/".into()),
                    ..SentryConfig::new(
                        "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1",
                    )
                }
                .into(),
                "otlp_endpoint",
            ),
            (OtlpConfig::new("file:///etc/passwd").into(), "endpoint"),
            (WebhookConfig::new("gopher://h:70/").into(), "url"),
            (WebhookConfig::default().into(), "url"),
        ];
        for (kind, path) in cases {
            let e = checked(kind.clone()).unwrap_err();
            assert_eq!(e.path, path, "{kind:?}: {e}");
        }

        // A key no type has is refused, and the error says which keys this type takes; a key
        // of another type is left out (a row whose type was changed still loads).
        let e = parsed(serde_json::json!({"name": "f", "type": "file", "path": "p", "uri": "u"}))
            .unwrap_err();
        assert_eq!(e.path, "");
        assert!(
            e.message
                .contains("unknown field `uri` for a file destination"),
            "{e}"
        );
        let switched = DestinationConfig::from_flat(flat(serde_json::json!({"name": "w",
            "type": "webhook", "url": "http://h/", "endpoint": "http://c/", "protocol": "grpc"})))
        .unwrap();
        assert_eq!(switched.kind, WebhookConfig::new("http://h/").into());
        assert!(
            e.message.contains("`sampling_rate`") && e.message.contains("`path`"),
            "{e}"
        );
    }

    #[test]
    fn a_field_several_types_declare_is_read_the_same_everywhere() {
        for info in TYPES {
            for field in info.fields {
                for other in TYPES.iter().flat_map(|t| t.fields) {
                    if other.name == field.name {
                        let meaning = |f: &FieldSpec| (f.flag, f.secret, f.needs_retest);
                        assert_eq!(
                            meaning(other),
                            meaning(field),
                            "{} differs between types",
                            field.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_common_field_list_is_the_structs() {
        let mut c = DestinationConfig::file("f", "x");
        c.spool_dir = Some("/s".into());
        c.spool_mode = SpoolMode::Always;
        c.filters = serde_json::from_value(serde_json::json!({"include_keys": ["k"]})).unwrap();
        let mut keys: Vec<String> = c.to_flat().unwrap().keys().cloned().collect();
        keys.retain(|k| k != "path");
        let mut common: Vec<String> = COMMON_FIELDS.iter().map(|k| (*k).to_owned()).collect();
        common.sort();
        assert_eq!(keys, common);
    }
}
