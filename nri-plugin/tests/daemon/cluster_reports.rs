//! The compliance reports written back to the API server (issue 11, findings out), against
//! the in-memory API server: one report per namespace per node, owned by the Node, applied
//! server-side as `nodeguard`; unchanged ones never rewritten; those of namespaces with no
//! container left deleted; a report too large split, every result kept.

use std::time::{Duration, SystemTime};

use nodeguard::cluster::reports::{
    MAX_OBJECT_BYTES, NODE_LABEL, Owner, ReportFormat, ReportWriter, objects,
};
use nodeguard::compliance::report::{self, ContainerFindings, Outcome, ReportContext, ReportFile};
use policy_core::Effect;
use serde_json::{Value, json};

use super::fake_api::FakeApi;

fn container(namespace: &str, pod: &str, outcome: Outcome, message: &str) -> ContainerFindings {
    ContainerFindings {
        namespace: namespace.into(),
        pod: pod.into(),
        pod_uid: format!("uid-{pod}"),
        container: "app".into(),
        container_id: format!("id-{pod}"),
        image: Some("registry.corp/app:1".into()),
        results: vec![(
            "baseline".into(),
            "pss.baseline.privileged",
            outcome,
            Effect::Enforce,
            message.into(),
        )],
        started_while_away: false,
        remediation: None,
        non_kubernetes: None,
    }
}

fn file(containers: &[ContainerFindings], at: u64) -> ReportFile {
    let context = ReportContext {
        node: "node-9",
        generated: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        trigger: "periodic",
        policy_generation: 3,
        policy_sources: "",
    };
    report::build(&context, containers)
}

fn api() -> FakeApi {
    let api = FakeApi::default();
    api.serve_reports("node-9");
    api
}

/// A writer of node `node`'s PolicyReports to `api`, rounds as soon as asked.
fn writer(api: &FakeApi, node: &str) -> ReportWriter {
    ReportWriter::new(
        api.client(),
        node.into(),
        ReportFormat::Policyreport,
        Duration::ZERO,
    )
}

/// What the PolicyReport CRD requires of an object (wgpolicyk8s.io/v1alpha2, written from
/// its documented fields): names, a summary that counts the results, and results with a
/// policy, a known outcome and a source.
fn assert_valid_report(object: &Value) {
    assert!(
        object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    let results = object["results"].as_array().expect("results");
    for r in results {
        assert!(r["policy"].as_str().is_some_and(|p| !p.is_empty()), "{r}");
        assert!(
            ["pass", "fail", "warn", "error", "skip"].contains(&r["result"].as_str().unwrap_or("")),
            "{r}"
        );
        assert_eq!(r["source"], "nodeguard");
    }
    let counted: u64 = ["pass", "fail", "warn", "error", "skip"]
        .iter()
        .map(|k| object["summary"][k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, results.len() as u64, "summary counts every result");
}

#[tokio::test]
async fn one_report_per_namespace_owned_by_the_node_rewritten_only_when_changed() {
    let api = api();
    let mut writer = writer(&api, "node-9");
    let containers = [
        container("shop", "cart", Outcome::Fail, "container is privileged"),
        container("web", "front", Outcome::Pass, ""),
    ];
    writer.round(&file(&containers, 100)).await.unwrap();
    let reports = api.objects("PolicyReport");
    assert_eq!(
        reports.keys().collect::<Vec<_>>(),
        ["shop/nodeguard-node-9", "web/nodeguard-node-9"]
    );
    let shop = &reports["shop/nodeguard-node-9"];
    assert_valid_report(shop);
    assert_eq!(shop["metadata"]["labels"][NODE_LABEL], "node-9");
    assert_eq!(
        shop["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "node-9", "uid": "uid-node-9"}])
    );
    assert_eq!(shop["results"][0]["message"], "container is privileged");
    // Server-side apply, as nodeguard, forced.
    let writes = api.writes();
    assert_eq!(writes.len(), 2);
    assert!(
        writes[0].0.starts_with(
            "PATCH /apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/nodeguard-node-9?"
        ) && writes[0].0.contains("fieldManager=nodeguard")
            && writes[0].0.contains("force=true"),
        "{writes:?}"
    );
    assert_eq!(writes[0].1["kind"], "PolicyReport");

    // The next audit finds the same (only the time differs): nothing is written.
    writer.round(&file(&containers, 200)).await.unwrap();
    assert_eq!(api.writes().len(), 2, "unchanged reports are not rewritten");

    // `front` is gone from the node: web's report is deleted; shop's changed one rewritten.
    let containers = [container("shop", "cart", Outcome::Pass, "")];
    writer.round(&file(&containers, 300)).await.unwrap();
    let writes = api.writes();
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(
        writes[2]
            .0
            .starts_with("PATCH /apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/")
    );
    assert!(
        writes[3].0.starts_with(
            "DELETE /apis/wgpolicyk8s.io/v1alpha2/namespaces/web/policyreports/nodeguard-node-9"
        ),
        "{writes:?}"
    );
    assert_eq!(
        api.objects("PolicyReport").keys().collect::<Vec<_>>(),
        ["shop/nodeguard-node-9"]
    );
}

#[tokio::test]
async fn another_nodes_reports_are_left_alone() {
    let api = api();
    api.apply(json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "nodeguard-node-1", "namespace": "web", "labels": {NODE_LABEL: "node-1"}},
        "spec": {}
    }));
    let mut writer = writer(&api, "node-9");
    writer
        .round(&file(&[container("shop", "cart", Outcome::Pass, "")], 1))
        .await
        .unwrap();
    assert_eq!(
        api.objects("PolicyReport").keys().collect::<Vec<_>>(),
        ["shop/nodeguard-node-9", "web/nodeguard-node-1"]
    );
}

