//! The generation span's attributes: the DESIGN §3 table, one row at a time.

use serde_json::Value;

use crate::metadata;
use crate::record::{GenerationRecord, Status};
use crate::span::build::reserved;
use crate::span::content;
use crate::span::limits::marker_key;
use crate::span::model::{AttrKey, AttrValue, SpanStatus};

type Attrs = Vec<(AttrKey, AttrValue)>;

fn put(attrs: &mut Attrs, key: impl Into<AttrKey>, value: impl Into<AttrValue>) {
    attrs.push((key.into(), value.into()));
}

fn put_opt<T: Into<AttrValue>>(attrs: &mut Attrs, key: &'static str, value: Option<T>) {
    if let Some(v) = value {
        put(attrs, key, v);
    }
}

/// The model sent upstream when a route was chosen, else what the client asked for.
pub(crate) fn request_model(record: &GenerationRecord) -> Option<&str> {
    record
        .route
        .as_ref()
        .map(|r| r.model.as_str())
        .filter(|m| !m.is_empty())
        .or(Some(record.request.model.as_str()).filter(|m| !m.is_empty()))
}

/// `gen_ai.provider.name` when no provider was resolved (404, or a rejection before routing).
pub const UNKNOWN_PROVIDER: &str = "unknown";

/// The resolved provider's kind; else the prefix of the requested model (`openai/gpt-x` →
/// `openai`), else [`UNKNOWN_PROVIDER`]: the conventions require the attribute on every span.
fn provider_name(record: &GenerationRecord) -> &str {
    let kind = record.route.as_ref().map(|r| r.provider_kind.as_str());
    if let Some(kind) = kind.filter(|k| !k.is_empty()) {
        return kind;
    }
    match record.request.model.split_once('/') {
        Some((prefix, _)) if !prefix.is_empty() => prefix,
        _ => UNKNOWN_PROVIDER,
    }
}

pub(crate) fn attributes(record: &GenerationRecord) -> (Attrs, SpanStatus) {
    let mut a = Attrs::with_capacity(40);
    put(&mut a, "gen_ai.operation.name", record.operation.as_str());
    let route = record.route.as_ref();
    put(&mut a, "gen_ai.provider.name", provider_name(record));
    put_opt(&mut a, "gen_ai.request.model", request_model(record));
    request(record, &mut a);
    response(record, &mut a);
    usage(record, &mut a);
    cost(record, &mut a);

    let ctx = &record.context;
    if let Some(session) = &ctx.session_id {
        put(&mut a, "gen_ai.conversation.id", session.as_str());
        put(&mut a, "session.id", session.as_str());
    }
    put_opt(&mut a, "user.id", ctx.user.as_deref());
    trace_metadata(record, &mut a);

    if let Some(r) = route {
        put_opt(&mut a, "server.address", r.server_address.as_deref());
        put_opt(&mut a, "server.port", r.server_port.map(i64::from));
        put(&mut a, "gatecast.provider", r.provider.as_str());
        if !r.route.is_empty() {
            put(&mut a, "gatecast.route", r.route.as_str());
        }
    }
    put_opt(&mut a, "gatecast.key.name", record.key_name.as_deref());
    if !record.attempts.is_empty() {
        put(&mut a, "gatecast.attempts", record.attempts.len() as u64);
    }
    let t = &record.timings;
    let gateway = t.end.saturating_sub(t.upstream_total);
    put(
        &mut a,
        "gatecast.latency.gateway_ms",
        gateway.as_secs_f64() * 1000.0,
    );

    let status = match &record.status {
        Status::Ok => SpanStatus::Unset,
        Status::Error(e) => {
            put(&mut a, "error.type", e.kind.as_str());
            put_opt(
                &mut a,
                "gatecast.response.status_code",
                e.http_status.map(i64::from),
            );
            let message = if e.message.is_empty() {
                e.kind.as_str().to_owned()
            } else {
                e.message.clone()
            };
            SpanStatus::Error(message)
        }
    };
    content_attributes(record, &mut a);
    (a, status)
}

fn request(record: &GenerationRecord, a: &mut Attrs) {
    let r = &record.request;
    put_opt(a, "gen_ai.request.max_tokens", r.max_tokens);
    put_opt(a, "gen_ai.request.temperature", r.temperature);
    put_opt(a, "gen_ai.request.top_p", r.top_p);
    put_opt(a, "gen_ai.request.frequency_penalty", r.frequency_penalty);
    put_opt(a, "gen_ai.request.presence_penalty", r.presence_penalty);
    put_opt(a, "gen_ai.request.seed", r.seed);
    if !r.stop_sequences.is_empty() {
        put(
            a,
            "gen_ai.request.stop_sequences",
            AttrValue::StringArray(r.stop_sequences.clone()),
        );
    }
    put_opt(a, "gen_ai.request.choice.count", r.choice_count);
    // The answer's vector length when it was read, else what the request asked for.
    put_opt(
        a,
        "gen_ai.embeddings.dimension.count",
        record
            .output
            .embedding_dimensions
            .or(r.embedding_dimensions),
    );
    // Set only when true: the conventions treat an absent flag as a non-streaming request.
    if r.stream {
        put(a, "gen_ai.request.stream", true);
    }
}

