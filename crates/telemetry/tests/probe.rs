//! Connection tests and test traces against real receivers on 127.0.0.1, decoded with the
//! official OTLP types.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use gatecast_mock::otlp::{closed_port, Answer, Behaviour, Receiver};
use gatecast_telemetry::destinations::{
    Compression, DestinationKind, OtlpConfig, Protocol, SentryConfig, WebhookConfig, WebhookMethod,
};
use gatecast_telemetry::probe::{test_connection_with_delay, TEST_MODEL, TEST_TRACE_NAME};
use gatecast_telemetry::{send_test_trace, test_connection, DestinationConfig, ProbeReport};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "Bearer s3cret-token";

fn otlp(endpoint: String, protocol: Protocol, compression: Compression) -> DestinationConfig {
    let mut otlp = OtlpConfig::new(endpoint);
    otlp.protocol = Some(protocol);
    otlp.compression = Some(compression);
    otlp.headers.insert("authorization".into(), TOKEN.into());
    otlp.headers.insert("x-tenant".into(), "acme".into());
    DestinationConfig::new("collector", otlp)
}

fn otlp_of(d: &mut DestinationConfig) -> &mut OtlpConfig {
    match &mut d.kind {
        DestinationKind::Otlp(otlp) => otlp,
        other => panic!("not otlp: {other:?}"),
    }
}

fn webhook(url: String) -> DestinationConfig {
    let mut hook = WebhookConfig::new(url);
    hook.method = Some(WebhookMethod::Put);
    hook.headers.insert("authorization".into(), TOKEN.into());
    DestinationConfig::new("hook", hook)
}

fn sentry(port: u16) -> DestinationConfig {
    DestinationConfig::new(
        "sentry",
        SentryConfig::new(format!("http://{KEY}@127.0.0.1:{port}/42")),
    )
}

fn spans(req: &ExportTraceServiceRequest) -> Vec<Span> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn generation(spans: &[Span]) -> &Span {
    spans
        .iter()
        .find(|s| attr(s, "gen_ai.operation.name").is_some())
        .unwrap()
}

fn no_secrets(report: &ProbeReport) {
    let text = serde_json::to_string(report).unwrap();
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.contains("s3cret-token"), "{text}");
}

const SHORT: Duration = Duration::from_millis(50);

#[tokio::test]
async fn otlp_protobuf_probe_is_an_empty_marked_export() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    let report = test_connection(&d).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(report.status, Some(200));
    assert_eq!(report.summary(), "PASS collector (HTTP 200)");
    assert_eq!(report.kind, "otlp");
    no_secrets(&report);

    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
    assert_eq!(r.header("x-test-connection"), Some("true"));
    assert_eq!(r.header("authorization"), Some(TOKEN));
    assert_eq!(r.header("x-tenant"), Some("acme"));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let export = r.export_protobuf();
    assert!(export.resource_spans.is_empty(), "{export:?}");
}

#[tokio::test]
async fn otlp_protobuf_without_compression_sends_plain_protobuf() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::None,
    );
    assert!(test_connection(&d).await.passed);
    let r = &rx.requests()[0];
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.export_protobuf().resource_spans.is_empty());
}

#[tokio::test]
async fn otlp_json_probe_sends_json() {
    let rx = Receiver::scripted(vec![(202, "")]).await;
    let d = otlp(rx.url("/v1/traces"), Protocol::HttpJson, Compression::None);
    let report = test_connection(&d).await;
    assert!(report.passed, "{report:?}");
    let r = &rx.requests()[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body.is_object(), "{body}");
    assert!(r.export_json().resource_spans.is_empty());
}

#[tokio::test]
async fn otlp_grpc_probe_carries_metadata() {
    let rx = Receiver::grpc().await;
    let d = otlp(rx.url(""), Protocol::Grpc, Compression::Gzip);
    let report = test_connection(&d).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(report.summary(), "PASS collector (gRPC OK)");
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-test-connection"), Some("true"));
    assert_eq!(got[0].header("authorization"), Some(TOKEN));
    assert!(got[0].export().resource_spans.is_empty());
}

#[tokio::test]
async fn otlp_grpc_refusal_fails_with_the_code() {
    let rx = Receiver::grpc_refusing(tonic::Code::Unauthenticated).await;
    let d = otlp(rx.url(""), Protocol::Grpc, Compression::None);
    let report = test_connection(&d).await;
    assert!(!report.passed);
    assert!(
        report.message.contains("Unauthenticated"),
        "{}",
        report.message
    );
    no_secrets(&report);
}

