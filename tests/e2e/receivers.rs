//! In-process OTLP receivers. What arrives is decoded with the official
//! `opentelemetry-proto` types: prost for protobuf, serde for JSON.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    Ok,
    /// Answers this status for the first `n` requests, then 200.
    FailFirst {
        status: u16,
        n: u32,
        retry_after: Option<u64>,
    },
    /// Always answers this status.
    Always(u16),
    /// Accepts the request and never answers.
    Hang,
    /// Answers 307 to this address's `/v1/traces`, with a credential in the location.
    RedirectTo(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub gzip: bool,
    pub content_type: String,
    pub export: ExportTraceServiceRequest,
}

struct Shared {
    behaviour: Behaviour,
    calls: AtomicU32,
    hung: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn calls(&self) -> u32 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received()
            .into_iter()
            .flat_map(|r| r.export.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// Waits until at least `n` spans arrived.
    pub async fn wait_spans(&self, n: usize, within: Duration) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if spans.len() >= n || started.elapsed() > within {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The JSON-ish form of everything received, for "contains no canary" checks.
    pub fn dump(&self) -> String {
        format!(
            "{:?}",
            self.received()
                .iter()
                .map(|r| (&r.headers, &r.export))
                .collect::<Vec<_>>()
        )
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1 (protobuf or JSON, gzip or not, any path).
pub async fn http(behaviour: Behaviour) -> Receiver {
    let shared = Arc::new(Shared {
        behaviour,
        calls: AtomicU32::new(0),
        hung: AtomicUsize::new(0),
        received: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { addr, shared }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = shared.calls.fetch_add(1, Ordering::SeqCst);
    match shared.behaviour {
        Behaviour::Hang => {
            shared.hung.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Behaviour::Always(status) => return StatusCode::from_u16(status).unwrap().into_response(),
        Behaviour::RedirectTo(to) => {
            let location = format!("http://{to}/v1/traces?token=redirect-secret");
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", location.as_str())],
            )
                .into_response();
        }
        Behaviour::FailFirst {
            status,
            n,
            retry_after,
        } if call < n => {
            let mut resp = (StatusCode::from_u16(status).unwrap(), "try later").into_response();
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return resp;
        }
        _ => {}
    }
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let raw = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let export = if content_type.contains("json") {
        serde_json::from_slice::<ExportTraceServiceRequest>(&raw)
            .unwrap_or_else(|e| panic!("bad OTLP JSON: {e}"))
    } else {
        ExportTraceServiceRequest::decode(&raw[..])
            .unwrap_or_else(|e| panic!("bad OTLP protobuf: {e}"))
    };
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        gzip,
        content_type,
        export,
    });
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

struct GrpcSink(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let headers = request.metadata().clone().into_headers();
        self.0.received.lock().unwrap().push(Received {
            path: "grpc".into(),
            headers,
            gzip: false,
            content_type: "application/grpc".into(),
            export: request.into_inner(),
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on 127.0.0.1.
pub async fn grpc() -> Receiver {
    let shared = Arc::new(Shared {
        behaviour: Behaviour::Ok,
        calls: AtomicU32::new(0),
        hung: AtomicUsize::new(0),
        received: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(GrpcSink(shared.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    Receiver { addr, shared }
}
