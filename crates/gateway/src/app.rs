//! Wiring: config → proxy, broadcaster and the HTTP router, then serving until shutdown.
//!
//! [`Gateway::router`] is the whole HTTP surface and the one place its layers are stacked;
//! its doc lists them in the order a request meets them.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::handler::Handler;
use axum::routing::{get, post};
use gatecast_proxy::{Proxy, RecordSink, Settings};
use gatecast_telemetry::{Broadcaster, GenerationRecord};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;

use crate::admin::{self, AdminToken};
use crate::api_error::{self, ApiShape, PanicAnswer};
use crate::auth::AuthLayer;
use crate::config::Config;
use crate::control::Control;
use crate::error::GatewayError;
use crate::guard::{GuardLayer, Policy};
use crate::routes;
use crate::routes::request_metrics::RequestMetrics;
use crate::routes::usage_metrics::UsageMetrics;
use crate::serve::ShutdownPlan;
use crate::spend::{Clock, Spend, SystemClock};

/// Shared by every handler; built once per process start.
pub struct AppState {
    pub proxy: Proxy,
    pub control: Arc<Control>,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    pub service_name: String,
    pub request_metrics: RequestMetrics,
    /// Spend per key, and the budgets the key check enforces.
    pub spend: Arc<Spend>,
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

/// The proxy hands finished (and priced) records to the broadcaster through this narrow
/// seam, which also counts their tokens and cost, and adds them to the spend meter (map
/// updates, no I/O).
struct GatewaySink {
    broadcaster: Broadcaster,
    usage: UsageMetrics,
    spend: Arc<Spend>,
}

impl RecordSink for GatewaySink {
    fn publish(&self, record: GenerationRecord) {
        self.usage.record(&record);
        self.spend.meter.record(&record);
        self.broadcaster.publish(record);
    }
    fn wants_content(&self) -> bool {
        self.broadcaster.wants_content()
    }
}

impl Gateway {
    /// Opens the store, loads the runtime config and starts the destination pipelines and
    /// the config watcher. `admin_token` (from `GATECAST_ADMIN_TOKEN`) mounts `/admin/v1`.
    /// Must run inside a tokio runtime.
    pub async fn build(config: Config, admin_token: Option<String>) -> Result<Self, GatewayError> {
        Self::build_with_clock(config, admin_token, Arc::new(SystemClock)).await
    }

