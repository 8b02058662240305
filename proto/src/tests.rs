//! Round trips and byte-level checks proving that our field numbers and types match upstream.

use prost::Message;

use crate::google::protobuf::Any;
use crate::google::rpc::Status;
use crate::nri::v1alpha1::{
    self as nri, Container, ContainerState, CreateContainerRequest, Event, LinuxContainer,
    LinuxNamespace, LinuxPodSandbox, Mount, OptionalInt, PodSandbox, RegisterPluginRequest,
    StateChangeEvent, SynchronizeRequest, SynchronizeResponse,
};
use crate::ttrpc::{KeyValue, Request, Response};

/// A length-delimited field: tag byte, one-byte length, contents (test data is short).
fn ld(tag: u8, contents: &[u8]) -> Vec<u8> {
    assert!(
        contents.len() < 128,
        "test helper only does one-byte lengths"
    );
    let mut out = vec![tag, contents.len() as u8];
    out.extend_from_slice(contents);
    out
}

#[test]
fn register_plugin_request_bytes() {
    let request = RegisterPluginRequest {
        plugin_name: "nodeguard".into(),
        plugin_idx: "10".into(),
        nri_version: String::new(),
    };
    // Field 1, wire type 2 = 0x0a; field 2, wire type 2 = 0x12.
    let expected = [ld(0x0a, b"nodeguard"), ld(0x12, b"10")].concat();
    assert_eq!(request.encode_to_vec(), expected);
    assert_eq!(
        expected,
        b"\x0a\x09nodeguard\x12\x0210".to_vec(),
        "the helper itself"
    );

    // NRI_version (v0.12.0+) is field 3.
    let with_version = RegisterPluginRequest {
        nri_version: "v0.12.2".into(),
        ..request.clone()
    };
    let mut expected_v = expected.clone();
    expected_v.extend(ld(0x1a, b"v0.12.2"));
    assert_eq!(with_version.encode_to_vec(), expected_v);
}

#[test]
fn configure_request_and_response_bytes() {
    // ConfigureResponse.events is field 2, varint: 0x10.
    let response = nri::ConfigureResponse { events: 0x8 | 0x20 };
    assert_eq!(response.encode_to_vec(), vec![0x10, 0x28]);

    // What a runtime sends: config=1, runtime_name=2, runtime_version=3,
    // registration_timeout=4, request_timeout=5 (varints, ms), NRI_version=6.
    let mut wire = Vec::new();
    wire.extend(ld(0x0a, b"rules: []"));
    wire.extend(ld(0x12, b"containerd"));
    wire.extend(ld(0x1a, b"v2.1.0"));
    wire.extend([0x20, 0x88, 0x27]); // 5000
    wire.extend([0x28, 0xd0, 0x0f]); // 2000
    wire.extend(ld(0x32, b"v0.12.0"));
    let request = nri::ConfigureRequest::decode(wire.as_slice()).unwrap();
    assert_eq!(request.config, "rules: []");
    assert_eq!(request.runtime_name, "containerd");
    assert_eq!(request.runtime_version, "v2.1.0");
    assert_eq!(request.registration_timeout, 5000);
    assert_eq!(request.request_timeout, 2000);
    assert_eq!(request.nri_version, "v0.12.0");
}

#[test]
fn ttrpc_request_bytes() {
    let request = Request {
        service: "a".into(),
        method: "b".into(),
        payload: vec![0x01].into(),
        timeout_nano: 3,
        metadata: vec![KeyValue {
            key: "k".into(),
            value: "v".into(),
        }],
    };
    let mut expected = Vec::new();
    expected.extend(ld(0x0a, b"a"));
    expected.extend(ld(0x12, b"b"));
    expected.extend(ld(0x1a, &[0x01]));
    expected.extend([0x20, 0x03]);
    expected.extend(ld(0x2a, &[ld(0x0a, b"k"), ld(0x12, b"v")].concat()));
    assert_eq!(request.encode_to_vec(), expected);
    assert_eq!(Request::decode(expected.as_slice()).unwrap(), request);
}

