//! The TOML configuration: loading, `${ENV}` expansion, and errors that name their path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gatecast_proxy::{ModelAlias, ProviderConfig, Router};
use gatecast_telemetry::cost::{Overrides, PriceOverride, PriceTable, Pricer, ProviderPricing};
use gatecast_telemetry::destinations::{OtlpConfig, SentryConfig};
use gatecast_telemetry::DestinationConfig;
use serde::Deserialize;

use crate::error::GatewayError;

/// Where `gatecast serve` looks when neither `--config` nor `GATECAST_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/gatecast.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelAlias>,
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    /// `[prices."MODEL"]`: a model's price for every provider (docs/cost.md).
    #[serde(default)]
    pub prices: BTreeMap<String, PriceOverride>,
    /// Each provider's `prices` and `price_factor`, read apart from `[providers.NAME]`
    /// (see [`take_provider_pricing`]).
    #[serde(skip)]
    pub provider_pricing: BTreeMap<String, ProviderPricing>,
    #[serde(default)]
    pub spend: SpendConfig,
    /// `[responses]`: how Responses API turns are kept for `previous_response_id`.
    #[serde(default)]
    pub responses: crate::turns::ResponsesConfig,
}

/// `[pricing]`: where prices come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// A price file in the shipped table's format (docs/cost.md) that replaces it.
    #[serde(default)]
    pub table: Option<PathBuf>,
}

/// Spend per key, user, model and day, and budget enforcement (docs/cost.md, "Budgets").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendConfig {
    /// How often spend is written to the store and budgets are read back; it bounds how far
    /// past its budget a key can go.
    #[serde(default = "defaults::spend_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Distinct (day, key, user, model) entries held between two flushes; past it a new
    /// entry's spend is dropped and counted in `gatecast_spend_dropped_total`.
    #[serde(default = "defaults::spend_max_pending_entries")]
    pub max_pending_entries: usize,
}

impl Default for SpendConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: defaults::spend_flush_interval_ms(),
            max_pending_entries: defaults::spend_max_pending_entries(),
        }
    }
}

/// What destinations may reach. Destinations and their connection tests can be created at
/// runtime (admin API, CLI), so without bounds they make the gateway fetch any URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Hosts (`collector.internal`, `*.example.com`), `host:port`, IP addresses and CIDR
    /// ranges that runtime destinations may reach. Empty: any host but link-local and
    /// cloud-metadata addresses, which are refused unless listed here.
    #[serde(default)]
    pub destination_hosts: Vec<String>,
    /// The directory file destinations created at runtime must write inside; default the
    /// data directory.
    #[serde(default)]
    pub file_destination_dir: Option<PathBuf>,
}

/// The database every replica shares: runtime destinations, virtual keys, config version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created on first start) or `postgres://USER:PASSWORD@HOST/DB`.
    #[serde(default = "defaults::store_url")]
    pub url: String,
    /// Apply pending migrations at start; when false, run `gatecast migrate` first.
    #[serde(default = "defaults::enabled")]
    pub run_migrations: bool,
    /// Where `secret.key` is generated when `GATECAST_SECRET_KEY` is unset. Defaults to the
    /// SQLite file's directory, else `data`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// How often this replica polls the config version (Postgres also wakes it by NOTIFY).
    #[serde(default = "defaults::watch_interval_ms")]
    pub watch_interval_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: defaults::store_url(),
            run_migrations: true,
            data_dir: None,
            watch_interval_ms: defaults::watch_interval_ms(),
        }
    }
}

impl StoreConfig {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        self.sqlite_file()
            .as_deref()
            .and_then(Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("data"), Path::to_path_buf)
    }

    /// The SQLite database file the URL names; `None` for Postgres and in-memory databases.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        gatecast_store::sqlite_file(&self.url)
    }
}

/// Client authentication with virtual keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a virtual key even while none exists yet (every request is then refused until
    /// one is created). Otherwise keys are required as soon as the first one exists.
    #[serde(default)]
    pub require_key: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// The whole shutdown: in-flight requests first, then the telemetry queues with what is
    /// left (see `Gateway::serve`).
    #[serde(default = "defaults::shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Request threads, each with its own single-threaded runtime; 0 means one per core.
    #[serde(default)]
    pub worker_threads: usize,
    /// Microseconds a request thread keeps polling its sockets after a request starts,
    /// instead of sleeping; 0 turns busy polling off.
    #[serde(default)]
    pub busy_poll_us: u64,
    /// Browser origins (`https://app.example.com`) allowed to call the client API, with CORS;
    /// `"*"` allows every page. Any other browser request is refused (crate::guard).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// `Host` names the client API answers to while no virtual key exists, besides the
    /// listen address (DNS-rebinding protection); `"*"` turns the check off.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a new connection may take to deliver its first request head.
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long a request body may take to arrive once the gateway waits for it.
    #[serde(default = "defaults::body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request head.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Client connections held at once over all request threads; 0 derives it from the
    /// descriptor limit (see `crate::serve::fd_limit`).
    #[serde(default)]
    pub max_connections: usize,
}

