//! The processes under test: finding or building the binaries, starting them (optionally
//! pinned to cores), waiting until they answer, reading their memory, and stopping them.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::client::Conn;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// What ships: fat LTO, one codegen unit (`[profile.dist]`).
    Dist,
    /// The quick optimised build (`cargo build --release`).
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Dist => "dist",
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Binaries {
    pub gateway: Option<PathBuf>,
    pub mock: PathBuf,
}

/// Where cargo puts this workspace's artifacts, honouring `CARGO_TARGET_DIR`.
fn cargo_target_dir() -> Result<(PathBuf, PathBuf)> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .context("running `cargo metadata`")?;
    if !out.status.success() {
        bail!("`cargo metadata` failed");
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `cargo metadata`")?;
    let field = |k: &str| {
        meta[k]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("`cargo metadata` has no {k}"))
    };
    Ok((field("workspace_root")?, field("target_directory")?))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Uses the binaries given; builds whatever is missing with cargo, in `profile`.
/// `need_gateway` is false under `--target`, where another vendor's gateway is measured.
pub fn locate_or_build(
    gateway: Option<PathBuf>,
    mock: Option<PathBuf>,
    profile: Profile,
    need_gateway: bool,
) -> Result<Binaries> {
    let mock = mock.or_else(|| {
        // A gateway given by path usually has its mock right beside it.
        let beside = gateway.as_ref()?.with_file_name("gatecast-mock");
        beside.is_file().then_some(beside)
    });
    let mut packages = Vec::new();
    if need_gateway && gateway.is_none() {
        packages.push("gatecast");
    }
    if mock.is_none() {
        packages.push("gatecast-mock");
    }
    if packages.is_empty() {
        return Ok(Binaries {
            gateway: gateway.filter(|_| need_gateway),
            mock: mock.ok_or_else(|| anyhow!("no mock binary"))?,
        });
    }
    let (root, target) = cargo_target_dir()?;
    let mut cmd = Command::new(cargo());
    cmd.arg("build").current_dir(&root);
    match profile {
        Profile::Dist => {
            cmd.args(["--profile", "dist"]);
        }
        Profile::Release => {
            cmd.arg("--release");
        }
        Profile::Debug => {}
    }
    for p in &packages {
        cmd.args(["-p", p]);
    }
    eprintln!(
        "building {} ({} profile)...",
        packages.join(", "),
        profile.dir()
    );
    let status = cmd.status().context("running `cargo build`")?;
    if !status.success() {
        bail!("`cargo build` of {} failed", packages.join(", "));
    }
    let dir = target.join(profile.dir());
    let gateway = if need_gateway {
        Some(gateway.unwrap_or_else(|| dir.join("gatecast")))
    } else {
        None
    };
    Ok(Binaries {
        gateway,
        mock: mock.unwrap_or_else(|| dir.join("gatecast-mock")),
    })
}

/// Asks the kernel for a free port. The listener is closed before the child binds it, a
/// race that is harmless on a machine running nothing else.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Pins the calling thread, and so every thread it starts afterwards, to `cpus`.
pub fn pin_self(cpus: &str) -> Result<()> {
    let pid = std::process::id().to_string();
    let status = Command::new("taskset")
        .args(["-cp", cpus, &pid])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -cp {cpus} {pid} failed");
    }
    Ok(())
}

