//! The NRI `Plugin` service: decodes each call containerd makes, hands it to
//! [`Enforcement`], and encodes the reply. Refusals become errors here, in one place.
//!
//! What a call starts besides its answer (the spec read-ahead after an allowed creation, the
//! audit after `Synchronize`) is left for after the reply ([`Answer::then`]): the connection
//! runs it once the reply is written, so that it never delays the reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nodeguard_proto::nri::v1alpha1::{self as nri, Event, plugin_service as method};
use prost::Message as _;
use tracing::{Instrument, info, info_span, warn};

use crate::enforce::{AfterReply, Enforcement, Refusal};
use crate::nri::connection::{Answer, Handler};
use crate::nri::transport::status::{Code, RpcError};
use crate::nri::version;

/// The events nodeguard subscribes to: the four it judges (a pod before its containers, and
/// each container's create, start and update), nothing more. The stop and remove
/// events would keep the inventory of running containers current, but each is a synchronous
/// call under containerd's NRI lock for every container; the inventory is pruned from
/// containerd's task list before each compliance audit instead. Every bit is below 0x800, which
/// every NRI version knows (an unknown bit gets a plugin rejected).
pub const EVENTS: i32 = event_bit(Event::RunPodSandbox)
    | event_bit(Event::CreateContainer)
    | event_bit(Event::StartContainer)
    | event_bit(Event::UpdateContainer);

/// [`EVENTS`] and `ValidateContainerAdjustment` (0x2000), for a runtime that knows it
/// (containerd 2.2+, NRI v0.10+): the create-time decision is then taken there, where a
/// timeout or an error fails the container instead of letting it through.
pub const EVENTS_WITH_VALIDATION: i32 = EVENTS | event_bit(Event::ValidateContainerAdjustment);

/// The subscription bit of an event: `1 << (event - 1)`.
pub const fn event_bit(event: Event) -> i32 {
    1 << (event as i32 - 1)
}

impl From<Refusal> for RpcError {
    fn from(refusal: Refusal) -> Self {
        RpcError::new(Code::PERMISSION_DENIED, refusal.0)
    }
}

/// Parts of a split `Synchronize` received so far.
#[derive(Debug, Default)]
struct SyncParts {
    pods: Vec<Arc<nri::PodSandbox>>,
    /// Each kept on the heap at once (a `Container` is large), without what no view reads.
    containers: Vec<Arc<nri::Container>>,
}

/// One connection's plugin service.
pub struct PluginService<E> {
    node: Arc<E>,
    sync: Mutex<SyncParts>,
    /// The runtime calls `ValidateContainerAdjustment` (known from its Configure).
    validating: AtomicBool,
}

fn decode<M: prost::Message + Default>(payload: &[u8]) -> Result<M, RpcError> {
    M::decode(payload).map_err(|e| {
        RpcError::new(
            Code::INVALID_ARGUMENT,
            format!("nodeguard: malformed request: {e}"),
        )
    })
}

/// The pod and container a request is about; a request without them (or without their ids)
/// is a protocol error, never judged as an empty container.
fn subject(
    call: &str,
    pod: Option<nri::PodSandbox>,
    container: Option<nri::Container>,
) -> Result<(nri::PodSandbox, nri::Container), RpcError> {
    nodeguard_views::nri::subject(pod, container).map_err(|missing| {
        RpcError::new(
            Code::INVALID_ARGUMENT,
            format!("nodeguard: malformed {call} request: {missing}"),
        )
    })
}

/// The pod a pod event is about; a request without one (or without its id) is malformed.
fn sandbox_subject(call: &str, pod: Option<nri::PodSandbox>) -> Result<nri::PodSandbox, RpcError> {
    match pod {
        Some(pod) if !pod.id.is_empty() => Ok(pod),
        Some(_) => Err(RpcError::new(
            Code::INVALID_ARGUMENT,
            format!("nodeguard: malformed {call} request: the pod has no id"),
        )),
        None => Err(RpcError::new(
            Code::INVALID_ARGUMENT,
            format!("nodeguard: malformed {call} request: no pod"),
        )),
    }
}

fn span_for(
    pod: Option<&nri::PodSandbox>,
    container: Option<&nri::Container>,
    call: &str,
) -> tracing::Span {
    info_span!(
        "nri",
        call,
        namespace = pod.map_or("", |p| p.namespace.as_str()),
        pod = pod.map_or("", |p| p.name.as_str()),
        container = container.map_or("", |c| c.name.as_str()),
    )
}

impl<E: Enforcement> PluginService<E> {
    /// A service answering with `node`.
    pub fn new(node: Arc<E>) -> Self {
        PluginService {
            node,
            sync: Mutex::new(SyncParts::default()),
            validating: AtomicBool::new(false),
        }
    }

