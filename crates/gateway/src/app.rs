//! Wiring: config → proxy, broadcaster and the HTTP router, then serving until shutdown.
//!
//! The router reads top to bottom: routes, then the layers every request passes through.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::{get, post};
use gatecast_proxy::{Proxy, RecordSink, Settings};
use gatecast_telemetry::{Broadcaster, GenerationRecord};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;

use crate::admin::{self, AdminToken};
use crate::config::Config;
use crate::control::Control;
use crate::error::GatewayError;
use crate::guard::{GuardLayer, Policy};
use crate::routes;
use crate::routes::request_metrics::RequestMetrics;
use crate::serve::Phase;

/// Shared by every handler; built once per process start.
pub struct AppState {
    pub proxy: Proxy,
    pub control: Arc<Control>,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    pub service_name: String,
    pub request_metrics: RequestMetrics,
}

impl AppState {
    pub fn broadcaster(&self) -> &Broadcaster {
        &self.control.broadcaster
    }
}

pub struct Gateway {
    state: Arc<AppState>,
    admin_token: Option<AdminToken>,
    shutdown_timeout: Duration,
    /// What the client API accepts from browsers and under which `Host`.
    guard: Arc<Policy>,
    /// The connection timers and busy polling of the request threads.
    threads: crate::serve::Settings,
    /// `server.max_connections`, resolved against the descriptor limit.
    max_connections: usize,
}

/// The proxy hands finished records to the broadcaster through this narrow seam.
struct BroadcastSink(Broadcaster);

impl RecordSink for BroadcastSink {
    fn publish(&self, record: GenerationRecord) {
        self.0.publish(record);
    }
    fn wants_content(&self) -> bool {
        self.0.wants_content()
    }
}

impl Gateway {
    /// Opens the store, loads the runtime config and starts the destination pipelines and
    /// the config watcher. `admin_token` (from `GATECAST_ADMIN_TOKEN`) mounts `/admin/v1`.
    /// Must run inside a tokio runtime.
    pub async fn build(config: Config, admin_token: Option<String>) -> Result<Self, GatewayError> {
        let router = config.router()?;
        let guard = Arc::new(Policy::new(&config.server)?);
        // The recorder goes in before any pipeline counts anything.
        let metrics = metrics_handle();
        let control = Arc::new(Control::start(&config).await?);
        control.spawn_watch(Duration::from_millis(config.store.watch_interval_ms));
        let settings = Settings {
            max_capture_bytes: config.telemetry.max_capture_bytes,
        };
        let proxy = Proxy::new(
            router,
            Arc::new(BroadcastSink(control.broadcaster.clone())),
            settings,
        );
        crate::upkeep::spawn_metrics_upkeep(metrics.clone());
        if guard.any_origin() && !control.keys.enforced() {
            tracing::warn!("server.cors_origins allows every origin and no virtual key exists: any web page can use this gateway");
        }
        let state = AppState {
            proxy,
            control,
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            service_name: config.telemetry.service_name.clone(),
            request_metrics: RequestMetrics::new(),
        };
        Ok(Self {
            state: Arc::new(state),
            admin_token: admin_token
                .filter(|t| !t.trim().is_empty())
                .map(|t| AdminToken::new(&t)),
            shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
            guard,
            threads: crate::serve::Settings {
                timers: crate::serve::conn::Timers {
                    header: Duration::from_millis(config.server.header_read_timeout_ms),
                    idle: Duration::from_millis(config.server.idle_timeout_ms),
                    body: Duration::from_millis(config.server.body_read_timeout_ms),
                },
                busy_poll: (config.server.busy_poll_us > 0)
                    .then(|| Duration::from_micros(config.server.busy_poll_us)),
            },
            max_connections: crate::serve::fd_limit::connection_cap(
                config.server.max_connections,
                crate::serve::fd_limit::current(),
            ),
        })
    }

    /// Whether any client can call the gateway without a virtual key.
    pub fn is_open(&self) -> bool {
        !self.state.control.keys.enforced()
    }

    pub fn router(&self) -> axum::Router {
        let mut router = axum::Router::new();
        if let Some(token) = &self.admin_token {
            router = router.nest(
                "/admin/v1",
                admin::router(self.state.clone(), token.clone()),
            );
        }
        // The client API, behind the browser and DNS-rebinding guard. Probes, metrics and the
        // token-protected admin API stay outside it.
        let client = axum::Router::new()
            .route("/v1/chat/completions", post(routes::chat::completions))
            .route("/chat/completions", post(routes::chat::completions))
            .route("/v1/models", get(routes::models::list))
            .route("/models", get(routes::models::list))
            .layer(GuardLayer::new(
                self.guard.clone(),
                self.state.control.clone(),
            ));
        router
            .merge(client)
            .route("/health", get(routes::health::live))
            .route("/ready", get(routes::health::ready))
            .route("/metrics", get(routes::metrics::render))
            .fallback(routes::not_found)
            .layer(CatchPanicLayer::custom(routes::panic_response))
            .with_state(self.state.clone())
    }

