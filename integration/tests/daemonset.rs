//! The DaemonSet proven: the image `scripts/build-image.sh` builds, and the pod template of
//! `install/kubernetes/overlays/enforce` as kustomize renders it, run on containerd 1.7 and
//! 2.1 the way a kubelet runs it (`nodeguard_integration::daemonset`): its own network
//! namespace on a bridge, every capability dropped, `noNewPrivileges`, RuntimeDefault
//! seccomp, a read-only root, the NRI and containerd socket folders and the node's folders
//! mounted as the manifest says, probed at the manifest's periods.
//!
//! One scenario per version, in the order a node lives it: the pod starts and stays ready;
//! it refuses a noncompliant pod and lets a compliant one run; its audit log and report land
//! on the host; a ConfigMap update is enforced without a restart; a rolling update to a
//! retagged image (`kustomize edit set image`, as docs/install.md says) replaces the pod,
//! the new one registers, names what started meanwhile and finds its own pod compliant (the
//! exemption followed the image); a second nodeguard pod on the node refuses to start; and
//! containerd never logs nodeguard's connection as failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::daemonset::{self, Manifests, Node, ProbeKind, RunningPod};
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, PodSpec, Profile, images,
};
use serde_json::Value;

use crate::enforcement::run;
use crate::operations::{eventually, results_for};

/// How long a state nodeguard reaches on its own may take (registration, reload, audit).
const SETTLE: Duration = Duration::from_secs(60);
/// The image the retagged rendering deploys.
const RETAGGED: &str = "registry.local/nodeguard:e2e";

/// The ConfigMaps the DaemonSet's volumes name, with their rendered data.
fn config_maps(
    manifests: &Manifests,
    template: &daemonset::PodTemplate,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut maps = BTreeMap::new();
    for volume in &template.spec.volumes {
        if let Some(source) = &volume.config_map {
            maps.insert(source.name.clone(), manifests.config_map(&source.name)?);
        }
    }
    Ok(maps)
}

/// `install/` copied to `dir`, with the enforce overlay retagged to [`RETAGGED`] by
/// `kustomize edit set image`, exactly as docs/install.md tells users to; rendered.
fn render_retagged(dir: &Path) -> Result<Manifests> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(daemonset::workspace().join("install"))
        .arg(dir)
        .status()?;
    ensure!(status.success(), "copying install/");
    let overlay = dir.join("install/kubernetes/overlays/enforce");
    let output = Command::new(daemonset::kustomize()?)
        .args(["edit", "set", "image"])
        .arg(format!("ghcr.io/nodeguard/nodeguard={RETAGGED}"))
        .current_dir(&overlay)
        .output()?;
    ensure!(
        output.status.success(),
        "kustomize edit set image: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    daemonset::render(&overlay)
}

/// A pod the sample policies (baseline, and restricted outside the system namespaces) allow.
fn compliant(name: &str) -> (PodSpec, ContainerSpec) {
    let mut pod = PodSpec::new(name, "team-a");
    // On the bridge network: the sample policies refuse host namespaces.
    pod.host_network = false;
    pod.seccomp = Profile::RuntimeDefault;
    let mut container = ContainerSpec::new("app", images::BUSYBOX)
        .sleep_forever()
        .limits(100, 32 << 20);
    container.run_as_user = Some(1000);
    container.run_as_group = Some(1000);
    container.allow_privilege_escalation = Some(false);
    container.capabilities_drop = vec!["ALL".into()];
    container.seccomp = Profile::RuntimeDefault;
    (pod, container)
}

