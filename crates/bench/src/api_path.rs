//! The paths a request can take through the gateway: the client's API (chat completions,
//! Anthropic Messages, Responses) onto a provider's wire (OpenAI, Anthropic), each with the
//! request its client sends and the direct baseline it is compared with.
//!
//! A path's baseline is the request the gateway sends upstream, sent straight to the mock in
//! that wire's own shape: the mock then does the same work on both sides, so "added" is what
//! the gateway (translation included) costs.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use serde_json::json;

/// The system prompt and user text every request carries, in each API's own shape.
const SYSTEM: &str = "You are a terse assistant.";
const USER: &str = "Say hello to the benchmark.";

/// The Anthropic API version the direct baseline and the Messages client send.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The key the bench's Anthropic provider sends, and the direct baseline too: the mock
/// refuses a Messages request without one.
pub const ANTHROPIC_KEY: &str = "sk-ant-bench";
/// `max_tokens` of every Messages request: the gateway's Anthropic provider gets it as its
/// `default_max_tokens`, so the translated request asks the mock for what the direct one does.
pub const MAX_TOKENS: u64 = 1024;

/// The API a client speaks to the gateway (and the direct baseline to the mock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientApi {
    #[default]
    Chat,
    Messages,
    Responses,
}

impl ClientApi {
    /// The route under the gateway's (and the mock's) root.
    pub fn route(self) -> &'static str {
        match self {
            ClientApi::Chat => "/v1/chat/completions",
            ClientApi::Messages => "/v1/messages",
            ClientApi::Responses => "/v1/responses",
        }
    }

    /// Headers the API's SDK always sends.
    pub fn headers(self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            ClientApi::Messages => vec![
                (
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                ),
                (
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_static(ANTHROPIC_KEY),
                ),
            ],
            ClientApi::Chat | ClientApi::Responses => Vec::new(),
        }
    }

    /// A request whose last user message carries the mock's directives, so the mock behaves
    /// the same whichever path the request took.
    ///
    /// Chat streams ask for the usage chunk, as most SDK users do. Otherwise a gateway that
    /// requests usage for its own accounting and hides the extra chunk would make the paced
    /// mock send one more event on the gateway path than on the direct one, and the two
    /// streams would no longer be comparable gap for gap.
    pub fn body(self, model: &str, stream: bool, directives: &str) -> Bytes {
        let text = if directives.is_empty() {
            USER.to_owned()
        } else {
            format!("{USER} #mock:{directives}")
        };
        let body = match self {
            ClientApi::Chat => {
                let mut body = json!({
                    "model": model,
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": text},
                    ],
                    "stream": stream,
                });
                if stream {
                    body["stream_options"] = json!({"include_usage": true});
                }
                body
            }
            ClientApi::Messages => json!({
                "model": model,
                "max_tokens": MAX_TOKENS,
                "system": SYSTEM,
                "messages": [{"role": "user", "content": text}],
                "stream": stream,
            }),
            ClientApi::Responses => json!({
                "model": model,
                "instructions": SYSTEM,
                "input": [{"role": "user", "content": text}],
                "stream": stream,
            }),
        };
        Bytes::from(body.to_string())
    }

    /// How many events in `frame` carry answer content (text or tool-call arguments): the
    /// events whose spacing shows buffering. A translating path drops or adds events without
    /// content (Anthropic's `ping` and block starts, the Responses API's bookkeeping events),
    /// so the gaps between *all* frames of two wires are not comparable; between content
    /// frames they are.
    pub fn content_events(self, frame: &[u8]) -> usize {
        match self {
            ClientApi::Chat => chat_content_events(frame),
            ClientApi::Messages => count(frame, b"event: content_block_delta\n"),
            ClientApi::Responses => {
                count(frame, b"event: response.output_text.delta\n")
                    + count(frame, b"event: response.function_call_arguments.delta\n")
            }
        }
    }
}