    /// As [`Gateway::build`], with the clock that spend days and budget periods are read
    /// from (tests move it to the next period).
    pub async fn build_with_clock(
        config: Config,
        admin_token: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GatewayError> {
        let router = config.router()?;
        let guard = Arc::new(Policy::new(&config.server)?);
        // The recorder goes in before any pipeline counts anything.
        let metrics = metrics_handle();
        let control = Arc::new(Control::start(&config).await?);
        control.spawn_watch(Duration::from_millis(config.store.watch_interval_ms));
        let settings = Settings {
            max_capture_bytes: config.telemetry.max_capture_bytes,
            pricer: Some(Arc::new(config.pricer()?)),
        };
        let spend = Arc::new(Spend::new(&config.spend, clock));
        // Budgets are enforced from the first request, not from the first refresh.
        if let Err(e) = spend.budgets.refresh(&control.store).await {
            tracing::warn!(error = %e, "cannot read budgets at start; retrying every flush interval");
        }
        spend.spawn(control.store.clone());
        let proxy = Proxy::new(
            router,
            Arc::new(GatewaySink {
                broadcaster: control.broadcaster.clone(),
                usage: UsageMetrics::new(),
                spend: spend.clone(),
            }),
            settings,
        )
        .with_response_store(crate::turns::Turns::start(
            control.store.clone(),
            config.responses.clone(),
        ));
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
            spend,
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

    /// The whole HTTP surface. A request meets, in this order:
    ///
    /// 1. its connection's limits ([`crate::serve::conn`]): the head and idle timers, and the
    ///    body's read deadline;
    /// 2. the panic catcher around everything: a handler that panics is answered 500 in the
    ///    error shape rather than dropping the connection;
    /// 3. its route: the client API (`openai_api`) behind the browser guard and then
    ///    the key check; the probes and metrics with nothing in front; the admin API behind
    ///    its token. An unknown route or method is answered in the error shape too;
    /// 4. in the handler, the body limit (`server.max_body_bytes`), read there so that a 413
    ///    is traced like any other refusal of the proxy's.
    pub fn router(&self) -> axum::Router {
        let mut router = axum::Router::new()
            .merge(self.openai_api())
            .merge(self.anthropic_api())
            .route("/health", get(routes::health::live))
            .route("/ready", get(routes::health::ready))
            .route("/metrics", get(routes::metrics::render))
            .method_not_allowed_fallback(api_error::method_not_allowed);
        if let Some(token) = &self.admin_token {
            router = router.nest(
                "/admin/v1",
                admin::router(self.state.clone(), token.clone()),
            );
        }
        router
            .fallback(api_error::unknown_route)
            .layer(CatchPanicLayer::custom(PanicAnswer(ApiShape::OpenAi)))
            .with_state(self.state.clone())
    }

    /// OpenAI's API: the browser and DNS-rebinding guard in front of every route, then the
    /// virtual-key check, both answering in OpenAI's shape. A second inbound API is a second
    /// router like this one, with its own [`ApiShape`].
    fn openai_api(&self) -> axum::Router<Arc<AppState>> {
        const SHAPE: ApiShape = ApiShape::OpenAi;
        // On each handler rather than on the router: a wrong method stays a 405 whoever asks
        // (the router's `route_layer` would cover the 405 too), and the check adds no boxed
        // route of its own to a request, as every router-level layer does.
        let auth = AuthLayer::new(self.state.clone(), SHAPE);
        // Only the routes that spend are refused over a budget; listing models costs nothing.
        let chat = post(routes::chat::completions.layer(auth.clone().spending()));
        let responses = post(routes::responses::create.layer(auth.clone().spending()));
        let stored = get(routes::responses::retrieve.layer(auth.clone()));
        let models = get(routes::models::list.layer(auth));
        axum::Router::new()
            .route("/v1/chat/completions", chat.clone())
            .route("/chat/completions", chat)
            .route("/v1/responses", responses.clone())
            .route("/responses", responses)
            .route("/v1/responses/{id}", stored.clone())
            .route("/responses/{id}", stored)
            .route("/v1/models", models.clone())
            .route("/models", models)
            .method_not_allowed_fallback(api_error::method_not_allowed)
            .layer(GuardLayer::new(
                self.guard.clone(),
                self.state.control.clone(),
                SHAPE,
            ))
    }

    /// Anthropic's API, behind the same guard and key check, answering in Anthropic's shape.
    fn anthropic_api(&self) -> axum::Router<Arc<AppState>> {
        const SHAPE: ApiShape = ApiShape::Anthropic;
        let auth = AuthLayer::new(self.state.clone(), SHAPE);
        let messages = post(routes::messages::create.layer(auth.spending()));
        axum::Router::new()
            .route("/v1/messages", messages.clone())
            .route("/messages", messages)
            .method_not_allowed_fallback(api_error::method_not_allowed)
            .layer(GuardLayer::new(
                self.guard.clone(),
                self.state.control.clone(),
                SHAPE,
            ))
    }

    /// The connection cap in force (`server.max_connections`, or derived from the
    /// descriptor limit).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Serves from `threads` request threads (see [`crate::serve`]) until `shutdown`
    /// resolves, then shuts down within `server.shutdown_timeout_ms` in all (see
    /// [`ShutdownPlan`]): the requests in flight first, then the destinations' flush.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        threads: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let stopped = crate::serve::run(
            listener,
            self.router(),
            threads,
            self.max_connections,
            self.threads,
            ShutdownPlan::new(self.shutdown_timeout),
            shutdown,
        )
        .await?;
        let began = stopped.began;
        // This replica's heartbeat row goes, so the CLI stops waiting for it; bounded, as a
        // store that does not answer must not eat the destinations' flush.
        let left = self.shutdown_timeout.saturating_sub(began.elapsed());
        let _ = tokio::time::timeout(left / 4, self.state.control.leave()).await;
        // The spend of the last requests, which the next flush would have written.
        let left = self.shutdown_timeout.saturating_sub(began.elapsed());
        let store = &self.state.control.store;
        match tokio::time::timeout(left / 4, self.state.spend.meter.flush(store)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the last spend to the store"),
            Err(_) => tracing::warn!(
                pending = self.state.spend.meter.pending(),
                "the store did not take the last spend within the shutdown's share; it is lost"
            ),
        }
        let left = self.shutdown_timeout.saturating_sub(began.elapsed());
        self.state.broadcaster().shutdown(left).await;
        stopped.failure.map_or(Ok(()), Err)
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
