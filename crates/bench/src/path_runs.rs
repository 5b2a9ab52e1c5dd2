//! `--path`: the latency and streaming scenarios measure each client API onto each provider
//! wire beside chat → OpenAI. Each path beyond the reference gets a gateway of its own (the
//! same build and config), so its CPU per request is its own; its targets join the
//! scenario's interleaved or alternating rounds, so drift lands on every path alike.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::api_path::{ApiPath, Wire};
use crate::client::{Conn, Endpoint};
use crate::hist::Added;
use crate::load::{self, RunResult, Workload};
use crate::path_report::{PathLatency, PathStreaming, PathsLatency};
use crate::procs::CpuMeter;
use crate::scenarios::{Env, Gateway};
use crate::sink::{OtlpSink, SinkMode};

/// Concurrency of the loaded latency run.
pub const LOADED_CONCURRENCY: usize = 32;

/// The gateways of the paths beyond the reference, and the sink they export to (their own, so
/// the reference gateway's sink counts stay its own).
pub struct PathSet {
    /// The reference first, then the others.
    pub paths: Vec<ApiPath>,
    gateways: Vec<Gateway>,
    _sink: OtlpSink,
}

/// Where each path's direct and gateway targets sit in a scenario's list of targets.
pub struct Plan {
    /// To append to the scenario's targets, in this order.
    pub targets: Vec<Workload>,
    /// Per path (reference first): its direct target's and its gateway target's index.
    slots: Vec<(ApiPath, usize, usize)>,
}

impl PathSet {
    /// Starts a 2-destination gateway per path beyond the reference, named `{name}-{path}`.
    pub async fn start(env: &Env, paths: &[ApiPath], name: &str) -> Result<Self> {
        if env.is_external() {
            bail!(
                "--path other than {} needs a gateway the bench starts itself, not --target",
                ApiPath::REFERENCE.name()
            );
        }
        let sink = OtlpSink::start(SinkMode::Counting).await?;
        let mut gateways = Vec::new();
        for p in paths.iter().skip(1) {
            let gw = env
                .gateway(
                    &format!("{name}-{}", p.name()),
                    env.two_destinations(),
                    Some(&sink),
                )
                .await?;
            gateways.push(gw);
        }
        Ok(Self {
            paths: paths.to_vec(),
            gateways,
            _sink: sink,
        })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.gateways.iter().filter_map(|g| g.pid).collect()
    }

    /// The targets of the paths beyond the reference, to append to a list of `base_len`
    /// targets in which the OpenAI direct baseline is at `openai_direct` and the reference
    /// gateway at `reference`.
    pub fn plan(
        &self,
        env: &Env,
        base_len: usize,
        openai_direct: usize,
        reference: usize,
        stream: bool,
        directives: &str,
    ) -> Plan {
        let (slots, added) = layout(&self.paths, base_len, openai_direct, reference);
        let targets = added
            .into_iter()
            .map(|t| match t {
                NewTarget::Direct(wire) => {
                    env.direct_in(wire.api(), wire.direct_model(), stream, directives)
                }
                NewTarget::Gateway(n) => {
                    let (p, gw) = (self.paths[n + 1], &self.gateways[n]);
                    let via =
                        Endpoint::local_api(gw.endpoint.addr, p.api(), p.wire().gateway_model());
                    crate::scenarios::workload(via, stream, directives)
                }
            })
            .collect();
        Plan { targets, slots }
    }

    pub fn stop(self) {
        for g in self.gateways {
            g.stop();
        }
    }
}

/// A target a plan appends: a wire's direct baseline, or the gateway of the `n`th path
/// beyond the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NewTarget {
    Direct(Wire),
    Gateway(usize),
}

