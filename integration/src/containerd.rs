//! A private containerd per test: started from the testbed, torn down without a trace.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cleanup::{self, INSTANCE_PREFIX, OWNER_FILE};
use crate::config::{self, Layout, NriConfig};
use crate::cri::CriClient;
use crate::testbed::{ContainerdVersion, Testbed, images};

/// How long containerd may take to answer CRI after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd gets to exit on SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long tearing down the pods through CRI may take before processes are simply killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// PATH for containerd: our shim first, then the system's runc.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options for a [`Containerd`] instance; see [`Containerd::builder`].
#[derive(Debug, Clone)]
pub struct ContainerdBuilder {
    version: ContainerdVersion,
    log_level: String,
    nri: NriConfig,
    plugins: Vec<(String, PathBuf)>,
    plugin_configs: Vec<(String, String)>,
}

impl ContainerdBuilder {
    /// containerd's log level (`[debug] level`); `info` by default.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// NRI settings (enabled, 5 s registration and 2 s request timeouts by default).
    pub fn nri(mut self, nri: NriConfig) -> Self {
        self.nri = nri;
        self
    }

    /// Pre-installs an NRI plugin: `binary` is copied to the plugin folder as `name`, which
    /// must have NRI's `NN-name` form (e.g. `10-nodeguard`). containerd launches it at start.
    pub fn nri_plugin(mut self, name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        self.plugins.push((name.into(), binary.into()));
        self
    }

    /// Writes `contents` to `file_name` in the NRI plugin configuration folder
    /// (e.g. `10-nodeguard.conf`), which containerd hands to pre-installed plugins.
    pub fn nri_plugin_config(
        mut self,
        file_name: impl Into<String>,
        contents: impl Into<String>,
    ) -> Self {
        self.plugin_configs
            .push((file_name.into(), contents.into()));
        self
    }

    /// Creates the instance folder, starts containerd, waits until it answers CRI, checks its
    /// version, and imports the testbed's images.
    pub async fn start(self) -> Result<Containerd> {
        if !nix::unistd::geteuid().is_root() {
            bail!("the end-to-end tests start containerd and must run as root");
        }
        let testbed = Testbed::locate()?;
        cleanup::reap_stale_instances();

        let dir = tempfile::Builder::new()
            .prefix(INSTANCE_PREFIX)
            .tempdir()
            .context("creating the instance folder")?
            .keep();
        let mut instance = Containerd {
            version: self.version,
            testbed,
            cgroup_root: cleanup::cgroup_root_for(&dir),
            layout: Layout { dir },
            child: None,
            runtime_version: String::new(),
            torn_down: false,
        };
        // From here on, an error drops `instance`, which tears everything down.
        instance.prepare(&self)?;
        instance.spawn()?;
        instance.wait_ready().await?;
        instance.import_images().await?;
        Ok(instance)
    }
}

/// A containerd started for one test, in its own temporary folder (root, state, sockets,
/// NRI socket and plugin folders, runc state, logs), with the testbed images imported.
///
/// Dropping it (also when the test panics) stops every pod through CRI, stops containerd,
/// kills what is left of its shims and containers, unmounts whatever is mounted under its
/// folder, removes its cgroups and deletes the folder. Use [`Containerd::shutdown`] to see
/// whether that worked.
#[derive(Debug)]
pub struct Containerd {
    version: ContainerdVersion,
    testbed: Testbed,
    layout: Layout,
    cgroup_root: String,
    child: Option<Child>,
    runtime_version: String,
    torn_down: bool,
}

impl Containerd {
    /// Starts `version` with the default options (NRI on, no pre-installed plugins).
    pub async fn start(version: ContainerdVersion) -> Result<Containerd> {
        Containerd::builder(version).start().await
    }

    /// Options for starting `version`.
    pub fn builder(version: ContainerdVersion) -> ContainerdBuilder {
        ContainerdBuilder {
            version,
            log_level: "info".into(),
            nri: NriConfig::default(),
            plugins: Vec::new(),
            plugin_configs: Vec::new(),
        }
    }

    /// The release line this instance runs.
    pub fn version(&self) -> ContainerdVersion {
        self.version
    }

    /// The version the daemon reports through CRI (e.g. `1.7.24~ds1`).
    pub fn runtime_version(&self) -> &str {
        &self.runtime_version
    }

