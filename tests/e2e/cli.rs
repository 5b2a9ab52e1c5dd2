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
    for cmd in ["serve", "check-config"] {
        assert!(text.contains(cmd), "{text}");
    }
}
