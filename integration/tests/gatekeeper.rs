//! Unmodified Gatekeeper constraints enforced on a real containerd (1.7 and 2.1):
//! `nodeguard serve --policy <dir>` with the constraint files of `testdata/gatekeeper/`, as
//! users apply them to a cluster. Refusals carry the gatekeeper-library's messages and the
//! constraint's kind; the audit log names the constraint; a `dryrun` constraint only audits.

use anyhow::{Context, Result, ensure};
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Nodeguard, Pod, PodSpec, images,
};
use serde_json::Value;

use crate::enforcement::{refused_at_create, run};

/// Four constraints: K8sAllowedRepos (`registry.local/`, not in kube-system),
/// K8sPSPPrivilegedContainer (not in kube-system), K8sContainerLimits (`cpu: 200m`,
/// `memory: 1Gi`), all denying, and K8sDisallowedTags (`latest`) in dry run.
const CONSTRAINTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/gatekeeper");

const ALLOWED_REPOS: &str = "K8sAllowedRepos/repo-is-registry-local";
const PRIVILEGED: &str = "K8sPSPPrivilegedContainer/psp-privileged-container";
const LIMITS: &str = "K8sContainerLimits/container-must-have-limits";
const LATEST_TAG: &str = "K8sDisallowedTags/container-image-must-not-have-latest-tag";

const MIB: i64 = 1 << 20;

/// Within every denying constraint: the allowed registry, limits under the maxima.
fn compliant(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec::new(name, image)
        .sleep_forever()
        .limits(100, 64 * MIB)
}

/// Asserts that creating `spec` is refused with exactly `refusal`: the CRI error's message (as
/// the kubelet reports it) ends with nodeguard's whole refusal, so no other violation is named.
async fn refused(cri: &CriClient, pod: &Pod, spec: &ContainerSpec, refusal: &str) -> Result<()> {
    let message = refused_at_create(cri, pod, spec, &[refusal]).await?;
    ensure!(
        message.ends_with(refusal),
        "refusal of {} names more than {refusal:?}: {message}",
        spec.name
    );
    Ok(())
}

