//! The admin API and virtual keys, against a real gateway with a real SQLite store and
//! in-process OTLP receivers.

use std::time::{Duration, Instant};

use gatecast_mock::otlp::{Behaviour, Receiver};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{attr, hex, trace_id_of, Env};

const TOKEN: &str = "admin-token-for-tests";

fn ask(text: &str) -> Value {
    json!({"model": "up/gpt-4o-mini",
           "messages": [{"role": "system", "content": format!("system-canary-{text}")},
                        {"role": "user", "content": format!("user-canary-{text}")}],
           "trace": {"trace_id": format!("adm-{text}"), "customer": "acme"},
           "user": "u-7", "session_id": format!("s-{text}")})
}

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

fn otlp_body(name: &str, endpoint: &str) -> Value {
    json!({"name": name, "type": "otlp", "endpoint": endpoint, "protocol": "http/protobuf",
           "compression": "none", "flush_interval_ms": 20,
           "headers": {"authorization": "Bearer receiver-secret-1a2b"}})
}

/// Spans of one trace at a receiver, once `n` arrived.
async fn spans_at(
    rx: &Receiver,
    trace_id: &str,
    n: usize,
) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let started = Instant::now();
    loop {
        let spans: Vec<_> = rx
            .spans()
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        if spans.len() >= n || started.elapsed() > Duration::from_secs(10) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn admin_routes_need_the_token_and_are_absent_without_one() {
    let env = Env::start().await;
    let r = env
        .client
        .get(env.url("/admin/v1/destinations"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no GATECAST_ADMIN_TOKEN: not mounted");
    env.stop().await;

    let env = Env::with_options("", Some(TOKEN)).await;
    for auth in [
        None,
        Some("wrong"),
        Some("admin-token-for-test"),
        Some("admin-token-for-testsX"),
    ] {
        let mut req = env.client.get(env.url("/admin/v1/destinations"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin token"));
    }
    let (status, body) = admin(&env, reqwest::Method::GET, "/destinations", None).await;
    assert_eq!(status, 200);
    let file = &body["data"][0];
    assert_eq!(
        (file["name"].as_str(), file["source"].as_str()),
        (Some("file"), Some("file"))
    );

    // Destinations from the config file are read-only here, but for overrides of their
    // switches (see `a_config_file_destination_takes_privacy_and_enabled_overrides`).
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/file",
        Some(json!({"sampling_rate": 0.5})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("config file"));
    let (status, _) = admin(&env, reqwest::Method::DELETE, "/destinations/file", None).await;
    assert_eq!(status, 409);
    let (status, _) = admin(&env, reqwest::Method::GET, "/destinations/nope", None).await;
    assert_eq!(status, 404);
    env.stop().await;
}

#[tokio::test]
async fn add_test_toggle_privacy_and_remove_at_runtime() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let env = Env::with_options("", Some(TOKEN)).await;
    let endpoint = rx.url("/v1/traces");

    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("collector", &endpoint)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["test"]["passed"], true);
    assert_eq!(body["source"], "api");
    let probe = &rx.requests()[0];
    assert_eq!(probe.headers["x-test-connection"], "true");
    assert!(
        probe.export().resource_spans.is_empty(),
        "the test export is empty"
    );

    // Every read masks the secret.
    for path in ["/destinations", "/destinations/collector"] {
        let (_, body) = admin(&env, reqwest::Method::GET, path, None).await;
        let text = body.to_string();
        assert!(!text.contains("receiver-secret"), "{text}");
        assert!(text.contains("****1a2b"), "{text}");
    }

    // Delivery starts with no restart, content included.
    let resp = env.chat(ask("open")).await;
    assert_eq!(resp.status(), 200);
    let open_id = trace_id_of(&resp);
    let spans = spans_at(&rx, &open_id, 1).await;
    let generation = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("generation span");
    assert!(attr(generation, "gen_ai.input.messages")
        .unwrap()
        .to_string()
        .contains("user-canary-open"));
    assert_eq!(
        rx.requests()
            .iter()
            .find(|r| !r.export().resource_spans.is_empty())
            .unwrap()
            .headers["authorization"],
        "Bearer receiver-secret-1a2b"
    );

    // Privacy on: the very next request arrives stripped, metadata kept.
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/collector",
        Some(json!({"privacy_mode": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["privacy_mode"], true);
    assert!(
        body.get("test").is_none(),
        "privacy is not a transport change: no re-test"
    );
    let resp = env.chat(ask("private")).await;
    let private_id = trace_id_of(&resp);
    let spans = spans_at(&rx, &private_id, 1).await;
    let generation = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("generation span");
    assert!(attr(generation, "gen_ai.input.messages").is_none());
    assert_eq!(attr(generation, "user.id"), Some(json!("u-7")));
    assert_eq!(attr(generation, "session.id"), Some(json!("s-private")));
    assert!(attr(generation, "gen_ai.usage.input_tokens").is_some());
    assert!(!rx.dump().contains("canary-private"));

    // The receiver hands the spans to this test before its answer reaches the gateway, which
    // only then counts the export: give the count a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let (status, stats) = admin(
            &env,
            reqwest::Method::GET,
            "/destinations/collector/stats",
            None,
        )
        .await;
        assert_eq!(status, 200);
        if stats["exported_spans"].as_u64().unwrap() >= 2 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(stats["privacy_mode"], true);
    assert!(stats["exported_spans"].as_u64().unwrap() >= 2, "{stats}");

    // The trace the user can look for.
    let (status, report) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations/collector/send-test-trace",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], true, "{report}");
    let test_trace = report["trace_id"].as_str().unwrap().to_owned();
    assert!(!spans_at(&rx, &test_trace, 1).await.is_empty());

    let (status, _) = admin(
        &env,
        reqwest::Method::DELETE,
        "/destinations/collector",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let before = rx.spans().len();
    let resp = env.chat(ask("gone")).await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.spans().len(), before, "removed: nothing more arrives");

    let (_, audit) = admin(&env, reqwest::Method::GET, "/audit", None).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"destination.create")
            && actions.contains(&"destination.update")
            && actions.contains(&"destination.delete"),
        "{actions:?}"
    );
    let text = audit.to_string();
    assert!(
        !text.contains("receiver-secret") && !text.contains(TOKEN),
        "no secrets in the audit log"
    );
    assert!(
        text.contains("admin:"),
        "the actor is the token's fingerprint"
    );
    env.stop().await;
}

#[tokio::test]
async fn failed_tests_and_bad_bodies_save_nothing() {
    let refusing = Receiver::http(Behaviour::Always(401)).await;
    let env = Env::with_options("", Some(TOKEN)).await;
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("refused", &refusing.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["test"]["passed"], false);
    assert_eq!(body["test"]["status"], 401);
    let (status, _) = admin(&env, reqwest::Method::GET, "/destinations/refused", None).await;
    assert_eq!(status, 404, "a failed test saves nothing");

    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations/test",
        Some(otlp_body("refused", &refusing.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["passed"], false);

    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations?skip_test=true",
        Some(otlp_body("refused", &refusing.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("test").is_none());

    let r = env
        .client
        .post(env.url("/admin/v1/destinations"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(json!({"name": "x", "type": "file", "path": "/tmp/x", "sampling_rate": 5})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["param"], "sampling_rate", "{body}");
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(json!({"name": "x", "type": "otlp", "endpoint": 7})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["param"], "endpoint", "{body}");
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/refused",
        Some(json!({"protocol": "carrier-pigeon"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "protocol");
    let (status, _) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("refused", &refusing.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 409, "name taken");
    env.stop().await;
}

#[tokio::test]
async fn virtual_keys_authenticate_name_spans_and_route_by_key() {
    let team_rx = Receiver::http(Behaviour::Ok).await;
    let env = Env::with_options("", Some(TOKEN)).await;
    // Open until the first key exists.
    assert_eq!(env.chat(ask("before")).await.status(), 200);

    let (status, a) = admin(
        &env,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "team-a"})),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let key_a = a["key"].as_str().unwrap().to_owned();
    assert!(key_a.starts_with("gk_"));
    let (_, b) = admin(
        &env,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "team-b"})),
    )
    .await;
    let key_b = b["key"].as_str().unwrap().to_owned();
    let (_, listed) = admin(&env, reqwest::Method::GET, "/keys", None).await;
    assert!(!listed.to_string().contains(&key_a), "keys are shown once");

    let mut only_a = otlp_body("team-a-only", &team_rx.url("/v1/traces"));
    only_a["filters"] = json!({"include_keys": ["team-a"]});
    let (status, body) = admin(&env, reqwest::Method::POST, "/destinations", Some(only_a)).await;
    assert_eq!(status, 201, "{body}");

    for (key, why) in [("", "missing"), ("gk_wrong", "wrong")] {
        let resp = if key.is_empty() {
            env.client
                .post(env.url("/v1/chat/completions"))
                .json(&ask("nokey"))
                .send()
                .await
                .unwrap()
        } else {
            env.chat_as(key, ask("badkey")).await
        };
        assert_eq!(resp.status(), 401, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let models = env.client.get(env.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);

    let resp = env.chat_as(&key_a, ask("team-a")).await;
    assert_eq!(resp.status(), 200);
    let a_id = trace_id_of(&resp);
    let resp = env.chat_as(&key_b, ask("team-b")).await;
    assert_eq!(resp.status(), 200);
    let b_id = trace_id_of(&resp);

    let spans = env.spans_of(&a_id, 1).await;
    assert_eq!(attr(&spans[0], "gatecast.key.name"), Some(json!("team-a")));
    let spans = env.spans_of(&b_id, 1).await;
    assert_eq!(attr(&spans[0], "gatecast.key.name"), Some(json!("team-b")));
    assert!(
        !spans_at(&team_rx, &a_id, 1).await.is_empty(),
        "team-a routed to its destination"
    );
    assert!(
        team_rx.spans().iter().all(|s| hex(&s.trace_id) != b_id),
        "team-b is not"
    );

    let (status, _) = admin(&env, reqwest::Method::DELETE, "/keys/team-a", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        env.chat_as(&key_a, ask("revoked")).await.status(),
        401,
        "revoked at once on this replica"
    );
    assert_eq!(env.chat_as(&key_b, ask("still")).await.status(), 200);
    env.stop().await;
}

/// The acceptance path: `gatecast destinations add --type sentry` against a running
/// gateway (test passes, destination saved), then `privacy sentry on`; the next request's
/// spans arrive at the Sentry ingest without content, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_adds_sentry_and_turns_privacy_on_under_a_running_gateway() {
    let ingest = Receiver::http(Behaviour::Ok).await;
    let env = Env::start().await;
    let dsn = format!("http://0123456789abcdef0123456789abcdef@{}/42", ingest.addr);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatecast"))
            .args(args)
            .arg("--config")
            .arg(&env.config_path)
            .env_remove("GATECAST_SECRET_KEY")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let out = cli(&[
        "destinations",
        "add",
        "sentry",
        "--type",
        "sentry",
        "--dsn",
        &dsn,
        "--set",
        "flush_interval_ms=20",
    ]);
    assert!(out.contains("PASS sentry"), "{out}");
    assert!(
        !out.contains("0123456789abcdef0123456789abcdef"),
        "the DSN key is never printed: {out}"
    );
    let probes = ingest.requests();
    assert_eq!(probes.len(), 2, "Sentry is probed twice");
    assert_eq!(probes[0].path, "/api/42/integration/otlp/v1/traces");
    assert_eq!(
        probes[0].headers["x-sentry-auth"],
        "sentry sentry_key=0123456789abcdef0123456789abcdef"
    );

    // The running gateway picks the new destination up from the store.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let resp = env.chat(ask("sentry-open")).await;
    let open_id = trace_id_of(&resp);
    let spans = spans_at(&ingest, &open_id, 1).await;
    let generation = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("generation span");
    assert!(attr(generation, "gen_ai.input.messages").is_some());
    assert_eq!(attr(generation, "sentry.op"), Some(json!("gen_ai.chat")));

    cli(&["destinations", "privacy", "sentry", "on"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let resp = env.chat(ask("sentry-private")).await;
    let private_id = trace_id_of(&resp);
    let spans = spans_at(&ingest, &private_id, 1).await;
    let generation = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("generation span");
    assert!(attr(generation, "gen_ai.input.messages").is_none());
    assert!(attr(generation, "gen_ai.usage.input_tokens").is_some());
    assert!(!ingest.dump().contains("canary-sentry-private"));
    env.stop().await;
}

/// The generation span of `trace_id` in the env's trace file, and whether it carried content.
async fn content_reached_the_file(env: &Env, trace_id: &str) -> bool {
    let spans = env.spans_of(trace_id, 1).await;
    let generation = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("generation span");
    assert!(
        attr(generation, "gen_ai.usage.input_tokens").is_some(),
        "usage is kept either way"
    );
    attr(generation, "gen_ai.input.messages").is_some()
}

/// Sends one request and says whether the file destination received its content.
async fn round_trip(env: &Env, text: &str) -> bool {
    let resp = env.chat(ask(text)).await;
    assert_eq!(resp.status(), 200);
    let trace = trace_id_of(&resp);
    content_reached_the_file(env, &trace).await
}

/// `gatecast ARGS --config` the env's config; returns (success, stdout + stderr).
fn cli(env: &Env, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatecast"))
        .args(args)
        .arg("--config")
        .arg(&env.config_path)
        .env_remove("GATECAST_SECRET_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Privacy and enabled of a destination declared in the config file are runtime overrides
/// through the admin API: applied to the next request, shown beside the file's values, kept
/// across a restart, cleared by DELETE .../overrides; every other field stays read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_destination_takes_privacy_and_enabled_overrides() {
    let env = Env::with_options("", Some(TOKEN)).await;
    assert!(round_trip(&env, "file-open").await, "the file says off");

    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/file",
        Some(json!({"privacy_mode": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["privacy_mode"], true, "{body}");
    assert_eq!(body["config_file"]["privacy_mode"], false, "{body}");
    assert_eq!(body["overrides"], json!({"privacy_mode": true}), "{body}");
    assert_eq!(body["source"], "file");
    assert!(
        !round_trip(&env, "file-private").await,
        "the next request is private"
    );
    assert!(!std::fs::read_to_string(&env.traces)
        .unwrap()
        .contains("canary-file-private"));

    // Other fields stay the file's, even beside a switch; a refused PATCH saves nothing.
    for patch in [
        json!({"sampling_rate": 0.5}),
        json!({"privacy_mode": false, "path": "/tmp/elsewhere.jsonl"}),
    ] {
        let (status, body) = admin(
            &env,
            reqwest::Method::PATCH,
            "/destinations/file",
            Some(patch),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config file"));
    }
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/file",
        Some(json!({"enabled": "no"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "enabled");
    let (_, body) = admin(&env, reqwest::Method::GET, "/destinations/file", None).await;
    assert_eq!(body["privacy_mode"], true, "{body}");
    assert_eq!(body["sampling_rate"], 1.0, "{body}");
    let (_, audit) = admin(&env, reqwest::Method::GET, "/audit", None).await;
    let last = &audit["data"][0];
    assert_eq!(
        (last["action"].as_str(), last["target"].as_str()),
        (Some("destination.override"), Some("file")),
        "{audit}"
    );
    assert!(last["actor"].as_str().unwrap().starts_with("admin:"));

    // A restart syncs the file again and keeps the override.
    let env = env.restart().await;
    let (_, body) = admin(&env, reqwest::Method::GET, "/destinations/file", None).await;
    assert_eq!(body["overrides"], json!({"privacy_mode": true}), "{body}");
    assert!(
        !round_trip(&env, "file-restarted").await,
        "still private after a restart"
    );

    // enabled: set, then reset with null.
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/file",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["enabled"].clone(),
            body["config_file"]["enabled"].clone()
        ),
        (json!(false), json!(true))
    );
    let (_, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/file",
        Some(json!({"enabled": null})),
    )
    .await;
    assert_eq!(body["enabled"], true, "{body}");
    assert_eq!(body["overrides"], json!({"privacy_mode": true}), "{body}");

    // DELETE .../overrides: back to the file's values.
    let (status, body) = admin(
        &env,
        reqwest::Method::DELETE,
        "/destinations/file/overrides",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["privacy_mode"], false, "{body}");
    assert_eq!(body["overrides"], json!({}), "{body}");
    assert!(round_trip(&env, "file-reset").await, "content again");
    env.stop().await;
}

/// The same through the CLI, against a running gateway: each change says when the gateway
/// has applied it, and then the next request already follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_overrides_privacy_of_a_config_file_destination_and_reports_the_apply() {
    let env = Env::start().await;
    let (ok, out) = cli(&env, &["destinations", "privacy", "file", "on"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("privacy: on (override; file says off)"),
        "{out}"
    );
    assert!(out.contains("applied by 1 running gateway(s)"), "{out}");
    assert!(
        !round_trip(&env, "cli-private").await,
        "applied means the next request is private"
    );

    let (ok, out) = cli(&env, &["destinations", "list"]);
    assert!(ok && out.contains("on (override; file says off)"), "{out}");
    let (_, out) = cli(&env, &["destinations", "list", "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            list[0]["privacy_mode"].clone(),
            list[0]["config_file"]["privacy_mode"].clone(),
            list[0]["overrides"].clone()
        ),
        (json!(true), json!(false), json!({"privacy_mode": true})),
        "{out}"
    );
    let (ok, out) = cli(
        &env,
        &["destinations", "update", "file", "--sampling-rate", "0.5"],
    );
    assert!(!ok && out.contains("config file"), "{out}");

    let env = env.restart().await;
    assert!(
        !round_trip(&env, "cli-restarted").await,
        "kept across a restart"
    );

    let (ok, out) = cli(&env, &["destinations", "privacy", "file", "reset"]);
    assert!(ok, "{out}");
    assert!(out.contains("privacy: off,"), "{out}");
    assert!(out.contains("applied by 1 running gateway(s)"), "{out}");
    assert!(
        round_trip(&env, "cli-reset").await,
        "back to the file's value"
    );

    let (ok, out) = cli(&env, &["destinations", "disable", "file", "--no-wait"]);
    assert!(
        ok && out.contains("enabled: false (override; file says true)"),
        "{out}"
    );
    assert!(out.contains("not waiting"), "{out}");
    let (ok, out) = cli(&env, &["destinations", "reset", "file"]);
    assert!(ok && out.contains("follows the config file again"), "{out}");
    assert!(out.contains("applied by 1 running gateway(s)"), "{out}");
    env.stop().await;
}

/// Refused targets answer 422 naming the field and save nothing; skipping the test does not
/// skip the policy.
async fn refused(env: &Env, path: &str, body: Value, field: &str, says: &str) {
    let (status, answer) = admin(env, reqwest::Method::POST, path, Some(body)).await;
    assert_eq!(status, 422, "{path}: {answer}");
    assert_eq!(answer["error"]["param"], field, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
    assert!(answer.get("test").is_none(), "nothing was probed: {answer}");
}

#[tokio::test]
async fn runtime_destinations_cannot_target_metadata_other_schemes_or_files_elsewhere() {
    let env = Env::with_options("", Some(TOKEN)).await;
    let dir = env.traces.parent().unwrap().to_path_buf();
    let metadata = "http://169.254.169.254/latest/meta-data/";
    for path in [
        "/destinations",
        "/destinations?skip_test=true",
        "/destinations/test",
    ] {
        refused(
            &env,
            path,
            otlp_body("meta", metadata),
            "endpoint",
            "cloud metadata address",
        )
        .await;
    }
    refused(
        &env,
        "/destinations",
        otlp_body(
            "meta",
            "http://metadata.google.internal/computeMetadata/v1/",
        ),
        "endpoint",
        "cloud metadata host",
    )
    .await;
    refused(
        &env,
        "/destinations",
        otlp_body("meta", "http://[::ffff:169.254.169.254]/"),
        "endpoint",
        "cloud metadata address",
    )
    .await;
    refused(
        &env,
        "/destinations?skip_test=true",
        json!({"name": "meta", "type": "sentry",
               "dsn": "http://0123456789abcdef0123456789abcdef@169.254.169.254/42"}),
        "dsn",
        "cloud metadata address",
    )
    .await;
    refused(
        &env,
        "/destinations",
        json!({"name": "hook", "type": "webhook", "url": "file:///etc/passwd"}),
        "url",
        "the scheme must be http or https, not `file`",
    )
    .await;
    refused(
        &env,
        "/destinations/test",
        otlp_body("gopher", "gopher://127.0.0.1:70/"),
        "endpoint",
        "not `gopher`",
    )
    .await;
    let escape = dir.join("../escaped.jsonl");
    let outside =
        std::env::temp_dir().join(format!("gatecast-outside-{}.jsonl", std::process::id()));
    for (path, says) in [(&escape, "must not contain `..`"), (&outside, "is outside")] {
        for route in ["/destinations", "/destinations/test"] {
            refused(
                &env,
                route,
                json!({"name": "f", "type": "file", "path": path}),
                "path",
                says,
            )
            .await;
        }
        assert!(!path.exists(), "{} was created", path.display());
    }
    let (status, _) = admin(&env, reqwest::Method::GET, "/destinations/meta", None).await;
    assert_eq!(status, 404, "nothing saved");

    // Inside the data directory, a file destination is fine; an update out of it is refused.
    let inside = dir.join("runtime/inside.jsonl");
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(json!({"name": "inside", "type": "file", "path": inside})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(inside.exists());
    let (status, body) = admin(
        &env,
        reqwest::Method::PATCH,
        "/destinations/inside",
        Some(json!({"path": escape})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "path");
    env.stop().await;
}

#[tokio::test]
async fn a_host_list_admits_only_listed_hosts_and_opens_metadata_when_it_names_it() {
    let rx = Receiver::http(Behaviour::Ok).await;
    let security = format!(
        "\n[security]\ndestination_hosts = [\"127.0.0.1:{}\", \"169.254.169.254\"]\n",
        rx.addr.port()
    );
    let env = Env::with_options(&security, Some(TOKEN)).await;
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("listed", &rx.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["test"]["passed"], true, "{body}");
    // The same receiver by another name, or another port, is not listed.
    let other_port = format!("http://127.0.0.1:{}/v1/traces", rx.addr.port() + 1);
    let by_name = format!("http://localhost:{}/v1/traces", rx.addr.port());
    for endpoint in [other_port.as_str(), "http://10.1.2.3/v1/traces"] {
        refused(
            &env,
            "/destinations",
            otlp_body("other", endpoint),
            "endpoint",
            "is not in security.destination_hosts",
        )
        .await;
    }
    // `localhost` is not listed by name; its addresses decide, and only 127.0.0.1 is.
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("by-name", &by_name)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Listed explicitly, the metadata address may be saved (not probed here: nothing answers).
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations?skip_test=true",
        Some(otlp_body("meta", "http://169.254.169.254/v1/traces")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    refused(
        &env,
        "/destinations",
        otlp_body("meta2", "http://169.254.170.2/"),
        "endpoint",
        "link-local",
    )
    .await;
    env.stop().await;
}

#[tokio::test]
async fn a_refused_create_runs_no_test_and_creates_no_file() {
    let env = Env::with_options("", Some(TOKEN)).await;
    let dir = env.traces.parent().unwrap().to_path_buf();
    let first = dir.join("first.jsonl");
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(json!({"name": "taken", "type": "file", "path": first})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (name, want) in [("bad name!", 422), ("taken", 409), ("file", 409), ("", 422)] {
        let path = dir.join(format!("never-{}.jsonl", want));
        let (status, body) = admin(
            &env,
            reqwest::Method::POST,
            "/destinations",
            Some(json!({"name": name, "type": "file", "path": path})),
        )
        .await;
        assert_eq!(status, want, "{name:?}: {body}");
        assert!(body.get("test").is_none(), "{body}");
        assert!(!path.exists(), "{name:?}: {} was created", path.display());
    }
    env.stop().await;
}

#[tokio::test]
async fn a_destination_that_redirects_fails_its_test_naming_the_location() {
    let second = Receiver::http(Behaviour::Ok).await;
    let first = Receiver::http(Behaviour::RedirectTo(second.addr)).await;
    let env = Env::with_options("", Some(TOKEN)).await;
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        "/destinations",
        Some(otlp_body("moved", &first.url("/v1/traces"))),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["test"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "redirected to http://{}/v1/traces?token=*** (HTTP 307)",
            second.addr
        )),
        "{message}"
    );
    assert!(!body.to_string().contains("redirect-secret"), "{body}");
    assert_eq!(first.calls(), 1);
    assert_eq!(second.calls(), 0, "the redirect was not followed");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_metadata_endpoints_naming_the_field() {
    let env = Env::start().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatecast"))
        .args([
            "destinations",
            "add",
            "meta",
            "--type",
            "otlp",
            "--endpoint",
        ])
        .arg("http://169.254.169.254/v1/traces")
        .arg("--skip-test")
        .arg("--config")
        .arg(&env.config_path)
        .env_remove("GATECAST_SECRET_KEY")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("endpoint: 169.254.169.254 is a cloud metadata address"),
        "{text}"
    );
    env.stop().await;
}

/// Each destination type's own fields are read by that type, and a bad one is named exactly
/// in `param`, not as the body or the destination.
#[tokio::test]
async fn a_bad_field_of_each_destination_type_is_named_in_param() {
    let env = Env::with_options("", Some(TOKEN)).await;
    let cases = [
        (json!({"name": "f", "type": "file", "path": 5}), "path"),
        (
            json!({"name": "s", "type": "sentry", "dsn": "https://short@o1.ingest.sentry.io/1"}),
            "dsn",
        ),
        (
            json!({"name": "o", "type": "otlp", "endpoint": "http://127.0.0.1:1/v1/traces",
                   "headers": {"x-a": 5}}),
            "headers.x-a",
        ),
        (
            json!({"name": "w", "type": "webhook", "url": "http://127.0.0.1:1/hook",
                   "method": "GET"}),
            "method",
        ),
    ];
    for (body, param) in cases {
        let (status, answer) = admin(
            &env,
            reqwest::Method::POST,
            "/destinations?skip_test=true",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
    }
    env.stop().await;
}

/// Every client route is behind the one key check, which refuses before the body is read or
/// parsed (a broken body is a 401, not a 400), records nothing, and leaves a wrong method a
/// 405 whoever asks.
#[tokio::test]
async fn every_client_route_is_authenticated_before_its_body_is_parsed() {
    let env = Env::with_options("", Some(TOKEN)).await;
    let (status, created) = admin(
        &env,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "team-a"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    for path in ["/v1/chat/completions", "/chat/completions"] {
        let resp = env
            .client
            .post(env.url(path))
            .header("content-type", "application/json")
            .body("{\"model\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}");
    }
    for path in ["/v1/models", "/models"] {
        let resp = env.client.get(env.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let resp = env
            .client
            .get(env.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = env
        .client
        .get(env.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405, "a wrong method is a 405 whoever asks");
    assert!(env.mock.requests().is_empty(), "nothing was forwarded");

    let resp = env.chat_as(&key, ask("alias")).await;
    assert_eq!(resp.status(), 200);
    let spans = env.spans_of(&trace_id_of(&resp), 1).await;
    assert_eq!(attr(&spans[0], "gatecast.key.name"), Some(json!("team-a")));
    let metrics = env.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "gatecast_requests_unauthorized_total 4"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("status=\"401\""),
        "refused requests are not counted as answered: {metrics}"
    );
    env.stop().await;
}
