//! A CRI client playing the kubelet, over containerd's unix socket.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::kubelet::{self, ContainerSpec, KubeletPaths, PodSpec, QosClass};

/// How long any single CRI call may take before the client gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed CRI call: which call, and the gRPC status the runtime returned.
///
/// `message` is what the kubelet would report, e.g. `failed to create containerd container:
/// failed to get NRI adjustment for container: ...` when an NRI plugin refuses a container.
#[derive(Debug, Clone)]
pub struct CriError {
    /// The CRI method, e.g. `"CreateContainer"`.
    pub call: &'static str,
    /// The gRPC status code.
    pub code: tonic::Code,
    /// The gRPC status message.
    pub message: String,
}

impl CriError {
    fn from_status(call: &'static str, status: tonic::Status) -> CriError {
        CriError {
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl fmt::Display for CriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CRI {} failed ({:?}): {}",
            self.call, self.code, self.message
        )
    }
}

impl std::error::Error for CriError {}

/// A running pod sandbox, with the config it was created from (the kubelet sends that config
/// again with every `CreateContainer`).
#[derive(Debug, Clone)]
pub struct Pod {
    /// The sandbox id containerd assigned.
    pub id: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// The QoS class the pod was run with.
    pub qos: QosClass,
    /// The `RunPodSandbox` config as sent.
    pub config: cri::PodSandboxConfig,
}

/// Output of [`CriClient::exec_sync`].
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Opens a gRPC channel over a unix socket.
pub(crate) async fn unix_channel(socket: &Path) -> Result<Channel> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by the API but unused: the connector ignores it.
    let channel = Endpoint::from_static("http://[::]:0")
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(channel)
}

/// The kubelet's side of CRI: runtime and image services of one containerd.
///
/// Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct CriClient {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    paths: KubeletPaths,
}

impl CriClient {
    /// Connects to the containerd listening on `socket`. `kubelet_root` stands for the
    /// kubelet's folders (pod logs, termination-log files); `cgroup_root` is the kubelet's
    /// `--cgroup-root` that pod cgroup parents go under.
    pub(crate) async fn connect(
        socket: &Path,
        kubelet_root: &Path,
        cgroup_root: &str,
    ) -> Result<CriClient> {
        let channel = unix_channel(socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        Ok(CriClient {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            paths: KubeletPaths {
                root: kubelet_root.to_owned(),
                cgroup_root: cgroup_root.to_owned(),
            },
        })
    }

    /// The raw runtime service client, for requests the helpers do not cover.
    pub fn runtime_service(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The raw image service client.
    pub fn image_service(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// `Version`: the runtime's name and version.
    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        let request = cri::VersionRequest {
            version: "v1".into(),
        };
        self.runtime
            .clone()
            .version(request)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| CriError::from_status("Version", s))
    }

    /// `Status`: runtime and network conditions.
    pub async fn status(&self) -> Result<cri::StatusResponse, CriError> {
        self.runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| CriError::from_status("Status", s))
    }

