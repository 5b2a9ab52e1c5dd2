//! Reads and validates a Responses API request (`POST /v1/responses`) as OpenAI does, so a
//! gateway that leaks its own fields or sends chat-shaped items gets a 400 naming the param.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::request::word_count;

/// The create parameters OpenAI accepts; anything else is `unknown_parameter`.
const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "max_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "previous_response_id",
    "store",
    "metadata",
    "reasoning",
    "text",
    "truncation",
    "user",
    "include",
    "background",
    "background_options",
    "conversation",
    "context_management",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "access_programs",
    "image",
    "moderation",
];

/// Why a body is not a valid request, in OpenAI's `message` + `param` + `code` terms.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub message: String,
    pub param: Option<String>,
    pub code: &'static str,
}

fn invalid(param: &str, message: String) -> Invalid {
    Invalid {
        message,
        param: Some(param.to_owned()),
        code: "invalid_value",
    }
}

fn missing(param: &str) -> Invalid {
    Invalid {
        message: format!("Missing required parameter: '{param}'."),
        param: Some(param.to_owned()),
        code: "missing_required_parameter",
    }
}

#[derive(Debug)]
pub(crate) struct ResponsesRequest<'a> {
    pub model: &'a str,
    pub stream: bool,
    /// The function the answer calls: tools offered, `tool_choice` not `none`, and the last
    /// input item not already a function's output.
    pub tool: Option<&'a str>,
    pub user_text: Cow<'a, str>,
    pub input_tokens: u64,
    pub object: &'a Map<String, Value>,
}

impl<'a> ResponsesRequest<'a> {
    pub fn parse(body: &'a Value) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid {
                message: "The request body must be a JSON object.".into(),
                param: None,
                code: "invalid_json",
            });
        };
        if let Some(extra) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Invalid {
                message: format!("Unknown parameter: '{extra}'."),
                param: Some(extra.clone()),
                code: "unknown_parameter",
            });
        }
        let model = match object.get("model") {
            None => return Err(missing("model")),
            Some(Value::String(model)) if !model.is_empty() => model.as_str(),
            Some(_) => {
                return Err(invalid(
                    "model",
                    "Invalid type for 'model': expected a string.".into(),
                ))
            }
        };
        let instructions_words = match object.get("instructions") {
            None | Some(Value::Null) => 0,
            Some(Value::String(text)) => word_count(text),
            Some(_) => {
                return Err(invalid(
                    "instructions",
                    "Invalid type for 'instructions': expected a string.".into(),
                ))
            }
        };
        let (items, single): (&[Value], Option<&str>) = match object.get("input") {
            None | Some(Value::Null) => (&[], None),
            Some(Value::String(text)) => (&[], Some(text.as_str())),
            Some(Value::Array(items)) => (items.as_slice(), None),
            Some(_) => {
                return Err(invalid(
                    "input",
                    "Invalid type for 'input': expected a string or an array of input items."
                        .into(),
                ))
            }
        };
        let has_previous = object
            .get("previous_response_id")
            .is_some_and(|v| !v.is_null());
        check_items(items, has_previous)?;
        let tools = check_tools(object.get("tools"))?;
        let choice = check_tool_choice(object.get("tool_choice"))?;
        let stream = match object.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => {
                return Err(invalid(
                    "stream",
                    "Invalid type for 'stream': expected a boolean.".into(),
                ))
            }
        };
        if let Some(v) = object.get("max_output_tokens").filter(|v| !v.is_null()) {
            if v.as_u64().is_none_or(|n| n < 16) {
                return Err(invalid(
                    "max_output_tokens",
                    "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.".into(),
                ));
            }
        }

        let after_output = items
            .last()
            .is_some_and(|i| item_type(i) == Some("function_call_output"));
        let tool = match choice {
            Choice::None => None,
            _ if after_output => None,
            Choice::Named(name) if tools.contains(&name) => Some(name),
            Choice::Named(name) => {
                return Err(invalid(
                    "tool_choice",
                    format!("Tool choice 'function' with name '{name}' does not match any tool."),
                ))
            }
            Choice::Default => tools.first().copied(),
        };
        let user_text = match single {
            Some(text) => Cow::Borrowed(text),
            None => last_user_text(items),
        };
        let item_words: usize = items.iter().map(item_words).sum();
        let input_tokens =
            instructions_words + single.map_or(0, word_count) + item_words + items.len().max(1);
        Ok(ResponsesRequest {
            model,
            stream,
            tool,
            user_text,
            input_tokens: input_tokens as u64,
            object,
        })
    }
}