#[test]
fn a_report_too_large_is_split_and_keeps_every_result() {
    let containers: Vec<ContainerFindings> = (0..300)
        .map(|i| {
            container(
                "shop",
                &format!("pod-{i}"),
                Outcome::Fail,
                &"container is privileged ".repeat(20),
            )
        })
        .collect();
    let owner = Owner {
        name: "node-9".into(),
        uid: "u".into(),
    };
    let max = 64 << 10;
    let split = objects(
        &file(&containers, 1),
        &owner,
        ReportFormat::Policyreport,
        max,
    );
    assert!(split.len() > 2, "{} parts", split.len());
    assert_eq!(split[0].name, "nodeguard-node-9");
    assert_eq!(split[1].name, "nodeguard-node-9-2");
    let mut results = 0;
    for part in &split {
        assert!(
            part.object.to_string().len() <= max,
            "{} too large",
            part.name
        );
        assert_valid_report(&part.object);
        results += part.object["results"].as_array().unwrap().len();
    }
    assert_eq!(results, 300, "every failing result is present");
    // The default bound leaves room under etcd's limit.
    const { assert!(MAX_OBJECT_BYTES < 1_500_000) };
}

#[test]
fn openreports_are_the_same_reports_under_their_own_api() {
    let owner = Owner {
        name: "node-9".into(),
        uid: "u".into(),
    };
    let mut outside = container("", "", Outcome::Fail, "container is privileged");
    outside.non_kubernetes = Some("default".into());
    let file = file(&[container("shop", "cart", Outcome::Pass, ""), outside], 1);
    let objects = objects(&file, &owner, ReportFormat::Openreports, MAX_OBJECT_BYTES);
    let kinds: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o.object["apiVersion"].as_str().unwrap(),
                o.object["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("openreports.io/v1alpha1", "Report")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("openreports.io/v1alpha1", "ClusterReport")),
        "{kinds:?}"
    );
    for o in &objects {
        assert_valid_report(&o.object);
    }
}

#[tokio::test]
async fn report_cluster_shows_every_node_and_namespace_and_who_fails_what() {
    let api = api();
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}}),
    );
    for (node, containers) in [
        (
            "node-9",
            vec![
                container("shop", "cart", Outcome::Fail, "container is privileged"),
                container("web", "front", Outcome::Pass, ""),
            ],
        ),
        (
            "node-1",
            vec![container(
                "shop",
                "checkout",
                Outcome::Fail,
                "container is privileged",
            )],
        ),
    ] {
        let context = ReportContext {
            node,
            generated: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
            trigger: "periodic",
            policy_generation: 1,
            policy_sources: "",
        };
        let mut writer = writer(&api, node);
        writer
            .round(&report::build(&context, &containers))
            .await
            .unwrap();
    }
    let reports = nodeguard::cli::report::fetch_cluster(api.client())
        .await
        .unwrap();
    assert_eq!(reports.len(), 3);
    let text = report::render_cluster(&reports, &report::Filter::default());
    assert!(
        text.starts_with("cluster: 2 nodes, 2 namespaces; pass 1  fail 2"),
        "{text}"
    );
    assert!(text.contains("\nnode-1\t0\t1\t"), "{text}");
    assert!(text.contains("\nshop\t0\t2\t"), "{text}");
    assert!(
        text.contains("baseline [pss.baseline.privileged]: 2\n")
            && text.contains("  node-1 shop/checkout app: container is privileged\n")
            && text.contains("  node-9 shop/cart app: container is privileged\n"),
        "{text}"
    );
    let web = report::render_cluster(
        &reports,
        &report::Filter {
            namespace: Some("web".into()),
            all: false,
        },
    );
    assert!(web.contains("no container fails a rule"), "{web}");
}

#[tokio::test]
async fn a_report_another_manager_applied_is_taken_over_by_a_forced_apply() {
    let api = api();
    api.apply(json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "nodeguard-node-9", "namespace": "shop", "labels": {NODE_LABEL: "node-9"}},
        "spec": {}
    }));
    api.managed_by("PolicyReport", "shop/nodeguard-node-9", "kubectl-edit");
    let mut writer = writer(&api, "node-9");
    writer
        .round(&file(
            &[container(
                "shop",
                "cart",
                Outcome::Fail,
                "container is privileged",
            )],
            1,
        ))
        .await
        .expect("a forced apply wins the conflict");
    let report = &api.objects("PolicyReport")["shop/nodeguard-node-9"];
    assert_eq!(report["results"][0]["message"], "container is privileged");
}

#[tokio::test]
async fn a_slow_or_absent_api_server_fails_the_round_and_the_next_one_writes() {
    let api = api();
    api.set_down(true);
    let mut writer = writer(&api, "node-9");
    let reports = file(&[container("shop", "cart", Outcome::Pass, "")], 1);
    assert!(writer.round(&reports).await.is_err());
    api.set_down(false);
    api.set_delay(Duration::from_millis(200));
    writer.round(&reports).await.unwrap();
    assert_eq!(api.objects("PolicyReport").len(), 1);
}

#[tokio::test]
async fn a_report_deleted_behind_nodeguards_back_is_written_again() {
    let api = api();
    let mut writer = writer(&api, "node-9");
    let reports = file(&[container("shop", "cart", Outcome::Pass, "")], 1);
    writer.round(&reports).await.unwrap();
    // Deleted by hand (or by the garbage collector); the content is the same at the next audit.
    let path = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/nodeguard-node-9";
    let client = api.client();
    let request = http::Request::delete(path).body(Vec::new()).unwrap();
    client.request_text(request).await.expect("deleted");
    assert!(api.objects("PolicyReport").is_empty());
    writer.round(&reports).await.unwrap();
    assert_eq!(api.objects("PolicyReport").len(), 1, "written again");
}
