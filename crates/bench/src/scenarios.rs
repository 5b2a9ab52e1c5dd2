//! The scenarios. Each one measures the direct-to-mock baseline and the gateway path in the
//! same run, on the same machine, and reports the difference: absolute numbers from a shared
//! 2-core box say little, the gap between the two paths says what the gateway costs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http::header::{HeaderName, HeaderValue};

use crate::api_path::{ApiPath, ClientApi, Wire};
use crate::client::{Conn, Endpoint};
use crate::gwconfig::{self, Compression, DestinationSet, GatewaySetup};
use crate::hist::Added;
use crate::load::{self, Workload};
use crate::path_report::PathsStreaming;
use crate::path_runs::{self, PathSet};
use crate::procs::{self, Binaries, CpuMeter, PinLayout, Proc};
use crate::relay::Relay;
use crate::report::{
    CpuPerRequest, DeadDestination, LatencyReport, LatencyRow, MemoryReport, OpenLoopRow, Plateau,
    StreamBaseline, StreamBurst, StreamingReport, ThroughputReport, ThroughputRow,
};
use crate::sink::{OtlpSink, SinkMode};

pub const STREAM_CHUNKS: usize = 20;
pub const STREAM_CHUNK_DELAY_MS: u64 = 5;

/// Another vendor's gateway, measured with the same scenarios.
#[derive(Clone, Debug)]
pub struct ExternalTarget {
    pub url: String,
    pub model: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Its process, for the memory scenario.
    pub pid: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub smoke: bool,
    pub destinations: DestinationSet,
    pub compression: Compression,
    pub pin: Option<PinLayout>,
    pub busy_poll_us: u64,
    pub delivery_priority: Option<gwconfig::DeliveryPriority>,
    /// A spool in this mode for every destination of the gateways the bench starts.
    pub spool_mode: Option<gwconfig::SpoolMode>,
    pub target: Option<ExternalTarget>,
    pub mock_listen: Option<std::net::SocketAddr>,
    pub work_dir: PathBuf,
    pub latency_requests: Option<u64>,
    /// Another gatecast build, measured beside the gateway in the latency scenario.
    pub baseline_bin: Option<PathBuf>,
    pub streams: Option<usize>,
    pub seconds: Option<f64>,
    pub memory_seconds: Option<f64>,
    pub memory_settle_seconds: Option<f64>,
    pub rate: Option<f64>,
    /// `--path`: the reference first, then the other paths the latency and streaming
    /// scenarios measure beside it; `None` when only the reference was asked for.
    pub paths: Option<Vec<ApiPath>>,
}

impl Options {
    pub(crate) fn secs(&self, full: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(match (self.seconds, self.smoke) {
            (Some(s), _) => s,
            (None, true) => smoke,
            (None, false) => full,
        })
    }

    pub(crate) fn warm_secs(&self) -> Duration {
        Duration::from_secs_f64(if self.smoke { 0.2 } else { 1.0 })
    }
}

/// The settings a run gives the gateways it starts; a `--baseline-bin` gateway keeps the
/// gateway's defaults.
#[derive(Clone, Copy, Debug, Default)]
struct Tuning {
    delivery_priority: Option<gwconfig::DeliveryPriority>,
    spool_mode: Option<gwconfig::SpoolMode>,
    /// An Anthropic provider beside the OpenAI one, for `--path`s on that wire.
    anthropic: bool,
}

/// What every scenario shares: the mock, the counting OTLP sink, and how to start gateways.
pub struct Env {
    pub opts: Options,
    bins: Binaries,
    mock: Proc,
    pub sink: OtlpSink,
    target: Option<Endpoint>,
}

/// A gateway to measure: one this run started, or the external `--target`.
pub struct Gateway {
    pub endpoint: Arc<Endpoint>,
    proc: Option<Proc>,
    pub(crate) pid: Option<u32>,
    files: Vec<PathBuf>,
}

impl Gateway {
    fn rss_mb(&self) -> Result<Option<f64>> {
        match self.pid {
            Some(pid) => Ok(Some(procs::rss_kb(pid)? as f64 / 1024.0)),
            None => Ok(None),
        }
    }

