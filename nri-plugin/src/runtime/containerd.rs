//! The calls nodeguard makes to containerd's own gRPC API: reading a container's record (OCI
//! spec and image) at container start and in compliance audits, listing the image records to
//! know every name of the content a container runs, listing the tasks that still run before an
//! audit, signalling a container's task when a rule says `remediate: stop`.
//!
//! The few messages come from our `proto` crate (compiled with protox, so no `protoc` is
//! needed to build; see ADR 0004 for why not the `containerd-client` crate). Calls go over
//! containerd's unix socket with the `containerd-namespace` metadata that selects the
//! containerd namespace (`k8s.io` for Kubernetes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use nodeguard_proto::containerd::services::containers::v1::{
    GetContainerRequest, GetContainerResponse,
};
use nodeguard_proto::containerd::services::containers::v1::{
    ListContainersRequest, ListContainersResponse,
};
use nodeguard_proto::containerd::services::images::v1::{ListImagesRequest, ListImagesResponse};
use nodeguard_proto::containerd::services::namespaces::v1::{
    ListNamespacesRequest, ListNamespacesResponse,
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
    /// Container `id`'s record: its OCI runtime spec and the image it was made from.
    fn record(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<ContainerRecord, ContainerdError>> + Send;

    /// Every image record of containerd namespace `namespace`: each name with the digest of
    /// the content it points to.
    fn images(
        &self,
        namespace: &str,
    ) -> impl std::future::Future<Output = Result<Vec<ImageRecord>, ContainerdError>> + Send;

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

    // What runs outside Kubernetes. By default a runtime has no namespace at all (what the
    // test doubles that model only CRI's containers say); [`Containerd`] asks containerd.

    /// Every containerd namespace.
    fn namespaces(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<String>, ContainerdError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Every container record of containerd namespace `namespace`.
    fn containers(
        &self,
        _namespace: &str,
    ) -> impl std::future::Future<Output = Result<Vec<ListedContainer>, ContainerdError>> + Send
    {
        async { Ok(Vec::new()) }
    }

    /// The tasks of containerd namespace `namespace` whose init process has not stopped.
    fn tasks_in(
        &self,
        _namespace: &str,
    ) -> impl std::future::Future<Output = Result<Vec<LiveTask>, ContainerdError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// [`ContainerdApi::kill`] for a container of containerd namespace `namespace`.
    fn kill_in(
        &self,
        _namespace: &str,
        _id: &str,
        _signal: i32,
    ) -> impl std::future::Future<Output = Result<bool, ContainerdError>> + Send {
        async { Ok(false) }
    }
}

/// The label CRI puts on every container record it makes (`container` or `sandbox`): a
/// record of `k8s.io` that has it is Kubernetes', which NRI reports.
pub const CRI_KIND_LABEL: &str = "io.cri-containerd.kind";

/// One container record as containerd lists them (`Containers/List`).
#[derive(Debug)]
pub struct ListedContainer {
    /// Container id.
    pub id: String,
    /// The name of the image record it was made from; empty when made without one.
    pub image: String,
    /// The record's labels.
    pub labels: std::collections::HashMap<String, String>,
    /// Its OCI runtime spec, or why it cannot be read.
    pub spec: Result<RuntimeSpec, String>,
}

impl ListedContainer {
    /// Whether CRI made it (Kubernetes' container or pod sandbox): in CRI's namespace, with
    /// CRI's label. Anyone with containerd's socket can label a record so; such a client can
    /// do anything on the node anyway.
    pub fn is_cri(&self, namespace: &str) -> bool {
        namespace == K8S_NAMESPACE && self.labels.contains_key(CRI_KIND_LABEL)
    }
}

/// A task whose init process has not stopped: created, running, paused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveTask {
    /// The container id.
    pub id: String,
    /// The init process's pid (a restarted task has a new one).
    pub pid: u32,
}

/// The tasks of `tasks` whose init process has not stopped, with their container ids.
pub fn live_tasks_of(tasks: &[Process]) -> Vec<LiveTask> {
    tasks
        .iter()
        .filter(|t| t.status != Status::Stopped as i32)
        .map(|t| LiveTask {
            id: if t.container_id.is_empty() {
                t.id.clone()
            } else {
                t.container_id.clone()
            },
            pid: t.pid,
        })
        .filter(|t| !t.id.is_empty())
        .collect()
}

/// What containerd keeps of a container: the full OCI spec and the image it was made from.
#[derive(Debug)]
pub struct ContainerRecord {
    /// The OCI runtime spec.
    pub spec: RuntimeSpec,
    /// The name of the image record the container was made from (CRI: the first name of the
    /// image's record, whatever name the pod asked for); empty when made without one.
    pub image: String,
}

/// One image record: a name and the digest of the content (manifest or index) it points to.
/// Several names may point to one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The full name (`docker.io/library/nginx:1`, or a digest reference).
    pub name: String,
    /// The target's digest (`sha256:...`).
    pub digest: String,
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
        namespace: &str,
        request: Req,
    ) -> Result<Resp, ContainerdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let mut request = tonic::Request::new(request);
        let namespace = tonic::metadata::MetadataValue::try_from(namespace).map_err(|_| {
            ContainerdError::Call {
                call,
                status: Box::new(tonic::Status::invalid_argument(format!(
                    "namespace {namespace:?} is not a metadata value"
                ))),
            }
        })?;
        request
            .metadata_mut()
            .insert("containerd-namespace", namespace);
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
                K8S_NAMESPACE,
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
                K8S_NAMESPACE,
                ListTasksRequest::default(),
            )
            .await?;
        Ok(live_container_ids(&response.tasks))
    }

    async fn images(&self, namespace: &str) -> Result<Vec<ImageRecord>, ContainerdError> {
        let response: ListImagesResponse = self
            .unary(
                "Images.List",
                "/containerd.services.images.v1.Images/List",
                namespace,
                ListImagesRequest::default(),
            )
            .await?;
        Ok(response
            .images
            .into_iter()
            .filter_map(|image| {
                let digest = image.target?.digest;
                (!image.name.is_empty() && !digest.is_empty()).then_some(ImageRecord {
                    name: image.name,
                    digest,
                })
            })
            .collect())
    }

    async fn record(&self, id: &str) -> Result<ContainerRecord, ContainerdError> {
        let response: GetContainerResponse = self
            .unary(
                "Containers.Get",
                "/containerd.services.containers.v1.Containers/Get",
                K8S_NAMESPACE,
                GetContainerRequest { id: id.to_string() },
            )
            .await?;
        let container = response
            .container
            .ok_or_else(|| ContainerdError::NoSpec(id.to_string()))?;
        let spec = container
            .spec
            .ok_or_else(|| ContainerdError::NoSpec(id.to_string()))?;
        let spec =
            RuntimeSpec::from_json(&spec.value).map_err(|source| ContainerdError::BadSpec {
                id: id.to_string(),
                source,
            })?;
        Ok(ContainerRecord {
            spec,
            image: container.image,
        })
    }

    async fn namespaces(&self) -> Result<Vec<String>, ContainerdError> {
        // The call lists every namespace whatever the request's own.
        let response: ListNamespacesResponse = self
            .unary(
                "Namespaces.List",
                "/containerd.services.namespaces.v1.Namespaces/List",
                K8S_NAMESPACE,
                ListNamespacesRequest::default(),
            )
            .await?;
        Ok(response.namespaces.into_iter().map(|n| n.name).collect())
    }

    async fn containers(&self, namespace: &str) -> Result<Vec<ListedContainer>, ContainerdError> {
        let response: ListContainersResponse = self
            .unary(
                "Containers.List",
                "/containerd.services.containers.v1.Containers/List",
                namespace,
                ListContainersRequest::default(),
            )
            .await?;
        Ok(response
            .containers
            .into_iter()
            .map(|c| {
                let spec = match &c.spec {
                    Some(any) => RuntimeSpec::from_json(&any.value)
                        .map_err(|e| format!("unreadable OCI spec: {e}")),
                    None => Err("no OCI spec in its record".to_string()),
                };
                ListedContainer {
                    id: c.id,
                    image: c.image,
                    labels: c.labels.into_iter().collect(),
                    spec,
                }
            })
            .collect())
    }

    async fn tasks_in(&self, namespace: &str) -> Result<Vec<LiveTask>, ContainerdError> {
        let response: ListTasksResponse = self
            .unary(
                "Tasks.List",
                "/containerd.services.tasks.v1.Tasks/List",
                namespace,
                ListTasksRequest::default(),
            )
            .await?;
        Ok(live_tasks_of(&response.tasks))
    }

    async fn kill_in(
        &self,
        namespace: &str,
        id: &str,
        signal: i32,
    ) -> Result<bool, ContainerdError> {
        let request = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal: u32::try_from(signal).unwrap_or(0),
            all: true,
        };
        let result: Result<Empty, _> = self
            .unary(
                "Tasks.Kill",
                "/containerd.services.tasks.v1.Tasks/Kill",
                namespace,
                request,
            )
            .await;
        // NotFound: no task, or its process has exited: nothing left to stop.
        result
            .map(|_| true)
            .or_else(|e| if e.is_not_found() { Ok(false) } else { Err(e) })
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