    /// Handles one call of the `Plugin` service; returns the encoded reply. For a caller
    /// without a socket (a bench, the fuzzer): what the call leaves for after its reply runs
    /// before this returns. The connection uses [`PluginService::answer`] instead.
    ///
    /// # Errors
    /// A refusal (PermissionDenied), a request that does not decode or lacks the pod or
    /// container it is about (InvalidArgument: logged and counted, never judged), or an
    /// unknown method (Unimplemented).
    pub async fn call(
        &self,
        service: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        let answer = self.answer(service, name, payload).await;
        if let Some(then) = answer.then {
            then();
        }
        answer.reply
    }

    /// Handles one call of the `Plugin` service: the encoded reply (or the error, as
    /// [`PluginService::call`] describes it), and what to run once the reply is with the
    /// runtime: the spec read-ahead after a creation it allowed, the audit and read-ahead of
    /// what exists after `Synchronize`.
    pub async fn answer(&self, service: &str, name: &str, payload: &[u8]) -> Answer {
        let mut then = None;
        let result = self.handle(service, name, payload, &mut then).await;
        if let Err(err) = &result
            && err.code == Code::INVALID_ARGUMENT
        {
            warn!(method = name, error = %err.message, "malformed request from the runtime");
            self.node.malformed_request(name);
        }
        Answer {
            then: if result.is_ok() { then } else { None },
            reply: result,
        }
    }

    /// The work that a creation allowed leaves for after its reply: [`Enforcement::created`].
    fn after_creation(&self, pod: nri::PodSandbox, container: nri::Container) -> AfterReply {
        let node = Arc::clone(&self.node);
        Box::new(move || node.created(&pod, &container))
    }