/// Creates and starts the container; the error of the call that failed.
async fn attempt(
    cri: &CriClient,
    name: &str,
    pod_spec: &PodSpec,
    spec: &ContainerSpec,
) -> Result<String> {
    let mut pod_spec = pod_spec.clone();
    pod_spec.name = name.to_owned();
    let pod = cri.run_pod(&pod_spec).await?;
    match run(cri, &pod, spec).await {
        Ok(id) => Ok(id),
        Err(e) => {
            let _ = cri.stop_pod(&pod.id).await;
            let _ = cri.remove_pod(&pod.id).await;
            Err(e)
        }
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn audit_records(node: &Node) -> Vec<Value> {
    std::fs::read_to_string(node.host_path("/var/log/nodeguard").join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for a report in the host's `/var/lib/nodeguard` for which `check` holds.
async fn report_where(node: &Node, what: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
    let path = node.host_path("/var/lib/nodeguard").join("report.json");
    eventually(what, SETTLE, || async {
        Ok(read_json(&path)?.filter(|report| check(report)))
    })
    .await
}

/// Container `id` passes: some result passes, and every other is a skip (what only
/// admission can judge, such as probe hosts).
fn all_pass(report: &Value, id: &str) -> bool {
    let results = results_for(report, id);
    results.iter().any(|r| r["result"] == "pass")
        && results
            .iter()
            .all(|r| r["result"] == "pass" || r["result"] == "skip")
}

/// The pod stayed ready: after its first ready answer, every readiness and liveness call
/// succeeded (waiting for a liveness call, which starts after its initial delay).
async fn stayed_ready(pod: &RunningPod, since: Instant) -> Result<()> {
    eventually("a liveness probe call", SETTLE, || async {
        Ok(pod
            .prober
            .results()
            .iter()
            .any(|r| r.kind == ProbeKind::Liveness && r.at >= since)
            .then_some(()))
    })
    .await?;
    let results = pod.prober.results();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.at >= since && !r.ok())
        .collect();
    ensure!(
        failed.is_empty(),
        "probes failed after the pod was ready: {failed:?}"
    );
    Ok(())
}

async fn the_daemonset_pod_runs_as_a_kubelet_runs_it(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let mut node = Node::prepare(containerd).await?;
    let cri = node.containerd().cri().await?;
    let manifests =
        daemonset::render(&daemonset::workspace().join("install/kubernetes/overlays/enforce"))?;
    let daemonset = manifests.daemonset("nodeguard")?;
    let template = &daemonset.spec.template;
    let namespace = daemonset.metadata.namespace.clone();
    ensure!(namespace == "nodeguard-system", "rendered into {namespace}");
    let maps = config_maps(&manifests, template)?;

    // 1. The pod starts, registers and becomes ready on its pod IP.
    let first = node
        .run_pod(template, &namespace, "nodeguard-x7k2p", &maps)
        .await?;
    let ready_at = first.wait_ready(SETTLE).await?;
    ensure!(
        !first.ip.is_loopback(),
        "the pod runs on the pod network: {}",
        first.ip
    );
    ensure!(
        first.log().contains("registered with the runtime"),
        "{}",
        first.log()
    );
    node.containerd()
        .wait_for_log("plugin \"external:10-nodeguard", Duration::from_secs(10))
        .await
        .or_else(|_| {
            ensure!(
                node.containerd().log().contains("10-nodeguard"),
                "containerd never named 10-nodeguard"
            );
            Ok::<_, anyhow::Error>(())
        })?;
    // The fail-closed drop-in's toleration (containerd 2.2+, not packaged for Debian: only
    // its wiring is checked here) is the annotation the sandbox carries.
    let drop_in = std::fs::read_to_string(
        daemonset::workspace().join("install/containerd/2.x/nodeguard-required.toml"),
    )?;
    let key = drop_in
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tolerate_missing_plugins_annotation = ")
        })
        .map(|v| v.trim_matches(['\'', '"']).to_owned())
        .context("the drop-in names no toleration annotation")?;
    ensure!(
        first.pod.config.annotations.get(&key).map(String::as_str) == Some("true"),
        "the pod's sandbox lacks {key}: \"true\""
    );
    // Its own pod passes every rule of the policy it enforces (the exemption holds).
    let report = report_where(&node, "a report naming nodeguard's own container", |r| {
        !results_for(r, &first.container_id).is_empty()
    })
    .await?;
    ensure!(
        all_pass(&report, &first.container_id),
        "nodeguard finds its own pod failing: {:#?}",
        results_for(&report, &first.container_id)
    );

    // 2. A noncompliant pod is refused, a compliant one runs.
    let mut privileged = PodSpec::new("privileged", "default");
    privileged.privileged = true;
    privileged.host_network = false;
    let refusal = attempt(
        &cri,
        "privileged",
        &privileged,
        &ContainerSpec::new("root", images::BUSYBOX)
            .sleep_forever()
            .privileged(),
    )
    .await
    .err()
    .context("a privileged container ran under the enforce overlay")?;
    ensure!(
        format!("{refusal:#}").contains("nodeguard")
            && format!("{refusal:#}").contains("privileged"),
        "{refusal:#}"
    );
    let (pod_spec, spec) = compliant("web");
    let web = attempt(&cri, "web", &pod_spec, &spec).await?;

    // 3. The audit log and the report are on the host, in the node's folders.
    let records = audit_records(&node);
    ensure!(
        records
            .iter()
            .any(|r| r["outcome"] == "refused" && r["pod"]["name"] == "privileged"),
        "no refusal of the privileged pod in the host's audit log: {records:#?}"
    );
    ensure!(
        records
            .iter()
            .any(|r| r["outcome"] == "allowed" && r["pod"]["name"] == "web"),
        "no allowed record of web in the host's audit log"
    );
    let state = node.host_path("/var/lib/nodeguard");
    // The report (written at the registration, step 1) and the state file, which names the
    // running containers every few seconds, are in the host's /var/lib/nodeguard.
    ensure!(
        state.join("report.json").is_file(),
        "no report in {}",
        state.display()
    );
    eventually("the host's state file names web", SETTLE, || async {
        Ok(std::fs::read_to_string(state.join("containers.json"))
            .ok()
            .filter(|text| text.contains(&web))
            .map(|_| ()))
    })
    .await?;

    // 4. A ConfigMap update (the kubelet swaps `..data`) is enforced without a restart.
    let mut updated = maps.values().next().context("no ConfigMap")?.clone();
    updated.insert(
        "e2e-no-busybox.yaml".into(),
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata:\n  name: e2e-no-busybox\n\
         spec:\n  scope:\n    namespaces: [team-a]\n  rules:\n    images:\n      denied: ['^registry\\.local/busybox:']\n"
            .into(),
    );
    first.update_config_map(&updated)?;
    let mut attempts = 0;
    let message = eventually(
        "the updated policy refuses busybox in team-a",
        SETTLE,
        || {
            attempts += 1;
            let name = format!("web-{attempts}");
            let (pod_spec, spec) = compliant(&name);
            let cri = cri.clone();
            async move {
                Ok(match attempt(&cri, &name, &pod_spec, &spec).await {
                    Ok(id) => {
                        cri.stop_container(&id, 0).await?;
                        None
                    }
                    Err(e) => Some(format!("{e:#}")),
                })
            }
        },
    )
    .await?;
    ensure!(
        message.contains(r"matches denied pattern ^registry\.local/busybox:"),
        "{message}"
    );
    ensure!(
        first.status().await?.state == ContainerState::ContainerRunning as i32,
        "nodeguard restarted for the update"
    );
    stayed_ready(&first, ready_at).await?;

    // 5. A rolling update to a retagged image: the pod is replaced; what starts meanwhile is
    //    named; the new nodeguard finds its own pod compliant.
    let tmp = tempfile::tempdir()?;
    let retagged = render_retagged(tmp.path())?;
    let new_daemonset = retagged.daemonset("nodeguard")?;
    let new_template = &new_daemonset.spec.template;
    ensure!(new_template.spec.containers[0].image == RETAGGED);
    let new_maps = config_maps(&retagged, new_template)?;
    let tag = node
        .containerd()
        .ctr()
        .args([
            "images",
            "tag",
            "--force",
            "ghcr.io/nodeguard/nodeguard:0.1.0",
            RETAGGED,
        ])
        .output()
        .await?;
    ensure!(
        tag.status.success(),
        "ctr images tag: {}",
        String::from_utf8_lossy(&tag.stderr)
    );
    eventually(
        "CRI sees the retagged image",
        Duration::from_secs(10),
        || async { Ok(cri.image_status(RETAGGED).await?.map(|_| ())) },
    )
    .await?;

    first.delete().await?;
    let (pod_spec, spec) = compliant("meanwhile");
    // The old policy (with its ConfigMap update) is gone with the pod: busybox runs.
    let meanwhile = attempt(&cri, "meanwhile", &pod_spec, &spec)
        .await
        .context("nothing judges while nodeguard is replaced")?;
    let second = node
        .run_pod(new_template, &namespace, "nodeguard-q9w4z", &new_maps)
        .await?;
    let second_ready = second.wait_ready(SETTLE).await?;
    let report = report_where(
        &node,
        "a report naming the container started meanwhile",
        |r| {
            !results_for(r, &meanwhile).is_empty()
                && !results_for(r, &second.container_id).is_empty()
        },
    )
    .await?;
    ensure!(
        results_for(&report, &meanwhile)
            .iter()
            .all(|r| r["properties"]["startedWhileAway"] == "true"),
        "{report:#}"
    );
    ensure!(
        all_pass(&report, &second.container_id),
        "the retagged nodeguard does not find its own pod compliant: {:#?}",
        results_for(&report, &second.container_id)
    );

    // 6. A second nodeguard pod on the node (a botched rollout): its policy lets it be
    //    created, and it refuses to start beside the first.
    let third = node
        .run_pod(new_template, &namespace, "nodeguard-dup01", &new_maps)
        .await
        .context("the retagged policy refused a second nodeguard pod")?;
    let exited = eventually("the second instance exits", SETTLE, || async {
        let status = third.status().await?;
        Ok((status.state == ContainerState::ContainerExited as i32).then_some(status))
    })
    .await?;
    ensure!(
        exited.exit_code == 2,
        "exit code {}: {}",
        exited.exit_code,
        third.log()
    );
    ensure!(
        third
            .log()
            .contains("another nodeguard is running on this node")
            && third.log().contains("nodeguard-system/nodeguard-q9w4z"),
        "{}",
        third.log()
    );
    stayed_ready(&second, second_ready).await?;
    ensure!(std::fs::read_to_string(state.join(".nodeguard.lock"))?.contains("nodeguard-q9w4z"));

    // 7. Stopping nodeguard's own container (both replacements above) never shows in
    //    containerd's log as a failed plugin.
    third.delete().await?;
    second.delete().await?;
    let log = node.containerd().log();
    if let Some(line) = log
        .lines()
        .find(|l| l.contains("closing plugin") && l.contains("nodeguard"))
    {
        bail!("containerd closed nodeguard's connection as failed: {line}");
    }
    drop(tmp);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_1_7_runs_the_daemonset_pod_as_a_kubelet_does() -> Result<()> {
    the_daemonset_pod_runs_as_a_kubelet_runs_it(ContainerdVersion::V1_7).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_2_1_runs_the_daemonset_pod_as_a_kubelet_does() -> Result<()> {
    the_daemonset_pod_runs_as_a_kubelet_runs_it(ContainerdVersion::V2_1).await
}