    /// Stops the process and removes its trace files: a throughput run writes hundreds of MB.
    pub(crate) fn stop(self) {
        if let Some(p) = self.proc {
            p.stop();
        }
        for f in self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Env {
    pub async fn start(opts: Options, bins: Binaries) -> Result<Self> {
        std::fs::create_dir_all(&opts.work_dir)
            .with_context(|| format!("creating {}", opts.work_dir.display()))?;
        let mock_addr = match opts.mock_listen {
            Some(a) => a,
            None => format!("127.0.0.1:{}", procs::free_port()?).parse()?,
        };
        let mock = Proc::spawn(
            "gatecast-mock",
            &bins.mock,
            &["--listen".into(), mock_addr.to_string()],
            mock_addr,
            opts.pin.as_ref().map(|p| p.mock.as_str()),
            &opts.work_dir,
        )
        .await?;
        let sink = OtlpSink::start(SinkMode::Counting).await?;
        let target = match &opts.target {
            Some(t) => {
                let mut ep = Endpoint::from_base_url(&t.url, &t.model).await?;
                ep.headers.clone_from(&t.headers);
                Some(ep)
            }
            None => None,
        };
        Ok(Self {
            opts,
            bins,
            mock,
            sink,
            target,
        })
    }

    pub fn mock_addr(&self) -> std::net::SocketAddr {
        self.mock.addr
    }

    pub(crate) fn direct(&self, stream: bool, directives: &str) -> Workload {
        self.direct_in(ClientApi::Chat, gwconfig::DIRECT_MODEL, stream, directives)
    }

    /// A direct baseline in another API: what the gateway sends a provider of that wire.
    pub(crate) fn direct_in(
        &self,
        api: ClientApi,
        model: &str,
        stream: bool,
        directives: &str,
    ) -> Workload {
        workload(
            Endpoint::local_api(self.mock.addr, api, model),
            stream,
            directives,
        )
    }

    /// Measuring `--target`, another vendor's gateway.
    pub(crate) fn is_external(&self) -> bool {
        self.target.is_some()
    }

    /// Starts a gateway with `destinations` (`None`: none at all), its OTLP destination
    /// pointing at `otlp` (the counting sink unless given). Under `--target` this is the
    /// external gateway, whatever it is configured with.
    pub(crate) async fn gateway(
        &self,
        name: &str,
        destinations: Option<DestinationSet>,
        otlp: Option<&OtlpSink>,
    ) -> Result<Gateway> {
        if let Some(ep) = &self.target {
            return Ok(Gateway {
                endpoint: Arc::new(ep.clone()),
                proc: None,
                pid: self.opts.target.as_ref().and_then(|t| t.pid),
                files: Vec::new(),
            });
        }
        let Some(bin) = &self.bins.gateway else {
            bail!("no gateway binary");
        };
        let tuning = Tuning {
            delivery_priority: self.opts.delivery_priority,
            spool_mode: self.opts.spool_mode,
            anthropic: self
                .opts
                .paths
                .iter()
                .flatten()
                .any(|p| p.wire() == Wire::Anthropic),
        };
        self.gateway_from(bin, name, destinations, otlp, tuning)
            .await
    }

    /// A gateway of the given build, as [`Env::gateway`] starts them.
    async fn gateway_from(
        &self,
        bin: &Path,
        name: &str,
        destinations: Option<DestinationSet>,
        otlp: Option<&OtlpSink>,
        tuning: Tuning,
    ) -> Result<Gateway> {
        let dir = self.opts.work_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        // A store left by an earlier run would bring back its state; start each one empty.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{}{suffix}", gwconfig::STORE_FILE)));
        }
        let config = gwconfig::render(&GatewaySetup {
            mock: self.mock.addr,
            destinations,
            anthropic: tuning.anthropic,
            otlp_endpoint: Some(otlp.unwrap_or(&self.sink).endpoint()),
            compression: self.opts.compression,
            busy_poll_us: self.opts.busy_poll_us,
            delivery_priority: tuning.delivery_priority,
            spool_mode: tuning.spool_mode,
            dir: &dir,
        });
        let config_path = dir.join("gatecast.toml");
        std::fs::write(&config_path, config)?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", procs::free_port()?).parse()?;
        let proc = Proc::spawn(
            name,
            bin,
            &[
                "serve".into(),
                "--config".into(),
                config_path.to_string_lossy().into_owned(),
                "--listen".into(),
                addr.to_string(),
            ],
            addr,
            self.opts.pin.as_ref().map(|p| p.gateway.as_str()),
            &self.opts.work_dir,
        )
        .await?;
        let files = ["traces-full.jsonl", "traces-private.jsonl"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        Ok(Gateway {
            endpoint: Arc::new(Endpoint::local(addr, gwconfig::GATEWAY_MODEL)),
            pid: Some(proc.pid()),
            proc: Some(proc),
            files,
        })
    }

    pub(crate) fn two_destinations(&self) -> Option<DestinationSet> {
        Some(self.opts.destinations)
    }

    fn gateway_label(&self, destinations: usize) -> String {
        match (&self.opts.target, destinations) {
            (Some(_), _) => "target gateway".to_owned(),
            (None, 0) => "gateway, 0 destinations".to_owned(),
            (None, _) => format!(
                "gateway, 2 destinations ({})",
                set_name(self.opts.destinations)
            ),
        }
    }
}

fn set_name(d: DestinationSet) -> &'static str {
    match d {
        DestinationSet::OtlpFile => "OTLP private + file",
        DestinationSet::FileFile => "file private + file",
        DestinationSet::None => "none",
    }
}

pub(crate) fn workload(ep: Endpoint, stream: bool, directives: &str) -> Workload {
    let body = ep.body(stream, directives);
    Workload {
        endpoint: Arc::new(ep),
        body,
        stream,
    }
}

pub(crate) fn via(gw: &Gateway, stream: bool, directives: &str) -> Workload {
    workload((*gw.endpoint).clone(), stream, directives)
}

/// c=1, one request at a time, direct and through the gateway interleaved. With `--path`,
/// each path's direct baseline and gateway join the same rounds, and the paths then run at
/// c=32 as well.
pub async fn latency(env: &Env) -> Result<LatencyReport> {
    let per_target = env
        .opts
        .latency_requests
        .unwrap_or(if env.opts.smoke { 300 } else { 30_000 });
    let warm = if env.opts.smoke { 50 } else { 2_000 };
    let path_set = match &env.opts.paths {
        Some(paths) => Some(PathSet::start(env, paths, "gateway-2dest").await?),
        None => None,
    };
    let mut gateways = Vec::new();
    if env.target.is_none() {
        gateways.push((
            0,
            env.gateway_label(0),
            env.gateway("gateway-0dest", None, None).await?,
        ));
    }
    gateways.push((
        2,
        env.gateway_label(2),
        env.gateway("gateway-2dest", env.two_destinations(), None)
            .await?,
    ));
    // The baseline build exports to a sink of its own, so the sink figures stay per build.
    let baseline_sink = match (&env.opts.baseline_bin, &env.target) {
        (Some(_), None) => Some(OtlpSink::start(SinkMode::Counting).await?),
        _ => None,
    };
    if let (Some(bin), Some(sink)) = (&env.opts.baseline_bin, &baseline_sink) {
        gateways.push((
            2,
            format!("baseline build ({}), 2 destinations", bin.display()),
            // Its own defaults: the comparison is of builds (or of this run's settings).
            env.gateway_from(
                bin,
                "gateway-baseline",
                env.two_destinations(),
                Some(sink),
                Tuning::default(),
            )
            .await?,
        ));
    }

    let relay = Relay::start(env.mock_addr())?;
    let mut targets = vec![
        env.direct(false, ""),
        workload(
            Endpoint::local(relay.addr, gwconfig::DIRECT_MODEL),
            false,
            "",
        ),
    ];
    targets.extend(gateways.iter().map(|(_, _, g)| via(g, false, "")));
    // The reference path is the first gateway with 2 destinations: this build's.
    let reference = 2 + gateways
        .iter()
        .position(|(d, _, _)| *d == 2)
        .unwrap_or_default();
    let plan = match &path_set {
        Some(set) => {
            let plan = set.plan(env, targets.len(), 0, reference, false, "");
            targets.extend(plan.targets.iter().cloned());
            plan.check(&targets).await?;
            Some(plan)
        }
        None => None,
    };
    for t in &targets {
        load::warm_up(t, warm).await?;
    }
    let before = env.sink.snapshot();
    let mut pids: Vec<u32> = gateways.iter().filter_map(|(_, _, g)| g.pid).collect();
    let legacy_pids = pids.len();
    pids.extend(path_set.iter().flat_map(PathSet::pids));
    let meter = CpuMeter::start(&pids);
    let results = load::interleaved(&targets, per_target, 20).await?;
    let cpu_s = meter.finish();
    let mut cpu = cpu_s.iter().copied().take(legacy_pids);
    let direct = results[0].latencies.summary();
    let relayed = results[1].latencies.summary();
    let hop_floor = LatencyRow {
        setup: "TCP relay, no HTTP (the floor of any second hop)".to_owned(),
        destinations: 0,
        added: Added::between(&direct, &relayed),
        summary: relayed,
        gateway_cpu_us: 0.0,
        otlp_sink: None,
    };
    let mut rows = Vec::new();
    let mut reference_cpu_s = 0.0;
    for (i, ((dests, label, g), r)) in gateways.iter().zip(&results[2..]).enumerate() {
        let summary = r.latencies.summary();
        let gateway_cpu_us = match g.pid {
            Some(_) => {
                let used = cpu.next().unwrap_or_default();
                if 2 + i == reference {
                    reference_cpu_s = used;
                }
                used * 1e6 / r.ok.max(1) as f64
            }
            None => 0.0,
        };
        rows.push(LatencyRow {
            setup: label.clone(),
            destinations: *dests,
            summary,
            added: Added::between(&direct, &summary),
            gateway_cpu_us,
            otlp_sink: None,
        });
    }
    let c1 = match &plan {
        Some(plan) => {
            let mut path_cpu_s = vec![reference_cpu_s];
            path_cpu_s.extend(cpu_s.iter().skip(legacy_pids));
            Some(path_runs::c1_rows(plan, &results, &path_cpu_s)?)
        }
        None => None,
    };
    // Exports trail the requests by the flush interval; give them a moment to land.
    if env.target.is_none() && env.opts.destinations == DestinationSet::OtlpFile {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        if let Some(row) = rows.iter_mut().find(|r| r.destinations == 2) {
            row.otlp_sink = Some(env.sink.snapshot().since(&before));
        }
    }
    let errors = results.iter().map(|r| r.errors).sum();
    report_errors("latency", &results);
    let paths = match (&path_set, c1, gateways.get(reference - 2)) {
        (Some(set), Some(c1), Some((_, _, reference_gw))) => {
            Some(path_runs::loaded(env, set, reference_gw, c1).await?)
        }
        _ => None,
    };
    for (_, _, g) in gateways {
        g.stop();
    }
    if let Some(set) = path_set {
        set.stop();
    }
    Ok(LatencyReport {
        requests_per_target: per_target,
        direct,
        hop_floor: Some(hop_floor),
        rows,
        errors,
        paths,
    })
}

pub(crate) fn report_errors(scenario: &str, results: &[load::RunResult]) {
    for r in results {
        if let Some(e) = &r.first_error {
            eprintln!("{scenario}: {} errors, first: {e}", r.errors);
        }
    }
}

/// A closed-loop run, with the CPU each process spent on it.
async fn metered(
    env: &Env,
    gateway_pid: Option<u32>,
    w: &Workload,
    concurrency: usize,
    secs: Duration,
) -> Result<(load::RunResult, CpuPerRequest)> {
    let client = std::process::id();
    let mut pids = vec![client, env.mock.pid()];
    pids.extend(gateway_pid);
    let meter = CpuMeter::start(&pids);
    let run = load::closed_loop(w, concurrency, secs).await?;
    let used = meter.finish();
    let per = |i: usize| used.get(i).map_or(0.0, |s| s * 1e6 / run.ok.max(1) as f64);
    let cpu = CpuPerRequest {
        client_us: per(0),
        mock_us: per(1),
        gateway_us: if gateway_pid.is_some() { per(2) } else { 0.0 },
    };
    Ok((run, cpu))
}

/// Closed loop at c=32 and c=64, then an open loop at a fixed rate.
pub async fn throughput(env: &Env) -> Result<ThroughputReport> {
    let secs = env.opts.secs(10.0, 1.0);
    let gw = env
        .gateway("gateway-throughput", env.two_destinations(), None)
        .await?;
    let direct = env.direct(false, "");
    let through = via(&gw, false, "");
    let before = env.sink.snapshot();
    let mut rows = Vec::new();
    for c in [32usize, 64] {
        load::closed_loop(&direct, c, env.opts.warm_secs()).await?;
        let (d, direct_cpu) = metered(env, None, &direct, c, secs).await?;
        load::closed_loop(&through, c, env.opts.warm_secs()).await?;
        let (g, gateway_cpu) = metered(env, gw.pid, &through, c, secs).await?;
        report_errors(&format!("throughput c={c}"), &[d.clone(), g.clone()]);
        rows.push(ThroughputRow {
            concurrency: c,
            destinations: 2,
            direct_rps: d.rps(),
            gateway_rps: g.rps(),
            ratio: if d.rps() > 0.0 {
                g.rps() / d.rps()
            } else {
                0.0
            },
            direct: d.latencies.summary(),
            gateway: g.latencies.summary(),
            errors: d.errors + g.errors,
            direct_cpu,
            gateway_cpu,
        });
    }
    let otlp_sink = (env.target.is_none() && env.opts.destinations == DestinationSet::OtlpFile)
        .then(|| env.sink.snapshot().since(&before));
    // Without destinations, for telling the proxy's own cost from broadcasting's; compared
    // with the c=64 direct run above.
    if env.target.is_none() {
        let c = 64;
        let bare = env.gateway("gateway-throughput-0dest", None, None).await?;
        let through_bare = via(&bare, false, "");
        load::closed_loop(&through_bare, c, env.opts.warm_secs()).await?;
        let (g, gateway_cpu) = metered(env, bare.pid, &through_bare, c, secs).await?;
        bare.stop();
        report_errors("throughput c=64, 0 destinations", std::slice::from_ref(&g));
        if let Some(d) = rows.iter().find(|r| r.concurrency == c).cloned() {
            rows.push(ThroughputRow {
                destinations: 0,
                gateway_rps: g.rps(),
                ratio: if d.direct_rps > 0.0 {
                    g.rps() / d.direct_rps
                } else {
                    0.0
                },
                gateway: g.latencies.summary(),
                errors: g.errors,
                gateway_cpu,
                ..d
            });
        }
    }
    // Half the gateway's closed-loop maximum: loaded, but with headroom, where tail latency
    // is what a user of a busy gateway sees.
    let max_gw = rows
        .iter()
        .filter(|r| r.destinations == 2)
        .map(|r| r.gateway_rps)
        .fold(0.0, f64::max);
    let rate = env.opts.rate.unwrap_or((max_gw * 0.5).max(50.0).round());
    let connections = 64;
    let d = load::open_loop(&direct, rate, secs, connections).await?;
    let g = load::open_loop(&through, rate, secs, connections).await?;
    for (name, r) in [("direct", &d), ("gateway", &g)] {
        if let Some(e) = &r.first_error {
            eprintln!("open loop {name}: {} errors, first: {e}", r.stats.errors);
        }
    }
    let (ds, gs) = (d.from_intended.summary(), g.from_intended.summary());
    let open_loop = OpenLoopRow {
        connections,
        direct: ds,
        gateway: gs,
        added: Added::between(&ds, &gs),
        direct_stats: d.stats,
        gateway_stats: g.stats,
    };
    gw.stop();
    Ok(ThroughputReport {
        seconds_per_run: secs.as_secs_f64(),
        rows,
        open_loop: Some(open_loop),
        otlp_sink,
    })
}

/// 20 chunks 5 ms apart: time to first chunk and the largest gap, direct and through.
///
/// The streams' starts are spread over one stream's length, and the two paths alternate in
/// rounds. A second, shorter run starts all streams together, so the cost of a burst of
/// simultaneous stream starts is on record as well.
pub async fn streaming(env: &Env) -> Result<StreamingReport> {
    let secs = env.opts.secs(12.0, 1.0);
    let burst_secs = env.opts.secs(6.0, 0.5);
    let rounds = if env.opts.smoke { 1 } else { 6 };
    let concurrency = env
        .opts
        .streams
        .unwrap_or(if env.opts.smoke { 2 } else { 8 });
    let directives = format!("chunk_delay_ms={STREAM_CHUNK_DELAY_MS},chunks={STREAM_CHUNKS}");
    let stream_length = Duration::from_millis(STREAM_CHUNK_DELAY_MS * STREAM_CHUNKS as u64);
    let path_set = match &env.opts.paths {
        Some(paths) => Some(PathSet::start(env, paths, "gateway-streaming").await?),
        None => None,
    };
    let gw = env
        .gateway("gateway-streaming", env.two_destinations(), None)
        .await?;
    // Its own defaults and sink, as in the latency scenario.
    let baseline = match (&env.opts.baseline_bin, &env.target) {
        (Some(bin), None) => {
            let sink = OtlpSink::start(SinkMode::Counting).await?;
            let gw = env
                .gateway_from(
                    bin,
                    "gateway-baseline-streaming",
                    env.two_destinations(),
                    Some(&sink),
                    Tuning::default(),
                )
                .await?;
            Some((bin.clone(), gw, sink))
        }
        _ => None,
    };
    let relay = Relay::start(env.mock_addr())?;
    let mut targets = vec![
        env.direct(true, &directives),
        workload(
            Endpoint::local(relay.addr, gwconfig::DIRECT_MODEL),
            true,
            &directives,
        ),
        via(&gw, true, &directives),
    ];
    if let Some((_, base_gw, _)) = &baseline {
        targets.push(via(base_gw, true, &directives));
    }
    // After the baseline's, which the rest of this function finds at index 3.
    let plan = match &path_set {
        Some(set) => {
            let plan = set.plan(env, targets.len(), 0, 2, true, &directives);
            targets.extend(plan.targets.iter().cloned());
            plan.check(&targets).await?;
            Some(plan)
        }
        None => None,
    };
    for t in &targets {
        load::warm_up(t, 5).await?;
    }
    let spread = load::alternating(&targets, concurrency, secs, rounds, stream_length).await?;
    let paths = match &plan {
        Some(plan) => Some(PathsStreaming {
            paths: plan.streaming_rows(&spread)?,
        }),
        None => None,
    };
    if let Some(set) = path_set {
        set.stop();
    }
    let burst = [targets[0].clone(), targets[2].clone()];
    let together =
        load::alternating(&burst, concurrency, burst_secs, rounds, Duration::ZERO).await?;
    gw.stop();
    let baseline_ttfc = match (baseline, spread.get(3)) {
        (Some((bin, base_gw, _sink)), Some(b)) => {
            base_gw.stop();
            let Some(bs) = &b.stream else {
                bail!("the baseline's streaming run kept no stream statistics");
            };
            Some((bin, bs.first_frame.summary()))
        }
        _ => None,
    };
    let [d, r, g, ..] = &spread[..] else {
        bail!(
            "streaming run returned {} results, fewer than 3",
            spread.len()
        );
    };
    let [bd, bg] = &together[..] else {
        bail!("burst run returned {} results, not 2", together.len());
    };
    report_errors("streaming", &spread);
    report_errors("streaming", &together);
    let (Some(ds), Some(rs), Some(gs), Some(bds), Some(bgs)) =
        (&d.stream, &r.stream, &g.stream, &bd.stream, &bg.stream)
    else {
        bail!("streaming run kept no stream statistics");
    };
    let relay_ttfc = rs.first_frame.summary();
    let burst = StreamBurst {
        direct_streams: bd.ok,
        gateway_streams: bg.ok,
        ttfc_direct: bds.first_frame.summary(),
        ttfc_gateway: bgs.first_frame.summary(),
        added_ttfc: Added::between(&bds.first_frame.summary(), &bgs.first_frame.summary()),
    };
    let ttfc_direct = ds.first_frame.summary();
    let ttfc_gateway = gs.first_frame.summary();
    let max_gap_direct = ds.max_gap.summary();
    let max_gap_gateway = gs.max_gap.summary();
    let per_frame = |events: u64, frames: u64| {
        if frames == 0 {
            0.0
        } else {
            events as f64 / frames as f64
        }
    };
    Ok(StreamingReport {
        concurrency,
        chunks: STREAM_CHUNKS,
        chunk_delay_ms: STREAM_CHUNK_DELAY_MS,
        direct_streams: d.ok,
        gateway_streams: g.ok,
        added_ttfc: Added::between(&ttfc_direct, &ttfc_gateway),
        ttfc_direct,
        ttfc_gateway,
        added_max_gap: Added::between(&max_gap_direct, &max_gap_gateway),
        max_gap_direct,
        max_gap_gateway,
        events_per_frame_direct: per_frame(ds.events, ds.frames),
        events_per_frame_gateway: per_frame(gs.events, gs.frames),
        total_direct: d.latencies.summary(),
        total_gateway: g.latencies.summary(),
        errors: d.errors + g.errors + bd.errors + bg.errors,
        start_spread_ms: stream_length.as_millis() as u64,
        added_ttfc_relay: Added::between(&ds.first_frame.summary(), &relay_ttfc),
        ttfc_relay: relay_ttfc,
        baseline: baseline_ttfc.map(|(bin, ttfc)| StreamBaseline {
            bin: bin.display().to_string(),
            added_ttfc: Added::between(&ds.first_frame.summary(), &ttfc),
            ttfc,
        }),
        rounds,
        burst: Some(burst),
        paths,
    })
}

/// Samples a process's RSS every `every` until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(f64, f64)>>,
}

