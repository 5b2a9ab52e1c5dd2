//! The proxy's one entry point: a finished record in, traces out at every destination.
//!
//! `publish` only selects destinations and enqueues an `Arc`: span building, privacy,
//! encoding and I/O all happen on the destination workers, off the request path.
//!
//! The destination set can be replaced while requests flow ([`Broadcaster::reconfigure`]):
//! each publish reads one immutable snapshot, and a destination whose transport did not
//! change keeps its pipeline, queue and counters across the swap.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::deliver::pipeline::{Pipeline, SharedRecord};
use crate::deliver::stats::DestinationStats;
use crate::destinations::{DestinationConfig, HostPolicy};
use crate::error::TelemetryError;
use crate::filter::CompiledFilters;
use crate::record::GenerationRecord;
use crate::span::build::SpanOptions;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastConfig {
    /// `service.name` on every export; empty means `gatecast`.
    pub service_name: String,
    pub destinations: Vec<DestinationConfig>,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            service_name: "gatecast".to_owned(),
            destinations: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Broadcaster {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    service_name: String,
    /// Where network destinations may connect; fixed for the broadcaster's life.
    hosts: Arc<HostPolicy>,
    /// Pipelines replaced by a reconfiguration that are still flushing; shutdown waits for them.
    retiring: Mutex<Vec<Arc<Pipeline>>>,
    /// Serialises reconfigurations, so two concurrent ones cannot both reuse one pipeline.
    reconfiguring: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// The runtime the broadcaster was made on. Workers always start there, even when a
    /// reconfiguration runs on a request thread, so they outlive the request runtimes at
    /// shutdown and never compete with requests for a request thread.
    home: Option<tokio::runtime::Handle>,
}

/// One immutable destination set; a publish sees exactly one.
struct Snapshot {
    routes: Vec<Route>,
    /// Spans are built once per record, at the most generous limit any destination has;
    /// stricter destinations shorten their own copy.
    span_options: SpanOptions,
    wants_content: bool,
}

/// A destination as the selector sees it: its current config and compiled filters, in front
/// of a pipeline that may outlive this snapshot.
struct Route {
    config: DestinationConfig,
    filters: CompiledFilters,
    pipeline: Arc<Pipeline>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.current.load();
        f.debug_struct("Broadcaster")
            .field(
                "destinations",
                &snapshot
                    .routes
                    .iter()
                    .map(|r| r.config.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a reconfiguration did, for logs and the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconfigureSummary {
    pub added: Vec<String>,
    /// Transport changed: a new pipeline took over, the old one flushes what it holds.
    pub restarted: Vec<String>,
    /// Only selection or privacy changed: same pipeline, same queue.
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl ReconfigureSummary {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.restarted.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
    }
}

impl Broadcaster {
    /// Validates every destination and starts their workers on the current tokio runtime.
    /// Destinations may reach any host but link-local and metadata addresses.
    pub fn new(cfg: BroadcastConfig) -> Result<Self, TelemetryError> {
        Self::with_host_policy(cfg, HostPolicy::default())
    }

    /// [`Broadcaster::new`], with every connection of every destination held to `hosts`.
    pub fn with_host_policy(
        cfg: BroadcastConfig,
        hosts: HostPolicy,
    ) -> Result<Self, TelemetryError> {
        let hosts = Arc::new(hosts);
        let home = tokio::runtime::Handle::try_current().ok();
        let service_name = if cfg.service_name.trim().is_empty() {
            "gatecast".to_owned()
        } else {
            cfg.service_name.clone()
        };
        let (snapshot, _) = build_snapshot(
            &cfg.destinations,
            &service_name,
            &hosts,
            &HashMap::new(),
            true,
            home.as_ref(),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(snapshot),
                service_name,
                hosts,
                retiring: Mutex::new(Vec::new()),
                reconfiguring: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
                home,
            }),
        })
    }

    /// A broadcaster with no destinations: `publish` is a no-op until a reconfiguration.
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(Snapshot {
                    routes: Vec::new(),
                    span_options: SpanOptions::default(),
                    wants_content: false,
                }),
                service_name: "gatecast".to_owned(),
                hosts: Arc::default(),
                retiring: Mutex::new(Vec::new()),
                reconfiguring: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
                home: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    /// Replaces the destination set atomically. Validation happens first: an invalid set
    /// changes nothing. A valid destination that cannot start does not block the others: it
    /// reports its error in its stats and is retried at the next reconfiguration. A destination whose transport settings are unchanged keeps its
    /// pipeline (queue, counters, connections); one whose transport changed, or that was
    /// removed, stops taking records and flushes its queue in the background before it stops.
    pub async fn reconfigure(
        &self,
        destinations: &[DestinationConfig],
    ) -> Result<ReconfigureSummary, TelemetryError> {
        let _guard = self.inner.reconfiguring.lock().await;
        if self.inner.closed.load(Relaxed) {
            return Ok(ReconfigureSummary::default());
        }
        let old = self.inner.current.load_full();
        let existing: HashMap<&str, &Route> = old
            .routes
            .iter()
            .map(|r| (r.config.name.as_str(), r))
            .collect();
        let (snapshot, mut summary) = build_snapshot(
            destinations,
            &self.inner.service_name,
            &self.inner.hosts,
            &existing,
            false,
            self.inner.home.as_ref(),
        )?;
        let kept: HashSet<*const Pipeline> = snapshot
            .routes
            .iter()
            .map(|r| Arc::as_ptr(&r.pipeline))
            .collect();
        let names: HashSet<&str> = snapshot
            .routes
            .iter()
            .map(|r| r.config.name.as_str())
            .collect();
        summary.removed = old
            .routes
            .iter()
            .filter(|r| !names.contains(r.config.name.as_str()))
            .map(|r| r.config.name.clone())
            .collect();
        self.inner.current.store(Arc::new(snapshot));
        for route in old.routes.iter() {
            if !kept.contains(&Arc::as_ptr(&route.pipeline)) {
                self.retire(route.pipeline.clone());
            }
        }
        Ok(summary)
    }

    /// Stops a replaced pipeline taking records and lets it flush within its own export
    /// timeout plus retries, off the caller's path.
    fn retire(&self, pipeline: Arc<Pipeline>) {
        pipeline.begin_shutdown();
        let Some(runtime) = runtime_for(self.inner.home.as_ref()) else {
            return;
        };
        let grace = pipeline.config().timeout() * 3 + pipeline.config().flush_interval();
        self.inner
            .retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pipeline.clone());
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            pipeline
                .finish_shutdown(tokio::time::Instant::now() + grace)
                .await;
            if let Some(inner) = inner.upgrade() {
                inner
                    .retiring
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|p| !Arc::ptr_eq(p, &pipeline));
            }
        });
    }

    /// Hands a finished record to every destination that selects it. Never blocks, never
    /// fails: a destination whose queue is full drops the record and counts it.
    pub fn publish(&self, record: GenerationRecord) {
        let snapshot = self.inner.current.load();
        let selected: Vec<&Route> = snapshot
            .routes
            .iter()
            .filter(|r| selects(r, &record))
            .collect();
        if selected.is_empty() {
            return;
        }
        let requested_privacy = record.privacy;
        let shared = Arc::new(SharedRecord::new(record, snapshot.span_options.clone()));
        for route in selected {
            route.pipeline.offer(
                shared.clone(),
                route.config.privacy_mode || requested_privacy,
            );
        }
    }

    /// False when every enabled destination strips content, so the proxy need not keep any.
    pub fn wants_content(&self) -> bool {
        self.inner.current.load().wants_content
    }

    /// The current destinations' configs, in order.
    pub fn destinations(&self) -> Vec<DestinationConfig> {
        self.inner
            .current
            .load()
            .routes
            .iter()
            .map(|r| r.config.clone())
            .collect()
    }

    pub fn stats(&self) -> Vec<DestinationStats> {
        self.inner
            .current
            .load()
            .routes
            .iter()
            .map(route_stats)
            .collect()
    }

    pub fn stats_for(&self, name: &str) -> Option<DestinationStats> {
        self.inner
            .current
            .load()
            .routes
            .iter()
            .find(|r| r.config.name == name)
            .map(route_stats)
    }

    /// Stops taking records and flushes every queue, all destinations in parallel, within
    /// `deadline`. A destination with a spool writes what it still holds to disk shortly
    /// before the deadline (see `Pipeline::finish_shutdown`); what cannot be delivered or
    /// spooled in time is logged and counted as dropped.
    pub async fn shutdown(&self, deadline: Duration) {
        if self.inner.closed.swap(true, Relaxed) {
            return;
        }
        // Waits for a reconfiguration in progress, so no pipeline starts after this point.
        let _guard = self.inner.reconfiguring.lock().await;
        let until = tokio::time::Instant::now() + deadline;
        let snapshot = self.inner.current.load_full();
        let retiring: Vec<Arc<Pipeline>> = self
            .inner
            .retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for r in &snapshot.routes {
            r.pipeline.begin_shutdown();
        }
        // Waited for together: each pipeline spills at its own moment before `until`, which
        // a pipeline waited for after another would miss.
        let mut waits = tokio::task::JoinSet::new();
        for p in snapshot.routes.iter().map(|r| &r.pipeline).chain(&retiring) {
            let p = p.clone();
            waits.spawn(async move { p.finish_shutdown(until).await });
        }
        while waits.join_next().await.is_some() {}
        for s in snapshot.routes.iter().map(route_stats) {
            tracing::info!(
                destination = %s.name,
                exported_spans = s.exported_spans,
                dropped_queue_full = s.dropped_queue_full,
                dropped_export_failed = s.dropped_export_failed,
                dropped_shutdown = s.dropped_shutdown,
                spooled_batches = s.spooled_batches,
                "destination flushed"
            );
        }
    }
}

