//! Where destinations may connect, against real receivers on 127.0.0.1: redirects are never
//! followed (credentials and spans stay with the configured host), and the host policy holds
//! for exports and connection tests alike.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gatecast_mock::otlp::{Answer, Receiver};
use gatecast_telemetry::destinations::{
    DestinationKind, HostPolicy, OtlpConfig, Protocol, SentryConfig,
};
use gatecast_telemetry::probe::{test_connection_with, ProbeOptions};
use gatecast_telemetry::stats::DestinationStats;
use gatecast_telemetry::{
    send_test_trace, test_connection, BroadcastConfig, Broadcaster, DestinationConfig,
};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "Bearer redirect-s3cret";

fn otlp(endpoint: String) -> DestinationConfig {
    let mut otlp = OtlpConfig::new(endpoint);
    otlp.protocol = Some(Protocol::HttpProtobuf);
    otlp.headers.insert("authorization".into(), TOKEN.into());
    let mut d = DestinationConfig::new("collector", otlp);
    d.flush_interval_ms = 10;
    d.timeout_ms = 2_000;
    d
}

fn otlp_of(d: &mut DestinationConfig) -> &mut OtlpConfig {
    match &mut d.kind {
        DestinationKind::Otlp(otlp) => otlp,
        other => panic!("not otlp: {other:?}"),
    }
}

fn sentry(port: u16) -> DestinationConfig {
    let mut d = DestinationConfig::new(
        "sentry",
        SentryConfig::new(format!("http://{KEY}@127.0.0.1:{port}/42")),
    );
    d.flush_interval_ms = 10;
    d.timeout_ms = 2_000;
    d
}

