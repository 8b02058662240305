//! Compliance audits of running containers: the inventory NRI keeps current, the
//! PolicyReport written at every registration, containers that started while nodeguard was
//! away, opt-in remediation, and the metrics of it all.

use std::sync::Arc;
use std::time::Duration;

use nodeguard::compliance::report::{self, Outcome};
use nodeguard::compliance::{ComplianceConfig, Trigger};
use nodeguard::enforce::UndecidedAtStart;
use nodeguard::ops::reload::Loaded;
use nodeguard_proto::nri::v1alpha1::{self as nri, ContainerState, plugin_service as method};

use super::fake_runtime::RegisterReply;
use super::harness::{
    Daemon, POLICY, Plugin, compliant_spec, container, container_with_image, pod, privileged_spec,
    running, start_ok, synchronize, wait_until,
};

/// [`POLICY`] with `remediate: stop` on `privileged` only.
fn remediating_policy() -> String {
    POLICY.replace(
        "    privileged: {}\n",
        "    privileged: {remediate: stop}\n",
    )
}

pub(super) fn report_plugin(dir: &tempfile::TempDir, policy: &str, grace: Duration) -> Plugin {
    let path = dir.path().join("report.json");
    let state = dir.path().join("containers.json");
    Plugin::configured(
        policy,
        UndecidedAtStart::Deny,
        ComplianceConfig {
            report_path: Some(path),
            remediation_grace: grace,
            own_pod: Some(("kube-system".into(), "nodeguard-x".into())),
            state_path: Some(state),
            report_sink: None,
        },
    )
}

pub(super) fn results_of<'r>(r: &'r report::ReportFile, id: &str) -> Vec<&'r report::ReportResult> {
    r.items
        .iter()
        .flat_map(|i| &i.results)
        .filter(|res| res.properties.get("containerID").map(String::as_str) == Some(id))
        .collect()
}

#[tokio::test]
async fn an_audit_overlaps_its_spec_reads_and_reports_in_namespace_then_id_order() {
    // Every read takes 20 ms, as containerd's answer does: one at a time, 24 containers
    // would take half a second.
    let most = audit_in_order(8, Duration::from_millis(20)).await;
    assert!(
        (2..=8).contains(&most),
        "reads overlap, at most eight at once: {most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_of_many_containers_builds_views_on_two_tasks_and_still_reports_in_order() {
    // 270 containers: the view builders take batches of 64 in turns (both build, and the last
    // batch is a short one); the report must still come in the snapshot's order.
    let most = audit_in_order(90, Duration::from_millis(2)).await;
    assert!(
        (2..=8).contains(&most),
        "reads overlap, at most eight at once in all: {most}"
    );
}

/// Audits `per_namespace` containers in each of three namespaces, listed out of order, with
/// every spec read taking `latency`; checks the report lists each once, by namespace then
/// id. Returns the most spec reads seen under way at once.
async fn audit_in_order(per_namespace: usize, latency: Duration) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
    let plugin = &daemon.plugin;
    plugin.specs.set_read_latency(latency);
    let (mut pods, mut containers) = (Vec::new(), Vec::new());
    for namespace in ["zeta", "alpha", "mid"] {
        let mut p = pod();
        p.id = format!("sandbox-{namespace}");
        p.namespace = namespace.into();
        for i in (0..per_namespace).rev() {
            let id = format!("{namespace}-c{i:03}");
            plugin.specs.insert(&id, &compliant_spec());
            let mut c = running(&id);
            c.pod_sandbox_id = p.id.clone();
            containers.push(c);
        }
        pods.push(p);
    }
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, pods, containers).await;

    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    let order: Vec<(String, String)> = r
        .items
        .iter()
        .flat_map(|item| {
            item.results.iter().map(|res| {
                (
                    item.metadata.namespace.clone(),
                    res.properties["containerID"].clone(),
                )
            })
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "namespace, then container id");
    let mut ids: Vec<&str> = order.iter().map(|(_, id)| id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3 * per_namespace, "every container judged once");
    assert!(
        order
            .iter()
            .all(|(namespace, id)| id.starts_with(namespace.as_str())),
        "each in its pod's namespace"
    );
    plugin.specs.most_reads_at_once()
}