/// The one place destination selection happens (DESIGN §5): enabled, filters match,
/// and deterministic sampling keeps the record's session.
fn selects(route: &Route, record: &GenerationRecord) -> bool {
    let config = &route.config;
    config.enabled
        && route.pipeline.is_running()
        && route.filters.matches(record)
        && crate::sampling::keeps(config.sampling_rate, record)
}

fn route_stats(route: &Route) -> DestinationStats {
    DestinationStats {
        enabled: route.config.enabled,
        privacy_mode: route.config.privacy_mode,
        ..route.pipeline.stats()
    }
}

/// Settings a pipeline is built from. Everything else (privacy, sampling, filters) is read
/// per record from the snapshot, so changing it never restarts the pipeline.
fn same_transport(a: &DestinationConfig, b: &DestinationConfig) -> bool {
    let neutral = |c: &DestinationConfig| DestinationConfig {
        privacy_mode: false,
        sampling_rate: 1.0,
        filters: Default::default(),
        ..c.clone()
    };
    neutral(a) == neutral(b)
}

/// The broadcaster's home runtime, or the caller's when it was made outside one.
fn runtime_for(home: Option<&tokio::runtime::Handle>) -> Option<tokio::runtime::Handle> {
    home.cloned()
        .or_else(|| tokio::runtime::Handle::try_current().ok())
}

