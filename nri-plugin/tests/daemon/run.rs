//! The whole daemon as `nodeguard serve` runs it, through `daemon::run`, in memory: flags
//! validated as the CLI takes them, the fake runtime on its socket, containerd's API in memory,
//! and the control signals in the test's hands.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use nodeguard::daemon::{self, Control, DaemonConfig, ServeFlags};
use nodeguard::nri::serve::Endpoint;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use super::fake_runtime::{FakeRuntime, PATIENCE, RegisterReply, RuntimeListener};
use super::harness::{
    MemorySpecs, POLICY, compliant_spec, pod, privileged_spec, running, synchronize, wait_until,
};

/// `nodeguard serve`'s flags, parsed as the binary parses them.
#[derive(Debug, Parser)]
struct Serve {
    #[command(flatten)]
    flags: ServeFlags,
}

fn flags(args: &[&str]) -> ServeFlags {
    Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
        .expect("flags clap accepts")
        .flags
}

/// A daemon run through `daemon::run` with its files in a folder of its own.
struct Running {
    dir: tempfile::TempDir,
    listener: RuntimeListener,
    specs: MemorySpecs,
    control: Control,
    metrics_addr: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// Validates the flags (policy [`POLICY`], metrics on a free port, report and state files
    /// in the folder, the policy re-read every `reload_interval`) and starts `daemon::run`.
    fn start(reload_interval: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let listener = RuntimeListener::bind();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let (report, state, nri) = (
            path("report.json"),
            path("state.json"),
            listener.path().display().to_string(),
        );
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--nri-socket",
            &nri,
            "--metrics-addr",
            "127.0.0.1:0",
            "--report-file",
            &report,
            "--state-file",
            &state,
            "--reload-interval",
            reload_interval,
        ];
        let (config, endpoint) =
            DaemonConfig::validate(flags(&args), |_| None, || Some("node-9".into()))
                .expect("valid flags");
        assert!(matches!(endpoint, Endpoint::Socket(_)));
        let metrics_addr = config
            .metrics_listener
            .as_ref()
            .unwrap()
            .local_addr()
            .unwrap();
        let specs = MemorySpecs::default();
        let control = Control::default();
        let task = tokio::spawn(daemon::run(
            config,
            endpoint,
            specs.clone(),
            control.clone(),
        ));
        Running {
            dir,
            listener,
            specs,
            control,
            metrics_addr,
            task,
        }
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Accepts the daemon's connection and plays containerd's handshake with `running`.
    async fn connected(
        &self,
        running: Vec<nodeguard_proto::nri::v1alpha1::Container>,
    ) -> FakeRuntime {
        let runtime = self.listener.accept(RegisterReply::Ok).await;
        runtime.registration().await;
        synchronize(&runtime, vec![pod()], running).await;
        runtime
    }

    /// `GET path` on the metrics address: status code and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    /// Cancels the daemon and waits for `run` to return.
    async fn stop(self) -> tempfile::TempDir {
        self.control.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("daemon::run returns promptly after shutdown")
            .expect("daemon::run does not panic");
        self.dir
    }
}

fn report_says(path: &Path, needles: &[&str]) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| needles.iter().all(|n| text.contains(n)))
}

#[tokio::test]
async fn readyz_follows_the_registration() {
    let daemon = Running::start("50ms");
    let (status, body) = daemon.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("not registered with the runtime over NRI"),
        "{body}"
    );
    let runtime = daemon.connected(Vec::new()).await;
    let (status, body) = daemon.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("registered with the runtime; policy generation 1"),
        "{body}"
    );
    // The runtime goes away: not ready until it is back.
    drop(runtime);
    let mut status = 200;
    for _ in 0..100 {
        status = daemon.get("/readyz").await.0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 503);
    daemon.stop().await;
}