impl Sampler {
    fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut out = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !s.load(Relaxed) {
                tick.tick().await;
                if let Ok(kb) = procs::rss_kb(pid) {
                    out.push((started.elapsed().as_secs_f64(), kb as f64 / 1024.0));
                }
            }
            out
        });
        Self { stop, task }
    }

    async fn finish(self) -> Result<Vec<(f64, f64)>> {
        self.stop.store(true, Relaxed);
        self.task.await.context("RSS sampler panicked")
    }
}

/// How long the dead-destination load runs before RSS is judged: until the first batch sent
/// to the blackhole has used up its tries (5 tries of the default 10 s timeout and their
/// backoffs, 53 s), plus a few seconds. RSS climbs in steps until then; from then on the
/// pipeline repeats the same cycle. The default config's timeout is the one the gateways run.
fn dead_destination_settle() -> Duration {
    let timeout = gatecast_telemetry::DestinationConfig::file("settle", "unused").timeout();
    gatecast_telemetry::retry::RetryPolicy::default()
        .longest_resolution(timeout)
        .saturating_add(Duration::from_secs(5))
}

/// Idle, under load, and during a long load with one destination that never answers.
pub async fn memory(env: &Env) -> Result<MemoryReport> {
    let load_secs = env.opts.secs(10.0, 1.0);
    let dead_secs = Duration::from_secs_f64(env.opts.memory_seconds.unwrap_or(if env.opts.smoke {
        4.0
    } else {
        60.0
    }));
    let settle_secs = match env.opts.memory_settle_seconds {
        Some(secs) => Duration::from_secs_f64(secs),
        None if env.opts.smoke => Duration::from_secs(1),
        None => dead_destination_settle(),
    };
    let concurrency = 64;
    let gw = env
        .gateway("gateway-memory", env.two_destinations(), None)
        .await?;
    let Some(pid) = gw.pid else {
        gw.stop();
        return Ok(MemoryReport {
            note: Some("memory not measured: pass --target-pid for an external gateway".into()),
            ..MemoryReport::default()
        });
    };
    // Let start-up allocations settle before calling the process idle.
    tokio::time::sleep(Duration::from_millis(if env.opts.smoke {
        200
    } else {
        1000
    }))
    .await;
    let idle_mb = gw.rss_mb()?.unwrap_or_default();
    let through = via(&gw, false, "");
    let sampler = Sampler::start(pid, Duration::from_millis(100));
    let run = load::closed_loop(&through, concurrency, load_secs).await?;
    let samples = sampler.finish().await?;
    report_errors("memory load", std::slice::from_ref(&run));
    let load_peak_mb = samples.iter().map(|&(_, mb)| mb).fold(idle_mb, f64::max);
    tokio::time::sleep(Duration::from_millis(if env.opts.smoke {
        200
    } else {
        2000
    }))
    .await;
    let after_load_mb = gw.rss_mb()?.unwrap_or_default();
    gw.stop();

    let mut report = MemoryReport {
        idle_mb,
        load_concurrency: concurrency,
        load_seconds: load_secs.as_secs_f64(),
        load_rps: run.rps(),
        load_peak_mb,
        after_load_mb,
        dead_destination: None,
        note: None,
    };
    if env.target.is_some() || env.opts.destinations != DestinationSet::OtlpFile {
        report.note = Some(
            "dead destination not measured: it needs the built-in gateway with --destinations otlp+file"
                .into(),
        );
        return Ok(report);
    }
    let blackhole = OtlpSink::start(SinkMode::Blackhole).await?;
    let gw = env
        .gateway("gateway-dead", env.two_destinations(), Some(&blackhole))
        .await?;
    let pid = gw.pid.unwrap_or_default();
    let dead_c = 32;
    let every = if env.opts.smoke {
        Duration::from_millis(250)
    } else {
        // Twice a second: the verdict reads a slope over half the window.
        Duration::from_millis(500)
    };
    let through = via(&gw, false, "");
    // One load throughout; the plateau is judged on the samples after the settling part.
    let sampler = Sampler::start(pid, every);
    let run = load::closed_loop(&through, dead_c, settle_secs + dead_secs).await?;
    let samples = sampler.finish().await?;
    let settle = settle_secs.as_secs_f64();
    let judged: Vec<(f64, f64)> = samples
        .iter()
        .filter(|&&(t, _)| t >= settle)
        .map(|&(t, mb)| (t - settle, mb))
        .collect();
    report_errors("memory dead destination", std::slice::from_ref(&run));
    let dropped = dropped_queue_full(&gw.endpoint, "otlp-sink").await.ok();
    let gateway_connections_open = procs::established_to(blackhole.addr.port()).ok();
    gw.stop();
    report.dead_destination = Some(DeadDestination {
        seconds: dead_secs.as_secs_f64(),
        settle_seconds: settle,
        concurrency: dead_c,
        rps: run.rps(),
        plateau: Plateau::of(&judged),
        gateway_connections_open,
        samples,
        dropped_queue_full: dropped,
        blackhole_connections: blackhole.snapshot().connections,
    });
    Ok(report)
}