/// A child process that is killed when dropped, so no error path leaves servers behind.
pub struct Proc {
    pub name: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Starts `program args`, under `taskset -c cpus` when pinned (taskset execs, so the pid
    /// is the program's own), then waits until `GET /health` answers 200.
    pub async fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        addr: SocketAddr,
        pin: Option<&str>,
        log_dir: &Path,
    ) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = match pin {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut proc = Self {
            name: name.to_owned(),
            addr,
            log,
            child,
        };
        proc.wait_ready().await?;
        Ok(proc)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!(
                    "{} exited with {status} before it was ready; its output:\n{}",
                    self.name,
                    tail(&log, 30)
                );
            }
            if let Ok(mut conn) = Conn::connect(self.addr).await {
                if let Ok(200) = conn.get(&self.addr.to_string(), "/health").await {
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} did not answer GET /health on {} within {READY_TIMEOUT:?}; see {}",
                    self.name,
                    self.addr,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident set size from `/proc/PID/status`, in kB.
    pub fn rss_kb(&self) -> Result<u64> {
        rss_kb(self.pid())
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS in {path}"))
}

/// User plus system CPU time a process has used so far, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| anyhow!("unreadable {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime: fields 14 and 15, counted after the `(comm)` field, which may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`, asked once; 100 is what every mainstream Linux build uses.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU used by a set of processes over an interval.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<f64>,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start: pids
                .iter()
                .map(|&p| cpu_seconds(p).unwrap_or(0.0))
                .collect(),
        }
    }

    /// Seconds of CPU each process used since `start`, in the order given.
    pub fn finish(&self) -> Vec<f64> {
        self.pids
            .iter()
            .zip(&self.start)
            .map(|(&p, &s)| (cpu_seconds(p).unwrap_or(s) - s).max(0.0))
            .collect()
    }
}

/// Client sockets still ESTABLISHED towards a local port, from `/proc/net/tcp`: whether the
/// gateway really gave up on the connections of exports that timed out.
pub fn established_to(port: u16) -> Result<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    Ok(count_established_to(&table, port))
}

fn count_established_to(table: &str, port: u16) -> u64 {
    const ESTABLISHED: &str = "01";
    let remote_port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == ESTABLISHED && remote_port(f[2]) == Some(port)
        })
        .count() as u64
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Which cores each process gets under `--pin`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PinLayout {
    pub bench: String,
    pub mock: String,
    pub gateway: String,
}

impl PinLayout {
    /// The gateway gets a core of its own; the load generator and the mock share the rest.
    /// On two cores: bench and mock on CPU 0, gateway on CPU 1. The direct baseline then runs
    /// on one core while the gateway path has two, which is why pinning is not the default
    /// for the throughput figures.
    pub fn for_cores(cores: usize) -> Self {
        match cores {
            0 | 1 => Self {
                bench: "0".into(),
                mock: "0".into(),
                gateway: "0".into(),
            },
            2 => Self {
                bench: "0".into(),
                mock: "0".into(),
                gateway: "1".into(),
            },
            3 => Self {
                bench: "0".into(),
                mock: "1".into(),
                gateway: "2".into(),
            },
            n => Self {
                bench: "0".into(),
                mock: "1".into(),
                gateway: format!("2-{}", n - 1),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tgatecast\nVmPeak:\t  12345 kB\nVmRSS:\t    8216 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(8216));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kb(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn reads_cpu_ticks_even_with_spaces_in_the_name() {
        let stat = "4242 (tokio rt) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 36 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(286));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let before = cpu_seconds(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(std::process::id()).unwrap() >= before);
    }

    #[test]
    fn counts_established_sockets_by_remote_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:A001 0100007F:1F90 01 00000000:00000000\n\
   1: 0100007F:A002 0100007F:1F90 01 00000000:00000000\n\
   2: 0100007F:A003 0100007F:1F90 06 00000000:00000000\n\
   3: 0100007F:1F90 0100007F:A001 01 00000000:00000000\n";
        // Port 0x1F90 = 8080: two live client sockets, one in TIME_WAIT, one server side.
        assert_eq!(count_established_to(table, 8080), 2);
        assert_eq!(count_established_to(table, 9), 0);
        assert!(established_to(1).is_ok());
    }

    #[test]
    fn pin_layouts() {
        let two = PinLayout::for_cores(2);
        assert_eq!(
            (two.bench.as_str(), two.mock.as_str(), two.gateway.as_str()),
            ("0", "0", "1")
        );
        assert_eq!(PinLayout::for_cores(8).gateway, "2-7");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