/// Request threads are one per core by default; far more than cores only adds switching.
const MAX_WORKER_THREADS: usize = 1024;
/// Busy polling exists to bridge a provider's answer and a client's turnaround; a window of
/// more than a second would just be a spinning thread.
const MAX_BUSY_POLL_US: u64 = 1_000_000;

impl ServerConfig {
    /// How many request threads to start.
    pub fn request_threads(&self) -> usize {
        match self.worker_threads {
            0 => cores(),
            n => n,
        }
    }
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::listen(),
            max_body_bytes: defaults::max_body_bytes(),
            shutdown_timeout_ms: defaults::shutdown_timeout_ms(),
            worker_threads: 0,
            busy_poll_us: 0,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            header_read_timeout_ms: defaults::header_read_timeout_ms(),
            body_read_timeout_ms: defaults::body_read_timeout_ms(),
            idle_timeout_ms: defaults::idle_timeout_ms(),
            max_connections: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `service.name` on every exported resource.
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Most content bytes (messages, tools, output) one record keeps.
    #[serde(default = "defaults::max_capture_bytes")]
    pub max_capture_bytes: usize,
    /// Where batch conversion, encoding and compression run while delivery keeps up.
    #[serde(default)]
    pub delivery_priority: DeliveryPriority,
}

/// `idle` runs batch work on threads under `SCHED_IDLE`, taken back to normal priority when a
/// destination falls behind; `normal` keeps it on the control runtime's blocking pool, paced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryPriority {
    Idle,
    /// The default: on the benchmark VM `idle` gave no better p99 and a worse p99.9 and peak
    /// memory (docs/benchmarks.md).
    #[default]
    Normal,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: defaults::service_name(),
            max_capture_bytes: defaults::max_capture_bytes(),
            delivery_priority: DeliveryPriority::default(),
        }
    }
}

mod defaults {
    use std::net::{Ipv4Addr, SocketAddr};

    pub fn listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
    }
    pub fn max_body_bytes() -> usize {
        32 * 1024 * 1024
    }
    pub fn shutdown_timeout_ms() -> u64 {
        30_000
    }
    pub fn header_read_timeout_ms() -> u64 {
        10_000
    }
    pub fn body_read_timeout_ms() -> u64 {
        30_000
    }
    /// Longer than the 60 s that load balancers and proxies in front of a gateway keep an
    /// idle upstream connection by default (nginx, AWS ALB): the side that closes an idle
    /// connection should be the one that would send on it, or a request races the close.
    pub fn idle_timeout_ms() -> u64 {
        75_000
    }
    pub fn service_name() -> String {
        "gatecast".into()
    }
    pub fn max_capture_bytes() -> usize {
        1024 * 1024
    }
    pub fn store_url() -> String {
        gatecast_store::DEFAULT_DATABASE_URL.to_owned()
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn watch_interval_ms() -> u64 {
        1000
    }
    pub fn spend_flush_interval_ms() -> u64 {
        1000
    }
    pub fn spend_max_pending_entries() -> usize {
        10_000
    }
}

impl Config {
    /// Where file destinations created at runtime may write.
    pub fn file_destination_dir(&self) -> PathBuf {
        self.security
            .file_destination_dir
            .clone()
            .unwrap_or_else(|| self.store.data_dir())
    }

