//! `gatecast-bench`: runs the scenarios, prints a markdown report and writes it as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::{Parser, ValueEnum};
use gatecast_bench::api_path::{self, ApiPath};
use gatecast_bench::gwconfig::{self, Compression, DestinationSet};
use gatecast_bench::procs::{self, PinLayout, Profile};
use gatecast_bench::report::{Meta, Report};
use gatecast_bench::scenarios::{self, Env, ExternalTarget, Options};
use gatecast_bench::telemetry_work;
use http::header::{HeaderName, HeaderValue};

/// Measures what Gatecast adds to a direct call to an OpenAI-compatible upstream: latency,
/// throughput, streaming, memory and telemetry CPU, each against a direct-to-mock baseline
/// taken in the same run.
#[derive(Debug, Parser)]
#[command(name = "gatecast-bench", version)]
struct Cli {
    /// Which scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// A few seconds per scenario: checks the harness works; the numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Cargo profile to build the gateway and mock with when no binary is given; `dist` is the
    /// build that ships.
    #[arg(long, value_enum, default_value_t = Profile::Dist)]
    profile: Profile,
    /// A built `gatecast` binary; without it, `cargo build` makes one.
    #[arg(long, value_name = "PATH")]
    gateway_bin: Option<PathBuf>,
    /// A second built `gatecast` binary for the latency and streaming scenarios: it gets a
    /// gateway of its own with 2 destinations, interleaved (latency) or alternated (streaming)
    /// with the others, so two builds are compared within one run instead of across runs
    /// minutes apart.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
    /// A built `gatecast-mock` binary; default: beside --gateway-bin, else built.
    #[arg(long, value_name = "PATH")]
    mock_bin: Option<PathBuf>,
    /// Measure another OpenAI-compatible gateway at this base URL (e.g.
    /// http://127.0.0.1:4000/v1) instead of starting Gatecast. Point its upstream at the mock
    /// (--mock-listen).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The `model` to request from --target.
    #[arg(long, default_value = "gpt-4o-mini", value_name = "MODEL")]
    target_model: String,
    /// Extra request header for --target, `Name: value`; repeatable.
    #[arg(long, value_name = "HEADER")]
    target_header: Vec<String>,
    /// The --target gateway's process id, for the memory scenario.
    #[arg(long, value_name = "PID")]
    target_pid: Option<u32>,
    /// Where the mock listens [default: a free port; 127.0.0.1:18080 with --target].
    #[arg(long, value_name = "ADDR")]
    mock_listen: Option<std::net::SocketAddr>,
    /// The two destinations of "broadcast on".
    #[arg(long, value_enum, default_value_t = DestinationSet::OtlpFile)]
    destinations: DestinationSet,
    /// Compression of the OTLP destination.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    otlp_compression: Compression,
    /// `server.busy_poll_us` of the gateways the bench starts: request threads keep polling
    /// their sockets this long after a request instead of sleeping (0: off, the default).
    #[arg(long, default_value_t = 0, value_name = "US")]
    busy_poll_us: u64,
    /// `telemetry.delivery_priority` of the gateways the bench starts (default: the gateway's
    /// own). The `--baseline-bin` gateway always keeps its default, so `--gateway-bin X
    /// --baseline-bin X --delivery-priority idle` compares the two settings in one run.
    #[arg(long, value_enum, value_name = "PRIORITY")]
    delivery_priority: Option<gwconfig::DeliveryPriority>,
    /// Give every destination of the gateways the bench starts a disk spool in this
    /// `spool_mode` (default: no spool). `always` writes each batch to disk before sending it;
    /// the `--baseline-bin` gateway keeps no spool, so `--gateway-bin X --baseline-bin X
    /// --spool-mode always` measures its cost in one run.
    #[arg(long, value_enum, value_name = "MODE")]
    spool_mode: Option<gwconfig::SpoolMode>,
    /// Pin each process to cores (taskset). On 2 cores: bench and mock on CPU 0, the gateway
    /// on CPU 1.
    #[arg(long)]
    pin: bool,
    /// Threads of the load generator: 1 runs everything on the calling thread; more starts a
    /// work-stealing pool of that many workers.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// JSON report; a markdown copy is written beside it.
    #[arg(long, default_value = "target/bench/report.json", value_name = "PATH")]
    out: PathBuf,
    /// Requests per target in the latency scenario [default: 30000; smoke 300].
    #[arg(long)]
    latency_requests: Option<u64>,
    /// Concurrent streams in the streaming scenario [default: 8; smoke 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    streams: Option<u64>,
    /// Seconds per throughput / streaming / memory-load run [default: 10; smoke 1].
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of load with a dead destination, measured for the plateau [default: 60; smoke 4].
    #[arg(long)]
    memory_seconds: Option<f64>,
    /// Seconds of the same load before those, until the first batch sent to the dead
    /// destination has used up its tries; sampled and shown, not judged [default: 58, the
    /// retry schedule of the default timeout plus 5 s; smoke 1].
    #[arg(long)]
    memory_settle_seconds: Option<f64>,
    /// Open-loop rate [default: half the gateway's closed-loop maximum].
    #[arg(long)]
    rate: Option<f64>,
    /// Client API → provider wire paths the latency and streaming scenarios measure, each
    /// against its own direct baseline and beside chat-openai (the pass-through, always
    /// measured) in the same run; latency runs them at c=32 too. Comma-separated.
    #[arg(
        long = "path",
        value_enum,
        value_delimiter = ',',
        default_value = "chat-openai",
        value_name = "PATHS"
    )]
    paths: Vec<ApiPath>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Latency,
    Throughput,
    Streaming,
    Memory,
    Telemetry,
    All,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatecast-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cli.pin.then(|| PinLayout::for_cores(cores));
    if let Some(p) = &pin {
        // Before the runtime exists, so every thread it starts inherits the mask.
        procs::pin_self(&p.bench)?;
    }
    let needs_servers = cli.scenario != Scenario::Telemetry;
    let bins = if needs_servers {
        Some(procs::locate_or_build(
            cli.gateway_bin.clone(),
            cli.mock_bin.clone(),
            cli.profile,
            cli.target.is_none(),
        )?)
    } else {
        None
    };
    let target = match &cli.target {
        Some(url) => Some(ExternalTarget {
            url: url.clone(),
            model: cli.target_model.clone(),
            headers: cli
                .target_header
                .iter()
                .map(|h| parse_header(h))
                .collect::<Result<_>>()?,
            pid: cli.target_pid,
        }),
        None => None,
    };
    let mock_listen = cli.mock_listen.or_else(|| {
        cli.target
            .as_ref()
            .and_then(|_| "127.0.0.1:18080".parse().ok())
    });
    let opts = Options {
        smoke: cli.smoke,
        destinations: cli.destinations,
        compression: cli.otlp_compression,
        pin: pin.clone(),
        target,
        mock_listen,
        work_dir: scenarios::work_dir_beside(&cli.out),
        busy_poll_us: cli.busy_poll_us,
        delivery_priority: cli.delivery_priority,
        spool_mode: cli.spool_mode,
        latency_requests: cli.latency_requests,
        baseline_bin: cli.baseline_bin.clone(),
        streams: cli.streams.map(|n| n as usize),
        seconds: cli.seconds,
        memory_seconds: cli.memory_seconds,
        memory_settle_seconds: cli.memory_settle_seconds,
        rate: cli.rate,
        paths: api_path::requested(&cli.paths),
    };
    // Timed from here: the build above is not part of the run.
    let started = Instant::now();
    let mut report = Report {
        meta: meta(&cli, pin),
        ..Report::default()
    };

    // One thread by default, as wrk runs: a request and its connection stay on the thread
    // that measures them. With a pool, the awaiting future runs on the main thread and the
    // connection on a worker, and two cross-thread wake-ups per request enter every figure.
    let runtime = if cli.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cli.client_threads);
        b
    }
    .enable_all()
    .build()
    .context("starting the tokio runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = scenarios_in(&cli, opts, bins, &mut report) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    // Servers are gone by now; a runtime with stray tasks must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));

    report.meta.duration_s = started.elapsed().as_secs_f64();
    report.meta.load_after = loadavg();
    report.evaluate();
    let md = report.to_markdown();
    println!("{md}");
    if let Some(dir) = cli.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", cli.out.display()))?;
    let md_path = cli.out.with_extension("md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    eprintln!(
        "wrote {} and {} in {:.0} s",
        cli.out.display(),
        md_path.display(),
        report.meta.duration_s
    );
    Ok(())
}

