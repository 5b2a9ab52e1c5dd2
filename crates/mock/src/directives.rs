//! Fault-injection directives. Tests and benchmarks steer the mock through the request itself
//! (`#mock:k=v,...` in the last user message) or an `x-mock` header, so no side channel to the
//! mock is needed even when a gateway sits in between.

use thiserror::Error;

/// The request header that carries directives, as `k=v;k=v`.
pub const HEADER: &str = "x-mock";

/// Marks a directive token inside a message.
pub(crate) const MARKER: &str = "#mock:";

const KNOWN_KEYS: &str = "error, retry_after, latency_ms, chunk_delay_ms, abort_after, chunks, \
fail_times, stream_error_after, truncate_after, answer_bytes, event_bytes, cache_read, cache_write, \
content_filter, stop_reason";

/// Error messages quote user input; clipping keeps a hostile token from bloating the reply.
const QUOTE_LIMIT: usize = 64;

/// What the request asked the mock to do differently from a plain, instant success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub error: Option<u16>,
    pub retry_after: Option<u64>,
    pub latency_ms: u64,
    pub chunk_delay_ms: u64,
    pub abort_after: Option<usize>,
    pub chunks: Option<usize>,
    pub fail_times: Option<u32>,
    /// Streams only: after this many events, an OpenAI `data: {"error":…}` event, then a
    /// clean end with no `[DONE]`.
    pub stream_error_after: Option<usize>,
    /// Streams only: a clean end after this many events, before any finish reason or `[DONE]`.
    pub truncate_after: Option<usize>,
    /// Non-streamed answers: a completion of this many bytes, made as it is sent.
    pub answer_bytes: Option<u64>,
    /// Streams only: after the first event, one event of this many bytes that never ends,
    /// made as it is sent.
    pub event_bytes: Option<u64>,
    /// Anthropic Messages: prompt tokens reported as read from the prompt cache
    /// (`cache_read_input_tokens`), on top of the uncached `input_tokens`.
    pub cache_read: Option<u64>,
    /// Anthropic Messages: prompt tokens reported as written to the prompt cache
    /// (`cache_creation_input_tokens`).
    pub cache_write: Option<u64>,
    /// Azure paths: content-filter annotations on the answer, or with `error=400` Azure's
    /// `content_filter` error.
    pub content_filter: bool,
    /// Anthropic Messages: the `stop_reason` a text answer ends with, to exercise a client's
    /// mapping of each (`max_tokens`, `stop_sequence`, `refusal`, `pause_turn`, `end_turn`).
    pub stop_reason: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectiveError {
    #[error("unknown mock directive `{0}` (known: {KNOWN_KEYS})")]
    UnknownKey(String),
    #[error("mock directive `{0}` needs a value, as in `{0}=1`")]
    MissingValue(String),
    #[error("invalid value `{value}` for mock directive `{key}`: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: &'static str,
    },
}

impl Directives {
    /// Parses `k=v` pairs separated by `,`, `;` or whitespace; an optional leading `#mock:` is
    /// accepted so a token copied from a message works in the header too.
    pub fn parse(s: &str) -> Result<Directives, DirectiveError> {
        let mut directives = Directives::default();
        directives.apply(s)?;
        Ok(directives)
    }