    /// The connection cap in force (`server.max_connections`, or derived from the
    /// descriptor limit).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Serves from `threads` request threads until `shutdown` resolves, then shuts down
    /// within `server.shutdown_timeout_ms` in all (see [`ShutdownPlan`]).
    ///
    /// Each request thread runs its own single-threaded runtime and accepts from the same
    /// listening socket, so a request, its upstream connection (see
    /// [`gatecast_proxy::lane`]) and its response stream live on one thread and cost no
    /// cross-thread wake-ups. The destinations, the store watcher and the metrics upkeep stay
    /// on the runtime this future runs on, so telemetry never takes a request thread.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        threads: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        listener
            .set_nonblocking(true)
            .map_err(GatewayError::Serve)?;
        let router = self.router();
        let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Serving);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let shares = crate::serve::balance::Shares::new(threads.max(1), self.max_connections);
        metrics::gauge!("gatecast_connections_max").set(self.max_connections as f64);
        // Threads already started must not keep serving without their owner.
        let abandon = |e| {
            let _ = phase_tx.send(Phase::Done);
            GatewayError::Serve(e)
        };
        for index in 0..threads.max(1) {
            let listener = listener.try_clone().map_err(abandon)?;
            let router = router.clone();
            let phase = phase_rx.clone();
            let done = done_tx.clone();
            let seat = shares.seat(index);
            let settings = self.threads;
            let spawned = std::thread::Builder::new()
                .name(format!("gatecast-serve-{index}"))
                .spawn(move || {
                    gatecast_proxy::lane::enter(index);
                    let _ = done.send(crate::serve::thread(
                        listener, seat, router, settings, phase,
                    ));
                });
            spawned.map_err(abandon)?;
        }
        drop(done_tx);
        // Only the threads' copies stay open, so the socket closes when they stop accepting
        // and new clients are refused rather than left in the backlog.
        drop(listener);
        let served = async {
            let mut failure = None;
            while let Some(result) = done_rx.recv().await {
                if let Err(e) = result {
                    // One thread cannot serve: stop the others and report why.
                    let _ = phase_tx.send(Phase::Done);
                    failure.get_or_insert(e);
                }
            }
            failure
        };
        tokio::pin!(served);
        let plan = ShutdownPlan::new(self.shutdown_timeout);
        let (failure, began) = tokio::select! {
            failure = &mut served => (failure, std::time::Instant::now()),
            () = shutdown => {
                let began = std::time::Instant::now();
                let _ = phase_tx.send(Phase::Draining);
                let failure = match tokio::time::timeout(plan.drain, &mut served).await {
                    Ok(failure) => failure,
                    Err(_) => {
                        tracing::warn!("shutdown: requests still in flight at the drain deadline are answered 503 and their streams ended");
                        let _ = phase_tx.send(Phase::Cutting);
                        match tokio::time::timeout(plan.cut, &mut served).await {
                            Ok(failure) => failure,
                            Err(_) => {
                                let _ = phase_tx.send(Phase::Done);
                                // The runtimes drop what is left; the records of requests
                                // dropped so reach the broadcaster as they go.
                                tokio::time::timeout(plan.drop, &mut served)
                                    .await
                                    .ok()
                                    .flatten()
                            }
                        }
                    }
                };
                (failure, began)
            }
        };
        // This replica's heartbeat row goes, so the CLI stops waiting for it; bounded, as a
        // store that does not answer must not eat the destinations' flush.
        let left = self.shutdown_timeout.saturating_sub(began.elapsed());
        let _ = tokio::time::timeout(left / 4, self.state.control.leave()).await;
        let left = self.shutdown_timeout.saturating_sub(began.elapsed());
        self.state.broadcaster().shutdown(left).await;
        failure.map_or(Ok(()), Err)
    }
}

/// How `server.shutdown_timeout_ms` is shared out, so that the whole shutdown fits in it.
/// In-flight requests get all of it but a reserve (a quarter, at most 5 s). At that drain
/// deadline a request still waiting for its answer gets a 503 and a stream ends with a last
/// chunk, within a short grace. The destinations then flush with whatever is left: all of
/// the timeout when nothing was in flight, most of the reserve at worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPlan {
    /// How long in-flight requests may take.
    pub drain: Duration,
    /// How long the 503s and the ends of streams then get to be written.
    pub cut: Duration,
    /// How long the request threads get to drop what is still left.
    pub drop: Duration,
}

/// The flush reserve is a quarter of the shutdown timeout, at most this.
const FLUSH_RESERVE_MAX: Duration = Duration::from_secs(5);

impl ShutdownPlan {
    pub fn new(total: Duration) -> Self {
        let reserve = (total / 4).min(FLUSH_RESERVE_MAX);
        Self {
            drain: total.saturating_sub(reserve),
            cut: (reserve / 4).min(Duration::from_secs(1)),
            drop: (reserve / 10).min(Duration::from_millis(200)),
        }
    }
}

/// One Prometheus recorder per process: the `metrics` facade is process-global by design.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_plan_fits_in_the_timeout_and_keeps_a_reserve_for_the_flush() {
        for ms in [0, 1, 100, 2000, 30_000, 600_000] {
            let total = Duration::from_millis(ms);
            let plan = ShutdownPlan::new(total);
            let requests = plan.drain + plan.cut + plan.drop;
            assert!(requests <= total, "{ms}: {plan:?}");
            let reserve = (total / 4).min(FLUSH_RESERVE_MAX);
            assert!(total - requests >= reserve / 2, "{ms}: {plan:?}");
        }
        let plan = ShutdownPlan::new(Duration::from_secs(30));
        assert_eq!(plan.drain, Duration::from_secs(25));
        assert_eq!(plan.cut, Duration::from_secs(1));
    }
}
