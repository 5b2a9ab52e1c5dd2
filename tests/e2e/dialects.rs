//! Providers with their own wire: an OpenAI client gets OpenAI answers from Anthropic and
//! Azure through the gateway, and the provider gets valid requests in its own format.

use serde_json::{json, Value};

use crate::harness::{attr, span_named, sse_events, trace_id_of, Env};

fn messages(text: &str) -> Value {
    json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": text}])
}

/// The text of an Anthropic `content` or `system`: a string, or text blocks.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[tokio::test]
async fn an_anthropic_answer_reaches_an_openai_client_in_openais_shape() {
    let env = Env::start().await;
    let resp = env
        .chat(
            json!({"model": "claude/claude-sonnet-4-5", "messages": messages("hello claude"),
                     "stop": "END", "temperature": 0.2, "user": "u-1", "seed": 7,
                     "trace": {"trace_id": "a-1"}, "session_id": "s-1"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("hello claude"));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // What went upstream is a valid Messages request, with the provider's credentials.
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(text_of(&sent.body["system"]), "be brief");
    let turns = sent.body["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "the system message went to the top level");
    assert_eq!(turns[0]["role"], "user");
    assert_eq!(text_of(&turns[0]["content"]), "hello claude");
    assert_eq!(sent.body["max_tokens"], 333, "the provider's default");
    assert_eq!(sent.body["stop_sequences"], json!(["END"]));
    assert_eq!(sent.body["metadata"]["user_id"], "u-1");
    for gone in [
        "trace",
        "session_id",
        "seed",
        "user",
        "stop",
        "stream_options",
    ] {
        assert!(
            sent.body.get(gone).is_none(),
            "{gone} is not sent: {}",
            sent.body
        );
    }
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-provider-secret"));
    assert!(sent.header("anthropic-version").is_some());
    assert_eq!(sent.header("anthropic-beta"), Some("tools-2024-04-04"));
    assert!(sent.header("authorization").is_none());

    let spans = env.spans_of(&trace_id, 1).await;
    let g = &spans[0];
    assert_eq!(attr(g, "gen_ai.provider.name"), Some(json!("anthropic")));
    assert_eq!(
        attr(g, "gen_ai.request.model"),
        Some(json!("claude-sonnet-4-5"))
    );
    assert_eq!(attr(g, "session.id"), Some(json!("s-1")));
    assert!(attr(g, "gen_ai.usage.input_tokens").is_some());
    assert_eq!(
        attr(g, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
}

#[tokio::test]
async fn an_anthropic_stream_is_translated_and_its_usage_shown_only_when_asked() {
    let env = Env::start().await;
    let whole: Value = env
        .chat(json!({"model": "claude/claude-haiku-4-5", "messages": messages("stream me please")}))
        .await
        .json()
        .await
        .unwrap();
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap();

    for include_usage in [false, true] {
        let mut body = json!({"model": "claude/claude-haiku-4-5", "stream": true,
                              "messages": messages("stream me please")});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let resp = env.chat(body).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let trace_id = trace_id_of(&resp);
        let events = sse_events(resp).await.unwrap();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, text, "the stream says what the whole answer says");
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        let usage_chunks = chunks.iter().filter(|c| c["usage"].is_object()).count();
        assert_eq!(usage_chunks, usize::from(include_usage), "{chunks:?}");
        let spans = env.spans_of(&trace_id, 1).await;
        assert!(
            attr(&spans[0], "gen_ai.usage.output_tokens").is_some(),
            "the trace has usage either way"
        );
        assert_eq!(attr(&spans[0], "gen_ai.request.stream"), Some(json!(true)));
    }
}

#[tokio::test]
async fn anthropic_tool_calls_come_back_as_tool_calls_and_results_go_up_as_tool_results() {
    let env = Env::start().await;
    let body: Value = env
        .chat(json!({"model": "claude/claude-sonnet-4-5", "messages": messages("weather in Paris?"),
                     "tools": weather_tool(), "tool_choice": "required", "parallel_tool_calls": false}))
        .await
        .json()
        .await
        .unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.body["tools"][0]["name"], "get_weather");
    assert!(sent.body["tools"][0]["input_schema"].is_object());
    assert_eq!(sent.body["tool_choice"]["type"], "any");
    assert_eq!(sent.body["tool_choice"]["disable_parallel_tool_use"], true);

    // Streamed, the arguments arrive as fragments of one call with a stable index.
    let resp = env
        .chat(
            json!({"model": "claude/claude-sonnet-4-5", "messages": messages("weather in Paris?"),
                     "tools": weather_tool(), "stream": true}),
        )
        .await;
    let events = sse_events(resp).await.unwrap();
    let fragments: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .cloned()
        })
        .map(Value::Object)
        .collect();
    assert!(!fragments.is_empty(), "{events:?}");
    assert!(fragments[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(fragments[0]["function"]["name"], "get_weather");
    assert!(fragments.iter().all(|f| f["index"] == 0));
    let joined: String = fragments
        .iter()
        .filter_map(|f| f["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args);

    // The round trip: the assistant's call and the tool's result go up as Anthropic blocks.
    let resp = env
        .chat(
            json!({"model": "claude/claude-sonnet-4-5", "tools": weather_tool(), "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}
            ]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = env.mock.requests().pop().unwrap();
    let turns = sent.body["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{}", sent.body);
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(turns[1]["content"][0]["type"], "tool_use");
    assert_eq!(turns[1]["content"][0]["id"], call["id"]);
    assert_eq!(turns[2]["role"], "user");
    assert_eq!(turns[2]["content"][0]["type"], "tool_result");
    assert_eq!(turns[2]["content"][0]["tool_use_id"], call["id"]);
}

#[tokio::test]
async fn anthropic_errors_become_openai_errors_with_529_as_503() {
    let env = Env::start().await;
    for (directive, status, kind) in [
        ("error=429,retry_after=7", 429, "rate_limit_exceeded"),
        ("error=529", 503, ""),
        ("error=400", 400, "invalid_request_error"),
        ("error=500", 500, ""),
    ] {
        let text = format!("#mock:{directive} fail");
        let resp = env
            .chat(json!({"model": "claude/claude-sonnet-4-5", "messages": messages(&text)}))
            .await;
        assert_eq!(resp.status(), status, "{directive}");
        if directive.contains("retry_after") {
            assert_eq!(resp.headers()["retry-after"], "7");
        }
        let trace_id = trace_id_of(&resp);
        let body: Value = resp.json().await.unwrap();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(error["type"].is_string(), "{body}");
        if !kind.is_empty() {
            assert!(
                error["type"] == kind || error["code"] == kind,
                "{directive}: {body}"
            );
        }
        let spans = env.spans_of(&trace_id, 1).await;
        assert_eq!(attr(&spans[0], "error.type"), Some(json!("provider_error")));
    }
}

#[tokio::test]
async fn anthropic_cache_tokens_are_recorded_apart_and_inside_the_input_total() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "claude/claude-sonnet-4-5",
                     "messages": messages("#mock:cache_read=100,cache_write=40 cached")}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    let prompt = body["usage"]["prompt_tokens"].as_i64().unwrap();
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    let spans = env.spans_of(&trace_id, 1).await;
    let g = &spans[0];
    assert_eq!(attr(g, "gen_ai.usage.input_tokens"), Some(json!(prompt)));
    assert_eq!(
        attr(g, "gen_ai.usage.cache_read.input_tokens"),
        Some(json!(100))
    );
    assert_eq!(
        attr(g, "gen_ai.usage.cache_creation.input_tokens"),
        Some(json!(40))
    );
    assert!(
        prompt > 140,
        "uncached input is counted once beside both caches"
    );
}

#[tokio::test]
async fn azure_calls_go_to_the_deployment_with_the_api_key_and_pass_through() {
    let env = Env::start().await;
    let resp = env
        .chat(
            json!({"model": "azure/gpt-4o-mini", "messages": messages("hello azure"),
                     "trace": {"trace_name": "az"}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/openai/deployments/dep-mini/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("azure-provider-secret"));
    assert!(sent.header("authorization").is_none());
    assert!(sent.body.get("trace").is_none());
    let spans = env.spans_of(&trace_id, 2).await;
    let g = span_named(&spans, "chat gpt-4o-mini");
    assert_eq!(
        attr(g, "gen_ai.provider.name"),
        Some(json!("azure.ai.openai"))
    );
    assert_eq!(attr(g, "gen_ai.response.model"), Some(json!("dep-mini")));

    // The v1 form: one URL, the deployment in the body, a bearer token.
    let resp = env
        .chat(json!({"model": "azurev1/my-deployment", "messages": messages("v1"), "stream": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(resp).await.unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/openai/v1/chat/completions");
    assert_eq!(sent.body["model"], "my-deployment");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer entra-provider-token")
    );
}

#[tokio::test]
async fn azure_content_filter_results_and_errors_pass_through() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "azure/gpt-4o-mini",
                     "messages": messages("#mock:content_filter=1 filtered")}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["prompt_filter_results"].is_array(), "{body}");
    assert!(
        body["choices"][0]["content_filter_results"].is_object(),
        "{body}"
    );
    let resp = env
        .chat(json!({"model": "azure/gpt-4o-mini",
                     "messages": messages("#mock:error=400,content_filter=1 filtered")}))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "content_filter", "{body}");
    assert!(body["error"]["innererror"].is_object(), "{body}");
}

/// `retry_on` may list Anthropic's own 529 as well as the 503 the client sees.
#[tokio::test]
async fn an_anthropic_529_is_retried_when_retry_on_names_it() {
    let env = Env::start().await;
    let resp = env
        .chat(json!({"model": "claude529/claude-sonnet-4-5",
                     "messages": messages("#mock:error=529,fail_times=1 again")}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let spans = env.spans_of(&trace_id, 3).await;
    let statuses: Vec<Value> = spans
        .iter()
        .filter(|s| attr(s, "gatecast.attempt").is_some())
        .filter_map(|s| attr(s, "http.response.status_code"))
        .collect();
    assert_eq!(statuses.len(), 2, "{spans:?}");
    assert!(statuses.contains(&json!(529)), "{statuses:?}");
}
