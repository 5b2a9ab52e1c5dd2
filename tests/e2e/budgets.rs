//! Spend per key, user and model, and budgets per virtual key, against a real gateway with a
//! real SQLite store. Records are priced by the gateway itself: the budget test sets a
//! `[prices]` override so dear that one request crosses a one-dollar budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gatecast::spend::ManualClock;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{attr, trace_id_of, Env};

const TOKEN: &str = "budget-admin-token";
/// Spend reaches the store, and budgets the gateway, every 100 ms here.
const FAST_SPEND: &str = "\n[spend]\nflush_interval_ms = 100\n";
/// Ten cents a token: any answer of the mock's costs more than a dollar.
const DEAR: &str =
    "\n[prices.\"gpt-4o-mini\"]\ninput_per_mtok = 100000.0\noutput_per_mtok = 100000.0\n";

async fn admin(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = env
        .client
        .request(method, env.url(&format!("/admin/v1{path}")))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn new_key(env: &Env, body: Value) -> String {
    let (status, created) = admin(env, reqwest::Method::POST, "/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

fn ask(user: Option<&str>) -> Value {
    let mut body = json!({"model": "up/gpt-4o-mini",
                          "messages": [{"role": "user", "content": "what does it cost?"}]});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    body
}

/// Polls `probe` until it gives `Some`, for at most 15 s (the box is loaded).
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every answered exchange adds its tokens to its (day, key, user, model) row within about a
/// flush interval; the admin API and `gatecast spend` report the same rows.
#[tokio::test]
async fn spend_is_metered_per_key_user_and_model_and_reported() {
    let env = Env::with_options(FAST_SPEND, Some(TOKEN)).await;
    let key = new_key(&env, json!({"name": "team-a"})).await;
    let mut input = 0;
    let mut output = 0;
    for user in [Some("alice"), Some("alice"), None] {
        let resp = env.chat_as(&key, ask(user)).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        input += body["usage"]["prompt_tokens"].as_i64().unwrap();
        output += body["usage"]["completion_tokens"].as_i64().unwrap();
    }
    assert!(input > 0 && output > 0);
    // A refused request spends nothing.
    assert_eq!(
        env.chat_as("gk_wrong", ask(Some("alice"))).await.status(),
        401
    );

    let by_user = eventually("three requests in the spend table", || async {
        let (status, body) = admin(&env, reqwest::Method::GET, "/spend?by=user", None).await;
        assert_eq!(status, 200, "{body}");
        let total: i64 = body["data"]
            .as_array()?
            .iter()
            .filter_map(|r| r["requests"].as_i64())
            .sum();
        (total == 3).then_some(body)
    })
    .await;
    let rows = by_user["data"].as_array().unwrap();
    let users: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["requests"].as_i64().unwrap()))
        .collect();
    assert_eq!(users, [("", 1), ("alice", 2)]);
    assert_eq!(by_user["by"], "user");

    let (_, by_key) = admin(&env, reqwest::Method::GET, "/spend?by=key", None).await;
    let team = &by_key["data"][0];
    assert_eq!(team["key"], "team-a");
    assert_eq!(team["input_tokens"].as_i64(), Some(input));
    assert_eq!(team["output_tokens"].as_i64(), Some(output));
    // The shipped table's price of gpt-4o-mini: 0.15 / 0.60 USD per million tokens (the mock
    // reports no cached tokens here).
    assert_eq!(team["unpriced_requests"].as_i64(), Some(0), "{team}");
    let want = (input as f64 * 0.15 + output as f64 * 0.60) / 1e6;
    let usd = team["usd"].as_f64().unwrap();
    assert!((usd - want).abs() < 1e-9, "{usd} != {want}");

    let (_, all) = admin(&env, reqwest::Method::GET, "/spend", None).await;
    let row = &all["data"][0];
    assert_eq!(row["day"], Utc::now().format("%Y-%m-%d").to_string());
    assert_eq!(row["model"], "gpt-4o-mini");
    let (status, bad) = admin(&env, reqwest::Method::GET, "/spend?since=yesterday", None).await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["param"], "since");

    // The CLI reads the same store and prints the same JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatecast"))
        .args(["spend", "--by", "key", "--json", "--config"])
        .arg(&env.config_path)
        .env_remove("GATECAST_SECRET_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, by_key);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatecast"))
        .args(["spend", "--by", "model", "--config"])
        .arg(&env.config_path)
        .env_remove("GATECAST_SECRET_KEY")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("MODEL") && table.contains("gpt-4o-mini"),
        "{table}"
    );
    env.stop().await;
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Over its daily budget a key is refused with OpenAI's 429 for an exhausted quota, before
/// its request reaches a provider, traced and counted; the next UTC day it is let through
/// again. Other keys are not affected.
#[tokio::test]
async fn a_key_over_its_budget_is_refused_until_the_next_period() {
    let clock = Arc::new(ManualClock::new(at("2026-05-06T12:00:00Z")));
    let env = Env::with_clock(
        &format!("{FAST_SPEND}{DEAR}"),
        Some(TOKEN),
        "",
        clock.clone(),
    )
    .await;
    let capped = new_key(
        &env,
        json!({"name": "team-a", "budget_usd": 1000.0, "budget_period": "day"}),
    )
    .await;
    let free = new_key(&env, json!({"name": "team-b"})).await;
    let (status, bad) = admin(
        &env,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "team-c", "budget_usd": 5})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), &bad["error"]["param"]),
        (422, &json!("budget_period"))
    );

    let first = env.chat_as(&capped, ask(Some("alice"))).await;
    assert_eq!(first.status(), 200, "under budget");
    // What the gateway priced it at, from its generation span.
    let spans = env.spans_of(&trace_id_of(&first), 1).await;
    let cost = spans
        .iter()
        .find_map(|s| attr(s, "gen_ai.cost_usd"))
        .and_then(|v| v.as_f64())
        .unwrap();
    assert!(cost > 1.0, "{cost}");
    // Once the meter has written it, a budget below it is over: setting one through the admin
    // API reads the store back at once, so the next request meets exactly this spend (requests
    // racing a background refresh could each add theirs: the overshoot cost.md bounds).
    eventually("the spend in the store", || async {
        let (_, by_key) = admin(&env, reqwest::Method::GET, "/spend?by=key", None).await;
        let usd = by_key["data"][0]["usd"].as_f64()?;
        ((usd - cost).abs() < 1e-9).then_some(())
    })
    .await;
    let (status, lowered) = admin(
        &env,
        reqwest::Method::PUT,
        "/keys/team-a/budget",
        Some(json!({"usd": 1.0, "period": "day"})),
    )
    .await;
    assert_eq!(status, 200, "{lowered}");
    let refused = env.chat_as(&capped, ask(Some("alice"))).await;
    assert_eq!(refused.status(), 429);
    let trace_id = trace_id_of(&refused);
    assert_eq!(refused.headers()["content-type"], "application/json");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": format!("virtual key `team-a` has used its daily budget: spent ${cost:.2} of $1.00; it resets at 2026-05-07 00:00:00 UTC"),
            "type": "insufficient_quota",
            "param": null,
            "code": "budget_exceeded"
        }})
    );
    let spans = env.spans_of(&trace_id, 1).await;
    assert_eq!(
        attr(&spans[0], "error.type"),
        Some(json!("budget_exceeded"))
    );
    assert_eq!(attr(&spans[0], "gatecast.key.name"), Some(json!("team-a")));
    assert_eq!(
        attr(&spans[0], "gatecast.response.status_code"),
        Some(json!(429))
    );
    let metrics = env.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gatecast_budget_refusals_total{key=\"team-a\"}")),
        "{metrics}"
    );
    assert_eq!(
        env.chat_as(&free, ask(None)).await.status(),
        200,
        "other keys spend on"
    );
    let models = env
        .client
        .get(env.url("/v1/models"))
        .bearer_auth(&capped)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200, "listing models spends nothing");

    // Raising the budget through the admin API applies at once on this replica.
    let (status, raised) = admin(
        &env,
        reqwest::Method::PUT,
        "/keys/team-a/budget",
        Some(json!({"usd": 1000.0, "period": "day"})),
    )
    .await;
    assert_eq!(status, 200, "{raised}");
    assert_eq!(raised["budget"], json!({"usd": 1000.0, "period": "day"}));
    assert_eq!(env.chat_as(&capped, ask(None)).await.status(), 200);
    let (status, _) = admin(
        &env,
        reqwest::Method::PUT,
        "/keys/team-a/budget",
        Some(json!({"usd": 1.0, "period": "day"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.chat_as(&capped, ask(None)).await.status(), 429);

    // The next UTC day the budget is whole again.
    clock.set(at("2026-05-07T00:00:01Z"));
    eventually("the next day's budget", || async {
        (env.chat_as(&capped, ask(None)).await.status() == 200).then_some(())
    })
    .await;
    // And a cleared budget never refuses.
    clock.set(at("2026-05-06T12:00:00Z"));
    let (status, cleared) = admin(&env, reqwest::Method::DELETE, "/keys/team-a/budget", None).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared.get("budget").is_none(), "{cleared}");
    assert_eq!(env.chat_as(&capped, ask(None)).await.status(), 200);
    env.stop().await;
}
