//! Wiring: config → proxy, broadcaster and the HTTP router, then serving until shutdown.
//!
//! The router reads top to bottom: routes, then the layers every request passes through.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use gatecast_proxy::{Proxy, RecordSink, Settings};
use gatecast_telemetry::{Broadcaster, GenerationRecord};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::admin::{self, AdminToken};
use crate::config::Config;
use crate::control::Control;
use crate::error::GatewayError;
use crate::guard::{GuardLayer, Policy};
use crate::routes;
use crate::routes::request_metrics::RequestMetrics;

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
    /// `server.busy_poll_us`, when set.
    busy_poll: Option<Duration>,
    /// What the client API accepts from browsers and under which `Host`.
    guard: Arc<Policy>,
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
            busy_poll: (config.server.busy_poll_us > 0)
                .then(|| Duration::from_micros(config.server.busy_poll_us)),
            guard,
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

    /// Serves from `threads` request threads until `shutdown` resolves, then lets in-flight
    /// requests finish and flushes the destination queues, each within the configured
    /// deadline.
    ///
    /// Each request thread runs its own single-threaded runtime and accepts from the same
    /// listening socket, so a request, its upstream connection (see
    /// [`gatecast_proxy::transport::enter_request_thread`]) and its response stream live on
    /// one thread and cost no cross-thread wake-ups. The destinations, the store watcher and the metrics upkeep stay
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
        let busy_poll = self.busy_poll;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let shares = crate::balance::Shares::new(threads.max(1));
        // Threads already started must not keep serving without their owner.
        let abandon = |e| {
            let _ = stop_tx.send(true);
            GatewayError::Serve(e)
        };
        for index in 0..threads.max(1) {
            let listener = listener.try_clone().map_err(abandon)?;
            let router = router.clone();
            let mut stop = stop_rx.clone();
            let done = done_tx.clone();
            let seat = shares.seat(index);
            let spawned = std::thread::Builder::new()
                .name(format!("gatecast-serve-{index}"))
                .spawn(move || {
                    gatecast_proxy::transport::enter_request_thread(index);
                    let stopped = async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    };
                    let _ = done.send(serve_thread(listener, seat, router, busy_poll, stopped));
                });
            spawned.map_err(abandon)?;
        }
        drop(done_tx);
        let deadline = self.shutdown_timeout;
        let mut failure = None;
        {
            let served = async {
                while let Some(result) = done_rx.recv().await {
                    if let Err(e) = result {
                        // One thread cannot serve: stop the others and report why.
                        let _ = stop_tx.send(true);
                        failure.get_or_insert(e);
                    }
                }
            };
            let drained = async {
                shutdown.await;
                let _ = stop_tx.send(true);
                tokio::time::sleep(deadline).await;
            };
            tokio::select! {
                () = served => {},
                () = drained => tracing::warn!("shutdown deadline reached with requests still in flight"),
            }
        }
        self.state.control.leave().await;
        self.state.broadcaster().shutdown(deadline).await;
        failure.map_or(Ok(()), Err)
    }
}

/// One request thread: its runtime, its accept loop, until `stopped` and its connections end.
/// `seat` is this thread's place among all request threads' connection counts.
fn serve_thread(
    listener: std::net::TcpListener,
    seat: crate::balance::Seat,
    router: axum::Router,
    busy_poll: Option<Duration>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Serve)?;
    runtime.block_on(async move {
        if let Some(window) = busy_poll {
            tokio::spawn(crate::busy_poll::run(window));
        }
        let listener = seat
            .listen(TcpListener::from_std(listener).map_err(GatewayError::Serve)?)
            .tap_io(|conn| {
                let _ = conn.get_ref().set_nodelay(true);
            });
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
            .map_err(GatewayError::Serve)
    })
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
