//! Load: 200 creations issued at once on one connection are all answered, each with its own
//! verdict, and each recorded once. (How fast is measured by `benches/roundtrip.rs`, not here.)

use std::collections::HashSet;
use std::sync::Arc;

use nodeguard::nri::transport::status::Code;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};

use super::harness::{Daemon, container, container_with_image, pod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_creations_each_get_their_own_verdict() {
    let (daemon, runtime) = Daemon::connected().await;
    let runtime = Arc::new(runtime);
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let runtime = Arc::clone(&runtime);
            tokio::spawn(async move {
                let id = format!("c{i:03}");
                let mut c = if i % 2 == 0 {
                    container(&id)
                } else {
                    container_with_image(&id, &format!("docker.io/evil/miner-{i}:1"))
                };
                c.name = format!("app-{i}");
                let result = runtime
                    .call(
                        method::CREATE_CONTAINER,
                        &nri::CreateContainerRequest {
                            pod: Some(pod()),
                            container: Some(c),
                        },
                    )
                    .await;
                (i, result)
            })
        })
        .collect();
    for call in calls {
        let (i, result) = call.await.unwrap();
        if i % 2 == 0 {
            assert!(result.is_ok(), "c{i:03} is compliant: {result:?}");
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.code, Code::PERMISSION_DENIED);
            assert!(
                err.message.contains(&format!("\"app-{i}\""))
                    && err.message.contains(&format!("docker.io/evil/miner-{i}:1")),
                "the refusal names its own container and image: {}",
                err.message
            );
        }
    }
    let records = daemon.plugin.records("create");
    assert_eq!(records.len(), 200);
    let ids: HashSet<&str> = records
        .iter()
        .map(|r| r["container"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 200, "one record per creation");
    let refused = records.iter().filter(|r| r["outcome"] == "refused").count();
    assert_eq!(refused, 100);
    // Compliant containers are "undecided" at create: runAsNonRoot waits for the spec at start.
    let metrics = daemon.plugin.metrics.encode();
    assert!(
        metrics.contains(r#"nodeguard_decisions_total{phase="create",outcome="refused"} 100"#)
            && metrics
                .contains(r#"nodeguard_decisions_total{phase="create",outcome="undecided"} 100"#),
        "{metrics}"
    );
    daemon.stop().await;
}