/// Each path's (direct, gateway) indices, and the targets to append for them after
/// `base_len`. A wire's direct baseline is shared by its paths; the reference's two are
/// already in the list.
fn layout(
    paths: &[ApiPath],
    base_len: usize,
    openai_direct: usize,
    reference: usize,
) -> (Vec<(ApiPath, usize, usize)>, Vec<NewTarget>) {
    let mut added = Vec::new();
    let mut directs: Vec<(Wire, usize)> = vec![(Wire::OpenAi, openai_direct)];
    let mut slots = vec![(ApiPath::REFERENCE, openai_direct, reference)];
    for (n, p) in paths.iter().skip(1).enumerate() {
        let wire = p.wire();
        let direct = match directs.iter().find(|(w, _)| *w == wire) {
            Some(&(_, i)) => i,
            None => {
                let i = base_len + added.len();
                added.push(NewTarget::Direct(wire));
                directs.push((wire, i));
                i
            }
        };
        slots.push((*p, direct, base_len + added.len()));
        added.push(NewTarget::Gateway(n));
    }
    (slots, added)
}

/// Sends one request down a path before it is measured, so a gateway without the path's
/// endpoint (or without the provider) stops the run with the reason instead of a run of
/// errors.
pub async fn check(path: ApiPath, w: &Workload) -> Result<()> {
    let mut conn = Conn::connect(w.endpoint.addr).await?;
    let (status, body) = conn
        .post_status(&w.endpoint, w.body.clone())
        .await
        .with_context(|| format!("path {}: the first request", path.name()))?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if matches!(status, 404 | 405) {
        bail!(
            "path {}: the gateway answers {status} on {}: this build does not serve that API yet \
             (it answered: {text})",
            path.name(),
            w.endpoint.path
        );
    }
    bail!(
        "path {}: the gateway answers {status} on {} (model {}): {text}",
        path.name(),
        w.endpoint.path,
        w.endpoint.model
    )
}

impl Plan {
    /// Checks every path's direct and gateway targets in `all` (the scenario's targets with
    /// these appended).
    pub async fn check(&self, all: &[Workload]) -> Result<()> {
        for &(path, direct, via) in &self.slots {
            for i in [direct, via] {
                if let Some(w) = all.get(i) {
                    check(path, w).await?;
                }
            }
        }
        Ok(())
    }

    /// Per-path rows from the scenario's results. `cpu_us` gives the CPU per request of each
    /// path's gateway, the reference's included.
    pub fn latency_rows(
        &self,
        results: &[RunResult],
        cpu_us: impl Fn(usize, &RunResult) -> f64,
    ) -> Result<Vec<PathLatency>> {
        let mut rows = Vec::new();
        let mut reference = Added::default();
        for (n, &(path, direct, via)) in self.slots.iter().enumerate() {
            let (Some(d), Some(g)) = (results.get(direct), results.get(via)) else {
                bail!("path {}: no results for its targets", path.name());
            };
            let (ds, gs) = (d.latencies.summary(), g.latencies.summary());
            let added = Added::between(&ds, &gs);
            if n == 0 {
                reference = added;
            }
            rows.push(PathLatency {
                path: path.name().to_owned(),
                direct: ds,
                gateway: gs,
                added,
                vs_reference: added.minus(&reference),
                gateway_cpu_us: cpu_us(n, g),
                errors: d.errors + g.errors,
            });
        }
        Ok(rows)
    }

    pub fn streaming_rows(&self, results: &[RunResult]) -> Result<Vec<PathStreaming>> {
        let mut rows = Vec::new();
        let mut reference = (Added::default(), Added::default());
        for (n, &(path, direct, via)) in self.slots.iter().enumerate() {
            let (Some(d), Some(g)) = (results.get(direct), results.get(via)) else {
                bail!("path {}: no results for its targets", path.name());
            };
            let (Some(ds), Some(gs)) = (&d.stream, &g.stream) else {
                bail!("path {}: the run kept no stream statistics", path.name());
            };
            let (td, tg) = (ds.first_frame.summary(), gs.first_frame.summary());
            let (gd, gg) = (ds.max_content_gap.summary(), gs.max_content_gap.summary());
            let added_ttfc = Added::between(&td, &tg);
            let added_max_gap = Added::between(&gd, &gg);
            if n == 0 {
                reference = (added_ttfc, added_max_gap);
            }
            rows.push(PathStreaming {
                path: path.name().to_owned(),
                direct_streams: d.ok,
                gateway_streams: g.ok,
                ttfc_direct: td,
                ttfc_gateway: tg,
                added_ttfc,
                vs_reference_ttfc: added_ttfc.minus(&reference.0),
                max_gap_direct: gd,
                max_gap_gateway: gg,
                added_max_gap,
                vs_reference_max_gap: added_max_gap.minus(&reference.1),
                content_per_frame_direct: per_frame(ds.content_events, ds.content_frames),
                content_per_frame_gateway: per_frame(gs.content_events, gs.content_frames),
                errors: d.errors + g.errors,
            });
        }
        Ok(rows)
    }
}