#[test]
fn ttrpc_response_with_status_bytes() {
    let response = Response {
        status: Some(Status {
            code: 12,
            message: "no".into(),
            details: vec![Any {
                type_url: "t".into(),
                value: vec![0x07],
            }],
        }),
        payload: Default::default(),
    };
    let any = [ld(0x0a, b"t"), ld(0x12, &[0x07])].concat();
    let status = [vec![0x08, 0x0c], ld(0x12, b"no"), ld(0x1a, &any)].concat();
    let expected = ld(0x0a, &status);
    assert_eq!(response.encode_to_vec(), expected);
    assert_eq!(Response::decode(expected.as_slice()).unwrap(), response);

    // Success: status unset, payload field 2.
    let ok = Response {
        status: None,
        payload: vec![0xaa, 0xbb].into(),
    };
    assert_eq!(ok.encode_to_vec(), ld(0x12, &[0xaa, 0xbb]));
}

#[test]
fn state_change_event_bytes() {
    let event = StateChangeEvent {
        event: Event::StartContainer as i32,
        pod: Some(PodSandbox {
            id: "p".into(),
            ..Default::default()
        }),
        container: Some(Container {
            id: "c".into(),
            ..Default::default()
        }),
    };
    let expected = [
        vec![0x08, 0x06],
        ld(0x12, &ld(0x0a, b"p")),
        ld(0x1a, &ld(0x0a, b"c")),
    ]
    .concat();
    assert_eq!(event.encode_to_vec(), expected);
}

#[test]
fn event_numbers_match_subscription_bits() {
    let bit = |e: Event| 1i32 << (e as i32 - 1);
    assert_eq!(bit(Event::RunPodSandbox), 0x1);
    assert_eq!(bit(Event::CreateContainer), 0x8);
    assert_eq!(bit(Event::StartContainer), 0x20);
    assert_eq!(bit(Event::RemoveContainer), 0x400);
    assert_eq!(bit(Event::UpdatePodSandbox), 0x800);
    assert_eq!(bit(Event::PostUpdatePodSandbox), 0x1000);
    assert_eq!(bit(Event::ValidateContainerAdjustment), 0x2000);
    assert_eq!(Event::Last as i32, 15);
}

fn sample_pod() -> PodSandbox {
    PodSandbox {
        id: "pod-1".into(),
        name: "web".into(),
        uid: "0b0b".into(),
        namespace: "default".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        annotations: [("a".to_string(), "b".to_string())].into(),
        runtime_handler: "runc".into(),
        linux: Some(LinuxPodSandbox {
            namespaces: vec![LinuxNamespace {
                r#type: "network".into(),
                path: "/var/run/netns/x".into(),
            }],
            cgroup_parent: "kubepods".into(),
            ..Default::default()
        }),
        pid: 42,
        ips: vec!["10.0.0.1".into()],
    }
}

fn sample_container() -> Container {
    Container {
        id: "ctr-1".into(),
        pod_sandbox_id: "pod-1".into(),
        name: "app".into(),
        state: ContainerState::ContainerCreated as i32,
        args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
        env: vec!["A=1".into()],
        mounts: vec![Mount {
            destination: "/data".into(),
            r#type: "bind".into(),
            source: "/srv".into(),
            options: vec!["rbind".into(), "ro".into()],
        }],
        linux: Some(LinuxContainer {
            namespaces: vec![LinuxNamespace {
                r#type: "pid".into(),
                path: String::new(),
            }],
            oom_score_adj: Some(OptionalInt { value: -997 }),
            cgroups_path: "kubepods-pod.slice:cri:ctr-1".into(),
            sysctl: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            ..Default::default()
        }),
        user: Some(nri::User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![5, 6],
        }),
        image: Some(nri::Image {
            name: "registry.k8s.io/pause:3.10".into(),
            digest: "sha256:00".into(),
            config_digest: String::new(),
        }),
        ..Default::default()
    }
}

#[test]
fn create_container_request_round_trip() {
    let request = CreateContainerRequest {
        pod: Some(sample_pod()),
        container: Some(sample_container()),
    };
    let bytes = request.encode_to_vec();
    assert_eq!(
        CreateContainerRequest::decode(bytes.as_slice()).unwrap(),
        request
    );
}