fn response(record: &GenerationRecord, a: &mut Attrs) {
    let o = &record.output;
    put_opt(a, "gen_ai.response.model", o.response_model.as_deref());
    put_opt(a, "gen_ai.response.id", o.response_id.as_deref());
    let mut reasons: Vec<String> = o
        .choices
        .iter()
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    if reasons.is_empty() && matches!(record.status, Status::Error(_)) {
        // GenAI conventions: a generation that failed without a reason of its own ends in `error`.
        reasons.push("error".to_owned());
    }
    if !reasons.is_empty() {
        put(
            a,
            "gen_ai.response.finish_reasons",
            AttrValue::StringArray(reasons),
        );
    }
    if record.request.stream {
        // Measured from acceptance: what the client waited, gateway included.
        put_opt(
            a,
            "gen_ai.response.time_to_first_chunk",
            record.timings.first_chunk.map(|d| d.as_secs_f64()),
        );
    }
}

fn usage(record: &GenerationRecord, a: &mut Attrs) {
    let Some(u) = &record.usage else { return };
    put(a, "gen_ai.usage.input_tokens", u.input_tokens);
    put(a, "gen_ai.usage.output_tokens", u.output_tokens);
    put_opt(
        a,
        "gen_ai.usage.cache_read.input_tokens",
        u.cache_read_input_tokens,
    );
    put_opt(
        a,
        "gen_ai.usage.cache_creation.input_tokens",
        u.cache_creation_input_tokens,
    );
    put_opt(
        a,
        "gen_ai.usage.reasoning.output_tokens",
        u.reasoning_output_tokens,
    );
}

/// Sentry's names: `gen_ai.cost.*_tokens` are the dollars of those tokens, and
/// `gen_ai.cost_usd` the total alerts read. Only here: a parent span carrying them too would
/// be added up twice by backends.
fn cost(record: &GenerationRecord, a: &mut Attrs) {
    if let Some(c) = &record.cost {
        put(a, "gen_ai.cost.input_tokens", c.input_usd);
        put(a, "gen_ai.cost.output_tokens", c.output_usd);
        put(a, "gen_ai.cost.total_tokens", c.total_usd);
        put(a, "gen_ai.cost_usd", c.total_usd);
    } else if record.cost_unknown_model {
        put(a, "gatecast.cost.unknown_model", true);
    }
}

fn trace_metadata(record: &GenerationRecord, a: &mut Attrs) {
    let trace = &record.context.trace;
    for (key, value) in trace {
        if metadata::is_reserved(key) {
            continue;
        }
        if let Some(v) = metadata_value(value) {
            put(a, format!("trace.metadata.{key}"), v);
        }
    }
    if let Some(env) = reserved(trace, "environment") {
        put(a, "trace.metadata.environment", env.as_str());
        put(a, "deployment.environment.name", env);
    }
    put_opt(a, "trace.metadata.release", reserved(trace, "release"));
    let dropped = record.context.dropped_metadata_keys;
    if dropped > 0 {
        put(a, "gatecast.metadata.dropped_keys", i64::from(dropped));
    }
}

/// Scalars keep their type; arrays and objects become compact JSON because backends such as
/// Sentry drop nested attribute values. Integers beyond `i64` become their exact text.
fn metadata_value(value: &Value) -> Option<AttrValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => AttrValue::Bool(*b),
        Value::String(s) => AttrValue::String(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.is_f64(), n.as_f64()) {
            (Some(i), _, _) => AttrValue::Int(i),
            (None, true, Some(f)) => AttrValue::Double(f),
            _ => AttrValue::String(n.to_string()),
        },
        other => AttrValue::String(other.to_string()),
    })
}

fn content_attributes(record: &GenerationRecord, a: &mut Attrs) {
    let mut marked = Vec::new();
    // The GenAI registry has no content attribute for embeddings; Sentry's conventions name
    // this one. A single string is its text, a list its JSON.
    if let Some(input) = &record.request.embeddings_input {
        let text = match serde_json::from_str::<Value>(&input.json) {
            Ok(Value::String(text)) => text,
            _ => input.json.clone(),
        };
        put(a, "gen_ai.embeddings.input", text);
        if input.truncated {
            marked.push("gen_ai.embeddings.input");
        }
    }
    let messages = record.request.messages.as_ref();
    if let Some((c, input)) = messages.and_then(|c| content::input_json(&c.json).map(|i| (c, i))) {
        if let Some(system) = input.system {
            put(a, "gen_ai.system_instructions", system);
            if c.truncated {
                marked.push("gen_ai.system_instructions");
            }
        }
        put(a, "gen_ai.input.messages", input.messages);
        if c.truncated {
            marked.push("gen_ai.input.messages");
        }
    }

    let out = &record.output;
    // Captured content shows as captured messages; without them, only a non-empty answer
    // proves the text was captured rather than skipped.
    let has_output = out
        .choices
        .iter()
        .any(|c| !c.text.is_empty() || !c.tool_calls.is_empty());
    if !out.choices.is_empty() && (messages.is_some() || has_output || out.truncated) {
        let failed = matches!(record.status, Status::Error(_));
        put(
            a,
            "gen_ai.output.messages",
            content::output_json(&out.choices, failed),
        );
        if out.truncated {
            marked.push("gen_ai.output.messages");
        }
    }

    if let Some(tools) = &record.request.tools {
        if let Some(defs) = content::tool_definitions(&tools.json) {
            put(a, "gen_ai.tool.definitions", content::to_json(&defs));
            if tools.truncated {
                marked.push("gen_ai.tool.definitions");
            }
        }
    }
    for key in marked {
        put(a, marker_key(key), true);
    }
}
