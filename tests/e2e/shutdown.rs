//! SIGTERM to the real binary with requests in flight and a destination that never answers:
//! the process exits within `shutdown_timeout_ms`, a request that ends within the drain is
//! answered as usual, and the ones still waiting at its deadline get an answer too.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process;
use gatecast_mock::otlp::{Behaviour, Receiver};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(3000);
/// Process start-up of the exit, on a loaded machine.
const EXIT_MARGIN: Duration = Duration::from_millis(2000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_within_the_shutdown_timeout_and_answers_in_flight_requests() {
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let hanging = Receiver::http(Behaviour::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
worker_threads = 2
shutdown_timeout_ms = {timeout}

[store]
url = "sqlite://{dir}/gatecast.db"

[providers.up]
kind = "openai"
base_url = "{mock}"
timeout_ms = 60000

[[destinations]]
name = "hanging"
type = "otlp"
endpoint = "{hanging}"
protocol = "http/protobuf"
flush_interval_ms = 20
timeout_ms = 60000
"#,
        timeout = SHUTDOWN_TIMEOUT.as_millis(),
        dir = dir.path().display(),
        mock = mock.base_url(),
        hanging = hanging.url("/v1/traces"),
    );
    let mut gateway = process::start(dir.path(), &config, None).await;
    let client = reqwest::Client::new();
    let chat = |content: &str, stream: bool| {
        client
            .post(gateway.url("/v1/chat/completions"))
            .json(&json!({"model": "up/gpt-4o-mini", "stream": stream,
                          "messages": [{"role": "user", "content": content}]}))
            .send()
    };

    // A finished request whose record the destination takes and never acknowledges.
    assert_eq!(chat("quick", false).await.unwrap().status(), 200);
    let started = Instant::now();
    while hanging.calls() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the destination was never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A provider that thinks for a minute, one that answers within the drain, and a stream
    // that trickles.
    let waiting = tokio::spawn(chat("think #mock:latency_ms=60000", false));
    let drained = tokio::spawn(chat("brief #mock:latency_ms=1000", false));
    // The mock streams its answer in `chunks` pieces, 100 ms apart: minutes of them.
    let long = format!(
        "{} #mock:chunk_delay_ms=100,chunks=2000",
        "word ".repeat(400)
    );
    let mut stream = chat(&long, true).await.unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    let streamed = tokio::spawn(async move {
        let mut text = String::from_utf8_lossy(&first).into_owned();
        loop {
            match stream.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(None) => return Ok(text),
                Err(e) => return Err(format!("after {} bytes: {e}", text.len())),
            }
        }
    });
    while mock.requests().len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slow requests never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        !streamed.is_finished(),
        "the stream must still be running at SIGTERM"
    );
    let terminated = Instant::now();
    gateway.terminate();
    let exited = gateway
        .exited(SHUTDOWN_TIMEOUT + Duration::from_secs(10))
        .await;
    let took = terminated.elapsed();
    eprintln!(
        "SIGTERM to exit: {took:?} (shutdown_timeout_ms = {})",
        SHUTDOWN_TIMEOUT.as_millis()
    );
    assert!(exited.is_some(), "still running {took:?} after SIGTERM");
    assert!(
        took <= SHUTDOWN_TIMEOUT + EXIT_MARGIN,
        "exit took {took:?}, more than the shutdown timeout of {SHUTDOWN_TIMEOUT:?} and a margin\n{}",
        gateway.log()
    );

    let drained = drained
        .await
        .unwrap()
        .expect("the drained request got no response");
    assert_eq!(
        drained.status(),
        200,
        "a request that ends within the drain is answered as usual"
    );

    let waiting = waiting.await.unwrap();
    let waiting = waiting.unwrap_or_else(|e| panic!("the waiting request got no response: {e}"));
    assert_eq!(waiting.status(), 503);
    let body: Value = waiting.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("shutting down")));
    assert!(
        body["error"].get("param").is_some(),
        "OpenAI's shape: {body}"
    );

    let text = streamed
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the stream was broken off instead of ended: {e}"));
    // It ends with an error event in OpenAI's shape, which SDKs raise, not with `[DONE]`.
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    let event: Value = serde_json::from_str(last.trim_start_matches("data: "))
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {last}"));
    assert_eq!(event["error"]["code"], "shutting_down", "{last}");
    assert!(!text.contains("[DONE]"));
}
