//! The testbed works: containerd 1.7 and 2.1 run a host-network pod with a limited busybox
//! container through CRI, and teardown leaves no process, mount, cgroup or folder behind.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use nodeguard_integration::cleanup::{cgroups_under, instance_processes, mounts_under};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::{ContainerSpec, Containerd, ContainerdVersion, PodSpec, images};

/// Asserts that nothing of the instance in `dir` survived its teardown.
pub(crate) fn assert_nothing_left(dir: &Path, cgroup_root: &str) {
    assert!(!dir.exists(), "{} still exists", dir.display());
    let procs = instance_processes(dir, cgroup_root);
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let mounts = mounts_under(dir);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let cgroups = cgroups_under(cgroup_root);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

async fn pod_lifecycle(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    containerd
        .wait_for_log(
            r#"Registered namespace \"k8s.io\" with NRI"#,
            Duration::from_secs(10),
        )
        .await?;
    ensure!(
        containerd.nri_socket().exists(),
        "no NRI socket at {}",
        containerd.nri_socket().display()
    );

    let cri = containerd.cri().await?;
    let ready = cri.status().await?.status.context("no runtime status")?;
    ensure!(
        ready
            .conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status),
        "runtime not ready: {ready:?}"
    );

    let pod = cri
        .run_pod(&PodSpec::new("smoke", "default").label("app", "smoke"))
        .await?;
    let spec = ContainerSpec::new("main", images::BUSYBOX)
        .sleep_forever()
        .limits(250, 64 << 20);
    let id = cri.create_container(&pod, &spec).await?;
    cri.start_container(&id).await?;
    let status = cri
        .wait_container_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(status.metadata.map(|m| m.name).as_deref(), Some("main"));
    assert_eq!(
        status
            .labels
            .get("io.kubernetes.pod.namespace")
            .map(String::as_str),
        Some("default")
    );

    // The limits reached the container's cgroup (v1 or v2 layout).
    let limit = cri
        .exec_sync(
            &id,
            &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"],
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(
        limit.stdout.trim(),
        (64u64 << 20).to_string(),
        "memory limit, stderr {:?}",
        limit.stderr
    );

    cri.stop_container(&id, 10).await?;
    cri.wait_container_state(
        &id,
        ContainerState::ContainerExited,
        Duration::from_secs(15),
    )
    .await?;
    cri.remove_container(&id).await?;
    cri.stop_pod(&pod.id).await?;
    cri.remove_pod(&pod.id).await?;
    ensure!(cri.list_pods().await?.is_empty(), "pods left after removal");

    let dir = containerd.dir().to_owned();
    let cgroup_root = containerd.cgroup_root().to_owned();
    containerd.shutdown()?;
    assert_nothing_left(&dir, &cgroup_root);
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_runs_a_limited_host_network_pod() -> Result<()> {
    pod_lifecycle(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_runs_a_limited_host_network_pod() -> Result<()> {
    pod_lifecycle(ContainerdVersion::V2_1).await
}