    /// The instance folder; everything of the instance lives under it.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// containerd's gRPC socket (CRI and containerd's own services).
    pub fn socket(&self) -> PathBuf {
        self.layout.socket()
    }

    /// The NRI socket plugins connect to.
    pub fn nri_socket(&self) -> PathBuf {
        self.layout.nri_socket()
    }

    /// Where containerd looks for pre-installed NRI plugins (`NN-name` executables).
    pub fn nri_plugin_dir(&self) -> PathBuf {
        self.layout.nri_plugin_dir()
    }

    /// Where containerd looks for pre-installed plugins' configuration files.
    pub fn nri_plugin_config_dir(&self) -> PathBuf {
        self.layout.nri_plugin_config_dir()
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.layout.config()
    }

    /// The cgroup root (the kubelet's `--cgroup-root`) pods of this instance go under.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// The file containerd's stdout and stderr go to (across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.layout.log()
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.layout.log())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until containerd's log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd's log has no {needle:?} after {timeout:?}; its end:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `lines` lines of containerd's log, each cut to 500 characters (containerd
    /// logs its whole CRI configuration on one line).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| match line.char_indices().nth(500) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => (*line).to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The pid of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A CRI client (the kubelet's side) connected to this instance.
    pub async fn cri(&self) -> Result<CriClient> {
        CriClient::connect(
            &self.layout.socket(),
            &self.layout.kubelet_dir(),
            &self.cgroup_root,
        )
        .await
    }

    /// This version's `ctr`, pointed at this instance and the `k8s.io` namespace; add the
    /// subcommand and run it.
    pub fn ctr(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.testbed.bin_dir(self.version).join("ctr"));
        cmd.arg("--address")
            .arg(self.layout.socket())
            .arg("--namespace")
            .arg("k8s.io")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Stops containerd (SIGTERM) and starts it again with the same folders and configuration.
    /// Shims and containers keep running, as in a real restart.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop_daemon();
        self.spawn()?;
        self.wait_ready().await
    }

    /// Kills containerd with SIGKILL, as a crash or an OOM kill would, and reaps it. Shims
    /// and containers keep running; [`Containerd::start_again`] brings the daemon back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops containerd (SIGTERM, SIGKILL after 10 s) and leaves it stopped. Shims and
    /// containers keep running; [`Containerd::start_again`] brings the daemon back.
    pub fn stop(&mut self) {
        self.stop_daemon();
    }

    /// Whether the daemon runs (it was neither stopped nor killed, and has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts containerd again after [`Containerd::stop`] or [`Containerd::kill`], with the
    /// same folders and configuration; returns once it answers CRI.
    ///
    /// # Errors
    /// When it is still running, or does not answer CRI within 30 s.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("containerd is still running");
        }
        self.child = None;
        self.spawn()?;
        self.wait_ready().await
    }

    /// Tears the instance down now and reports everything that could not be cleaned up.
    pub fn shutdown(mut self) -> Result<()> {
        let problems = self.teardown();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "teardown of {}: {}",
                self.layout.dir.display(),
                problems.join("; ")
            ))
        }
    }

    fn prepare(&mut self, options: &ContainerdBuilder) -> Result<()> {
        let pid = std::process::id() as i32;
        let start = cleanup::process_start_time(pid).unwrap_or(0);
        std::fs::write(self.layout.dir.join(OWNER_FILE), format!("{pid} {start}\n"))?;
        for folder in self.layout.folders() {
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        let text = config::render(self.version, &self.layout, &options.nri, &options.log_level);
        std::fs::write(self.layout.config(), text)?;
        for (name, binary) in &options.plugins {
            let target = self.layout.nri_plugin_dir().join(name);
            std::fs::copy(binary, &target).with_context(|| {
                format!(
                    "copying NRI plugin {} to {}",
                    binary.display(),
                    target.display()
                )
            })?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
        for (name, contents) in &options.plugin_configs {
            std::fs::write(self.layout.nri_plugin_config_dir().join(name), contents)?;
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        let bin_dir = self.testbed.bin_dir(self.version);
        let binary = bin_dir.join("containerd");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.layout.log())?;
        if log.metadata()?.len() > 0 {
            use std::io::Write;
            writeln!(log, "===== nodeguard-e2e: containerd restarts =====")?;
        }
        let child = Command::new(&binary)
            .arg("--config")
            .arg(self.layout.config())
            .env("PATH", format!("{}:{SYSTEM_PATH}", bin_dir.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let socket = self.layout.socket();
        let version = loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "{} exited during start-up ({status}); its log ends with:\n{}",
                    self.version,
                    self.log_tail(30)
                );
            }
            if socket.exists() {
                let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                    let channel = crate::cri::unix_channel(&socket).await?;
                    let mut client =
                        k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(channel);
                    let request = k8s_cri::v1::VersionRequest {
                        version: "v1".into(),
                    };
                    anyhow::Ok(client.version(request).await?.into_inner())
                })
                .await;
                if let Ok(Ok(version)) = attempt {
                    break version;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer CRI on {} within {READY_TIMEOUT:?}; its log ends with:\n{}",
                    self.version,
                    socket.display(),
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let reported = version.runtime_version.trim_start_matches('v').to_owned();
        let major_minor: String = reported.split('.').take(2).collect::<Vec<_>>().join(".");
        if major_minor != self.version.major_minor() {
            bail!(
                "expected containerd {} but {} reports {reported:?} (Debian package {}): the testbed \
                 fell back to another release (see the WARNING of scripts/testbed/setup.sh); update \
                 the pins and ContainerdVersion",
                self.version.major_minor(),
                self.testbed.bin_dir(self.version).display(),
                self.testbed
                    .package_version(self.version)
                    .unwrap_or_default(),
            );
        }
        self.runtime_version = reported;
        Ok(())
    }

    /// Imports an OCI image archive (as `ctr images import` does) into the `k8s.io` namespace.
    pub async fn import_image(&self, archive: &Path) -> Result<()> {
        let output = self
            .ctr()
            .arg("images")
            .arg("import")
            .arg(archive)
            .output()
            .await
            .context("running ctr images import")?;
        if !output.status.success() {
            bail!(
                "ctr images import {} failed ({}): {}{}",
                archive.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    async fn import_images(&self) -> Result<()> {
        for archive in self.testbed.image_archives()? {
            self.import_image(&archive).await?;
        }
        // CRI learns about imported images through events: wait until it sees them all (a
        // create resolves its image's ID first, as the kubelet does).
        let cri = self.cri().await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for &image in images::ALL {
            while cri.image_status(image).await?.is_none() {
                if Instant::now() > deadline {
                    bail!("CRI does not list {image} after importing it");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; reaps the daemon.
    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Removes every pod through CRI, so shims exit and clean up after themselves. Runs on a
    /// thread of its own with its own runtime: it is called from `Drop`, maybe inside a test's
    /// runtime, where blocking on that runtime is not possible.
    fn drain_pods(&self) -> Result<()> {
        let socket = self.layout.socket();
        let kubelet = self.layout.kubelet_dir();
        let cgroup_root = self.cgroup_root.clone();
        let worker = thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                tokio::time::timeout(DRAIN_TIMEOUT, async {
                    let cri = CriClient::connect(&socket, &kubelet, &cgroup_root).await?;
                    cri.remove_all_pods().await?;
                    anyhow::Ok(())
                })
                .await
                .map_err(|_| anyhow!("removing pods took over {DRAIN_TIMEOUT:?}"))?
            })
        });
        worker
            .join()
            .map_err(|_| anyhow!("the pod-removal thread panicked"))?
    }

    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut problems = Vec::new();
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running && let Err(e) = self.drain_pods() {
            // Not fatal: the sweep below kills whatever is left.
            eprintln!("nodeguard-e2e: removing pods through CRI: {e:#}");
        }
        // Processes containerd started itself (pre-installed NRI plugins) outlive it unless
        // they notice the closed connection: note them now, kill them once it is gone.
        let children = self
            .pid()
            .map(|pid| cleanup::descendants(pid as i32))
            .unwrap_or_default();
        self.stop_daemon();
        cleanup::kill_processes(&children);
        problems.extend(cleanup::sweep(&self.layout.dir, &self.cgroup_root));
        problems
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for problem in self.teardown() {
            eprintln!(
                "nodeguard-e2e: teardown of {}: {problem}",
                self.layout.dir.display()
            );
        }
    }
}
