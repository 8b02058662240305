//! A host path reached through a `subPath`: the kubelet bind-mounts it from its
//! `volume-subpaths` directory, so the mount's source does not look like a host path; the
//! node's mount table says what is mounted there, and it is judged as what it is.

use std::sync::Arc;

use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::transport::status::Code;
use nodeguard::ops::audit::Memory;
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::Loaded;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};

use super::harness::{Daemon, MemorySpecs, Plugin, container, pod, policy};

const HOST_PATHS: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: host-paths}
spec:
  effect: enforce
  rules:
    hostPath:
      allowed: [{pathPrefix: /var/log, readOnly: true}]
";

/// The subPath mount the kubelet makes for volume `volume` of pod `uid-1`.
fn sub_path(volume: &str, n: u32) -> String {
    format!("/var/lib/kubelet/pods/uid-1/volume-subpaths/{volume}/app/{n}")
}

/// The node's mount table: the root filesystem, `host` (a hostPath `/`) mounted at `etc`,
/// and `cfg` (a configMap) mounted at its one file.
fn table() -> String {
    format!(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
         91 22 8:1 /etc {} rw - ext4 /dev/sda1 rw\n\
         92 22 8:1 /var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~configmap/cfg/..data/nginx.conf {} rw - ext4 /dev/sda1 rw\n",
        sub_path("host", 0),
        sub_path("cfg", 1)
    )
}

fn mounting(id: &str, source: String, destination: &str) -> nri::Container {
    let mut c = container(id);
    c.mounts = vec![nri::Mount {
        destination: destination.into(),
        r#type: "bind".into(),
        source,
        options: vec!["rbind".into(), "ro".into()],
    }];
    c
}

async fn connected(
    table: Option<String>,
) -> (Daemon, super::fake_runtime::FakeRuntime, Arc<Memory>) {
    let audit = Arc::new(Memory::default());
    let enforcer = Enforcer::new(
        Loaded::first(policy(HOST_PATHS)),
        MemorySpecs::default(),
        audit.clone(),
        Arc::new(Metrics::default()),
        "node-1".into(),
        UndecidedAtStart::Deny,
    )
    .with_mount_table(Arc::new(move || table.clone()));
    let (daemon, runtime) = Daemon::connected_with(Plugin::from_enforcer(enforcer)).await;
    (daemon, runtime, audit)
}

async fn create(
    runtime: &super::fake_runtime::FakeRuntime,
    c: nri::Container,
) -> Result<(), String> {
    runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(c),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            assert_eq!(e.code, Code::PERMISSION_DENIED);
            e.message
        })
}

#[tokio::test]
async fn a_host_path_behind_a_sub_path_is_judged_as_the_host_path() {
    let (daemon, runtime, audit) = connected(Some(table())).await;
    let refusal = create(&runtime, mounting("c1", sub_path("host", 0), "/host-etc"))
        .await
        .expect_err("the host's /etc, writable or not, is not under /var/log");
    assert!(
        refusal.contains("host path /etc is mounted at /host-etc but is not allowed [hostPath]"),
        "{refusal}"
    );
    // A configMap's file through a subPath is the configMap it is.
    assert_eq!(
        create(
            &runtime,
            mounting("c2", sub_path("cfg", 1), "/etc/nginx/nginx.conf")
        )
        .await,
        Ok(())
    );
    assert_eq!(audit.records().len(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn without_a_mount_table_a_sub_path_stays_what_it_looks_like() {
    // The table cannot be read (the DaemonSet without the kubelet's directory): the mount is
    // left as a subPath, as before, and the rest of the container is judged.
    let (daemon, runtime, _) = connected(None).await;
    assert_eq!(
        create(&runtime, mounting("c1", sub_path("host", 0), "/host-etc")).await,
        Ok(())
    );
    daemon.stop().await;
}
