//! The gateway configs the scenarios run: one `openai` provider pointing at the mock (and an
//! `anthropic` one at its root when a run measures that wire), and zero or two destinations.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// The model requests name through the gateway; the direct baseline sends the bare name.
pub const GATEWAY_MODEL: &str = "up/gpt-4o-mini";
pub const DIRECT_MODEL: &str = "gpt-4o-mini";
/// The same for the Anthropic provider.
pub const GATEWAY_ANTHROPIC_MODEL: &str = "an/claude-sonnet-4-5";
pub const DIRECT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// Which two destinations "broadcast on" means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DestinationSet {
    /// An OTLP/HTTP protobuf destination (the in-process sink, private) plus a file (full
    /// content): the configuration the targets are stated for.
    #[value(name = "otlp+file")]
    #[serde(rename = "otlp+file")]
    OtlpFile,
    /// Two files, one private: for gateways built before the OTLP destination existed.
    #[value(name = "file+file")]
    #[serde(rename = "file+file")]
    FileFile,
    /// No destinations even where the scenario asks for two.
    #[value(name = "none")]
    #[serde(rename = "none")]
    None,
}

/// Where the gateway runs its batch work (`telemetry.delivery_priority`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryPriority {
    Idle,
    Normal,
}

impl DeliveryPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryPriority::Idle => "idle",
            DeliveryPriority::Normal => "normal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

/// `spool_mode` of every destination of the gateways the bench starts, each with a spool in
/// the instance's directory: `always` writes and deletes a file per batch, so comparing it
/// with `on_failure` (which writes nothing while the destinations are healthy) measures that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolMode {
    #[value(name = "on_failure")]
    OnFailure,
    Always,
}

impl SpoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SpoolMode::OnFailure => "on_failure",
            SpoolMode::Always => "always",
        }
    }
}

/// What one gateway instance is started with.
#[derive(Clone, Debug)]
pub struct GatewaySetup<'a> {
    pub mock: SocketAddr,
    /// `None`: no destinations at all.
    pub destinations: Option<DestinationSet>,
    /// Also an `anthropic` provider (`an`) at the mock's root. Off unless a run measures that
    /// wire, so a build from before the Anthropic dialect still starts with the config.
    pub anthropic: bool,
    /// The OTLP sink's `/v1/traces` URL, for `otlp+file`.
    pub otlp_endpoint: Option<String>,
    pub compression: Compression,
    /// `server.busy_poll_us`; 0 leaves it out.
    pub busy_poll_us: u64,
    /// `telemetry.delivery_priority`; `None` leaves the gateway's default.
    pub delivery_priority: Option<DeliveryPriority>,
    /// A spool for every destination, in this mode; `None`: no spool.
    pub spool_mode: Option<SpoolMode>,
    /// Where file destinations write (and the spool, when there is one).
    pub dir: &'a Path,
}

/// The SQLite file inside each instance's directory.
pub const STORE_FILE: &str = "gatecast.db";

pub fn render(setup: &GatewaySetup<'_>) -> String {
    let mut s = String::from("# Written by gatecast-bench for one run; safe to delete.\n\n");
    if setup.busy_poll_us > 0 {
        let _ = writeln!(s, "[server]\nbusy_poll_us = {}\n", setup.busy_poll_us);
    }
    // Paths go in absolute: the gateway reads relative ones against the config's directory.
    let dir = std::path::absolute(setup.dir).unwrap_or_else(|_| setup.dir.to_path_buf());
    // Each instance gets its own store. Gateways sharing the default store are replicas: the
    // one started with destinations would hand them to the one meant to have none.
    let _ = writeln!(
        s,
        "[store]\nurl = {}\n",
        toml_string(&format!(
            "sqlite://{}",
            dir.join(STORE_FILE).to_string_lossy()
        ))
    );
    let _ = writeln!(s, "[telemetry]\nservice_name = \"gatecast-bench\"");
    if let Some(p) = setup.delivery_priority {
        let _ = writeln!(s, "delivery_priority = \"{}\"", p.as_str());
    }
    let _ = writeln!(
        s,
        "\n[providers.up]\nkind = \"openai\"\nbase_url = \"http://{}/v1\"\n",
        setup.mock
    );
    if setup.anthropic {
        let _ = writeln!(
            s,
            "[providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"{}\"\n\
             default_max_tokens = {}\n",
            setup.mock,
            crate::api_path::ANTHROPIC_KEY,
            crate::api_path::MAX_TOKENS
        );
    }
    let spool = setup.spool_mode.map(|mode| {
        format!(
            "spool_dir = {}\nspool_mode = \"{}\"\n",
            toml_string(&dir.join("spool").to_string_lossy()),
            mode.as_str()
        )
    });
    let spool = spool.as_deref().unwrap_or_default();
    let file = |s: &mut String, name: &str, private: bool| {
        let path = dir.join(format!("{name}.jsonl"));
        let _ = writeln!(
            s,
            "[[destinations]]\nname = \"{name}\"\ntype = \"file\"\npath = {}\nprivacy_mode = {private}\n{spool}",
            toml_string(&path.to_string_lossy())
        );
    };
    match setup.destinations {
        None | Some(DestinationSet::None) => {}
        Some(DestinationSet::OtlpFile) => {
            let endpoint = setup.otlp_endpoint.as_deref().unwrap_or_default();
            let _ = writeln!(
                s,
                "[[destinations]]\nname = \"otlp-sink\"\ntype = \"otlp\"\nendpoint = {}\n\
                 protocol = \"http/protobuf\"\ncompression = \"{}\"\nprivacy_mode = true\n{spool}",
                toml_string(endpoint),
                setup.compression.as_str()
            );
            file(&mut s, "traces-full", false);
        }
        Some(DestinationSet::FileFile) => {
            file(&mut s, "traces-private", true);
            file(&mut s, "traces-full", false);
        }
    }
    s
}

