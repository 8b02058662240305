//! Check of the NRI `Plugin` service: arbitrary bytes as the payload of every method.
//!
//! [`Harness`] holds what is built once (a small current-thread tokio runtime and a policy
//! using every rule); each input gets a fresh [`PluginService`] over a fresh [`Enforcer`], so
//! no state (a split `Synchronize`, the pod sysctls cache) carries from one input to the next.
//! Container specs come from an in-memory source that fails for every container but one
//! ([`SPEC_ID`]), which gets the OCI fixture, so that both start paths are reached.

use std::collections::HashSet;
use std::sync::Arc;

use nodeguard::compliance::{Auditor, ComplianceConfig};
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::service::{EVENTS, EVENTS_WITH_VALIDATION, PluginService};
use nodeguard::nri::transport::status::{self, Code, RpcError};
use nodeguard::nri::version;
use nodeguard::ops::audit::Discard;
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::{Loaded, PolicyHandle};
use nodeguard::runtime::containerd::{
    ContainerRecord, ContainerdApi, ContainerdError, ImageRecord,
};
use nodeguard_proto::nri::v1alpha1::{self as nri, Event, plugin_service as method};
use nodeguard_proto::ttrpc::Response;
use nodeguard_views::oci::RuntimeSpec;
use policy_core::Policy;
use prost::Message as _;

/// The one container id the spec source knows.
pub const SPEC_ID: &str = "with-spec";

const SPEC: &[u8] = include_bytes!("../../nri-plugin/testdata/oci/config.json");
const POLICIES: [(&str, &str); 2] = [
    (
        "all-rules.yaml",
        include_str!("../../policy-core/testdata/all-rules.yaml"),
    ),
    (
        "corp.yaml",
        include_str!("../../nri-plugin/testdata/policies/corp.yaml"),
    ),
];

/// containerd's records, in memory: the fixture spec for [`SPEC_ID`], an error for any other id.
struct Specs;

impl ContainerdApi for Specs {
    async fn record(&self, id: &str) -> Result<ContainerRecord, ContainerdError> {
        if id == SPEC_ID {
            Ok(ContainerRecord {
                spec: RuntimeSpec::from_json(SPEC).expect("the OCI fixture parses"),
                image: String::new(),
            })
        } else {
            Err(ContainerdError::NoSpec(id.to_string()))
        }
    }

    /// No image records.
    async fn images(&self, _namespace: &str) -> Result<Vec<ImageRecord>, ContainerdError> {
        Ok(Vec::new())
    }

    /// No task is ever running.
    async fn kill(&self, _id: &str, _signal: i32) -> Result<bool, ContainerdError> {
        Ok(false)
    }

    /// No task is ever running.
    async fn live_tasks(&self) -> Result<HashSet<String>, ContainerdError> {
        Ok(HashSet::new())
    }
}

/// What every input shares: built once per process.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    policy: PolicyHandle,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes `payload` as `M`, as the service does, and checks what the service requires of it.
fn valid<M: prost::Message + Default>(payload: &[u8], check: impl Fn(&M) -> bool) -> bool {
    M::decode(payload).is_ok_and(|m| check(&m))
}

/// Decodes `payload` as `M`; nothing more is required of it.
fn decodes<M: prost::Message + Default>(payload: &[u8]) -> bool {
    M::decode(payload).is_ok()
}

/// Whether a pod event names a pod with an id.
fn names_pod(pod: Option<&nri::PodSandbox>) -> bool {
    pod.is_some_and(|p| !p.id.is_empty())
}

/// Whether a request names the pod and the container it concerns, ids included.
fn names_subject(pod: Option<&nri::PodSandbox>, container: Option<&nri::Container>) -> bool {
    pod.is_some_and(|p| !p.id.is_empty()) && container.is_some_and(|c| !c.id.is_empty())
}

/// Whether the service takes the payload of `name` as a valid request: it decodes, and a
/// request about a container names the pod and the container (the service refuses it as
/// malformed otherwise, never judging an empty container). `None` for methods whose payload
/// the service does not read.
fn request_valid(name: &str, payload: &[u8]) -> Option<bool> {
    Some(match name {
        method::CONFIGURE => decodes::<nri::ConfigureRequest>(payload),
        method::SYNCHRONIZE => decodes::<nri::SynchronizeRequest>(payload),
        method::CREATE_CONTAINER => valid(payload, |r: &nri::CreateContainerRequest| {
            names_subject(r.pod.as_ref(), r.container.as_ref())
        }),
        method::START_CONTAINER => valid(payload, |r: &nri::StartContainerRequest| {
            names_subject(r.pod.as_ref(), r.container.as_ref())
        }),
        method::STATE_CHANGE => valid(payload, |r: &nri::StateChangeEvent| {
            if r.event == Event::StartContainer as i32 {
                names_subject(r.pod.as_ref(), r.container.as_ref())
            } else if r.event == Event::RunPodSandbox as i32 {
                names_pod(r.pod.as_ref())
            } else {
                true
            }
        }),
        method::RUN_POD_SANDBOX => valid(payload, |r: &nri::RunPodSandboxRequest| {
            names_pod(r.pod.as_ref())
        }),
        method::UPDATE_CONTAINER => valid(payload, |r: &nri::UpdateContainerRequest| {
            names_subject(r.pod.as_ref(), r.container.as_ref())
        }),
        method::STOP_CONTAINER => valid(payload, |r: &nri::StopContainerRequest| {
            names_subject(r.pod.as_ref(), r.container.as_ref())
        }),
        method::REMOVE_CONTAINER => decodes::<nri::RemoveContainerRequest>(payload),
        method::REMOVE_POD_SANDBOX => decodes::<nri::RemovePodSandboxRequest>(payload),
        method::VALIDATE_CONTAINER_ADJUSTMENT => {
            valid(payload, |r: &nri::ValidateContainerAdjustmentRequest| {
                names_subject(r.pod.as_ref(), r.container.as_ref())
            })
        }
        _ => return None,
    })
}

