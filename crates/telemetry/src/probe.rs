//! Checking a destination before trusting it with traffic: a connection test that sends an
//! empty export, and a synthetic test trace that goes through the same path a real record
//! does. This is the generic runner: each destination type's `build` returns the sink and
//! the policy its connection test follows (how many probes, which answers pass), and every
//! request goes out through that sink's own request builder.
//!
//! Both answer with a [`ProbeReport`] instead of an error, because "the destination refused
//! us" is the expected outcome of a probe, not a failure of the caller. Reports never carry
//! secrets (DSN keys, header values, URL credentials): they end up in CLI output, admin API
//! responses and logs.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::destinations::file::FileSink;
use crate::destinations::grpc::GrpcSink;
use crate::destinations::http::{send_error, HttpSink};
use crate::destinations::resolve::refusal;
use crate::destinations::{
    reply, BuildContext, BuildError, Built, ConnectionProbe, DestinationConfig, EncodedBatch,
    Encoding, ExportProbe, HostPolicy, Sink, Transport,
};
use crate::encode::{request as encode, view::destination_view};
use crate::ids;
use crate::otlp;
use crate::pipeline::WorkerSettings;
use crate::record::{
    Choice, Content, GenerationRecord, Output, RequestInfo, RouteInfo, Status, Timings,
    TraceContext, Usage,
};
use crate::spans::{build_spans, SpanOptions};

pub use crate::destinations::sentry::RECHECK_DELAY as SENTRY_RECHECK_DELAY;

/// A probe answers a person waiting at a prompt; a destination configured with a long export
/// timeout should not keep them there.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The header (gRPC metadata key) that lets a receiver tell a probe from a real export.
pub const TEST_CONNECTION_HEADER: &str = "x-test-connection";

/// The model and trace name of the synthetic trace, so it is easy to find and to filter out.
pub const TEST_MODEL: &str = "gatecast-test";
pub const TEST_TRACE_NAME: &str = "gatecast.test";

const EXCERPT_CHARS: usize = 300;
/// Enough for an excerpt; a receiver answering with megabytes must not be read in full.
const MAX_BODY_READ: usize = 4096;
/// Shorter strings (`1`, `yes`) would blank out unrelated words of a message.
const MIN_SECRET_LEN: usize = 4;
const REDACTED: &str = "[redacted]";

/// One request of a probe and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAttempt {
    /// The HTTP status, when an HTTP answer arrived (never for gRPC or `file`).
    pub status: Option<u16>,
    /// The start of the answer's body, without secrets.
    pub body_excerpt: Option<String>,
    /// Why no acceptable answer arrived: transport failure, timeout, or a gRPC status.
    pub error: Option<String>,
}

/// The outcome of [`test_connection`] or [`send_test_trace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The destination's name.
    pub destination: String,
    /// Its type: `file`, `sentry`, `otlp` or `webhook`.
    pub kind: String,
    pub passed: bool,
    /// The HTTP status that decided the outcome, if any.
    pub status: Option<u16>,
    /// One human sentence: what was checked and what happened.
    pub message: String,
    pub body_excerpt: Option<String>,
    /// The synthetic trace's id in hex, for [`send_test_trace`].
    pub trace_id: Option<String>,
    /// Every request sent, in order; empty for `file` and for an invalid configuration.
    pub attempts: Vec<ProbeAttempt>,
    pub elapsed_ms: u64,
}

impl ProbeReport {
    /// One line for a terminal or a log: `PASS sentry (HTTP 200)`, `FAIL collector: HTTP 403: ...`.
    pub fn summary(&self) -> String {
        if self.passed {
            format!("PASS {} ({})", self.destination, self.message)
        } else {
            format!("FAIL {}: {}", self.destination, self.message)
        }
    }
}

/// How a probe runs.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// Overrides the pause a type asks for between its two probes (Sentry's
    /// [`SENTRY_RECHECK_DELAY`]); tests use a short one.
    pub recheck_after: Option<Duration>,
    /// Where the probe may connect: the same policy as the destination's exports.
    pub hosts: Arc<HostPolicy>,
}