#[test]
fn synchronize_round_trip() {
    let request = SynchronizeRequest {
        pods: vec![sample_pod(), PodSandbox::default()],
        containers: vec![sample_container()],
        more: true,
    };
    let bytes = request.encode_to_vec();
    assert_eq!(
        SynchronizeRequest::decode(bytes.as_slice()).unwrap(),
        request
    );
    // SynchronizeRequest.more is field 3, SynchronizeResponse.more field 2.
    assert!(bytes.ends_with(&[0x18, 0x01]));
    let response = SynchronizeResponse {
        update: vec![],
        more: true,
    };
    assert_eq!(response.encode_to_vec(), vec![0x10, 0x01]);
}

#[test]
fn image_and_user_field_numbers() {
    let container = Container {
        user: Some(nri::User {
            uid: 7,
            ..Default::default()
        }),
        image: Some(nri::Image {
            name: "x".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Field 21 -> tag (21 << 3 | 2) = 170 = varint [0xaa, 0x01]; field 22 -> [0xb2, 0x01].
    let expected = [
        vec![0xaa, 0x01, 0x02, 0x08, 0x07],
        vec![0xb2, 0x01, 0x03, 0x0a, 0x01, b'x'],
    ]
    .concat();
    assert_eq!(container.encode_to_vec(), expected);
}

#[test]
fn omitted_upstream_fields_are_skipped() {
    // LinuxContainer with a "scheduler" (field 11, omitted here) between known fields.
    let mut linux = Vec::new();
    linux.extend(ld(0x2a, b"/cg")); // cgroups_path = 5
    linux.extend(ld(0x5a, &[0x08, 0x02])); // scheduler = 11 { policy = SCHED_FIFO }
    linux.extend(ld(0x62, &[0x20, 0x01])); // rdt = 12 { remove = true }
    let mut container = Vec::new();
    container.extend(ld(0x0a, b"c1"));
    container.extend(ld(0x5a, &linux)); // linux = 11
    let decoded = Container::decode(container.as_slice()).unwrap();
    assert_eq!(decoded.id, "c1");
    assert_eq!(decoded.linux.unwrap().cgroups_path, "/cg");
}

#[test]
fn service_names() {
    use crate::nri::v1alpha1::{plugin_service, runtime_service};
    assert_eq!(plugin_service::NAME, "nri.pkg.api.v1alpha1.Plugin");
    assert_eq!(runtime_service::NAME, "nri.pkg.api.v1alpha1.Runtime");
    assert_eq!(runtime_service::REGISTER_PLUGIN, "RegisterPlugin");
    assert_eq!(plugin_service::CREATE_CONTAINER, "CreateContainer");
    assert_eq!(plugin_service::STATE_CHANGE, "StateChange");
    assert_eq!(plugin_service::METHODS.len(), 18);
    assert_eq!(runtime_service::METHODS.len(), 2);
}

#[test]
fn list_tasks_response_bytes() {
    use crate::containerd::services::tasks::v1::ListTasksResponse;
    use crate::containerd::v1::types::Status as TaskStatus;

    // What containerd sends for one running init process: Process{id=2, pid=3 (varint),
    // status=4 (varint), stdin=5 (skipped by our decoder)} as ListTasksResponse.tasks (field 1).
    let mut process = ld(0x12, b"c1");
    process.extend([0x18, 0xe8, 0x07]); // pid 1000
    process.extend([0x20, 0x02]); // RUNNING
    process.extend(ld(0x2a, b"/run/stdin"));
    let wire = ld(0x0a, &process);
    let response = ListTasksResponse::decode(wire.as_slice()).unwrap();
    assert_eq!(response.tasks.len(), 1);
    let task = &response.tasks[0];
    assert_eq!(task.id, "c1");
    assert_eq!(task.container_id, "");
    assert_eq!(task.pid, 1000);
    assert_eq!(task.status, TaskStatus::Running as i32);
    assert_eq!(TaskStatus::Stopped as i32, 3);
    assert_eq!(TaskStatus::Pausing as i32, 5);
}
