//! Policy hot swap: storing a new policy in the shared handle changes the very next decision
//! on the live connection, without reconnecting.

use std::sync::Arc;

use nodeguard::nri::transport::status::Code;
use nodeguard::ops::reload::Loaded;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};

use super::fake_runtime::FakeRuntime;
use super::harness::{Daemon, POLICY, container_with_image, pod, policy};

const DOCKER_HUB_ALLOWED: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: daemon-test-relaxed
spec:
  effect: enforce
  rules:
    images:
      allowed: ['^docker\.io/']
";

const AUDIT_ONLY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: daemon-test-audit
spec:
  effect: audit
  rules:
    images:
      allowed: ['^registry\.corp/']
";

async fn create_nginx(runtime: &FakeRuntime, id: &str) -> Result<bytes::Bytes, Code> {
    runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container_with_image(id, "docker.io/library/nginx:1.27")),
            },
        )
        .await
        .map_err(|e| e.code)
}

#[tokio::test]
async fn swapped_policy_decides_the_next_call() {
    let (daemon, runtime) = Daemon::connected().await;
    let handle = Arc::clone(&daemon.plugin.policy);

    assert_eq!(
        create_nginx(&runtime, "c1").await,
        Err(Code::PERMISSION_DENIED)
    );

    handle.store(Arc::new(Loaded {
        generation: 2,
        policy: policy(DOCKER_HUB_ALLOWED),
    }));
    assert!(create_nginx(&runtime, "c2").await.is_ok(), "allowed now");

    handle.store(Arc::new(Loaded {
        generation: 3,
        policy: policy(AUDIT_ONLY),
    }));
    assert!(create_nginx(&runtime, "c3").await.is_ok(), "only audited");

    handle.store(Arc::new(Loaded {
        generation: 4,
        policy: policy(POLICY),
    }));
    assert_eq!(
        create_nginx(&runtime, "c4").await,
        Err(Code::PERMISSION_DENIED),
        "refused again"
    );

    let outcomes: Vec<_> = daemon
        .plugin
        .records("create")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["refused", "allowed", "audited", "refused"]);
    assert_eq!(daemon.state.registrations(), 1, "no reconnect");
    assert!(!runtime.is_closed());
    daemon.stop().await;
}