#[tokio::test]
async fn registration_writes_a_policy_report_of_every_running_container() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
    let plugin = &daemon.plugin;
    plugin.specs.insert("c-ok", &compliant_spec());
    plugin.specs.insert("c-priv", &privileged_spec());
    let mut stopped = running("c-gone");
    stopped.state = ContainerState::ContainerStopped as i32;
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(
        &runtime,
        vec![pod()],
        vec![running("c-ok"), running("c-priv"), stopped],
    )
    .await;

    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    assert_eq!(r.items.len(), 1, "one namespace");
    let ns = &r.items[0];
    assert_eq!(ns.metadata.namespace, "default");
    assert_eq!(
        ns.metadata.annotations["nodeguard.io/trigger"],
        "registration"
    );
    // Every applicable rule of both running containers has a result; the stopped one none.
    assert!(results_of(&r, "c-gone").is_empty());
    let ok = results_of(&r, "c-ok");
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|res| res.result == Outcome::Pass), "{ok:#?}");
    let privileged = results_of(&r, "c-priv");
    let failed: Vec<&str> = privileged
        .iter()
        .filter(|res| res.result == Outcome::Fail)
        .map(|res| res.rule.as_str())
        .collect();
    assert!(failed.contains(&"privileged"), "{privileged:#?}");
    assert_eq!(privileged[0].resources[0].name, "web");
    assert_eq!(
        ns.summary.fail,
        u64::try_from(failed.len()).unwrap(),
        "summary counts results"
    );
    // The first report has nothing to compare with: nothing "started while away".
    assert!(
        r.items[0]
            .results
            .iter()
            .all(|res| !res.properties.contains_key("startedWhileAway"))
    );
    // Sync records in the audit log, nothing refused.
    wait_until("two sync records", || plugin.records("sync").len() == 2).await;
    let metrics = plugin.metrics.encode();
    assert!(
        metrics.contains(r#"nodeguard_compliance_containers{result="fail"} 1"#)
            && metrics.contains(r#"nodeguard_compliance_containers{result="pass"} 1"#),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_constraint_the_node_cannot_judge_skips_its_containers_in_the_report_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // A kind nodeguard does not implement, limited to another namespace's pods: the one pod
    // here is skipped for the first only, and passes the NodePolicy.
    let policy = format!(
        "{POLICY}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCorpPodRule\nmetadata: {{name: corp}}\nspec:\n  parameters: {{maxReplicas: 3}}\n---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCorpPodRule\nmetadata: {{name: corp-elsewhere}}\nspec:\n  match: {{namespaces: [prod]}}\n"
    );
    let daemon = Daemon::start(report_plugin(&dir, &policy, Duration::ZERO));
    let plugin = &daemon.plugin;
    plugin.specs.insert("c-ok", &compliant_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, vec![pod()], vec![running("c-ok")]).await;

    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    let results = results_of(&r, "c-ok");
    let skipped: Vec<(&str, &str, &str)> = results
        .iter()
        .filter(|res| res.result == Outcome::Skip)
        .map(|res| (res.policy.as_str(), res.rule.as_str(), res.message.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [(
            "K8sCorpPodRule/corp",
            "not-enforced",
            "not judged on the node: nodeguard does not implement the kind K8sCorpPodRule"
        )]
    );
    assert!(
        results
            .iter()
            .filter(|res| res.policy == "daemon-test")
            .all(|res| res.result == Outcome::Pass)
    );
    assert_eq!(r.items[0].summary.skip, 1);
    let metrics = plugin.metrics.encode();
    let line = r#"nodeguard_compliance_containers{result="skip"} 1"#;
    assert!(metrics.contains(line), "{line} not in {metrics}");
    daemon.stop().await;
}

#[tokio::test]
async fn containers_started_while_nodeguard_was_away_are_named_at_the_next_registration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    // First run: c-old runs at registration; c-started starts later, judged by nodeguard.
    {
        let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
        daemon.plugin.specs.insert("c-old", &compliant_spec());
        daemon.plugin.specs.insert("c-started", &compliant_spec());
        let runtime = daemon.listener.accept(RegisterReply::Ok).await;
        runtime.registration().await;
        synchronize(&runtime, vec![pod()], vec![running("c-old")]).await;
        wait_until("the first report", || path.exists()).await;
        start_ok(&runtime, "c-started").await;
        // The daemon's periodic task does this every few seconds.
        daemon.plugin.auditor.persist_state().await;
        daemon.stop().await;
    }
    // nodeguard was down; c-new started meanwhile. A new nodeguard registers.
    let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
    for id in ["c-old", "c-started"] {
        daemon.plugin.specs.insert(id, &compliant_spec());
    }
    daemon.plugin.specs.insert("c-new", &privileged_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(
        &runtime,
        vec![pod()],
        vec![running("c-old"), running("c-started"), running("c-new")],
    )
    .await;
    wait_until("the second report", || {
        report::read(&path).is_ok_and(|r| !results_of(&r, "c-new").is_empty())
    })
    .await;
    let r = report::read(&path).unwrap();
    let away = |id| {
        results_of(&r, id)
            .iter()
            .all(|res| res.properties.get("startedWhileAway").map(String::as_str) == Some("true"))
    };
    assert!(away("c-new"));
    for judged in ["c-old", "c-started"] {
        assert!(
            results_of(&r, judged)
                .iter()
                .all(|res| !res.properties.contains_key("startedWhileAway")),
            "{judged} ran under nodeguard"
        );
    }
    let records = daemon.plugin.records("sync");
    let flagged: Vec<&str> = records
        .iter()
        .filter(|r| r["startedWhileAway"] == true)
        .map(|r| r["container"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, ["c-new"], "{records:#?}");
    let table = report::render_table(&r, &report::Filter::default());
    assert!(
        table.contains("[started while nodeguard was not running]") && table.contains("FAIL"),
        "{table}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_inventory_follows_starts_and_is_pruned_to_containerds_tasks_before_each_audit() {
    let (daemon, runtime) = Daemon::connected().await;
    let plugin = &daemon.plugin;
    let inventory = plugin.auditor.inventory();
    for id in ["a", "b", "c"] {
        plugin.specs.insert(id, &compliant_spec());
    }
    plugin.specs.set_tasks(&["a", "b"]);
    synchronize(&runtime, vec![pod()], vec![running("a"), running("b")]).await;
    wait_until("the registration audit", || {
        plugin.records("sync").len() == 2
    })
    .await;
    assert_eq!(inventory.len(), 2);
    plugin.specs.set_tasks(&["a", "b", "c"]);
    start_ok(&runtime, "c").await;
    assert_eq!(inventory.len(), 3, "a started container joins");

    // a exits and b is removed, without a word from NRI (nodeguard does not subscribe to
    // stops and removals): they stay known until the next audit asks containerd.
    plugin.specs.exit("a");
    plugin.specs.exit("b");
    plugin.specs.remove("b");
    assert_eq!(inventory.len(), 3);
    let summary = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert_eq!(summary.containers, 1, "{summary:?}");
    let ids: Vec<String> = inventory
        .snapshot()
        .into_iter()
        .map(|(_, c)| c.id.clone())
        .collect();
    assert_eq!(ids, ["c"]);
    let audited: Vec<_> = plugin
        .records("sync")
        .iter()
        .skip(2)
        .map(|r| r["container"]["id"].clone())
        .collect();
    assert_eq!(audited, ["c"], "the ended containers are not judged");

    // A refused start does not join.
    plugin.specs.insert("p", &privileged_spec());
    let refused = runtime
        .call(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(container("p")),
            },
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(inventory.len(), 1);

    // The last container gone takes its pod out too.
    plugin.specs.exit("c");
    let summary = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert_eq!(summary.containers, 0);
    assert!(inventory.is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn an_audit_judges_the_last_known_inventory_when_containerd_cannot_list_its_tasks() {
    let (daemon, runtime) = Daemon::connected().await;
    let plugin = &daemon.plugin;
    plugin.specs.insert("a", &compliant_spec());
    plugin.specs.fail_task_list();
    synchronize(&runtime, vec![pod()], vec![running("a"), running("gone")]).await;
    wait_until("the registration audit", || {
        plugin.records("sync").len() == 2
    })
    .await;
    let summary = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert_eq!(summary.containers, 2, "nothing dropped on a guess");
    assert_eq!(plugin.auditor.inventory().len(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn stop_and_remove_events_a_runtime_sends_anyway_still_update_the_inventory() {
    let (daemon, runtime) = Daemon::connected().await;
    let inventory = daemon.plugin.auditor.inventory();
    synchronize(
        &runtime,
        vec![pod()],
        vec![running("a"), running("b"), running("c")],
    )
    .await;
    assert_eq!(inventory.len(), 3);
    let _: nri::StopContainerResponse = runtime
        .call_ok(
            method::STOP_CONTAINER,
            &nri::StopContainerRequest {
                pod: Some(pod()),
                container: Some(container("a")),
            },
        )
        .await;
    let _: nri::Empty = runtime
        .call_ok(
            method::STATE_CHANGE,
            &nri::StateChangeEvent {
                event: nri::Event::RemoveContainer as i32,
                pod: Some(pod()),
                container: Some(container("b")),
            },
        )
        .await;
    assert_eq!(inventory.len(), 1);
    let _: nri::RemovePodSandboxResponse = runtime
        .call_ok(
            method::REMOVE_POD_SANDBOX,
            &nri::RemovePodSandboxRequest { pod: Some(pod()) },
        )
        .await;
    assert!(inventory.is_empty(), "a removed pod takes its containers");
    daemon.stop().await;
}

#[tokio::test]
async fn remediation_stops_only_what_a_remediated_rule_finds_at_registration() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(
        &dir,
        &remediating_policy(),
        Duration::from_millis(20),
    ));
    let plugin = &daemon.plugin;
    plugin.specs.insert("c-ok", &compliant_spec());
    plugin.specs.insert("c-priv", &privileged_spec());
    plugin.specs.insert("c-latest", &compliant_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    // c-latest breaks images (not remediated): reported, never stopped.
    synchronize(
        &runtime,
        vec![pod()],
        vec![running("c-ok"), running("c-priv"), {
            let mut c = container_with_image("c-latest", "registry.corp/shop/web:latest");
            c.state = ContainerState::ContainerRunning as i32;
            c
        }],
    )
    .await;
    let specs = plugin.specs.clone();
    wait_until("SIGTERM then SIGKILL", || specs.kills().len() == 2).await;
    assert_eq!(
        plugin.specs.kills(),
        [("c-priv".to_string(), 15), ("c-priv".to_string(), 9)]
    );
    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    assert!(
        results_of(&r, "c-priv").iter().all(|res| res
            .properties
            .get("remediation")
            .map(String::as_str)
            == Some("stopping"))
    );
    let metrics = plugin.metrics.clone();
    wait_until("the remediation metric", || {
        metrics
            .encode()
            .contains(r#"nodeguard_remediations_total{rule="privileged",result="stopped"} 1"#)
    })
    .await;
    let stopped: Vec<serde_json::Value> = plugin
        .records("sync")
        .into_iter()
        .filter(|r| r["outcome"] == "stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "one record of the stop");
    assert_eq!(stopped[0]["container"]["id"], "c-priv");
    let remediated: Vec<&serde_json::Value> = stopped[0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["remediate"] == "stop")
        .collect();
    assert_eq!(remediated.len(), 1, "{:#?}", stopped[0]);
    assert_eq!(remediated[0]["rule"], "privileged");
    // A periodic audit reports but never stops.
    let summary = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert!(summary.stopping.is_empty());
    assert_eq!(plugin.specs.kills().len(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn remediation_never_stops_nodeguards_own_pod() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(&dir, &remediating_policy(), Duration::ZERO));
    let plugin = &daemon.plugin;
    plugin.specs.insert("self", &privileged_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    let mut own = pod();
    own.namespace = "kube-system".into();
    own.name = "nodeguard-x".into();
    synchronize(&runtime, vec![own], vec![running("self")]).await;
    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    let own_results = results_of(&r, "self");
    assert!(own_results.iter().any(|res| res.result == Outcome::Fail));
    assert!(own_results.iter().all(|res| {
        res.properties.get("remediation").map(String::as_str)
            == Some("skipped: nodeguard's own pod")
    }));
    assert!(plugin.specs.kills().is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn an_audit_after_a_policy_change_judges_by_the_new_policy() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
    let plugin = &daemon.plugin;
    let mut spec = compliant_spec();
    spec["annotations"]["io.kubernetes.cri.image-name"] = "docker.io/library/nginx:1.27".into();
    plugin.specs.insert("c1", &spec);
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(
        &runtime,
        vec![pod()],
        vec![{
            let mut c = container_with_image("c1", "docker.io/library/nginx:1.27");
            c.state = ContainerState::ContainerRunning as i32;
            c
        }],
    )
    .await;
    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let before = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert_eq!(before.fail, 1, "docker.io is not allowed");
    plugin.policy.store(std::sync::Arc::new(Loaded {
        generation: 2,
        policy: super::harness::policy(&POLICY.replace(
            r"allowed: ['^registry\.corp/']",
            r"allowed: ['^docker\.io/']",
        )),
    }));
    let after = plugin.auditor.compliance_audit(Trigger::PolicyReload).await;
    assert_eq!((after.fail, after.pass), (0, 1));
    let r = report::read(&path).unwrap();
    assert_eq!(
        r.items[0].metadata.annotations["nodeguard.io/trigger"],
        "policy-reload"
    );
    // The report names the generation of the policy it was judged by.
    assert_eq!(
        r.items[0].metadata.annotations["nodeguard.io/policy-generation"],
        "2"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn after_a_reconnection_only_containers_started_meanwhile_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(report_plugin(&dir, POLICY, Duration::ZERO));
    for id in ["a", "b"] {
        daemon.plugin.specs.insert(id, &compliant_spec());
    }
    let first = daemon.listener.accept(RegisterReply::Ok).await;
    first.registration().await;
    synchronize(&first, vec![pod()], vec![running("a")]).await;
    let path = dir.path().join("report.json");
    wait_until("the first report", || path.exists()).await;
    first.close().await;
    // containerd restarted; b started in between (as if nodeguard were bypassed).
    let second = daemon.listener.accept(RegisterReply::Ok).await;
    second.registration().await;
    synchronize(&second, vec![pod()], vec![running("a"), running("b")]).await;
    let plugin = &daemon.plugin;
    wait_until("the second audit", || {
        plugin
            .records("sync")
            .iter()
            .any(|r| r["container"]["id"] == "b")
    })
    .await;
    let flagged: Vec<String> = plugin
        .records("sync")
        .iter()
        .filter(|r| r["startedWhileAway"] == true)
        .map(|r| r["container"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flagged, ["b"]);
    daemon.stop().await;
}

#[tokio::test]
async fn the_state_file_is_left_alone_until_the_first_synchronize() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("containers.json");
    let previous = r#"{"schema":"nodeguard.io/state/v1","containers":["c-old"]}"#;
    std::fs::write(&state, previous).unwrap();
    let plugin = report_plugin(&dir, POLICY, Duration::ZERO);
    // Not registered yet (containerd slow to come up): nothing known, nothing written.
    plugin.auditor.persist_state().await;
    assert_eq!(std::fs::read_to_string(&state).unwrap(), previous);
    let known = plugin.auditor.take_inventory(
        vec![Arc::new(pod())],
        vec![Arc::new(running("c-old")), Arc::new(running("c-new"))],
    );
    assert_eq!(known, Some(["c-old".to_string()].into()));
    plugin.auditor.persist_state().await;
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(written["containers"], serde_json::json!(["c-new", "c-old"]));
}
