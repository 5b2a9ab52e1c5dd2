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
use crate::routes;

/// Shared by every handler; built once per process start.
pub struct AppState {
    pub proxy: Proxy,
    pub control: Arc<Control>,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    pub service_name: String,
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
        let state = AppState {
            proxy,
            control,
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            service_name: config.telemetry.service_name.clone(),
        };
        Ok(Self {
            state: Arc::new(state),
            admin_token: admin_token
                .filter(|t| !t.trim().is_empty())
                .map(|t| AdminToken::new(&t)),
            shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
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
        router
            .route("/v1/chat/completions", post(routes::chat::completions))
            .route("/chat/completions", post(routes::chat::completions))
            .route("/v1/models", get(routes::models::list))
            .route("/models", get(routes::models::list))
            .route("/health", get(routes::health::live))
            .route("/ready", get(routes::health::ready))
            .route("/metrics", get(routes::metrics::render))
            .fallback(routes::not_found)
            .layer(CatchPanicLayer::custom(routes::panic_response))
            .with_state(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and flushes the
    /// destination queues, each within the configured deadline.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let deadline = self.shutdown_timeout;
        let drained = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(deadline).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.map_err(GatewayError::Serve)?,
            () = drained => tracing::warn!("shutdown deadline reached with requests still in flight"),
        }
        self.state.broadcaster().shutdown(deadline).await;
        Ok(())
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