    /// `--config`, else `GATECAST_CONFIG`, else `config/gatecast.toml`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_path_buf();
        }
        match std::env::var_os("GATECAST_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Reads, validates and resolves a config file: relative paths in it (and the relative
    /// defaults) are taken against the file's own directory, see [`Config::resolve_paths`].
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|source| GatewayError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, |name| std::env::var(name).ok())?;
        config.resolve_paths(&config_dir(path));
        // The price file is read here too, so `check-config` reports a bad one.
        config.pricer()?;
        Ok(config)
    }

    /// Makes every relative path absolute against `base`: the SQLite file of `store.url`,
    /// `store.data_dir` (also when defaulted), and each destination's `path` and `spool_dir`.
    /// Without it a command run from another directory would open, or create, another
    /// database there.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.store.url = resolve_sqlite_url(&self.store.url, base);
        let data_dir = self.store.data_dir();
        self.store.data_dir = Some(base.join(data_dir));
        if let Some(table) = &mut self.pricing.table {
            *table = base.join(&*table);
        }
        for d in &mut self.destinations {
            if let Some(dir) = &mut d.spool_dir {
                *dir = base.join(&*dir);
            }
            if let Some(kind) = d.kind.module().relative_to(base) {
                d.kind = kind;
            }
        }
    }

    /// Parses and fully validates a config, expanding `${VAR}` with `env`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, GatewayError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            let at = e
                .span()
                .map(|s| line_of(text, s.start))
                .map(|l| format!("line {l}"))
                .unwrap_or_default();
            GatewayError::config(if at.is_empty() { "config".into() } else { at }, msg)
        })?;
        expand_env(&mut value, &mut String::new(), &env)?;
        // Read apart, so an error names the destination's field, not just the destination.
        let destinations = value.as_table_mut().and_then(|t| t.remove("destinations"));
        let provider_pricing = take_provider_pricing(&mut value)?;
        let providers = value.as_table_mut().and_then(|t| t.remove("providers"));
        let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            GatewayError::config(
                if path == "." { "config".into() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        config.providers = parse_providers(providers)?;
        config.destinations = parse_destinations(destinations)?;
        config.provider_pricing = provider_pricing;
        config.destinations.extend(env_destinations(&env)?);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), GatewayError> {
        if self.server.max_body_bytes == 0 {
            return Err(GatewayError::config(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.server.worker_threads > MAX_WORKER_THREADS {
            return Err(GatewayError::config(
                "server.worker_threads",
                format!("must be at most {MAX_WORKER_THREADS} (0 means one per core)"),
            ));
        }
        for (path, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
        ] {
            if value == 0 {
                return Err(GatewayError::config(path, "must be greater than 0"));
            }
        }
        if self.server.busy_poll_us > MAX_BUSY_POLL_US {
            return Err(GatewayError::config(
                "server.busy_poll_us",
                format!("must be at most {MAX_BUSY_POLL_US} (0 turns busy polling off)"),
            ));
        }
        crate::guard::Policy::new(&self.server)?;
        for (name, p) in &self.providers {
            if p.timeout_ms == 0 {
                return Err(GatewayError::config(
                    format!("providers.{name}.timeout_ms"),
                    "must be greater than 0",
                ));
            }
            for (key, value) in [
                ("max_response_bytes", p.max_response_bytes),
                ("max_sse_event_bytes", p.max_sse_event_bytes),
            ] {
                if value == 0 {
                    return Err(GatewayError::config(
                        format!("providers.{name}.{key}"),
                        "must be greater than 0",
                    ));
                }
            }
            if let Some(s) = p.retry_on.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(GatewayError::config(
                    format!("providers.{name}.retry_on"),
                    format!("{s} is not an HTTP status"),
                ));
            }
        }
        self.router()?;
        for (path, value) in [
            ("spend.flush_interval_ms", self.spend.flush_interval_ms),
            (
                "spend.max_pending_entries",
                self.spend.max_pending_entries as u64,
            ),
        ] {
            if value == 0 {
                return Err(GatewayError::config(path, "must be greater than 0"));
            }
        }
        self.price_overrides()
            .check()
            .map_err(|e| GatewayError::config(e.path, e.message))?;
        if self.store.watch_interval_ms == 0 {
            return Err(GatewayError::config(
                "store.watch_interval_ms",
                "must be greater than 0",
            ));
        }
        let url = &self.store.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(GatewayError::config(
                "store.url",
                format!(
                    "`{}` is not a sqlite:// or postgres:// URL",
                    gatecast_store::redact_url(url)
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            if !names.insert(d.name.as_str()) {
                return Err(GatewayError::config(
                    format!("destinations[{i}].name"),
                    format!("`{}` is used twice", d.name),
                ));
            }
            d.check()
                .map_err(|e| GatewayError::config(destination_path(i, &e.path), e.message))?;
        }
        if self
            .security
            .file_destination_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(GatewayError::config(
                "security.file_destination_dir",
                "must not be empty",
            ));
        }
        // The host list, and the config file's destinations against the refused ranges.
        crate::control::Guard::from_config(self)?;
        Ok(())
    }

    /// Every price the config sets: `[prices]` and each provider's.
    pub fn price_overrides(&self) -> Overrides {
        Overrides {
            global: self.prices.clone(),
            providers: self.provider_pricing.clone(),
        }
    }

    /// The pricer: the shipped table, or `pricing.table`'s, with the config's overrides.
    pub fn pricer(&self) -> Result<Pricer, GatewayError> {
        let table = match &self.pricing.table {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    GatewayError::config(
                        "pricing.table",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let table = PriceTable::parse(&text).map_err(|e| {
                    GatewayError::config("pricing.table", format!("{}: {e}", path.display()))
                })?;
                Some(table)
            }
        };
        Pricer::new(table, &self.price_overrides())
            .map_err(|e| GatewayError::config(e.path, e.message))
    }

    /// Builds the model router; this also checks provider URLs and alias targets.
    pub fn router(&self) -> Result<Router, GatewayError> {
        Router::new(&self.providers, &self.models)
            .map_err(|e| GatewayError::config(e.path, e.message))
    }
}

/// The directory relative paths of the config file at `path` are taken against: the file's
/// own, made absolute so the store and logs name one place whatever the working directory.
fn config_dir(path: &Path) -> PathBuf {
    std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `sqlite://REL` → `sqlite:///BASE/REL`; absolute, in-memory and non-SQLite URLs unchanged.
/// The URL's path is percent-decoded by the driver, so the base is encoded where it must be.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url.to_owned();
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let in_memory = file.is_empty() || file == ":memory:" || query.contains("mode=memory");
    if in_memory || Path::new(file).is_absolute() {
        return url.to_owned();
    }
    let base = base
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    let sep = if base.ends_with('/') { "" } else { "/" };
    format!("sqlite://{base}{sep}{file}{query}")
}

/// `[providers.NAME]`: the shared keys and the kind's own, errors at `providers.NAME.FIELD`.
fn parse_providers(
    value: Option<toml::Value>,
) -> Result<BTreeMap<String, ProviderConfig>, GatewayError> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let toml::Value::Table(tables) = value else {
        return Err(GatewayError::config(
            "providers",
            "expected a table of providers ([providers.NAME])",
        ));
    };
    let mut out = BTreeMap::new();
    for (name, table) in tables {
        let path = format!("providers.{name}");
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(table) else {
            return Err(GatewayError::config(path, "expected a table"));
        };
        let provider = ProviderConfig::from_map(map).map_err(|e| {
            let e = e.under(&path);
            GatewayError::config(e.path, e.message)
        })?;
        out.insert(name, provider);
    }
    Ok(out)
}

/// Removes `prices` and `price_factor` from each `[providers.NAME]` and parses them: pricing
/// is the gateway's concern, and the provider settings the proxy parses do not carry it.
fn take_provider_pricing(
    value: &mut toml::Value,
) -> Result<BTreeMap<String, ProviderPricing>, GatewayError> {
    let mut out = BTreeMap::new();
    let providers = value
        .as_table_mut()
        .and_then(|t| t.get_mut("providers"))
        .and_then(toml::Value::as_table_mut);
    for (name, provider) in providers.into_iter().flatten() {
        let Some(table) = provider.as_table_mut() else {
            continue;
        };
        let mut pricing = toml::Table::new();
        for key in ["prices", "price_factor"] {
            if let Some(v) = table.remove(key) {
                pricing.insert(key.to_owned(), v);
            }
        }
        if pricing.is_empty() {
            continue;
        }
        let parsed: ProviderPricing = serde_path_to_error::deserialize(toml::Value::Table(pricing))
            .map_err(|e| {
                let path = e.path().to_string();
                let at = if path == "." {
                    format!("providers.{name}")
                } else {
                    format!("providers.{name}.{path}")
                };
                GatewayError::config(at, e.into_inner().to_string())
            })?;
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

/// `[[destinations]]`: each table in the flat shape, errors at `destinations[i].FIELD`.
fn parse_destinations(value: Option<toml::Value>) -> Result<Vec<DestinationConfig>, GatewayError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = value else {
        return Err(GatewayError::config(
            "destinations",
            "expected an array of tables ([[destinations]])",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let flat = match serde_json::to_value(item) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(GatewayError::config(
                    format!("destinations[{i}]"),
                    "expected a table",
                ))
            }
        };
        let d = DestinationConfig::from_flat(flat)
            .map_err(|e| GatewayError::config(destination_path(i, &e.path), e.message))?;
        out.push(d);
    }
    Ok(out)
}

fn destination_path(i: usize, field: &str) -> String {
    if field.is_empty() {
        format!("destinations[{i}]")
    } else {
        format!("destinations[{i}].{field}")
    }
}

/// Destinations defined by the environment: `SENTRY_DSN`, and the standard
/// `OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,HEADERS,PROTOCOL}`. They follow the GenAI
/// content-capture convention: `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false`
/// (or `NO_CONTENT`) turns their privacy mode on.
fn env_destinations(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<DestinationConfig>, GatewayError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let private = get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "false" | "no_content" | "0"
        )
    });
    let mut out = Vec::new();
    if let Some(dsn) = get("SENTRY_DSN") {
        let mut d = DestinationConfig::new("env-sentry", SentryConfig::new(dsn));
        d.privacy_mode = private;
        out.push(d);
    }
    let traces_endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let base_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT");
    if traces_endpoint.is_some() || base_endpoint.is_some() {
        use gatecast_telemetry::destinations::Protocol;
        let protocol_var = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let protocol = match protocol_var.as_deref().map(str::trim) {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("http/json") => Protocol::HttpJson,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(GatewayError::config(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("`{other}` is not http/protobuf, http/json or grpc"),
                ))
            }
        };
        // The generic variable is a base URL: the signal path is appended, as the OTel spec says.
        let endpoint = match (traces_endpoint, base_endpoint) {
            (Some(e), _) => e,
            (None, Some(base)) if protocol == Protocol::Grpc => base,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => String::new(),
        };
        let headers_var =
            get("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| get("OTEL_EXPORTER_OTLP_HEADERS"));
        let mut headers = BTreeMap::new();
        for pair in headers_var
            .iter()
            .flat_map(|h| h.split(','))
            .filter(|p| !p.trim().is_empty())
        {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                GatewayError::config(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "expected comma-separated key=value pairs",
                )
            })?;
            headers.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let otlp = OtlpConfig {
            protocol: Some(protocol),
            headers,
            ..OtlpConfig::new(endpoint)
        };
        let mut d = DestinationConfig::new("env-otlp", otlp);
        d.privacy_mode = private;
        out.push(d);
    }
    Ok(out)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|s| s.matches('\n').count() + 1)
        .unwrap_or(1)
}