#[tokio::test]
async fn a_policy_reload_re_audits_what_runs_by_the_new_policy() {
    let daemon = Running::start("50ms");
    daemon.specs.insert("c1", &privileged_spec());
    let _runtime = daemon.connected(vec![running("c1")]).await;
    let report = daemon.file("report.json");
    wait_until("the registration audit's report", || {
        report_says(&report, &["\"registration\"", "\"fail\""])
    })
    .await;
    // A policy without the privileged rule: c1 now passes, in generation 2.
    std::fs::write(
        daemon.file("policy.yaml"),
        POLICY.replace("    privileged: {}\n", ""),
    )
    .unwrap();
    wait_until("the reload's report", || {
        report_says(
            &report,
            &[
                "\"policy-reload\"",
                "\"nodeguard.io/policy-generation\":\"2\"",
            ],
        )
    })
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("nodeguard_policy_generation 2"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_reload_signal_reads_the_policy_at_once() {
    // A reload interval no test waits for: only the signal can bring the change in.
    let daemon = Running::start("1h");
    let _runtime = daemon.connected(Vec::new()).await;
    std::fs::write(
        daemon.file("policy.yaml"),
        POLICY.replace("daemon-test", "renamed"),
    )
    .unwrap();
    daemon.control.forward_signals().unwrap();
    let pid = std::process::id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut body = String::new();
    for _ in 0..250 {
        body = daemon.get("/readyz").await.1;
        if body.contains("policy generation 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(body.contains("policy generation 2"), "{body}");
    daemon.stop().await;
}

#[tokio::test]
async fn shutdown_is_clean_and_leaves_the_state_file() {
    let daemon = Running::start("50ms");
    daemon.specs.insert("c1", &compliant_spec());
    let runtime = daemon.connected(vec![running("c1")]).await;
    let addr = daemon.metrics_addr;
    let dir = daemon.stop().await;
    // The runtime sees the connection closed, the HTTP endpoint is gone, the state file names
    // what ran.
    runtime.closed().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    assert!(state.contains("\"c1\""), "{state}");
}

#[tokio::test]
async fn every_flag_problem_is_reported_at_once_before_any_socket() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let socket = dir.path().join("nri.sock");
    let missing = dir.path().join("missing.yaml");
    let problems = DaemonConfig::validate(
        flags(&[
            "--policy",
            missing.to_str().unwrap(),
            "--plugin-index",
            "7",
            "--plugin-name",
            "a/b",
            "--reload-interval",
            "0s",
            "--metrics-addr",
            &taken,
            "--nri-socket",
            socket.to_str().unwrap(),
        ]),
        |_| None,
        || None,
    )
    .expect_err("invalid");
    assert_eq!(problems.len(), 5, "{problems:#?}");
    for expected in [
        "--plugin-index must be exactly two digits",
        "--plugin-name \"a/b\"",
        "--reload-interval must be more than 0",
        "--policy: cannot read",
        &format!("--metrics-addr {taken}: "),
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:#?}"
        );
    }
    assert!(!socket.exists());
}

#[tokio::test]
async fn serve_strict_refuses_a_policy_the_node_would_not_wholly_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("{POLICY}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCorpPodRule\nmetadata: {{name: corp}}\n"),
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let (config, _) =
        DaemonConfig::validate(flags(&["--policy", policy]), |_| None, || None).expect("valid");
    assert_eq!(config.policy.not_enforced_names().count(), 1);
    let problems =
        DaemonConfig::validate(flags(&["--strict", "--policy", policy]), |_| None, || None)
            .expect_err("strict");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .contains("policy.yaml:21:1: kind: nodeguard does not implement the Gatekeeper kind"),
        "{problems:#?}"
    );
}

#[tokio::test]
async fn an_empty_report_or_state_file_turns_them_off_in_every_documented_form() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.to_str().unwrap();
    for args in [
        &["--policy", policy, "--report-file", "", "--state-file", ""][..],
        &["--policy", policy, "--report-file=", "--state-file="][..],
    ] {
        let (config, _) = DaemonConfig::validate(flags(args), |_| None, || None).expect("valid");
        assert_eq!(config.compliance.report_path, None, "{args:?}");
        assert_eq!(config.compliance.state_path, None, "{args:?}");
    }
    // By default both are kept where the DaemonSet mounts /var/lib/nodeguard.
    let (config, _) =
        DaemonConfig::validate(flags(&["--policy", policy]), |_| None, || None).expect("valid");
    assert_eq!(
        config.compliance.report_path.as_deref(),
        Some(Path::new("/var/lib/nodeguard/report.json"))
    );
    // The environment form, as the DaemonSet would set it: the binary accepts it and serves.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(["serve", "--policy", policy, "--nri-socket"])
        .arg(dir.path().join("absent.sock"))
        .env("NODEGUARD_REPORT", "")
        .env("NODEGUARD_STATE", "")
        .env_remove("NRI_PLUGIN_SOCKET")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        still_running,
        "exited: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn serve_takes_repeated_policies_and_a_profile_alone_or_beside_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, POLICY).unwrap();
    let b = dir.path().join("b.yaml");
    std::fs::write(&b, POLICY.replace("daemon-test", "second")).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (config, _) = DaemonConfig::validate(
        flags(&["--policy", a, "--policy", b, "--profile", "baseline"]),
        |_| None,
        || None,
    )
    .expect("valid");
    assert_eq!(
        config.policy.names().collect::<Vec<_>>(),
        ["daemon-test", "second", "pss-baseline"]
    );
    // A profile alone needs no policy file (the default path is not read).
    let (config, _) =
        DaemonConfig::validate(flags(&["--profile", "restricted"]), |_| None, || None)
            .expect("valid without /etc/nodeguard/policy");
    assert_eq!(
        config.policy.names().collect::<Vec<_>>(),
        ["pss-restricted"]
    );
    // Without either, the DaemonSet's mount is read, and its absence is an error.
    let problems = DaemonConfig::validate(flags(&[]), |_| None, || None).expect_err("no policy");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("--policy: cannot read /etc/nodeguard/policy")),
        "{problems:?}"
    );
}
