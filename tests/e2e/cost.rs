//! Cost on the generation span, through the gateway to the mock: the shipped table's price
//! of `gpt-4o-mini` (0.15 / 0.60 USD per million tokens), a `[prices]` override, and an
//! unknown model.

use serde_json::{json, Value};

use crate::harness::{attr, span_named, sse_events, trace_id_of, Env};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-9)
}

fn cost_of(span: &opentelemetry_proto::tonic::trace::v1::Span) -> f64 {
    attr(span, "gen_ai.cost_usd")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no gen_ai.cost_usd on {}", span.name))
}

/// `usage` of a chat completion: prompt, cached and completion tokens.
fn tokens(usage: &Value) -> (f64, f64, f64) {
    let n = |v: &Value| v.as_u64().unwrap() as f64;
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0) as f64;
    (
        n(&usage["prompt_tokens"]),
        cached,
        n(&usage["completion_tokens"]),
    )
}

#[tokio::test]
async fn the_generation_span_carries_its_cost_streamed_and_not() {
    let env = Env::start().await;
    let price = |(prompt, cached, completion): (f64, f64, f64)| {
        ((prompt - cached) * 0.15 + cached * 0.075 + completion * 0.60) / 1e6
    };

    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini",
                     "messages": [{"role": "user", "content": "what does this cost?"}],
                     "trace": {"trace_name": "agent", "generation_name": "plain"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let header: f64 = resp.headers()["x-gatecast-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let plain_usage = tokens(&body["usage"]);
    assert!(plain_usage.0 > 0.0 && plain_usage.2 > 0.0, "{body}");
    let spans = env.spans_of(&trace_id, 2).await;
    let g = span_named(&spans, "plain");
    let want = price(plain_usage);
    assert!(close(cost_of(g), want), "{} != {want}", cost_of(g));
    assert!(close(header, want), "the header says {header}, not {want}");
    let total = attr(g, "gen_ai.cost.total_tokens")
        .unwrap()
        .as_f64()
        .unwrap();
    let input = attr(g, "gen_ai.cost.input_tokens")
        .unwrap()
        .as_f64()
        .unwrap();
    let output = attr(g, "gen_ai.cost.output_tokens")
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(close(total, want) && close(input + output, want));
    assert_eq!(attr(g, "gatecast.cost.unknown_model"), None);
    let root = span_named(&spans, "agent");
    assert!(
        root.attributes
            .iter()
            .all(|kv| !kv.key.contains("cost") && !kv.key.starts_with("gen_ai.usage.")),
        "the root span carries no usage or cost"
    );

    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini", "stream": true,
                     "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "and streamed, what does it cost?"}],
                     "trace": {"generation_name": "streamed"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let events = sse_events(resp).await.unwrap();
    let usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("a usage chunk");
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "streamed");
    let want = price(tokens(&usage));
    assert!(close(cost_of(g), want), "{} != {want}", cost_of(g));

    // Prometheus: the spend of both requests, and their tokens by kind.
    let metrics = env.metrics().await;
    let line = |name: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let spent = line(
        "gatecast_cost_usd_total{",
        &["provider=\"up\"", "model=\"gpt-4o-mini\""],
    );
    let both = price(plain_usage) + price(tokens(&usage));
    assert!((spent - both).abs() < 1e-9, "{spent} != {both}");
    let input = line(
        "gatecast_tokens_total{",
        &["model=\"gpt-4o-mini\"", "kind=\"input\""],
    );
    assert_eq!(input, plain_usage.0 + tokens(&usage).0);
}

#[tokio::test]
async fn overrides_price_a_model_and_an_unknown_one_is_flagged() {
    let env = Env::with_extra(
        "\n[prices.\"mock-model\"]\ninput_per_mtok = 1000\noutput_per_mtok = 2000\n\
         [providers.up.prices.\"gpt-4o-mini\"]\ninput_per_mtok = 100\noutput_per_mtok = 300\n",
    )
    .await;
    // A provider's own price wins over the table's 0.15 / 0.60.
    let resp = env
        .chat(json!({"model": "up/gpt-4o-mini",
                     "messages": [{"role": "user", "content": "priced by the provider"}],
                     "trace": {"generation_name": "own"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    let (prompt, _, completion) = tokens(&body["usage"]);
    let spans = env.spans_of(&trace_id, 1).await;
    let want = (prompt * 100.0 + completion * 300.0) / 1e6;
    let got = cost_of(span_named(&spans, "own"));
    assert!(close(got, want), "{got} != {want}");

    let resp = env
        .chat(json!({"model": "mock-model",
                     "messages": [{"role": "user", "content": "priced by the config"}],
                     "trace": {"generation_name": "overridden"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let trace_id = trace_id_of(&resp);
    let body: Value = resp.json().await.unwrap();
    let (prompt, _, completion) = tokens(&body["usage"]);
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "overridden");
    let want = (prompt * 1000.0 + completion * 2000.0) / 1e6;
    assert!(close(cost_of(g), want), "{} != {want}", cost_of(g));

    let resp = env
        .chat(json!({"model": "builtin/house-model-nobody-prices",
                     "messages": [{"role": "user", "content": "priced by nobody"}],
                     "trace": {"generation_name": "unknown"}}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("x-gatecast-cost-usd").is_none(),
        "no header for an unpriced model"
    );
    let trace_id = trace_id_of(&resp);
    let spans = env.spans_of(&trace_id, 1).await;
    let g = span_named(&spans, "unknown");
    assert!(attr(g, "gen_ai.usage.input_tokens").is_some());
    assert_eq!(attr(g, "gen_ai.cost_usd"), None, "never a made-up 0");
    assert_eq!(attr(g, "gen_ai.cost.total_tokens"), None);
    assert_eq!(attr(g, "gatecast.cost.unknown_model"), Some(json!(true)));
    let metrics = env.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "gatecast_cost_unknown_model_total{model=\"house-model-nobody-prices\"} 1"
        )),
        "{metrics}"
    );
}
