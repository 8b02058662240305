//! Two `nodeguard serve` on one node: the second finds the first's lock on the state folder
//! and refuses to start, naming it (regression: both registered as `10-nodeguard` and shared
//! the audit log, report and state files).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::hostile_input::Killed;

fn serve(dir: &std::path::Path, pod: &str) -> Command {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "").unwrap();
    let state = dir.join("state");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nodeguard"));
    cmd.args(["serve", "--profile", "baseline", "--nri-socket"])
        // Nothing listens there: the first instance keeps retrying, holding the lock.
        .arg(dir.join("absent/nri.sock"))
        .arg("--report-file")
        .arg(state.join("report.json"))
        .arg("--state-file")
        .arg(state.join("containers.json"))
        .env("POD_NAMESPACE", "nodeguard-system")
        .env("POD_NAME", pod)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_second_serve_on_the_same_state_folder_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Killed(serve(dir.path(), "nodeguard-old").spawn().unwrap());
    let lock = dir.path().join("state/.nodeguard.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("nodeguard-old")) {
        assert!(
            Instant::now() < deadline,
            "the first instance never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = serve(dir.path(), "nodeguard-new").output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another nodeguard is running on this node")
            && stderr.contains(&format!(
                "pid {} in pod nodeguard-system/nodeguard-old",
                first.0.id()
            )),
        "{stderr}"
    );
    drop(first);
    // Released when the holder exits, however it exits (here SIGKILL): the next one starts.
    let mut third = Killed(serve(dir.path(), "nodeguard-next").spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("nodeguard-next")) {
        assert!(
            third.0.try_wait().unwrap().is_none(),
            "the next instance exited: the lock was not released"
        );
        assert!(
            Instant::now() < deadline,
            "the next instance never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
