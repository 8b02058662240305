//! Operating nodeguard on a real containerd (1.7 and 2.1), driven through CRI as the kubelet
//! drives it: `/readyz` and `/metrics` follow the NRI registration; what runs while nodeguard is
//! down is reported (and, when a rule says `remediate: stop`, stopped) once it is back; the
//! policy is hot-reloaded and a broken one keeps the last good policy in force; a containerd
//! crash in the middle of a burst of creations lets nothing noncompliant through; and an audit
//! log whose directory disappears neither changes a decision nor loses a record.
//!
//! Every wait below polls for a state with a generous bound; nothing asserts how long
//! anything took.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::http::Response;
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, CriError, Nodeguard, PodSpec, images,
};
use serde_json::Value;
use tokio::sync::watch;

use crate::enforcement::{POLICY, refused_at_create, run};

const MIB: i64 = 1 << 20;

/// [`POLICY`] with the forbidden registry allowed too.
const POLICY_ALLOWING_EVIL: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: e2e
spec:
  rules:
    images:
      allowed: ['^registry\.local/', '^evil\.example/']
    privileged: {}
    resources:
      requireLimits: [cpu, memory]
    hostNamespaces:
      allowed: [network]
";

/// [`POLICY`] where a privileged container found running at registration is stopped.
const POLICY_STOPPING_PRIVILEGED: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: e2e
spec:
  rules:
    images:
      allowed: ['^registry\.local/']
    privileged: {remediate: stop}
    resources:
      requireLimits: [cpu, memory]
    hostNamespaces:
      allowed: [network]
";

/// A shell that ignores SIGTERM (as PID 1 without a handler would anyway): only SIGKILL
/// stops it, so its exit code shows how it was stopped.
const IGNORE_SIGTERM: [&str; 3] = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"];

/// Generous bound for anything the daemons do in the background.
const SETTLE: Duration = Duration::from_secs(30);

fn compliant(name: &str) -> ContainerSpec {
    ContainerSpec::new(name, images::BUSYBOX)
        .sleep_forever()
        .limits(250, 64 * MIB)
}

/// From the registry [`POLICY`] does not allow, otherwise compliant.
fn evil(name: &str) -> ContainerSpec {
    ContainerSpec::new(name, images::EVIL_BUSYBOX)
        .sleep_forever()
        .limits(250, 64 * MIB)
}

/// From the allowed registry, without the limits every policy here requires.
fn unlimited(name: &str) -> ContainerSpec {
    ContainerSpec::new(name, images::BUSYBOX).sleep_forever()
}

fn privileged_pod(name: &str) -> PodSpec {
    PodSpec {
        privileged: true,
        ..PodSpec::new(name, "default")
    }
}

/// Polls `probe` until it yields `Some`, for at most `timeout`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::new(),
            Err(e) => format!(" (last error: {e:#})"),
        };
        if Instant::now() > deadline {
            bail!("{what}: still not the case after {timeout:?}{last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `/readyz` answers `status`; returns the answer.
async fn readyz_becomes(nodeguard: &Nodeguard, status: u16, why: &str) -> Result<Response> {
    eventually(
        &format!("/readyz answers {status} {why}"),
        SETTLE,
        || async {
            let r = nodeguard.get("/readyz").await?;
            Ok((r.status == status).then_some(r))
        },
    )
    .await
}

/// Waits until `/metrics` shows `name{labels}` at `value`.
async fn metric_becomes(
    nodeguard: &Nodeguard,
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
) -> Result<()> {
    eventually(
        &format!("{name}{labels:?} reaches {value}"),
        SETTLE,
        || async { Ok((nodeguard.metrics().await?.count(name, labels) == value).then_some(())) },
    )
    .await
}

/// Every result of the compliance report about the container `id`.
pub(crate) fn results_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["results"].as_array().into_iter().flatten())
        .filter(|r| r["properties"]["containerID"] == id)
        .collect()
}

/// How many results of the compliance report fail `rule`.
fn failing(report: &Value, rule: &str) -> usize {
    report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["results"].as_array().into_iter().flatten())
        .filter(|r| r["rule"] == rule && r["result"] == "fail")
        .count()
}

