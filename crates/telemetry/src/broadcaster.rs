//! The proxy's one entry point: a finished record in, traces out at every destination.
//!
//! `publish` only selects destinations and enqueues an `Arc`: span building, privacy,
//! encoding and I/O all happen on the destination workers, off the request path.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::destination::DestinationConfig;
use crate::error::TelemetryError;
use crate::filter::CompiledFilters;
use crate::pipeline::{Pipeline, SharedRecord};
use crate::record::GenerationRecord;
use crate::spans::SpanOptions;
use crate::stats::DestinationStats;

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
    pipelines: Vec<Pipeline>,
    /// One per pipeline, in the same order, compiled once.
    filters: Vec<CompiledFilters>,
    /// Spans are built once per record, at the most generous limit any destination has;
    /// stricter destinations shorten their own copy.
    span_options: SpanOptions,
    wants_content: bool,
    closed: AtomicBool,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field(
                "destinations",
                &self
                    .inner
                    .pipelines
                    .iter()
                    .map(|p| p.config().name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Broadcaster {
    /// Validates every destination and starts their workers on the current tokio runtime.
    pub fn new(cfg: BroadcastConfig) -> Result<Self, TelemetryError> {
        let service_name = if cfg.service_name.trim().is_empty() {
            "gatecast"
        } else {
            cfg.service_name.as_str()
        };
        let mut names = HashSet::new();
        for d in &cfg.destinations {
            d.validate()?;
            if !names.insert(d.name.as_str()) {
                return Err(TelemetryError::InvalidDestination {
                    destination: d.name.clone(),
                    message: "name: used by another destination".into(),
                });
            }
        }
        let runtime = if cfg.destinations.iter().any(|d| d.enabled) {
            Some(tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?)
        } else {
            None
        };
        let filters = cfg
            .destinations
            .iter()
            .map(|d| {
                CompiledFilters::compile(&d.filters).map_err(|e| {
                    TelemetryError::InvalidDestination {
                        destination: d.name.clone(),
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipelines = Vec::with_capacity(cfg.destinations.len());
        for d in &cfg.destinations {
            let pipeline = match &runtime {
                Some(rt) => Pipeline::start(d, service_name, rt)?,
                None => Pipeline::start_disabled(d),
            };
            pipelines.push(pipeline);
        }
        let running = || pipelines.iter().filter(|p| p.is_running());
        let span_options = SpanOptions {
            max_attribute_bytes: running()
                .map(|p| p.config().max_attribute_bytes)
                .max()
                .unwrap_or(crate::limits::DEFAULT_MAX_ATTRIBUTE_BYTES),
            id_seed: None,
        };
        let wants_content = running().any(|p| !p.config().privacy_mode);
        Ok(Self {
            inner: Arc::new(Inner {
                pipelines,
                filters,
                span_options,
                wants_content,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// A broadcaster with no destinations: `publish` is a no-op.
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Inner {
                pipelines: Vec::new(),
                filters: Vec::new(),
                span_options: SpanOptions::default(),
                wants_content: false,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Hands a finished record to every destination that selects it. Never blocks, never
    /// fails: a destination whose queue is full drops the record and counts it.
    pub fn publish(&self, record: GenerationRecord) {
        let selected: Vec<&Pipeline> = self
            .inner
            .pipelines
            .iter()
            .zip(&self.inner.filters)
            .filter(|(p, f)| Self::selects(p, f, &record))
            .map(|(p, _)| p)
            .collect();
        if selected.is_empty() {
            return;
        }
        let shared = Arc::new(SharedRecord::new(record, self.inner.span_options.clone()));
        for p in selected {
            p.offer(shared.clone());
        }
    }

    /// The one place destination selection happens (DESIGN §5): enabled, filters match,
    /// and deterministic sampling keeps the record's session.
    fn selects(pipeline: &Pipeline, filters: &CompiledFilters, record: &GenerationRecord) -> bool {
        let config = pipeline.config();
        pipeline.is_running()
            && config.enabled
            && filters.matches(record)
            && crate::sampling::keeps(config.sampling_rate, record)
    }

    /// False when every enabled destination strips content, so the proxy need not keep any.
    pub fn wants_content(&self) -> bool {
        self.inner.wants_content
    }

    pub fn stats(&self) -> Vec<DestinationStats> {
        self.inner.pipelines.iter().map(Pipeline::stats).collect()
    }

    /// Stops taking records and flushes every queue, all destinations in parallel, within
    /// `deadline`. What cannot be delivered in time is logged and counted as dropped.
    pub async fn shutdown(&self, deadline: Duration) {
        if self.inner.closed.swap(true, Relaxed) {
            return;
        }
        let until = tokio::time::Instant::now() + deadline;
        for p in &self.inner.pipelines {
            p.begin_shutdown();
        }
        for p in &self.inner.pipelines {
            p.finish_shutdown(until).await;
        }
        for s in self.stats() {
            tracing::info!(
                destination = %s.name,
                exported_spans = s.exported_spans,
                dropped_queue_full = s.dropped_queue_full,
                dropped_export_failed = s.dropped_export_failed,
                dropped_shutdown = s.dropped_shutdown,
                "destination flushed"
            );
        }
    }
}