#[tokio::test]
async fn refusals_fail_with_status_and_excerpt() {
    for (status, body) in [(401, "missing credentials"), (500, "collector exploded")] {
        let rx = Receiver::scripted(vec![(status, body)]).await;
        let d = otlp(
            rx.url("/v1/traces"),
            Protocol::HttpProtobuf,
            Compression::Gzip,
        );
        let report = test_connection(&d).await;
        assert!(!report.passed, "{report:?}");
        assert_eq!(report.status, Some(status));
        assert_eq!(report.body_excerpt.as_deref(), Some(body));
        assert_eq!(
            report.summary(),
            format!("FAIL collector: HTTP {status}: {body}")
        );
        assert_eq!(report.attempts.len(), 1);
    }
}

/// `google.rpc.Status`, as Sentry and OTLP/HTTP receivers answer a refused protobuf export.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_status_answers_are_decoded_for_probes_and_exports() {
    use prost::Message;
    let status = RpcStatus {
        code: 16,
        message: "project key 0123 is not valid".into(),
    }
    .encode_to_vec();
    let answer = Answer::new(401, status).header("content-type", "application/x-protobuf");
    let rx = Receiver::scripted(vec![answer]).await;
    let report = test_connection(&sentry(rx.addr.port())).await;
    assert!(!report.passed);
    let want = "Unauthenticated (code 16): project key 0123 is not valid";
    assert_eq!(report.body_excerpt.as_deref(), Some(want), "{report:?}");
    assert_eq!(report.message, format!("HTTP 401: {want}"));

    // An export's last error reads the same.
    let mut d = sentry(rx.addr.port());
    d.flush_interval_ms = 10;
    let b = gatecast_telemetry::Broadcaster::new(gatecast_telemetry::BroadcastConfig {
        service_name: "svc".into(),
        destinations: vec![d],
    })
    .unwrap();
    b.publish(common::record_saying("status", "hello"));
    let started = Instant::now();
    let error = loop {
        if let Some(e) = b.stats().remove(0).last_error {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no error recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(error, format!("HTTP 401: {want}"));
    b.shutdown(Duration::from_secs(2)).await;

    // Binary that is not a status is shown as printable text.
    let garbage = Answer::new(400, vec![0x0a, 0xff, 0x01, b'b', b'a', b'd'])
        .header("content-type", "application/octet-stream");
    let rx = Receiver::scripted(vec![garbage]).await;
    let report = test_connection(&otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::None,
    ))
    .await;
    let excerpt = report.body_excerpt.unwrap();
    assert!(!excerpt.chars().any(char::is_control), "{excerpt:?}");
    assert!(excerpt.ends_with("bad"), "{excerpt:?}");
}

#[tokio::test]
async fn long_bodies_are_cut_to_an_excerpt() {
    let long: &'static str = Box::leak("x".repeat(10_000).into_boxed_str());
    let rx = Receiver::scripted(vec![(500, long)]).await;
    let d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    let report = test_connection(&d).await;
    assert_eq!(report.body_excerpt.unwrap().len(), 300);
}

#[tokio::test]
async fn webhook_400_passes_but_403_fails() {
    let rx = Receiver::scripted(vec![(400, "empty export")]).await;
    let report = test_connection(&webhook(rx.url("/hook"))).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(report.status, Some(400));
    let r = &rx.requests()[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.header("x-test-connection"), Some("true"));
    assert_eq!(r.header("authorization"), Some(TOKEN));
    assert!(r.export_json().resource_spans.is_empty());

    let rx = Receiver::scripted(vec![(403, "forbidden")]).await;
    let report = test_connection(&webhook(rx.url("/hook"))).await;
    assert!(!report.passed);
    assert_eq!(report.summary(), "FAIL hook: HTTP 403: forbidden");
}

#[tokio::test]
async fn sentry_key_refused_on_the_second_probe_fails() {
    let rx = Receiver::scripted(vec![(200, "{}"), (403, "{\"detail\":\"invalid key\"}")]).await;
    let d = sentry(rx.addr.port());
    let report = test_connection_with_delay(&d, SHORT).await;
    assert!(!report.passed, "{report:?}");
    assert_eq!(report.status, Some(403));
    assert_eq!(report.attempts.len(), 2);
    assert_eq!(report.attempts[0].status, Some(200));
    assert!(
        report.message.contains("second probe"),
        "{}",
        report.message
    );
    no_secrets(&report);
}

