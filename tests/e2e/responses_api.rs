//! `POST /v1/responses`: OpenAI's Responses API bridged onto chat for every provider, with
//! turns kept for `previous_response_id`, traced like chat.

use serde_json::{json, Value};

use crate::harness::{attr, trace_id_of, Env};

async fn post(env: &Env, body: Value) -> reqwest::Response {
    env.client
        .post(env.url("/v1/responses"))
        .bearer_auth("client-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_response_is_bridged_onto_chat_for_openai_and_anthropic_providers() {
    let env = Env::start().await;
    for model in ["up/gpt-4o-mini", "claude/claude-sonnet-4-5"] {
        let resp = post(
            &env,
            json!({"model": model, "instructions": "be brief", "input": "hello responses",
                   "trace": {"generation_name": "resp"}, "user": "u-3"}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let trace_id = trace_id_of(&resp);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "response", "{body}");
        assert_eq!(body["status"], "completed");
        assert!(body["id"].as_str().unwrap().starts_with("resp_"));
        assert!(output_text(&body).contains("hello responses"), "{body}");
        assert!(body["usage"]["input_tokens"].as_u64().is_some());
        let sent = env.mock.requests().pop().unwrap();
        assert!(sent.body.get("trace").is_none());
        let spans = env.spans_of(&trace_id, 1).await;
        assert_eq!(
            attr(&spans[0], "gen_ai.operation.name"),
            Some(json!("chat"))
        );
        assert_eq!(attr(&spans[0], "user.id"), Some(json!("u-3")));
    }
}

#[tokio::test]
async fn a_follow_up_continues_from_the_kept_turn_and_the_turn_can_be_read_back() {
    let env = Env::start().await;
    let first: Value = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "remember the word tangerine"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "what was the word?",
               "previous_response_id": id}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = env.mock.requests().pop().unwrap();
    let messages = sent.body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "the first turn's input and output, then the new input: {}",
        sent.body
    );
    assert!(messages[0]["content"].to_string().contains("tangerine"));
    assert_eq!(messages[1]["role"], "assistant");

    let stored: Value = env
        .client
        .get(env.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["id"], first["id"]);
    assert_eq!(output_text(&stored), output_text(&first));

    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "x", "previous_response_id": "resp_unknown"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "previous_response_id", "{body}");
    let resp = env
        .client
        .get(env.url("/v1/responses/resp_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_streamed_response_has_the_typed_events_and_is_kept() {
    let env = Env::start().await;
    let resp = post(
        &env,
        json!({"model": "claude/claude-sonnet-4-5", "input": "stream a response", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let text = resp.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"response.created"), "{types:?}");
    assert_eq!(types.last(), Some(&"response.completed"), "{types:?}");
    assert!(types.contains(&"response.output_text.delta"));
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert!(text.contains("stream a response"));
    let done = events.last().unwrap();
    assert!(done["response"]["usage"]["output_tokens"]
        .as_u64()
        .is_some());
    let id = done["response"]["id"].as_str().unwrap();
    let spans = env.spans_of(&trace_id, 1).await;
    assert!(attr(&spans[0], "gen_ai.usage.output_tokens").is_some());
    let follow = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(follow.status(), 200);
}

#[tokio::test]
async fn function_tools_and_their_outputs_round_trip() {
    let env = Env::start().await;
    let tools = json!([{"type": "function", "name": "lookup", "description": "looks up",
                        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]);
    let first: Value = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "look it up", "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("{first}"))
        .clone();
    assert_eq!(call["name"], "lookup");
    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "tools": tools, "previous_response_id": first["id"],
               "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "42"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = env.mock.requests().pop().unwrap();
    let messages = sent.body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool", "{}", sent.body);
    assert_eq!(last["tool_call_id"], call["call_id"]);
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "lookup");

    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "x", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["param"]
        .as_str()
        .unwrap()
        .starts_with("tools"));
}
