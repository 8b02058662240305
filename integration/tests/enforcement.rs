//! nodeguard enforcing a policy on a real containerd (1.7 and 2.1), driven through CRI as the
//! kubelet drives it: compliant containers run, noncompliant ones are refused at create or at
//! start with nodeguard's message, and enforcement survives restarts of either side.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Nodeguard, Pod, PodSpec, images,
};

/// The policy of these tests: the local registry only, no privileged containers, limits
/// required, no host PID/IPC (host network is allowed: there is no CNI on the testbed).
pub(crate) const POLICY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: e2e
spec:
  rules:
    images:
      allowed: ['^registry\.local/']
    privileged: {}
    resources:
      requireLimits: [cpu, memory]
    hostNamespaces:
      allowed: [network]
";

const MIB: i64 = 1 << 20;

/// A container from the registry the policy does not allow, otherwise compliant.
fn evil(name: &str) -> ContainerSpec {
    ContainerSpec::new(name, images::EVIL_BUSYBOX)
        .sleep_forever()
        .limits(250, 64 * MIB)
}

fn compliant(name: &str) -> ContainerSpec {
    ContainerSpec::new(name, images::BUSYBOX)
        .sleep_forever()
        .limits(250, 64 * MIB)
}

async fn setup(version: ContainerdVersion) -> Result<(Containerd, Nodeguard, CriClient)> {
    let containerd = Containerd::start(version).await?;
    let nodeguard = Nodeguard::start(&containerd, POLICY).await?;
    let cri = containerd.cri().await?;
    Ok((containerd, nodeguard, cri))
}

/// Creates and starts the container and waits until it runs; returns its id.
pub(crate) async fn run(cri: &CriClient, pod: &Pod, spec: &ContainerSpec) -> Result<String> {
    let id = cri
        .create_container(pod, spec)
        .await
        .with_context(|| format!("creating {}", spec.name))?;
    cri.start_container(&id)
        .await
        .with_context(|| format!("starting {}", spec.name))?;
    cri.wait_container_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    Ok(id)
}

/// Asserts creation is refused with a message containing every `needle`; returns it.
pub(crate) async fn refused_at_create(
    cri: &CriClient,
    pod: &Pod,
    spec: &ContainerSpec,
    needles: &[&str],
) -> Result<String> {
    let err = match cri.create_container(pod, spec).await {
        Ok(id) => anyhow::bail!("container {} was created (id {id})", spec.name),
        Err(e) => e,
    };
    for needle in needles {
        ensure!(
            err.message.contains(needle),
            "refusal of {} lacks {needle:?}: {}",
            spec.name,
            err.message
        );
    }
    Ok(err.message)
}

