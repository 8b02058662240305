//! Containers made outside Kubernetes (`ctr run`, nerdctl, Docker, buildkit): never reported
//! by NRI, listed through containerd's API at every audit, in every containerd namespace, and
//! judged on their OCI spec and image as non-Kubernetes workloads: in the report, the audit
//! log and the metrics; stopped under `remediate: stop`; left out where the policy's scope
//! says so.

use std::time::Duration;

use nodeguard::compliance::Trigger;
use nodeguard::compliance::report::{self, Outcome};
use nodeguard::ops::reload::Loaded;
use serde_json::Value;

use super::compliance::{report_plugin, results_of};
use super::fake_runtime::RegisterReply;
use super::harness::{
    Daemon, IMAGE, POLICY, Plugin, compliant_spec, policy, privileged_spec, synchronize, wait_until,
};

/// `spec` as `ctr run` or Docker write it: no CRI annotation.
fn made_outside(mut spec: Value) -> Value {
    spec.as_object_mut().expect("spec").remove("annotations");
    spec
}

fn plugin(dir: &tempfile::TempDir, policy: &str) -> Plugin {
    report_plugin(dir, policy, Duration::ZERO)
}

/// The `sync` records of container `id`.
fn sync_records(plugin: &Plugin, id: &str) -> Vec<Value> {
    plugin
        .records("sync")
        .into_iter()
        .filter(|r| r["container"]["id"] == id)
        .collect()
}

