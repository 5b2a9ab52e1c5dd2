//! What each choice says, before it is put on the wire whole or in chunks.

use crate::wire::{self, Usage};

/// Long prompts would otherwise make long, slow-to-stream answers.
const ECHO_LIMIT: usize = 200;
const ARGUMENT_LIMIT: usize = 50;

pub(crate) enum Answer<'a> {
    Text(String),
    ToolCall { name: &'a str, arguments: String },
}

impl<'a> Answer<'a> {
    /// `clean_text` is the last user message with directive tokens removed.
    pub fn for_choice(index: usize, clean_text: &str, tool: Option<&'a str>) -> Self {
        let text = clean_text.trim();
        if let Some(name) = tool {
            let query = serde_json::json!({ "query": clip(text, ARGUMENT_LIMIT) });
            return Answer::ToolCall {
                name,
                arguments: query.to_string(),
            };
        }
        let mut reply = if text.is_empty() {
            "Mock reply.".to_owned()
        } else {
            format!("Mock reply to: {}", clip(text, ECHO_LIMIT))
        };
        if index > 0 {
            reply.push_str(&format!(" (choice {index})"));
        }
        Answer::Text(reply)
    }

    /// The text the completion-token count is taken from.
    pub fn said(&self) -> &str {
        match self {
            Answer::Text(text) => text,
            Answer::ToolCall { arguments, .. } => arguments,
        }
    }

    pub fn finish_reason(&self) -> &'static str {
        match self {
            Answer::Text(_) => "stop",
            Answer::ToolCall { .. } => "tool_calls",
        }
    }

    pub fn message(&self) -> wire::Message<'_> {
        match self {
            Answer::Text(text) => wire::Message {
                role: "assistant",
                content: Some(text),
                tool_calls: None,
            },
            Answer::ToolCall { name, arguments } => wire::Message {
                role: "assistant",
                content: None,
                tool_calls: Some([wire::ToolCall {
                    id: wire::TOOL_CALL_ID,
                    kind: "function",
                    function: wire::Function { name, arguments },
                }]),
            },
        }
    }
}

pub(crate) fn usage(prompt_tokens: u64, answers: &[Answer<'_>]) -> Usage {
    let completion: usize = answers
        .iter()
        .map(|a| crate::request::word_count(a.said()))
        .sum();
    Usage::new(prompt_tokens, completion as u64)
}

/// Cuts at a char boundary so multi-byte text never splits mid-character.
pub(crate) fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_the_message_cut_at_a_char_boundary() {
        let Answer::Text(text) = Answer::for_choice(0, &"é".repeat(300), None) else {
            panic!()
        };
        assert_eq!(text, format!("Mock reply to: {}", "é".repeat(200)));
        let Answer::Text(text) = Answer::for_choice(2, "  \n ", None) else {
            panic!()
        };
        assert_eq!(text, "Mock reply. (choice 2)");
    }

    #[test]
    fn tool_arguments_are_escaped_json() {
        let answer = Answer::for_choice(0, "say \"hi\"\n", Some("f"));
        let Answer::ToolCall { name, arguments } = &answer else {
            panic!()
        };
        assert_eq!(*name, "f");
        let parsed: serde_json::Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(parsed, serde_json::json!({"query": "say \"hi\""}));
        assert_eq!(answer.finish_reason(), "tool_calls");
    }
}
