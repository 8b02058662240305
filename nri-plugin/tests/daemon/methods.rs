//! Which calls get Unimplemented: never a method of NRI's `Plugin` service (Unimplemented
//! fails StopContainer and friends in containerd), always an unknown method or service.

use nodeguard::nri::transport::status::Code;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use prost::Message as _;

use super::harness::{Daemon, container, pod};

#[tokio::test]
async fn events_nodeguard_does_not_judge_get_empty_replies() {
    let (daemon, runtime) = Daemon::connected().await;
    let (pod, container) = (Some(pod()), Some(container("c1")));

    let stop: nri::StopContainerResponse = runtime
        .call_ok(
            method::STOP_CONTAINER,
            &nri::StopContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            },
        )
        .await;
    assert_eq!(stop, nri::StopContainerResponse::default());

    let container_calls: [(&str, Vec<u8>); 4] = [
        (
            method::REMOVE_CONTAINER,
            nri::RemoveContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::POST_CREATE_CONTAINER,
            nri::PostCreateContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::POST_START_CONTAINER,
            nri::PostStartContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::POST_UPDATE_CONTAINER,
            nri::PostUpdateContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
    ];
    for (name, payload) in container_calls {
        let reply = runtime
            .call_raw(method::NAME, name, payload)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(reply.is_empty(), "{name}: an empty response message");
    }

    let pod_calls: [(&str, Vec<u8>); 5] = [
        (
            method::RUN_POD_SANDBOX,
            nri::RunPodSandboxRequest { pod: pod.clone() }.encode_to_vec(),
        ),
        (
            method::STOP_POD_SANDBOX,
            nri::StopPodSandboxRequest { pod: pod.clone() }.encode_to_vec(),
        ),
        (
            method::REMOVE_POD_SANDBOX,
            nri::RemovePodSandboxRequest { pod: pod.clone() }.encode_to_vec(),
        ),
        (
            method::UPDATE_POD_SANDBOX,
            nri::UpdatePodSandboxRequest {
                pod: pod.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            method::POST_UPDATE_POD_SANDBOX,
            nri::PostUpdatePodSandboxRequest { pod: pod.clone() }.encode_to_vec(),
        ),
    ];
    for (name, payload) in pod_calls {
        let reply = runtime
            .call_raw(method::NAME, name, payload)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(reply.is_empty(), "{name}: an empty response message");
    }

    let validated: nri::ValidateContainerAdjustmentResponse = runtime
        .call_ok(
            method::VALIDATE_CONTAINER_ADJUSTMENT,
            &nri::ValidateContainerAdjustmentRequest {
                pod: pod.clone(),
                container: container.clone(),
                ..Default::default()
            },
        )
        .await;
    assert!(!validated.reject);

    let shutdown: nri::Empty = runtime.call_ok(method::SHUTDOWN, &nri::Empty {}).await;
    assert_eq!(shutdown, nri::Empty {});
    // Of these only RunPodSandbox is judged: the pod, before its containers (allowed here).
    let records = daemon.plugin.audit.records();
    let phases: Vec<&str> = records
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["sandbox"], "{records:#?}");
    assert_eq!(records[0]["outcome"], "allowed");
    daemon.stop().await;
}

#[tokio::test]
async fn no_method_of_the_plugin_service_is_unimplemented() {
    let (daemon, runtime) = Daemon::connected().await;
    // An empty payload is a valid (all-default) message of every type.
    for name in method::METHODS {
        let result = runtime.call_raw(method::NAME, name, Vec::new()).await;
        if let Err(err) = result {
            assert_ne!(err.code, Code::UNIMPLEMENTED, "{name}: {err}");
        }
    }
    daemon.stop().await;
}

