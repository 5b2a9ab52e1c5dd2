//! The `gatecast` binary's command line.

use std::process::Command;

fn gatecast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatecast"))
}

#[test]
fn check_config_accepts_the_default_and_names_the_path_of_errors() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let ok = gatecast()
        .current_dir(root)
        .args(["check-config"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("config/gatecast.toml: ok"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[providers.up]\nkind = \"openai\"\nbase_url = \"not a url\"\n",
    )
    .unwrap();
    let out = gatecast()
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("providers.up.base_url: invalid URL"), "{err}");

    std::fs::write(
        &bad,
        "[providers.up]\nkind = \"openai\"\nbase_url = \"${GATECAST_TEST_UNSET_VAR}\"\n",
    )
    .unwrap();
    let out = gatecast()
        .args(["check-config", "--config"])
        .arg(&bad)
        .env_remove("GATECAST_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`GATECAST_TEST_UNSET_VAR` is not set"));

    let out = gatecast()
        .args(["check-config", "--config", "/nonexistent/gatecast.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn help_lists_the_commands() {
    let out = gatecast().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check-config", "spend"] {
        assert!(text.contains(cmd), "{text}");
    }
}

/// Runs `gatecast ARGS --config CONFIG` in `dir`; returns (success, stdout, stderr).
fn run(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = gatecast()
        .current_dir(dir)
        .env_remove("GATECAST_SECRET_KEY")
        .env_remove("SENTRY_DSN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn store_commands_manage_destinations_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatecast.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite://data/cli.db\"\n\n[providers.m]\nkind = \"mock\"\n\n[[destinations]]\nname = \"from-file\"\ntype = \"file\"\npath = \"data/t.jsonl\"\n",
    )
    .unwrap();
    let (ok, out, err) = run(dir.path(), &config, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"), "{out}");
    let key_file = dir.path().join("data/secret.key");
    assert!(
        key_file.exists(),
        "a secret key is generated next to the database"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (ok, out, err) = run(
        dir.path(),
        &config,
        &[
            "destinations",
            "add",
            "hook",
            "--type",
            "webhook",
            "--url",
            "http://127.0.0.1:1/hook",
            "--header",
            "authorization=Bearer hook-secret-9z9z",
            "--skip-test",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        dir.path(),
        &config,
        &[
            "destinations",
            "add",
            "local",
            "--type",
            "file",
            "--path",
            "data/local.jsonl",
            "--privacy",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("PASS local"), "the connection test ran: {out}");
    let (ok, out, err) = run(
        dir.path(),
        &config,
        &[
            "destinations",
            "add",
            "dead",
            "--type",
            "otlp",
            "--endpoint",
            "http://127.0.0.1:1/v1/traces",
        ],
    );
    assert!(!ok, "a failing test saves nothing");
    assert!(
        format!("{out}{err}").contains("FAIL") || err.contains("connection test failed"),
        "{out}{err}"
    );

    let (ok, out, _) = run(dir.path(), &config, &["destinations", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["hook", "local"],
        "the file's destinations sync when a gateway starts"
    );
    assert!(
        !out.contains("hook-secret") && out.contains("****9z9z"),
        "{out}"
    );
    assert_eq!(list[1]["privacy_mode"], true);

    let (ok, _, err) = run(
        dir.path(),
        &config,
        &["destinations", "privacy", "local", "off"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &config,
        &["destinations", "update", "local", "--sampling-rate", "0.5"],
    );
    assert!(ok, "{err}");
    let (_, out, _) = run(dir.path(), &config, &["destinations", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            list[1]["privacy_mode"].clone(),
            list[1]["sampling_rate"].clone()
        ),
        (serde_json::json!(false), serde_json::json!(0.5))
    );

    let (ok, out, _) = run(dir.path(), &config, &["destinations", "test", "local"]);
    assert!(ok && out.contains("PASS local"), "{out}");
    let (ok, out, _) = run(dir.path(), &config, &["destinations", "test"]);
    assert!(!ok, "the webhook on port 1 fails");
    assert!(
        out.contains("PASS from-file") && out.contains("FAIL hook"),
        "{out}"
    );
    let (ok, out, _) = run(
        dir.path(),
        &config,
        &["destinations", "send-test-trace", "local"],
    );
    assert!(ok, "{out}");
    let line = std::fs::read_to_string(dir.path().join("data/local.jsonl")).unwrap();
    assert!(line.contains("gatecast-test"), "{line}");

    let (ok, _, err) = run(dir.path(), &config, &["destinations", "remove", "hook"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(dir.path(), &config, &["destinations", "remove", "hook"]);
    assert!(!ok && err.contains("not found"), "{err}");

    let (ok, key, err) = run(dir.path(), &config, &["keys", "create", "team-a"]);
    assert!(ok, "{err}");
    let key = key.trim();
    assert!(
        key.starts_with("gk_") && err.contains("only time"),
        "{key} {err}"
    );
    let (ok, out, _) = run(dir.path(), &config, &["keys", "list"]);
    assert!(
        ok && out.contains("team-a") && out.contains("active") && !out.contains(key),
        "{out}"
    );
    let (ok, _, _) = run(dir.path(), &config, &["keys", "revoke", "team-a"]);
    assert!(ok);
    let (_, out, _) = run(dir.path(), &config, &["keys", "list"]);
    assert!(out.contains("revoked"), "{out}");
}

#[test]
fn every_store_command_has_help_with_an_example() {
    for args in [
        vec!["destinations", "--help"],
        vec!["destinations", "add", "--help"],
        vec!["destinations", "update", "--help"],
        vec!["destinations", "remove", "--help"],
        vec!["destinations", "privacy", "--help"],
        vec!["destinations", "enable", "--help"],
        vec!["destinations", "disable", "--help"],
        vec!["destinations", "reset", "--help"],
        vec!["destinations", "test", "--help"],
        vec!["destinations", "send-test-trace", "--help"],
        vec!["destinations", "list", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["keys", "budget", "--help"],
        vec!["spend", "--help"],
        vec!["migrate", "--help"],
    ] {
        let out = gatecast().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{args:?} has no example:\n{text}");
    }
}

/// Every file and directory under `dir`, relative to it, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Relative paths in the config are relative to its directory: run from anywhere, the CLI
/// edits the database the config names, and creates nothing where it runs.
#[test]
fn the_cli_edits_the_configs_database_from_any_directory() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let conf_dir = home.path().join("conf");
    std::fs::create_dir(&conf_dir).unwrap();
    let config = conf_dir.join("gatecast.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite://data/cli.db\"\n\n[providers.m]\nkind = \"mock\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(home.path(), &config, &["migrate"]);
    assert!(ok, "{err}");
    assert!(
        conf_dir.join("data/cli.db").exists(),
        "the database is under the config's directory: {:?}",
        tree(home.path())
    );

    let (ok, out, err) = run(
        elsewhere.path(),
        &config,
        &[
            "destinations",
            "add",
            "hook",
            "--type",
            "webhook",
            "--url",
            "http://127.0.0.1:1/hook",
            "--skip-test",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(elsewhere.path(), &config, &["keys", "create", "team-a"]);
    assert!(ok, "{err}");
    assert_eq!(
        tree(elsewhere.path()),
        Vec::<String>::new(),
        "nothing is created where the CLI runs"
    );

    let (ok, out, err) = run(&conf_dir, &config, &["destinations", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "hook", "{out}");
    let (ok, out, _) = run(&conf_dir, &config, &["keys", "list"]);
    assert!(ok && out.contains("team-a"), "{out}");
}

/// On a database that does not exist, the store commands fail naming the path they looked
/// at and create nothing (no database, no directory, no secret key); `--create` or
/// `gatecast migrate` creates it.
#[test]
fn the_cli_on_a_missing_database_fails_naming_the_path_and_creates_nothing() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = home.path().join("gatecast.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite://data/missing.db\"\n\n[providers.m]\nkind = \"mock\"\n",
    )
    .unwrap();
    let db = home.path().join("data/missing.db");
    for args in [
        vec!["destinations", "list"],
        vec!["destinations", "privacy", "x", "on"],
        vec!["keys", "create", "team-a"],
        vec!["keys", "list"],
    ] {
        let (ok, out, err) = run(elsewhere.path(), &config, &args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(
            err.contains(&db.display().to_string()) && err.contains("gatecast migrate"),
            "{args:?}: {err}"
        );
        assert_eq!(tree(elsewhere.path()), Vec::<String>::new(), "{args:?}");
        assert_eq!(tree(home.path()), ["gatecast.toml"], "{args:?}");
    }

    let (ok, out, err) = run(
        elsewhere.path(),
        &config,
        &["destinations", "list", "--create"],
    );
    assert!(ok, "{out}{err}");
    assert!(db.exists(), "--create creates it: {:?}", tree(home.path()));
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());
}

/// `gatecast serve` run from another directory creates its database under the config's
/// directory at first start; the CLI, run from elsewhere again, changes a config-file
/// destination there and reports when the gateway applied it, and stops counting the gateway
/// once it has shut down.
#[test]
fn the_cli_reports_when_the_running_gateway_applied_a_change() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = home.path().join("gatecast.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite://data/gc.db\"\nwatch_interval_ms = 200\n\n[providers.m]\nkind = \"mock\"\n\n[[destinations]]\nname = \"local\"\ntype = \"file\"\npath = \"data/traces.jsonl\"\n",
    )
    .unwrap();
    let log = std::fs::File::create(home.path().join("serve.log")).unwrap();
    let mut serve = gatecast()
        .current_dir(elsewhere.path())
        .env_remove("GATECAST_SECRET_KEY")
        .env_remove("SENTRY_DSN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the gateway did not start: {}",
            std::fs::read_to_string(home.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        home.path().join("data/gc.db").exists(),
        "{:?}",
        tree(home.path())
    );
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());

    let (ok, out, err) = run(
        elsewhere.path(),
        &config,
        &["destinations", "privacy", "local", "on"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied by 1 running gateway(s)"), "{out}");

    // SIGTERM: a graceful stop removes the gateway's heartbeat.
    let term = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = serve.wait().unwrap();
    assert!(stopped.success(), "{stopped:?}");
    let (ok, out, err) = run(
        elsewhere.path(),
        &config,
        &["destinations", "privacy", "local", "reset"],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("no running gateway has applied it yet (none seen in the last 15s)"),
        "{out}"
    );
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());
}

/// A key's budget from the command line: set at creation, shown in the list, replaced,
/// cleared; bad values name the flag. `spend` on a store with none says so.
#[test]
fn keys_carry_budgets_and_spend_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatecast.toml");
    std::fs::write(&config, "[store]\nurl = \"sqlite://data/cli.db\"\n").unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &config,
        &[
            "keys",
            "create",
            "team-a",
            "--budget-usd",
            "50",
            "--budget-period",
            "day",
            "--create",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("with a budget of $50.00 a day"), "{err}");
    let (ok, out, _) = run(dir.path(), &config, &["keys", "list", "--json"]);
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        keys[0]["budget"],
        serde_json::json!({"usd": 50.0, "period": "day"})
    );
    let (ok, out, err) = run(
        dir.path(),
        &config,
        &["keys", "budget", "team-a", "--usd", "5", "--period", "week"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "key `team-a` now has a budget of $5.00 a week");
    let (_, out, _) = run(dir.path(), &config, &["keys", "list"]);
    assert!(out.contains("$5.00 a week"), "{out}");
    let (ok, _, err) = run(
        dir.path(),
        &config,
        &["keys", "budget", "team-a", "--usd=-1", "--period", "day"],
    );
    assert!(!ok);
    assert!(err.contains("--usd: must be a number of dollars"), "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &config,
        &["keys", "create", "team-b", "--budget-usd", "5"],
    );
    assert!(!ok);
    assert!(err.contains("--budget-period"), "{err}");
    let (ok, out, err) = run(
        dir.path(),
        &config,
        &["keys", "budget", "team-a", "--clear"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "key `team-a` has no budget now");
    let (ok, _, err) = run(
        dir.path(),
        &config,
        &["keys", "budget", "nobody", "--clear"],
    );
    assert!(!ok);
    assert!(err.contains("`nobody` not found"), "{err}");

    let (ok, out, err) = run(dir.path(), &config, &["spend"]);
    assert!(ok, "{err}");
    assert_eq!(out, "no spend recorded\n");
    let (ok, out, _) = run(
        dir.path(),
        &config,
        &["spend", "--json", "--since", "2026-05-01"],
    );
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"object": "list", "since": "2026-05-01", "by": null, "data": []})
    );
    let (ok, _, err) = run(dir.path(), &config, &["spend", "--since", "May"]);
    assert!(!ok);
    assert!(
        err.contains("--since: `May` is not a day as YYYY-MM-DD"),
        "{err}"
    );
}