/// Reads `gatecast_destination_dropped_total{destination=..,reason="queue_full"}`.
async fn dropped_queue_full(ep: &Endpoint, destination: &str) -> Result<u64> {
    let mut conn = Conn::connect(ep.addr).await?;
    let text = conn.get_text(&ep.authority, "/metrics").await?;
    parse_dropped(&text, destination).context("no queue_full drop counter in /metrics")
}

fn parse_dropped(metrics: &str, destination: &str) -> Option<u64> {
    let label = format!("destination=\"{destination}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("gatecast_destination_dropped_total{"))
        .filter(|l| l.contains(&label) && l.contains("reason=\"queue_full\""))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Where the run's configs, logs and trace files go.
pub fn work_dir_beside(out: &Path) -> PathBuf {
    out.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("work")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_dead_destination_is_judged_after_its_first_batch_used_up_its_tries() {
        assert_eq!(dead_destination_settle(), Duration::from_secs(58));
    }

    #[test]
    fn parses_the_drop_counter() {
        let text = "# TYPE gatecast_destination_dropped_total counter\n\
            gatecast_destination_dropped_total{destination=\"otlp-sink\",reason=\"queue_full\"} 1234\n\
            gatecast_destination_dropped_total{destination=\"otlp-sink\",reason=\"shutdown\"} 7\n\
            gatecast_destination_dropped_total{destination=\"traces-full\",reason=\"queue_full\"} 0\n";
        assert_eq!(parse_dropped(text, "otlp-sink"), Some(1234));
        assert_eq!(parse_dropped(text, "traces-full"), Some(0));
        assert_eq!(parse_dropped(text, "nope"), None);
    }

    #[test]
    fn work_dir_sits_beside_the_report() {
        assert_eq!(
            work_dir_beside(Path::new("target/bench/report.json")),
            PathBuf::from("target/bench/work")
        );
        assert_eq!(
            work_dir_beside(Path::new("r.json")),
            PathBuf::from("./work")
        );
    }
}
