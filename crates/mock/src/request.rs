//! Reads the parts of an OpenAI chat request that shape the mock's answer.

use std::borrow::Cow;

use serde_json::Value;

/// OpenAI's own upper bound for `n`; anything larger is a client bug worth a 400.
const MAX_CHOICES: u64 = 128;

pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Value],
    pub stream: bool,
    pub include_usage: bool,
    pub n: usize,
    /// Name of the function the answer calls, when the request offers tools and allows a call.
    pub tool: Option<&'a str>,
}

/// Why a body is not a chat request, in OpenAI's `message` + `param` terms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest {
    pub message: &'static str,
    pub param: Option<&'static str>,
}

impl<'a> ChatRequest<'a> {
    pub fn parse(body: &'a Value) -> Result<Self, BadRequest> {
        let Some(object) = body.as_object() else {
            return Err(BadRequest {
                message: "the request body must be a JSON object",
                param: None,
            });
        };
        let Some(messages) = object.get("messages").and_then(Value::as_array) else {
            return Err(BadRequest {
                message: "`messages` must be an array",
                param: Some("messages"),
            });
        };
        let Some(model) = object.get("model").and_then(Value::as_str) else {
            return Err(BadRequest {
                message: "`model` must be a string",
                param: Some("model"),
            });
        };
        let n = match object.get("n") {
            None | Some(Value::Null) => 1,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=MAX_CHOICES) => n as usize,
                _ => {
                    return Err(BadRequest {
                        message: "`n` must be an integer from 1 to 128",
                        param: Some("n"),
                    })
                }
            },
        };
        Ok(ChatRequest {
            model,
            messages,
            stream: object
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            n,
            tool: chosen_tool(body),
        })
    }

    /// The last user message's text; an empty string when there is none.
    pub fn last_user_text(&self) -> Cow<'a, str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map_or(Cow::Borrowed(""), content_text)
    }

    /// A crude but stable token count: words in every message plus one per message.
    pub fn prompt_tokens(&self) -> u64 {
        let words: usize = self
            .messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(|c| text_parts(c).map(word_count).sum::<usize>())
            .sum();
        (words + self.messages.len()) as u64
    }
}

pub(crate) fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Content is a string or an array of parts; only text parts carry words.
fn text_parts(content: &Value) -> impl Iterator<Item = &str> {
    let single = content.as_str();
    let parts = content.as_array().into_iter().flatten().filter_map(|part| {
        let is_text = matches!(
            part.get("type").and_then(Value::as_str),
            None | Some("text")
        );
        part.get("text").and_then(Value::as_str).filter(|_| is_text)
    });
    single.into_iter().chain(parts)
}

fn content_text(content: &Value) -> Cow<'_, str> {
    if let Some(s) = content.as_str() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(text_parts(content).collect::<Vec<_>>().join("\n"))
}

/// OpenAI lets `tool_choice` name a function; otherwise the first function tool is called.
fn chosen_tool(body: &Value) -> Option<&str> {
    let tools = body.get("tools")?.as_array()?;
    let choice = body.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let mut names = tools
        .iter()
        .filter(|t| {
            matches!(
                t.get("type").and_then(Value::as_str),
                None | Some("function")
            )
        })
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str));
    let named = choice
        .and_then(|c| c.pointer("/function/name"))
        .and_then(Value::as_str);
    match named {
        Some(wanted) if names.clone().any(|n| n == wanted) => Some(wanted),
        _ => names.next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_bodies_that_are_not_chat_requests() {
        for (body, param) in [
            (json!([1, 2]), None),
            (json!("text"), None),
            (json!({"model": "m"}), Some("messages")),
            (json!({"model": "m", "messages": "hi"}), Some("messages")),
            (json!({"messages": []}), Some("model")),
            (json!({"model": 3, "messages": []}), Some("model")),
            (json!({"model": "m", "messages": [], "n": 0}), Some("n")),
            (json!({"model": "m", "messages": [], "n": 129}), Some("n")),
            (json!({"model": "m", "messages": [], "n": "2"}), Some("n")),
        ] {
            let err = ChatRequest::parse(&body).err().unwrap();
            assert_eq!(err.param, param, "{body}");
        }
    }

    #[test]
    fn reads_the_last_user_message_in_either_content_shape() {
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "ignored"},
        ]});
        let req = ChatRequest::parse(&body).unwrap();
        assert_eq!(req.last_user_text(), "one\ntwo");
        // 1 + 2 + 1 words, plus one per message.
        assert_eq!(req.prompt_tokens(), 4 + 3);

        let body = json!({"model": "m", "messages": [{"role": "system", "content": "s"}]});
        assert_eq!(ChatRequest::parse(&body).unwrap().last_user_text(), "");
    }

    #[test]
    fn picks_the_tool_to_call() {
        let tools = json!([{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]);
        let tool = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [], "tools": tools});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            ChatRequest::parse(&body).unwrap().tool.map(str::to_owned)
        };
        assert_eq!(tool(json!({})).as_deref(), Some("a"));
        assert_eq!(tool(json!({"tool_choice": "auto"})).as_deref(), Some("a"));
        assert_eq!(tool(json!({"tool_choice": "none"})), None);
        assert_eq!(
            tool(json!({"tool_choice": {"type": "function", "function": {"name": "b"}}}))
                .as_deref(),
            Some("b")
        );
        assert_eq!(tool(json!({"tools": []})), None);
    }
}
