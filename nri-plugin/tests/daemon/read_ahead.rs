//! The spec read ahead: after a create nodeguard allows, the container's spec is read from
//! containerd as soon as the record exists, off the request path, and StartContainer is
//! answered from memory. Never a stale or foreign spec: an update in between, a spec naming
//! another pod or a read that has not landed yet make the start read on demand, as before.

use std::time::Duration;

use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use serde_json::json;

use super::fake_runtime::FakeRuntime;
use super::harness::{
    Daemon, compliant_spec, container, container_with_image, limits, pod, privileged_spec,
    wait_until,
};

async fn create(runtime: &FakeRuntime, id: &str) {
    let _: nri::CreateContainerResponse = runtime
        .call_ok(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container(id)),
            },
        )
        .await;
}

async fn start(runtime: &FakeRuntime, id: &str) -> Result<(), String> {
    runtime
        .call(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(container(id)),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

/// `nodeguard_start_specs_total{source}` of `daemon`.
fn start_specs(daemon: &Daemon, source: &str) -> u64 {
    let metrics = daemon.plugin.metrics.encode();
    let prefix = format!("nodeguard_start_specs_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Waits until the read-ahead of `id` has read the spec `reads` times and is no longer waiting.
async fn read_ahead_done(daemon: &Daemon, id: &str, reads: usize) {
    let specs = &daemon.plugin.specs;
    wait_until("the read-ahead", || specs.reads(id) >= reads).await;
    // The read is stored right after it returns; give that instant its turn.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn start_is_answered_from_the_spec_read_after_create() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("ok", &compliant_spec());
    specs.insert("priv", &privileged_spec());
    for id in ["ok", "priv"] {
        create(&runtime, id).await;
        read_ahead_done(&daemon, id, 1).await;
    }
    assert_eq!(daemon.plugin.auditor.enforcer().read_ahead_pending(), 2);

    start(&runtime, "ok").await.expect("compliant");
    let refused = start(&runtime, "priv").await.expect_err("privileged");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("ok"), 1, "no read inside StartContainer");
    assert_eq!(specs.reads("priv"), 1);
    assert_eq!(start_specs(&daemon, "prefetched"), 2);
    assert_eq!(start_specs(&daemon, "on_demand"), 0);
    assert_eq!(
        daemon.plugin.auditor.enforcer().read_ahead_pending(),
        0,
        "each spec is taken once"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_read_ahead_waits_for_the_record_containerd_makes_after_the_create() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.not_yet("late");
    create(&runtime, "late").await;
    wait_until("a first attempt", || specs.reads("late") >= 1).await;
    // containerd makes the record once every plugin answered: a privileged one, here.
    specs.insert("late", &privileged_spec());
    let before = specs.reads("late");
    read_ahead_done(&daemon, "late", before + 1).await;
    let reads = specs.reads("late");

    let refused = start(&runtime, "late").await.expect_err("privileged");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("late"), reads, "judged on the spec read ahead");
    assert_eq!(start_specs(&daemon, "prefetched"), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn an_update_between_create_and_start_makes_the_start_read_again() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("c1", &compliant_spec());
    create(&runtime, "c1").await;
    read_ahead_done(&daemon, "c1", 1).await;

    let _: nri::UpdateContainerResponse = runtime
        .call_ok(
            method::UPDATE_CONTAINER,
            &nri::UpdateContainerRequest {
                pod: Some(pod()),
                container: Some(container("c1")),
                linux_resources: Some(limits(500, 256 << 20)),
            },
        )
        .await;
    // What the record says after the update is what counts.
    specs.insert("c1", &privileged_spec());
    let refused = start(&runtime, "c1").await.expect_err("privileged now");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("c1"), 2, "read again inside the start");
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    assert_eq!(start_specs(&daemon, "prefetched"), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn a_spec_naming_another_pod_is_never_judged_for_this_one() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    let mut foreign = privileged_spec();
    foreign["annotations"]["io.kubernetes.cri.sandbox-id"] = json!("sandbox-2");
    specs.insert("c1", &foreign);
    create(&runtime, "c1").await;
    read_ahead_done(&daemon, "c1", 1).await;

    specs.insert("c1", &compliant_spec());
    start(&runtime, "c1")
        .await
        .expect("judged on the spec read now");
    assert_eq!(specs.reads("c1"), 2);
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_refused_create_reads_nothing_ahead_and_a_failed_read_leaves_the_start_to_read() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("evil", &compliant_spec());
    let refused = runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container_with_image("evil", "evil.example/x:1")),
            },
        )
        .await;
    assert!(refused.is_err());

    specs.fail("flaky", "containerd is restarting");
    create(&runtime, "flaky").await;
    wait_until("the failed read-ahead", || specs.reads("flaky") >= 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(specs.reads("evil"), 0, "nothing read for a refused create");
    assert_eq!(
        specs.reads("flaky"),
        1,
        "no retry on an error other than NotFound"
    );
    assert_eq!(daemon.plugin.auditor.enforcer().read_ahead_pending(), 0);

    specs.insert("flaky", &compliant_spec());
    start(&runtime, "flaky").await.expect("read on demand");
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    daemon.stop().await;
}
