//! The harness itself: restarts, pre-installed NRI plugins, teardown after a panic, and the
//! message when the testbed is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, PodSpec, Testbed, images,
};

use crate::smoke::assert_nothing_left;

const NRI_READY: &str = r#"Registered namespace \"k8s.io\" with NRI"#;

/// After a restart, containerd answers CRI again, NRI is back, and running containers are
/// still running.
async fn restart_keeps_containers(version: ContainerdVersion) -> Result<()> {
    let mut containerd = Containerd::start(version).await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("survivor", "default")).await?;
    let id = cri
        .run_container(
            &pod,
            &ContainerSpec::new("main", images::BUSYBOX).sleep_forever(),
        )
        .await?;
    let before = containerd.pid();
    containerd.restart().await?;
    ensure!(containerd.pid() != before, "containerd was not restarted");
    containerd
        .wait_for_log(NRI_READY, Duration::from_secs(10))
        .await?;
    ensure!(
        containerd.log().matches("Registered namespace").count() >= 2,
        "NRI did not come back after the restart"
    );
    let cri = containerd.cri().await?;
    cri.wait_container_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_restart_keeps_containers() -> Result<()> {
    restart_keeps_containers(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_restart_keeps_containers() -> Result<()> {
    restart_keeps_containers(ContainerdVersion::V2_1).await
}

/// Writes a shell "plugin" that reports its path and NRI environment to `report`, then idles
/// without ever registering.
fn silent_plugin(scratch: &Path, report: &Path) -> Result<PathBuf> {
    let probe = scratch.join("probe.sh");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\n{{ echo \"PATH0=$0\"; env | grep '^NRI_'; }} > '{0}.tmp' && mv '{0}.tmp' '{0}'\n\
             while :; do sleep 1; done\n",
            report.display()
        ),
    )?;
    Ok(probe)
}

/// Waits for the report of [`silent_plugin`] and checks the NRI environment in it; returns
/// the instance folder the plugin ran from.
async fn plugin_report(report: &Path) -> Result<PathBuf> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !report.exists() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the plugin was not launched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = std::fs::read_to_string(report).context("reading the probe's report")?;
    for name in [
        "NRI_PLUGIN_NAME=probe",
        "NRI_PLUGIN_IDX=10",
        "NRI_PLUGIN_SOCKET=",
    ] {
        ensure!(
            env.contains(name),
            "{name} missing from the plugin's environment: {env}"
        );
    }
    let path0 = env
        .lines()
        .find_map(|l| l.strip_prefix("PATH0="))
        .context("no PATH0 in the report")?;
    // <instance>/nri/plugins/10-probe
    Path::new(path0)
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("plugin path too short")
}

/// containerd 1.7 launches a pre-installed plugin with NRI's environment, and refuses to
/// start at all when that plugin does not register within the registration timeout
/// (CRI waits for NRI's start-up). A failed start still leaves nothing behind.
#[tokio::test]
async fn containerd_1_7_fails_to_start_when_a_preinstalled_plugin_never_registers() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let report = scratch.path().join("probe.env");
    let probe = silent_plugin(scratch.path(), &report)?;
    let started = Containerd::builder(ContainerdVersion::V1_7)
        .nri_plugin("10-probe", &probe)
        .nri_plugin_config("10-probe.conf", "unused: true\n")
        .start()
        .await;
    let err = started
        .err()
        .context("containerd 1.7 started despite a silent plugin")?;
    ensure!(
        format!("{err:#}").contains("plugin registration timed out"),
        "unexpected start failure: {err:#}"
    );
    let dir = plugin_report(&report).await?;
    let cgroup_root = format!("/{}", dir.file_name().unwrap_or_default().to_string_lossy());
    assert_nothing_left(&dir, &cgroup_root);
    Ok(())
}

/// containerd 2.1 launches a pre-installed plugin with NRI's environment and starts even
/// though the plugin never registers; teardown kills the plugin.
#[tokio::test]
async fn containerd_2_1_starts_despite_a_preinstalled_plugin_that_never_registers() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let report = scratch.path().join("probe.env");
    let probe = silent_plugin(scratch.path(), &report)?;
    let containerd = Containerd::builder(ContainerdVersion::V2_1)
        .nri_plugin("10-probe", &probe)
        .nri_plugin_config("10-probe.conf", "unused: true\n")
        .start()
        .await?;
    let dir = plugin_report(&report).await?;
    ensure!(
        dir == containerd.dir(),
        "the plugin ran from {}",
        dir.display()
    );
    let cgroup_root = containerd.cgroup_root().to_owned();
    containerd.shutdown()?;
    assert_nothing_left(&dir, &cgroup_root);
    Ok(())
}

/// A test that panics with pods still running must not leave them behind.
async fn panic_tears_down(version: ContainerdVersion) -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let test = tokio::spawn(async move {
        let containerd = Containerd::start(version).await.expect("start");
        let cri = containerd.cri().await.expect("cri");
        let pod = cri
            .run_pod(&PodSpec::new("doomed", "default"))
            .await
            .expect("pod");
        let spec = ContainerSpec::new("main", images::BUSYBOX).sleep_forever();
        cri.run_container(&pod, &spec).await.expect("container");
        tx.send((
            containerd.dir().to_owned(),
            containerd.cgroup_root().to_owned(),
        ))
        .expect("send");
        panic!("simulated test failure with a running pod");
    });
    let outcome = test.await;
    ensure!(
        outcome.as_ref().is_err_and(|e| e.is_panic()),
        "the task should have panicked: {outcome:?}"
    );
    let (dir, cgroup_root) = rx.await?;
    assert_nothing_left(&dir, &cgroup_root);
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_teardown_survives_a_panicking_test() -> Result<()> {
    panic_tears_down(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_teardown_survives_a_panicking_test() -> Result<()> {
    panic_tears_down(ContainerdVersion::V2_1).await
}

#[test]
fn a_missing_testbed_says_how_to_set_it_up() {
    let err = Testbed::at("/nonexistent/nodeguard-testbed").unwrap_err();
    assert!(
        format!("{err:#}").contains("scripts/testbed/setup.sh"),
        "{err:#}"
    );
}