#[tokio::test]
async fn a_container_made_outside_kubernetes_is_in_the_report_the_audit_log_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(plugin(&dir, POLICY));
    let plugin = &daemon.plugin;
    let specs = &plugin.specs;
    // `ctr -n default run --privileged evil.example/busybox:1 x`, with CRI's annotations of a
    // compliant pod it does not belong to (not believed).
    let mut disguised = privileged_spec();
    disguised["annotations"]["io.kubernetes.cri.sandbox-namespace"] = "kube-system".into();
    specs.run_outside(
        "default",
        "x",
        "evil.example/busybox:1",
        &disguised,
        &[],
        101,
    );
    // A compliant one made by Docker.
    specs.run_outside(
        "moby",
        "ok",
        IMAGE,
        &made_outside(compliant_spec()),
        &[],
        102,
    );
    // `ctr -n k8s.io run`: not CRI's (no label), judged; CRI's own record is NRI's to report.
    specs.run_outside(
        "k8s.io",
        "in-k8s-io",
        "evil.example/busybox:1",
        &made_outside(compliant_spec()),
        &[],
        103,
    );
    specs.run_outside(
        "k8s.io",
        "cri-made",
        IMAGE,
        &privileged_spec(),
        &[("io.cri-containerd.kind", "container")],
        104,
    );
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, vec![], vec![]).await;

    let path = dir.path().join("report.json");
    wait_until("the report", || path.exists()).await;
    let r = report::read(&path).unwrap();
    assert_eq!(r.items.len(), 1, "{r:#?}");
    let outside = &r.items[0];
    assert_eq!(outside.kind, "ClusterPolicyReport");
    assert_eq!(outside.metadata.name, "nodeguard-node-1-non-kubernetes");
    assert!(
        results_of(&r, "cri-made").is_empty(),
        "NRI reports CRI's containers"
    );
    let x = results_of(&r, "x");
    let failed: Vec<&str> = x
        .iter()
        .filter(|res| res.result == Outcome::Fail)
        .map(|res| res.rule.as_str())
        .collect();
    assert!(
        failed.contains(&"images.allowed") && failed.contains(&"privileged"),
        "{x:#?}"
    );
    for res in &x {
        assert!(res.resources.is_empty(), "no pod: {res:#?}");
        assert_eq!(res.properties["nonKubernetes"], "true");
        assert_eq!(res.properties["containerdNamespace"], "default");
        assert_eq!(res.properties["image"], "evil.example/busybox:1");
        assert!(!res.properties.contains_key("remediation"));
    }
    let ok = results_of(&r, "ok");
    assert!(
        !ok.is_empty() && ok.iter().all(|res| res.result == Outcome::Pass),
        "{ok:#?}"
    );
    assert_eq!(ok[0].properties["containerdNamespace"], "moby");
    let in_k8s_io = results_of(&r, "in-k8s-io");
    assert!(
        in_k8s_io
            .iter()
            .any(|res| res.rule == "images.allowed" && res.result == Outcome::Fail)
            && in_k8s_io[0].properties["containerdNamespace"] == "k8s.io",
        "{in_k8s_io:#?}"
    );

    // One sync record each, naming the containerd namespace; the pod is empty.
    wait_until("three sync records", || plugin.records("sync").len() == 3).await;
    let record = &sync_records(plugin, "x")[0];
    assert_eq!(record["nonKubernetes"]["containerdNamespace"], "default");
    assert_eq!(record["pod"]["namespace"], "");
    assert_eq!(record["container"]["name"], "x");
    assert_eq!(record["outcome"], "audited");
    assert_eq!(sync_records(plugin, "ok")[0]["outcome"], "allowed");

    let metrics = plugin.metrics.encode();
    for line in [
        r#"nodeguard_compliance_non_kubernetes_containers{containerd_namespace="default",result="fail"} 1"#,
        r#"nodeguard_compliance_non_kubernetes_containers{containerd_namespace="moby",result="pass"} 1"#,
        r#"nodeguard_compliance_non_kubernetes_containers{containerd_namespace="k8s.io",result="fail"} 1"#,
        r#"nodeguard_compliance_containers{result="fail"} 2"#,
        r#"nodeguard_compliance_containers{result="pass"} 1"#,
        r#"nodeguard_decisions_total{phase="sync",outcome="audited"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn remediation_stops_one_at_registration_and_one_first_seen_by_a_periodic_audit() {
    let dir = tempfile::tempdir().unwrap();
    let stopping = POLICY.replace(
        "    privileged: {}\n",
        "    privileged: {remediate: stop}\n",
    );
    let plugin = plugin(&dir, &stopping);
    let specs = &plugin.specs;
    let auditor = &plugin.auditor;
    let privileged = made_outside(privileged_spec());
    specs.run_outside("default", "x", IMAGE, &privileged, &[], 101);
    let summary = auditor
        .compliance_audit(Trigger::Registration { known: None })
        .await;
    assert_eq!(
        summary.stopping,
        Vec::<String>::new(),
        "only CRI's are listed there"
    );
    assert_eq!(summary.non_kubernetes, 1);
    wait_until("x stopped", || !specs.outside_running("default", "x")).await;
    assert_eq!(
        specs.outside_kills(),
        [
            ("default".to_string(), "x".to_string(), 15),
            ("default".to_string(), "x".to_string(), 9)
        ]
    );
    wait_until("the stopped record", || {
        plugin
            .records("sync")
            .iter()
            .any(|r| r["outcome"] == "stopped")
    })
    .await;
    let stopped = plugin
        .records("sync")
        .into_iter()
        .find(|r| r["outcome"] == "stopped")
        .unwrap();
    assert_eq!(stopped["nonKubernetes"]["containerdNamespace"], "default");
    assert!(
        stopped["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "privileged" && v["remediate"] == "stop"),
        "{stopped}"
    );
    let metrics = plugin.metrics.encode();
    assert!(
        metrics.contains(r#"nodeguard_remediations_total{rule="privileged",result="stopped"} 1"#),
        "{metrics}"
    );

    // Made after the registration: nothing judged it before it ran, so the first periodic
    // audit that sees it stops it.
    specs.run_outside("moby", "y", IMAGE, &privileged, &[], 201);
    let report_path = dir.path().join("report.json");
    auditor.compliance_audit(Trigger::Periodic).await;
    let r = report::read(&report_path).unwrap();
    assert!(
        results_of(&r, "y")
            .iter()
            .any(|res| res.properties.get("remediation").map(String::as_str) == Some("stopping")),
        "{r:#?}"
    );
    wait_until("y stopped", || !specs.outside_running("moby", "y")).await;

    // First seen by the audit after a policy reload: reported, not stopped (a policy edit
    // never stops containers); later periodic audits have seen it.
    specs.run_outside("moby", "z", IMAGE, &privileged, &[], 301);
    auditor.compliance_audit(Trigger::PolicyReload).await;
    auditor.compliance_audit(Trigger::Periodic).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(specs.outside_running("moby", "z"));
    // Its restart (a new task) is another container, seen for the first time.
    specs.run_outside("moby", "z", IMAGE, &privileged, &[], 302);
    auditor.compliance_audit(Trigger::Periodic).await;
    wait_until("z stopped", || !specs.outside_running("moby", "z")).await;
    assert_eq!(
        specs
            .outside_kills()
            .iter()
            .filter(|(_, id, signal)| id == "z" && *signal == 15)
            .count(),
        1
    );
}

#[tokio::test]
async fn the_policy_scope_says_which_containerd_namespaces_are_judged() {
    let dir = tempfile::tempdir().unwrap();
    let scoped = POLICY.replace(
        "  effect: enforce\n",
        "  effect: enforce\n  scope:\n    excludedContainerdNamespaces: ['build*']\n",
    );
    let plugin = plugin(&dir, &scoped);
    let privileged = made_outside(privileged_spec());
    plugin
        .specs
        .run_outside("buildkit", "b", IMAGE, &privileged, &[], 1);
    plugin
        .specs
        .run_outside("default", "x", IMAGE, &privileged, &[], 2);
    let summary = plugin.auditor.compliance_audit(Trigger::Periodic).await;
    assert_eq!(summary.non_kubernetes, 1);
    let r = report::read(&dir.path().join("report.json")).unwrap();
    assert!(results_of(&r, "b").is_empty());
    assert!(!results_of(&r, "x").is_empty());
    assert!(sync_records(&plugin, "b").is_empty());
    let metrics = plugin.metrics.encode();
    assert!(
        !metrics.contains(r#"containerd_namespace="buildkit""#),
        "{metrics}"
    );

    // A reload that takes the scope away judges it from the next audit on.
    plugin.policy.store(std::sync::Arc::new(Loaded {
        generation: 2,
        policy: policy(POLICY),
    }));
    let summary = plugin.auditor.compliance_audit(Trigger::PolicyReload).await;
    assert_eq!(summary.non_kubernetes, 2);
    assert_eq!(sync_records(&plugin, "b").len(), 1);
}

#[tokio::test]
async fn rules_that_need_a_pod_skip_a_container_made_outside_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let labels = "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: labels}\n\
                  spec:\n  rules:\n    requiredLabels: {labels: [{key: team}]}\n    hostPorts: {}\n    privileged: {}\n";
    let plugin = plugin(&dir, labels);
    plugin.specs.run_outside(
        "default",
        "x",
        IMAGE,
        &made_outside(compliant_spec()),
        &[],
        1,
    );
    plugin.auditor.compliance_audit(Trigger::Periodic).await;
    let r = report::read(&dir.path().join("report.json")).unwrap();
    let mut results: Vec<(&str, Outcome)> = results_of(&r, "x")
        .iter()
        .map(|res| (res.rule.as_str(), res.result))
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            ("hostPorts", Outcome::Skip),
            ("privileged", Outcome::Pass),
            ("requiredLabels", Outcome::Skip)
        ]
    );
    let record = &sync_records(&plugin, "x")[0];
    // Never undecided for want of a pod: the verdict is final.
    assert_eq!(record["outcome"], "allowed", "{record}");
    assert_eq!(record["admissionOnly"].as_array().map(Vec::len), Some(2));
}