#[cfg(test)]
mod outside_tests {
    use super::*;

    #[test]
    fn live_tasks_keep_their_pid_and_leave_stopped_ones_out() {
        let tasks = [
            Process {
                container_id: String::new(),
                id: "x".into(),
                pid: 41,
                status: Status::Running as i32,
            },
            Process {
                container_id: String::new(),
                id: "gone".into(),
                pid: 0,
                status: Status::Stopped as i32,
            },
            Process {
                container_id: String::new(),
                id: "made".into(),
                pid: 42,
                status: Status::Created as i32,
            },
        ];
        assert_eq!(
            live_tasks_of(&tasks),
            [
                LiveTask {
                    id: "x".into(),
                    pid: 41
                },
                LiveTask {
                    id: "made".into(),
                    pid: 42
                }
            ]
        );
    }

    #[test]
    fn only_a_labelled_record_of_k8s_io_is_cri_s() {
        let record = |labels: &[(&str, &str)]| ListedContainer {
            id: "x".into(),
            image: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            spec: Err("none".into()),
        };
        assert!(record(&[(CRI_KIND_LABEL, "container")]).is_cri(K8S_NAMESPACE));
        assert!(record(&[(CRI_KIND_LABEL, "sandbox")]).is_cri(K8S_NAMESPACE));
        assert!(!record(&[]).is_cri(K8S_NAMESPACE), "ctr -n k8s.io run");
        assert!(!record(&[(CRI_KIND_LABEL, "container")]).is_cri("default"));
    }
}
