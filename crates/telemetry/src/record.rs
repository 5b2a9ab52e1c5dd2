//! One served exchange, as plain data.
//!
//! The proxy fills a [`GenerationRecord`] while it serves a request and hands it to
//! [`crate::Broadcaster::publish`] when the exchange is over. Nothing here does I/O, so the
//! record-to-span mapping stays a pure, golden-testable function.

use std::time::Duration;

use serde_json::{Map, Value};

/// Everything the gateway learned about one chat exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationRecord {
    pub timings: Timings,
    /// `None` when the request failed before a route was chosen (bad JSON, unknown model).
    pub route: Option<RouteInfo>,
    pub request: RequestInfo,
    pub output: Output,
    pub usage: Option<Usage>,
    /// What the exchange cost, priced from `usage` at publish time; `None` when the model is
    /// not priced or nothing was used.
    pub cost: Option<Cost>,
    /// The record used tokens of a model nothing prices: `cost` stays `None` (never a
    /// made-up 0) and the span says `gatecast.cost.unknown_model`.
    pub cost_unknown_model: bool,
    pub status: Status,
    /// Every upstream try, in order. Attempt spans are emitted only when there is more than one.
    pub attempts: Vec<Attempt>,
    pub context: TraceContext,
    /// The virtual key that authenticated the request, by name.
    pub key_name: Option<String>,
    /// Set by `x-gatecast-privacy: on`: content is stripped at every destination for this record.
    pub privacy: bool,
}

/// Wall-clock anchor plus offsets, so span times are exact and the record stays `Clone`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// When the gateway accepted the request, in nanoseconds since the Unix epoch.
    pub accepted_unix_nanos: u64,
    /// Offset of the first upstream request.
    pub upstream_start: Option<Duration>,
    /// Offset of the first body chunk sent to the client (streaming only).
    pub first_chunk: Option<Duration>,
    /// Offset of the last byte sent to the client, or of the failure.
    pub end: Duration,
    /// Time spent waiting on providers, summed over attempts; the rest is the gateway's own cost.
    pub upstream_total: Duration,
}

/// Which provider served the request and how it was addressed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteInfo {
    /// The configured provider name (`up` in `up/gpt-4o-mini`).
    pub provider: String,
    /// `gen_ai.provider.name`: `openai`, `mock`, ...
    pub provider_kind: String,
    /// The model name sent upstream.
    pub model: String,
    /// How the client addressed it: `up/gpt-4o-mini`, or an alias.
    pub route: String,
    /// Provider endpoint host and port, for `server.address` / `server.port`.
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
}

/// The request parameters that map onto `gen_ai.request.*`, plus content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    /// The `model` field exactly as the client sent it (empty if absent).
    pub model: String,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop_sequences: Vec<String>,
    pub choice_count: Option<u64>,
    /// The raw `messages` array as JSON text (OpenAI chat format). `None` when content was not
    /// captured (no destination wants it) or the request had none.
    pub messages: Option<Content>,
    /// The raw `tools` array as JSON text.
    pub tools: Option<Content>,
}

/// Captured JSON content, bounded in size by the proxy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Content {
    pub json: String,
    /// True when the proxy cut the content to fit its capture limit.
    pub truncated: bool,
}

/// What the provider answered, accumulated from SSE when the request streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub response_id: Option<String>,
    pub response_model: Option<String>,
    /// One entry per choice, ordered by choice index.
    pub choices: Vec<Choice>,
    /// True when the captured text hit the capture limit.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub role: Option<String>,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub id: Option<String>,
    pub name: String,
    /// The arguments as the model produced them (a JSON string, possibly invalid JSON).
    pub arguments: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Subset of `input_tokens` served from the provider's prompt cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Subset of `input_tokens` written to the provider's prompt cache (Anthropic reports it
    /// beside `input_tokens`; the gateway adds it in, so `input_tokens` is always the total).
    pub cache_creation_input_tokens: Option<u64>,
    /// Subset of `output_tokens` spent on reasoning.
    pub reasoning_output_tokens: Option<u64>,
}

/// A priced exchange, in US dollars.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Every input token, cached and cache-written ones at their own rates.
    pub input_usd: f64,
    /// Every output token, reasoning included.
    pub output_usd: f64,
    pub total_usd: f64,
}

/// How the exchange ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Status {
    #[default]
    Ok,
    Error(ErrorInfo),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    /// The HTTP status the client received, when there was one.
    pub http_status: Option<u16>,
    /// Human-readable message. For provider errors this quotes the provider, so privacy drops it.
    pub message: String,
}

/// Failure classes, rendered as `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request was rejected before it was forwarded (bad JSON, limits, body too large).
    InvalidRequest,
    /// Missing or bad virtual key.
    Unauthorized,
    /// The virtual key has spent its budget for the current period.
    BudgetExceeded,
    /// No provider serves the requested model.
    ModelNotFound,
    /// The provider answered with an error status.
    Provider,
    /// The provider could not be reached.
    Unreachable,
    /// The provider did not answer in time.
    Timeout,
    /// The provider broke the stream mid-way.
    StreamAborted,
    /// A 200 stream that carried an error event, or ended with neither `[DONE]` nor a
    /// finish reason.
    StreamError,
    /// The provider's answer, or one of its events, was larger than the gateway holds.
    ResponseTooLarge,
    /// The client went away before the answer was complete.
    Cancelled,
}

impl ErrorKind {
    /// The value of `error.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::Provider => "provider_error",
            ErrorKind::Unreachable => "upstream_unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::StreamAborted => "stream_aborted",
            ErrorKind::StreamError => "stream_error",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// One try against one provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// The upstream URL, for `url.full` on attempt spans, without userinfo and with query
    /// values redacted.
    pub url: Option<String>,
    /// The HTTP status received, if any.
    pub http_status: Option<u16>,
    /// Why the try failed, as a fixed class (`timeout`, `connect`, `http 500`), never a
    /// message: it becomes `error.type`.
    pub error: Option<String>,
    pub start: Duration,
    pub end: Duration,
}

/// Caller-supplied correlation data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceContext {
    /// The 16-byte trace id the gateway decided on (also returned as `x-gatecast-trace-id`).
    pub trace_id: [u8; 16],
    /// The parent span id from `trace.parent_span_id` or `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// The `user` field.
    pub user: Option<String>,
    /// `session_id` from the body, else `x-session-id`.
    pub session_id: Option<String>,
    /// The whole `trace` object as sent (already limited to 128 custom keys of 8 KiB each).
    pub trace: Map<String, Value>,
    /// Number of custom metadata keys the gateway dropped to respect the limits.
    pub dropped_metadata_keys: u32,
    /// The incoming W3C `traceparent` header, verbatim.
    pub traceparent: Option<String>,
}
