//! Containers made outside Kubernetes, on a real containerd (1.7 and 2.1): `ctr run` in
//! namespaces `default` and `k8s.io` never reaches NRI, yet the periodic compliance audit finds
//! it through containerd's API within one `--audit-interval`, reports it as a non-Kubernetes
//! workload with its containerd namespace (report, audit log, metrics), stops a privileged one
//! under `remediate: stop`, and passes a compliant one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use nodeguard_integration::{Containerd, ContainerdVersion, Nodeguard, Testbed, images};

use crate::operations::{eventually, results_for};
use crate::smoke::assert_nothing_left;

const POLICY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: e2e
spec:
  rules:
    images:
      allowed: ['^registry\.local/']
    privileged: {remediate: stop}
    hostNamespaces: {}
";

/// One audit interval (nodeguard runs with `--audit-interval 5s`, its smallest step), and
/// room for a loaded machine to run the audit and write the report.
const ONE_AUDIT: Duration = Duration::from_secs(12);

/// `ctr` of this instance in containerd namespace `namespace`.
fn ctr(containerd: &Containerd, namespace: &str) -> Result<tokio::process::Command> {
    let binary: PathBuf = Testbed::locate()?.bin_dir(containerd.version()).join("ctr");
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--address")
        .arg(containerd.socket())
        .arg("--namespace")
        .arg(namespace)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(cmd)
}

