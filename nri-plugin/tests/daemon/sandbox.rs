//! A pod judged at `RunPodSandbox`, before any of its containers: what the pod alone tells
//! (host namespaces, sysctls from the sandbox's spec, labels) refuses it there, so nothing of
//! it reaches the host; checks a container could be exempt from wait for the containers.

use nodeguard::enforce::UndecidedAtStart;
use nodeguard::nri::transport::status::Code;
use nodeguard_proto::nri::v1alpha1::{self as nri, Event, plugin_service as method};
use serde_json::json;

use super::fake_runtime::FakeRuntime;
use super::harness::{Daemon, POLICY, Plugin, host_pid_pod, pod};

/// Sends the pod as containerd 1.7-2.2 do (a state change) and as 2.3 does (its own call);
/// both must give the same answer.
async fn run_pod(runtime: &FakeRuntime, pod: &nri::PodSandbox) -> Result<(), (Code, String)> {
    let by_event = runtime
        .call(
            method::STATE_CHANGE,
            &nri::StateChangeEvent {
                event: Event::RunPodSandbox as i32,
                pod: Some(pod.clone()),
                container: None,
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| (e.code, e.message));
    let by_call = runtime
        .call(
            method::RUN_POD_SANDBOX,
            &nri::RunPodSandboxRequest {
                pod: Some(pod.clone()),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| (e.code, e.message));
    assert_eq!(
        by_event, by_call,
        "a state change and the dedicated call agree"
    );
    by_event
}

#[tokio::test]
async fn a_pod_sharing_the_hosts_pid_namespace_is_refused_before_its_containers() {
    let (daemon, runtime) = Daemon::connected().await;
    assert_eq!(run_pod(&runtime, &pod()).await, Ok(()));
    let (code, message) = run_pod(&runtime, &host_pid_pod())
        .await
        .expect_err("refused");
    assert_eq!(code, Code::PERMISSION_DENIED);
    assert_eq!(
        message,
        "nodeguard: refused pod default/web: pod shares the host's PID namespace (hostPID) [hostNamespaces]"
    );
    let records = daemon.plugin.records("sandbox");
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["allowed", "allowed", "refused", "refused"]);
    assert_eq!(records[2]["container"], json!({"name": "", "id": ""}));
    assert_eq!(records[2]["violations"][0]["rule"], "hostNamespaces");
    // Container-level rules (images, limits, user) are not judged on a pod.
    assert_eq!(records[2]["violations"].as_array().unwrap().len(), 1);
    assert_eq!(records[2]["undecided"], json!([]));
    daemon.stop().await;
}

#[tokio::test]
async fn a_check_a_container_could_be_exempt_from_waits_for_the_containers() {
    // The host namespace rule spares the CNI agent's image: at the sandbox, no container's
    // image is known, so the pod is not refused there; its containers are judged as ever.
    let exempting = POLICY.replace(
        "spec:\n  effect: enforce\n",
        "spec:\n  effect: enforce\n  scope:\n    exemptImages: ['^registry\\.corp/cni/']\n",
    );
    let (daemon, runtime) =
        Daemon::connected_with(Plugin::with(&exempting, UndecidedAtStart::Deny)).await;
    assert_eq!(run_pod(&runtime, &host_pid_pod()).await, Ok(()));
    // A Pod Security Standards exemption by namespace only does not wait.
    let pss = "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: pss}\nspec:\n  effect: enforce\n  podSecurity:\n    level: baseline\n    exemptions:\n      - {controls: [hostNamespaces], namespaces: [kube-system]}\n";
    let (other, runtime) = Daemon::connected_with(Plugin::with(pss, UndecidedAtStart::Deny)).await;
    let (_, message) = run_pod(&runtime, &host_pid_pod())
        .await
        .expect_err("refused");
    assert!(
        message.contains("[pss.baseline.hostNamespaces]"),
        "{message}"
    );
    let mut system = host_pid_pod();
    system.namespace = "kube-system".into();
    assert_eq!(run_pod(&runtime, &system).await, Ok(()));
    daemon.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn the_pods_sysctls_are_read_from_the_sandboxs_spec() {
    let pss = "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: pss}\nspec:\n  effect: enforce\n  podSecurity: {level: baseline}\n";
    let (daemon, runtime) = Daemon::connected_with(Plugin::with(pss, UndecidedAtStart::Deny)).await;
    let sandbox = pod();
    daemon.plugin.specs.insert(
        &sandbox.id,
        &json!({
            "ociVersion": "1.1.0",
            "linux": {"sysctl": {"kernel.msgmax": "65536", "net.ipv4.ip_unprivileged_port_start": "0"}}
        }),
    );
    let (_, message) = run_pod(&runtime, &sandbox).await.expect_err("refused");
    assert!(
        message.contains("kernel.msgmax") && message.contains("[pss.baseline.sysctls]"),
        "{message}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_pod_event_without_its_pod_is_malformed_and_never_judged() {
    let (daemon, runtime) = Daemon::connected().await;
    for request in [
        nri::RunPodSandboxRequest { pod: None },
        nri::RunPodSandboxRequest {
            pod: Some(nri::PodSandbox::default()),
        },
    ] {
        let err = runtime
            .call(method::RUN_POD_SANDBOX, &request)
            .await
            .expect_err("malformed");
        assert_eq!(err.code, Code::INVALID_ARGUMENT, "{}", err.message);
    }
    assert!(daemon.plugin.records("sandbox").is_empty());
    daemon.stop().await;
}
