//! Turns answers into the `chat.completion.chunk` event sequence OpenAI streams.

use bytes::Bytes;

use crate::answer::Answer;
use crate::directives::Directives;
use crate::wire::{self, Chunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta, Usage};

/// Enough pieces to exercise argument reassembly in clients without bloating the stream.
const ARGUMENT_PIECES: usize = 3;

pub(crate) struct StreamContext<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub include_usage: bool,
    /// Content pieces per text answer; `None` streams one word per piece.
    pub chunks: Option<usize>,
}

pub(crate) fn events(ctx: &StreamContext<'_>, answers: &[Answer<'_>], usage: &Usage) -> Vec<Bytes> {
    let per_choice: Vec<Vec<(Delta<'_>, Option<&'static str>)>> = answers
        .iter()
        .map(|answer| deltas(answer, ctx.chunks))
        .collect();
    let steps = per_choice.iter().map(Vec::len).max().unwrap_or(0);
    let mut per_choice: Vec<_> = per_choice.into_iter().map(Vec::into_iter).collect();
    let usage_field = ctx.include_usage.then_some(None);

    let mut events = Vec::with_capacity(steps * answers.len() + 2);
    // Interleaved by choice index, as OpenAI does for n > 1.
    for _ in 0..steps {
        for (index, deltas) in per_choice.iter_mut().enumerate() {
            if let Some((delta, finish_reason)) = deltas.next() {
                let choices = vec![ChunkChoice {
                    index,
                    delta,
                    logprobs: (),
                    finish_reason,
                }];
                events.push(event(&chunk(ctx, choices, usage_field)));
            }
        }
    }
    if ctx.include_usage {
        events.push(event(&chunk(ctx, Vec::new(), Some(Some(usage)))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Applies the stream directives that change the event sequence: `stream_error_after`,
/// `truncate_after` and `event_bytes`. Returns the events and the filler that follows them.
pub(crate) fn shaped(
    mut events: Vec<Bytes>,
    ctx: &StreamContext<'_>,
    directives: &Directives,
) -> (Vec<Bytes>, u64) {
    // Never past the events before `[DONE]`, so a cut stream never looks finished.
    let before_done = events.len().saturating_sub(1);
    if let Some(n) = directives.truncate_after {
        // Nor past the first finish reason.
        let first_finish = events
            .iter()
            .position(|e| memfind(e, b"\"finish_reason\":\""))
            .unwrap_or(before_done);
        events.truncate(n.min(first_finish));
    }
    if let Some(n) = directives.stream_error_after {
        events.truncate(n.min(before_done));
        events.push(Bytes::from_static(STREAM_ERROR_EVENT));
    }
    if let Some(size) = directives.event_bytes {
        events.truncate(1);
        let head = format!(
            "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"",
            ctx.id,
            wire::CREATED,
            serde_json::to_string(ctx.model).unwrap_or_default(),
        );
        let fill = size.saturating_sub(head.len() as u64);
        events.push(Bytes::from(head));
        return (events, fill);
    }
    (events, 0)
}

/// What OpenAI sends when it fails after a stream has started.
pub(crate) const STREAM_ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"mock stream error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn chunk<'a>(
    ctx: &StreamContext<'a>,
    choices: Vec<ChunkChoice<'a>>,
    usage: Option<Option<&'a Usage>>,
) -> Chunk<'a> {
    Chunk {
        id: ctx.id,
        object: "chat.completion.chunk",
        created: wire::CREATED,
        model: ctx.model,
        system_fingerprint: wire::FINGERPRINT,
        choices,
        usage,
    }
}

fn event(chunk: &Chunk<'_>) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    buf.extend_from_slice(&wire::to_bytes(chunk));
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

fn deltas<'a>(
    answer: &'a Answer<'_>,
    chunks: Option<usize>,
) -> Vec<(Delta<'a>, Option<&'static str>)> {
    let mut out = Vec::new();
    match answer {
        Answer::Text(text) => {
            out.push((
                Delta {
                    role: Some("assistant"),
                    content: Some(Some("")),
                    ..Delta::default()
                },
                None,
            ));
            let pieces = match chunks {
                Some(n) => even_pieces(text, n),
                None => word_pieces(text),
            };
            out.extend(pieces.into_iter().map(|p| {
                (
                    Delta {
                        content: Some(Some(p)),
                        ..Delta::default()
                    },
                    None,
                )
            }));
        }
        Answer::ToolCall { name, arguments } => {
            let opening = ToolCallDelta {
                index: 0,
                id: Some(wire::TOOL_CALL_ID),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(name),
                    arguments: "",
                },
            };
            out.push((
                Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    tool_calls: Some([opening]),
                },
                None,
            ));
            for piece in even_pieces(arguments, ARGUMENT_PIECES) {
                let fragment = ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: piece,
                    },
                };
                out.push((
                    Delta {
                        tool_calls: Some([fragment]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        }
    }
    out.push((Delta::default(), Some(answer.finish_reason())));
    out
}

/// One piece per word, each keeping its trailing whitespace, so the pieces concatenate back.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut after_space = false;
    for (i, c) in text.char_indices() {
        if after_space && !c.is_whitespace() {
            pieces.push(&text[start..i]);
            start = i;
        }
        after_space = c.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// `n` nearly equal pieces cut at char boundaries; fewer when the text has fewer chars.
pub(crate) fn even_pieces(text: &str, n: usize) -> Vec<&str> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = bounds.len() - 1;
    let n = n.min(chars).max(1);
    (0..n)
        .map(|k| &text[bounds[k * chars / n]..bounds[(k + 1) * chars / n]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_keep_trailing_space() {
        assert_eq!(
            word_pieces("Mock reply to:  hi\nthere"),
            ["Mock ", "reply ", "to:  ", "hi\n", "there"]
        );
        assert!(word_pieces("").is_empty());
    }

    #[test]
    fn even_pieces_split_at_char_boundaries() {
        assert_eq!(even_pieces("abcdefg", 3), ["ab", "cd", "efg"]);
        assert_eq!(even_pieces("éàü", 10), ["é", "à", "ü"]);
        assert_eq!(even_pieces("", 4), [""]);
        let text = "Mock reply to: a long answer";
        assert_eq!(even_pieces(text, 5).concat(), text);
        assert_eq!(even_pieces(text, 5).len(), 5);
    }
}
