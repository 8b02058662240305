//! The daemon's background duties and readiness: periodic compliance audits only while
//! registered, the state file kept current, and `/readyz` following the connection and the
//! policy files.

use std::sync::Arc;
use std::time::Duration;

use nodeguard::compliance::ComplianceConfig;
use nodeguard::compliance::report;
use nodeguard::daemon::{DaemonReadiness, periodic};
use nodeguard::enforce::UndecidedAtStart;
use nodeguard::ops::http::Readiness;
use nodeguard::ops::policy_files::PolicyPath;
use nodeguard::ops::reload::{ReloadOutcome, Reloader};
use tokio_util::sync::CancellationToken;

use super::fake_runtime::RegisterReply;
use super::harness::{
    Daemon, POLICY, Plugin, compliant_spec, pod, running, start_ok, synchronize, wait_until,
};

#[tokio::test]
async fn periodic_audits_run_while_registered_and_keep_the_state_file_current() {
    let dir = tempfile::tempdir().unwrap();
    let (report_path, state_path) = (
        dir.path().join("report.json"),
        dir.path().join("state.json"),
    );
    let config = ComplianceConfig {
        report_path: Some(report_path.clone()),
        state_path: Some(state_path.clone()),
        ..ComplianceConfig::default()
    };
    let daemon = Daemon::start(Plugin::configured(POLICY, UndecidedAtStart::Deny, config));
    daemon.plugin.specs.insert("c1", &compliant_spec());
    // The clock stands still while unregistered ticks go by; it runs again for the sockets.
    tokio::time::pause();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(periodic(
        Arc::clone(&daemon.plugin.auditor),
        Arc::clone(&daemon.state),
        None,
        Duration::from_millis(10),
        Duration::from_millis(20),
        shutdown.clone(),
    ));
    // Not registered: ten ticks and five audit intervals go by, nothing is audited, no state
    // file is written.
    for _ in 0..10 {
        tokio::time::advance(Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
    }
    assert!(!report_path.exists() && !state_path.exists());
    tokio::time::resume();

    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, vec![pod()], vec![running("c1")]).await;
    wait_until("a periodic audit's report", || {
        report::read(&report_path).is_ok_and(|r| {
            r.items
                .first()
                .is_some_and(|i| i.metadata.annotations["nodeguard.io/trigger"] == "periodic")
        })
    })
    .await;
    // A container started later reaches the state file at the next tick.
    daemon.plugin.specs.insert("c2", &compliant_spec());
    start_ok(&runtime, "c2").await;
    wait_until("c2 in the state file", || {
        std::fs::read_to_string(&state_path).is_ok_and(|s| s.contains("\"c2\""))
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_registration_and_says_when_the_policy_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    let plugin = Plugin::new();
    let path = PolicyPath::new(&file);
    let reloader = Arc::new(Reloader::new(
        path.clone(),
        Arc::clone(&plugin.policy),
        path.read().unwrap(),
        Arc::clone(&plugin.metrics),
    ));
    let daemon = Daemon::start(plugin);
    let readiness = DaemonReadiness {
        state: Arc::clone(&daemon.state),
        reloader: Arc::clone(&reloader),
    };
    assert_eq!(
        readiness.ready(),
        Err("not registered with the runtime over NRI".to_string())
    );
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    let state = Arc::clone(&daemon.state);
    wait_until("registered", || state.is_registered()).await;
    assert_eq!(
        readiness.ready(),
        Ok("registered with the runtime; policy generation 1".to_string())
    );
    std::fs::write(&file, "garbage: [").unwrap();
    assert!(matches!(reloader.check(), ReloadOutcome::Rejected { .. }));
    let ready = readiness.ready().unwrap();
    assert!(
        ready
            .ends_with("(the policy files on disk are rejected; the last good policy is in force)"),
        "still ready, and says why the files are not in force: {ready}"
    );
    runtime.close().await;
    let state = Arc::clone(&daemon.state);
    wait_until("unregistered", || !state.is_registered()).await;
    assert!(readiness.ready().is_err());
    daemon.stop().await;
}
