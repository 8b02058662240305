//! The calls nodeguard makes to containerd's own gRPC API: reading a container's OCI spec at
//! container start and in compliance audits, listing the tasks that still run before an audit,
//! signalling a container's task when a rule says `remediate: stop`.
//!
//! The few messages come from our `proto` crate (compiled with protox, so no `protoc` is
//! needed to build; see ADR 0004 for why not the `containerd-client` crate). Calls go over
//! containerd's unix socket with the `containerd-namespace` metadata that selects the
//! Kubernetes namespace.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use nodeguard_proto::containerd::services::containers::v1::{
    GetContainerRequest, GetContainerResponse,
};
use nodeguard_proto::containerd::services::tasks::v1::{
    KillRequest, ListTasksRequest, ListTasksResponse,
};
use nodeguard_proto::containerd::v1::types::{Process, Status};
use nodeguard_proto::google::protobuf::Empty;
use tonic::transport::{Channel, Endpoint, Uri};

use nodeguard_views::oci::RuntimeSpec;

/// The containerd namespace of CRI (Kubernetes) containers.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Why a call to containerd failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// containerd could not be reached or answered with an error.
    #[error("containerd call {call} failed: {status}")]
    Call {
        /// The gRPC method.
        call: &'static str,
        /// containerd's answer.
        status: Box<tonic::Status>,
    },
    /// The call did not finish in time.
    #[error("containerd did not answer {call} within {timeout:?}")]
    Timeout {
        /// The gRPC method.
        call: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
    /// The record holds no spec.
    #[error("container {0} has no OCI spec in containerd")]
    NoSpec(String),
    /// The spec is not a runtime spec.
    #[error("container {id}: unreadable OCI spec: {source}")]
    BadSpec {
        /// Container id.
        id: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl ContainerdError {
    /// Whether containerd has no record of the container (yet: right after an NRI
    /// CreateContainer, the record is made once every plugin has answered).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContainerdError::Call { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// What the daemon asks of containerd: a container's full OCI spec, which tasks still run, and
/// signals to a task. Generic so tests serve specs and tasks from memory and record signals.
pub trait ContainerdApi: Send + Sync {
    /// The OCI runtime spec of container `id`.
    fn spec(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<RuntimeSpec, ContainerdError>> + Send;

    /// Sends `signal` to every process of container `id`'s task. `Ok(false)` when the task is
    /// already gone (nothing to signal).
    fn kill(
        &self,
        id: &str,
        signal: i32,
    ) -> impl std::future::Future<Output = Result<bool, ContainerdError>> + Send;

    /// The ids of the containers whose task has not exited (created, running, paused, or in a
    /// state containerd cannot tell): what a compliance audit still has to judge.
    fn live_tasks(
        &self,
    ) -> impl std::future::Future<Output = Result<HashSet<String>, ContainerdError>> + Send;
}

/// The container ids of `tasks` whose init process has not stopped. containerd names a task's
/// init process by its container id (`id`); `container_id` is read when it is set instead.
pub fn live_container_ids(tasks: &[Process]) -> HashSet<String> {
    tasks
        .iter()
        .filter(|t| t.status != Status::Stopped as i32)
        .map(|t| {
            if t.container_id.is_empty() {
                t.id.clone()
            } else {
                t.container_id.clone()
            }
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// A client of containerd's gRPC socket.
#[derive(Debug, Clone)]
pub struct Containerd {
    channel: Channel,
    timeout: Duration,
}

impl Containerd {
    /// A client for the socket at `path`. Connects lazily, on first use, and reconnects after
    /// containerd restarts.
    ///
    /// # Errors
    /// Never in practice (the endpoint URI is constant); kept for the type's sake.
    pub fn new(path: &Path, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let path: PathBuf = path.to_path_buf();
        let channel = Endpoint::try_from("http://containerd.invalid")?
            .connect_timeout(timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }));
        Ok(Containerd { channel, timeout })
    }

    async fn unary<Req, Resp>(
        &self,
        call: &'static str,
        path: &'static str,
        request: Req,
    ) -> Result<Resp, ContainerdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert(
            "containerd-namespace",
            tonic::metadata::MetadataValue::from_static(K8S_NAMESPACE),
        );
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let work = async {
            grpc.ready().await.map_err(|e| ContainerdError::Call {
                call,
                status: Box::new(tonic::Status::unavailable(e.to_string())),
            })?;
            grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| ContainerdError::Call {
                    call,
                    status: Box::new(status),
                })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ContainerdError::Timeout {
                call,
                timeout: self.timeout,
            })?
    }
}

impl ContainerdApi for Containerd {
    async fn kill(&self, id: &str, signal: i32) -> Result<bool, ContainerdError> {
        let result: Result<Empty, _> = self
            .unary(
                "Tasks.Kill",
                "/containerd.services.tasks.v1.Tasks/Kill",
                KillRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    signal: u32::try_from(signal).unwrap_or(0),
                    all: true,
                },
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            // No task, or its process has exited: nothing left to stop.
            Err(ContainerdError::Call { status, .. }) if status.code() == tonic::Code::NotFound => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn live_tasks(&self) -> Result<HashSet<String>, ContainerdError> {
        let response: ListTasksResponse = self
            .unary(
                "Tasks.List",
                "/containerd.services.tasks.v1.Tasks/List",
                ListTasksRequest::default(),
            )
            .await?;
        Ok(live_container_ids(&response.tasks))
    }

    async fn spec(&self, id: &str) -> Result<RuntimeSpec, ContainerdError> {
        let response: GetContainerResponse = self
            .unary(
                "Containers.Get",
                "/containerd.services.containers.v1.Containers/Get",
                GetContainerRequest { id: id.to_string() },
            )
            .await?;
        let spec = response
            .container
            .and_then(|c| c.spec)
            .ok_or_else(|| ContainerdError::NoSpec(id.to_string()))?;
        RuntimeSpec::from_json(&spec.value).map_err(|source| ContainerdError::BadSpec {
            id: id.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(container_id: &str, id: &str, status: Status) -> Process {
        Process {
            container_id: container_id.into(),
            id: id.into(),
            pid: 1,
            status: status as i32,
        }
    }

    #[test]
    fn every_task_but_a_stopped_one_is_live() {
        let tasks = [
            task("", "created", Status::Created),
            task("", "running", Status::Running),
            task("", "paused", Status::Paused),
            task("", "pausing", Status::Pausing),
            task("", "unknown", Status::Unknown),
            task("", "stopped", Status::Stopped),
            task("by-container-id", "exec-1", Status::Running),
            task("", "", Status::Running),
        ];
        let mut live: Vec<String> = live_container_ids(&tasks).into_iter().collect();
        live.sort();
        assert_eq!(
            live,
            [
                "by-container-id",
                "created",
                "paused",
                "pausing",
                "running",
                "unknown"
            ]
        );
    }
}
