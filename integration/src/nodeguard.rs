//! The daemon under test: `nodeguard serve` as a child process wired to one [`Containerd`].

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::Containerd;

/// Environment variable naming the `nodeguard` binary to test.
pub const NODEGUARD_BIN_ENV: &str = "NODEGUARD_BIN";

/// The `nodeguard` binary: `$NODEGUARD_BIN`, else the one Cargo built next to this test
/// binary (`target/<profile>/nodeguard`).
///
/// # Errors
/// When neither exists.
pub fn binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var(NODEGUARD_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("nodeguard"))
        .collect();
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no nodeguard binary at {}: build it first (`cargo build -p nodeguard`) or set {NODEGUARD_BIN_ENV}",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

/// A running `nodeguard serve`, killed when dropped.
#[derive(Debug)]
pub struct Nodeguard {
    child: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
    starts: usize,
}

impl Nodeguard {
    /// Writes `policy` next to `containerd`'s state and starts `nodeguard serve` against its
    /// sockets; returns once nodeguard has registered.
    ///
    /// # Errors
    /// When the binary is missing or nodeguard does not register within 10 s.
    pub async fn start(containerd: &Containerd, policy: &str) -> Result<Nodeguard> {
        let dir = containerd.dir().join("nodeguard");
        std::fs::create_dir_all(&dir)?;
        let policy_path = dir.join("policy.yaml");
        std::fs::write(&policy_path, policy)?;
        let args = vec![
            "serve".to_string(),
            "--policy".into(),
            policy_path.display().to_string(),
            "--nri-socket".into(),
            containerd.nri_socket().display().to_string(),
            "--containerd-socket".into(),
            containerd.socket().display().to_string(),
            "--audit-log".into(),
            dir.join("audit.jsonl").display().to_string(),
            "--node-name".into(),
            "e2e-node".into(),
        ];
        let mut nodeguard = Nodeguard {
            child: None,
            dir,
            args,
            starts: 0,
        };
        nodeguard.spawn().await?;
        Ok(nodeguard)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let before = self.registrations();
        let child = Command::new(binary()?)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start nodeguard")?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_registered(before + 1, Duration::from_secs(10))
            .await
    }

    /// Waits until nodeguard's log shows `count` registrations in all.
    ///
    /// # Errors
    /// On timeout, or when nodeguard exited.
    pub async fn wait_registered(&mut self, count: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.registrations() >= count {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("nodeguard exited with {status}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "nodeguard did not register within {timeout:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many times the log says nodeguard registered.
    pub fn registrations(&self) -> usize {
        self.log().matches("registered with the runtime").count()
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The daemon's resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills nodeguard (SIGKILL, as a crash would).
    ///
    /// # Errors
    /// When it cannot be killed.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Kills nodeguard and starts it again with the same arguments.
    ///
    /// # Errors
    /// When it does not register again.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn().await
    }

    /// nodeguard's log (standard output and error, all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nodeguard.log")
    }

    /// The audit log's records.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
