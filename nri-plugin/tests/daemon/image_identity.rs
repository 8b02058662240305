//! ADR 0020 in the daemon: the names of an image's content are read from containerd's image
//! records, at create and at start; the record's image wins over a request naming other
//! content; image volumes are judged by the names of what they mount.

use std::sync::Arc;

use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::transport::status::Code;
use nodeguard::ops::audit::Memory;
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::Loaded;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use serde_json::Value;

use super::fake_runtime::FakeRuntime;
use super::harness::{
    Daemon, MemorySpecs, Plugin, compliant_spec, container_with_image, pod, policy,
};

const ALLOWED_REGISTRY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: registries}
spec:
  effect: enforce
  rules:
    images:
      allowed: ['^registry\.corp/']
";

const MIRRORED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const EVIL: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// containerd's image records: nginx under its upstream and its mirror's name (one content),
/// and an evil image.
fn records(specs: &MemorySpecs) {
    specs.set_images(&[
        ("docker.io/library/nginx:1", MIRRORED),
        ("registry.corp/nginx:1", MIRRORED),
        ("evil.example/busybox:1", EVIL),
    ]);
}

async fn connected() -> (Daemon, FakeRuntime, Arc<Memory>) {
    let audit = Arc::new(Memory::default());
    let specs = MemorySpecs::default();
    records(&specs);
    let enforcer = Enforcer::new(
        Loaded::first(policy(ALLOWED_REGISTRY)),
        specs,
        audit.clone(),
        Arc::new(Metrics::default()),
        "node-1".into(),
        UndecidedAtStart::Deny,
    );
    let (daemon, runtime) = Daemon::connected_with(Plugin::from_enforcer(enforcer)).await;
    (daemon, runtime, audit)
}

async fn call(runtime: &FakeRuntime, name: &str, c: nri::Container) -> Result<(), String> {
    let result = if name == method::CREATE_CONTAINER {
        runtime
            .call(
                name,
                &nri::CreateContainerRequest {
                    pod: Some(pod()),
                    container: Some(c),
                },
            )
            .await
    } else {
        runtime
            .call(
                name,
                &nri::StartContainerRequest {
                    pod: Some(pod()),
                    container: Some(c),
                },
            )
            .await
    };
    result.map(|_| ()).map_err(|e| {
        assert_eq!(e.code, Code::PERMISSION_DENIED);
        e.message
    })
}

fn spec_with_image(image: &str) -> Value {
    let mut spec = compliant_spec();
    spec["annotations"]["io.kubernetes.cri.image-name"] = image.into();
    spec
}

/// Container `c1` of `image`, created (allowed) and its record in containerd, its spec
/// naming `image` as containerd's CRI annotation does.
async fn created(daemon: &Daemon, runtime: &FakeRuntime, image: &str) -> nri::Container {
    let c = container_with_image("c1", image);
    assert_eq!(
        call(runtime, method::CREATE_CONTAINER, c.clone()).await,
        Ok(())
    );
    daemon.plugin.specs.insert("c1", &spec_with_image(image));
    c
}

#[tokio::test]
async fn the_runtimes_name_for_a_mirror_does_not_refuse_it() {
    // containerd 1.7 names the image by its record's first sorted name, the upstream's, though
    // the pod asked for the mirror.
    let (daemon, runtime, _) = connected().await;
    let c = created(&daemon, &runtime, "docker.io/library/nginx:1").await;
    assert_eq!(call(&runtime, method::START_CONTAINER, c).await, Ok(()));
    // Content no allowed name points to is refused, naming what the runtime gave.
    let refusal = call(
        &runtime,
        method::CREATE_CONTAINER,
        container_with_image("c2", "evil.example/busybox:1"),
    )
    .await
    .expect_err("refused");
    assert!(
        refusal.contains(r#"image "evil.example/busybox:1" does not match any allowed pattern"#),
        "{refusal}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_request_naming_other_content_than_the_record_is_judged_by_the_record() {
    // A CRI client may send `user_specified_image` naming an allowed image while the image it
    // runs is another: the create believes the request, the start reads containerd's record.
    let (daemon, runtime, audit) = connected().await;
    let c = created(&daemon, &runtime, "registry.corp/nginx:1").await;
    daemon
        .plugin
        .specs
        .set_record_image("c1", "evil.example/busybox:1");
    let result = call(&runtime, method::START_CONTAINER, c).await;
    let refusal = result.expect_err("the content that runs is not allowed");
    assert!(
        refusal.contains(r#"image "evil.example/busybox:1" does not match any allowed pattern"#),
        "{refusal}"
    );
    let records = audit.records();
    assert_eq!(
        records.last().unwrap()["image"],
        "evil.example/busybox:1",
        "the audit log names what runs"
    );
    daemon.stop().await;
}

fn image_volume(c: &mut nri::Container, digest: &str) {
    let hex = digest.trim_start_matches("sha256:");
    c.mounts.push(nri::Mount {
        destination: "/data".into(),
        r#type: "bind".into(),
        source: format!("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/sandbox-1/{hex}"),
        options: vec!["rbind".into(), "ro".into()],
    });
}

#[tokio::test]
async fn an_image_volume_is_judged_by_the_names_of_its_content() {
    let (daemon, runtime, _) = connected().await;
    let mut c = container_with_image("c1", "registry.corp/nginx:1");
    image_volume(&mut c, EVIL);
    let refusal = call(&runtime, method::CREATE_CONTAINER, c)
        .await
        .expect_err("the volume's content is not allowed");
    assert!(
        refusal.contains(
            r#"image volume at /data: image "evil.example/busybox:1" does not match any allowed pattern"#
        ),
        "{refusal}"
    );
    let mut c = container_with_image("c2", "registry.corp/nginx:1");
    image_volume(&mut c, MIRRORED);
    assert_eq!(call(&runtime, method::CREATE_CONTAINER, c).await, Ok(()));
    daemon.stop().await;
}