    /// Later settings override earlier ones, which is how the message beats the header.
    fn apply(&mut self, s: &str) -> Result<(), DirectiveError> {
        let s = s.trim_start();
        let s = s.strip_prefix(MARKER).unwrap_or(s);
        let items = s
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|t| !t.is_empty());
        for item in items {
            let item = item.strip_prefix(MARKER).unwrap_or(item);
            if item.is_empty() {
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(if is_known(item) {
                    DirectiveError::MissingValue(clip(item))
                } else {
                    DirectiveError::UnknownKey(clip(item))
                });
            };
            self.set(key, value)?;
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), DirectiveError> {
        match key {
            "error" => {
                let status: u16 = number(key, value, "an HTTP status from 400 to 599")?;
                if !(400..=599).contains(&status) {
                    return Err(invalid(key, value, "an HTTP status from 400 to 599"));
                }
                self.error = Some(status);
            }
            "retry_after" => self.retry_after = Some(number(key, value, "whole seconds")?),
            "latency_ms" => self.latency_ms = number(key, value, "milliseconds")?,
            "chunk_delay_ms" => self.chunk_delay_ms = number(key, value, "milliseconds")?,
            "abort_after" => self.abort_after = Some(number(key, value, "a number of events")?),
            "chunks" => {
                let chunks: usize = number(key, value, "a number of chunks, at least 1")?;
                if chunks == 0 {
                    return Err(invalid(key, value, "a number of chunks, at least 1"));
                }
                self.chunks = Some(chunks);
            }
            "fail_times" => self.fail_times = Some(number(key, value, "a number of requests")?),
            "stream_error_after" => {
                self.stream_error_after = Some(number(key, value, "a number of events")?)
            }
            "truncate_after" => {
                self.truncate_after = Some(number(key, value, "a number of events")?)
            }
            "answer_bytes" => self.answer_bytes = Some(number(key, value, "a number of bytes")?),
            "event_bytes" => self.event_bytes = Some(number(key, value, "a number of bytes")?),
            "cache_read" => self.cache_read = Some(number(key, value, "a number of tokens")?),
            "cache_write" => self.cache_write = Some(number(key, value, "a number of tokens")?),
            "stop_reason" => {
                const EXPECTED: &str = "end_turn, max_tokens, stop_sequence, refusal or pause_turn";
                self.stop_reason = Some(match value {
                    "end_turn" => "end_turn",
                    "max_tokens" => "max_tokens",
                    "stop_sequence" => "stop_sequence",
                    "refusal" => "refusal",
                    "pause_turn" => "pause_turn",
                    _ => return Err(invalid(key, value, EXPECTED)),
                });
            }
            "content_filter" => {
                self.content_filter = match value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(invalid(key, value, "1 or 0")),
                }
            }
            _ => return Err(DirectiveError::UnknownKey(clip(key))),
        }
        Ok(())
    }
}

/// Header first, then each message token, so the message wins per key.
pub(crate) fn resolve(
    header: Option<&str>,
    message_tokens: &[&str],
) -> Result<Directives, DirectiveError> {
    let mut directives = Directives::default();
    if let Some(header) = header {
        directives.apply(header)?;
    }
    for token in message_tokens {
        directives.apply(token)?;
    }
    Ok(directives)
}

/// Splits a message into its directive tokens (without the marker) and the text a person would
/// read. A token must start a word, and the whitespace after it goes with it so no double
/// spaces are left behind.
pub(crate) fn split_message(text: &str) -> (Vec<&str>, String) {
    if !text.contains(MARKER) {
        return (Vec::new(), text.to_owned());
    }
    let mut tokens = Vec::new();
    let mut clean = String::with_capacity(text.len());
    let mut at_word_start = true;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if at_word_start && text[i..].starts_with(MARKER) {
            let end = text[i..]
                .find(char::is_whitespace)
                .map_or(text.len(), |e| i + e);
            tokens.push(&text[i + MARKER.len()..end]);
            i = text[end..]
                .find(|c: char| !c.is_whitespace())
                .map_or(text.len(), |e| end + e);
            continue;
        }
        clean.push(c);
        at_word_start = c.is_whitespace();
        i += c.len_utf8();
    }
    (tokens, clean)
}

fn is_known(key: &str) -> bool {
    KNOWN_KEYS.split(", ").any(|k| k == key)
}

