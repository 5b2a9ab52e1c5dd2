//! Starts a mock provider and a gateway.

use std::net::SocketAddr;

use gatecast::{Config, Gateway};
use gatecast_mock::MockServer;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Env {
    pub mock: MockServer,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    _server: tokio::task::JoinHandle<()>,
}

/// Providers every test can use, all pointing at the one mock server unless noted.
fn config_text(mock: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
shutdown_timeout_ms = 2000

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

[models.fast]
provider = "dead"
model = "gpt-4o-mini"
fallbacks = ["up/gpt-4o-mini"]

[models.mock-model]
provider = "builtin"
model = "mock-model"
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
        let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(&mock.base_url(), extra);
        let config = Config::parse(&text, |_| None).unwrap();
        let gateway = Gateway::build(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            gateway
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Env {
            mock,
            addr,
            client: reqwest::Client::new(),
            _dir: dir,
            stop: Some(stop),
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth("client-key-never-forwarded")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn trace_id_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-gatecast-trace-id")
        .expect("every response carries x-gatecast-trace-id")
        .to_str()
        .unwrap()
        .to_owned()
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
