//! The start phase: the rules NRI cannot decide at create, judged on the OCI spec containerd
//! committed, through `StateChange(START_CONTAINER)` (containerd 1.7-2.2) and the dedicated
//! `StartContainer` RPC (2.3+) alike; what happens when the spec cannot be read.

use nodeguard::enforce::UndecidedAtStart;
use nodeguard::nri::transport::status::{Code, RpcError};
use nodeguard_proto::nri::v1alpha1::{self as nri, Event, plugin_service as method};
use prost::Message as _;
use serde_json::Value;

use super::fake_runtime::FakeRuntime;
use super::harness::{
    AuditAtReply, Daemon, POLICY, Plugin, compliant_spec, container, pod, privileged_spec,
    root_spec, sys_admin_spec,
};

/// How containerd tells the plugin a container starts.
#[derive(Debug, Clone, Copy)]
enum Via {
    StateChange,
    StartContainer,
}

const BOTH: [Via; 2] = [Via::StateChange, Via::StartContainer];

/// The call that starts container `id` of [`pod`] `via` one method or the other.
fn start_request(via: Via, id: &str) -> (&'static str, Vec<u8>) {
    let (pod, container) = (Some(pod()), Some(container(id)));
    match via {
        Via::StateChange => (
            method::STATE_CHANGE,
            nri::StateChangeEvent {
                event: Event::StartContainer as i32,
                pod,
                container,
            }
            .encode_to_vec(),
        ),
        Via::StartContainer => (
            method::START_CONTAINER,
            nri::StartContainerRequest { pod, container }.encode_to_vec(),
        ),
    }
}

async fn start(runtime: &FakeRuntime, via: Via, id: &str) -> Result<bytes::Bytes, RpcError> {
    let (name, payload) = start_request(via, id);
    runtime.call_raw(method::NAME, name, payload).await
}

/// Starts a container whose spec is `spec` both ways; both must be refused naming `rule`.
async fn assert_start_refused(spec: &Value, rule: &str, wording: &str) {
    let (daemon, runtime) = Daemon::connected().await;
    daemon.plugin.specs.insert("c1", spec);
    let seen = AuditAtReply::install(&runtime, &daemon.plugin.audit);
    for via in BOTH {
        let (name, payload) = start_request(via, "c1");
        let (result, records_at_reply) = seen.call_raw(&runtime, name, payload).await;
        let err = result.expect_err("refused");
        assert_eq!(err.code, Code::PERMISSION_DENIED, "{via:?}: {err}");
        assert!(
            err.message
                .starts_with("nodeguard: refused container \"app\" in pod default/web: "),
            "{via:?}: {}",
            err.message
        );
        assert!(
            err.message.contains(&format!("{wording} [{rule}]")),
            "{via:?}: {}",
            err.message
        );
        let last = records_at_reply
            .last()
            .expect("a start record before the reply");
        assert_eq!(last["phase"], "start");
        assert_eq!(last["outcome"], "refused");
        assert_eq!(last["container"]["id"], "c1");
    }
    assert_eq!(daemon.plugin.records("start").len(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn privileged_container_is_refused_at_start() {
    assert_start_refused(&privileged_spec(), "privileged", "container is privileged").await;
}

#[tokio::test]
async fn added_capability_is_refused_at_start() {
    assert_start_refused(
        &sys_admin_spec(),
        "capabilities.add",
        "(allowed: NET_BIND_SERVICE)",
    )
    .await;
}

#[tokio::test]
async fn root_user_is_refused_at_start() {
    assert_start_refused(
        &root_spec(),
        "runAsNonRoot",
        "container runs as root (UID 0)",
    )
    .await;
}

#[tokio::test]
async fn compliant_spec_starts_both_ways() {
    let (daemon, runtime) = Daemon::connected().await;
    daemon.plugin.specs.insert("c1", &compliant_spec());
    let empty = start(&runtime, Via::StateChange, "c1").await.unwrap();
    assert_eq!(nri::Empty::decode(empty).unwrap(), nri::Empty::default());
    let started = start(&runtime, Via::StartContainer, "c1").await.unwrap();
    assert_eq!(
        nri::StartContainerResponse::decode(started).unwrap(),
        nri::StartContainerResponse::default()
    );
    let outcomes: Vec<_> = daemon
        .plugin
        .records("start")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["allowed", "allowed"]);
    daemon.stop().await;
}

#[tokio::test]
async fn unreadable_spec_is_refused_by_default() {
    let (daemon, runtime) = Daemon::connected().await;
    daemon
        .plugin
        .specs
        .fail("c1", "connection refused by containerd.sock");
    // c2 has no record at all.
    for (via, id) in [(Via::StateChange, "c1"), (Via::StartContainer, "c2")] {
        let err = start(&runtime, via, id).await.expect_err("fail closed");
        assert_eq!(err.code, Code::PERMISSION_DENIED);
        assert!(
            err.message.starts_with(
                "nodeguard: refused container \"app\" in pod default/web: cannot verify "
            ),
            "{via:?}: {}",
            err.message
        );
        for rule in ["privileged", "runAsNonRoot"] {
            assert!(err.message.contains(rule), "{via:?}: {}", err.message);
        }
    }
    let c1 = start(&runtime, Via::StateChange, "c1").await.unwrap_err();
    assert!(
        c1.message.contains("connection refused by containerd.sock"),
        "the reason is kept: {}",
        c1.message
    );
    let outcomes: Vec<_> = daemon
        .plugin
        .records("start")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["refused", "refused", "refused"]);
    daemon.stop().await;
}

#[tokio::test]
async fn unreadable_spec_is_allowed_when_configured() {
    let plugin = Plugin::with(POLICY, UndecidedAtStart::Allow);
    plugin.specs.fail("c1", "deadline exceeded");
    let (daemon, runtime) = Daemon::connected_with(plugin).await;
    for via in BOTH {
        start(&runtime, via, "c1")
            .await
            .unwrap_or_else(|e| panic!("{via:?}: allowed, got {e}"));
    }
    let outcomes: Vec<_> = daemon
        .plugin
        .records("start")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["undecided", "undecided"]);
    daemon.stop().await;
}

#[tokio::test]
async fn other_state_changes_are_answered_with_empty() {
    let (daemon, runtime) = Daemon::connected().await;
    // Even for a container that would be refused at start.
    daemon.plugin.specs.insert("c1", &privileged_spec());
    let events = [
        Event::Unknown,
        Event::StopPodSandbox,
        Event::RemovePodSandbox,
        Event::CreateContainer,
        Event::PostCreateContainer,
        Event::PostStartContainer,
        Event::UpdateContainer,
        Event::PostUpdateContainer,
        Event::StopContainer,
        Event::RemoveContainer,
        Event::UpdatePodSandbox,
        Event::PostUpdatePodSandbox,
        Event::ValidateContainerAdjustment,
    ];
    for event in events {
        let container = match event {
            Event::StopPodSandbox | Event::RemovePodSandbox => None,
            _ => Some(container("c1")),
        };
        let reply = runtime
            .call(
                method::STATE_CHANGE,
                &nri::StateChangeEvent {
                    event: event as i32,
                    pod: Some(pod()),
                    container,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
        assert_eq!(
            nri::Empty::decode(reply).unwrap(),
            nri::Empty::default(),
            "{event:?}"
        );
    }
    assert!(
        daemon.plugin.audit.records().is_empty(),
        "no state change but StartContainer and RunPodSandbox (tested with the pod events) is judged"
    );
    daemon.stop().await;
}
