//! No body, however malformed, makes a dialect's responder panic: each answers or refuses.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{Mock, MockBody};

/// Keys and strings the dialects look at, so generated bodies reach deep into validation.
const WORDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "role",
    "content",
    "type",
    "text",
    "user",
    "assistant",
    "system",
    "tool_use",
    "tool_result",
    "tool_use_id",
    "id",
    "name",
    "input",
    "input_schema",
    "tools",
    "tool_choice",
    "thinking",
    "budget_tokens",
    "enabled",
    "stream",
    "image",
    "source",
    "base64",
    "media_type",
    "data",
    "function",
    "function_call",
    "function_call_output",
    "call_id",
    "output",
    "arguments",
    "instructions",
    "dimensions",
    "encoding_format",
    "metadata",
    "user_id",
    "#mock:error=500",
    "#mock:stream_error_after=1",
    "#mock:chunks=2",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u64..5000).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check(reply: &crate::MockReply) {
    assert!((200..=599).contains(&reply.status));
    if reply.status >= 400 {
        let MockBody::Json(bytes) = &reply.body else {
            panic!("an error is a JSON body")
        };
        serde_json::from_slice::<Value>(bytes).expect("an error body is JSON");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_body_makes_a_dialect_panic(body in value()) {
        let mock = Mock::new();
        check(&mock.messages(&body, None));
        check(&mock.count_tokens(&body, None));
        check(&mock.responses(&body, None));
        check(&mock.embeddings(&body, None));
        check(&mock.azure_chat(&body, None, Some("d")));
    }

    #[test]
    fn messages_shaped_bodies_never_panic(
        messages in prop::collection::vec(value(), 0..4),
        extra in prop::collection::btree_map(word(), value(), 0..3),
    ) {
        let mut body = json!({"model": "m", "max_tokens": 2048, "messages": messages});
        body.as_object_mut().unwrap().extend(extra);
        check(&Mock::new().messages(&body, None));
        let mut body = json!({"model": "m", "input": body["messages"].clone()});
        check(&Mock::new().responses(&body, None));
        body["input"] = json!("#mock:chunks=3 hi");
        check(&Mock::new().responses(&body, None));
    }
}
