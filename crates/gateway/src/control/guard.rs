//! What destinations may reach (`[security]`). Every connection of every destination obeys
//! the host policy; destinations created at runtime (admin API, CLI) are held to more, since
//! whoever holds the admin token could otherwise point the gateway at any URL:
//!
//! - config-file destinations are the operator's own: their hosts are allowed even when
//!   `destination_hosts` does not list them, but link-local and metadata addresses stay
//!   refused unless listed, at load and at every connection;
//! - runtime destinations must target a listed host (when the list is not empty), checked on
//!   the URL and its current addresses before anything is saved or tested, and again at
//!   every connection; their files must lie inside `file_destination_dir`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatecast_store::Source;
use gatecast_telemetry::destinations::host_policy::SETTING;
use gatecast_telemetry::destinations::HostPolicy;
use gatecast_telemetry::probe::ProbeOptions;
use gatecast_telemetry::DestinationConfig;
use url::{Host, Url};

use super::bridge::FieldError;
use crate::config::Config;
use crate::error::GatewayError;

/// How long a save waits for a destination's name to resolve. A name that does not resolve
/// in time is left to the connection test and the connect-time check.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

const FILE_DIR_SETTING: &str = "security.file_destination_dir";

#[derive(Debug, Clone)]
pub struct Guard {
    /// Every connection of every destination: the list, and the config file's own hosts.
    connect: Arc<HostPolicy>,
    /// Runtime destinations: the list alone.
    runtime: Arc<HostPolicy>,
    file_dir: PathBuf,
}

impl Guard {
    /// Reads `[security]` and checks the config file's destinations against the refused
    /// ranges; errors name the config path.
    pub fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let runtime = HostPolicy::new(&config.security.destination_hosts)
            .map_err(|e| GatewayError::config(format!("{SETTING}[{}]", e.index), e.message))?;
        let file_urls: Vec<Url> = config
            .destinations
            .iter()
            .filter_map(|d| d.target().and_then(|t| t.url))
            .collect();
        let connect = runtime.clone().trusting(&file_urls);
        for (i, d) in config.destinations.iter().enumerate() {
            let Some(target) = d.target() else { continue };
            if let Some(url) = &target.url {
                connect.check_url(url).map_err(|e| {
                    GatewayError::config(
                        format!("destinations[{i}].{}", target.field),
                        e.to_string(),
                    )
                })?;
            }
        }
        Ok(Self {
            connect: Arc::new(connect),
            runtime: Arc::new(runtime),
            file_dir: config.file_destination_dir(),
        })
    }

    /// The policy every destination's connections obey.
    pub fn connect_policy(&self) -> HostPolicy {
        (*self.connect).clone()
    }

    /// How to probe a destination from `source`: runtime ones under the stricter policy
    /// their save was checked against.
    pub fn probe_options(&self, source: Source) -> ProbeOptions {
        ProbeOptions {
            hosts: match source {
                Source::File => self.connect.clone(),
                Source::Api => self.runtime.clone(),
            },
            ..ProbeOptions::default()
        }
    }

    /// Checks a destination created or changed at runtime before anything acts on it (the
    /// connection test, the store). `changed` says which fields to check: a field left as
    /// it was is not re-judged, so tightening the policy does not block unrelated edits
    /// (connections still obey it).
    pub async fn check_runtime(
        &self,
        config: &DestinationConfig,
        changed: impl Fn(&str) -> bool,
    ) -> Result<(), FieldError> {
        if let Some((field, path)) = config.kind.module().local_file() {
            if !changed(field) {
                return Ok(());
            }
            return confine(&self.file_dir, path).map_err(|message| FieldError {
                path: field.into(),
                message,
            });
        }
        let Some(target) = config.target() else {
            return Ok(());
        };
        if !changed(target.field) && !changed("type") {
            return Ok(());
        }
        let refused = |message: String| FieldError {
            path: target.field.to_owned(),
            message,
        };
        let Some(url) = target.url else {
            return Err(refused("not a valid URL".into()));
        };
        self.runtime
            .check_url(&url)
            .map_err(|e| refused(e.to_string()))?;
        let (Some(Host::Domain(name)), Some(port)) = (url.host(), url.port_or_known_default())
        else {
            return Ok(());
        };
        let lookup = tokio::net::lookup_host((name, port));
        // A name that does not resolve now is judged when it is connected to.
        if let Ok(Ok(found)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            self.runtime
                .filter(name, port, found.map(|a| a.ip()))
                .map_err(|e| refused(e.to_string()))?;
        }
        Ok(())
    }
}

/// A runtime file destination's path must lie inside `dir`: no `..`, not elsewhere, and not
/// out of it through a symbolic link. Relative paths are read as the file sink reads them,
/// against the working directory.
fn confine(dir: &Path, path: &Path) -> Result<(), String> {
    let shown = dir.display();
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "must not contain `..`; file destinations created at runtime stay inside \
             `{shown}` ({FILE_DIR_SETTING})"
        ));
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let dir_abs = lexical(&cwd.join(dir));
    let path_abs = lexical(&cwd.join(path));
    if path_abs == dir_abs || !path_abs.starts_with(&dir_abs) {
        return Err(format!(
            "`{}` is outside `{shown}`; file destinations created at runtime must be inside \
             it ({FILE_DIR_SETTING})",
            path.display()
        ));
    }
    // The deepest part of the path that exists must resolve inside the directory.
    let mut existing = Some(path_abs.as_path());
    while let Some(p) = existing {
        if !p.starts_with(&dir_abs) {
            return Ok(());
        }
        if p.symlink_metadata().is_ok() {
            break;
        }
        existing = p.parent();
    }
    let (Some(p), Ok(real_dir)) = (existing, dir_abs.canonicalize()) else {
        return Ok(());
    };
    match p.canonicalize() {
        Ok(real) if real.starts_with(&real_dir) => Ok(()),
        // A dangling link: where it would lead cannot be known in advance.
        _ => Err(format!(
            "`{}` leaves `{shown}` through a symbolic link ({FILE_DIR_SETTING})",
            path.display()
        )),
    }
}

