//! The OTLP/gRPC receiver: tonic's generated `TraceService`, accepting gzip.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::{Received, Receiver, Seen};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct Collector {
    seen: Arc<Seen>,
    refuse: Option<tonic::Code>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        let body = Bytes::from(request.into_inner().encode_to_vec());
        self.seen.calls.fetch_add(1, SeqCst);
        self.seen.bytes.fetch_add(body.len() as u64, SeqCst);
        self.seen.requests().push(Received {
            method: Method::POST,
            path: EXPORT_PATH.to_owned(),
            query: None,
            headers,
            body,
            at: Instant::now(),
            accepted: self.refuse.is_none(),
            grpc: true,
        });
        match self.refuse {
            Some(code) => Err(tonic::Status::new(code, "refused by the test collector")),
            None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
        }
    }
}

pub(super) async fn start(refuse: Option<tonic::Code>) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding an OTLP/gRPC receiver: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading a bound port: {e}"));
    let seen = Arc::new(Seen::default());
    let service = TraceServiceServer::new(Collector {
        seen: seen.clone(),
        refuse,
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    Receiver::new(addr, seen).running(server)
}
