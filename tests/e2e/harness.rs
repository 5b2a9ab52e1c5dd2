//! Starts a mock provider and a gateway, and reads back what the gateway exported.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatecast::spend::{Clock, SystemClock};
use gatecast::{Config, Gateway};
use gatecast_mock::MockServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Env {
    pub mock: MockServer,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub traces: PathBuf,
    /// The config the gateway runs with, written out for CLI commands on the same store.
    pub config_path: PathBuf,
    admin_token: Option<String>,
    clock: Arc<dyn Clock>,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Providers every test can use, all pointing at the one mock server unless noted.
fn config_text(mock: &str, dir: &str, traces: &str, extra: &str, server_extra: &str) -> String {
    // A test may set its own body limit: TOML refuses a key given twice.
    let body_limit = if server_extra.contains("max_body_bytes") {
        ""
    } else {
        "max_body_bytes = 65536"
    };
    let mock_root = mock.trim_end_matches("/v1");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{body_limit}
shutdown_timeout_ms = 2000
{server_extra}

[store]
url = "sqlite://{dir}/gatecast.db"
watch_interval_ms = 200

[providers.up]
kind = "openai"
base_url = "{mock}"
api_key = "sk-provider-secret"
headers = {{ "x-extra" = "1" }}
models = ["gpt-4o-mini"]

[providers.retry]
kind = "openai"
base_url = "{mock}"
max_retries = 2
retry_backoff_ms = 10

[providers.slow]
kind = "openai"
base_url = "{mock}"
timeout_ms = 300

[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
connect_timeout_ms = 500

[providers.builtin]
kind = "mock"

[providers.claude]
kind = "anthropic"
base_url = "{mock_root}"
api_key = "sk-ant-provider-secret"
headers = {{ "anthropic-beta" = "tools-2024-04-04" }}
default_max_tokens = 333

[providers.claude529]
kind = "anthropic"
base_url = "{mock_root}"
api_key = "sk-ant-provider-secret"
max_retries = 1
retry_backoff_ms = 1
retry_on = [529]

[providers.azure]
kind = "azure"
base_url = "{mock_root}"
api_key = "azure-provider-secret"
api_version = "2024-10-21"
[providers.azure.deployments]
gpt-4o-mini = "dep-mini"

[providers.azurev1]
kind = "azure"
base_url = "{mock_root}"
api = "v1"
bearer_token = "entra-provider-token"

[models.fast]
provider = "dead"
model = "gpt-4o-mini"
fallbacks = ["up/gpt-4o-mini"]

[models.mock-model]
provider = "builtin"
model = "mock-model"

[[destinations]]
name = "file"
type = "file"
path = "{traces}"
flush_interval_ms = 20
{extra}
"#
    )
}

impl Env {
    pub async fn start() -> Env {
        Self::with_extra("").await
    }

    /// `extra` is appended to the config's last `[[destinations]]` table.
    pub async fn with_extra(extra: &str) -> Env {
        Self::with_options(extra, None).await
    }

    /// Also mounts the admin API with `admin_token`.
    pub async fn with_options(extra: &str, admin_token: Option<&str>) -> Env {
        Self::with_server(extra, admin_token, "").await
    }

    /// `server_extra` goes into the `[server]` table.
    pub async fn with_server(extra: &str, admin_token: Option<&str>, server_extra: &str) -> Env {
        Self::with_clock(extra, admin_token, server_extra, Arc::new(SystemClock)).await
    }

    /// Spend days and budget periods follow `clock`.
    pub async fn with_clock(
        extra: &str,
        admin_token: Option<&str>,
        server_extra: &str,
        clock: Arc<dyn Clock>,
    ) -> Env {
        let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces.jsonl");
        let text = config_text(
            &mock.base_url(),
            &dir.path().display().to_string(),
            &traces.display().to_string(),
            extra,
            server_extra,
        );
        let config_path = dir.path().join("gatecast.toml");
        std::fs::write(&config_path, &text).unwrap();
        let admin_token = admin_token.map(str::to_owned);
        let (addr, stop, server) = launch(&text, admin_token.clone(), clock.clone()).await;
        Env {
            mock,
            addr,
            client: reqwest::Client::new(),
            traces,
            config_path,
            admin_token,
            clock,
            _dir: dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the gateway, waits for it to flush, and starts a new one on the same config,
    /// store and trace file, as a restart does.
    pub async fn restart(mut self) -> Env {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let (addr, stop, server) =
            launch(&text, self.admin_token.clone(), self.clock.clone()).await;
        self.addr = addr;
        self.stop = Some(stop);
        self.server = Some(server);
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The gateway's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.chat_as("client-key-never-forwarded", body).await
    }

    /// A chat request presenting `key` as the bearer token.
    pub async fn chat_as(&self, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the gateway, waits for its queues to flush, and returns the trace file's text.
    pub async fn stop(mut self) -> String {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        std::fs::read_to_string(&self.traces).unwrap_or_default()
    }

    /// Every span exported so far, decoded with the official proto types.
    pub fn exported(&self) -> Vec<ExportTraceServiceRequest> {
        let text = std::fs::read_to_string(&self.traces).unwrap_or_default();
        // A line still being appended has no newline yet: only complete lines count.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad OTLP JSON line: {e}: {l}"))
            })
            .collect()
    }

    /// Waits until the spans of `trace_id` (hex) are exported, and returns them.
    pub async fn spans_of(&self, trace_id: &str, at_least: usize) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans: Vec<Span> = self
                .exported()
                .into_iter()
                .flat_map(|r| r.resource_spans)
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
                .filter(|s| hex(&s.trace_id) == trace_id)
                .collect();
            if spans.len() >= at_least {
                return spans;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "only {} spans for trace {trace_id}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Builds a gateway from `text` and serves it on a free port until the sender is used.
async fn launch(
    text: &str,
    admin_token: Option<String>,
    clock: Arc<dyn Clock>,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let config = Config::parse(text, |_| None).unwrap();
    let gateway = Gateway::build_with_clock(config, admin_token, clock)
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // Two request threads, as on a two-core machine, so every test crosses them.
    let server = tokio::spawn(async move {
        gateway
            .serve(listener, 2, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, server)
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn trace_id_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-gatecast-trace-id")
        .expect("every response carries x-gatecast-trace-id")
        .to_str()
        .unwrap()
        .to_owned()
}

/// An attribute as a JSON-ish value, for terse assertions.
pub fn attr(span: &Span, key: &str) -> Option<Value> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    let v = kv.value.as_ref()?.value.as_ref()?;
    Some(any_to_json(v))
}

fn any_to_json(v: &AnyValue) -> Value {
    match v {
        AnyValue::StringValue(s) => Value::from(s.clone()),
        AnyValue::BoolValue(b) => Value::from(*b),
        AnyValue::IntValue(i) => Value::from(*i),
        AnyValue::DoubleValue(d) => Value::from(*d),
        AnyValue::ArrayValue(a) => Value::Array(
            a.values
                .iter()
                .filter_map(|x| x.value.as_ref())
                .map(any_to_json)
                .collect(),
        ),
        other => Value::from(format!("{other:?}")),
    }
}

pub fn span_named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span named {name:?} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// Reads a whole SSE body into its `data` payloads; `Err` if the stream broke.
pub async fn sse_events(resp: reqwest::Response) -> Result<Vec<String>, String> {
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return Err(e.to_string()),
    };
    Ok(text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect())
}