/// The `[policy, rule, effect, message]` of each violation in an audit record.
fn violations(record: &Value) -> Vec<[String; 4]> {
    record["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            ["policy", "rule", "effect", "message"]
                .map(|k| v[k].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

async fn enforces_gatekeeper_constraints(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    // --strict: a constraint the node would not enforce (a note) stops nodeguard from
    // starting, so all four are judged on the node.
    let nodeguard = Nodeguard::builder_with_policy_dir(&containerd, CONSTRAINTS)
        .args(["--strict"])
        .start()
        .await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;

    // Within every constraint: runs.
    run(&cri, &pod, &compliant("app", images::BUSYBOX))
        .await
        .context("compliant container")?;

    // K8sAllowedRepos, at create.
    refused(
        &cri,
        &pod,
        &compliant("evil", images::EVIL_BUSYBOX),
        concat!(
            r#"nodeguard: refused container "evil" in pod default/web: "#,
            r#"container <evil> has an invalid image repo <evil.example/busybox:1>, "#,
            r#"allowed repos are ["registry.local/"] [K8sAllowedRepos]"#
        ),
    )
    .await?;

    // K8sContainerLimits, at create: no limits, no CPU limit, limits over the maxima.
    refused(
        &cri,
        &pod,
        &ContainerSpec::new("unlimited", images::BUSYBOX).sleep_forever(),
        concat!(
            r#"nodeguard: refused container "unlimited" in pod default/web: "#,
            "container <unlimited> has no resource limits [K8sContainerLimits]"
        ),
    )
    .await?;
    refused(
        &cri,
        &pod,
        &ContainerSpec {
            memory_limit_bytes: Some(64 * MIB),
            ..ContainerSpec::new("memory-only", images::BUSYBOX).sleep_forever()
        },
        concat!(
            r#"nodeguard: refused container "memory-only" in pod default/web: "#,
            "container <memory-only> has no cpu limit [K8sContainerLimits]"
        ),
    )
    .await?;
    refused(
        &cri,
        &pod,
        &ContainerSpec::new("greedy", images::BUSYBOX)
            .sleep_forever()
            .limits(500, 2048 * MIB),
        concat!(
            r#"nodeguard: refused container "greedy" in pod default/web: "#,
            "container <greedy> cpu limit <500m> is higher than the maximum allowed of <200m> ",
            "[K8sContainerLimits]; ",
            "container <greedy> memory limit <2Gi> is higher than the maximum allowed of <1Gi> ",
            "[K8sContainerLimits]"
        ),
    )
    .await?;

    // K8sPSPPrivilegedContainer, at start: containerd 1.7-2.1 show privileges only in the
    // committed OCI spec.
    let admin = cri
        .run_pod(&PodSpec {
            privileged: true,
            ..PodSpec::new("admin", "default")
        })
        .await?;
    let id = cri
        .create_container(&admin, &compliant("root", images::BUSYBOX).privileged())
        .await
        .context("a privileged container should pass create (undecided there)")?;
    let Err(err) = cri.start_container(&id).await else {
        anyhow::bail!("a privileged container started:\n{}", nodeguard.log());
    };
    let expected = concat!(
        r#"nodeguard: refused container "root" in pod default/admin: "#,
        "Privileged container is not allowed: root, securityContext.privileged: true ",
        "[K8sPSPPrivilegedContainer]"
    );
    ensure!(
        err.message.ends_with(expected),
        "start refusal is not {expected:?}: {}",
        err.message
    );

    // excludedNamespaces: in kube-system, another registry and privileged are allowed.
    let system = cri
        .run_pod(&PodSpec {
            privileged: true,
            ..PodSpec::new("kube-proxy", "kube-system")
        })
        .await?;
    run(
        &cri,
        &system,
        &compliant("proxy", images::EVIL_BUSYBOX).privileged(),
    )
    .await
    .context("kube-system is excluded from K8sAllowedRepos and K8sPSPPrivilegedContainer")?;

    // The dry-run constraint: the latest tag runs, and is audited.
    run(&cri, &pod, &compliant("latest", images::BUSYBOX_LATEST))
        .await
        .context("a container breaking only the dryrun constraint")?;

    // The audit log names each constraint (Kind/name) with its effect.
    let records = nodeguard.audit_records();
    let record = |name: &str, phase: &str| {
        records
            .iter()
            .find(|r| r["container"]["name"] == name && r["phase"] == phase)
            .with_context(|| format!("no {phase} record for {name} in {records:#?}"))
    };
    let expect = |name: &str, phase: &str, outcome: &str, expected: &[[&str; 4]]| {
        let r = record(name, phase)?;
        ensure!(r["outcome"] == outcome, "{name} at {phase}: {r}");
        ensure!(violations(r) == expected, "{name} at {phase}: {r}");
        Ok(())
    };
    let latest = [[
        LATEST_TAG,
        "K8sDisallowedTags",
        "audit",
        r#"container <latest> uses a disallowed tag <registry.local/busybox:latest>; disallowed tags are ["latest"]"#,
    ]];
    // At create, K8sPSPPrivilegedContainer waits for the start: the outcome is undecided.
    expect("latest", "create", "undecided", &latest)?;
    expect("latest", "start", "audited", &latest)?;
    expect("app", "create", "undecided", &[])?;
    expect("app", "start", "allowed", &[])?;
    expect("proxy", "start", "allowed", &[])?;
    expect(
        "evil",
        "create",
        "refused",
        &[[
            ALLOWED_REPOS,
            "K8sAllowedRepos",
            "enforce",
            r#"container <evil> has an invalid image repo <evil.example/busybox:1>, allowed repos are ["registry.local/"]"#,
        ]],
    )?;
    expect(
        "unlimited",
        "create",
        "refused",
        &[[
            LIMITS,
            "K8sContainerLimits",
            "enforce",
            "container <unlimited> has no resource limits",
        ]],
    )?;
    expect(
        "root",
        "start",
        "refused",
        &[[
            PRIVILEGED,
            "K8sPSPPrivilegedContainer",
            "enforce",
            "Privileged container is not allowed: root, securityContext.privileged: true",
        ]],
    )?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_enforces_gatekeeper_constraints() -> Result<()> {
    enforces_gatekeeper_constraints(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_enforces_gatekeeper_constraints() -> Result<()> {
    enforces_gatekeeper_constraints(ContainerdVersion::V2_1).await
}
