//! The real `gatecast serve` as a child process, for what only a process shows: its
//! descriptor limit, its signals and how long it takes to exit.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Gateway {
    child: Child,
    pub base: String,
    pub port: u16,
    log: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gatecast serve --config CONFIG` in `dir`, under a soft and hard descriptor limit
/// of `fd_limit` when given, and waits until `/health` answers.
pub async fn start(dir: &Path, config: &str, fd_limit: Option<u32>) -> Gateway {
    let config_path = dir.join("gatecast.toml");
    std::fs::write(&config_path, config).unwrap();
    start_config(dir, &config_path, fd_limit).await
}

/// [`start`] with a config file already written at `config_path`.
pub async fn start_config(dir: &Path, config_path: &Path, fd_limit: Option<u32>) -> Gateway {
    let port = free_port();
    let log = dir.join(format!("gateway-{port}.log"));
    let binary = env!("CARGO_BIN_EXE_gatecast");
    // `ulimit -n` in the shell sets both limits, and `exec` keeps the pid.
    let script = match fd_limit {
        Some(n) => format!("ulimit -n {n} && exec \"$0\" \"$@\""),
        None => "exec \"$0\" \"$@\"".to_owned(),
    };
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(binary)
        .args(["serve", "--config"])
        .arg(config_path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env_remove("SENTRY_DSN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("GATECAST_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        port,
        log,
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = gateway.child.try_wait() {
            panic!("gatecast exited with {status}: {}", gateway.log());
        }
        let health = client
            .get(format!("{}/health", gateway.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return gateway;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gatecast did not answer /health: {}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Gateway {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL: no shutdown, no flush; only what is on disk survives.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Waits up to `within` for the process to exit.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}