fn per_frame(events: u64, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        events as f64 / frames as f64
    }
}

/// CPU seconds of the run as µs per answered request.
fn per_request(cpu_s: f64, r: &RunResult) -> f64 {
    cpu_s * 1e6 / r.ok.max(1) as f64
}

/// The c=1 figures, from the latency scenario's interleaved results; `cpu_s` holds the CPU
/// seconds of the reference gateway, then of each path's, over the same run.
pub fn c1_rows(plan: &Plan, results: &[RunResult], cpu_s: &[f64]) -> Result<Vec<PathLatency>> {
    plan.latency_rows(results, |n, r| {
        per_request(cpu_s.get(n).copied().unwrap_or_default(), r)
    })
}

/// Every path at c=32, closed loop, the targets alternated in rounds, then the c=1 rows
/// beside them.
pub async fn loaded(
    env: &Env,
    set: &PathSet,
    reference: &Gateway,
    c1: Vec<PathLatency>,
) -> Result<PathsLatency> {
    let secs = env.opts.secs(6.0, 0.3);
    let rounds = if env.opts.smoke { 1 } else { 3 };
    let mut targets = vec![
        env.direct(false, ""),
        crate::scenarios::via(reference, false, ""),
    ];
    let plan = set.plan(env, targets.len(), 0, 1, false, "");
    targets.extend(plan.targets.iter().cloned());
    for t in &targets {
        load::closed_loop(t, LOADED_CONCURRENCY, env.opts.warm_secs()).await?;
    }
    let mut pids: Vec<u32> = reference.pid.into_iter().collect();
    pids.extend(set.pids());
    let meter = CpuMeter::start(&pids);
    let results =
        load::alternating(&targets, LOADED_CONCURRENCY, secs, rounds, Duration::ZERO).await?;
    let cpu_s = meter.finish();
    crate::scenarios::report_errors("latency, paths at c=32", &results);
    let loaded = plan.latency_rows(&results, |n, r| {
        per_request(cpu_s.get(n).copied().unwrap_or_default(), r)
    })?;
    Ok(PathsLatency {
        c1,
        concurrency: LOADED_CONCURRENCY,
        seconds_per_target: secs.as_secs_f64(),
        loaded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_one_wire_share_its_direct_baseline_and_the_reference_adds_nothing() {
        let paths = [
            ApiPath::ChatOpenai,
            ApiPath::ChatAnthropic,
            ApiPath::ResponsesOpenai,
            ApiPath::MessagesAnthropic,
        ];
        // Five targets already: direct 0, relay 1, gateways 2..5, the reference at 3.
        let (slots, added) = layout(&paths, 5, 0, 3);
        assert_eq!(
            added,
            vec![
                NewTarget::Direct(Wire::Anthropic),
                NewTarget::Gateway(0),
                NewTarget::Gateway(1),
                NewTarget::Gateway(2),
            ]
        );
        assert_eq!(
            slots,
            vec![
                (ApiPath::ChatOpenai, 0, 3),
                (ApiPath::ChatAnthropic, 5, 6),
                (ApiPath::ResponsesOpenai, 0, 7),
                (ApiPath::MessagesAnthropic, 5, 8),
            ]
        );
        let (slots, added) = layout(&[ApiPath::ChatOpenai], 3, 0, 2);
        assert!(added.is_empty());
        assert_eq!(slots, vec![(ApiPath::ChatOpenai, 0, 2)]);
    }
}