/// Sends an empty export marked `x-test-connection: true`, which proves reachability and
/// credentials without adding data anywhere. `file` destinations are only opened for append.
/// Any host but link-local and metadata addresses may be reached.
pub async fn test_connection(config: &DestinationConfig) -> ProbeReport {
    test_connection_with(config, &ProbeOptions::default()).await
}

/// [`test_connection`] with the pause between Sentry's two probes chosen by the caller;
/// tests use a short one.
pub async fn test_connection_with_delay(
    config: &DestinationConfig,
    sentry_recheck: Duration,
) -> ProbeReport {
    let options = ProbeOptions {
        recheck_after: Some(sentry_recheck),
        ..ProbeOptions::default()
    };
    test_connection_with(config, &options).await
}

/// [`test_connection`] with the caller's options.
pub async fn test_connection_with(
    config: &DestinationConfig,
    options: &ProbeOptions,
) -> ProbeReport {
    let started = Instant::now();
    let secrets = Secrets::of(config);
    let outcome = match config.check() {
        Err(e) => Outcome::fail(format!("invalid configuration: {e}")),
        Ok(()) => connection_outcome(config, options, &secrets).await,
    };
    let report = outcome.into_report(config, None, started, &secrets);
    tracing::debug!(destination = %report.destination, passed = report.passed, message = %report.message, "connection test");
    report
}

/// Sends one synthetic generation (model `gatecast-test`, trace `gatecast.test`) through
/// the destination's privacy, limits and flavor, so the user can look for it at the backend.
/// Filters and sampling are ignored: the user asked for this trace explicitly.
pub async fn send_test_trace(config: &DestinationConfig, service_name: &str) -> ProbeReport {
    send_test_trace_with(config, service_name, &ProbeOptions::default()).await
}

/// [`send_test_trace`] with the caller's options.
pub async fn send_test_trace_with(
    config: &DestinationConfig,
    service_name: &str,
    options: &ProbeOptions,
) -> ProbeReport {
    let started = Instant::now();
    let secrets = Secrets::of(config);
    let trace_id = ids::random_trace_id();
    let trace_hex = hex::encode(trace_id);
    let (outcome, trace_hex) = match config.check() {
        // Nothing is sent, so there is no trace to look for.
        Err(e) => (Outcome::fail(format!("invalid configuration: {e}")), None),
        Ok(()) => {
            let request = test_trace_request(config, service_name, trace_id);
            let mut outcome = trace_outcome(config, &request, &options.hosts, &secrets).await;
            outcome.message = if outcome.passed {
                format!("sent trace {trace_hex} ({})", outcome.message)
            } else {
                format!("{} (trace {trace_hex} not delivered)", outcome.message)
            };
            (outcome, Some(trace_hex))
        }
    };
    let report = outcome.into_report(config, trace_hex, started, &secrets);
    tracing::debug!(destination = %report.destination, passed = report.passed, message = %report.message, "test trace");
    report
}

/// The synthetic record, shaped like a small successful chat exchange that ended just now.
fn test_record(trace_id: [u8; 16]) -> GenerationRecord {
    let duration = Duration::from_millis(250);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let accepted = now.saturating_sub(duration);
    let mut trace = Map::new();
    trace.insert("trace_name".into(), TEST_TRACE_NAME.into());
    trace.insert("gatecast_test".into(), Value::Bool(true));
    GenerationRecord {
        operation: Default::default(),
        timings: Timings {
            accepted_unix_nanos: u64::try_from(accepted.as_nanos()).unwrap_or(u64::MAX),
            upstream_start: Some(Duration::from_millis(5)),
            first_chunk: None,
            end: duration,
            upstream_total: Duration::from_millis(230),
        },
        route: Some(RouteInfo {
            provider: "gatecast".into(),
            provider_kind: "gatecast".into(),
            model: TEST_MODEL.into(),
            route: TEST_MODEL.into(),
            server_address: None,
            server_port: None,
        }),
        request: RequestInfo {
            model: TEST_MODEL.into(),
            messages: Some(Content {
                json: json!([{"role": "user", "content": "Gatecast test trace: is this destination receiving?"}])
                    .to_string(),
                truncated: false,
            }),
            ..Default::default()
        },
        output: Output {
            response_id: Some(format!("gatecast-test-{}", hex::encode(&trace_id[..4]))),
            response_model: Some(TEST_MODEL.into()),
            choices: vec![Choice {
                index: 0,
                role: Some("assistant".into()),
                text: "Gatecast test trace received.".into(),
                tool_calls: Vec::new(),
                finish_reason: Some("stop".into()),
            }],
            truncated: false,
            embedding_dimensions: None,
        },
        cost: None,
        cost_unknown_model: false,
        usage: Some(Usage {
            input_tokens: 12,
            output_tokens: 5,
            cache_read_input_tokens: None,
            cache_creation_input_tokens: None,
            reasoning_output_tokens: None,
        }),
        status: Status::Ok,
        attempts: Vec::new(),
        context: TraceContext {
            trace_id,
            trace,
            ..Default::default()
        },
        key_name: None,
        privacy: false,
    }
}

