//! The spend and token metrics, counted from each published record:
//! `gatecast_cost_usd_total{provider,model,key}`, `gatecast_tokens_total{provider,model,kind}`
//! and `gatecast_cost_unknown_model_total{model}`.
//!
//! Records are published at the end of every exchange, on the request threads, so the
//! handles of a label set are resolved once and found again by a hash of the borrowed label
//! values: a repeat costs no allocation and no registry lookup. Label values come from
//! clients (the model of a `provider/model` route), so past [`MAX_SERIES`] label sets a new
//! model is counted as `other`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, RwLock};

use gatecast_telemetry::record::GenerationRecord;
use metrics::{Counter, Gauge};

/// Label sets with handles of their own; more would only grow `/metrics` without bound.
pub const MAX_SERIES: usize = 2000;
const OTHER: &str = "other";

/// One label set's handles.
struct Series {
    labels: [Box<str>; 3],
    /// A gauge only ever increased: the facade's counters count integers, and spend is in
    /// fractions of a dollar. `rate()` and `increase()` read it as they read a counter.
    cost_usd: Gauge,
    /// input, output, cache_read, cache_creation, reasoning.
    tokens: [Counter; 5],
    unknown_model: Counter,
}

const TOKEN_KINDS: [&str; 5] = [
    "input",
    "output",
    "cache_read",
    "cache_creation",
    "reasoning",
];

#[derive(Default)]
pub struct UsageMetrics {
    hasher: RandomState,
    series: RwLock<HashMap<u64, Vec<Arc<Series>>>>,
}

impl UsageMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished record's tokens and cost; records without usage count nothing.
    pub fn record(&self, record: &GenerationRecord) {
        if record.usage.is_none() && !record.cost_unknown_model {
            return;
        }
        let route = record.route.as_ref();
        let provider = route.map_or("unknown", |r| r.provider.as_str());
        let model = route
            .map(|r| r.model.as_str())
            .filter(|m| !m.is_empty())
            .unwrap_or(record.request.model.as_str());
        let key = record.key_name.as_deref().unwrap_or("");
        let Some(series) = self.series([provider, model, key]) else {
            return;
        };
        if let Some(u) = &record.usage {
            let counts = [
                Some(u.input_tokens),
                Some(u.output_tokens),
                u.cache_read_input_tokens,
                u.cache_creation_input_tokens,
                u.reasoning_output_tokens,
            ];
            for (counter, n) in series.tokens.iter().zip(counts) {
                if let Some(n) = n.filter(|n| *n > 0) {
                    counter.increment(n);
                }
            }
        }
        if let Some(cost) = &record.cost {
            series.cost_usd.increment(cost.total_usd);
        }
        if record.cost_unknown_model {
            series.unknown_model.increment(1);
        }
    }

    fn series(&self, labels: [&str; 3]) -> Option<Arc<Series>> {
        let hash = self.hash(labels);
        let found = |map: &HashMap<u64, Vec<Arc<Series>>>| {
            map.get(&hash).and_then(|v| {
                v.iter()
                    .find(|s| s.labels.iter().map(|l| &**l).eq(labels))
                    .cloned()
            })
        };
        if let Some(s) = self.series.read().ok().and_then(|m| found(&m)) {
            return Some(s);
        }
        let mut map = self.series.write().ok()?;
        if let Some(s) = found(&map) {
            return Some(s);
        }
        let count: usize = map.values().map(Vec::len).sum();
        if count >= MAX_SERIES && labels[1] != OTHER {
            drop(map);
            return self.series([labels[0], OTHER, labels[2]]);
        }
        let s = Arc::new(Series::register(labels));
        map.entry(hash).or_default().push(s.clone());
        Some(s)
    }

    fn hash(&self, labels: [&str; 3]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for l in labels {
            // With its length, so ("ab", "c") and ("a", "bc") differ.
            l.hash(&mut h);
        }
        h.finish()
    }
}

impl Series {
    fn register([provider, model, key]: [&str; 3]) -> Self {
        let (p, m, k) = (provider.to_owned(), model.to_owned(), key.to_owned());
        Self {
            labels: [provider.into(), model.into(), key.into()],
            cost_usd: metrics::gauge!("gatecast_cost_usd_total",
                "provider" => p.clone(), "model" => m.clone(), "key" => k),
            tokens: TOKEN_KINDS.map(|kind| {
                metrics::counter!("gatecast_tokens_total",
                    "provider" => p.clone(), "model" => m.clone(), "kind" => kind)
            }),
            unknown_model: metrics::counter!("gatecast_cost_unknown_model_total", "model" => m),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_are_found_again_and_bounded() {
        let m = UsageMetrics::new();
        let a = m.series(["up", "gpt-4o-mini", "team-a"]).unwrap();
        let again = m.series(["up", "gpt-4o-mini", "team-a"]).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let b = m.series(["up", "gpt-4o-mini", "team-b"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        for i in 0..MAX_SERIES + 10 {
            m.series(["up", &format!("model-{i}"), "team-a"]).unwrap();
        }
        let total: usize = m.series.read().unwrap().values().map(Vec::len).sum();
        assert!(total <= MAX_SERIES + 1, "{total}");
        let late = m.series(["up", "one-more-model", "team-a"]).unwrap();
        assert_eq!(&*late.labels[1], OTHER);
    }
}