async fn scenarios_in(
    cli: &Cli,
    opts: Options,
    bins: Option<procs::Binaries>,
    report: &mut Report,
) -> Result<()> {
    let wants = |s: Scenario| cli.scenario == s || cli.scenario == Scenario::All;
    if let Some(bins) = bins {
        let env = Env::start(opts, bins).await?;
        eprintln!(
            "mock on {}, OTLP sink on {}",
            env.mock_addr(),
            env.sink.addr
        );
        if wants(Scenario::Latency) {
            eprintln!("latency...");
            report.latency = Some(scenarios::latency(&env).await?);
        }
        if wants(Scenario::Throughput) {
            eprintln!("throughput...");
            report.throughput = Some(scenarios::throughput(&env).await?);
        }
        if wants(Scenario::Streaming) {
            eprintln!("streaming...");
            report.streaming = Some(scenarios::streaming(&env).await?);
        }
        if wants(Scenario::Memory) {
            eprintln!("memory...");
            report.memory = Some(scenarios::memory(&env).await?);
        }
    }
    if wants(Scenario::Telemetry) {
        eprintln!("telemetry...");
        let budget = Duration::from_millis(if cli.smoke { 200 } else { 3000 });
        let gzip = cli.otlp_compression == Compression::Gzip;
        report.telemetry = Some(
            tokio::task::spawn_blocking(move || telemetry_work::measure(budget, 512, gzip))
                .await
                .context("telemetry measurement panicked")??,
        );
    }
    Ok(())
}

fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue)> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| anyhow!("--target-header must look like `Name: value`, got `{h}`"))?;
    Ok((
        HeaderName::try_from(k.trim()).with_context(|| format!("header name in `{h}`"))?,
        HeaderValue::try_from(v.trim()).with_context(|| format!("header value in `{h}`"))?,
    ))
}

fn meta(cli: &Cli, pin: Option<PinLayout>) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Meta {
        version: match git {
            Some(g) => format!("{} ({g})", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_owned(),
        },
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_s: 0.0,
        smoke: cli.smoke,
        profile: format!("{:?}", cli.profile).to_lowercase(),
        gateway: cli.target.clone().unwrap_or_else(|| "gatecast".to_owned()),
        destinations: cli
            .destinations
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned()),
        otlp_compression: format!("{:?}", cli.otlp_compression).to_lowercase(),
        pin,
        busy_poll_us: cli.busy_poll_us,
        delivery_priority: cli.delivery_priority.map(|p| p.as_str().to_owned()),
        spool_mode: cli.spool_mode.map(|m| m.as_str().to_owned()),
        client_threads: cli.client_threads,
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
        load_before: loadavg(),
        load_after: String::new(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