/// The export a real record would produce at this destination.
fn test_trace_request(
    config: &DestinationConfig,
    service_name: &str,
    trace_id: [u8; 16],
) -> ExportTraceServiceRequest {
    let service_name = match service_name.trim() {
        "" => "gatecast",
        s => s,
    };
    let record = test_record(trace_id);
    let settings = WorkerSettings::from_config(config, service_name);
    let options = SpanOptions {
        max_attribute_bytes: config.max_attribute_bytes,
        id_seed: None,
    };
    let spans = build_spans(&record, &options);
    let view = destination_view(
        &settings,
        &spans,
        config.privacy_mode || record.privacy,
        options.max_attribute_bytes,
    );
    otlp::export_request(view.spans().map(|s| s.to_proto()), settings.resource)
}

/// What a probe concluded, before it becomes a report.
struct Outcome {
    passed: bool,
    status: Option<u16>,
    message: String,
    body_excerpt: Option<String>,
    attempts: Vec<ProbeAttempt>,
}

impl Outcome {
    fn fail(message: String) -> Self {
        Self {
            passed: false,
            status: None,
            message,
            body_excerpt: None,
            attempts: Vec::new(),
        }
    }

    fn pass(message: String) -> Self {
        Self {
            passed: true,
            ..Self::fail(message)
        }
    }

    /// Judged from the one attempt that decided it; `accept` says which HTTP statuses pass.
    fn from_attempts(attempts: Vec<ProbeAttempt>, accept: impl Fn(u16) -> bool) -> Self {
        let last = attempts.last().cloned().unwrap_or(ProbeAttempt {
            status: None,
            body_excerpt: None,
            error: Some("nothing was sent".into()),
        });
        let passed = match (&last.error, last.status) {
            (Some(_), _) => false,
            (None, Some(status)) => accept(status),
            // A gRPC call that returned OK.
            (None, None) => true,
        };
        Self {
            passed,
            status: last.status,
            message: describe(&last),
            body_excerpt: last.body_excerpt,
            attempts,
        }
    }

