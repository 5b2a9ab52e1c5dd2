//! Wiring: config → proxy, broadcaster and the HTTP router, then serving until shutdown.
//!
//! The router reads top to bottom: routes, then the layers every request passes through.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use gatecast_proxy::{Proxy, RecordSink, Settings};
use gatecast_telemetry::{BroadcastConfig, Broadcaster, GenerationRecord};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::error::GatewayError;
use crate::routes;

/// Shared by every handler; built once per process start.
pub struct AppState {
    pub proxy: Proxy,
    pub broadcaster: Broadcaster,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
}

pub struct Gateway {
    state: Arc<AppState>,
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
    /// Must run inside a tokio runtime: destination pipelines start here.
    pub fn build(config: Config) -> Result<Self, GatewayError> {
        let router = config.router()?;
        let broadcaster = Broadcaster::new(BroadcastConfig {
            service_name: config.telemetry.service_name.clone(),
            destinations: config.destinations.clone(),
        })
        .map_err(|e| GatewayError::Telemetry(e.to_string()))?;
        let settings = Settings {
            max_capture_bytes: config.telemetry.max_capture_bytes,
        };
        let proxy = Proxy::new(
            router,
            Arc::new(BroadcastSink(broadcaster.clone())),
            settings,
        );
        let metrics = metrics_handle();
        crate::upkeep::spawn_metrics_upkeep(metrics.clone());
        let state = AppState {
            proxy,
            broadcaster,
            metrics,
            max_body_bytes: config.server.max_body_bytes,
        };
        Ok(Self {
            state: Arc::new(state),
            shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
        })
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
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
        self.state.broadcaster.shutdown(deadline).await;
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
