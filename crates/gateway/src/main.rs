use std::process::ExitCode;

use clap::Parser;
use gatecast::cli::{Cli, Command};
use gatecast::config::DeliveryPriority;
use gatecast::{logging, Config, Gateway, GatewayError};

/// Request handling allocates and frees many small buffers across threads; mimalloc does that
/// with far fewer instructions and less fragmentation than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::CheckConfig { config } => check_config(config.as_deref()),
        Command::Serve { config, listen } => serve(config.as_deref(), listen),
        Command::Destinations(command) => gatecast::commands::destinations(command),
        Command::Keys(command) => gatecast::commands::keys(command),
        Command::Spend {
            since,
            by,
            json,
            target,
        } => gatecast::commands::spend(since.as_deref(), by, json, &target),
        Command::Migrate { target } => gatecast::commands::migrate(&target),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<&std::path::Path>) -> Result<(), GatewayError> {
    let path = Config::locate(path);
    let config = Config::load(&path)?;
    println!(
        "{}: ok ({} providers, {} model aliases, {} destinations)",
        path.display(),
        config.providers.len(),
        config.models.len(),
        config.destinations.len()
    );
    Ok(())
}

fn serve(
    path: Option<&std::path::Path>,
    listen: Option<std::net::SocketAddr>,
) -> Result<(), GatewayError> {
    let path = Config::locate(path);
    let mut config = Config::load(&path)?;
    if let Some(addr) = listen {
        config.server.listen = addr;
    }
    // Before anything opens descriptors: the connection cap is derived from this limit.
    let fd_limit = gatecast::serve::fd_limit::raise();
    // Destinations, the store and signals run here; requests run on their own threads.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        // Batch work and file writes run on the blocking pool. Each new thread brings its own
        // allocator heap and stack, which stay in RSS after it exits: a pool that may grow to
        // 512 threads and lets idle ones go after 10 s stepped RSS up under a steady load with
        // a dead destination. A small pool that keeps its threads holds RSS flat.
        .max_blocking_threads((2 * cores).max(4))
        .thread_keep_alive(std::time::Duration::from_secs(600))
        .thread_name("gatecast-control")
        // Delivery work here offers its core back every few tens of µs, so a batch being
        // encoded never keeps a request thread waiting for a CPU.
        .on_thread_start(gatecast_telemetry::pace::enable_on_this_thread)
        .enable_all()
        .build()
        .map_err(GatewayError::Serve)?;
    control.block_on(async move {
        // Opt-in: batch conversion, encoding and gzip at idle priority while delivery keeps up.
        if config.telemetry.delivery_priority == DeliveryPriority::Idle {
            if let Err(reason) = gatecast_telemetry::background::start() {
                tracing::warn!(%reason, "delivery work runs at normal priority");
            }
        }
        let addr = config.server.listen;
        let threads = config.server.request_threads();
        let require_key = config.auth.require_key;
        let admin_token = std::env::var("GATECAST_ADMIN_TOKEN").ok();
        let gateway = Gateway::build(config, admin_token).await?;
        if !addr.ip().is_loopback() && gateway.is_open() && !require_key {
            tracing::warn!(%addr, "listening on a non-loopback address with no virtual keys: the gateway is open to anyone who can reach it until the first key is created");
        }
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| GatewayError::Bind { addr: addr.to_string(), source })?;
        let max_connections = gateway.max_connections();
        tracing::info!(%addr, threads, max_connections, fd_limit, config = %path.display(), "gatecast listening");
        gateway.serve(listener, threads, shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests and flushing destinations");
}