    fn into_report(
        self,
        config: &DestinationConfig,
        trace_id: Option<String>,
        started: Instant,
        secrets: &Secrets,
    ) -> ProbeReport {
        ProbeReport {
            destination: config.name.clone(),
            kind: config.kind.as_str().to_owned(),
            passed: self.passed,
            status: self.status,
            message: secrets.scrub(&self.message),
            body_excerpt: self.body_excerpt.map(|b| secrets.scrub(&b)),
            trace_id,
            attempts: self
                .attempts
                .into_iter()
                .map(|a| ProbeAttempt {
                    status: a.status,
                    body_excerpt: a.body_excerpt.map(|b| secrets.scrub(&b)),
                    error: a.error.map(|e| secrets.scrub(&e)),
                })
                .collect(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `HTTP 403: <excerpt>`, `gRPC OK`, or the transport error.
fn describe(attempt: &ProbeAttempt) -> String {
    match (&attempt.error, attempt.status, &attempt.body_excerpt) {
        (Some(error), _, _) => error.clone(),
        (None, Some(status), Some(body)) if !is_success(status) => {
            format!("HTTP {status}: {body}")
        }
        (None, Some(status), _) => format!("HTTP {status}"),
        (None, None, _) => "gRPC OK".into(),
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A probe answers a person waiting: the destination's timeout, capped.
fn probe_timeout(config: &DestinationConfig) -> Duration {
    config.timeout().min(MAX_PROBE_TIMEOUT)
}

/// The destination's own sink and probe policy, built off the async thread: building a
/// file's sink opens it.
async fn build(
    config: &DestinationConfig,
    timeout: Duration,
    hosts: &Arc<HostPolicy>,
) -> Result<Built, BuildError> {
    let kind = config.kind.clone();
    let hosts = hosts.clone();
    tokio::task::spawn_blocking(move || {
        kind.module().build(&BuildContext {
            timeout,
            hosts: &hosts,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(BuildError::Field(crate::destinations::FieldError::new(
            "",
            format!("building the sink failed: {e}"),
        )))
    })
}

async fn connection_outcome(
    config: &DestinationConfig,
    options: &ProbeOptions,
    secrets: &Secrets,
) -> Outcome {
    let timeout = probe_timeout(config);
    let built = match build(config, timeout, &options.hosts).await {
        Ok(built) => built,
        Err(BuildError::Field(e)) => return Outcome::fail(format!("invalid configuration: {e}")),
        Err(BuildError::Io { path, source }) => {
            return Outcome::fail(format!(
                "cannot open {} for append: {source}",
                path.display()
            ))
        }
    };
    match built.probe {
        ConnectionProbe::Opened { message } => Outcome::pass(message),
        ConnectionProbe::EmptyExport(policy) => {
            empty_export(&built.sink, policy, timeout, options, secrets).await
        }
    }
}

/// An empty export, judged by the type's policy: which statuses pass, and whether a second
/// probe after a pause decides.
async fn empty_export(
    sink: &Transport,
    policy: ExportProbe,
    timeout: Duration,
    options: &ProbeOptions,
    secrets: &Secrets,
) -> Outcome {
    let empty = ExportTraceServiceRequest::default();
    let probe = || send_once(sink, &empty, true, timeout, secrets);
    let passes = |s: u16| is_success(s) || policy.also_passes.is_some_and(|(code, _)| code == s);
    let first = probe().await;
    if let Some(recheck) = policy.recheck {
        if first.error.is_some() || !first.status.is_some_and(passes) {
            return Outcome::from_attempts(vec![first], passes);
        }
        tokio::time::sleep(options.recheck_after.unwrap_or(recheck.after)).await;
        let second = probe().await;
        let refused = second.status.is_some_and(|s| recheck.refused.contains(&s));
        let mut outcome = Outcome::from_attempts(vec![first, second], passes);
        if refused {
            outcome.message = format!("{} ({})", outcome.message, recheck.note);
        }
        return outcome;
    }
    let mut outcome = Outcome::from_attempts(vec![first], passes);
    if let Some((code, why)) = policy.also_passes {
        if outcome.passed && outcome.status == Some(code) {
            outcome.message = format!("HTTP {code} ({why})");
        }
    }
    outcome
}

async fn trace_outcome(
    config: &DestinationConfig,
    request: &ExportTraceServiceRequest,
    hosts: &Arc<HostPolicy>,
    secrets: &Secrets,
) -> Outcome {
    let timeout = probe_timeout(config);
    let built = match build(config, timeout, hosts).await {
        Ok(built) => built,
        Err(BuildError::Field(e)) => return Outcome::fail(format!("invalid configuration: {e}")),
        // The error names the path already.
        Err(e @ BuildError::Io { .. }) => {
            return Outcome::fail(format!("cannot open for append: {e}"))
        }
    };
    match &built.sink {
        Transport::File(sink) => append_line(sink, request, timeout).await,
        sink => {
            let attempt = send_once(sink, request, false, timeout, secrets).await;
            Outcome::from_attempts(vec![attempt], is_success)
        }
    }
}

async fn append_line(
    sink: &FileSink,
    request: &ExportTraceServiceRequest,
    timeout: Duration,
) -> Outcome {
    let shown = sink.path().display().to_string();
    let body = match encode(request, Encoding::Json) {
        Ok(body) => body,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let batch = EncodedBatch {
        body: body.into(),
        spans: span_count(request),
        wire: None,
    };
    match tokio::time::timeout(timeout, sink.export(&batch)).await {
        Ok(Ok(())) => Outcome::pass(format!("appended to {shown}")),
        Ok(Err(e)) => Outcome::fail(e.message),
        Err(_) => Outcome::fail(format!(
            "timed out after {} ms writing {shown}",
            timeout.as_millis()
        )),
    }
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// One export through the destination's own sink, so encoding, compression, headers and
/// auth are exactly those of real traffic.
async fn send_once(
    sink: &Transport,
    request: &ExportTraceServiceRequest,
    test_connection: bool,
    timeout: Duration,
    secrets: &Secrets,
) -> ProbeAttempt {
    let timed_out = || ProbeAttempt {
        status: None,
        body_excerpt: None,
        error: Some(format!("timed out after {} ms", timeout.as_millis())),
    };
    let sent = match sink {
        Transport::Http(sink) => {
            tokio::time::timeout(timeout, send_http(sink, request, test_connection, timeout)).await
        }
        Transport::Grpc(sink) => {
            tokio::time::timeout(timeout, send_grpc(sink, request, test_connection, timeout)).await
        }
        Transport::File(_) => Ok(ProbeAttempt {
            status: None,
            body_excerpt: None,
            error: Some("a file takes no export request".into()),
        }),
    };
    let attempt = sent.unwrap_or_else(|_| timed_out());
    ProbeAttempt {
        status: attempt.status,
        body_excerpt: attempt.body_excerpt.map(|b| secrets.scrub(&b)),
        error: attempt.error.map(|e| secrets.scrub(&e)),
    }
}

async fn send_http(
    sink: &HttpSink,
    request: &ExportTraceServiceRequest,
    test_connection: bool,
    timeout: Duration,
) -> ProbeAttempt {
    let failed = |error: String| ProbeAttempt {
        status: None,
        body_excerpt: None,
        error: Some(error),
    };
    let body = match encode(request, sink.encoding()) {
        Ok(body) => body,
        Err(e) => return failed(e.to_string()),
    };
    let batch = EncodedBatch {
        body: body.into(),
        spans: span_count(request),
        wire: None,
    };
    let body = match sink.body(&batch) {
        Ok(body) => body,
        Err(e) => return failed(e.message),
    };
    let mut call = sink.request();
    if test_connection {
        call = call.header(
            HeaderName::from_static(TEST_CONNECTION_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    match call.body(body).send().await {
        Ok(resp) if resp.status().is_redirection() => {
            let status = resp.status().as_u16();
            ProbeAttempt {
                status: Some(status),
                body_excerpt: None,
                error: Some(sink.redirect_error(status, resp.headers())),
            }
        }
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut read = Vec::new();
            while read.len() < MAX_BODY_READ {
                match resp.chunk().await {
                    Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            ProbeAttempt {
                status: Some(status),
                body_excerpt: excerpt(reply::text(content_type.as_deref(), &read).as_bytes()),
                error: None,
            }
        }
        Err(e) => failed(http_error(&e, timeout)),
    }
}

/// reqwest's own message only names the URL; the cause (refused, DNS, TLS) is in the chain.
fn http_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    if refusal(e).is_some() {
        return send_error(e).message;
    }
    let cause = causes(e);
    let cause = match e.url() {
        Some(u) => cause.replace(u.as_str(), "<endpoint>"),
        None => cause,
    };
    let what = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

/// The innermost causes of an error (`tcp connect error: Connection refused`): the outer
/// layers only repeat which client failed.
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = source.source();
    }
    let keep = parts.len().saturating_sub(2);
    parts.split_off(keep).join(": ")
}

async fn send_grpc(
    sink: &GrpcSink,
    request: &ExportTraceServiceRequest,
    test_connection: bool,
    timeout: Duration,
) -> ProbeAttempt {
    let mut extra = MetadataMap::new();
    if test_connection {
        extra.insert(TEST_CONNECTION_HEADER, MetadataValue::from_static("true"));
    }
    match sink.call(request.clone(), extra).await {
        Ok(()) => ProbeAttempt {
            status: None,
            body_excerpt: None,
            error: None,
        },
        // tonic's own deadline usually fires just before ours; both mean the same.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            ) && status.message().contains("Timeout expired") =>
        {
            ProbeAttempt {
                status: None,
                body_excerpt: None,
                error: Some(format!("timed out after {} ms", timeout.as_millis())),
            }
        }
        Err(status) if refusal(&status).is_some() => ProbeAttempt {
            status: None,
            body_excerpt: None,
            error: refusal(&status).map(|r| format!("refused by the destination host policy: {r}")),
        },
        Err(status) => {
            let mut message = format!("gRPC {:?}", status.code());
            let text = status.message().trim();
            if !text.is_empty() {
                message.push_str(": ");
                message.push_str(text);
            }
            let root = causes(&status);
            let root = root.rsplit(": ").next().unwrap_or_default();
            if !root.is_empty() && !message.contains(root) {
                message.push_str(": ");
                message.push_str(root);
            }
            if status.code() == tonic::Code::Unavailable && !message.contains("connect") {
                message.push_str(" (connection failed)");
            }
            ProbeAttempt {
                status: None,
                body_excerpt: None,
                error: Some(message),
            }
        }
    }
}

/// The first [`EXCERPT_CHARS`] characters of a body, or `None` when it is blank.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.trim().chars().take(EXCERPT_CHARS).collect();
    let cut = cut.trim_end();
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// Everything in a destination's settings that must not reach a report.
struct Secrets(Vec<String>);

impl Secrets {
    fn of(config: &DestinationConfig) -> Self {
        let mut found = config.kind.module().secrets();
        // Values that contain others go first, so no fragment of them survives.
        found.retain(|s| s.len() >= MIN_SECRET_LEN);
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found.dedup();
        Self(found)
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;

    use super::*;

    #[test]
    fn excerpts_are_trimmed_bounded_and_lossy() {
        assert_eq!(excerpt(b"  \n "), None);
        assert_eq!(excerpt(b" denied \n").as_deref(), Some("denied"));
        let long = "é".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).unwrap().chars().count(), 300);
        assert_eq!(excerpt(&[0xff, b'o', b'k']).as_deref(), Some("\u{fffd}ok"));
    }

    #[test]
    fn secrets_are_scrubbed_longest_first() {
        let mut sentry = crate::destinations::SentryConfig::new(
            "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42",
        );
        sentry
            .headers
            .insert("authorization".into(), "Bearer tok-123".into());
        sentry.headers.insert("x-flag".into(), "on".into());
        let c = DestinationConfig::new("s", sentry);
        let s = Secrets::of(&c);
        let text = s.scrub(
            "key 0123456789abcdef0123456789abcdef, auth Bearer tok-123, \
             dsn https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42, on",
        );
        assert!(!text.contains("0123456789abcdef0123456789abcdef"), "{text}");
        assert!(!text.contains("tok-123"), "{text}");
        assert!(
            text.ends_with(", on"),
            "short values are left alone: {text}"
        );
    }

    #[test]
    fn the_test_record_goes_through_the_real_span_mapping() {
        let c = DestinationConfig::file("f", "x");
        let req = test_trace_request(&c, "", [7; 16]);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2, "root `gatecast.test` and the generation");
        assert_eq!(spans[0].name, TEST_TRACE_NAME);
        assert_eq!(spans[1].name, format!("chat {TEST_MODEL}"));
        assert!(spans.iter().all(|s| s.trace_id == vec![7; 16]));
        let resource = req.resource_spans[0].resource.as_ref().unwrap();
        let service = resource
            .attributes
            .iter()
            .find(|a| a.key == "service.name")
            .unwrap();
        let value = service.value.as_ref().and_then(|v| v.value.as_ref());
        assert_eq!(
            value,
            Some(&Any::StringValue("gatecast".into())),
            "empty means the default"
        );
    }

    #[test]
    fn summaries_read_as_one_line() {
        let mut r = ProbeReport {
            destination: "sentry".into(),
            kind: "sentry".into(),
            passed: true,
            status: Some(200),
            message: "HTTP 200".into(),
            body_excerpt: None,
            trace_id: None,
            attempts: Vec::new(),
            elapsed_ms: 3,
        };
        assert_eq!(r.summary(), "PASS sentry (HTTP 200)");
        r.passed = false;
        r.destination = "collector".into();
        r.message = "HTTP 403: denied".into();
        assert_eq!(r.summary(), "FAIL collector: HTTP 403: denied");
    }

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn probes_can_be_spawned_on_any_runtime() {
        let c = DestinationConfig::file("f", "x");
        assert_send(test_connection(&c));
        assert_send(send_test_trace(&c, "svc"));
    }
}