/// Waits for the report nodeguard writes after its first registration: from then on it knows
/// what runs, and anything else that shows up after a restart started while it was away.
async fn first_report(nodeguard: &Nodeguard) -> Result<Value> {
    eventually("the report of the first registration", SETTLE, || async {
        nodeguard.report()
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. /readyz and /metrics follow the registration.

async fn readiness_and_metrics_follow_registration(version: ContainerdVersion) -> Result<()> {
    let mut containerd = Containerd::start(version).await?;
    // nodeguard comes up while containerd is down (a node booting, containerd restarting):
    // there is nothing to register with.
    containerd.stop();
    let nodeguard = Nodeguard::builder(&containerd, POLICY)
        .metrics()
        .no_wait()
        .start()
        .await?;
    eventually("/healthz answers 200", SETTLE, || async {
        Ok(nodeguard
            .get("/healthz")
            .await
            .ok()
            .filter(|r| r.status == 200))
    })
    .await?;
    let ready = nodeguard.get("/readyz").await?;
    ensure!(
        ready.status == 503 && ready.body.starts_with("not ready: not registered"),
        "/readyz before any registration: {ready:?}"
    );
    let metrics = nodeguard.metrics().await?;
    ensure!(metrics.value("nodeguard_nri_connected", &[]) == Some(0.0));
    ensure!(metrics.count("nodeguard_nri_registrations_total", &[]) == 0.0);

    // containerd comes up: nodeguard registers and is ready.
    containerd.start_again().await?;
    let ready = readyz_becomes(&nodeguard, 200, "once containerd is up").await?;
    ensure!(
        ready
            .body
            .starts_with("ready: registered with the runtime; policy generation 1"),
        "{ready:?}"
    );
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    refused_at_create(&cri, &pod, &evil("evil"), &["[images.allowed]"]).await?;
    run(&cri, &pod, &compliant("app")).await?;
    let metrics = nodeguard.metrics().await?;
    let expect = [
        (
            "nodeguard_decisions_total",
            vec![("phase", "create"), ("outcome", "refused")],
            1.0,
        ),
        (
            "nodeguard_violations_total",
            vec![
                ("phase", "create"),
                ("rule", "images.allowed"),
                ("effect", "enforce"),
            ],
            1.0,
        ),
        (
            "nodeguard_decisions_total",
            vec![("phase", "start"), ("outcome", "allowed")],
            1.0,
        ),
        // The spec was read after the create, off the request path: containerd creates the
        // task (runc create) before it calls StartContainer, which leaves it time to land.
        (
            "nodeguard_start_specs_total",
            vec![("source", "prefetched")],
            1.0,
        ),
        ("nodeguard_nri_connected", vec![], 1.0),
        ("nodeguard_nri_registrations_total", vec![], 1.0),
        ("nodeguard_policy_generation", vec![], 1.0),
    ];
    for (name, labels, value) in &expect {
        ensure!(
            metrics.count(name, labels) == *value,
            "{name}{labels:?} is {:?}, not {value}",
            metrics.value(name, labels)
        );
    }

    // containerd crashes: nodeguard stays alive but is not ready; it is again once containerd
    // is back and it has registered anew.
    containerd.kill();
    let down = readyz_becomes(&nodeguard, 503, "after containerd was killed").await?;
    ensure!(down.body.starts_with("not ready: "), "{down:?}");
    ensure!(nodeguard.get("/healthz").await?.status == 200);
    ensure!(
        nodeguard
            .metrics()
            .await?
            .value("nodeguard_nri_connected", &[])
            == Some(0.0)
    );
    containerd.start_again().await?;
    readyz_becomes(&nodeguard, 200, "once containerd is back").await?;
    let cri = containerd.cri().await?;
    refused_at_create(&cri, &pod, &evil("evil2"), &["[images.allowed]"]).await?;
    let metrics = nodeguard.metrics().await?;
    ensure!(metrics.value("nodeguard_nri_connected", &[]) == Some(1.0));
    ensure!(metrics.value("nodeguard_nri_registrations_total", &[]) == Some(2.0));
    ensure!(
        metrics.count(
            "nodeguard_decisions_total",
            &[("phase", "create"), ("outcome", "refused")]
        ) == 2.0
    );
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_readiness_and_metrics_follow_registration() -> Result<()> {
    readiness_and_metrics_follow_registration(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_readiness_and_metrics_follow_registration() -> Result<()> {
    readiness_and_metrics_follow_registration(ContainerdVersion::V2_1).await
}

// ---------------------------------------------------------------------------------------------
// 2. The fail-open window: what runs while nodeguard is down.

/// While nodeguard is down, containerd 1.7 and 2.1 run whatever the kubelet asks for (they
/// have no way to require a plugin). nodeguard, back, names it in its report.
async fn reports_containers_started_while_away(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let mut nodeguard = Nodeguard::start(&containerd, POLICY).await?;
    first_report(&nodeguard).await?;
    let cri = containerd.cri().await?;

    nodeguard.kill().await?;
    let admin = cri.run_pod(&privileged_pod("admin")).await?;
    let root = run(&cri, &admin, &compliant("root").privileged())
        .await
        .context("nothing refuses a privileged container while nodeguard is down")?;
    let web = cri.run_pod(&PodSpec::new("web", "default")).await?;
    let app = run(&cri, &web, &compliant("app")).await?;

    nodeguard.restart().await?;
    // The registration audit runs after nodeguard answered Synchronize.
    let report = eventually(
        "a report naming the privileged container",
        SETTLE,
        || async {
            Ok(nodeguard
                .report()?
                .filter(|r| !results_for(r, &root).is_empty()))
        },
    )
    .await?;
    let privileged = results_for(&report, &root)
        .into_iter()
        .find(|r| r["rule"] == "privileged")
        .with_context(|| format!("no privileged result for root in {report:#}"))?;
    for (key, want) in [
        ("result", "fail"),
        ("policy", "e2e"),
        ("source", "nodeguard"),
    ] {
        ensure!(
            privileged[key] == want,
            "{key} is not {want}: {privileged:#}"
        );
    }
    let properties = &privileged["properties"];
    for (key, want) in [
        ("container", "root"),
        ("effect", "enforce"),
        ("startedWhileAway", "true"),
    ] {
        ensure!(
            properties[key] == want,
            "{key} is not {want}: {privileged:#}"
        );
    }
    ensure!(
        privileged["resources"][0]["name"] == "admin"
            && privileged["resources"][0]["namespace"] == "default",
        "{privileged:#}"
    );
    // The compliant container started while away too; it passes every rule.
    let app_results = results_for(&report, &app);
    ensure!(
        !app_results.is_empty()
            && app_results
                .iter()
                .all(|r| r["result"] == "pass" && r["properties"]["startedWhileAway"] == "true"),
        "results of app: {app_results:#?}"
    );

    // `nodeguard report` prints it and exits 1 (a container fails a rule).
    let out = nodeguard.report_command(&[]).await?;
    let table = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(1),
        "nodeguard report exited with {}: {table}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = table
        .lines()
        .find(|l| l.contains("root"))
        .with_context(|| format!("no line for root in:\n{table}"))?;
    for needle in [
        "admin",
        "FAIL",
        "privileged",
        "started while nodeguard was not running",
    ] {
        ensure!(line.contains(needle), "{needle:?} missing from {line:?}");
    }
    ensure!(!table.contains(" app "), "passing results shown:\n{table}");
    let out = nodeguard.report_command(&["--format", "json"]).await?;
    ensure!(out.status.code() == Some(1), "{}", out.status);
    let json: Value = serde_json::from_slice(&out.stdout).context("report --format json")?;
    ensure!(
        results_for(&json, &root)
            .iter()
            .any(|r| r["rule"] == "privileged" && r["result"] == "fail"),
        "{json:#}"
    );

    // The audit log has the sync record; the audit itself stops nothing.
    let record = nodeguard
        .audit_records()
        .into_iter()
        .find(|r| r["phase"] == "sync" && r["container"]["id"] == root.as_str())
        .context("no sync record for root")?;
    ensure!(record["startedWhileAway"] == true, "{record}");
    cri.wait_container_state(
        &root,
        ContainerState::ContainerRunning,
        Duration::from_secs(1),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_reports_containers_started_while_away() -> Result<()> {
    reports_containers_started_while_away(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_reports_containers_started_while_away() -> Result<()> {
    reports_containers_started_while_away(ContainerdVersion::V2_1).await
}

/// With `privileged: {remediate: stop}`, the privileged container that started while nodeguard
/// was away is stopped once it is back: SIGTERM, then SIGKILL after `--remediation-grace`.
/// The compliant one keeps running.
async fn stops_what_started_while_away(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let mut nodeguard = Nodeguard::builder(&containerd, POLICY_STOPPING_PRIVILEGED)
        .metrics()
        .args(["--remediation-grace", "2s"])
        .start()
        .await?;
    first_report(&nodeguard).await?;
    let cri = containerd.cri().await?;

    nodeguard.kill().await?;
    let admin = cri.run_pod(&privileged_pod("admin")).await?;
    let root = run(
        &cri,
        &admin,
        &compliant("root").privileged().command(IGNORE_SIGTERM),
    )
    .await
    .context("nothing refuses a privileged container while nodeguard is down")?;
    let web = cri.run_pod(&PodSpec::new("web", "default")).await?;
    let app = run(&cri, &web, &compliant("app")).await?;

    nodeguard.restart().await?;
    let status = cri
        .wait_container_state(&root, ContainerState::ContainerExited, SETTLE)
        .await
        .with_context(|| format!("nodeguard's log:\n{}", nodeguard.log()))?;
    // It ignored SIGTERM: only the SIGKILL after the grace period stopped it.
    ensure!(
        status.exit_code == 128 + 9,
        "root exited with {} ({:?})",
        status.exit_code,
        status.reason
    );
    metric_becomes(
        &nodeguard,
        "nodeguard_remediations_total",
        &[("rule", "privileged"), ("result", "stopped")],
        1.0,
    )
    .await?;
    let stopped = eventually("an audit record of the stop", SETTLE, || async {
        Ok(nodeguard.audit_records().into_iter().find(|r| {
            r["phase"] == "sync"
                && r["outcome"] == "stopped"
                && r["container"]["id"] == root.as_str()
        }))
    })
    .await?;
    ensure!(
        stopped["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["rule"] == "privileged" && v["remediate"] == "stop"),
        "{stopped}"
    );
    let metrics = nodeguard.metrics().await?;
    ensure!(
        metrics.count("nodeguard_remediations_total", &[("result", "failed")]) == 0.0,
        "a remediation failed:\n{}",
        nodeguard.log()
    );

    // The report of that registration says what remediation did, and to whom only.
    let report = nodeguard.report()?.context("no report")?;
    let root_results = results_for(&report, &root);
    ensure!(
        root_results.iter().any(|r| r["rule"] == "privileged"
            && r["result"] == "fail"
            && r["properties"]["startedWhileAway"] == "true"
            && r["properties"]["remediation"]
                .as_str()
                .is_some_and(|s| !s.is_empty())),
        "results of root: {root_results:#?}"
    );
    let app_results = results_for(&report, &app);
    ensure!(
        !app_results.is_empty()
            && app_results
                .iter()
                .all(|r| r["result"] == "pass" && r["properties"].get("remediation").is_none()),
        "results of app: {app_results:#?}"
    );
    // The audit that stopped root is over and named only root: app runs on.
    cri.wait_container_state(
        &app,
        ContainerState::ContainerRunning,
        Duration::from_secs(1),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_stops_what_started_while_away() -> Result<()> {
    stops_what_started_while_away(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_stops_what_started_while_away() -> Result<()> {
    stops_what_started_while_away(ContainerdVersion::V2_1).await
}

// ---------------------------------------------------------------------------------------------
// 3. Hot reload.

/// Policy changes take effect without a restart, on SIGHUP or at the next periodic read; a
/// policy file that is garbage, empty or gone is rejected and the last good policy stays in
/// force. nodeguard stays ready throughout.
async fn reloads_the_policy_and_keeps_the_last_good_one(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let nodeguard = Nodeguard::builder(&containerd, POLICY)
        .metrics()
        .args(["--reload-interval", "1s", "--audit-interval", "5s"])
        .start()
        .await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    refused_at_create(&cri, &pod, &evil("x"), &["[images.allowed]"]).await?;

    // The registry is allowed now: the same create succeeds.
    nodeguard.write_policy(POLICY_ALLOWING_EVIL)?;
    nodeguard.sighup()?;
    metric_becomes(&nodeguard, "nodeguard_policy_generation", &[], 2.0).await?;
    let x = run(&cri, &pod, &evil("x"))
        .await
        .context("the reloaded policy allows evil.example")?;
    let metrics = nodeguard.metrics().await?;
    ensure!(metrics.count("nodeguard_policy_reloads_total", &[("result", "success")]) == 1.0);
    ensure!(metrics.value("nodeguard_policy_last_reload_success", &[]) == Some(1.0));
    ensure!(nodeguard.get("/readyz").await?.status == 200);

    // Broken policies: each is rejected once, and the allowing policy stays in force.
    let steps: [(&str, Option<&str>); 3] = [
        ("garbage", Some("spec: [this is {not a policy\n\u{0}\u{1}")),
        ("empty", Some("")),
        ("deleted", None),
    ];
    for (failures, (step, text)) in (1..).zip(steps) {
        match text {
            Some(text) => nodeguard.write_policy(text)?,
            None => std::fs::remove_file(nodeguard.policy_path())?,
        }
        nodeguard.sighup()?;
        metric_becomes(
            &nodeguard,
            "nodeguard_policy_reloads_total",
            &[("result", "failure")],
            f64::from(failures),
        )
        .await
        .with_context(|| format!("{step} policy"))?;
        let metrics = nodeguard.metrics().await?;
        ensure!(
            metrics.value("nodeguard_policy_last_reload_success", &[]) == Some(0.0),
            "{step}"
        );
        ensure!(
            metrics.value("nodeguard_policy_generation", &[]) == Some(2.0),
            "{step}"
        );
        let ready = nodeguard.get("/readyz").await?;
        ensure!(
            ready.status == 200 && ready.body.contains("the last good policy is in force"),
            "{step}: {ready:?}"
        );
        // Still the allowing policy: no limits is refused, evil.example runs.
        refused_at_create(
            &cri,
            &pod,
            &unlimited(&format!("unlimited-{step}")),
            &["[resources.limits]"],
        )
        .await
        .with_context(|| format!("{step} policy"))?;
        run(&cri, &pod, &evil(&format!("x-{step}")))
            .await
            .with_context(|| format!("{step} policy"))?;
    }

    // A good policy again, without SIGHUP: the periodic read (--reload-interval) finds it.
    nodeguard.write_policy(POLICY)?;
    metric_becomes(&nodeguard, "nodeguard_policy_generation", &[], 3.0).await?;
    refused_at_create(&cri, &pod, &evil("x-again"), &["[images.allowed]"]).await?;
    let metrics = nodeguard.metrics().await?;
    ensure!(metrics.value("nodeguard_policy_last_reload_success", &[]) == Some(1.0));
    ensure!(metrics.count("nodeguard_policy_reloads_total", &[("result", "success")]) == 2.0);
    ensure!(metrics.count("nodeguard_policy_reloads_total", &[("result", "failure")]) == 3.0);
    let ready = nodeguard.get("/readyz").await?;
    ensure!(
        ready.status == 200 && ready.body.contains("policy generation 3"),
        "{ready:?}"
    );
    ensure!(!ready.body.contains("rejected"), "{ready:?}");

    // Every reload re-audits what runs, by the new policy: the evil.example containers that
    // generation 2 let run fail images.allowed in the report of generation 3.
    eventually("the audit after a reload", SETTLE, || async {
        Ok(nodeguard.log().contains("policy-reload").then_some(()))
    })
    .await?;
    let generation = |report: &Value| {
        report["items"][0]["metadata"]["annotations"]["nodeguard.io/policy-generation"].clone()
    };
    let report = eventually("a report of generation 3", SETTLE, || async {
        Ok(nodeguard.report()?.filter(|r| generation(r) == "3"))
    })
    .await?;
    ensure!(
        failing(&report, "images.allowed") == 4,
        "x and its three siblings now fail images.allowed: {report:#}"
    );
    // And the periodic audit (--audit-interval 5s) keeps the report current, without the
    // containers that ended since: nodeguard does not subscribe to NRI's stop and remove
    // events, it asks containerd's task list before each audit.
    ensure!(!results_for(&report, &x).is_empty(), "x runs: {report:#}");
    cri.stop_container(&x, 10).await?;
    cri.remove_container(&x).await?;
    let report = eventually("a periodic audit without x", SETTLE, || async {
        Ok(nodeguard.report()?.filter(|r| {
            r["items"][0]["metadata"]["annotations"]["nodeguard.io/trigger"] == "periodic"
                && results_for(r, &x).is_empty()
        }))
    })
    .await?;
    ensure!(
        failing(&report, "images.allowed") == 3,
        "x's three siblings still run: {report:#}"
    );
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_reloads_the_policy_and_keeps_the_last_good_one() -> Result<()> {
    reloads_the_policy_and_keeps_the_last_good_one(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_reloads_the_policy_and_keeps_the_last_good_one() -> Result<()> {
    reloads_the_policy_and_keeps_the_last_good_one(ContainerdVersion::V2_1).await
}

// ---------------------------------------------------------------------------------------------
// 4. containerd crashes during a burst of creations.

/// How one container of the burst ended.
#[derive(Debug)]
enum Judged {
    /// Created and started; the container id.
    Running(String),
    /// Refused by nodeguard; the message.
    Refused(String),
}

fn refused_by_nodeguard(e: &CriError) -> bool {
    e.message.contains("nodeguard: refused container")
}

/// Runs a pod and creates and starts `spec` in it, as the kubelet does for a new pod. A
/// refusal is an answer; any other failure is an error.
async fn create_and_start(
    cri: &CriClient,
    pod: &PodSpec,
    spec: &ContainerSpec,
) -> Result<Judged, CriError> {
    let pod = cri.run_pod(pod).await?;
    let id = match cri.create_container(&pod, spec).await {
        Ok(id) => id,
        Err(e) if refused_by_nodeguard(&e) => return Ok(Judged::Refused(e.message)),
        Err(e) => return Err(e),
    };
    match cri.start_container(&id).await {
        Ok(()) => Ok(Judged::Running(id)),
        Err(e) if refused_by_nodeguard(&e) => Ok(Judged::Refused(e.message)),
        Err(e) => Err(e),
    }
}

/// Counters the burst shares with the test that crashes containerd under it.
#[derive(Debug, Default)]
struct Burst {
    /// Containers judged (running or refused).
    judged: AtomicUsize,
    /// Tasks whose attempt failed and that wait for the signal to try again.
    parked: AtomicUsize,
}

/// One pod of the burst: tries until judged. An attempt that fails (containerd died under it)
/// is not retried before the test signals that nodeguard has registered again, with a fresh
/// CRI connection, in a new pod. Returns how it ended and whether it took a retry.
async fn burst_one(
    name: String,
    spec: ContainerSpec,
    mut cri: CriClient,
    mut reconnected: watch::Receiver<Option<CriClient>>,
    burst: Arc<Burst>,
) -> Result<(Judged, bool)> {
    for attempt in 0.. {
        let pod = PodSpec::new(format!("burst-{name}-{attempt}"), "burst");
        match create_and_start(&cri, &pod, &spec).await {
            Ok(judged) => {
                burst.judged.fetch_add(1, Ordering::SeqCst);
                return Ok((judged, attempt > 0));
            }
            // Broken by the crash (or by whatever else): try again once nodeguard is back.
            Err(_) if attempt == 0 => {
                burst.parked.fetch_add(1, Ordering::SeqCst);
                let fresh = reconnected
                    .wait_for(Option::is_some)
                    .await
                    .context("the test ended without reconnecting")?;
                cri = fresh.clone().context("signalled without a client")?;
            }
            // containerd can fail a sandbox once more after its own crash (an overlayfs
            // snapshot left by the killed instance: "failed to rename ... file exists"); the
            // kubelet retries such failures, and so does this, a few times.
            Err(e) if attempt < 4 && containerd_recovering(&e.to_string()) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("{name}: attempt {attempt}, after nodeguard reconnected: {e}"),
        }
    }
    unreachable!("the loop returns")
}

/// Whether a CRI error is containerd still recovering from its crash rather than a verdict:
/// its snapshotter tripping over what the killed instance left behind.
fn containerd_recovering(error: &str) -> bool {
    error.contains("failed to rename") && error.contains("file exists")
}

/// Checks how a container of the burst ended: compliant ones run, the others are refused
/// with nodeguard's message.
fn check_judged(name: &str, judged: &Judged) -> Result<()> {
    match judged {
        Judged::Running(_) if name.starts_with("ok-") => Ok(()),
        Judged::Refused(message) if name.starts_with("bad-") => {
            let needles = [
                format!(r#"nodeguard: refused container "{name}" in pod burst/"#),
                "[images.allowed]".to_string(),
            ];
            for needle in &needles {
                ensure!(
                    message.contains(needle),
                    "refusal of {name} lacks {needle:?}: {message}"
                );
            }
            Ok(())
        }
        other => bail!("{name} ended as {other:?}"),
    }
}

fn burst_spec(i: usize) -> (String, ContainerSpec) {
    if i.is_multiple_of(2) {
        let name = format!("ok-{i}");
        let spec = compliant(&name);
        (name, spec)
    } else {
        let name = format!("bad-{i}");
        let spec = evil(&name);
        (name, spec)
    }
}

/// SIGKILLs containerd while 20 pods (half compliant, half from a forbidden registry) are
/// being created concurrently, and starts it again.
///
/// What is guaranteed, and asserted:
/// - a container judged before the crash was judged by a registered nodeguard;
/// - the attempts the crash broke are retried only once nodeguard has registered with the new
///   containerd (readyz 200 again), and so are judged by it. (A kubelet retrying blindly could
///   get a noncompliant container started in between: containerd 1.7 and 2.1 serve CRI before
///   nodeguard has reconnected and do not wait for it. That is the fail-open window of
///   docs/security.md, which the tests above cover with the report and remediation.)
///   To make sure no attempt reaches the new containerd early, containerd is started again
///   only once every task has either finished or failed and parked;
/// - a broken attempt may have left its container in any state (never created, created,
///   even started when it was compliant): those are not asserted on, except that nothing
///   noncompliant runs at the end — nodeguard refuses the forbidden image at create, so
///   none of them can have been created at all.
async fn containerd_crash_during_a_burst(version: ContainerdVersion) -> Result<()> {
    const PODS: usize = 20;
    let mut containerd = Containerd::start(version).await?;
    let nodeguard = Nodeguard::builder(&containerd, POLICY)
        .metrics()
        .start()
        .await?;
    let cri = containerd.cri().await?;
    let burst = Arc::new(Burst::default());
    let (reconnect, reconnected) = watch::channel(None::<CriClient>);
    let mut tasks = Vec::new();
    for i in 0..PODS {
        let (name, spec) = burst_spec(i);
        tasks.push((
            name.clone(),
            tokio::spawn(burst_one(
                name,
                spec,
                cri.clone(),
                reconnected.clone(),
                Arc::clone(&burst),
            )),
        ));
    }

    // In the middle of the burst: a few containers judged, the others in flight.
    eventually(
        "the first containers of the burst are judged",
        SETTLE,
        || async { Ok((burst.judged.load(Ordering::SeqCst) >= 3).then_some(())) },
    )
    .await?;
    containerd.kill();
    let judged_before = burst.judged.load(Ordering::SeqCst);
    eventually(
        "every task of the burst finished or failed",
        Duration::from_secs(90),
        || async {
            let settled = burst.judged.load(Ordering::SeqCst) + burst.parked.load(Ordering::SeqCst);
            Ok((settled == PODS).then_some(()))
        },
    )
    .await?;
    ensure!(
        burst.parked.load(Ordering::SeqCst) > 0,
        "the burst finished before containerd was killed ({judged_before} judged): nothing was in flight"
    );

    containerd.start_again().await?;
    readyz_becomes(&nodeguard, 200, "after containerd restarted").await?;
    ensure!(
        nodeguard
            .metrics()
            .await?
            .value("nodeguard_nri_registrations_total", &[])
            == Some(2.0)
    );
    let cri = containerd.cri().await?;
    reconnect.send_replace(Some(cri.clone()));

    let mut retried = 0;
    let mut outcomes = Vec::new();
    for (name, task) in tasks {
        let (judged, after_crash) = task.await.context("a burst task panicked")??;
        retried += usize::from(after_crash);
        check_judged(&name, &judged)
            .with_context(|| format!("retried after the crash: {after_crash}"))?;
        outcomes.push((name, judged));
    }
    eprintln!(
        "{version}: {judged_before} containers judged before the crash, {retried} retried after it"
    );

    // A second wave, all after the reconnection.
    let mut wave = Vec::new();
    for i in PODS..PODS + 6 {
        let (name, spec) = burst_spec(i);
        let cri = cri.clone();
        wave.push((
            name.clone(),
            tokio::spawn(async move {
                let pod = PodSpec::new(format!("wave-{name}"), "burst");
                create_and_start(&cri, &pod, &spec).await
            }),
        ));
    }
    for (name, task) in wave {
        let judged = task.await.context("a wave task panicked")??;
        check_judged(&name, &judged)?;
        outcomes.push((name, judged));
    }

    // At the end: every compliant container judged runs, and nothing from the forbidden
    // registry exists in any state.
    let containers = cri.list_containers(None).await?;
    let running: BTreeSet<String> = containers
        .iter()
        .filter(|c| c.state == ContainerState::ContainerRunning as i32)
        .map(|c| c.id.clone())
        .collect();
    for (name, judged) in &outcomes {
        if let Judged::Running(id) = judged {
            ensure!(running.contains(id), "{name} ({id}) is not running");
        }
    }
    let noncompliant: Vec<String> = containers
        .iter()
        .filter(|c| {
            c.metadata
                .as_ref()
                .is_some_and(|m| m.name.starts_with("bad-"))
                || c.image
                    .as_ref()
                    .is_some_and(|i| i.image.contains("evil.example"))
        })
        .map(|c| {
            format!(
                "{} ({:?})",
                c.metadata.as_ref().map_or("", |m| m.name.as_str()),
                ContainerState::try_from(c.state)
            )
        })
        .collect();
    ensure!(
        noncompliant.is_empty(),
        "noncompliant containers exist: {noncompliant:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_1_7_crash_during_a_burst_lets_nothing_noncompliant_run() -> Result<()> {
    containerd_crash_during_a_burst(ContainerdVersion::V1_7).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_2_1_crash_during_a_burst_lets_nothing_noncompliant_run() -> Result<()> {
    containerd_crash_during_a_burst(ContainerdVersion::V2_1).await
}

// ---------------------------------------------------------------------------------------------
// 5. The audit log's directory goes away.

/// `(container name, phase, outcome)` of the records about `names`, in file order.
fn decisions_about(records: &[Value], names: &[&str]) -> Vec<(String, String, String)> {
    records
        .iter()
        .filter(|r| {
            r["container"]["name"]
                .as_str()
                .is_some_and(|n| names.contains(&n))
        })
        .map(|r| {
            let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                field(&r["container"]["name"]),
                field(&r["phase"]),
                field(&r["outcome"]),
            )
        })
        .collect()
}

/// The audit log's directory is replaced by a file (root ignores permissions, so a chmod
/// would not stop the writes): every decision is the same as before, the failures are
/// counted, and once the directory is back the records held in memory are written in order.
async fn audit_log_outage_changes_no_decision(version: ContainerdVersion) -> Result<()> {
    let containerd = Containerd::start(version).await?;
    let audit_dir = containerd.dir().join("nodeguard/audit");
    let nodeguard = Nodeguard::builder(&containerd, POLICY)
        .metrics()
        .audit_log(audit_dir.join("audit.jsonl"))
        .start()
        .await?;
    let cri = containerd.cri().await?;
    let pod = cri.run_pod(&PodSpec::new("web", "default")).await?;
    let admin = cri.run_pod(&privileged_pod("admin")).await?;
    let refusal_of = |name: &str| {
        format!(
            r#"nodeguard: refused container "{name}" in pod default/web: image "evil.example/busybox:1" does not match any allowed pattern"#
        )
    };
    run(&cri, &pod, &compliant("before-ok")).await?;
    refused_at_create(
        &cri,
        &pod,
        &evil("before-bad"),
        &[&refusal_of("before-bad")],
    )
    .await?;

    let away = containerd.dir().join("nodeguard/audit.away");
    std::fs::rename(&audit_dir, &away)?;
    std::fs::write(&audit_dir, "not a directory\n")?;

    refused_at_create(
        &cri,
        &pod,
        &evil("during-bad"),
        &[&refusal_of("during-bad")],
    )
    .await?;
    run(&cri, &pod, &compliant("during-ok")).await?;
    let root = cri
        .create_container(&admin, &compliant("during-root").privileged())
        .await?;
    let err = cri
        .start_container(&root)
        .await
        .err()
        .context("a privileged container started while the audit log was unwritable")?;
    ensure!(
        err.message.contains(
            r#"nodeguard: refused container "during-root" in pod default/admin: container is privileged [privileged]"#
        ),
        "{}",
        err.message
    );
    let metrics = nodeguard.metrics().await?;
    ensure!(
        metrics.count("nodeguard_audit_log_write_failures_total", &[]) > 0.0,
        "no write failure counted"
    );
    ensure!(metrics.value("nodeguard_audit_log_healthy", &[]) == Some(0.0));
    ensure!(
        metrics.count("nodeguard_audit_log_backlog_records", &[]) >= 5.0,
        "records held: {:?}",
        metrics.value("nodeguard_audit_log_backlog_records", &[])
    );
    ensure!(
        !std::fs::read_to_string(away.join("audit.jsonl"))?.contains("during-"),
        "records went to the file that was moved away"
    );

    // The directory is back: the held records are written (the daemon retries on its own,
    // without waiting for a new decision), in order, after the earlier ones.
    std::fs::remove_file(&audit_dir)?;
    std::fs::rename(&away, &audit_dir)?;
    let during = ["during-bad", "during-ok", "during-root"];
    eventually("the held records are written", SETTLE, || async {
        let written = decisions_about(&nodeguard.audit_records(), &during);
        Ok((written.len() >= 5).then_some(()))
    })
    .await?;
    run(&cri, &pod, &compliant("after-ok")).await?;

    let names = [
        "before-ok",
        "before-bad",
        "during-bad",
        "during-ok",
        "during-root",
        "after-ok",
    ];
    let order: Vec<(String, String)> = decisions_about(&nodeguard.audit_records(), &names)
        .into_iter()
        .map(|(name, phase, _)| (name, phase))
        .collect();
    let expected: Vec<(String, String)> = [
        ("before-ok", "create"),
        ("before-ok", "start"),
        ("before-bad", "create"),
        ("during-bad", "create"),
        ("during-ok", "create"),
        ("during-ok", "start"),
        ("during-root", "create"),
        ("during-root", "start"),
        ("after-ok", "create"),
        ("after-ok", "start"),
    ]
    .iter()
    .map(|(n, p)| (n.to_string(), p.to_string()))
    .collect();
    ensure!(order == expected, "audit log order: {order:#?}");
    let outcomes = decisions_about(&nodeguard.audit_records(), &during);
    ensure!(
        outcomes.contains(&("during-bad".into(), "create".into(), "refused".into()))
            && outcomes.contains(&("during-ok".into(), "start".into(), "allowed".into()))
            && outcomes.contains(&("during-root".into(), "start".into(), "refused".into())),
        "{outcomes:?}"
    );
    let metrics = nodeguard.metrics().await?;
    ensure!(metrics.value("nodeguard_audit_log_healthy", &[]) == Some(1.0));
    ensure!(metrics.count("nodeguard_audit_log_backlog_records", &[]) == 0.0);
    ensure!(metrics.count("nodeguard_audit_log_records_dropped_total", &[]) == 0.0);
    Ok(())
}

#[tokio::test]
async fn containerd_1_7_audit_log_outage_changes_no_decision() -> Result<()> {
    audit_log_outage_changes_no_decision(ContainerdVersion::V1_7).await
}

#[tokio::test]
async fn containerd_2_1_audit_log_outage_changes_no_decision() -> Result<()> {
    audit_log_outage_changes_no_decision(ContainerdVersion::V2_1).await
}