/// `path` with `.` and `..` resolved by name, without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn runtime_files_stay_inside_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(confine(&dir, &dir.join("traces.jsonl")).is_ok());
        assert!(confine(&dir, &dir.join("new/sub/traces.jsonl")).is_ok());
        assert!(confine(&dir, &dir.join("./x.jsonl")).is_ok());
        let e = confine(&dir, &dir.join("../escape.jsonl")).unwrap_err();
        assert!(e.contains("must not contain `..`"), "{e}");
        let e = confine(&dir, Path::new("/etc/cron.d/x")).unwrap_err();
        assert!(
            e.contains("is outside") && e.contains(FILE_DIR_SETTING),
            "{e}"
        );
        assert!(
            confine(&dir, &dir).is_err(),
            "the directory itself is no file"
        );
        assert!(confine(&dir, &root.path().join("data2/x")).is_err());
        // A directory that does not exist yet is fine: nothing in it can be a link.
        assert!(confine(&root.path().join("later"), &root.path().join("later/x")).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_out_of_the_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), dir.join("dangling")).unwrap();
        std::os::unix::fs::symlink(&dir, root.path().join("alias")).unwrap();
        let e = confine(&dir, &dir.join("out/x.jsonl")).unwrap_err();
        assert!(e.contains("through a symbolic link"), "{e}");
        assert!(confine(&dir, &dir.join("dangling")).is_err());
        // A directory reached through a link is the same directory.
        let alias = root.path().join("alias");
        assert!(confine(&alias, &alias.join("x.jsonl")).is_ok());
    }

    fn config(text: &str) -> Result<Config, String> {
        Config::parse(text, |_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn config_errors_name_the_entry_and_the_destination_field() {
        let e =
            config("[security]\ndestination_hosts = [\"ok.example\", \"http://x\"]").unwrap_err();
        assert!(e.starts_with("security.destination_hosts[1]: "), "{e}");
        let e = config(
            "[[destinations]]\nname = \"m\"\ntype = \"otlp\"\nendpoint = \"http://169.254.169.254/v1/traces\"",
        )
        .unwrap_err();
        assert!(
            e.starts_with("destinations[0].endpoint: 169.254.169.254 is a cloud metadata address"),
            "{e}"
        );
        let e = config(
            "[[destinations]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"file:///etc/passwd\"",
        )
        .unwrap_err();
        assert!(
            e.contains("url: the scheme must be http or https, not `file`"),
            "{e}"
        );
        let e = config("[security]\nfile_destination_dir = \"\"").unwrap_err();
        assert!(e.starts_with("security.file_destination_dir"), "{e}");
        // Listed, the address is the operator's choice.
        assert!(config(
            "[security]\ndestination_hosts = [\"169.254.169.254\"]\n[[destinations]]\nname = \"m\"\ntype = \"otlp\"\nendpoint = \"http://169.254.169.254/v1/traces\"",
        )
        .is_ok());
    }

    #[tokio::test]
    async fn config_file_hosts_are_trusted_and_runtime_ones_must_be_listed() {
        let c = config(
            "[security]\ndestination_hosts = [\"127.0.0.1:4318\"]\n[[destinations]]\nname = \"s\"\ntype = \"otlp\"\nendpoint = \"http://10.9.9.9:4318/v1/traces\"",
        )
        .unwrap();
        let g = Guard::from_config(&c).unwrap();
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(g
            .connect
            .check_url(&url("http://10.9.9.9:4318/v1/traces"))
            .is_ok());
        assert!(g
            .runtime
            .check_url(&url("http://10.9.9.9:4318/v1/traces"))
            .is_err());
        use gatecast_telemetry::destinations::OtlpConfig;
        let mut d = c.destinations[0].clone();
        let e = g.check_runtime(&d, |_| true).await.unwrap_err();
        assert_eq!(e.path, "endpoint");
        assert!(
            e.message.contains("is not in security.destination_hosts"),
            "{e}"
        );
        assert!(
            g.check_runtime(&d, |f| f == "headers").await.is_ok(),
            "unchanged"
        );
        d.kind = OtlpConfig::new("http://127.0.0.1:4318/v1/traces").into();
        assert!(g.check_runtime(&d, |_| true).await.is_ok());
        // A name is judged by what it resolves to now.
        d.kind = OtlpConfig::new("http://localhost:4318/v1/traces").into();
        assert!(g.check_runtime(&d, |_| true).await.is_ok());
        d.kind = OtlpConfig::new("http://localhost:4317/v1/traces").into();
        assert!(g.check_runtime(&d, |_| true).await.is_err());
    }
}