fn stats(b: &Broadcaster) -> DestinationStats {
    b.stats().remove(0)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A receiver that answers every request with a 307 to `target`, with a credential in the
/// location's user and query that must never be shown.
async fn redirecting_to(target: &Receiver) -> Receiver {
    let location = format!(
        "http://user:pass-in-location@{}/v1/traces?sig=location-secret&x=1#frag",
        target.addr
    );
    Receiver::scripted(vec![Answer::new(307, "moved").header("location", &location)]).await
}

fn assert_names_the_location(text: &str, target: &Receiver) {
    let shown = format!("http://{}/v1/traces?sig=***&x=***", target.addr);
    assert!(text.contains(&shown), "{text}");
    for secret in ["pass-in-location", "location-secret", "user:", "frag"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_redirected_elsewhere_is_an_error_and_nothing_follows_it() {
    let second = Receiver::scripted(vec![(200, "")]).await;
    let first = redirecting_to(&second).await;
    let b = Broadcaster::new(BroadcastConfig {
        service_name: "gatecast-test".into(),
        destinations: vec![otlp(first.url("/v1/traces"))],
    })
    .unwrap();
    b.publish(record_saying("redirected", "hello"));
    until("the export failed", || stats(&b).dropped_export_failed >= 1).await;
    let s = stats(&b);
    assert_eq!(s.exported_spans, 0, "{s:?}");
    assert_eq!(first.requests().len(), 1, "a redirect is not retried");
    let error = s.last_error.unwrap();
    assert!(error.starts_with("HTTP 307: redirected to "), "{error}");
    assert_names_the_location(&error, &second);
    b.shutdown(Duration::from_secs(2)).await;
    assert!(
        second.requests().is_empty(),
        "the second receiver got {:?}",
        second.requests()
    );
}

#[tokio::test]
async fn a_probe_redirected_elsewhere_fails_naming_the_location() {
    let second = Receiver::scripted(vec![(200, "")]).await;
    let first = redirecting_to(&second).await;
    let report = test_connection(&otlp(first.url("/v1/traces"))).await;
    assert!(!report.passed, "{report:?}");
    assert_eq!(report.status, Some(307));
    assert!(
        report.message.starts_with("redirected to "),
        "{}",
        report.message
    );
    assert_names_the_location(&report.message, &second);
    assert!(!serde_json::to_string(&report)
        .unwrap()
        .contains("redirect-s3cret"));

    // Sentry's auth header would go along with a followed redirect; it does not.
    let sentry_first = redirecting_to(&second).await;
    let report = test_connection(&sentry(sentry_first.addr.port())).await;
    assert!(!report.passed, "{report:?}");
    assert_names_the_location(&report.message, &second);
    let report = send_test_trace(&sentry(sentry_first.addr.port()), "svc").await;
    assert!(!report.passed, "{report:?}");
    assert_names_the_location(&report.message, &second);
    assert!(second.requests().is_empty(), "{:?}", second.requests());
    // Same origin is not followed either: a 301 would turn the export into a bodyless GET.
    let same =
        Receiver::scripted(vec![Answer::new(301, "").header("location", "/v2/traces")]).await;
    let report = test_connection(&otlp(same.url("/v1/traces"))).await;
    assert!(!report.passed, "{report:?}");
    assert!(
        report.message.contains(&format!(
            "redirected to http://{}/v2/traces (HTTP 301)",
            same.addr
        )),
        "{}",
        report.message
    );
    assert_eq!(same.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_and_probes_are_held_to_the_host_policy() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    // Only 10/8 is listed: the loopback receiver is out of bounds, by IP and by name.
    let ranges = || Arc::new(HostPolicy::new(&["10.0.0.0/8"]).unwrap());
    let options = ProbeOptions {
        hosts: ranges(),
        ..ProbeOptions::default()
    };
    let literal = otlp(rx.url("/v1/traces"));
    let report = test_connection_with(&literal, &options).await;
    assert!(!report.passed);
    assert!(
        report
            .message
            .contains("127.0.0.1 is not in security.destination_hosts"),
        "{}",
        report.message
    );
    let by_name = otlp(format!("http://localhost:{}/v1/traces", rx.addr.port()));
    let report = test_connection_with(&by_name, &options).await;
    assert!(!report.passed);
    assert!(
        report
            .message
            .contains("refused by the destination host policy")
            && report
                .message
                .contains("(an address of `localhost`) is not in"),
        "{}",
        report.message
    );
    assert!(rx.requests().is_empty(), "nothing was sent");

    // At export time the resolver refuses, and the refusal is recorded, not retried.
    let b = Broadcaster::with_host_policy(
        BroadcastConfig {
            service_name: "gatecast-test".into(),
            destinations: vec![by_name.clone()],
        },
        HostPolicy::new(&["10.0.0.0/8"]).unwrap(),
    )
    .unwrap();
    b.publish(record_saying("refused", "hello"));
    until("the export failed", || stats(&b).dropped_export_failed >= 1).await;
    let s = stats(&b);
    assert_eq!(s.retries, 0, "{s:?}");
    let error = s.last_error.unwrap();
    assert!(
        error.starts_with(
            "refused by the destination host policy: every address of `localhost` is refused"
        ),
        "{error}"
    );
    b.shutdown(Duration::from_secs(2)).await;
    assert!(rx.requests().is_empty());

    // Listed, the same destination works.
    let open = ProbeOptions {
        hosts: Arc::new(HostPolicy::new(&["localhost", "127.0.0.1"]).unwrap()),
        ..ProbeOptions::default()
    };
    assert!(test_connection_with(&by_name, &open).await.passed);
    assert!(test_connection_with(&literal, &open).await.passed);
}

#[tokio::test]
async fn metadata_addresses_are_refused_by_default_over_http_and_grpc() {
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]:80/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let report = test_connection(&otlp(endpoint.into())).await;
        assert!(!report.passed);
        assert!(
            report.message.contains("security.destination_hosts"),
            "{endpoint}: {}",
            report.message
        );
    }
    let mut grpc = otlp("http://169.254.169.254:4317".into());
    otlp_of(&mut grpc).protocol = Some(Protocol::Grpc);
    let report = test_connection(&grpc).await;
    assert!(!report.passed);
    assert!(
        report.message.contains("cloud metadata address"),
        "{}",
        report.message
    );

    // gRPC resolves through the guarded connector too.
    let rx = Receiver::grpc().await;
    let mut by_name = otlp(format!("http://localhost:{}", rx.addr.port()));
    otlp_of(&mut by_name).protocol = Some(Protocol::Grpc);
    let options = ProbeOptions {
        hosts: Arc::new(HostPolicy::new(&["10.0.0.0/8"]).unwrap()),
        ..ProbeOptions::default()
    };
    let report = test_connection_with(&by_name, &options).await;
    assert!(!report.passed);
    assert!(
        report
            .message
            .starts_with("refused by the destination host policy: every address of `localhost`"),
        "{}",
        report.message
    );
    assert!(rx.requests().is_empty());
    assert!(test_connection(&by_name).await.passed, "allowed by default");
}
