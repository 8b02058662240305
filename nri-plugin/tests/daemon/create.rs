//! CreateContainer and UpdateContainer: compliant containers get an empty reply, refused ones
//! an error naming the container, its pod and the rule, with the audit record written before
//! the reply leaves.

use nodeguard::nri::transport::status::{Code, RpcError};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use prost::Message as _;
use serde_json::Value;

use super::fake_runtime::FakeRuntime;
use super::harness::{
    AuditAtReply, Daemon, container, container_with_image, container_without_limits, host_pid_pod,
    limits, pod,
};

const REFUSAL_PREFIX: &str = "nodeguard: refused container \"app\" in pod default/web: ";

/// Creates `container` in `pod`; returns the result and the audit records that existed when
/// the reply came off the wire.
async fn create(
    daemon: &Daemon,
    runtime: &FakeRuntime,
    pod: nri::PodSandbox,
    container: nri::Container,
) -> (Result<bytes::Bytes, RpcError>, Vec<Value>) {
    AuditAtReply::install(runtime, &daemon.plugin.audit)
        .call(
            runtime,
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod),
                container: Some(container),
            },
        )
        .await
}

/// Asserts a refusal naming `rule`, whose `refused` record existed before the reply arrived.
fn assert_refused(
    (result, records_at_reply): (Result<bytes::Bytes, RpcError>, Vec<Value>),
    id: &str,
    rule: &str,
) {
    let record = records_at_reply
        .iter()
        .rev()
        .find(|r| r["phase"] == "create" && r["container"]["id"] == id)
        .unwrap_or_else(|| panic!("no create record for {id} when the reply arrived"));
    assert_eq!(record["outcome"], "refused", "{record}");
    assert_eq!(record["node"], "node-1");
    assert_eq!(record["pod"]["namespace"], "default");
    assert_eq!(record["pod"]["name"], "web");

    let err = result.expect_err("refused");
    assert_eq!(err.code, Code::PERMISSION_DENIED, "{err}");
    assert!(
        err.message.starts_with(REFUSAL_PREFIX),
        "the kubelet's event names container and pod: {}",
        err.message
    );
    assert!(
        err.message.contains(&format!("[{rule}]")),
        "the message names rule {rule}: {}",
        err.message
    );
    assert!(
        record.to_string().contains(rule),
        "the record names rule {rule}: {record}"
    );
}

#[tokio::test]
async fn compliant_container_gets_an_empty_reply() {
    let (daemon, runtime) = Daemon::connected().await;
    let (result, records_at_reply) = create(&daemon, &runtime, pod(), container("c1")).await;
    let payload = result.unwrap();
    assert!(payload.is_empty(), "no adjustment, update or eviction");
    assert_eq!(
        nri::CreateContainerResponse::decode(payload).unwrap(),
        nri::CreateContainerResponse::default()
    );
    assert_eq!(records_at_reply, daemon.plugin.records("create"));
    let records = daemon.plugin.records("create");
    assert_eq!(records.len(), 1);
    // Privileges, capabilities and user are not in the request: decided at start.
    assert_eq!(records[0]["outcome"], "undecided");
    daemon.stop().await;
}

#[tokio::test]
async fn image_from_another_registry_is_refused() {
    let (daemon, runtime) = Daemon::connected().await;
    let result = create(
        &daemon,
        &runtime,
        pod(),
        container_with_image("c1", "docker.io/library/nginx:1.27"),
    )
    .await;
    assert_refused(result, "c1", "images.allowed");
    daemon.stop().await;
}

#[tokio::test]
async fn forbidden_tag_is_refused() {
    let (daemon, runtime) = Daemon::connected().await;
    let result = create(
        &daemon,
        &runtime,
        pod(),
        container_with_image("c1", "registry.corp/shop/web:latest"),
    )
    .await;
    assert_refused(result, "c1", "images.tag");
    daemon.stop().await;
}

#[tokio::test]
async fn missing_limits_are_refused() {
    let (daemon, runtime) = Daemon::connected().await;
    let result = create(&daemon, &runtime, pod(), container_without_limits("c1")).await;
    assert_refused(result, "c1", "resources.limits");
    daemon.stop().await;
}

#[tokio::test]
async fn host_pid_is_refused() {
    let (daemon, runtime) = Daemon::connected().await;
    let result = create(&daemon, &runtime, host_pid_pod(), container("c1")).await;
    assert_refused(result, "c1", "hostNamespaces");
    daemon.stop().await;
}

#[tokio::test]
async fn every_violation_is_named_in_one_refusal() {
    let (daemon, runtime) = Daemon::connected().await;
    let mut c = container_without_limits("c1");
    c.annotations.insert(
        nodeguard_views::kubelet::IMAGE_ANNOTATION.into(),
        "docker.io/library/nginx:latest".into(),
    );
    let err = create(&daemon, &runtime, host_pid_pod(), c)
        .await
        .0
        .unwrap_err();
    for rule in [
        "images.allowed",
        "images.tag",
        "resources.limits",
        "hostNamespaces",
    ] {
        assert!(err.message.contains(rule), "{rule} in {}", err.message);
    }
    daemon.stop().await;
}

#[tokio::test]
async fn update_within_limits_is_allowed_and_removing_limits_is_refused() {
    let (daemon, runtime) = Daemon::connected().await;
    let update = |resources| nri::UpdateContainerRequest {
        pod: Some(pod()),
        container: Some(container("c1")),
        linux_resources: Some(resources),
    };
    let reply: nri::UpdateContainerResponse = runtime
        .call_ok(method::UPDATE_CONTAINER, &update(limits(1000, 512 << 20)))
        .await;
    assert_eq!(reply, nri::UpdateContainerResponse::default());

    let err = runtime
        .call(
            method::UPDATE_CONTAINER,
            &update(nri::LinuxResources::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::PERMISSION_DENIED);
    assert!(err.message.starts_with(REFUSAL_PREFIX), "{}", err.message);
    assert!(
        err.message.contains("[resources.limits]"),
        "{}",
        err.message
    );
    let outcomes: Vec<_> = daemon
        .plugin
        .records("update")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["allowed", "refused"]);
    daemon.stop().await;
}
