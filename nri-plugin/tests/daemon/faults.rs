//! Faults that must not change a verdict: an audit log that cannot be written, and policy
//! files replaced by garbage, emptied or deleted while the daemon serves.

use std::sync::Arc;

use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::transport::status::Code;
use nodeguard::ops::audit::{AuditFile, Rotation};
use nodeguard::ops::metrics::{self, Metrics};
use nodeguard::ops::policy_files::PolicyPath;
use nodeguard::ops::reload::{Loaded, PolicyHandle};
use nodeguard::ops::reload::{ReloadOutcome, Reloader};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};

use super::fake_runtime::FakeRuntime;
use super::harness::{Daemon, MemorySpecs, POLICY, Plugin, container_with_image, pod, policy};

async fn create(runtime: &FakeRuntime, id: &str, image: &str) -> Result<(), Code> {
    runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container_with_image(id, image)),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.code)
}

#[tokio::test]
async fn an_unwritable_audit_log_never_changes_a_verdict_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let file = Arc::new(AuditFile::open(&logs.join("audit.jsonl"), Rotation::default()).unwrap());
    let metrics = Arc::new(Metrics::new(vec![
        Arc::clone(&file) as Arc<dyn metrics::Source>
    ]));
    let handle: PolicyHandle = Loaded::first(policy(POLICY));
    let enforcer = Enforcer::new(
        handle,
        MemorySpecs::default(),
        Arc::clone(&file) as Arc<dyn nodeguard::ops::audit::AuditSink>,
        Arc::clone(&metrics),
        "node-1".into(),
        UndecidedAtStart::Deny,
    );
    let plugin = Plugin::from_enforcer(enforcer);
    let (daemon, runtime) = Daemon::connected_with(plugin).await;

    assert_eq!(
        create(&runtime, "c1", "docker.io/evil/x:1").await,
        Err(Code::PERMISSION_DENIED)
    );
    // The log's directory goes away (a full or broken disk does the same).
    std::fs::remove_dir_all(&logs).unwrap();
    assert_eq!(
        create(&runtime, "c2", "docker.io/evil/x:1").await,
        Err(Code::PERMISSION_DENIED)
    );
    assert_eq!(create(&runtime, "c3", super::harness::IMAGE).await, Ok(()));
    let text = metrics.encode();
    assert!(
        !text.contains("nodeguard_audit_log_write_failures_total 0\n"),
        "{text}"
    );
    assert!(text.contains("nodeguard_audit_log_healthy 0"), "{text}");
    assert!(
        text.contains("nodeguard_audit_log_backlog_records 2"),
        "{text}"
    );
    // Back again: the held records come out, in order, before new ones.
    std::fs::create_dir(&logs).unwrap();
    assert_eq!(
        create(&runtime, "c4", "docker.io/evil/x:1").await,
        Err(Code::PERMISSION_DENIED)
    );
    let written = std::fs::read_to_string(logs.join("audit.jsonl")).unwrap();
    let ids: Vec<String> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["container"]["id"].to_string()
        })
        .collect();
    assert_eq!(ids, ["\"c2\"", "\"c3\"", "\"c4\""]);
    assert!(metrics.encode().contains("nodeguard_audit_log_healthy 1"));
    daemon.stop().await;
}

#[tokio::test]
async fn policy_files_replaced_by_garbage_emptied_deleted_bombs_or_oversized_leave_the_last_good_policy_enforcing()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    let path = PolicyPath::new(&file);
    let sources = path.read().unwrap();
    let plugin = Plugin::new();
    let metrics = Arc::clone(&plugin.metrics);
    let reloader = Reloader::new(
        path,
        Arc::clone(&plugin.policy),
        sources,
        Arc::clone(&metrics),
    );
    let (daemon, runtime) = Daemon::connected_with(plugin).await;
    let mut n = 0;
    let mut judged = |image: &'static str| {
        n += 1;
        let id = format!("c{n}");
        let runtime = &runtime;
        async move { create(runtime, &id, image).await }
    };
    // A 1 MiB scalar aliased 100 times (100 MiB expanded) and a file over --max-policy-size.
    let alias_bomb = format!(
        "{POLICY}  bomb: &b '{}'\n  copies: [{}]\n",
        "x".repeat(1 << 20),
        vec!["*b"; 100].join(", ")
    );
    let oversized = format!("{POLICY}# {}\n", "x".repeat(5 << 20));
    for (what, content) in [
        ("garbage", Some("\u{0}\u{1}}}} not yaml: [")),
        ("empty", Some("")),
        ("deleted", None),
        ("an alias bomb", Some(alias_bomb.as_str())),
        ("an oversized file", Some(oversized.as_str())),
    ] {
        match content {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        assert!(
            matches!(reloader.check(), ReloadOutcome::Rejected { .. }),
            "{what} is rejected"
        );
        assert_eq!(
            judged("docker.io/evil/x:1").await,
            Err(Code::PERMISSION_DENIED),
            "{what}"
        );
        assert_eq!(judged(super::harness::IMAGE).await, Ok(()), "{what}");
    }
    let text = metrics.encode();
    assert!(
        text.contains(r#"nodeguard_policy_reloads_total{result="failure"} 5"#),
        "{text}"
    );
    assert!(text.contains("nodeguard_policy_generation 1"), "{text}");
    // A good file again is picked up and decides the next call.
    std::fs::write(
        &file,
        POLICY.replace(
            r"allowed: ['^registry\.corp/']",
            r"allowed: ['^docker\.io/']",
        ),
    )
    .unwrap();
    assert_eq!(reloader.check(), ReloadOutcome::Reloaded { generation: 2 });
    assert_eq!(judged("docker.io/evil/x:1").await, Ok(()));
    daemon.stop().await;
}

#[tokio::test]
async fn what_a_reloaded_policy_cannot_enforce_replaces_the_last_ones_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    let unjudged = |names: &[&str]| {
        let mut text = POLICY.to_string();
        for name in names {
            text.push_str(&format!(
                "---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCorpPodRule\nmetadata: {{name: {name}}}\n"
            ));
        }
        text
    };
    std::fs::write(&file, unjudged(&["first"])).unwrap();
    let path = PolicyPath::new(&file);
    let sources = path.read().unwrap();
    let plugin = Plugin::new();
    plugin.policy.store(Arc::new(Loaded {
        generation: 1,
        policy: sources.compile().unwrap(),
    }));
    let metrics = Arc::clone(&plugin.metrics);
    let reloader = Reloader::new(
        path,
        Arc::clone(&plugin.policy),
        sources,
        Arc::clone(&metrics),
    );
    let text = metrics.encode();
    assert!(
        text.contains(r#"nodeguard_policy_not_enforced{policy="K8sCorpPodRule/first"} 1"#),
        "{text}"
    );
    assert!(text.contains("nodeguard_policy_notes 1"), "{text}");
    std::fs::write(&file, unjudged(&["second", "third"])).unwrap();
    assert_eq!(reloader.check(), ReloadOutcome::Reloaded { generation: 2 });
    let text = metrics.encode();
    assert!(!text.contains("K8sCorpPodRule/first"), "{text}");
    assert!(text.contains(r#"nodeguard_policy_not_enforced{policy="K8sCorpPodRule/third"} 1"#));
    assert!(text.contains("nodeguard_policy_notes 2"), "{text}");
}