#[tokio::test]
async fn sentry_refusing_at_once_fails_without_a_second_probe() {
    let rx = Receiver::scripted(vec![(401, "")]).await;
    let report = test_connection_with_delay(&sentry(rx.addr.port()), SHORT).await;
    assert!(!report.passed);
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn sentry_accepting_twice_passes() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let d = sentry(rx.addr.port());
    let report = test_connection_with_delay(&d, SHORT).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(report.summary(), "PASS sentry (HTTP 200)");
    assert_eq!(report.attempts.len(), 2);
    no_secrets(&report);

    let got = rx.requests();
    assert_eq!(got.len(), 2);
    assert!(got[1].at.duration_since(got[0].at) >= SHORT);
    for r in &got {
        assert_eq!(r.path, "/api/42/integration/otlp/v1/traces");
        assert_eq!(
            r.header("x-sentry-auth"),
            Some(format!("sentry sentry_key={KEY}").as_str())
        );
        assert_eq!(r.header("x-test-connection"), Some("true"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(r.export_protobuf().resource_spans.is_empty());
    }
}

#[tokio::test]
async fn sentry_uses_the_one_second_recheck_by_default() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let report = test_connection(&sentry(rx.addr.port())).await;
    assert!(report.passed);
    let got = rx.requests();
    assert!(got[1].at.duration_since(got[0].at) >= Duration::from_millis(950));
}

#[tokio::test]
async fn a_bad_dsn_fails_with_the_validation_message() {
    let mut d = sentry(1);
    d.kind = SentryConfig::new("https://short@o1.ingest.sentry.io/42").into();
    let report = test_connection(&d).await;
    assert!(!report.passed);
    assert!(report.message.contains("dsn"), "{}", report.message);
    assert!(
        report.message.contains("32 hex digits"),
        "{}",
        report.message
    );
    assert!(report.attempts.is_empty());

    let mut d = otlp(String::new(), Protocol::HttpJson, Compression::None);
    otlp_of(&mut d).endpoint = None;
    let report = send_test_trace(&d, "svc").await;
    assert!(!report.passed);
    assert!(report.message.contains("endpoint"), "{}", report.message);
}

#[tokio::test]
async fn connection_refused_fails_clearly() {
    let port = closed_port().await;
    let d = otlp(
        format!("http://127.0.0.1:{port}/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    let report = test_connection(&d).await;
    assert!(!report.passed);
    assert_eq!(report.status, None);
    assert!(
        report.message.to_lowercase().contains("connect"),
        "{}",
        report.message
    );
    no_secrets(&report);

    let d = otlp(
        format!("http://127.0.0.1:{port}"),
        Protocol::Grpc,
        Compression::Gzip,
    );
    let report = test_connection(&d).await;
    assert!(!report.passed);
    assert!(
        report.message.to_lowercase().contains("connect"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn a_silent_receiver_times_out() {
    let rx = Receiver::http(Behaviour::Silent).await;
    let mut d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    d.timeout_ms = 300;
    let started = Instant::now();
    let report = test_connection(&d).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{report:?}");
    assert!(!report.passed);
    assert!(report.message.contains("timed out"), "{}", report.message);

    let mut d = otlp(rx.url(""), Protocol::Grpc, Compression::Gzip);
    d.timeout_ms = 300;
    let started = Instant::now();
    let report = test_connection(&d).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{report:?}");
    assert!(!report.passed);
    assert!(report.message.contains("timed out"), "{}", report.message);
}

#[tokio::test]
async fn secrets_echoed_by_a_receiver_are_redacted() {
    let rx = Receiver::scripted(vec![(
        401,
        "token Bearer s3cret-token is not valid for key 0123456789abcdef0123456789abcdef",
    )])
    .await;
    let mut d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    otlp_of(&mut d)
        .headers
        .insert("x-sentry-key".into(), KEY.into());
    let report = test_connection(&d).await;
    assert!(!report.passed);
    no_secrets(&report);
    assert!(report.message.contains("[redacted]"), "{}", report.message);
}

#[tokio::test]
async fn file_destination_is_checked_without_writing_and_gets_one_test_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/traces.jsonl");
    let d = DestinationConfig::file("local", &path);
    let report = test_connection(&d).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");

    let report = send_test_trace(&d, "svc").await;
    assert!(report.passed, "{report:?}");
    let trace_id = report.trace_id.clone().unwrap();
    assert!(report.message.contains(&trace_id), "{}", report.message);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    let export: ExportTraceServiceRequest = serde_json::from_str(text.trim_end()).unwrap();
    let all = spans(&export);
    let g = generation(&all);
    assert_eq!(
        attr(g, "gen_ai.request.model"),
        Some(&Any::StringValue(TEST_MODEL.into()))
    );
    assert!(all.iter().any(|s| s.name == TEST_TRACE_NAME));
    assert!(all.iter().all(|s| hex::encode(&s.trace_id) == trace_id));
}

#[tokio::test]
async fn a_file_under_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let d = DestinationConfig::file("local", blocker.join("traces.jsonl"));
    let report = test_connection(&d).await;
    assert!(!report.passed);
    assert!(
        report.message.contains("traces.jsonl"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn test_trace_reaches_an_otlp_receiver_with_and_without_privacy() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let mut d = otlp(
        rx.url("/v1/traces"),
        Protocol::HttpProtobuf,
        Compression::Gzip,
    );
    let report = send_test_trace(&d, "my-gateway").await;
    assert!(report.passed, "{report:?}");
    let trace_id = report.trace_id.clone().unwrap();
    assert!(report
        .message
        .starts_with(&format!("sent trace {trace_id}")));

    d.privacy_mode = true;
    let private = send_test_trace(&d, "my-gateway").await;
    assert!(private.passed, "{private:?}");

    let got = rx.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("x-test-connection"), None);
    let open = got[0].export_protobuf();
    let resource = open.resource_spans[0].resource.as_ref().unwrap();
    assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
        && kv.value.as_ref().and_then(|v| v.value.as_ref())
            == Some(&Any::StringValue("my-gateway".into()))));
    let open = spans(&open);
    assert!(open.iter().all(|s| hex::encode(&s.trace_id) == trace_id));
    let g = generation(&open);
    assert_eq!(g.name, format!("chat {TEST_MODEL}"));
    assert_eq!(
        attr(g, "gen_ai.request.model"),
        Some(&Any::StringValue(TEST_MODEL.into()))
    );
    assert_eq!(
        attr(g, "gen_ai.usage.input_tokens"),
        Some(&Any::IntValue(12))
    );
    assert_eq!(
        attr(g, "gen_ai.usage.output_tokens"),
        Some(&Any::IntValue(5))
    );
    for key in ["gen_ai.input.messages", "gen_ai.output.messages"] {
        assert!(attr(g, key).is_some(), "{key}");
    }

    let private = spans(&got[1].export_protobuf());
    let g = generation(&private);
    assert!(attr(g, "gen_ai.request.model").is_some());
    for key in ["gen_ai.input.messages", "gen_ai.output.messages"] {
        assert!(attr(g, key).is_none(), "{key} survived privacy");
    }
}

#[tokio::test]
async fn test_trace_to_sentry_carries_the_flavor_and_is_sent_once() {
    let rx = Receiver::scripted(vec![(200, "")]).await;
    let report = send_test_trace(&sentry(rx.addr.port()), "svc").await;
    assert!(report.passed, "{report:?}");
    no_secrets(&report);
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let all = spans(&got[0].export_protobuf());
    let g = generation(&all);
    assert_eq!(
        attr(g, "sentry.op"),
        Some(&Any::StringValue("gen_ai.chat".into()))
    );
    assert_eq!(
        attr(g, "gen_ai.usage.total_tokens"),
        Some(&Any::IntValue(17))
    );
}

#[tokio::test]
async fn test_trace_refused_by_a_webhook_fails_even_with_400() {
    let rx = Receiver::scripted(vec![(400, "bad span")]).await;
    let report = send_test_trace(&webhook(rx.url("/hook")), "svc").await;
    assert!(!report.passed);
    assert!(
        report.message.contains("HTTP 400: bad span"),
        "{}",
        report.message
    );
    let all = spans(&rx.requests()[0].export_json());
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn test_trace_over_grpc() {
    let rx = Receiver::grpc().await;
    let report = send_test_trace(&otlp(rx.url(""), Protocol::Grpc, Compression::Gzip), "svc").await;
    assert!(report.passed, "{report:?}");
    let got = rx.requests();
    assert_eq!(got[0].header("x-test-connection"), None);
    assert_eq!(spans(&got[0].export()).len(), 2);
}
