//! A chat-completions client served by an Anthropic Messages provider.
//!
//! Pure functions, no I/O: [`request`] writes the Messages body from the client's chat
//! request, [`response`] turns a whole Messages answer into a `chat.completion`,
//! [`MessagesToChatStream`] turns a Messages event stream into `chat.completion.chunk`s as
//! each event arrives, and [`error()`] turns Anthropic's error bodies into OpenAI's.
//!
//! `response_format: {type: json_schema}` has no Messages field on every model, so the
//! request offers the schema as a tool named [`RESPONSE_TOOL`] and forces it; the response
//! side turns that tool's input back into `message.content` text, as the client expects.

mod error;
mod request;
mod response;
mod stream;

pub use error::error;
pub use request::{request, MessagesOptions};
pub use response::response;
pub use stream::MessagesToChatStream;

/// The tool that carries a `json_schema` response format. The name is reserved: a client tool
/// may not take it, so the response side can tell the answer from a real tool call by name.
pub const RESPONSE_TOOL: &str = "gatecast_json_response";

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`. `answered_by_tool` is true when the
/// only tool the model called was [`RESPONSE_TOOL`]: to the client that is a plain answer.
fn finish_reason(stop_reason: &str, answered_by_tool: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if answered_by_tool => "stop",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and reasons newer than this code.
        _ => "stop",
    }
}

/// Anthropic's usage figures, as both converters read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
struct OutputDetails {
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// A later report (`message_delta`'s cumulative usage) wins field by field.
    fn update(&mut self, later: AnthropicUsage) {
        let keep = |old: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    /// OpenAI's usage object. Anthropic's `input_tokens` excludes cached input, OpenAI's
    /// `prompt_tokens` includes it; the two cache counts are also kept under Anthropic's names
    /// so the gateway's capture can price them apart (OpenAI SDKs ignore the extra keys).
    fn chat(&self) -> ChatUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let created = self.cache_creation_input_tokens.unwrap_or(0);
        // Saturating: the counts are the provider's numbers, and a wild one must not panic.
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(created);
        let completion = self.output_tokens.unwrap_or(0);
        ChatUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: PromptDetails {
                cached_tokens: read,
            },
            completion_tokens_details: self
                .output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .map(|reasoning_tokens| CompletionDetails { reasoning_tokens }),
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, serde::Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Debug, serde::Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}
