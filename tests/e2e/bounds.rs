//! Client text that becomes a span name or an error message stays within the limits.

use serde_json::{json, Value};

use crate::harness::{attr, trace_id_of, Env};

/// A 10 MiB `model` once gave a 10 MiB span name, a 21 MB export line and a 404 quoting it all.
#[tokio::test]
async fn a_huge_model_gives_a_small_404_and_a_bounded_span() {
    let env = Env::with_server("", None, "max_body_bytes = 4194304").await;
    // Two-byte chars, so every cut must find a char boundary.
    let model = "é".repeat(512 * 1024);
    let resp = env
        .chat(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 404);
    let trace_id = trace_id_of(&resp);
    let text = resp.text().await.unwrap();
    assert!(text.len() < 2048, "a {} byte 404", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("`{}…`", "é".repeat(256))),
        "the model's start is quoted: {message}"
    );

    let spans = env.spans_of(&trace_id, 1).await;
    let g = &spans[0];
    let limit = 65536;
    assert!(g.name.len() <= limit, "a {} byte span name", g.name.len());
    assert!(g.name.starts_with("chat éé"));
    assert_eq!(attr(g, "gatecast.span_name.truncated"), Some(json!(true)));
    let sent = attr(g, "gen_ai.request.model").unwrap();
    assert!(sent.as_str().unwrap().len() <= limit);
    assert_eq!(attr(g, "gen_ai.request.model.truncated"), Some(json!(true)));
    let status = g.status.as_ref().unwrap();
    assert_eq!(status.code, 2, "ERROR");
    assert!(status.message.len() < 2048, "{}", status.message.len());

    let exported = std::fs::read_to_string(&env.traces).unwrap();
    let line = exported
        .lines()
        .find(|l| l.contains(&trace_id))
        .expect("the export line of the trace");
    // The name and the model attribute at the 64 KiB limit each, and little else.
    assert!(line.len() < 4 * limit, "a {} byte export line", line.len());
}
