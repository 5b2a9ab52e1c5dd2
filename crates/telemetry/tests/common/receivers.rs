//! In-process OTLP receivers on real TCP sockets: a minimal HTTP/1.1 server with scripted
//! answers (keep-alive aware, so pooled connections work), one that never answers, and a
//! tonic gRPC `TraceService`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as the receiver saw it; header names are lowercase.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body with any gzip content encoding undone.
    pub fn decoded(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            self.body.clone()
        }
    }

    pub fn export_protobuf(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(&self.decoded()[..]).unwrap()
    }

    pub fn export_json(&self) -> ExportTraceServiceRequest {
        serde_json::from_slice(&self.decoded()).unwrap()
    }
}

/// One scripted answer: status, extra headers (a `content-type` replaces `text/plain`), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

pub struct HttpReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted so far: a silent receiver records no requests, but an export
    /// has reached it once a connection is open.
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpReceiver {
    /// The n-th request gets `answers[n]`, and every later one the last answer.
    pub async fn start(answers: Vec<(u16, &'static str)>) -> Self {
        Self::answering(
            answers
                .into_iter()
                .map(|(s, b)| Answer::new(s, b))
                .collect(),
        )
        .await
    }

    /// Like [`HttpReceiver::start`], with headers and binary bodies.
    pub async fn answering(answers: Vec<Answer>) -> Self {
        Self::spawn_on(0, Some(answers)).await
    }

    /// Accepts connections and reads whatever arrives, HTTP/1 or HTTP/2, but never answers.
    pub async fn silent() -> Self {
        Self::spawn(None).await
    }

    /// Like [`HttpReceiver::start`], on a given local port (a destination that comes back).
    pub async fn start_on(port: u16, answers: Vec<(u16, &'static str)>) -> Self {
        let answers = answers
            .into_iter()
            .map(|(s, b)| Answer::new(s, b))
            .collect();
        Self::spawn_on(port, Some(answers)).await
    }

    async fn spawn(answers: Option<Vec<Answer>>) -> Self {
        Self::spawn_on(0, answers).await
    }

    async fn spawn_on(port: u16, answers: Option<Vec<Answer>>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let answers = answers.map(Arc::new);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                let answers = answers.clone();
                held.push(tokio::spawn(serve(stream, seen, answers)));
            }
        });
        Self {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Received>>>,
    answers: Option<Arc<Vec<Answer>>>,
) {
    let Some(answers) = answers else {
        // Hold the connection open without a word, until the client gives up.
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
        return;
    };
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let n = {
            let mut all = seen.lock().unwrap();
            all.push(request);
            all.len() - 1
        };
        let answer = &answers[n.min(answers.len() - 1)];
        let mut head = format!("HTTP/1.1 {} Probe\r\n", answer.status);
        if !answer
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("content-type: text/plain\r\n");
        }
        for (k, v) in &answer.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", answer.body.len()));
        let mut reply = head.into_bytes();
        reply.extend_from_slice(&answer.body);
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some(Received {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// One gRPC export as the receiver saw it.
#[derive(Debug, Clone)]
pub struct GrpcReceived {
    pub metadata: Vec<(String, String)>,
    pub request: ExportTraceServiceRequest,
}

impl GrpcReceived {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Collector {
    seen: Arc<Mutex<Vec<GrpcReceived>>>,
    refuse: Option<tonic::Code>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let metadata = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        self.seen.lock().unwrap().push(GrpcReceived {
            metadata,
            request: request.into_inner(),
        });
        match self.refuse {
            Some(code) => Err(tonic::Status::new(code, "refused by the test collector")),
            None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
        }
    }
}

pub struct GrpcReceiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<GrpcReceived>>>,
    task: JoinHandle<()>,
}

impl Drop for GrpcReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcReceiver {
    /// A collector accepting gzip, answering OK, or `refuse` for every export.
    pub async fn start(refuse: Option<tonic::Code>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(Collector {
            seen: seen.clone(),
            refuse,
        })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<GrpcReceived> {
        self.seen.lock().unwrap().clone()
    }
}