/// A TOML basic string. The gateway expands `${VAR}` in every string, so a literal `${` in a
/// path is written `$${`.
fn toml_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.replace("${", "$${").chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn setup(d: Option<DestinationSet>) -> String {
        render(&GatewaySetup {
            mock: "127.0.0.1:9".parse().unwrap(),
            destinations: d,
            anthropic: false,
            otlp_endpoint: Some("http://127.0.0.1:7/v1/traces".into()),
            compression: Compression::Gzip,
            busy_poll_us: 0,
            delivery_priority: None,
            spool_mode: None,
            dir: Path::new("/tmp/b"),
        })
    }

    #[test]
    fn renders_valid_toml_for_every_set() {
        for d in [
            None,
            Some(DestinationSet::None),
            Some(DestinationSet::OtlpFile),
            Some(DestinationSet::FileFile),
        ] {
            let text = setup(d);
            let v: toml::Value = toml::from_str(&text).unwrap();
            assert_eq!(
                v["providers"]["up"]["base_url"].as_str(),
                Some("http://127.0.0.1:9/v1")
            );
            let dests = v.get("destinations").and_then(|d| d.as_array());
            let n = dests.map_or(0, Vec::len);
            match d {
                Some(DestinationSet::OtlpFile) | Some(DestinationSet::FileFile) => {
                    assert_eq!(n, 2);
                    let dests = dests.unwrap();
                    // One private, one not.
                    let private: Vec<bool> = dests
                        .iter()
                        .map(|d| d["privacy_mode"].as_bool().unwrap())
                        .collect();
                    assert!(private.contains(&true) && private.contains(&false));
                }
                _ => assert_eq!(n, 0),
            }
        }
        let otlp: toml::Value = toml::from_str(&setup(Some(DestinationSet::OtlpFile))).unwrap();
        let d = &otlp["destinations"][0];
        assert_eq!(d["type"].as_str(), Some("otlp"));
        assert_eq!(d["endpoint"].as_str(), Some("http://127.0.0.1:7/v1/traces"));
        assert_eq!(d["compression"].as_str(), Some("gzip"));
    }

    #[test]
    fn busy_polling_goes_in_the_server_section_only_when_asked_for() {
        let off: toml::Value = toml::from_str(&setup(None)).unwrap();
        assert!(off.get("server").is_none());
        let on = render(&GatewaySetup {
            busy_poll_us: 250,
            ..GatewaySetup {
                mock: "127.0.0.1:9".parse().unwrap(),
                destinations: None,
                anthropic: false,
                otlp_endpoint: None,
                compression: Compression::None,
                busy_poll_us: 0,
                delivery_priority: None,
                spool_mode: None,
                dir: Path::new("/tmp/b"),
            }
        });
        let on: toml::Value = toml::from_str(&on).unwrap();
        assert_eq!(on["server"]["busy_poll_us"].as_integer(), Some(250));
    }

    #[test]
    fn delivery_priority_is_written_only_when_chosen() {
        let default: toml::Value = toml::from_str(&setup(None)).unwrap();
        assert!(default["telemetry"].get("delivery_priority").is_none());
        let idle = render(&GatewaySetup {
            mock: "127.0.0.1:9".parse().unwrap(),
            destinations: None,
            anthropic: false,
            otlp_endpoint: None,
            compression: Compression::None,
            busy_poll_us: 0,
            delivery_priority: Some(DeliveryPriority::Idle),
            spool_mode: None,
            dir: Path::new("/tmp/b"),
        });
        let idle: toml::Value = toml::from_str(&idle).unwrap();
        assert_eq!(
            idle["telemetry"]["delivery_priority"].as_str(),
            Some("idle")
        );
        assert_eq!(idle["providers"]["up"]["kind"].as_str(), Some("openai"));
    }

    #[test]
    fn a_spool_mode_gives_every_destination_a_spool_in_the_instance_directory() {
        let none: toml::Value = toml::from_str(&setup(Some(DestinationSet::OtlpFile))).unwrap();
        for d in none["destinations"].as_array().unwrap() {
            assert!(d.get("spool_dir").is_none() && d.get("spool_mode").is_none());
        }
        for mode in [SpoolMode::Always, SpoolMode::OnFailure] {
            let text = render(&GatewaySetup {
                mock: "127.0.0.1:9".parse().unwrap(),
                destinations: Some(DestinationSet::OtlpFile),
                anthropic: false,
                otlp_endpoint: Some("http://127.0.0.1:7/v1/traces".into()),
                compression: Compression::Gzip,
                busy_poll_us: 0,
                delivery_priority: None,
                spool_mode: Some(mode),
                dir: Path::new("/tmp/b"),
            });
            let v: toml::Value = toml::from_str(&text).unwrap();
            let dests = v["destinations"].as_array().unwrap();
            assert_eq!(dests.len(), 2);
            for d in dests {
                assert_eq!(d["spool_dir"].as_str(), Some("/tmp/b/spool"));
                assert_eq!(d["spool_mode"].as_str(), Some(mode.as_str()));
            }
        }
    }

    #[test]
    fn every_instance_has_its_own_store_in_its_directory() {
        let v: toml::Value = toml::from_str(&setup(Some(DestinationSet::OtlpFile))).unwrap();
        assert_eq!(
            v["store"]["url"].as_str(),
            Some("sqlite:///tmp/b/gatecast.db")
        );
    }

    #[test]
    fn paths_are_absolute_whatever_the_work_directory() {
        let text = render(&GatewaySetup {
            mock: "127.0.0.1:9".parse().unwrap(),
            destinations: Some(DestinationSet::OtlpFile),
            anthropic: false,
            otlp_endpoint: None,
            compression: Compression::None,
            busy_poll_us: 0,
            delivery_priority: None,
            spool_mode: Some(SpoolMode::Always),
            dir: Path::new("target/bench/work/x"),
        });
        let v: toml::Value = toml::from_str(&text).unwrap();
        let url = v["store"]["url"].as_str().unwrap();
        let file = url.strip_prefix("sqlite://").unwrap();
        assert!(Path::new(file).is_absolute(), "{url}");
        assert!(file.ends_with("target/bench/work/x/gatecast.db"), "{url}");
        let paths: Vec<&str> = v["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d.get("path").and_then(toml::Value::as_str))
            .collect();
        assert!(!paths.is_empty());
        for path in paths {
            assert!(Path::new(path).is_absolute(), "{path}");
        }
        for d in v["destinations"].as_array().unwrap() {
            let spool = d["spool_dir"].as_str().unwrap();
            assert!(Path::new(spool).is_absolute(), "{spool}");
        }
    }

    #[test]
    fn the_anthropic_provider_is_written_only_when_a_run_measures_its_wire() {
        let without: toml::Value = toml::from_str(&setup(None)).unwrap();
        assert!(without["providers"].get("an").is_none());
        let with = render(&GatewaySetup {
            mock: "127.0.0.1:9".parse().unwrap(),
            destinations: None,
            anthropic: true,
            otlp_endpoint: None,
            compression: Compression::None,
            busy_poll_us: 0,
            delivery_priority: None,
            spool_mode: None,
            dir: Path::new("/tmp/b"),
        });
        let with: toml::Value = toml::from_str(&with).unwrap();
        let an = &with["providers"]["an"];
        assert_eq!(an["kind"].as_str(), Some("anthropic"));
        // The root, as Anthropic's SDKs take it: the gateway appends /v1/messages.
        assert_eq!(an["base_url"].as_str(), Some("http://127.0.0.1:9"));
        assert_eq!(
            an["default_max_tokens"].as_integer(),
            Some(crate::api_path::MAX_TOKENS as i64)
        );
        assert_eq!(
            GATEWAY_ANTHROPIC_MODEL.strip_prefix("an/"),
            Some(DIRECT_ANTHROPIC_MODEL)
        );
        assert_eq!(with["providers"]["up"]["kind"].as_str(), Some("openai"));
    }

    #[test]
    fn escapes_strings() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("/x/${HOME}"), r#""/x/$${HOME}""#);
    }
}
