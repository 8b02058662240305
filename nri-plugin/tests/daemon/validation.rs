//! containerd 2.2+ (NRI v0.10+): the create-time decision at ValidateContainerAdjustment.
//!
//! NRI's runtime side (`pkg/adaptation`, v0.10 to v0.12.2) calls CreateContainer on every
//! subscribed plugin, combines their adjustments, then calls ValidateContainerAdjustment on
//! every plugin subscribed to it with the original container and the combined adjustment; a
//! rejection, an error or a timeout there fails the creation. A timeout at CreateContainer only
//! drops the plugin and lets the container through, so nodeguard answers CreateContainer at once
//! on these runtimes and decides at validation, on the container as it will be created.

use nodeguard::nri::service::{EVENTS, EVENTS_WITH_VALIDATION};
use nodeguard::nri::transport::status::Code;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use nodeguard_views::kubelet::IMAGE_ANNOTATION;
use serde_json::Value;

use super::fake_runtime::FakeRuntime;
use super::harness::{
    Daemon, compliant_spec, configure, container, container_with_image, container_without_limits,
    create_and_validate, limits, pod, wait_until,
};

/// containerd `version`'s Configure, with the NRI version NRI v0.12+ runtimes also send.
fn configure_as(version: &str, nri_version: &str) -> nri::ConfigureRequest {
    nri::ConfigureRequest {
        runtime_version: version.into(),
        nri_version: nri_version.into(),
        ..configure()
    }
}

/// Connected and configured as containerd 2.3.4.
async fn connected_2_3() -> (Daemon, FakeRuntime) {
    let (daemon, runtime) = Daemon::connected().await;
    let reply: nri::ConfigureResponse = runtime
        .call_ok(method::CONFIGURE, &configure_as("v2.3.4", "v0.12.0"))
        .await;
    assert_eq!(reply.events, EVENTS_WITH_VALIDATION);
    (daemon, runtime)
}

#[tokio::test]
async fn validation_is_subscribed_to_exactly_when_the_runtime_has_it() {
    let (daemon, runtime) = Daemon::connected().await;
    for (version, nri_version, events) in [
        ("v1.7.24", "", EVENTS),
        ("v2.1.9", "", EVENTS),
        ("v2.2.0", "", EVENTS_WITH_VALIDATION),
        ("v2.2.7", "", EVENTS_WITH_VALIDATION),
        ("v2.3.4", "v0.12.0", EVENTS_WITH_VALIDATION),
    ] {
        let reply: nri::ConfigureResponse = runtime
            .call_ok(method::CONFIGURE, &configure_as(version, nri_version))
            .await;
        assert_eq!(reply.events, events, "{version}");
    }
    assert_eq!(EVENTS_WITH_VALIDATION, EVENTS | 0x2000);
    daemon.stop().await;
}

#[tokio::test]
async fn create_answers_at_once_and_validation_decides_with_one_record() {
    let (daemon, runtime) = connected_2_3().await;
    let plugin = &daemon.plugin;

    let _: nri::CreateContainerResponse = runtime
        .call_ok(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container_with_image("evil", "evil.example/x:1")),
            },
        )
        .await;
    assert!(
        plugin.records("create").is_empty(),
        "CreateContainer judges nothing on a validating runtime"
    );

    let reason = create_and_validate(
        &runtime,
        container_with_image("evil", "evil.example/x:1"),
        nri::ContainerAdjustment::default(),
    )
    .await
    .expect_err("an image from a registry the policy does not allow");
    assert!(
        reason.starts_with("nodeguard: refused container \"app\" in pod default/web: ")
            && reason.contains("[images.allowed]"),
        "{reason}"
    );
    let records = plugin.records("create");
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["outcome"], "refused");
    assert_eq!(records[0]["container"]["id"], "evil");

    create_and_validate(
        &runtime,
        container("ok"),
        nri::ContainerAdjustment::default(),
    )
    .await
    .expect("compliant");
    let outcomes: Vec<Value> = plugin
        .records("create")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    // Allowed at create, with the rules NRI cannot show left for the start.
    assert_eq!(outcomes, ["refused", "undecided"]);
    daemon.stop().await;
}

#[tokio::test]
async fn validation_judges_the_container_with_every_plugins_adjustments() {
    let (daemon, runtime) = connected_2_3().await;

    // A resource plugin sets the limits the pod left out: the container created has them.
    let with_limits = nri::ContainerAdjustment {
        linux: Some(nri::LinuxContainerAdjustment {
            resources: Some(limits(500, 256 << 20)),
            ..Default::default()
        }),
        ..Default::default()
    };
    create_and_validate(&runtime, container_without_limits("limited"), with_limits)
        .await
        .expect("limits set by another plugin count");
    let reason = create_and_validate(
        &runtime,
        container_without_limits("unlimited"),
        nri::ContainerAdjustment::default(),
    )
    .await
    .expect_err("no limits, and nobody sets them");
    assert!(reason.contains("[resources.limits]"), "{reason}");

    // A plugin rewriting the image annotation: what will run is what is judged.
    let swapped = nri::ContainerAdjustment {
        annotations: [(IMAGE_ANNOTATION.to_string(), "evil.example/x:1".to_string())].into(),
        ..Default::default()
    };
    let reason = create_and_validate(&runtime, container("swapped"), swapped)
        .await
        .expect_err("the adjusted image");
    assert!(reason.contains("[images.allowed]"), "{reason}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_malformed_validation_request_fails_the_creation_and_is_never_judged() {
    let (daemon, runtime) = connected_2_3().await;
    let err = runtime
        .call(
            method::VALIDATE_CONTAINER_ADJUSTMENT,
            &nri::ValidateContainerAdjustmentRequest {
                pod: Some(pod()),
                container: None,
                ..Default::default()
            },
        )
        .await
        .expect_err("no container");
    assert_eq!(err.code, Code::INVALID_ARGUMENT, "{err}");
    assert_eq!(
        err.message,
        "nodeguard: malformed ValidateContainerAdjustment request: no container"
    );
    assert!(daemon.plugin.audit.records().is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn the_spec_is_read_ahead_after_an_allowed_validation() {
    let (daemon, runtime) = connected_2_3().await;
    let specs = &daemon.plugin.specs;
    specs.insert("c1", &compliant_spec());
    create_and_validate(
        &runtime,
        container("c1"),
        nri::ContainerAdjustment::default(),
    )
    .await
    .expect("compliant");
    wait_until("the read-ahead", || specs.reads("c1") == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let _: nri::StartContainerResponse = runtime
        .call_ok(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(container("c1")),
            },
        )
        .await;
    assert_eq!(specs.reads("c1"), 1, "the start took the spec read ahead");
    daemon.stop().await;
}