fn number<T: std::str::FromStr>(
    key: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, DirectiveError> {
    value.parse().map_err(|_| invalid(key, value, expected))
}

fn invalid(key: &str, value: &str, expected: &'static str) -> DirectiveError {
    DirectiveError::InvalidValue {
        key: clip(key),
        value: clip(value),
        expected,
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_key() {
        let d = Directives::parse(
            "error=429,retry_after=7;latency_ms=15 chunk_delay_ms=3,abort_after=2,chunks=4,fail_times=1 \
             stream_error_after=5,truncate_after=6,answer_bytes=1048576,event_bytes=2097152 \
             cache_read=30,cache_write=12,content_filter=1,stop_reason=refusal",
        )
        .unwrap();
        assert_eq!(
            d,
            Directives {
                error: Some(429),
                retry_after: Some(7),
                latency_ms: 15,
                chunk_delay_ms: 3,
                abort_after: Some(2),
                chunks: Some(4),
                fail_times: Some(1),
                stream_error_after: Some(5),
                truncate_after: Some(6),
                answer_bytes: Some(1 << 20),
                event_bytes: Some(2 << 20),
                cache_read: Some(30),
                cache_write: Some(12),
                content_filter: true,
                stop_reason: Some("refusal"),
            }
        );
        assert!(Directives::parse("content_filter=yes").is_err());
        assert!(Directives::parse("stop_reason=tool_use").is_err());
        assert!(
            !Directives::parse("content_filter=0")
                .unwrap()
                .content_filter
        );
    }

    #[test]
    fn empty_and_marker_prefixed_input() {
        assert_eq!(Directives::parse("").unwrap(), Directives::default());
        assert_eq!(Directives::parse(" ,; ").unwrap(), Directives::default());
        assert_eq!(
            Directives::parse("#mock:error=500").unwrap().error,
            Some(500)
        );
    }

    #[test]
    fn rejects_bad_input_naming_the_directive() {
        let err = Directives::parse("colour=blue").unwrap_err();
        assert_eq!(err, DirectiveError::UnknownKey("colour".into()));
        assert!(err.to_string().contains("colour"), "{err}");

        let err = Directives::parse("error=200").unwrap_err();
        assert!(matches!(&err, DirectiveError::InvalidValue { key, .. } if key == "error"));
        assert!(
            err.to_string().contains("`error`") && err.to_string().contains("200"),
            "{err}"
        );

        assert!(matches!(
            Directives::parse("latency_ms=-1"),
            Err(DirectiveError::InvalidValue { .. })
        ));
        assert!(matches!(
            Directives::parse("chunks=0"),
            Err(DirectiveError::InvalidValue { .. })
        ));
        assert_eq!(
            Directives::parse("latency_ms").unwrap_err(),
            DirectiveError::MissingValue("latency_ms".into())
        );
        assert_eq!(
            Directives::parse("bogus").unwrap_err(),
            DirectiveError::UnknownKey("bogus".into())
        );
    }

    #[test]
    fn quoted_input_is_clipped() {
        let long = "k".repeat(1000);
        let err = Directives::parse(&format!("{long}=1")).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }

    #[test]
    fn message_wins_over_header_per_key() {
        let d = resolve(Some("error=500;latency_ms=10"), &["error=429", "chunks=2"]).unwrap();
        assert_eq!(d.error, Some(429));
        assert_eq!(d.latency_ms, 10);
        assert_eq!(d.chunks, Some(2));
        assert!(resolve(Some("nope=1"), &[]).is_err());
        assert!(resolve(None, &["error=1"]).is_err());
    }

    #[test]
    fn splits_tokens_out_of_the_message() {
        let (tokens, clean) =
            split_message("#mock:error=500 hello #mock:chunks=2\nworld #mock:latency_ms=1");
        assert_eq!(tokens, ["error=500", "chunks=2", "latency_ms=1"]);
        assert_eq!(clean, "hello world ");

        let (tokens, clean) = split_message("mail me at a#mock:x=1 please");
        assert!(tokens.is_empty(), "a marker inside a word is just text");
        assert_eq!(clean, "mail me at a#mock:x=1 please");

        let (tokens, clean) = split_message("#mock:");
        assert_eq!(tokens, [""]);
        assert_eq!(clean, "");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC*") {
            let _ = Directives::parse(&s);
        }

        #[test]
        fn parsing_directive_shaped_input_never_panics(
            s in "(#mock:)?([a-z_]{0,14}(=[-+0-9a-z]{0,22})?[,; ]{0,2}){0,8}",
        ) {
            let _ = Directives::parse(&s);
        }

        #[test]
        fn splitting_never_panics_and_keeps_other_text(s in "\\PC*") {
            let (tokens, clean) = split_message(&s);
            for token in tokens {
                prop_assert!(!token.chars().any(char::is_whitespace));
            }
            if !s.contains(MARKER) {
                prop_assert_eq!(clean, s);
            }
        }

        #[test]
        fn valid_numbers_round_trip(status in 400u16..=599, ms in any::<u64>(), n in 1usize..10_000) {
            let d = Directives::parse(&format!("error={status} latency_ms={ms};chunks={n}")).unwrap();
            prop_assert_eq!(d.error, Some(status));
            prop_assert_eq!(d.latency_ms, ms);
            prop_assert_eq!(d.chunks, Some(n));
        }
    }
}