/// The reply of a successful call decodes as the method's response.
fn check_reply(name: &str, payload: &[u8], reply: &[u8]) {
    match name {
        method::CONFIGURE => {
            let response = nri::ConfigureResponse::decode(reply).unwrap();
            let request = nri::ConfigureRequest::decode(payload).unwrap();
            let expected = if version::validates(&request) {
                EVENTS_WITH_VALIDATION
            } else {
                EVENTS
            };
            assert_eq!(response.events, expected);
        }
        method::VALIDATE_CONTAINER_ADJUSTMENT => {
            let response = nri::ValidateContainerAdjustmentResponse::decode(reply).unwrap();
            assert_eq!(
                response.reject,
                !response.reason.is_empty(),
                "a rejection says why"
            );
        }
        method::SYNCHRONIZE => {
            nri::SynchronizeResponse::decode(reply).unwrap();
        }
        method::CREATE_CONTAINER => {
            nri::CreateContainerResponse::decode(reply).unwrap();
        }
        method::START_CONTAINER => {
            nri::StartContainerResponse::decode(reply).unwrap();
        }
        method::UPDATE_CONTAINER => {
            nri::UpdateContainerResponse::decode(reply).unwrap();
        }
        method::STOP_CONTAINER => {
            nri::StopContainerResponse::decode(reply).unwrap();
        }
        _ => {
            nri::Empty::decode(reply).unwrap();
        }
    }
}

/// An error reaches containerd unchanged through a ttrpc `Response`.
fn check_error(err: &RpcError) {
    assert_ne!(err.code, Code::OK);
    let wire = status::error_response(err).encode_to_vec();
    let response = Response::decode(wire.as_slice()).unwrap();
    assert_eq!(status::response_result(response), Err(err.clone()));
}

impl Harness {
    /// The runtime and the policy (`policy-core/testdata/all-rules.yaml` and
    /// `nri-plugin/testdata/policies/corp.yaml`).
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
        let policy = Policy::parse_many(POLICIES).expect("the fixture policies parse");
        Harness {
            runtime,
            policy: Loaded::first(policy),
        }
    }

    /// `nri_requests`: `payload` to every method of the `Plugin` service (and to an unknown
    /// method and service). Each call returns a reply of the method's response type or an
    /// [`RpcError`]: `InvalidArgument` exactly when the request does not decode or does not
    /// name the pod and container it concerns, otherwise only `PermissionDenied` (a refusal);
    /// unknown calls are `Unimplemented`.
    pub fn nri_requests(&self, payload: &[u8]) {
        let enforcer = Enforcer::new(
            Arc::clone(&self.policy),
            Specs,
            Arc::new(Discard),
            Arc::new(Metrics::default()),
            "fuzz-node".to_string(),
            UndecidedAtStart::Deny,
        );
        let auditor = Auditor::new(Arc::new(enforcer), ComplianceConfig::default());
        let service = PluginService::new(Arc::new(auditor));
        self.runtime.block_on(async {
            for name in method::METHODS {
                let result = service.call(method::NAME, name, payload).await;
                match (request_valid(name, payload), &result) {
                    (_, Ok(reply)) => check_reply(name, payload, reply),
                    (Some(false), Err(err)) => assert_eq!(err.code, Code::INVALID_ARGUMENT),
                    (Some(true), Err(err)) => assert_eq!(
                        err.code,
                        Code::PERMISSION_DENIED,
                        "{name} failed on a valid request: {err}"
                    ),
                    (None, Err(err)) => panic!("{name} does not decode but failed: {err}"),
                }
                if let Err(err) = &result {
                    check_error(err);
                }
            }
            for (service_name, name) in [(method::NAME, "Bogus"), ("Bogus", method::CONFIGURE)] {
                let err = service.call(service_name, name, payload).await.unwrap_err();
                assert_eq!(err.code, Code::UNIMPLEMENTED);
                check_error(&err);
            }
            // A final Synchronize audits in a task of its own: let it finish.
            let metrics = tokio::runtime::Handle::current().metrics();
            while metrics.num_alive_tasks() > 0 {
                tokio::task::yield_now().await;
            }
        });
    }
}
