//! The report: what each scenario measured, the DESIGN §8 targets checked against it, as JSON
//! for machines and a markdown table for people.
//!
//! Thresholds live here and only here: the CI smoke run checks that the harness works, never
//! that a number is good.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hist::{Added, Summary};
use crate::load::OpenLoopStats;
use crate::path_report::{self, PathsLatency, PathsStreaming};
use crate::telemetry_work::TelemetryCost;
use gatecast_mock::otlp::Counts;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub meta: Meta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryCost>,
    pub targets: Vec<TargetCheck>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Meta {
    pub version: String,
    pub command: String,
    pub started_unix_s: u64,
    pub duration_s: f64,
    pub smoke: bool,
    pub profile: String,
    /// `gatecast` for the built-in gateway, else the `--target` URL.
    pub gateway: String,
    pub destinations: String,
    pub otlp_compression: String,
    pub pin: Option<crate::procs::PinLayout>,
    /// The gateways' `server.busy_poll_us` (0: off).
    pub busy_poll_us: u64,
    /// The gateways' `telemetry.delivery_priority`, when the run set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_priority: Option<String>,
    /// The destinations' `spool_mode`, when the run gave them a spool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_mode: Option<String>,
    pub client_threads: usize,
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    /// `/proc/loadavg` before and after the run: what else was using the machine.
    pub load_before: String,
    pub load_after: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyReport {
    pub requests_per_target: u64,
    pub direct: Summary,
    /// A relay that parses nothing, in the same interleaved run: what any second hop costs
    /// on this machine, so the gateway's own share can be read off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop_floor: Option<LatencyRow>,
    pub rows: Vec<LatencyRow>,
    pub errors: u64,
    /// `--path`: each client API onto each provider wire, beside chat → OpenAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<PathsLatency>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyRow {
    pub setup: String,
    pub destinations: usize,
    pub summary: Summary,
    pub added: Added,
    /// The gateway's own CPU time per request during the run (user + system).
    pub gateway_cpu_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_sink: Option<Counts>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ThroughputReport {
    pub seconds_per_run: f64,
    pub rows: Vec<ThroughputRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_loop: Option<OpenLoopRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_sink: Option<Counts>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ThroughputRow {
    pub concurrency: usize,
    /// Destinations on the gateway; the targets are judged on the rows with two.
    pub destinations: usize,
    pub direct_rps: f64,
    pub gateway_rps: f64,
    /// gateway / direct.
    pub ratio: f64,
    pub direct: Summary,
    pub gateway: Summary,
    pub errors: u64,
    pub direct_cpu: CpuPerRequest,
    pub gateway_cpu: CpuPerRequest,
}

/// CPU time per request of each process, from `/proc/PID/stat`: on two shared cores, the
/// throughput ratio is roughly direct total / gateway-path total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuPerRequest {
    pub client_us: f64,
    pub mock_us: f64,
    pub gateway_us: f64,
}

impl CpuPerRequest {
    pub fn total_us(&self) -> f64 {
        self.client_us + self.mock_us + self.gateway_us
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenLoopRow {
    pub connections: usize,
    pub direct: Summary,
    pub gateway: Summary,
    pub added: Added,
    pub direct_stats: OpenLoopStats,
    pub gateway_stats: OpenLoopStats,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamingReport {
    pub concurrency: usize,
    pub chunks: usize,
    pub chunk_delay_ms: u64,
    pub direct_streams: u64,
    pub gateway_streams: u64,
    pub ttfc_direct: Summary,
    pub ttfc_gateway: Summary,
    pub added_ttfc: Added,
    pub max_gap_direct: Summary,
    pub max_gap_gateway: Summary,
    pub added_max_gap: Added,
    /// SSE events per body frame: above 1 means a hop held events back and sent them together.
    pub events_per_frame_direct: f64,
    pub events_per_frame_gateway: f64,
    pub total_direct: Summary,
    pub total_gateway: Summary,
    pub errors: u64,
    /// The TCP relay (the floor of any second hop), in the same alternating run.
    pub ttfc_relay: Summary,
    pub added_ttfc_relay: Added,
    /// `--baseline-bin`'s gateway, 2 destinations, in the same alternating run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<StreamBaseline>,
    /// The streams' starts were spread over this long (one stream's length).
    pub start_spread_ms: u64,
    /// Direct and gateway alternated this many times.
    pub rounds: u32,
    /// All streams started together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<StreamBurst>,
    /// `--path`: each client API onto each provider wire, in the same rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<PathsStreaming>,
}

/// The second build's time to first chunk, from the same rounds as the others.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamBaseline {
    pub bin: String,
    pub ttfc: Summary,
    pub added_ttfc: Added,
}

/// Time to first chunk when every stream starts at the same moment: the closed loop keeps
/// them in lockstep, so each start queues behind the others on both paths.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamBurst {
    pub direct_streams: u64,
    pub gateway_streams: u64,
    pub ttfc_direct: Summary,
    pub ttfc_gateway: Summary,
    pub added_ttfc: Added,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryReport {
    pub idle_mb: f64,
    pub load_concurrency: usize,
    pub load_seconds: f64,
    pub load_rps: f64,
    pub load_peak_mb: f64,
    pub after_load_mb: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_destination: Option<DeadDestination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DeadDestination {
    /// The judged part of the load.
    pub seconds: f64,
    /// Load before the judged part, while the allocator's heaps grow to their working size
    /// (with live destinations too, RSS climbs for about 30 s at this rate).
    pub settle_seconds: f64,
    pub concurrency: usize,
    pub rps: f64,
    /// (seconds since load started, RSS MB), settling included.
    pub samples: Vec<(f64, f64)>,
    pub plateau: Plateau,
    /// From the gateway's `/metrics`: records the dead destination dropped for a full queue.
    pub dropped_queue_full: Option<u64>,
    pub blackhole_connections: u64,
    /// The gateway's connections to the dead destination still open at the end: each is an
    /// export that timed out without its connection being closed.
    pub gateway_connections_open: Option<u64>,
}

/// Bounded means the second half of the run adds (almost) nothing over the first half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Plateau {
    pub first_half_max_mb: f64,
    pub second_half_max_mb: f64,
    pub growth_mb: f64,
    /// Least-squares RSS slope over the second half: what the verdict reads. A step while
    /// the heaps grow, then flat, is a plateau; a leak climbs in the second half too.
    pub slope_mb_per_min: f64,
    /// The same after warm-up over the whole window, for the record.
    pub window_slope_mb_per_min: f64,
    pub bounded: bool,
}

/// Allocator noise and a late-growing connection pool stay within this; a leak or an
/// unbounded queue at thousands of records per second does not.
pub const PLATEAU_TOLERANCE_MB: f64 = 4.0;

/// A steady climb smaller than the noise of two maxima still shows in the slope.
pub const PLATEAU_MAX_SLOPE_MB_PER_MIN: f64 = 2.0;

/// MB per minute from a least-squares line through the samples.
pub fn slope_mb_per_min(rest: &[(f64, f64)]) -> f64 {
    let n = rest.len() as f64;
    if rest.len() < 2 {
        return 0.0;
    }
    let (mt, mm) = rest
        .iter()
        .fold((0.0, 0.0), |(a, b), &(t, m)| (a + t / n, b + m / n));
    let (num, den) = rest.iter().fold((0.0, 0.0), |(num, den), &(t, m)| {
        (num + (t - mt) * (m - mm), den + (t - mt) * (t - mt))
    });
    if den > 0.0 {
        num / den * 60.0
    } else {
        0.0
    }
}

impl Plateau {
    /// The first 10% is warm-up (queues filling, pools opening) and is left out.
    pub fn of(samples: &[(f64, f64)]) -> Self {
        if samples.len() < 4 {
            return Self::default();
        }
        let skip = samples.len() / 10;
        let rest = &samples[skip..];
        let mid = rest.len() / 2;
        let max = |s: &[(f64, f64)]| s.iter().map(|&(_, mb)| mb).fold(0.0, f64::max);
        let first = max(&rest[..mid]);
        let second = max(&rest[mid..]);
        let growth = second - first;
        let slope = slope_mb_per_min(&rest[mid..]);
        Self {
            first_half_max_mb: first,
            second_half_max_mb: second,
            growth_mb: growth,
            slope_mb_per_min: slope,
            window_slope_mb_per_min: slope_mb_per_min(rest),
            bounded: growth <= PLATEAU_TOLERANCE_MB && slope <= PLATEAU_MAX_SLOPE_MB_PER_MIN,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetCheck {
    pub target: String,
    pub threshold: String,
    pub measured: String,
    /// `None` when the scenario did not run.
    pub met: Option<bool>,
}

impl Report {
    /// Fills [`Report::targets`] from DESIGN §8.
    pub fn evaluate(&mut self) {
        let mut t = Vec::new();
        let two_dest = self.latency.as_ref().and_then(|l| {
            l.rows
                .iter()
                .find(|r| r.destinations == 2)
                .or(l.rows.last())
        });
        t.push(check(
            "added latency p50, c=1, 2 destinations",
            "≤ 50 µs",
            two_dest.map(|r| r.added.p50_us),
            |v| v <= 50.0,
            us,
        ));
        t.push(check(
            "added latency p99, c=1, 2 destinations",
            "≤ 100 µs",
            two_dest.map(|r| r.added.p99_us),
            |v| v <= 100.0,
            us,
        ));
        let rows = self.throughput.as_ref().map(|t| &t.rows);
        for c in [32, 64] {
            let row = rows.and_then(|rows| {
                rows.iter()
                    .find(|r| r.concurrency == c && r.destinations == 2)
            });
            t.push(check(
                &format!("throughput, c={c}, gateway/direct"),
                "≥ 40%",
                row.map(|r| r.ratio),
                |v| v >= 0.40,
                |v| format!("{:.0}%", v * 100.0),
            ));
        }
        let s = self.streaming.as_ref();
        t.push(check(
            "streaming: added time to first chunk (p50)",
            "≤ 100 µs",
            s.map(|s| s.added_ttfc.p50_us),
            |v| v <= 100.0,
            us,
        ));
        t.push(TargetCheck {
            target: "streaming: no buffering between chunks".into(),
            threshold: "events/frame as direct; added max gap p99 < 1 ms".into(),
            measured: s.map_or_else(
                || "not run".into(),
                |s| {
                    format!(
                        "{:.2} vs {:.2} events/frame; {} added max gap",
                        s.events_per_frame_gateway,
                        s.events_per_frame_direct,
                        us(s.added_max_gap.p99_us)
                    )
                },
            ),
            met: s.map(|s| {
                s.events_per_frame_gateway <= s.events_per_frame_direct * 1.05 + 0.01
                    && s.added_max_gap.p99_us < 1000.0
            }),
        });
        let m = self.memory.as_ref();
        t.push(check(
            "memory: RSS idle",
            "< 30 MB",
            m.map(|m| m.idle_mb),
            |v| v < 30.0,
            mb,
        ));
        t.push(check(
            "memory: RSS at full load",
            "< 100 MB",
            m.map(|m| m.load_peak_mb),
            |v| v < 100.0,
            mb,
        ));
        let dead = m.and_then(|m| m.dead_destination.as_ref());
        t.push(TargetCheck {
            target: "memory: bounded with a dead destination".into(),
            threshold: format!(
                "plateau (2nd-half growth ≤ {PLATEAU_TOLERANCE_MB} MB, 2nd-half slope ≤ {PLATEAU_MAX_SLOPE_MB_PER_MIN} MB/min)"
            ),
            measured: dead.map_or_else(
                || "not run".into(),
                |d| {
                    format!(
                        "{} → {} ({:+.1} MB, {:+.1} MB/min in the 2nd half) over {:.0} s after {:.0} s",
                        mb(d.plateau.first_half_max_mb),
                        mb(d.plateau.second_half_max_mb),
                        d.plateau.growth_mb,
                        d.plateau.slope_mb_per_min,
                        d.seconds,
                        d.settle_seconds
                    )
                },
            ),
            met: dead.map(|d| d.plateau.bounded),
        });
        t.push(check(
            "telemetry CPU per request (amortised)",
            "≤ 10 µs",
            self.telemetry.as_ref().map(|c| c.per_request_us),
            |v| v <= 10.0,
            |v| format!("{v:.2} µs"),
        ));
        t.extend(path_report::checks(
            self.latency.as_ref().and_then(|l| l.paths.as_ref()),
            self.streaming.as_ref().and_then(|s| s.paths.as_ref()),
        ));
        self.targets = t;
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.meta;
        let _ = writeln!(
            md,
            "## gatecast-bench {}{}\n\n`{}`\n\n{} × {} ({} cores), kernel {}; gateway: {}; destinations: {}; \
             OTLP compression: {}; busy poll: {}; delivery priority: {}; spool: {}; profile: {}; pin: {}; load before/after: {} / {}; took {:.0} s\n",
            m.version,
            if m.smoke { " (smoke: numbers not meaningful)" } else { "" },
            m.command,
            m.cores,
            m.cpu_model,
            m.cores,
            m.kernel,
            m.gateway,
            m.destinations,
            m.otlp_compression,
            match m.busy_poll_us {
                0 => "off".to_owned(),
                us => format!("{us} µs"),
            },
            m.delivery_priority.as_deref().unwrap_or("gateway default"),
            m.spool_mode.as_deref().unwrap_or("none"),
            m.profile,
            m.pin
                .as_ref()
                .map_or_else(|| "off".to_owned(), |p| format!(
                    "bench {} / mock {} / gateway {}",
                    p.bench, p.mock, p.gateway
                )),
            m.load_before,
            m.load_after,
            m.duration_s,
        );
        if let Some(l) = &self.latency {
            let _ = writeln!(
                md,
                "### Latency, c=1 ({} requests per target, interleaved)\n\n\
                 | path | p50 | p90 | p99 | p99.9 | added p50 | added p90 | added p99 | added p99.9 | gateway CPU/req |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                l.requests_per_target
            );
            let d = &l.direct;
            let _ = writeln!(
                md,
                "| direct to mock | {} | {} | {} | {} | | | | | |",
                us(d.p50_us),
                us(d.p90_us),
                us(d.p99_us),
                us(d.p999_us)
            );
            for r in l.hop_floor.iter().chain(&l.rows) {
                let s = &r.summary;
                let a = &r.added;
                let cpu = if r.gateway_cpu_us > 0.0 {
                    us(r.gateway_cpu_us)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | **{}** | {} | **{}** | {} | {} |",
                    r.setup,
                    us(s.p50_us),
                    us(s.p90_us),
                    us(s.p99_us),
                    us(s.p999_us),
                    us(a.p50_us),
                    us(a.p90_us),
                    us(a.p99_us),
                    us(a.p999_us),
                    cpu
                );
            }
            let _ = writeln!(md, "\nerrors: {}\n", l.errors);
            if let Some(p) = &l.paths {
                p.to_markdown(&mut md, l.requests_per_target);
            }
        }
        if let Some(t) = &self.throughput {
            let _ = writeln!(
                md,
                "### Throughput, closed loop ({:.0} s per run)\n\n\
                 | c | destinations | direct rps | gateway rps | gateway/direct | direct p99 | gateway p99 | errors |\n\
                 |---:|---:|---:|---:|---:|---:|---:|---:|",
                t.seconds_per_run
            );
            for r in &t.rows {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | **{:.0}%** | {} | {} | {} |",
                    r.concurrency,
                    r.destinations,
                    r.direct_rps,
                    r.gateway_rps,
                    r.ratio * 100.0,
                    us(r.direct.p99_us),
                    us(r.gateway.p99_us),
                    r.errors
                );
            }
            let _ = writeln!(
                md,
                "\nCPU per request (user + system, from /proc):\n\n\
                 | c | destinations | path | load generator | mock | gateway | total |\n\
                 |---:|---:|---|---:|---:|---:|---:|"
            );
            for r in &t.rows {
                for (path, cpu) in [("direct", &r.direct_cpu), ("gateway", &r.gateway_cpu)] {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {path} | {} | {} | {} | {} |",
                        r.concurrency,
                        r.destinations,
                        us(cpu.client_us),
                        us(cpu.mock_us),
                        us(cpu.gateway_us),
                        us(cpu.total_us())
                    );
                }
            }
            if let Some(o) = &t.open_loop {
                let _ = writeln!(
                    md,
                    "\nOpen loop at {:.0} rps over {} connections, latency from the intended send time:\n\n\
                     | path | achieved rps | p50 | p90 | p99 | p99.9 | not sent |\n|---|---:|---:|---:|---:|---:|---:|",
                    o.direct_stats.rate, o.connections
                );
                for (name, s, st) in [
                    ("direct", &o.direct, &o.direct_stats),
                    ("gateway", &o.gateway, &o.gateway_stats),
                ] {
                    let _ = writeln!(
                        md,
                        "| {name} | {:.0} | {} | {} | {} | {} | {} |",
                        st.achieved_rps,
                        us(s.p50_us),
                        us(s.p90_us),
                        us(s.p99_us),
                        us(s.p999_us),
                        st.not_sent
                    );
                }
                let _ = writeln!(
                    md,
                    "| added | | {} | {} | {} | {} | |",
                    us(o.added.p50_us),
                    us(o.added.p90_us),
                    us(o.added.p99_us),
                    us(o.added.p999_us)
                );
            }
            if let Some(s) = &t.otlp_sink {
                let _ = writeln!(
                    md,
                    "\nOTLP sink during the closed-loop runs through the gateway: {} exports, {} bytes.",
                    s.requests, s.bytes
                );
            }
            md.push('\n');
        }
        if let Some(s) = &self.streaming {
            let _ = writeln!(
                md,
                "### Streaming ({} chunks, {} ms apart, c={}; {} direct / {} gateway streams)\n\n\
                 Stream starts spread over {} ms; direct and gateway alternated {} times.\n\n\
                 | measure | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | added p99 |\n\
                 |---|---:|---:|---:|---:|---:|---:|",
                s.chunks,
                s.chunk_delay_ms,
                s.concurrency,
                s.direct_streams,
                s.gateway_streams,
                s.start_spread_ms,
                s.rounds
            );
            let mut rows = vec![
                (
                    "time to first chunk".to_owned(),
                    &s.ttfc_direct,
                    &s.ttfc_gateway,
                    &s.added_ttfc,
                ),
                (
                    "time to first chunk, TCP relay (the floor of a second hop)".to_owned(),
                    &s.ttfc_direct,
                    &s.ttfc_relay,
                    &s.added_ttfc_relay,
                ),
            ];
            if let Some(b) = &s.baseline {
                rows.push((
                    format!(
                        "time to first chunk, baseline build ({}), 2 destinations",
                        b.bin
                    ),
                    &s.ttfc_direct,
                    &b.ttfc,
                    &b.added_ttfc,
                ));
            }
            rows.push((
                "largest gap between chunks".to_owned(),
                &s.max_gap_direct,
                &s.max_gap_gateway,
                &s.added_max_gap,
            ));
            for (name, d, g, a) in rows {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | **{}** | {} | {} | **{}** |",
                    us(d.p50_us),
                    us(g.p50_us),
                    us(a.p50_us),
                    us(d.p99_us),
                    us(g.p99_us),
                    us(a.p99_us)
                );
            }
            let _ = writeln!(
                md,
                "| whole stream | {} | {} | {} | {} | {} | {} |\n\n\
                 SSE events per body frame: direct {:.2}, gateway {:.2}; errors: {}\n",
                us(s.total_direct.p50_us),
                us(s.total_gateway.p50_us),
                us(s.total_gateway.p50_us - s.total_direct.p50_us),
                us(s.total_direct.p99_us),
                us(s.total_gateway.p99_us),
                us(s.total_gateway.p99_us - s.total_direct.p99_us),
                s.events_per_frame_direct,
                s.events_per_frame_gateway,
                s.errors
            );
            if let Some(b) = &s.burst {
                let _ = writeln!(
                    md,
                    "All {} streams starting together ({} direct / {} gateway streams):\n\n\
                     | measure | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | added p99 |\n\
                     |---|---:|---:|---:|---:|---:|---:|\n\
                     | time to first chunk | {} | {} | **{}** | {} | {} | **{}** |\n",
                    s.concurrency,
                    b.direct_streams,
                    b.gateway_streams,
                    us(b.ttfc_direct.p50_us),
                    us(b.ttfc_gateway.p50_us),
                    us(b.added_ttfc.p50_us),
                    us(b.ttfc_direct.p99_us),
                    us(b.ttfc_gateway.p99_us),
                    us(b.added_ttfc.p99_us)
                );
            }
            if let Some(p) = &s.paths {
                p.to_markdown(&mut md);
            }
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                md,
                "### Memory (gateway RSS)\n\n| state | RSS |\n|---|---:|\n\
                 | idle, fresh start | {} |\n| peak under load (c={}, {:.0} s, {:.0} rps) | {} |\n| idle after load | {} |",
                mb(m.idle_mb),
                m.load_concurrency,
                m.load_seconds,
                m.load_rps,
                mb(m.load_peak_mb),
                mb(m.after_load_mb)
            );
            if let Some(d) = &m.dead_destination {
                let series: Vec<String> = d
                    .samples
                    .iter()
                    .map(|(t, mb)| format!("{t:.1}s {mb:.1}"))
                    .collect();
                let _ = writeln!(
                    md,
                    "| dead destination, max of 1st half → 2nd half of {:.0} s after {:.0} s of the same load (c={}, {:.0} rps) | {} → {} ({}) |\n\n\
                     Dead-destination samples from the start of the load (MB): {}\n\n\
                     Records the dead destination dropped for a full queue: {}; connections it accepted: {}, \
                     of which the gateway still held open at the end: {}; RSS slope in the 2nd half: {:+.2} MB/min, \
                     over the whole window after warm-up: {:+.2} MB/min",
                    d.seconds,
                    d.settle_seconds,
                    d.concurrency,
                    d.rps,
                    mb(d.plateau.first_half_max_mb),
                    mb(d.plateau.second_half_max_mb),
                    if d.plateau.bounded { "plateau" } else { "growing" },
                    series.join(", "),
                    d.dropped_queue_full
                        .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
                    d.blackhole_connections,
                    d.gateway_connections_open
                        .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
                    d.plateau.slope_mb_per_min,
                    d.plateau.window_slope_mb_per_min
                );
            }
            if let Some(note) = &m.note {
                let _ = writeln!(md, "\n{note}");
            }
            md.push('\n');
        }
        if let Some(c) = &self.telemetry {
            let _ = writeln!(
                md,
                "### Telemetry CPU per request\n\n\
                 | batch | per request | unbatched | spans only | protobuf B/req | JSON B/req |\n\
                 |---:|---:|---:|---:|---:|---:|\n| {}{} | **{:.2} µs** | {:.2} µs | {:.2} µs | {:.0} | {:.0} |\n",
                c.batch,
                if c.gzip { " (gzip)" } else { "" },
                c.per_request_us,
                c.per_request_unbatched_us,
                c.spans_us,
                c.protobuf_bytes_per_request,
                c.json_bytes_per_request
            );
        }
        let _ = writeln!(
            md,
            "### Targets (DESIGN §8)\n\n| target | threshold | measured | |\n|---|---|---|---|"
        );
        for c in &self.targets {
            let verdict = match c.met {
                // A smoke run checks the harness; judging its numbers would only teach people to
                // ignore the column.
                Some(_) if self.meta.smoke => "(smoke)",
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not run",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                c.target, c.threshold, c.measured, verdict
            );
        }
        md
    }
}

fn check(
    target: &str,
    threshold: &str,
    value: Option<f64>,
    ok: impl Fn(f64) -> bool,
    show: impl Fn(f64) -> String,
) -> TargetCheck {
    TargetCheck {
        target: target.to_owned(),
        threshold: threshold.to_owned(),
        measured: value.map_or_else(|| "not run".to_owned(), &show),
        met: value.map(ok),
    }
}

pub fn us(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v.abs() >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

pub fn mb(v: f64) -> String {
    format!("{v:.1} MB")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn summary(p50: f64, p99: f64) -> Summary {
        Summary {
            count: 100,
            p50_us: p50,
            p90_us: p50,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
            mean_us: p50,
        }
    }

    fn full_report() -> Report {
        let direct = summary(40.0, 60.0);
        let gw = summary(80.0, 150.0);
        Report {
            latency: Some(LatencyReport {
                requests_per_target: 100,
                direct,
                hop_floor: Some(LatencyRow {
                    setup: "TCP relay".into(),
                    destinations: 0,
                    summary: summary(45.0, 60.0),
                    added: Added::between(&direct, &summary(45.0, 60.0)),
                    gateway_cpu_us: 0.0,
                    otlp_sink: None,
                }),
                rows: vec![
                    LatencyRow {
                        setup: "gateway, 0 destinations".into(),
                        destinations: 0,
                        summary: summary(60.0, 100.0),
                        added: Added::between(&direct, &summary(60.0, 100.0)),
                        gateway_cpu_us: 50.0,
                        otlp_sink: None,
                    },
                    LatencyRow {
                        setup: "gateway, 2 destinations".into(),
                        destinations: 2,
                        summary: gw,
                        added: Added::between(&direct, &gw),
                        gateway_cpu_us: 70.0,
                        otlp_sink: None,
                    },
                ],
                errors: 0,
                paths: None,
            }),
            throughput: Some(ThroughputReport {
                seconds_per_run: 1.0,
                rows: vec![
                    ThroughputRow {
                        concurrency: 32,
                        destinations: 2,
                        direct_rps: 1000.0,
                        gateway_rps: 500.0,
                        ratio: 0.5,
                        ..ThroughputRow::default()
                    },
                    ThroughputRow {
                        concurrency: 64,
                        destinations: 2,
                        direct_rps: 1000.0,
                        gateway_rps: 300.0,
                        ratio: 0.3,
                        ..ThroughputRow::default()
                    },
                    // Diagnostic row: never what the target is judged on.
                    ThroughputRow {
                        concurrency: 64,
                        destinations: 0,
                        direct_rps: 1000.0,
                        gateway_rps: 900.0,
                        ratio: 0.9,
                        ..ThroughputRow::default()
                    },
                ],
                open_loop: None,
                otlp_sink: None,
            }),
            streaming: Some(StreamingReport {
                events_per_frame_direct: 1.0,
                events_per_frame_gateway: 1.0,
                added_ttfc: Added {
                    p50_us: 70.0,
                    ..Added::default()
                },
                ..StreamingReport::default()
            }),
            memory: Some(MemoryReport {
                idle_mb: 12.0,
                load_peak_mb: 140.0,
                dead_destination: Some(DeadDestination {
                    plateau: Plateau::of(
                        &(0..20)
                            .map(|i| {
                                (
                                    f64::from(i),
                                    if i == 0 {
                                        10.0
                                    } else {
                                        20.0 + f64::from(i % 2)
                                    },
                                )
                            })
                            .collect::<Vec<_>>(),
                    ),
                    ..DeadDestination::default()
                }),
                ..MemoryReport::default()
            }),
            telemetry: Some(TelemetryCost {
                per_request_us: 4.0,
                ..TelemetryCost::default()
            }),
            ..Report::default()
        }
    }

    fn verdict(r: &Report, prefix: &str) -> Option<bool> {
        r.targets
            .iter()
            .find(|t| t.target.starts_with(prefix))
            .unwrap_or_else(|| panic!("no target {prefix}"))
            .met
    }

    #[test]
    fn targets_are_judged_on_the_two_destination_row() {
        let mut r = full_report();
        r.evaluate();
        // 80 - 40 = 40 µs ≤ 50; 150 - 60 = 90 µs ≤ 100.
        assert_eq!(verdict(&r, "added latency p50"), Some(true));
        assert_eq!(verdict(&r, "added latency p99"), Some(true));
        assert_eq!(verdict(&r, "throughput, c=32"), Some(true));
        assert_eq!(verdict(&r, "throughput, c=64"), Some(false));
        assert_eq!(verdict(&r, "streaming: added time"), Some(true));
        assert_eq!(verdict(&r, "streaming: no buffering"), Some(true));
        assert_eq!(verdict(&r, "memory: RSS idle"), Some(true));
        assert_eq!(verdict(&r, "memory: RSS at full load"), Some(false));
        assert_eq!(verdict(&r, "memory: bounded"), Some(true));
        assert_eq!(verdict(&r, "telemetry"), Some(true));
    }

    #[test]
    fn scenarios_not_run_are_not_judged() {
        let mut r = Report::default();
        r.evaluate();
        assert_eq!(r.targets.len(), 10);
        assert!(r.targets.iter().all(|t| t.met.is_none()));
        assert!(r.targets.iter().all(|t| t.measured == "not run"));
    }

    #[test]
    fn coalescing_counts_as_buffering() {
        let mut r = full_report();
        if let Some(s) = &mut r.streaming {
            s.events_per_frame_gateway = 3.0;
        }
        r.evaluate();
        assert_eq!(verdict(&r, "streaming: no buffering"), Some(false));
    }

    #[test]
    fn plateau_ignores_warm_up_and_flags_growth() {
        let flat: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64, if i < 5 { 10.0 + i as f64 * 5.0 } else { 40.0 }))
            .collect();
        assert!(Plateau::of(&flat).bounded);
        let leak: Vec<(f64, f64)> = (0..60).map(|i| (i as f64, 20.0 + i as f64)).collect();
        let p = Plateau::of(&leak);
        assert!(!p.bounded, "{p:?}");
        assert!(p.growth_mb > 20.0);
        assert!((slope_mb_per_min(&leak) - 60.0).abs() < 1e-6);
        assert!(Plateau::of(&flat).slope_mb_per_min.abs() < 1e-6);
        assert_eq!(slope_mb_per_min(&[]), 0.0);
        assert!(!Plateau::of(&[]).bounded);
        // A step in the first half, then flat: the heaps grew once.
        let step: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64, if i < 20 { 35.0 } else { 42.0 }))
            .collect();
        let p = Plateau::of(&step);
        assert!(p.bounded, "{p:?}");
        assert!(p.window_slope_mb_per_min > 2.0, "{p:?}");
        // A slow climb that the maxima of two halves cannot tell from noise.
        let creep: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64, 40.0 + i as f64 * 0.05))
            .collect();
        let p = Plateau::of(&creep);
        assert!(p.growth_mb <= PLATEAU_TOLERANCE_MB && !p.bounded, "{p:?}");
    }

    #[test]
    fn markdown_has_every_section_and_the_verdicts() {
        let mut r = full_report();
        r.evaluate();
        let md = r.to_markdown();
        for needle in [
            "### Latency",
            "| gateway, 2 destinations |",
            "**40.0 µs**",
            // The relay has no gateway CPU to show, and is not what the targets judge.
            "| TCP relay | 45.0 µs |",
            "| **5.0 µs** |",
            "### Throughput",
            "**50%**",
            "### Streaming",
            "### Memory",
            "### Telemetry",
            "### Targets",
            "**missed**",
        ] {
            assert!(md.contains(needle), "missing {needle}:\n{md}");
        }
        // Every table row has as many cells as its header.
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(
                cells.windows(2).all(|w| w[0] == w[1]),
                "ragged table:\n{table}"
            );
        }
    }

    #[test]
    fn smoke_runs_are_not_judged_in_the_table() {
        let mut r = full_report();
        r.meta.smoke = true;
        r.evaluate();
        let md = r.to_markdown();
        assert!(!md.contains("**missed**") && md.contains("(smoke)"), "{md}");
    }

    #[test]
    fn json_round_trips_as_a_value() {
        let mut r = full_report();
        r.evaluate();
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["latency"]["rows"][1]["added"]["p50_us"], 40.0);
        assert_eq!(v["targets"].as_array().unwrap().len(), 10);
        assert!(v.get("meta").is_some());
    }

    #[test]
    fn units_read_well() {
        assert_eq!(us(12.34), "12.3 µs");
        assert_eq!(us(-5.0), "-5.0 µs");
        assert_eq!(us(250.4), "250 µs");
        assert_eq!(us(12_345.0), "12.3 ms");
        assert_eq!(mb(12.345), "12.3 MB");
    }
}