    async fn handle(
        &self,
        service: &str,
        name: &str,
        payload: &[u8],
        then: &mut Option<AfterReply>,
    ) -> Result<Vec<u8>, RpcError> {
        if service != method::NAME {
            return Err(RpcError::unimplemented(service, name));
        }
        match name {
            method::CONFIGURE => {
                let req: nri::ConfigureRequest = decode(payload)?;
                let validating = version::validates(&req);
                self.validating.store(validating, Ordering::Relaxed);
                info!(
                    runtime = %req.runtime_name,
                    version = %req.runtime_version,
                    nri_version = %req.nri_version,
                    request_timeout_ms = req.request_timeout,
                    create_decided_at = if validating { "ValidateContainerAdjustment" } else { "CreateContainer" },
                    "configured by the runtime"
                );
                let events = if validating {
                    EVENTS_WITH_VALIDATION
                } else {
                    EVENTS
                };
                Ok(nri::ConfigureResponse { events }.encode_to_vec())
            }
            method::SYNCHRONIZE => {
                let req: nri::SynchronizeRequest = decode(payload)?;
                let mut parts = self
                    .sync
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                parts.pods.extend(
                    req.pods
                        .into_iter()
                        .map(|p| Arc::new(nodeguard_views::nri::pod_without_unread(p))),
                );
                parts.containers.extend(
                    req.containers
                        .into_iter()
                        .map(|c| Arc::new(nodeguard_views::nri::without_unread(c))),
                );
                if req.more {
                    return Ok(nri::SynchronizeResponse {
                        update: Vec::new(),
                        more: true,
                    }
                    .encode_to_vec());
                }
                let SyncParts { pods, containers } = std::mem::take(&mut *parts);
                drop(parts);
                info!(
                    pods = pods.len(),
                    containers = containers.len(),
                    "synchronized"
                );
                *then = Some(self.node.synchronized(pods, containers));
                Ok(nri::SynchronizeResponse::default().encode_to_vec())
            }
            method::CREATE_CONTAINER => {
                let req: nri::CreateContainerRequest = decode(payload)?;
                let (pod, container) = subject("CreateContainer", req.pod, req.container)?;
                // With validation the decision waits for the final container; CreateContainer
                // then answers at once, so that it cannot time out (a timeout there lets the
                // container through, one at validation fails it).
                if !self.validating.load(Ordering::Relaxed) {
                    let span = span_for(Some(&pod), Some(&container), "CreateContainer");
                    self.node.create(&pod, &container).instrument(span).await?;
                    *then = Some(self.after_creation(pod, container));
                }
                Ok(nri::CreateContainerResponse::default().encode_to_vec())
            }
            method::START_CONTAINER => {
                let req: nri::StartContainerRequest = decode(payload)?;
                let (pod, container) = subject("StartContainer", req.pod, req.container)?;
                let span = span_for(Some(&pod), Some(&container), "StartContainer");
                self.node.start(&pod, &container).instrument(span).await?;
                Ok(nri::StartContainerResponse::default().encode_to_vec())
            }
            method::STATE_CHANGE => {
                let req: nri::StateChangeEvent = decode(payload)?;
                if req.event == Event::RemoveContainer as i32 {
                    if let Some(c) = &req.container {
                        self.node.stopped(&c.id);
                    }
                } else if req.event == Event::RemovePodSandbox as i32 {
                    if let Some(p) = &req.pod {
                        self.node.pod_removed(&p.id);
                    }
                } else if req.event == Event::RunPodSandbox as i32 {
                    let pod = sandbox_subject("StateChange(RunPodSandbox)", req.pod)?;
                    let span = span_for(Some(&pod), None, "StateChange(RunPodSandbox)");
                    self.node.run_pod_sandbox(&pod).instrument(span).await?;
                } else if req.event == Event::StartContainer as i32 {
                    let (pod, container) =
                        subject("StateChange(StartContainer)", req.pod, req.container)?;
                    let span =
                        span_for(Some(&pod), Some(&container), "StateChange(StartContainer)");
                    self.node.start(&pod, &container).instrument(span).await?;
                }
                Ok(nri::Empty::default().encode_to_vec())
            }
            method::UPDATE_CONTAINER => {
                let req: nri::UpdateContainerRequest = decode(payload)?;
                let (pod, container) = subject("UpdateContainer", req.pod, req.container)?;
                let _span = span_for(Some(&pod), Some(&container), "UpdateContainer").entered();
                self.node
                    .update(&pod, &container, req.linux_resources.as_ref())?;
                Ok(nri::UpdateContainerResponse::default().encode_to_vec())
            }
            // Calls we do not subscribe to but answer, never with Unimplemented (which fails
            // StopContainer and friends): an empty reply of the right type.
            method::STOP_CONTAINER => {
                let req: nri::StopContainerRequest = decode(payload)?;
                let (_, container) = subject("StopContainer", req.pod, req.container)?;
                self.node.stopped(&container.id);
                Ok(nri::StopContainerResponse::default().encode_to_vec())
            }
            method::REMOVE_CONTAINER => {
                let req: nri::RemoveContainerRequest = decode(payload)?;
                if let Some(c) = &req.container {
                    self.node.stopped(&c.id);
                }
                Ok(nri::RemoveContainerResponse::default().encode_to_vec())
            }
            method::REMOVE_POD_SANDBOX => {
                let req: nri::RemovePodSandboxRequest = decode(payload)?;
                if let Some(p) = &req.pod {
                    self.node.pod_removed(&p.id);
                }
                Ok(nri::RemovePodSandboxResponse::default().encode_to_vec())
            }
            method::SHUTDOWN => {
                info!("the runtime asked nodeguard to shut down");
                Ok(nri::Empty::default().encode_to_vec())
            }
            method::RUN_POD_SANDBOX => {
                let req: nri::RunPodSandboxRequest = decode(payload)?;
                let pod = sandbox_subject("RunPodSandbox", req.pod)?;
                let span = span_for(Some(&pod), None, "RunPodSandbox");
                self.node.run_pod_sandbox(&pod).instrument(span).await?;
                Ok(nri::RunPodSandboxResponse::default().encode_to_vec())
            }
            method::UPDATE_POD_SANDBOX
            | method::POST_UPDATE_POD_SANDBOX
            | method::STOP_POD_SANDBOX
            | method::POST_CREATE_CONTAINER
            | method::POST_START_CONTAINER
            | method::POST_UPDATE_CONTAINER => Ok(Vec::new()),
            method::VALIDATE_CONTAINER_ADJUSTMENT => {
                let req: nri::ValidateContainerAdjustmentRequest = decode(payload)?;
                // Not subscribed (a runtime before NRI v0.10): CreateContainer decided.
                if !self.validating.load(Ordering::Relaxed) {
                    return Ok(nri::ValidateContainerAdjustmentResponse::default().encode_to_vec());
                }
                let (pod, container) =
                    subject("ValidateContainerAdjustment", req.pod, req.container)?;
                let span = span_for(Some(&pod), Some(&container), "ValidateContainerAdjustment");
                // The container as it will be created, every plugin's adjustments applied.
                let container = match &req.adjust {
                    Some(adjust) => nodeguard_views::nri::adjusted(&container, adjust),
                    None => container,
                };
                let decided = self.node.create(&pod, &container).instrument(span).await;
                let reply = match decided {
                    Ok(()) => {
                        *then = Some(self.after_creation(pod, container));
                        nri::ValidateContainerAdjustmentResponse::default()
                    }
                    Err(Refusal(reason)) => nri::ValidateContainerAdjustmentResponse {
                        reject: true,
                        reason,
                    },
                };
                Ok(reply.encode_to_vec())
            }
            _ => Err(RpcError::unimplemented(service, name)),
        }
    }
}

impl<E: Enforcement> Handler for PluginService<E> {
    async fn call(&self, service: &str, method: &str, payload: &[u8]) -> Answer {
        self.answer(service, method, payload).await
    }
}