/// A chunk with a non-empty `delta.content` or a tool call's `arguments` piece. The role
/// chunk's `"content":""` is no content.
fn chat_content_events(frame: &[u8]) -> usize {
    [&b"\"content\":\""[..], b"\"arguments\":\""]
        .iter()
        .map(|needle| {
            positions(frame, needle)
                .filter(|&end| frame.get(end).is_some_and(|&b| b != b'"'))
                .count()
        })
        .sum()
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    positions(haystack, needle).count()
}

/// The index just past each occurrence of `needle`.
fn positions<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(move |(i, _)| i + needle.len())
}

/// The provider's wire: which provider of the bench's gateway config a path reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    OpenAi,
    Anthropic,
}

impl Wire {
    /// The API of the request the gateway sends upstream, and so of the direct baseline.
    pub fn api(self) -> ClientApi {
        match self {
            Wire::OpenAi => ClientApi::Chat,
            Wire::Anthropic => ClientApi::Messages,
        }
    }

    /// The model the direct baseline names.
    pub fn direct_model(self) -> &'static str {
        match self {
            Wire::OpenAi => crate::gwconfig::DIRECT_MODEL,
            Wire::Anthropic => crate::gwconfig::DIRECT_ANTHROPIC_MODEL,
        }
    }

    /// The model a client names through the gateway: `provider/model`.
    pub fn gateway_model(self) -> &'static str {
        match self {
            Wire::OpenAi => crate::gwconfig::GATEWAY_MODEL,
            Wire::Anthropic => crate::gwconfig::GATEWAY_ANTHROPIC_MODEL,
        }
    }
}

/// A client API onto a provider wire, as `--path` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiPath {
    /// Chat completions to an OpenAI provider: the pass-through every other path is read against.
    ChatOpenai,
    /// Chat completions translated to Anthropic's Messages (the Anthropic dialect).
    ChatAnthropic,
    /// Anthropic Messages to an Anthropic provider: pass-through.
    MessagesAnthropic,
    /// Anthropic Messages translated onto chat completions.
    MessagesOpenai,
    /// The Responses API bridged onto chat completions.
    ResponsesOpenai,
    /// The Responses API bridged onto chat, then translated to Anthropic's Messages.
    ResponsesAnthropic,
}

impl ApiPath {
    /// The path every other one is compared with.
    pub const REFERENCE: ApiPath = ApiPath::ChatOpenai;

    pub fn api(self) -> ClientApi {
        match self {
            ApiPath::ChatOpenai | ApiPath::ChatAnthropic => ClientApi::Chat,
            ApiPath::MessagesAnthropic | ApiPath::MessagesOpenai => ClientApi::Messages,
            ApiPath::ResponsesOpenai | ApiPath::ResponsesAnthropic => ClientApi::Responses,
        }
    }

    pub fn wire(self) -> Wire {
        match self {
            ApiPath::ChatOpenai | ApiPath::MessagesOpenai | ApiPath::ResponsesOpenai => {
                Wire::OpenAi
            }
            ApiPath::ChatAnthropic | ApiPath::MessagesAnthropic | ApiPath::ResponsesAnthropic => {
                Wire::Anthropic
            }
        }
    }

    /// `chat-openai`, as `--path` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ApiPath::ChatOpenai => "chat-openai",
            ApiPath::ChatAnthropic => "chat-anthropic",
            ApiPath::MessagesAnthropic => "messages-anthropic",
            ApiPath::MessagesOpenai => "messages-openai",
            ApiPath::ResponsesOpenai => "responses-openai",
            ApiPath::ResponsesAnthropic => "responses-anthropic",
        }
    }

    /// The request reaches its provider in the client's own API, bytes unchanged.
    pub fn is_pass_through(self) -> bool {
        self.api() == self.wire().api()
    }
}

