//! The OTLP receivers end to end: a real client on real sockets, every behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use gatecast_mock::otlp::{closed_port, Answer, Behaviour, Counts, HttpServer, Receiver};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// An export of `n` spans named `name-0`, `name-1`...
fn export(name: &str, n: usize) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            name: format!("{name}-{i}"),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post_protobuf(url: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ok_records_and_decodes_protobuf_json_and_gzip() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let protobuf = export("pb", 2).encode_to_vec();
    let resp = client()
        .post(rx.url("/v1/traces?x=1"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .header("authorization", "Bearer t0k")
        .body(gzip(&protobuf))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert!(resp.bytes().await.unwrap().is_empty());

    let json = serde_json::to_vec(&export("js", 1)).unwrap();
    let resp = client()
        .post(rx.url("/hook"))
        .header("content-type", "application/json")
        .body(json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(&resp.bytes().await.unwrap()[..], b"{}");

    let got = rx.requests();
    assert_eq!(got.len(), 2);
    let (pb, js) = (&got[0], &got[1]);
    assert_eq!(
        (pb.method.as_str(), pb.path.as_str()),
        ("POST", "/v1/traces")
    );
    assert_eq!(pb.query.as_deref(), Some("x=1"));
    assert!(pb.gzip() && pb.content_type().contains("protobuf"));
    assert_eq!(pb.headers["authorization"], "Bearer t0k");
    assert_eq!(pb.header("authorization"), Some("Bearer t0k"));
    assert_eq!(pb.decoded(), protobuf, "the gzip is undone");
    assert_eq!(pb.export(), export("pb", 2));
    assert_eq!(pb.export_protobuf(), export("pb", 2));
    assert!(pb.accepted);
    assert_eq!(js.path, "/hook");
    assert!(!js.gzip() && js.content_type().contains("json"));
    assert_eq!(&js.body[..], &json[..], "the body as sent");
    assert_eq!(js.export_json(), export("js", 1));
    assert!(js.at >= pb.at);

    let names: Vec<String> = rx.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["pb-0", "pb-1", "js-0"]);
    assert_eq!(rx.wait_spans(3, Duration::from_secs(1)).await.len(), 3);
    assert_eq!(rx.calls(), 2);
    assert_eq!(rx.connections(), 2, "one client per request");
    let counts = rx.counts();
    assert_eq!(counts.requests, 2);
    assert_eq!(counts.bytes, (gzip(&protobuf).len() + json.len()) as u64);
    assert!(rx.dump().contains("pb-1") && rx.dump().contains("Bearer t0k"));
}

#[tokio::test]
async fn fail_first_answers_with_retry_after_then_accepts() {
    let rx = Receiver::http(Behaviour::FailFirst {
        status: 429,
        n: 2,
        retry_after: Some(7),
    })
    .await;
    let body = export("retry", 1).encode_to_vec();
    for _ in 0..2 {
        let resp = post_protobuf(&rx.url("/v1/traces"), body.clone()).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(resp.text().await.unwrap(), "try later");
    }
    let resp = post_protobuf(&rx.url("/v1/traces"), body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rx.calls(), 3);
    let accepted: Vec<bool> = rx.requests().iter().map(|r| r.accepted).collect();
    assert_eq!(accepted, [false, false, true]);
    assert_eq!(rx.spans().len(), 1, "only the accepted export's spans");
}

#[tokio::test]
async fn always_and_scripted_answers() {
    let rx = Receiver::http(Behaviour::Always(500)).await;
    for _ in 0..2 {
        let resp = post_protobuf(&rx.url("/v1/traces"), vec![]).await;
        assert_eq!(resp.status(), 500);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    assert!(rx.spans().is_empty());

    let rx = Receiver::scripted(vec![
        Answer::new(413, "too big").header("x-limit", "1"),
        Answer::new(401, vec![0x0a, 0x01]).header("content-type", "application/x-protobuf"),
        Answer::from((200, "")),
    ])
    .await;
    let resp = post_protobuf(&rx.url("/v1/traces"), vec![]).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-limit"], "1");
    assert_eq!(resp.text().await.unwrap(), "too big");
    let resp = post_protobuf(&rx.url("/v1/traces"), vec![]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert_eq!(&resp.bytes().await.unwrap()[..], &[0x0a, 0x01]);
    for _ in 0..2 {
        let resp = post_protobuf(&rx.url("/v1/traces"), vec![]).await;
        assert_eq!(resp.status(), 200, "the last answer repeats");
    }
    assert_eq!(rx.requests().len(), 4);

    let rx = Receiver::scripted([(202, "{}")]).await;
    assert_eq!(post_protobuf(&rx.url("/"), vec![]).await.status(), 202);
}

#[tokio::test]
async fn redirect_points_at_the_target_with_a_credential() {
    let target = Receiver::http(Behaviour::Ok).await;
    let rx = Receiver::http(Behaviour::RedirectTo(target.addr)).await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_follow
        .post(rx.url("/v1/traces"))
        .body(vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(
        resp.headers()["location"],
        format!("http://{}/v1/traces?token=redirect-secret", target.addr).as_str()
    );
    assert_eq!(rx.calls(), 1);
    assert_eq!(target.calls(), 0);
}

#[tokio::test]
async fn hang_reads_the_request_and_never_answers() {
    let rx = Receiver::http(Behaviour::Hang).await;
    let late = tokio::time::timeout(
        Duration::from_millis(300),
        post_protobuf(&rx.url("/v1/traces"), export("held", 1).encode_to_vec()),
    )
    .await;
    assert!(late.is_err(), "a hanging receiver must not answer");
    assert_eq!(rx.calls(), 1);
    assert!(!rx.requests()[0].accepted);
    assert!(rx.spans().is_empty());
    assert!(
        rx.dump().contains("held-0"),
        "what it holds is still readable"
    );
}

#[tokio::test]
async fn silent_reads_and_blackhole_never_reads() {
    for behaviour in [Behaviour::Silent, Behaviour::Blackhole] {
        let rx = Receiver::http(behaviour.clone()).await;
        let late = tokio::time::timeout(
            Duration::from_millis(300),
            post_protobuf(&rx.url("/v1/traces"), vec![1; 1024]),
        )
        .await;
        assert!(late.is_err(), "{behaviour:?} must not answer");
        assert_eq!(rx.connections(), 1, "{behaviour:?}");
        assert_eq!(rx.calls(), 0, "{behaviour:?} parses no request");
        assert!(rx.requests().is_empty());
    }

    // A blackhole's peer fills the socket buffers and stalls; a silent one's never does.
    let big = vec![0u8; 64 << 20];
    let rx = Receiver::http(Behaviour::Blackhole).await;
    let mut tcp = tokio::net::TcpStream::connect(rx.addr).await.unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(500), async {
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &big).await
    })
    .await;
    assert!(stalled.is_err(), "a blackhole never reads");
    let rx = Receiver::http(Behaviour::Silent).await;
    let mut tcp = tokio::net::TcpStream::connect(rx.addr).await.unwrap();
    let written = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &big).await
    })
    .await;
    assert!(matches!(written, Ok(Ok(()))), "a silent receiver reads");
}