fn item_type(item: &Value) -> Option<&str> {
    match item.get("type").and_then(Value::as_str) {
        Some(kind) => Some(kind),
        // An easy input message: `{"role", "content"}` with no type.
        None if item.get("role").is_some() => Some("message"),
        None => None,
    }
}

fn check_items(items: &[Value], has_previous: bool) -> Result<(), Invalid> {
    let mut calls: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        match item_type(item) {
            Some("message") => {
                match item.get("role").and_then(Value::as_str) {
                    Some("user" | "assistant" | "system" | "developer") => {}
                    Some("tool") => {
                        return Err(invalid(
                            &format!("{at}.role"),
                            format!(
                                "Invalid value: 'tool'. Supported values are: 'assistant', \
                                 'system', 'developer', and 'user'. A tool result is a \
                                 `function_call_output` item ({at})."
                            ),
                        ))
                    }
                    Some(_) => {
                        return Err(invalid(
                            &format!("{at}.role"),
                            format!("Invalid value for '{at}.role'."),
                        ))
                    }
                    None => return Err(missing(&format!("{at}.role"))),
                }
                match item.get("content") {
                    Some(Value::String(_)) => {}
                    Some(Value::Array(parts)) => {
                        for (j, part) in parts.iter().enumerate() {
                            let kind = part.get("type").and_then(Value::as_str);
                            if !matches!(
                                kind,
                                Some(
                                    "input_text"
                                        | "input_image"
                                        | "input_file"
                                        | "input_audio"
                                        | "output_text"
                                        | "refusal"
                                )
                            ) {
                                return Err(invalid(
                                    &format!("{at}.content[{j}].type"),
                                    format!(
                                        "Invalid value: '{}'. Supported values are: 'input_text', \
                                         'input_image', 'input_file', 'output_text' and 'refusal'.",
                                        kind.unwrap_or("")
                                    ),
                                ));
                            }
                        }
                    }
                    _ => return Err(missing(&format!("{at}.content"))),
                }
            }
            Some("function_call") => {
                for field in ["call_id", "name", "arguments"] {
                    if item.get(field).and_then(Value::as_str).is_none() {
                        return Err(missing(&format!("{at}.{field}")));
                    }
                }
                calls.extend(item.get("call_id").and_then(Value::as_str));
            }
            Some("function_call_output") => {
                let Some(call_id) = item.get("call_id").and_then(Value::as_str) else {
                    return Err(missing(&format!("{at}.call_id")));
                };
                if item.get("output").is_none() {
                    return Err(missing(&format!("{at}.output")));
                }
                // With a previous response the call may live there; the mock keeps none.
                if !has_previous && !calls.contains(&call_id) {
                    return Err(invalid(
                        "input",
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                    ));
                }
            }
            Some(_) => {}
            None => return Err(missing(&format!("{at}.type"))),
        }
    }
    Ok(())
}

/// Returns the function tools' names, in order.
fn check_tools(tools: Option<&Value>) -> Result<Vec<&str>, Invalid> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => {
            return Err(invalid(
                "tools",
                "Invalid type for 'tools': expected an array.".into(),
            ))
        }
    };
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => match tool.get("name").and_then(Value::as_str) {
                Some(name) => names.push(name),
                // The chat shape nests the function; the Responses API does not.
                None => return Err(missing(&format!("tools[{i}].name"))),
            },
            Some(_) => {}
            None => return Err(missing(&format!("tools[{i}].type"))),
        }
    }
    Ok(names)
}

