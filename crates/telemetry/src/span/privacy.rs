//! Privacy mode (DESIGN §4) as an allow-list: a private span keeps only what is named here.
//!
//! An attribute someone adds later is therefore private by default; the cost of forgetting
//! to list a harmless attribute is a missing field, never a leaked prompt.

use crate::span::limits::TRUNCATED_SUFFIX;
use crate::span::model::{SpanModel, SpanStatus};

/// Attributes kept by exact name.
pub const ALLOWED_KEYS: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    // Request parameters by name, not by prefix: only numbers, flags and the model. `stop`
    // sequences (`gen_ai.request.stop_sequences`) are client text and are dropped.
    "gen_ai.request.model",
    "gen_ai.request.max_tokens",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.top_k",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.presence_penalty",
    "gen_ai.request.seed",
    "gen_ai.request.choice.count",
    "gen_ai.request.stream",
    "gen_ai.embeddings.dimension.count",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.conversation.id",
    "gen_ai.agent.name",
    "gen_ai.cost_usd",
    "user.id",
    "session.id",
    "error.type",
    "deployment.environment.name",
    "http.request.method",
    "http.response.status_code",
    "sentry.op",
    "sentry.description",
    "sentry.environment",
    "sentry.release",
];

/// Attributes kept by prefix.
pub const ALLOWED_PREFIXES: &[&str] = &[
    "gen_ai.usage.",
    "gen_ai.cost.",
    "trace.metadata.",
    "server.",
    "gatecast.",
];

/// Words that mark a `gen_ai.*` attribute as content even under an allowed prefix
/// (`gen_ai.usage.`, `gen_ai.cost.`), a second guard against a name that carries text.
const CONTENT_WORDS: &[&str] = &[
    "message",
    "content",
    "argument",
    "instruction",
    "definition",
];

pub fn is_allowed(key: &str) -> bool {
    if let Some(base) = key.strip_suffix(TRUNCATED_SUFFIX) {
        // A marker goes with its value: it says content existed, which only matters if kept.
        if is_allowed_base(base) {
            return true;
        }
    }
    is_allowed_base(key)
}

/// Runs for every attribute of every span a private destination exports, so it avoids
/// substring searches: no listed name holds a content word (a test checks), and under a
/// `gen_ai.` prefix only the rest of the key can, as no word spans the dot.
fn is_allowed_base(key: &str) -> bool {
    if ALLOWED_KEYS.contains(&key) {
        return true;
    }
    ALLOWED_PREFIXES.iter().any(|p| match key.strip_prefix(p) {
        Some(rest) => !p.starts_with("gen_ai.") || !has_content_word(rest),
        None => false,
    })
}

/// Whether `s` contains one of [`CONTENT_WORDS`]; keys are short, so a scan that tries the
/// words only where their first letter is beats a substring search per word.
fn has_content_word(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        CONTENT_WORDS
            .iter()
            .any(|w| w.as_bytes().first() == Some(&b) && bytes[i..].starts_with(w.as_bytes()))
    })
}

/// Strips everything not on the allow-list. The error message is replaced because provider
/// errors quote the provider, and may quote the prompt.
pub fn apply_privacy(spans: &mut [SpanModel]) {
    for span in spans {
        span.attributes.retain(|(k, _)| is_allowed(k));
        if matches!(span.status, SpanStatus::Error(_)) {
            let replaced = error_message(span).to_owned();
            span.status = SpanStatus::Error(replaced);
        }
    }
}

/// The message a private span's error status carries: its `error.type`, or just "error".
pub fn error_message(span: &SpanModel) -> &str {
    span.attributes
        .iter()
        .find(|(k, _)| k == "error.type")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The allow-list rule as first written, which the fast path must agree with.
    fn reference(key: &str) -> bool {
        let base = |key: &str| {
            let listed =
                ALLOWED_KEYS.contains(&key) || ALLOWED_PREFIXES.iter().any(|p| key.starts_with(p));
            listed && !(key.starts_with("gen_ai.") && CONTENT_WORDS.iter().any(|w| key.contains(w)))
        };
        key.strip_suffix(TRUNCATED_SUFFIX).is_some_and(base) || base(key)
    }

    #[test]
    fn no_listed_name_is_content() {
        for key in ALLOWED_KEYS {
            assert!(!CONTENT_WORDS.iter().any(|w| key.contains(w)), "{key}");
        }
        for p in ALLOWED_PREFIXES {
            assert!(!CONTENT_WORDS.iter().any(|w| p.contains(w)), "{p}");
        }
        for w in CONTENT_WORDS {
            assert!(!w.contains('.'), "{w}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            proptest::sample::select(ALLOWED_KEYS).prop_map(str::to_owned),
            proptest::sample::select(ALLOWED_PREFIXES).prop_map(str::to_owned),
            proptest::sample::select(CONTENT_WORDS).prop_map(str::to_owned),
            Just("gen_ai.".to_owned()),
            Just(TRUNCATED_SUFFIX.to_owned()),
            "[a-z_.]{0,6}",
            ".{0,3}",
        ];
        prop::collection::vec(part, 0..4).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_rule(key in key()) {
            prop_assert_eq!(is_allowed(&key), reference(&key), "{}", key);
        }
    }

    #[test]
    fn allow_list_decisions() {
        for key in [
            "gen_ai.request.model",
            "gen_ai.request.max_tokens",
            "gen_ai.request.temperature",
            "gen_ai.request.seed",
            "gen_ai.request.choice.count",
            "gen_ai.request.stream",
            "gen_ai.usage.input_tokens",
            "gen_ai.response.finish_reasons",
            "trace.metadata.message_count",
            "gatecast.route",
            "server.address",
            "trace.metadata.x.truncated",
        ] {
            assert!(is_allowed(key), "{key}");
        }
        for key in [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
            "gen_ai.tool.definitions",
            "gen_ai.request.messages",
            "gen_ai.response.text",
            "gen_ai.request.tool_call.arguments",
            "gen_ai.request.stop_sequences",
            "gen_ai.request.stop_sequences.truncated",
            "gen_ai.request.encoding_formats",
            "gen_ai.request.something_new",
            "gen_ai.input.messages.truncated",
            "url.full",
            "something.new",
        ] {
            assert!(!is_allowed(key), "{key}");
        }
    }
}