#[tokio::test]
async fn counting_only_keeps_counts_and_answers_only_its_path() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (rx, serve) = HttpServer::new(Behaviour::Ok)
        .counting_only()
        .only_path("/v1/traces")
        .on(listener)
        .unwrap();
    tokio::spawn(serve);
    let c = client();
    let resp = c
        .post(rx.url("/v1/traces"))
        .header("content-type", "application/json")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "{}");
    let counted = Counts {
        connections: 1,
        requests: 1,
        bytes: 10,
    };
    assert_eq!(rx.counts(), counted);
    for wrong in [c.post(rx.url("/v1/metrics")), c.get(rx.url("/v1/traces"))] {
        let resp = wrong.body("abc").send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    assert_eq!(rx.counts(), counted, "a misaddressed export is not counted");
    assert!(rx.requests().is_empty(), "counting only records nothing");
    assert_eq!(
        rx.counts().since(&Counts {
            connections: 0,
            requests: 1,
            bytes: 4
        }),
        Counts {
            connections: 1,
            requests: 0,
            bytes: 6
        }
    );
}

#[tokio::test]
async fn grpc_records_metadata_and_refuses_with_a_code() {
    let rx = Receiver::grpc().await;
    let mut client = TraceServiceClient::connect(rx.url(""))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let mut request = tonic::Request::new(export("grpc", 2));
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0k".parse().unwrap());
    client.export(request).await.unwrap();
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some("Bearer t0k"));
    assert!(got[0].gzip());
    assert_eq!(got[0].export(), export("grpc", 2));
    assert_eq!(rx.wait_spans(2, Duration::from_secs(1)).await.len(), 2);
    assert_eq!(rx.calls(), 1);

    let rx = Receiver::grpc_refusing(tonic::Code::Unauthenticated).await;
    let mut client = TraceServiceClient::connect(rx.url("")).await.unwrap();
    let err = client.export(export("no", 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(rx.requests().len(), 1, "a refused export is recorded");
    assert!(rx.spans().is_empty(), "and not accepted");
}

#[tokio::test]
async fn a_receiver_on_a_given_port_and_one_that_is_gone() {
    let port = closed_port().await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    let rx = Receiver::http_on(port, Behaviour::Ok).await;
    assert_eq!(rx.addr.port(), port);
    assert_eq!(
        post_protobuf(&rx.url("/v1/traces"), vec![]).await.status(),
        200
    );

    // The last handle dropped stops the receiver: its port refuses connections.
    let clone = rx.clone();
    drop(rx);
    assert_eq!(
        post_protobuf(&clone.url("/v1/traces"), vec![])
            .await
            .status(),
        200
    );
    drop(clone);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        assert!(std::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
