//! The plugins the bench compares, each a child process connecting to an NRI socket as an
//! external plugin with the same plugin index: `nodeguard serve`, and the do-nothing Go peer
//! that `scripts/testbed/go-nri-peer.sh` builds from `integration/benches/go-peer/main.go`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Environment variable naming the Go peer binary.
pub const GO_PEER_ENV: &str = "NODEGUARD_GO_PEER";

/// Both plugins print this line once registered and configured.
const REGISTERED: &str = "registered with the runtime";

/// The Go peer's binary and what it was built from (`BUILD_INFO`), or why there is none.
pub fn go_peer(testbed: &Path) -> std::result::Result<(PathBuf, String), String> {
    let bin = std::env::var_os(GO_PEER_ENV).map_or_else(
        || testbed.join("go-nri-peer").join("go-nri-peer"),
        PathBuf::from,
    );
    if !bin.is_file() {
        return Err(format!(
            "no Go peer at {}: run `sudo scripts/testbed/go-nri-peer.sh` (or set {GO_PEER_ENV})",
            bin.display()
        ));
    }
    let info = bin
        .parent()
        .map(|d| std::fs::read_to_string(d.join("BUILD_INFO")).unwrap_or_default())
        .unwrap_or_default();
    Ok((bin, info))
}

/// A plugin process, restarted per block, killed when dropped.
#[derive(Debug)]
pub struct Plugin {
    name: &'static str,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Plugin {
    /// A plugin run as `bin args`, logging to `log`; not started.
    pub fn new(name: &'static str, bin: PathBuf, args: Vec<String>, log: PathBuf) -> Plugin {
        Plugin {
            name,
            bin,
            args,
            log,
            child: None,
        }
    }

    fn registrations(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(REGISTERED)
            .count()
    }

    /// Starts the plugin (with `extra` arguments) and waits until it has registered.
    ///
    /// # Errors
    /// When it cannot start, exits, or does not register within 10 s.
    pub async fn start(&mut self, extra: &[String]) -> Result<()> {
        let before = self.registrations();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.registrations() <= before {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().transpose())
                .transpose()?
            {
                bail!(
                    "{} exited with {status}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not register; see {}", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Stops it: SIGTERM (the Go peer flushes its timings), SIGKILL after 2 s.
    ///
    /// # Errors
    /// When it cannot be signalled or waited for.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_err()
        {
            child.kill().await?;
        }
        Ok(())
    }

    /// Kills it (SIGKILL).
    ///
    /// # Errors
    /// When it cannot be killed.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }
}

/// The Go peer's per-call timings file: `<method> <event> <nanoseconds>` lines, as
/// (`Method` or `StateChange(EVENT)`, duration).
pub fn read_timings(path: &Path) -> Vec<(String, Duration)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let method = parts.next()?.rsplit('/').next()?.to_string();
            let event = parts.next()?;
            let nanos: u64 = parts.next()?.parse().ok()?;
            let call = if event == "-" {
                method
            } else {
                format!("{method}({event})")
            };
            Some((call, Duration::from_nanos(nanos)))
        })
        .collect()
}