/// Runs `ctr -n <namespace> <args>`; its standard output.
async fn run_ctr(containerd: &Containerd, namespace: &str, args: &[&str]) -> Result<String> {
    let output = ctr(containerd, namespace)?
        .args(args)
        .output()
        .await
        .with_context(|| format!("running ctr -n {namespace} {args:?}"))?;
    if !output.status.success() {
        bail!(
            "ctr -n {namespace} {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ctr -n <namespace> run -d` of `image` as container `id` sleeping, in a cgroup under the
/// instance's cgroup root and with runc's state in the instance's folder (so that teardown
/// finds it, and instances running side by side never share a container id).
async fn ctr_run(
    containerd: &Containerd,
    namespace: &str,
    id: &str,
    image: &str,
    privileged: bool,
) -> Result<()> {
    let cgroup = format!("{}/{namespace}-{id}", containerd.cgroup_root());
    // runc's state in the instance's folder, as for its CRI containers: ctr's default
    // (/run/containerd/runc/<namespace>) is the host's, shared by every containerd.
    let runc_root = containerd.dir().join("runc").display().to_string();
    let mut args = vec![
        "run",
        "-d",
        "--null-io",
        "--cgroup",
        &cgroup,
        "--runc-root",
        &runc_root,
    ];
    if privileged {
        args.push("--privileged");
    }
    args.extend([image, id, "sleep", "600"]);
    run_ctr(containerd, namespace, &args).await.map(drop)
}

/// Whether container `id`'s task in `namespace` still runs.
async fn task_running(containerd: &Containerd, namespace: &str, id: &str) -> Result<bool> {
    let tasks = run_ctr(containerd, namespace, &["tasks", "ls"]).await?;
    Ok(tasks.lines().any(|l| {
        let mut fields = l.split_whitespace();
        fields.next() == Some(id) && l.contains("RUNNING")
    }))
}

/// Removes what the test made through `ctr`: tasks, containers, the images imported into
/// `namespace`, and the namespace.
async fn remove(containerd: &Containerd, made: &[(&str, &str)], namespace: &str) -> Result<()> {
    for (ns, id) in made {
        let _ = run_ctr(containerd, ns, &["tasks", "rm", "-f", id]).await;
        run_ctr(containerd, ns, &["containers", "rm", id]).await?;
    }
    let listed = run_ctr(containerd, namespace, &["images", "ls", "-q"]).await?;
    for image in listed.lines().filter(|l| !l.is_empty()) {
        run_ctr(containerd, namespace, &["images", "rm", "--sync", image]).await?;
    }
    // The namespace goes once its content is collected; the instance goes anyway.
    let _ = run_ctr(containerd, "default", &["namespaces", "rm", namespace]).await;
    Ok(())
}

async fn ctr_containers_are_audited(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let testbed = Testbed::locate()?;
    for archive in testbed.image_archives()? {
        run_ctr(
            &containerd,
            "default",
            &["images", "import", &archive.display().to_string()],
        )
        .await?;
    }
    let nodeguard = Nodeguard::builder(&containerd, POLICY)
        .metrics()
        .args(["--audit-interval", "5s", "--remediation-grace", "1s"])
        .start()
        .await?;
    eventually("the report of the registration", ONE_AUDIT, || async {
        nodeguard.report()
    })
    .await?;

    // What NRI never hears of: a privileged container of a forbidden image in `default`, and a
    // compliant one in `k8s.io` made without CRI.
    let made = [("default", "ng-evil"), ("k8s.io", "ng-ok")];
    ctr_run(
        &containerd,
        "default",
        "ng-evil",
        images::EVIL_BUSYBOX,
        true,
    )
    .await?;
    ctr_run(&containerd, "k8s.io", "ng-ok", images::BUSYBOX, false).await?;
    ensure!(task_running(&containerd, "default", "ng-evil").await?);

    let report = eventually(
        "both containers in the report, within one audit interval",
        ONE_AUDIT,
        || async {
            let report = nodeguard.report()?.unwrap_or_default();
            let both = !results_for(&report, "ng-evil").is_empty()
                && !results_for(&report, "ng-ok").is_empty();
            Ok(both.then_some(report))
        },
    )
    .await?;
    // The gauges of the audit that wrote this report (the next one is an interval away).
    let metrics = nodeguard.metrics().await?;
    let evil = results_for(&report, "ng-evil");
    let failed: Vec<&str> = evil
        .iter()
        .filter(|r| r["result"] == "fail")
        .filter_map(|r| r["rule"].as_str())
        .collect();
    ensure!(
        failed.contains(&"privileged") && failed.contains(&"images.allowed"),
        "ng-evil: {evil:#?}"
    );
    for r in &evil {
        ensure!(
            r["properties"]["nonKubernetes"] == "true"
                && r["properties"]["containerdNamespace"] == "default"
                && r["properties"]["image"] == images::EVIL_BUSYBOX
                && r["properties"]["remediation"] == "stopping"
                && r["resources"].as_array().is_some_and(Vec::is_empty),
            "ng-evil is not reported as a non-Kubernetes workload of `default`: {r:#}"
        );
    }
    let ok = results_for(&report, "ng-ok");
    ensure!(
        ok.iter().all(|r| r["result"] == "pass"
            && r["properties"]["containerdNamespace"] == "k8s.io"
            && r["properties"]["nonKubernetes"] == "true"),
        "ng-ok: {ok:#?}"
    );
    ensure!(
        report["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["kind"] == "ClusterPolicyReport"),
        "{report:#}"
    );
    for (namespace, result) in [("default", "fail"), ("k8s.io", "pass")] {
        let n = metrics.count(
            "nodeguard_compliance_non_kubernetes_containers",
            &[("containerd_namespace", namespace), ("result", result)],
        );
        ensure!(n == 1.0, "{namespace}/{result}: {n}");
    }

    // Stopped by remediation: the task is gone, the stop is on record and counted.
    eventually("ng-evil stopped", Duration::from_secs(15), || async {
        Ok((!task_running(&containerd, "default", "ng-evil").await?).then_some(()))
    })
    .await?;
    let stopped = eventually("the stop on record", Duration::from_secs(15), || async {
        Ok(nodeguard
            .audit_records()
            .into_iter()
            .find(|r| r["outcome"] == "stopped" && r["container"]["id"] == "ng-evil"))
    })
    .await?;
    ensure!(
        stopped["nonKubernetes"]["containerdNamespace"] == "default"
            && stopped["phase"] == "sync"
            && stopped["pod"]["namespace"] == "",
        "{stopped:#}"
    );
    let records = nodeguard.audit_records();
    ensure!(
        records.iter().any(|r| r["container"]["id"] == "ng-ok"
            && r["outcome"] == "allowed"
            && r["nonKubernetes"]["containerdNamespace"] == "k8s.io"),
        "no sync record of ng-ok"
    );
    let metrics = nodeguard.metrics().await?;
    ensure!(
        metrics.count(
            "nodeguard_remediations_total",
            &[("rule", "privileged"), ("result", "stopped")]
        ) == 1.0
    );
    ensure!(
        task_running(&containerd, "k8s.io", "ng-ok").await?,
        "the compliant one runs on"
    );
    ensure!(
        !nodeguard.log().contains("cannot list"),
        "{}",
        nodeguard.log()
    );

    drop(nodeguard);
    remove(&containerd, &made, "default").await?;
    let (dir, cgroup_root) = (
        containerd.dir().to_owned(),
        containerd.cgroup_root().to_owned(),
    );
    containerd.shutdown()?;
    assert_nothing_left(&dir, &cgroup_root);
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_ctr_containers_are_audited_and_stopped() -> Result<()> {
    ctr_containers_are_audited(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_ctr_containers_are_audited_and_stopped() -> Result<()> {
    ctr_containers_are_audited(ContainerdVersion::V2_1).await
}