async fn enforces_at_create_and_start(version: ContainerdVersion) -> Result<()> {
    let (_containerd, nodeguard, cri) = setup(version).await?;
    let pod = cri
        .run_pod(&PodSpec::new("web", "default").label("app", "web"))
        .await?;

    // A compliant container runs.
    run(&cri, &pod, &compliant("app"))
        .await
        .context("compliant container")?;

    // Refused at create, on what NRI's CreateContainer request shows.
    refused_at_create(
        &cri,
        &pod,
        &evil("evil"),
        &[
            r#"nodeguard: refused container "evil" in pod default/web"#,
            r#"image "evil.example/busybox:1" does not match any allowed pattern (^registry\.local/)"#,
            "[images.allowed]",
        ],
    )
    .await?;
    refused_at_create(
        &cri,
        &pod,
        &ContainerSpec::new("unlimited", images::BUSYBOX).sleep_forever(),
        &[
            r#"refused container "unlimited""#,
            "container has no CPU or memory limit [resources.limits]",
        ],
    )
    .await?;

    // Refused with its pod: a pod-level fact is judged at RunPodSandbox, before any of its
    // containers, and containerd tears the sandbox down (nothing of it stays on the node).
    let err = match cri
        .run_pod(&PodSpec {
            host_pid: true,
            ..PodSpec::new("debugger", "default")
        })
        .await
    {
        Ok(pod) => anyhow::bail!("the hostPID pod was created: {}", pod.id),
        Err(e) => e,
    };
    ensure!(
        err.message.contains(
            "nodeguard: refused pod default/debugger: pod shares the host's PID namespace (hostPID) [hostNamespaces]"
        ),
        "RunPodSandbox refusal: {err}"
    );
    let left: Vec<String> = cri
        .list_pods()
        .await?
        .into_iter()
        .filter(|p| p.metadata.as_ref().is_some_and(|m| m.name == "debugger"))
        .map(|p| format!("{} state {}", p.id, p.state))
        .collect();
    ensure!(
        left.is_empty(),
        "the refused pod's sandbox stayed: {left:?}"
    );

    // Refused at start: containerd 1.7-2.2 do not show the security context at create, so
    // nodeguard reads the committed OCI spec when the container starts.
    let privileged_pod = cri
        .run_pod(&PodSpec {
            privileged: true,
            ..PodSpec::new("admin", "default")
        })
        .await?;
    let id = cri
        .create_container(&privileged_pod, &compliant("root").privileged())
        .await
        .context("privileged container should pass create (undecided there)")?;
    let Err(err) = cri.start_container(&id).await else {
        anyhow::bail!(
            "a privileged container started; audit: {:?}\nnodeguard log:\n{}",
            nodeguard.audit_records().last(),
            nodeguard.log()
        );
    };
    ensure!(
        err.message.contains(r#"nodeguard: refused container "root" in pod default/admin: container is privileged [privileged]"#),
        "unexpected start refusal: {}",
        err.message
    );

    // Every decision is in the audit log, with its phase and outcome.
    let records = nodeguard.audit_records();
    let find = |name: &str, phase: &str| {
        records
            .iter()
            .find(|r| r["container"]["name"] == name && r["phase"] == phase)
            .cloned()
    };
    let evil = find("evil", "create").context("no audit record for evil")?;
    ensure!(evil["outcome"] == "refused", "{evil}");
    ensure!(evil["violations"][0]["rule"] == "images.allowed", "{evil}");
    let root = find("root", "start").context("no audit record for root at start")?;
    ensure!(root["outcome"] == "refused", "{root}");
    let app = find("app", "start").context("no audit record for app at start")?;
    ensure!(app["outcome"] == "allowed", "{app}");
    Ok(())
}

/// Host ports reach the node in the kubelet's `io.kubernetes.container.ports` annotation.
async fn refuses_host_ports(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let policy = format!("{POLICY}    hostPorts:\n      allowed: [\"9000-9100\"]\n");
    let _nodeguard = Nodeguard::start(&containerd, &policy).await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    let with_ports = |name: &str, host_port: u16| {
        let mut spec = compliant(name);
        spec.annotations.insert(
            "io.kubernetes.container.ports".into(),
            format!(r#"[{{"containerPort":80,"hostPort":{host_port},"protocol":"TCP"}}]"#),
        );
        spec
    };
    refused_at_create(
        &cri,
        &pod,
        &with_ports("web", 8080),
        &["container binds host port 8080, outside the allowed 9000-9100 [hostPorts]"],
    )
    .await?;
    run(&cri, &pod, &with_ports("metrics", 9090)).await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_refuses_host_ports() -> Result<()> {
    refuses_host_ports(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_refuses_host_ports() -> Result<()> {
    refuses_host_ports(ContainerdVersion::V2_1).await
}

#[tokio::test]
async fn containerd_1_7_enforces_at_create_and_start() -> Result<()> {
    enforces_at_create_and_start(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_enforces_at_create_and_start() -> Result<()> {
    enforces_at_create_and_start(ContainerdVersion::V2_1).await
}

/// A bind mount that is undone when dropped, on failure too.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(source: &str, target: std::path::PathBuf) -> Result<BindMount> {
        std::fs::create_dir_all(&target)?;
        nix::mount::mount(
            Some(source),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {source} on {}", target.display()))?;
        Ok(BindMount(target))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A hostPath volume mounted with `subPath`: the kubelet bind-mounts the sub-path from its
/// `volume-subpaths` directory and gives the runtime that directory; nodeguard finds in the
/// node's mount table that the host's `/etc` is behind it, and judges it as that host path.
async fn a_host_path_through_a_sub_path_is_judged_as_a_host_path(
    version: ContainerdVersion,
) -> Result<()> {
    let policy = format!(
        "{POLICY}    hostPath:\n      allowed: [{{pathPrefix: /var/log, readOnly: true}}]\n"
    );
    let containerd = Containerd::start(version).await?;
    let _nodeguard = Nodeguard::start(&containerd, &policy).await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("reader", "default")).await?;
    let kubelet = tempfile::tempdir()?;
    let sub_path = kubelet
        .path()
        .join("pods")
        .join(&pod.uid)
        .join("volume-subpaths/host/app/0");
    let _mount = BindMount::new("/etc", sub_path.clone())?;
    let mut spec = compliant("app");
    spec.mounts.push(nodeguard_integration::HostMount {
        host_path: sub_path,
        container_path: "/host-etc".into(),
        readonly: true,
    });
    refused_at_create(
        &cri,
        &pod,
        &spec,
        &["host path /etc is mounted at /host-etc but is not allowed [hostPath]"],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_judges_a_host_path_through_a_sub_path() -> Result<()> {
    a_host_path_through_a_sub_path_is_judged_as_a_host_path(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_judges_a_host_path_through_a_sub_path() -> Result<()> {
    a_host_path_through_a_sub_path_is_judged_as_a_host_path(ContainerdVersion::V2_1).await
}

async fn survives_restarts(version: ContainerdVersion) -> Result<()> {
    let (mut containerd, mut nodeguard, cri) = setup(version).await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    run(&cri, &pod, &compliant("before")).await?;

    // nodeguard crashes and comes back: it registers again and enforces again.
    nodeguard.restart().await?;
    refused_at_create(&cri, &pod, &evil("evil"), &["[images.allowed]"])
        .await
        .context("after nodeguard restarted")?;

    // containerd restarts: nodeguard reconnects on its own and enforces again.
    let registrations = nodeguard.registrations();
    containerd.restart().await?;
    nodeguard
        .wait_registered(registrations + 1, Duration::from_secs(20))
        .await
        .context("nodeguard did not reconnect after containerd restarted")?;
    let cri = containerd.cri().await?;
    refused_at_create(&cri, &pod, &evil("evil2"), &["[images.allowed]"])
        .await
        .context("after containerd restarted")?;
    run(&cri, &pod, &compliant("after")).await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_enforcement_survives_restarts() -> Result<()> {
    survives_restarts(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_enforcement_survives_restarts() -> Result<()> {
    survives_restarts(ContainerdVersion::V2_1).await
}

/// containerd launches nodeguard itself as a pre-installed plugin (`/opt/nri/plugins` in
/// production) and hands it a connected socket: nodeguard registers on it and enforces.
async fn enforces_as_a_preinstalled_plugin(version: ContainerdVersion) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let policy = scratch.path().join("policy.yaml");
    let audit = scratch.path().join("audit.jsonl");
    std::fs::write(&policy, POLICY)?;
    let wrapper = scratch.path().join("nodeguard.sh");
    // Report and state files in the scratch folder, not under /var/lib/nodeguard.
    let state = nodeguard_integration::nodeguard::state_args(
        &scratch.path().join("report.json"),
        &scratch.path().join("containers.json"),
    )
    .iter()
    .map(|a| format!("'{a}'"))
    .collect::<Vec<_>>()
    .join(" ");
    // The plugin lives in <instance>/nri/plugins/; containerd's socket in <instance>/.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ninstance=$(cd \"$(dirname \"$0\")/../..\" && pwd)\n\
             exec '{}' serve --policy '{}' --audit-log '{}' {state} --containerd-socket \"$instance/containerd.sock\"\n",
            nodeguard_integration::nodeguard::binary()?.display(),
            policy.display(),
            audit.display()
        ),
    )?;
    let containerd = Containerd::builder(version)
        .nri_plugin("10-nodeguard", &wrapper)
        .start()
        .await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    // containerd 2.1 may serve CRI before the plugin has registered: wait for its first record.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cri.create_container(&pod, &evil("evil")).await {
            Err(e) => {
                ensure!(
                    e.message.contains("[images.allowed]"),
                    "unexpected refusal: {}",
                    e.message
                );
                break;
            }
            Ok(id) => {
                cri.remove_container(&id).await?;
                ensure!(
                    std::time::Instant::now() < deadline,
                    "the pre-installed nodeguard never refused anything"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    run(&cri, &pod, &compliant("app")).await?;
    let records = std::fs::read_to_string(&audit)?;
    ensure!(records.contains(r#""outcome":"refused""#), "{records}");
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_runs_nodeguard_as_a_preinstalled_plugin() -> Result<()> {
    enforces_as_a_preinstalled_plugin(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_runs_nodeguard_as_a_preinstalled_plugin() -> Result<()> {
    enforces_as_a_preinstalled_plugin(ContainerdVersion::V2_1).await
}

/// Pod sysctls live in the pod sandbox's spec, not the container's: nodeguard reads it at
/// container start.
/// Pod sysctls are in the sandbox's spec: nodeguard reads it at RunPodSandbox and refuses the
/// pod there, before its containers, and containerd tears the sandbox down.
async fn judges_pod_sysctls_at_run_pod_sandbox(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let policy = format!("{POLICY}    sysctls:\n      forbidden: ['kernel.shm_rmid_forced']\n");
    let _nodeguard = Nodeguard::start(&containerd, &policy).await?;
    let cri = containerd.cri().await?;
    let mut spec = PodSpec::new("tuned", "default");
    spec.sysctls
        .insert("kernel.shm_rmid_forced".into(), "1".into());
    let err = match cri.run_pod(&spec).await {
        Ok(pod) => anyhow::bail!("a pod with a forbidden sysctl ran: {}", pod.id),
        Err(e) => e,
    };
    ensure!(
        err.message.contains(
            "nodeguard: refused pod default/tuned: sysctl kernel.shm_rmid_forced is forbidden [sysctls]"
        ),
        "unexpected refusal: {}",
        err.message
    );
    let left = cri
        .list_pods()
        .await?
        .into_iter()
        .filter(|p| p.metadata.as_ref().is_some_and(|m| m.name == "tuned"))
        .count();
    ensure!(left == 0, "the refused pod's sandbox stayed");
    let plain = cri.run_pod(&PodSpec::new("plain", "default")).await?;
    run(&cri, &plain, &compliant("app")).await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_judges_pod_sysctls_at_run_pod_sandbox() -> Result<()> {
    judges_pod_sysctls_at_run_pod_sandbox(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_judges_pod_sysctls_at_run_pod_sandbox() -> Result<()> {
    judges_pod_sysctls_at_run_pod_sandbox(ContainerdVersion::V2_1).await
}
