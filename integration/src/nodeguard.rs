//! The daemon under test: `nodeguard serve` as a child process wired to one [`Containerd`].
//!
//! Everything it writes (policy, audit log, compliance report, state file, its own log) lives
//! in the instance folder of that containerd, under `nodeguard/`: a test never touches
//! `/var/lib/nodeguard` or any other path of the machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::Containerd;
use crate::http::{self, Metrics, Response};

/// Environment variable naming the `nodeguard` binary to test.
pub const NODEGUARD_BIN_ENV: &str = "NODEGUARD_BIN";

/// How long nodeguard may take to register after it starts.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The `nodeguard serve` arguments that put the files it keeps across restarts at the given
/// paths: the compliance report and the state file (the ids of the running containers).
/// Their defaults are under `/var/lib/nodeguard`, which a test must never touch: every
/// `nodeguard serve` a test starts passes these.
pub fn state_args(report_file: &Path, state_file: &Path) -> Vec<String> {
    vec![
        "--report-file".to_string(),
        report_file.display().to_string(),
        "--state-file".to_string(),
        state_file.display().to_string(),
    ]
}

/// What `--policy` names.
#[derive(Debug, Clone)]
enum PolicySource {
    /// Policy text, written to `<instance>/nodeguard/policy.yaml`.
    Text(String),
    /// A directory of policy files, passed as it is (nodeguard only reads it).
    Dir(PathBuf),
}

/// Options for a [`Nodeguard`]; see [`Nodeguard::builder`].
#[derive(Debug, Clone)]
pub struct NodeguardBuilder {
    dir: PathBuf,
    nri_socket: PathBuf,
    containerd_socket: PathBuf,
    policy: PolicySource,
    audit_log: PathBuf,
    report_file: PathBuf,
    metrics: bool,
    extra: Vec<String>,
    wait_registered: bool,
}