#[tokio::test]
async fn unknown_method_and_unknown_service_are_unimplemented() {
    let (daemon, runtime) = Daemon::connected().await;
    let err = runtime
        .call_raw(method::NAME, "Frobnicate", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::UNIMPLEMENTED);
    assert_eq!(err.code.0, 12);
    assert!(err.message.contains("Frobnicate"), "{}", err.message);

    for service in [
        "nri.pkg.api.v1alpha1.Runtime",
        "nri.pkg.api.v1beta1.Plugin",
        "",
    ] {
        let err = runtime
            .call_raw(service, method::CREATE_CONTAINER, Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.code, Code::UNIMPLEMENTED, "service {service:?}");
    }

    // The connection serves on.
    let configured: nri::ConfigureResponse = runtime
        .call_ok(method::CONFIGURE, &nri::ConfigureRequest::default())
        .await;
    assert_ne!(configured.events, 0);
    assert!(daemon.state.is_registered());
    daemon.stop().await;
}

/// The requests about one container, each without `pod` or `container` when told so.
fn requests_about_a_container(
    pod: Option<nri::PodSandbox>,
    container: Option<nri::Container>,
) -> [(&'static str, &'static str, Vec<u8>); 5] {
    [
        (
            method::CREATE_CONTAINER,
            "CreateContainer",
            nri::CreateContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::START_CONTAINER,
            "StartContainer",
            nri::StartContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::STATE_CHANGE,
            "StateChange(StartContainer)",
            nri::StateChangeEvent {
                event: nri::Event::StartContainer as i32,
                pod: pod.clone(),
                container: container.clone(),
            }
            .encode_to_vec(),
        ),
        (
            method::UPDATE_CONTAINER,
            "UpdateContainer",
            nri::UpdateContainerRequest {
                pod: pod.clone(),
                container: container.clone(),
                linux_resources: None,
            }
            .encode_to_vec(),
        ),
        (
            method::STOP_CONTAINER,
            "StopContainer",
            nri::StopContainerRequest { pod, container }.encode_to_vec(),
        ),
    ]
}

#[tokio::test]
async fn a_request_without_its_pod_or_container_is_a_protocol_error_never_a_verdict() {
    let (daemon, runtime) = Daemon::connected().await;
    let nameless = nri::Container {
        id: String::new(),
        ..container("c1")
    };
    let cases = [
        (None, Some(container("c1")), "no pod"),
        (Some(pod()), None, "no container"),
        (None, None, "no pod"),
        (Some(pod()), Some(nameless), "a container without an id"),
    ];
    for (pod, container, missing) in cases {
        for (name, call, payload) in requests_about_a_container(pod.clone(), container.clone()) {
            let err = runtime
                .call_raw(method::NAME, name, payload)
                .await
                .expect_err("a protocol error");
            assert_eq!(err.code, Code::INVALID_ARGUMENT, "{name}: {err}");
            assert_eq!(
                err.message,
                format!("nodeguard: malformed {call} request: {missing}"),
                "{name}"
            );
        }
    }
    // Nothing was judged: no audit record, no decision counted; every one counted as malformed.
    assert_eq!(
        daemon.plugin.audit.records(),
        Vec::<serde_json::Value>::new()
    );
    let metrics = daemon.plugin.metrics.encode();
    assert!(!metrics.contains("nodeguard_decisions_total{"), "{metrics}");
    for name in [
        method::CREATE_CONTAINER,
        method::START_CONTAINER,
        method::STATE_CHANGE,
        method::UPDATE_CONTAINER,
        method::STOP_CONTAINER,
    ] {
        assert!(
            metrics.contains(&format!(
                "nodeguard_malformed_requests_total{{method=\"{name}\"}} 4"
            )),
            "{name}: {metrics}"
        );
    }
    // The connection stays up: the next well-formed request is judged.
    let (name, _, payload) = requests_about_a_container(Some(pod()), Some(container("c2")))
        .into_iter()
        .next()
        .unwrap();
    assert!(runtime.call_raw(method::NAME, name, payload).await.is_ok());
    daemon.stop().await;
}
