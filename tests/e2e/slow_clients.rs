//! Slow clients against the real binary under a low descriptor limit: a few hundred
//! unauthenticated connections sending a byte a second must not keep `/health` and
//! `/metrics` from answering.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::process;

/// Soft and hard: the gateway cannot raise it, and derives a cap of 96 connections from it.
const FD_LIMIT: u32 = 256;
const SLOW_CLIENTS: usize = 300;
/// `/health` answers in milliseconds; the bound leaves room for a loaded two-core machine.
const HEALTH_BOUND: Duration = Duration::from_secs(5);
/// How long a probe waits before it counts as never answered.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects, then sends a request head that never ends, a byte a second; connects again
/// when the gateway closes it.
async fn slow_client(addr: SocketAddr, stop: Arc<AtomicBool>, connects: Arc<AtomicUsize>) {
    const HEAD: &[u8] = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut socket) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        connects.fetch_add(1, Ordering::Relaxed);
        for byte in HEAD.iter().chain(std::iter::repeat(&b'a')) {
            if stop.load(Ordering::Relaxed) || socket.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Time for a new connection's GET to answer 200, or `None` if it did not within the probe
/// timeout.
async fn probe(url: &str) -> Option<Duration> {
    // A fresh connection each time, as a load balancer's health check makes.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(PROBE_TIMEOUT)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client.get(url).send().await.ok()?;
    (response.status() == 200).then(|| started.elapsed())
}

fn shed_count(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("gatecast_connections_closed_total{reason=\"shed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_under_hundreds_of_slow_connections_at_a_low_fd_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Only settings every version knows, so the same test runs against an older binary.
    let config = format!(
        "[server]\nworker_threads = 2\n\n[store]\nurl = \"sqlite://{}/gatecast.db\"\n",
        dir.path().display()
    );
    let gateway = process::start(dir.path(), &config, Some(FD_LIMIT)).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", gateway.port).parse().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(slow_client(addr, stop.clone(), connects.clone())))
        .collect();
    let started = Instant::now();
    while connects.load(Ordering::Relaxed) < SLOW_CLIENTS
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        connects.load(Ordering::Relaxed) >= SLOW_CLIENTS,
        "the slow clients could not connect"
    );
    // Let them hold their connections and start dripping.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut took = Vec::new();
    for _ in 0..5 {
        took.push(probe(&gateway.url("/health")).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let metrics_took = probe(&gateway.url("/metrics")).await;
    eprintln!("with {SLOW_CLIENTS} slow connections at an fd limit of {FD_LIMIT}: /health took {took:?}, /metrics {metrics_took:?}");
    let metrics = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .unwrap()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .ok();
    let metrics = match metrics {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.abort();
    }

    for (i, t) in took.iter().enumerate() {
        let t = t.unwrap_or_else(|| {
            panic!("/health probe {i} did not answer within {PROBE_TIMEOUT:?} (all: {took:?})")
        });
        assert!(
            t < HEALTH_BOUND,
            "/health probe {i} took {t:?} (all: {took:?})"
        );
    }
    let m = metrics_took.expect("/metrics did not answer");
    assert!(m < HEALTH_BOUND, "/metrics took {m:?}");
    // The connections did reach the cap, so what kept the gateway answering was the shedding.
    assert!(
        shed_count(&metrics) > 0.0,
        "no connection was shed: the cap was never reached\n{metrics}"
    );
}
