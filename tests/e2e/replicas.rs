//! Two gateway processes sharing one Postgres: a change made on one replica, or with the
//! CLI, reaches the other within 2 s. Needs `GATECAST_TEST_POSTGRES_URL`, which
//! `scripts/test` always sets (it installs and starts a throwaway cluster, or fails).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatecast_mock::otlp::{Behaviour, Receiver};
use serde_json::{json, Value};

use crate::harness::{attr, hex};
use crate::process::free_port;

const TOKEN: &str = "replica-admin-token";
const SECRET_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gatecast(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatecast"));
    cmd.current_dir(dir)
        .env("GATECAST_SECRET_KEY", SECRET_KEY)
        .env("GATECAST_ADMIN_TOKEN", TOKEN)
        .env_remove("SENTRY_DSN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    cmd
}

async fn start_replica(dir: &Path, config: &Path) -> Replica {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("replica-{port}.log"))).unwrap();
    let child = gatecast(dir)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "replica on {port} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { child, base }
}

/// A fresh database on the test server, so runs never see each other's rows.
async fn fresh_database(admin_url: &str, tag: &str) -> String {
    let name = format!("gatecast_replicas_{tag}_{}", std::process::id());
    let pool = sqlx::PgPool::connect(admin_url)
        .await
        .expect("GATECAST_TEST_POSTGRES_URL is set but the server cannot be reached");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn ask(text: &str, key: Option<&str>) -> (Value, Option<String>) {
    (
        json!({"model": "up/gpt-4o-mini",
               "messages": [{"role": "user", "content": format!("canary-{text}")}],
               "trace": {"trace_id": format!("rep-{text}")}, "user": "u-1", "session_id": format!("s-{text}")}),
        key.map(str::to_owned),
    )
}

async fn chat(base: &str, text: &str, key: Option<&str>) -> (u16, String) {
    let (body, key) = ask(text, key);
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let trace = resp
        .headers()
        .get("x-gatecast-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, trace)
}

/// The generation span of `trace_id` at `rx`, once it arrived.
async fn generation(rx: &Receiver, trace_id: &str) -> opentelemetry_proto::tonic::trace::v1::Span {
    let started = Instant::now();
    loop {
        if let Some(s) = rx
            .spans()
            .into_iter()
            .find(|s| hex(&s.trace_id) == trace_id && s.name.starts_with("chat "))
        {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "trace {trace_id} never arrived: {}",
            rx.dump()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_follow_each_other_and_the_cli() {
    let Some(admin_url) = std::env::var("GATECAST_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        eprintln!("skipped: GATECAST_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return;
    };
    let db = fresh_database(&admin_url, "follow").await;
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let rx = Receiver::http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatecast.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{db}\"\n\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"gpt-4o-mini\"]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let migrate = gatecast(dir.path())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let a = start_replica(dir.path(), &config).await;
    let b = start_replica(dir.path(), &config).await;

    // A destination added with the CLI reaches both replicas.
    let add = gatecast(dir.path())
        .args([
            "destinations",
            "add",
            "collector",
            "--type",
            "otlp",
            "--endpoint",
            &rx.url("/v1/traces"),
            "--set",
            "flush_interval_ms=20",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let out =
        String::from_utf8_lossy(&add.stdout).to_string() + &String::from_utf8_lossy(&add.stderr);
    assert!(add.status.success(), "{out}");
    assert!(out.contains("PASS collector"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, replica) in [("a", &a), ("b", &b)] {
        let (status, trace) = chat(&replica.base, &format!("cli-{name}"), None).await;
        assert_eq!(status, 200);
        let g = generation(&rx, &trace).await;
        assert!(attr(&g, "gen_ai.input.messages")
            .unwrap()
            .to_string()
            .contains(&format!("canary-cli-{name}")));
    }

    // Privacy on through replica A's admin API; requests to B from then on arrive stripped
    // once B has applied it, and B applies it in under 2 s.
    let client = reqwest::Client::new();
    let patched = client
        .patch(format!("{}/admin/v1/destinations/collector", a.base))
        .bearer_auth(TOKEN)
        .json(&json!({"privacy_mode": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let toggled = Instant::now();
    let mut sent = Vec::new();
    while toggled.elapsed() < Duration::from_millis(2000) {
        let at = toggled.elapsed();
        let (status, trace) = chat(&b.base, &format!("after-{}", sent.len()), None).await;
        assert_eq!(status, 200);
        sent.push((at, trace));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut first_stripped = None;
    for (i, (at, trace)) in sent.iter().enumerate() {
        let g = generation(&rx, trace).await;
        let stripped = attr(&g, "gen_ai.input.messages").is_none();
        assert_eq!(attr(&g, "user.id"), Some(json!("u-1")), "metadata kept");
        match (stripped, first_stripped) {
            (true, None) => first_stripped = Some((i, *at)),
            (false, Some((_, since))) => {
                panic!("request {i} at {at:?} carried content after B stripped one at {since:?}")
            }
            _ => {}
        }
    }
    let (_, since) = first_stripped.expect("no request to B was stripped within 2 s of the toggle");
    eprintln!("replica B applied the privacy toggle within {since:?}");
    assert!(since < Duration::from_secs(2));

    // A key created on A is required and accepted on B; revoked with the CLI, refused by both.
    let created: Value = client
        .post(format!("{}/admin/v1/keys", a.base))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "team-a"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chat(&b.base, "nokey", None).await.0, 401);
    let (status, trace) = chat(&b.base, "withkey", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(
        attr(&generation(&rx, &trace).await, "gatecast.key.name"),
        Some(json!("team-a"))
    );
    let revoke = gatecast(dir.path())
        .args(["keys", "revoke", "team-a", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(chat(&a.base, "revoked-a", Some(&key)).await.0, 401);
    assert_eq!(chat(&b.base, "revoked-b", Some(&key)).await.0, 401);

    // A change made with the CLI waits for, and says, both replicas applied it.
    let toggle = gatecast(dir.path())
        .args(["destinations", "privacy", "collector", "off", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&toggle.stdout).to_string()
        + &String::from_utf8_lossy(&toggle.stderr);
    assert!(toggle.status.success(), "{out}");
    assert!(out.contains("applied by 2 running gateway(s)"), "{out}");
}

/// Two replicas metering one key at once on one Postgres: the spend table adds up to every
/// request either served, and a budget set with the CLI is enforced by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_spending_on_one_key_add_up_and_share_its_budget() {
    let Some(admin_url) = std::env::var("GATECAST_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        eprintln!("skipped: GATECAST_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return;
    };
    let db = fresh_database(&admin_url, "spend").await;
    let mock = gatecast_mock::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatecast.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{db}\"\n\n[spend]\nflush_interval_ms = 200\n\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"gpt-4o-mini\"]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = gatecast(dir.path())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&["migrate"]);
    let key = cli(&["keys", "create", "team-a"]).trim().to_owned();
    let a = start_replica(dir.path(), &config).await;
    let b = start_replica(dir.path(), &config).await;

    // Both replicas at once, each flushing into the same (day, key, user, model) row.
    const EACH: usize = 12;
    let mut tasks = tokio::task::JoinSet::new();
    for base in [a.base.clone(), b.base.clone()] {
        for i in 0..EACH {
            let (base, key) = (base.clone(), key.clone());
            tasks.spawn(async move {
                let (body, _) = ask(&format!("spend-{i}"), None);
                let resp = reqwest::Client::new()
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let v: Value = resp.json().await.unwrap();
                v["usage"]["prompt_tokens"].as_i64().unwrap()
            });
        }
    }
    let mut input = 0;
    while let Some(done) = tasks.join_next().await {
        input += done.unwrap();
    }
    let started = Instant::now();
    let row = loop {
        let report: Value =
            serde_json::from_str(&cli(&["spend", "--by", "key", "--json"])).unwrap();
        let row = report["data"][0].clone();
        if row["requests"].as_i64() == Some(2 * EACH as i64) {
            break row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "spend never reached {} requests: {report}",
            2 * EACH
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["key"], "team-a");
    assert_eq!(row["input_tokens"].as_i64(), Some(input));

    // A budget of $0 set with the CLI refuses the key on both replicas within seconds.
    cli(&[
        "keys", "budget", "team-a", "--usd", "0", "--period", "month",
    ]);
    for replica in [&a, &b] {
        let started = Instant::now();
        loop {
            let (status, _) = chat(&replica.base, "over", Some(&key)).await;
            if status == 429 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} never enforced the budget",
                replica.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop((a, b));
}
