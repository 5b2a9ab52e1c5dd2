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

/// A follow-up that lands on another replica finds the turn in the store both share.
#[tokio::test]
async fn a_follow_up_on_another_replica_reads_the_turn_from_the_shared_store() {
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatecast.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{}/shared.db\"\n\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n",
            dir.path().display(),
            mock.base_url()
        ),
    )
    .unwrap();
    let a = crate::process::start_config(dir.path(), &config, None).await;
    let b = crate::process::start_config(dir.path(), &config, None).await;
    let client = reqwest::Client::new();
    let first: Value = client
        .post(a.url("/v1/responses"))
        .json(&json!({"model": "up/gpt-4o-mini", "input": "remember the word quince"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    // The first replica writes the turn off the request path; it lands within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = client
            .post(b.url("/v1/responses"))
            .json(&json!({"model": "up/gpt-4o-mini", "input": "and the word?",
                          "previous_response_id": id}))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 400, "{}", resp.text().await.unwrap());
        assert!(
            std::time::Instant::now() < deadline,
            "the turn never reached the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sent = mock.requests().pop().unwrap();
    assert!(sent.body["messages"][0]["content"]
        .to_string()
        .contains("quince"));
    let stored = client
        .get(b.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
}

#[tokio::test]
async fn bad_responses_requests_get_openais_error_shape() {
    let env = Env::start().await;
    for (body, status, param) in [
        ("{not json".to_owned(), 400, None),
        (
            json!({"model": "up/gpt-4o-mini", "input": 7}).to_string(),
            400,
            Some("input"),
        ),
        (
            json!({"model": "nope/x", "input": "x"}).to_string(),
            404,
            Some("model"),
        ),
        (json!({"input": "x"}).to_string(), 400, Some("model")),
        (
            json!({"model": "up/gpt-4o-mini", "input": "x".repeat(70_000)}).to_string(),
            413,
            None,
        ),
    ] {
        let resp = env
            .client
            .post(env.url("/v1/responses"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{}", &body[..body.len().min(80)]);
        let error: Value = resp.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        if let Some(param) = param {
            assert!(
                error["error"]["param"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(param)),
                "{error}"
            );
        }
    }
}

/// A provider that serves the Responses API itself gets the request as sent, keeps its own
/// turns, and its answer reaches the client unchanged; the trace reads it all the same.
#[tokio::test]
async fn to_a_provider_with_responses_the_request_passes_through() {
    let env = Env::start().await;
    let body = json!({"model": "upr/gpt-4o-mini", "input": "hello native", "user": "u-5",
                      "previous_response_id": "resp_kept_by_the_provider",
                      "trace": {"generation_name": "native"}, "session_id": "s-5"});
    let resp = post(&env, body).await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let through: Value = resp.json().await.unwrap();
    let sent = env.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["user"], "u-5");
    assert_eq!(
        sent.body["previous_response_id"],
        "resp_kept_by_the_provider"
    );
    assert!(sent.body.get("trace").is_none() && sent.body.get("session_id").is_none());
    // The same request straight to the provider gives the same answer.
    let direct: Value = env
        .client
        .post(format!("{}/responses", env.mock.base_url()))
        .json(&sent.body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(output_text(&through), output_text(&direct));
    let spans = env.spans_of(&trace_id, 1).await;
    let g = &spans[0];
    assert_eq!(
        attr(g, "gen_ai.usage.input_tokens"),
        Some(direct["usage"]["input_tokens"].clone())
    );
    assert_eq!(attr(g, "user.id"), Some(json!("u-5")));
    assert_eq!(
        attr(g, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );

    let resp = post(
        &env,
        json!({"model": "upr/gpt-4o-mini", "input": "stream native", "stream": true}),
    )
    .await;
    let trace_id = trace_id_of(&resp);
    let text = resp.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    let spans = env.spans_of(&trace_id, 1).await;
    assert!(attr(&spans[0], "gen_ai.usage.output_tokens").is_some());
    assert_eq!(attr(&spans[0], "error.type"), None);
}

/// The AI SDK's `@ai-sdk/openai` (with `store` on, its default) sends an earlier turn's
/// assistant message back as `{"type": "item_reference", "id": "msg_…"}`: the gateway reads the
/// item from the turn it kept, as OpenAI does, without `previous_response_id`.
#[tokio::test]
async fn an_item_reference_is_read_from_the_kept_turns() {
    let env = Env::start().await;
    let first: Value = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "remember the word quince"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let message_id = first["output"][0]["id"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("msg_"), "{first}");
    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "remember the word quince"}]},
            {"type": "item_reference", "id": message_id},
            {"role": "user", "content": [{"type": "input_text", "text": "which word?"}]}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = env.mock.requests().pop().unwrap();
    let messages = sent.body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{}", sent.body);
    assert_eq!(
        messages[1]["content"].to_string(),
        json!(output_text(&first)).to_string(),
        "{}",
        sent.body
    );
    // A function call is referenced the same way, and its output answers it.
    let tools = json!([{"type": "function", "name": "lookup",
                        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]);
    let called: Value = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "input": "look quince up", "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = &called["output"][0];
    assert_eq!(call["type"], "function_call", "{called}");
    let resp = post(
        &env,
        json!({"model": "up/gpt-4o-mini", "tools": tools, "tool_choice": "none", "input": [
            {"role": "user", "content": "look quince up"},
            {"type": "item_reference", "id": call["id"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "a fruit"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = env.mock.requests().pop().unwrap();
    let messages = sent.body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(messages[2]["tool_call_id"], call["call_id"]);

    // An id the gateway never made, or one of a turn it does not keep, is OpenAI's 400.
    for id in [
        "msg_0123",
        "fc_nope_0",
        "rs_x",
        &message_id.replace("msg_", "msg_f"),
    ] {
        let resp = post(
            &env,
            json!({"model": "up/gpt-4o-mini", "input": [
                {"role": "user", "content": "x"}, {"type": "item_reference", "id": id}]}),
        )
        .await;
        assert_eq!(resp.status(), 400, "{id}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], "input.1.id", "{id}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(id),
            "{body}"
        );
    }
}
