//! Sentry's additions to the GenAI conventions (DESIGN §3).
//!
//! Runs after privacy and only derives from what is already on the spans, so it can never
//! bring content back.

use crate::span::model::{AttrValue, SpanModel, SpanRole};

/// `sentry.op` per span role. The root is a named agent run (`trace_name`), so it shows in
/// Sentry's agent views; the `span_name` span is a plain step inside it.
pub fn sentry_op(role: SpanRole) -> &'static str {
    match role {
        SpanRole::Root => "gen_ai.invoke_agent",
        SpanRole::Span => "function",
        SpanRole::Generation => "gen_ai.chat",
        SpanRole::Attempt => "http.client",
    }
}

pub fn apply_sentry_flavor(spans: &mut [SpanModel]) {
    let from_generation = |key: &str| {
        spans
            .iter()
            .find(|s| s.role == SpanRole::Generation)
            .and_then(|s| s.attr(key))
            .and_then(AttrValue::as_str)
            .map(str::to_owned)
    };
    let environment = from_generation("trace.metadata.environment");
    let release = from_generation("trace.metadata.release");
    for span in spans.iter_mut() {
        // Sentry's embeddings views look for their own op; every other call is a chat.
        let embeddings = span.role == SpanRole::Generation
            && span
                .attr("gen_ai.operation.name")
                .and_then(AttrValue::as_str)
                == Some("embeddings");
        let op = if embeddings {
            "gen_ai.embeddings"
        } else {
            sentry_op(span.role)
        };
        span.set_attr("sentry.op", op);
        // Without it Sentry derives `chat {model}` and custom names never show.
        span.set_attr("sentry.description", span.name.clone());
        if let Some(env) = &environment {
            span.set_attr("sentry.environment", env.as_str());
        }
        if let Some(rel) = &release {
            span.set_attr("sentry.release", rel.as_str());
        }
        match span.role {
            SpanRole::Root => span.set_attr("gen_ai.agent.name", span.name.clone()),
            SpanRole::Generation => {
                let tokens = |k: &str| span.attr(k).and_then(AttrValue::as_i64);
                if let (Some(i), Some(o)) = (
                    tokens("gen_ai.usage.input_tokens"),
                    tokens("gen_ai.usage.output_tokens"),
                ) {
                    span.set_attr("gen_ai.usage.total_tokens", i.saturating_add(o));
                }
            }
            SpanRole::Span | SpanRole::Attempt => {}
        }
    }
}