impl NodeguardBuilder {
    /// Where the audit log goes (default `<instance>/nodeguard/audit.jsonl`). Its folder is
    /// created.
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_log = path.into();
        self
    }

    /// Where the compliance report goes (default `<instance>/nodeguard/report.json`).
    pub fn report_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.report_file = path.into();
        self
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on a free loopback port
    /// (see [`Nodeguard::get`]).
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Adds arguments to `nodeguard serve` (e.g. `["--reload-interval", "1s"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Returns as soon as the process runs, without waiting for it to register (for a
    /// containerd that is not running yet). Default: wait up to 10 s for the registration.
    pub fn no_wait(mut self) -> Self {
        self.wait_registered = false;
        self
    }

    /// Writes the policy and starts `nodeguard serve`.
    ///
    /// # Errors
    /// When the binary is missing, nodeguard exits, or (unless [`NodeguardBuilder::no_wait`])
    /// it does not register within 10 s.
    pub async fn start(self) -> Result<Nodeguard> {
        std::fs::create_dir_all(&self.dir)?;
        for file in [&self.audit_log, &self.report_file] {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let policy_path = match self.policy {
            PolicySource::Text(text) => {
                let path = self.dir.join("policy.yaml");
                std::fs::write(&path, text)?;
                path
            }
            PolicySource::Dir(dir) => dir,
        };
        let metrics_addr = if self.metrics {
            Some(http::free_loopback_addr()?)
        } else {
            None
        };
        let mut args = vec![
            "serve".to_string(),
            "--policy".into(),
            policy_path.display().to_string(),
            "--nri-socket".into(),
            self.nri_socket.display().to_string(),
            "--containerd-socket".into(),
            self.containerd_socket.display().to_string(),
            "--audit-log".into(),
            self.audit_log.display().to_string(),
            "--node-name".into(),
            "e2e-node".into(),
        ];
        args.extend(state_args(
            &self.report_file,
            &self.dir.join("containers.json"),
        ));
        if let Some(addr) = metrics_addr {
            args.extend(["--metrics-addr".to_string(), addr.to_string()]);
        }
        args.extend(self.extra);
        let mut nodeguard = Nodeguard {
            child: None,
            dir: self.dir,
            policy_path,
            audit_log: self.audit_log,
            report_file: self.report_file,
            metrics_addr,
            args,
            starts: 0,
        };
        nodeguard.spawn(self.wait_registered).await?;
        Ok(nodeguard)
    }
}

/// A running `nodeguard serve`, killed when dropped.
#[derive(Debug)]
pub struct Nodeguard {
    child: Option<Child>,
    dir: PathBuf,
    policy_path: PathBuf,
    audit_log: PathBuf,
    report_file: PathBuf,
    metrics_addr: Option<SocketAddr>,
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
        Nodeguard::builder(containerd, policy).start().await
    }

    /// Options for a nodeguard serving `containerd` with `policy`: its files go to
    /// `<instance>/nodeguard/`.
    pub fn builder(containerd: &Containerd, policy: &str) -> NodeguardBuilder {
        let dir = containerd.dir().join("nodeguard");
        NodeguardBuilder {
            audit_log: dir.join("audit.jsonl"),
            report_file: dir.join("report.json"),
            nri_socket: containerd.nri_socket(),
            containerd_socket: containerd.socket(),
            policy: PolicySource::Text(policy.to_owned()),
            metrics: false,
            extra: Vec::new(),
            wait_registered: true,
            dir,
        }
    }

    /// Options for a nodeguard serving `containerd` with the policy files in `dir`
    /// (`--policy <dir>`, as a mounted ConfigMap is served). nodeguard only reads them; its
    /// other files go to `<instance>/nodeguard/`.
    pub fn builder_with_policy_dir(
        containerd: &Containerd,
        dir: impl Into<PathBuf>,
    ) -> NodeguardBuilder {
        NodeguardBuilder {
            policy: PolicySource::Dir(dir.into()),
            ..Nodeguard::builder(containerd, "")
        }
    }

    async fn spawn(&mut self, wait_registered: bool) -> Result<()> {
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
        if wait_registered {
            self.wait_registered(before + 1, REGISTRATION_TIMEOUT)
                .await?;
        }
        Ok(())
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

    /// Kills nodeguard (if it runs) and starts it again with the same arguments, report file
    /// and audit log; returns once it has registered again.
    ///
    /// # Errors
    /// When it does not register again.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn(true).await
    }

    /// Sends SIGHUP: nodeguard re-reads its policy now.
    ///
    /// # Errors
    /// When nodeguard is not running.
    pub fn sighup(&self) -> Result<()> {
        let pid = self.pid().context("nodeguard is not running")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).context("sending SIGHUP to nodeguard")?;
        Ok(())
    }

    /// The policy file, or directory, nodeguard reads (and re-reads: see `--reload-interval`).
    pub fn policy_path(&self) -> &Path {
        &self.policy_path
    }

    /// Replaces the policy file atomically (a new file renamed over it), as a ConfigMap
    /// update does: a reload never reads half a file.
    ///
    /// # Errors
    /// When the file cannot be written, or the policy is a directory
    /// ([`Nodeguard::builder_with_policy_dir`]).
    pub fn write_policy(&self, text: &str) -> Result<()> {
        if self.policy_path.is_dir() {
            bail!(
                "the policy is the directory {}: write its files",
                self.policy_path.display()
            );
        }
        let tmp = self.dir.join(".policy.yaml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.policy_path)?;
        Ok(())
    }

    /// The compliance report file (`--report-file`).
    pub fn report_path(&self) -> &Path {
        &self.report_file
    }

    /// The compliance report, parsed; `None` while there is none.
    ///
    /// # Errors
    /// When the file exists but is not JSON.
    pub fn report(&self) -> Result<Option<serde_json::Value>> {
        match std::fs::read(&self.report_file) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not JSON", self.report_file.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.report_file.display())),
        }
    }

    /// Runs `nodeguard report --file <report> <args>` and returns its output.
    ///
    /// # Errors
    /// When the command cannot be run.
    pub async fn report_command(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(binary()?)
            .arg("report")
            .arg("--file")
            .arg(&self.report_file)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running nodeguard report")
    }

    /// The address of `/metrics`, `/healthz` and `/readyz`, when started with
    /// [`NodeguardBuilder::metrics`].
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `GET path` on the metrics address.
    ///
    /// # Errors
    /// When nodeguard serves no metrics or does not answer.
    pub async fn get(&self, path: &str) -> Result<Response> {
        let addr = self
            .metrics_addr
            .context("nodeguard was started without .metrics()")?;
        http::get(addr, path).await
    }

    /// `/metrics`, parsed.
    ///
    /// # Errors
    /// When it does not answer 200 with OpenMetrics text.
    pub async fn metrics(&self) -> Result<Metrics> {
        let response = self.get("/metrics").await?;
        if response.status != 200 {
            bail!("/metrics answered {}: {}", response.status, response.body);
        }
        Metrics::parse(&response.body)
    }

    /// nodeguard's log (standard output and error, all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nodeguard.log")
    }

    /// The audit log file (`--audit-log`).
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// The audit log's records (the live file only; lines that are not JSON are skipped).
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