/// The paths a run measures: the reference first, then the others in the order asked, each
/// once. `None` when only the reference was asked for: the run then measures what it always
/// did, and nothing else.
pub fn requested(paths: &[ApiPath]) -> Option<Vec<ApiPath>> {
    let mut out = vec![ApiPath::REFERENCE];
    for &p in paths {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    (out.len() > 1).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::ValueEnum as _;
    use serde_json::Value;

    fn body(api: ClientApi, stream: bool) -> Value {
        serde_json::from_slice(&api.body("m", stream, "chunks=20")).unwrap()
    }

    #[test]
    fn every_api_carries_the_directives_in_its_last_user_message() {
        let chat = body(ClientApi::Chat, true);
        assert_eq!(chat["stream_options"]["include_usage"], true);
        assert!(chat["messages"][1]["content"]
            .as_str()
            .unwrap()
            .ends_with("#mock:chunks=20"));
        let messages = body(ClientApi::Messages, true);
        assert_eq!(messages["system"], SYSTEM);
        assert_eq!(messages["max_tokens"], MAX_TOKENS);
        assert_eq!(messages["messages"].as_array().unwrap().len(), 1);
        assert!(messages["messages"][0]["content"]
            .as_str()
            .unwrap()
            .ends_with("#mock:chunks=20"));
        assert!(messages.get("stream_options").is_none());
        let responses = body(ClientApi::Responses, false);
        assert_eq!(responses["instructions"], SYSTEM);
        assert_eq!(responses["stream"], false);
        assert!(responses["input"][0]["content"]
            .as_str()
            .unwrap()
            .ends_with("#mock:chunks=20"));
        for api in [ClientApi::Chat, ClientApi::Messages, ClientApi::Responses] {
            assert_eq!(body(api, false)["model"], "m");
        }
    }

    #[test]
    fn content_events_are_counted_per_api_and_bookkeeping_is_not() {
        let chat = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\"}}]}}]}\n\n\
            data: [DONE]\n\n";
        assert_eq!(ClientApi::Chat.content_events(chat), 2);
        let messages = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
            event: ping\ndata: {\"type\":\"ping\"}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
        assert_eq!(ClientApi::Messages.content_events(messages), 1);
        let responses = b"event: response.created\ndata: {}\n\n\
            event: response.output_text.delta\ndata: {}\n\n\
            event: response.output_text.done\ndata: {}\n\n\
            event: response.function_call_arguments.delta\ndata: {}\n\n";
        assert_eq!(ClientApi::Responses.content_events(responses), 2);
        assert_eq!(ClientApi::Chat.content_events(b""), 0);
    }

    #[test]
    fn paths_name_their_api_and_wire() {
        for p in ApiPath::value_variants() {
            let parsed = ApiPath::from_str(p.name(), false).unwrap();
            assert_eq!(parsed, *p);
            assert!(p.name().starts_with(match p.api() {
                ClientApi::Chat => "chat-",
                ClientApi::Messages => "messages-",
                ClientApi::Responses => "responses-",
            }));
        }
        assert!(ApiPath::ChatOpenai.is_pass_through());
        assert!(ApiPath::MessagesAnthropic.is_pass_through());
        assert!(!ApiPath::ChatAnthropic.is_pass_through());
        assert!(!ApiPath::ResponsesOpenai.is_pass_through());
        assert_eq!(ApiPath::ChatAnthropic.wire().api(), ClientApi::Messages);
    }

    #[test]
    fn the_reference_alone_measures_nothing_new_and_comes_first_otherwise() {
        assert_eq!(requested(&[]), None);
        assert_eq!(requested(&[ApiPath::ChatOpenai]), None);
        assert_eq!(
            requested(&[
                ApiPath::ChatAnthropic,
                ApiPath::ChatOpenai,
                ApiPath::ChatAnthropic
            ]),
            Some(vec![ApiPath::ChatOpenai, ApiPath::ChatAnthropic])
        );
    }
}