/// Replaces `${NAME}` inside every string; `$${` is a literal `${`.
fn expand_env(
    value: &mut toml::Value,
    path: &mut String,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), GatewayError> {
    match value {
        toml::Value::String(s) if s.contains('$') => *s = expand_str(s, path, env)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_env(item, path, env)?;
                path.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                expand_env(v, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    path: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, GatewayError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| GatewayError::config(path, "unterminated `${` in string"))?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(GatewayError::config(
                    path,
                    format!("invalid environment variable name `{name}`"),
                ));
            }
            let value = env(name).ok_or_else(|| {
                GatewayError::config(path, format!("environment variable `{name}` is not set"))
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gatecast_telemetry::destinations::DestinationKind;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, |k| (k == "UP_KEY").then(|| "sk-123".to_string()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_default_config_is_valid() {
        let text = include_str!("../../../config/gatecast.toml");
        let c = parse(text).unwrap();
        assert!(c
            .providers
            .values()
            .any(|p| p.kind == gatecast_proxy::ProviderKind::Mock));
    }

    #[test]
    fn expands_env_and_reports_missing_variables_by_path() {
        let c = parse("[providers.up]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key = \"${UP_KEY}\"").unwrap();
        let gatecast_proxy::ProviderKind::Openai(up) = &c.providers["up"].kind else {
            panic!("{:?}", c.providers["up"])
        };
        assert_eq!(up.api_key.as_deref(), Some("sk-123"));
        let e = parse(
            "[providers.up]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key = \"${NOPE}\"",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "providers.up.api_key: environment variable `NOPE` is not set"
        );
        let c = parse("[providers.up]\nkind = \"mock\"\nheaders = { a = \"$${LIT} $5\" }").unwrap();
        assert_eq!(c.providers["up"].headers["a"], "${LIT} $5");
    }

    #[test]
    fn the_environment_defines_sentry_and_otlp_destinations() {
        let vars = [
            (
                "SENTRY_DSN",
                "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer x, x-tenant=t1",
            ),
            (
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                "false",
            ),
        ];
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let c = Config::parse("", env).unwrap();
        assert_eq!(c.destinations.len(), 2);
        let sentry = &c.destinations[0];
        assert_eq!(sentry.name, "env-sentry");
        assert!(sentry.privacy_mode, "content capture off means private");
        let DestinationKind::Otlp(otlp) = &c.destinations[1].kind else {
            panic!("not otlp: {:?}", c.destinations[1]);
        };
        assert_eq!(
            otlp.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(otlp.headers["x-tenant"], "t1");
        assert_eq!(otlp.headers["authorization"], "Bearer x");

        let bad = |k: &str| (k == "SENTRY_DSN").then(|| "https://nope@host/1".to_string());
        assert!(Config::parse("", bad)
            .unwrap_err()
            .to_string()
            .contains("32 hex digits"));
        assert!(Config::parse("", |_| None).unwrap().destinations.is_empty());
    }

    #[test]
    fn the_store_defaults_to_sqlite_under_data() {
        let c = parse("").unwrap();
        assert_eq!(c.store.url, "sqlite://data/gatecast.db");
        assert!(c.store.run_migrations);
        assert_eq!(c.store.data_dir(), PathBuf::from("data"));
        let c = parse("[store]\nurl = \"sqlite:///var/lib/gc/x.db?mode=rwc\"").unwrap();
        assert_eq!(c.store.data_dir(), PathBuf::from("/var/lib/gc"));
        let c = parse("[store]\nurl = \"postgres://u:p@db/g\"").unwrap();
        assert_eq!(c.store.data_dir(), PathBuf::from("data"));
        assert!(!c.auth.require_key);
    }

    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let mut c = parse(
            "[store]\nurl = \"sqlite://data/x.db?mode=rwc\"\n\n[[destinations]]\nname = \"f\"\ntype = \"file\"\npath = \"../t.jsonl\"\nspool_dir = \"spool\"\n\n[[destinations]]\nname = \"g\"\ntype = \"file\"\npath = \"/abs/t.jsonl\"",
        )
        .unwrap();
        c.resolve_paths(Path::new("/etc/gc"));
        assert_eq!(c.store.url, "sqlite:///etc/gc/data/x.db?mode=rwc");
        assert_eq!(
            c.store.sqlite_file(),
            Some(PathBuf::from("/etc/gc/data/x.db"))
        );
        assert_eq!(c.store.data_dir(), PathBuf::from("/etc/gc/data"));
        let path = |d: &DestinationConfig| match &d.kind {
            DestinationKind::File(f) => f.path.clone(),
            _ => None,
        };
        let f = &c.destinations[0];
        assert_eq!(path(f).as_deref(), Some(Path::new("/etc/gc/../t.jsonl")));
        assert_eq!(f.spool_dir.as_deref(), Some(Path::new("/etc/gc/spool")));
        assert_eq!(
            path(&c.destinations[1]).as_deref(),
            Some(Path::new("/abs/t.jsonl"))
        );

        // The defaults resolve too; absolute and in-memory URLs and Postgres stay as written.
        let mut c = parse("").unwrap();
        c.resolve_paths(Path::new("/srv/gc"));
        assert_eq!(c.store.url, "sqlite:///srv/gc/data/gatecast.db");
        for url in [
            "sqlite:///var/x.db",
            "sqlite::memory:",
            "sqlite://?mode=memory",
            "postgres://u:p@db/g",
        ] {
            let mut c = parse(&format!("[store]\nurl = \"{url}\"")).unwrap();
            c.resolve_paths(Path::new("/srv/gc"));
            assert_eq!(c.store.url, url);
        }
        let mut c = parse("[store]\nurl = \"postgres://u:p@db/g\"").unwrap();
        c.resolve_paths(Path::new("/srv/gc"));
        assert_eq!(c.store.data_dir(), PathBuf::from("/srv/gc/data"));
        let mut c = parse("[store]\nurl = \"sqlite:db.sqlite\"").unwrap();
        c.resolve_paths(Path::new("/a dir/50%?"));
        assert_eq!(c.store.url, "sqlite:///a dir/50%25%3F/db.sqlite");
        assert_eq!(
            c.store.sqlite_file(),
            Some(PathBuf::from("/a dir/50%?/db.sqlite"))
        );
    }

    #[test]
    fn request_threads_default_to_one_per_core() {
        let c = parse("").unwrap();
        assert_eq!(c.server.request_threads(), cores());
        assert_eq!(c.server.busy_poll_us, 0);
        assert_eq!(c.telemetry.delivery_priority, DeliveryPriority::Normal);
        let c = parse("[telemetry]\ndelivery_priority = \"idle\"").unwrap();
        assert_eq!(c.telemetry.delivery_priority, DeliveryPriority::Idle);
        let e = parse("[telemetry]\ndelivery_priority = \"high\"").unwrap_err();
        assert!(e.contains("delivery_priority"), "{e}");
        let c = parse("[server]\nworker_threads = 3\nbusy_poll_us = 300").unwrap();
        assert_eq!(c.server.request_threads(), 3);
        assert_eq!(c.server.busy_poll_us, 300);
    }

    #[test]
    fn connection_timers_have_defaults_and_can_be_set() {
        let c = parse("").unwrap();
        assert_eq!(c.server.header_read_timeout_ms, 10_000);
        assert_eq!(c.server.body_read_timeout_ms, 30_000);
        assert_eq!(c.server.idle_timeout_ms, 75_000);
        assert_eq!(c.server.max_connections, 0, "0: derived from the fd limit");
        let c = parse(
            "[server]\nheader_read_timeout_ms = 1\nbody_read_timeout_ms = 2\nidle_timeout_ms = 3\nmax_connections = 4",
        )
        .unwrap();
        assert_eq!(
            (
                c.server.header_read_timeout_ms,
                c.server.body_read_timeout_ms,
                c.server.idle_timeout_ms,
                c.server.max_connections
            ),
            (1, 2, 3, 4)
        );
    }

    /// A provider setting the builder refuses is reported at its own field, not at
    /// `base_url`, and the message never quotes the secret.
    #[test]
    fn provider_builder_errors_name_the_field() {
        let base = "[providers.up]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\n";
        for (extra, want) in [
            (
                "api_key = \"sk-secret\\nx\"",
                "providers.up.api_key: contains characters not allowed in a header",
            ),
            (
                "headers = { \"x-team\" = \"sk-secret\\r\\nx\" }",
                "providers.up.headers.x-team: contains characters not allowed in a header",
            ),
            (
                "headers = { \"x team\" = \"1\" }",
                "providers.up.headers.x team: is not a valid header name",
            ),
            (
                "api_key = \"sk-secret\"\nheaders = { \"x-ok\" = \"1\", \"x-bad\" = \"\\u0000\" }",
                "providers.up.headers.x-bad: ",
            ),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(
                e.starts_with(want),
                "{extra:?} gave {e:?}, want prefix {want:?}"
            );
            assert!(!e.contains("sk-secret"), "{e}");
        }
        let e = parse("[providers.up]\nkind = \"openai\"").unwrap_err();
        assert!(
            e.starts_with("providers.up.base_url: `base_url` is required"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_their_path() {
        let cases = [
            ("[server]\nlisten = \"nope\"", "server.listen"),
            ("[server]\nbogus = 1", "server"),
            ("[server]\nworker_threads = 5000", "server.worker_threads"),
            ("[server]\nbusy_poll_us = 2000000", "server.busy_poll_us"),
            (
                "[server]\ncors_origins = [\"*\", \"app.example\"]",
                "server.cors_origins[1]: `app.example` is not an origin",
            ),
            (
                "[server]\nallowed_hosts = [\"gatecast:8080\"]",
                "server.allowed_hosts[0]",
            ),
            (
                "[server]\nheader_read_timeout_ms = 0",
                "server.header_read_timeout_ms: must be greater than 0",
            ),
            (
                "[server]\nbody_read_timeout_ms = 0",
                "server.body_read_timeout_ms",
            ),
            ("[server]\nidle_timeout_ms = 0", "server.idle_timeout_ms"),
            ("[server]\nmax_connections = -1", "server.max_connections"),
            ("[store]\nurl = \"mysql://x\"", "store.url"),
            ("[store]\nwatch_interval_ms = 0", "store.watch_interval_ms"),
            ("[spend]\nflush_interval_ms = 0", "spend.flush_interval_ms"),
            (
                "[spend]\nmax_pending_entries = 0",
                "spend.max_pending_entries",
            ),
            ("[auth]\nrequire = true", "auth"),
            (
                "[providers.up]\nkind = \"openai\"\nbase_url = \"not a url\"",
                "providers.up.base_url: invalid URL",
            ),
            ("[providers.up]\nkind = \"telepathy\"", "providers.up.kind"),
            (
                "[providers.up]\nkind = \"mock\"\nmax_response_bytes = 0",
                "providers.up.max_response_bytes: must be greater than 0",
            ),
            (
                "[providers.up]\nkind = \"mock\"\nmax_sse_event_bytes = 0",
                "providers.up.max_sse_event_bytes: must be greater than 0",
            ),
            (
                "[providers.up]\nkind = \"openai\"\nbase_url = \"http://h/v1?key=SECRET#x\"",
                "providers.up.base_url: invalid URL",
            ),
            (
                "[providers.up]\nkind = \"mock\"\nretry_on = [42]",
                "providers.up.retry_on",
            ),
            (
                "[models.fast]\nprovider = \"nope\"\nmodel = \"m\"",
                "models.fast.provider",
            ),
            (
                "[[destinations]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\nwhat = 1",
                "destinations[0]",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(want),
                "{text:?} gave {e:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn destination_errors_name_the_field_of_the_type() {
        let dest = |body: &str| parse(&format!("[[destinations]]\nname = \"d\"\n{body}"));
        let cases = [
            (
                "type = \"otlp\"\nendpoint = 7",
                "destinations[0].endpoint: invalid type",
            ),
            (
                "type = \"otlp\"\nendpoint = \"http://c/\"\nheaders = { x = 1 }",
                "destinations[0].headers.x: invalid type",
            ),
            (
                "type = \"webhook\"\nmethod = \"GET\"",
                "destinations[0].method: unknown variant",
            ),
            (
                "type = \"sentry\"\ndsn = \"https://short@h/1\"",
                "destinations[0].dsn: invalid DSN",
            ),
            (
                "type = \"file\"\npath = \"x\"\nsampling_rate = 3.0",
                "destinations[0].sampling_rate: must be",
            ),
            (
                "type = \"kafka\"",
                "destinations[0].type: unknown variant `kafka`",
            ),
            (
                "type = \"file\"\npath = \"x\"\nuri = \"http://h/\"",
                "destinations[0]: unknown field `uri`",
            ),
        ];
        for (body, want) in cases {
            let e = dest(body).unwrap_err();
            assert!(
                e.starts_with(want),
                "{body:?} gave {e:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn prices_overrides_and_provider_pricing() {
        let c = parse(
            r#"
[providers.up]
kind = "mock"
price_factor = 0.8
[providers.up.prices."house-model"]
input_per_mtok = 4
output_per_mtok = 8

[providers.plain]
kind = "mock"

[prices."gpt-4.1"]
input_per_mtok = 2.0
output_per_mtok = 8.0
cache_read_per_mtok = 0.5
"#,
        )
        .unwrap();
        assert_eq!(c.prices["gpt-4.1"].cache_read_per_mtok, Some(0.5));
        let up = &c.provider_pricing["up"];
        assert_eq!(up.price_factor, 0.8);
        assert_eq!(up.prices["house-model"].output_per_mtok, 8.0);
        assert!(!c.provider_pricing.contains_key("plain"));
        assert!(
            c.providers.contains_key("up"),
            "the provider itself still parses"
        );
        c.pricer().unwrap();

        let cases = [
            (
                "[prices.\"m\"]\ninput_per_mtok = 1",
                "prices.m: missing field `output_per_mtok`",
            ),
            (
                "[prices.\"m\"]\ninput_per_mtok = -1\noutput_per_mtok = 1",
                "prices.\"m\".input_per_mtok: -1 is not a price",
            ),
            ("[prices.\"m\"]\ninput = 1", "prices.m"),
            (
                "[providers.up]\nkind = \"mock\"\nprice_factor = -2",
                "providers.up.price_factor: must be a number >= 0",
            ),
            (
                "[providers.up]\nkind = \"mock\"\nprice_factor = \"cheap\"",
                "providers.up.price_factor",
            ),
            (
                "[providers.up]\nkind = \"mock\"\n[providers.up.prices.m]\ninput_per_mtok = 1\noutput_per_mtok = 1\nbogus = 2",
                "providers.up.prices.m",
            ),
            ("[pricing]\nfile = \"x\"", "pricing"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(want),
                "{text:?} gave {e:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn a_price_table_file_replaces_the_shipped_one_and_resolves_against_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gatecast.toml"),
            "[pricing]\ntable = \"prices.json\"\n",
        )
        .unwrap();
        let path = dir.path().join("gatecast.toml");
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.starts_with("pricing.table: cannot read"), "{e}");
        std::fs::write(
            dir.path().join("prices.json"),
            r#"{"models": {"m": {"input": -1}}}"#,
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with("pricing.table: ") && e.contains("models.m"),
            "{e}"
        );
        std::fs::write(
            dir.path().join("prices.json"),
            r#"{"models": {"m": {"input": 1, "output": 2}}}"#,
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let p = c.pricer().unwrap();
        assert_eq!(p.table().len(), 1);
        assert!(
            p.table().get("gpt-4o-mini").is_none(),
            "replaced, not merged"
        );
    }
}