/// A pipeline carries over when its transport is unchanged, unless it failed to start: then
/// it is retried.
fn reusable(route: &Route, next: &DestinationConfig) -> bool {
    same_transport(&route.config, next) && (route.pipeline.is_running() || !next.enabled)
}

/// Validates `destinations` and builds their routes, reusing the pipelines of `existing`
/// whose transport is unchanged. Nothing is started unless everything validates. A
/// destination that validates but cannot start (a file that cannot be opened) fails the
/// whole set when `strict`, and otherwise gets a pipeline that reports the error.
fn build_snapshot(
    destinations: &[DestinationConfig],
    service_name: &str,
    hosts: &Arc<HostPolicy>,
    existing: &HashMap<&str, &Route>,
    strict: bool,
    home: Option<&tokio::runtime::Handle>,
) -> Result<(Snapshot, ReconfigureSummary), TelemetryError> {
    let mut names = HashSet::new();
    let mut filters = Vec::with_capacity(destinations.len());
    for d in destinations {
        d.validate()?;
        if !names.insert(d.name.as_str()) {
            return Err(TelemetryError::InvalidDestination {
                destination: d.name.clone(),
                message: "name: used by another destination".into(),
            });
        }
        filters.push(CompiledFilters::compile(&d.filters).map_err(|e| {
            TelemetryError::InvalidDestination {
                destination: d.name.clone(),
                message: e.to_string(),
            }
        })?);
    }
    let needs_runtime = destinations.iter().any(|d| {
        d.enabled
            && !existing
                .get(d.name.as_str())
                .is_some_and(|r| reusable(r, d))
    });
    let runtime = if needs_runtime {
        Some(runtime_for(home).ok_or(TelemetryError::NoRuntime)?)
    } else {
        None
    };
    let mut summary = ReconfigureSummary::default();
    let mut routes = Vec::with_capacity(destinations.len());
    for (d, filters) in destinations.iter().zip(filters) {
        let previous = existing.get(d.name.as_str());
        let pipeline = match previous {
            Some(r) if reusable(r, d) => {
                if r.config != *d {
                    summary.updated.push(d.name.clone());
                }
                r.pipeline.clone()
            }
            _ => {
                let pipeline = match &runtime {
                    Some(rt) if d.enabled => Pipeline::start(d, service_name, hosts, rt),
                    _ => Ok(Pipeline::start_disabled(d)),
                };
                let pipeline = match pipeline {
                    Ok(p) => Arc::new(p),
                    Err(e) if strict => {
                        // Undo what this attempt started; the old set stays in place.
                        for r in &routes {
                            let r: &Route = r;
                            let reused = existing
                                .values()
                                .any(|old| Arc::ptr_eq(&old.pipeline, &r.pipeline));
                            if !reused {
                                r.pipeline.begin_shutdown();
                            }
                        }
                        return Err(e);
                    }
                    Err(e) => {
                        // One destination that cannot start must not hold back every other
                        // change: it receives nothing, says why in its stats, and is retried
                        // at the next reconfiguration.
                        tracing::error!(destination = %d.name, error = %e, "destination cannot start; it receives nothing until this is fixed");
                        Arc::new(Pipeline::failed(d, e.to_string()))
                    }
                };
                if previous.is_some() {
                    summary.restarted.push(d.name.clone());
                } else {
                    summary.added.push(d.name.clone());
                }
                pipeline
            }
        };
        routes.push(Route {
            config: d.clone(),
            filters,
            pipeline,
        });
    }
    let running = || routes.iter().filter(|r| r.pipeline.is_running());
    let span_options = SpanOptions {
        max_attribute_bytes: running()
            .map(|r| r.config.max_attribute_bytes)
            .max()
            .unwrap_or(crate::span::limits::DEFAULT_MAX_ATTRIBUTE_BYTES),
        id_seed: None,
    };
    let wants_content = running().any(|r| r.config.enabled && !r.config.privacy_mode);
    Ok((
        Snapshot {
            routes,
            span_options,
            wants_content,
        },
        summary,
    ))
}