    /// `ImageStatus`: the image if the runtime has it.
    pub async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, CriError> {
        let request = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            verbose: false,
        };
        self.images
            .clone()
            .image_status(request)
            .await
            .map(|r| r.into_inner().image)
            .map_err(|s| CriError::from_status("ImageStatus", s))
    }

    /// The ID of image `reference` (`ImageStatus`), as the kubelet resolves it before a
    /// create; an error naming `call` when the runtime does not have it (the kubelet would pull
    /// it; nothing can be pulled here).
    async fn image_id(&self, call: &'static str, reference: &str) -> Result<String, CriError> {
        match self.image_status(reference).await? {
            Some(image) if !image.id.is_empty() => Ok(image.id),
            _ => Err(CriError::from_status(
                call,
                tonic::Status::not_found(format!("image {reference:?} is not on the node")),
            )),
        }
    }

    /// `RunPodSandbox` for `spec` (creating the pod's log folder first, as the kubelet does).
    pub async fn run_pod(&self, spec: &PodSpec) -> Result<Pod, CriError> {
        let config = kubelet::pod_sandbox_config(spec, &self.paths);
        let meta = config.metadata.clone().unwrap_or_default();
        let log_dir = PathBuf::from(&config.log_directory);
        std::fs::create_dir_all(&log_dir).map_err(|e| local_error("RunPodSandbox", &log_dir, e))?;
        let request = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: spec.runtime_handler.clone(),
        };
        let id = self
            .runtime
            .clone()
            .run_pod_sandbox(request)
            .await
            .map_err(|s| CriError::from_status("RunPodSandbox", s))?
            .into_inner()
            .pod_sandbox_id;
        Ok(Pod {
            id,
            uid: meta.uid,
            name: meta.name,
            namespace: meta.namespace,
            qos: spec.qos,
            config,
        })
    }

    /// `CreateContainer` for `spec` in `pod`; returns the container id.
    pub async fn create_container(
        &self,
        pod: &Pod,
        spec: &ContainerSpec,
    ) -> Result<String, CriError> {
        // The kubelet creates an empty termination-log file per container.
        let dir = self.paths.container_dir(&pod.uid, &spec.name);
        std::fs::create_dir_all(&dir).map_err(|e| local_error("CreateContainer", &dir, e))?;
        let termination_log = dir.join(kubelet::random_hex(8));
        std::fs::write(&termination_log, b"")
            .map_err(|e| local_error("CreateContainer", &termination_log, e))?;
        // The kubelet names images by the ID `ImageStatus` (or `PullImage`) gave it.
        let ids = kubelet::ImageIds {
            image: self.image_id("CreateContainer", &spec.image).await?,
            volumes: {
                let mut ids = Vec::new();
                for volume in &spec.image_volumes {
                    ids.push(self.image_id("CreateContainer", &volume.reference).await?);
                }
                ids
            },
        };
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(kubelet::container_config(
                &pod.config,
                pod.qos,
                spec,
                &ids,
                &termination_log,
            )),
            sandbox_config: Some(pod.config.clone()),
        };
        self.runtime
            .clone()
            .create_container(request)
            .await
            .map(|r| r.into_inner().container_id)
            .map_err(|s| CriError::from_status("CreateContainer", s))
    }

    /// `StartContainer`.
    pub async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let request = cri::StartContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.runtime
            .clone()
            .start_container(request)
            .await
            .map(|_| ())
            .map_err(|s| CriError::from_status("StartContainer", s))
    }

    /// `CreateContainer` then `StartContainer`; returns the container id.
    pub async fn run_container(&self, pod: &Pod, spec: &ContainerSpec) -> Result<String, CriError> {
        let id = self.create_container(pod, spec).await?;
        self.start_container(&id).await?;
        Ok(id)
    }

    /// `ContainerStatus`.
    pub async fn container_status(
        &self,
        container_id: &str,
    ) -> Result<cri::ContainerStatus, CriError> {
        let request = cri::ContainerStatusRequest {
            container_id: container_id.to_owned(),
            verbose: false,
        };
        let response = self
            .runtime
            .clone()
            .container_status(request)
            .await
            .map_err(|s| CriError::from_status("ContainerStatus", s))?
            .into_inner();
        response.status.ok_or_else(|| CriError {
            call: "ContainerStatus",
            code: tonic::Code::Internal,
            message: "response without a status".into(),
        })
    }

    /// Polls `ContainerStatus` until the container is in `state` or `timeout` passes.
    pub async fn wait_container_state(
        &self,
        container_id: &str,
        state: cri::ContainerState,
        timeout: Duration,
    ) -> Result<cri::ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.container_status(container_id).await?;
            if status.state == state as i32 {
                return Ok(status);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "container {container_id} is {:?}, not {state:?}, after {timeout:?} (reason {:?}, message {:?})",
                    cri::ContainerState::try_from(status.state),
                    status.reason,
                    status.message
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `ExecSync`: runs `command` in the container and collects its output.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        command: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput, CriError> {
        let request = cri::ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd: command.iter().map(|s| s.to_string()).collect(),
            timeout: timeout.as_secs().max(1) as i64,
        };
        let response = self
            .runtime
            .clone()
            .exec_sync(request)
            .await
            .map_err(|s| CriError::from_status("ExecSync", s))?
            .into_inner();
        Ok(ExecOutput {
            exit_code: response.exit_code,
            stdout: String::from_utf8_lossy(&response.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&response.stderr).into_owned(),
        })
    }

    /// `StopContainer` with a grace period in seconds (0 kills at once).
    pub async fn stop_container(
        &self,
        container_id: &str,
        timeout_secs: i64,
    ) -> Result<(), CriError> {
        let request = cri::StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: timeout_secs,
        };
        self.runtime
            .clone()
            .stop_container(request)
            .await
            .map(|_| ())
            .map_err(|s| CriError::from_status("StopContainer", s))
    }

    /// `RemoveContainer`.
    pub async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let request = cri::RemoveContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.runtime
            .clone()
            .remove_container(request)
            .await
            .map(|_| ())
            .map_err(|s| CriError::from_status("RemoveContainer", s))
    }

    /// `ListContainers`, optionally only those of one pod.
    pub async fn list_containers(
        &self,
        pod_id: Option<&str>,
    ) -> Result<Vec<cri::Container>, CriError> {
        let request = cri::ListContainersRequest {
            filter: pod_id.map(|id| cri::ContainerFilter {
                pod_sandbox_id: id.to_owned(),
                ..Default::default()
            }),
        };
        self.runtime
            .clone()
            .list_containers(request)
            .await
            .map(|r| r.into_inner().containers)
            .map_err(|s| CriError::from_status("ListContainers", s))
    }

    /// `ListPodSandbox`.
    pub async fn list_pods(&self) -> Result<Vec<cri::PodSandbox>, CriError> {
        self.runtime
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .map(|r| r.into_inner().items)
            .map_err(|s| CriError::from_status("ListPodSandbox", s))
    }

    /// `StopPodSandbox` (stops its containers too).
    pub async fn stop_pod(&self, pod_id: &str) -> Result<(), CriError> {
        let request = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod_id.to_owned(),
        };
        self.runtime
            .clone()
            .stop_pod_sandbox(request)
            .await
            .map(|_| ())
            .map_err(|s| CriError::from_status("StopPodSandbox", s))
    }

    /// `RemovePodSandbox` (removes its containers too).
    pub async fn remove_pod(&self, pod_id: &str) -> Result<(), CriError> {
        let request = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod_id.to_owned(),
        };
        self.runtime
            .clone()
            .remove_pod_sandbox(request)
            .await
            .map(|_| ())
            .map_err(|s| CriError::from_status("RemovePodSandbox", s))
    }

    /// Stops and removes every pod this runtime knows, as a kubelet draining the node would.
    pub async fn remove_all_pods(&self) -> Result<(), CriError> {
        for pod in self.list_pods().await? {
            self.stop_pod(&pod.id).await?;
            self.remove_pod(&pod.id).await?;
        }
        Ok(())
    }
}

/// A local file-system failure while preparing a request, reported like a call failure.
fn local_error(call: &'static str, path: &Path, e: std::io::Error) -> CriError {
    CriError {
        call,
        code: tonic::Code::Internal,
        message: format!("harness could not prepare {}: {e}", path.display()),
    }
}
