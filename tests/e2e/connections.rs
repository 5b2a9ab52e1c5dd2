//! Connection-level limits, with raw sockets: the header, idle and body timers, the
//! connection cap, and the 413 for a body written before the response is read.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Env;

/// Reads until the peer closes; how long that took, or `None` if it stayed open `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One HTTP/1.1 response read off `socket`: status and body (by `content-length`).
async fn read_response(socket: &mut TcpStream) -> (u16, Value) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("no response within 10 s")
            .expect("the connection broke before the response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a content-length");
            break (end + 4, length);
        }
    };
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&data[head_end..head_end + length]).unwrap_or(Value::Null);
    (status, body)
}

fn assert_openai_error(body: &Value) {
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let env = Env::with_server("", None, "header_read_timeout_ms = 500").await;
    let mut socket = TcpStream::connect(env.addr).await.unwrap();
    let (mut read, mut write) = socket.split();
    let drip = async {
        for byte in b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf)).await;
        started.elapsed()
    };
    let took = tokio::select! {
        () = drip => unreachable!(),
        took = closed => took,
    };
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(4),
        "closed after {took:?}, want about 500 ms"
    );
    drop(socket);
    env.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_idles_for_the_idle_timeout_not_the_header_timeout() {
    let env = Env::with_server(
        "",
        None,
        "header_read_timeout_ms = 300\nidle_timeout_ms = 1500",
    )
    .await;
    let mut socket = TcpStream::connect(env.addr).await.unwrap();
    let get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    socket.write_all(get).await.unwrap();
    assert_eq!(read_response(&mut socket).await.0, 200);
    // Idle past the header timeout: still open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    socket.write_all(get).await.unwrap();
    assert_eq!(
        read_response(&mut socket).await.0,
        200,
        "closed before the idle timeout"
    );
    let took = closed_within(&mut socket, Duration::from_secs(6))
        .await
        .expect("an idle connection stays open past the idle timeout");
    assert!(
        took >= Duration::from_millis(1300),
        "closed after {took:?}, want about 1.5 s"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_408() {
    let env = Env::with_server("", None, "body_read_timeout_ms = 500").await;
    let mut socket = TcpStream::connect(env.addr).await.unwrap();
    let started = Instant::now();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let (status, body) = read_response(&mut socket).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{body}");
    assert_openai_error(&body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500 ms"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_silent_connection_makes_room() {
    let env = Env::with_server("", None, "max_connections = 4").await;
    // A request in flight holds its connection: it is never the one shed.
    let busy = {
        let client = env.client.clone();
        let url = env.url("/v1/chat/completions");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"model": "up/gpt-4o-mini",
                              "messages": [{"role": "user", "content": "#mock:latency_ms=1500"}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let started = Instant::now();
    while env.mock.requests().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(env.addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cap is full: one busy, three silent. A health check still gets in at once...
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = tokio::time::timeout(Duration::from_secs(3), fresh.get(env.url("/health")).send())
        .await
        .expect("a health check waited at the cap")
        .unwrap();
    assert_eq!(health.status(), 200);
    // ...because a silent connection was closed for it (the oldest on the thread that took
    // the health check).
    let mut shed = 0;
    for socket in &mut silent {
        if closed_within(socket, Duration::from_millis(500))
            .await
            .is_some()
        {
            shed += 1;
        }
    }
    assert!(shed >= 1, "no silent connection was shed");
    assert_eq!(
        busy.await.unwrap().unwrap(),
        200,
        "the busy connection was served"
    );
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("gatecast_connections_closed_total{reason=\"shed\"}"),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_client_waits_for_one_to_finish() {
    let env = Env::with_server("", None, "max_connections = 2").await;
    let slow = |i: usize| {
        // A client of its own each: two connections.
        let client = reqwest::Client::new();
        let url = env.url("/v1/chat/completions");
        tokio::spawn(async move {
            let body = json!({"model": "up/gpt-4o-mini",
                              "messages": [{"role": "user", "content": format!("{i} #mock:latency_ms=1000")}]});
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let busy = [slow(0), slow(1)];
    let started = Instant::now();
    while env.mock.requests().len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = Instant::now();
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        fresh.get(env.url("/health")).send(),
    )
    .await
    .expect("the waiting client was never let in")
    .unwrap();
    let waited = waited.elapsed();
    assert_eq!(health.status(), 200);
    for b in busy {
        assert_eq!(
            b.await.unwrap().unwrap(),
            200,
            "busy connections are served, not shed"
        );
    }
    // It got in only once a busy connection had answered (and gone idle, so it could be shed).
    assert!(
        waited >= Duration::from_millis(500),
        "let in after {waited:?}, while both were busy"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_client_that_writes_an_oversized_body_before_reading_gets_the_413() {
    // The harness's limit is 64 KiB; this body is well past what socket buffers absorb.
    let env = Env::start().await;
    let body = vec![b'x'; 8 * 1024 * 1024];
    let mut socket = TcpStream::connect(env.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(&body)
        .await
        .expect("the gateway must read the body it refuses, not close the connection mid-write");
    let (status, response) = read_response(&mut socket).await;
    assert_eq!(status, 413, "{response}");
    assert_openai_error(&response);
    assert_eq!(response["error"]["code"], "request_too_large");
    env.stop().await;
}