enum Choice<'a> {
    Default,
    None,
    Named(&'a str),
}

fn check_tool_choice(choice: Option<&Value>) -> Result<Choice<'_>, Invalid> {
    match choice {
        None | Some(Value::Null) => Ok(Choice::Default),
        Some(Value::String(s)) => match s.as_str() {
            "auto" | "required" => Ok(Choice::Default),
            "none" => Ok(Choice::None),
            other => Err(invalid(
                "tool_choice",
                format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
            )),
        },
        Some(Value::Object(object)) => match object.get("type").and_then(Value::as_str) {
            Some("function") => match object.get("name").and_then(Value::as_str) {
                Some(name) => Ok(Choice::Named(name)),
                None => Err(missing("tool_choice.name")),
            },
            _ => Ok(Choice::Default),
        },
        Some(_) => Err(invalid("tool_choice", "Invalid type for 'tool_choice'.".into())),
    }
}

/// Text of a message's content: a string, or its text parts.
fn content_texts(content: Option<&Value>) -> Vec<&str> {
    if let Some(text) = content.and_then(Value::as_str) {
        return vec![text];
    }
    content
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

fn item_words(item: &Value) -> usize {
    match item_type(item) {
        Some("message") => content_texts(item.get("content"))
            .into_iter()
            .map(word_count)
            .sum(),
        Some("function_call_output") => item
            .get("output")
            .and_then(Value::as_str)
            .map_or(0, word_count),
        _ => 0,
    }
}

/// The last user message's text, or the function output when that is the last item.
fn last_user_text(items: &[Value]) -> Cow<'_, str> {
    if let Some(last) = items
        .last()
        .filter(|i| item_type(i) == Some("function_call_output"))
    {
        return Cow::Borrowed(last.get("output").and_then(Value::as_str).unwrap_or(""));
    }
    items
        .iter()
        .rev()
        .find(|i| {
            item_type(i) == Some("message") && i.get("role").and_then(Value::as_str) == Some("user")
        })
        .map_or(Cow::Borrowed(""), |i| {
            Cow::Owned(content_texts(i.get("content")).join("\n"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_unknown_and_chat_shaped_input_naming_the_param() {
        for (body, param) in [
            (json!({"model": "m", "input": "hi", "trace": {}}), "trace"),
            (
                json!({"model": "m", "input": "hi", "messages": []}),
                "messages",
            ),
            (json!({"input": "hi"}), "model"),
            (json!({"model": "m", "input": 3}), "input"),
            (
                json!({"model": "m", "input": "hi", "tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tools[0].name",
            ),
            (
                json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}),
                "input",
            ),
            (
                json!({"model": "m", "input": "hi", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "hi", "max_output_tokens": 3}),
                "max_output_tokens",
            ),
        ] {
            let err = ResponsesRequest::parse(&body).expect_err(&body.to_string());
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
        }
    }

    #[test]
    fn reads_text_tools_and_tool_outputs() {
        let body = json!({"model": "m", "instructions": "be brief", "input": "find it",
            "tools": [{"type": "function", "name": "lookup", "parameters": {}}]});
        let req = ResponsesRequest::parse(&body).unwrap();
        assert_eq!(req.tool, Some("lookup"));
        assert_eq!(req.user_text, "find it");
        assert_eq!(req.input_tokens, 2 + 2 + 1);

        let body = json!({"model": "m", "tools": [{"type": "function", "name": "lookup"}], "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "find it"}]},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "it is here"},
        ]});
        let req = ResponsesRequest::parse(&body).unwrap();
        assert_eq!(req.tool, None, "a function's output is answered with text");
        assert_eq!(req.user_text, "it is here");

        let only_output = json!({"model": "m", "previous_response_id": "resp_1",
            "input": [{"type": "function_call_output", "call_id": "call_1", "output": "x"}]});
        assert!(ResponsesRequest::parse(&only_output).is_ok());
    }
}
