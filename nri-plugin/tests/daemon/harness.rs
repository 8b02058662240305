//! What the daemon tests share: an in-memory [`ContainerdApi`], the test policy, pods,
//! containers and OCI specs, and a running daemon ([`Daemon`]: `serve::run` against a
//! [`RuntimeListener`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nodeguard::compliance::{Auditor, ComplianceConfig};
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::connection::{self, Registration};
use nodeguard::nri::serve::{ConnectionState, Endpoint, ServeConfig};
use nodeguard::nri::service::PluginService;
use nodeguard::nri::transport::status::RpcError;
use nodeguard::ops::audit::Memory;
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::{Loaded, PolicyHandle};
use nodeguard::runtime::containerd::{
    ContainerRecord, ContainerdApi, ContainerdError, ImageRecord, ListedContainer, LiveTask,
};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use nodeguard_views::kubelet::{CONTAINER_TYPE_ANNOTATION, IMAGE_ANNOTATION};
use nodeguard_views::oci::RuntimeSpec;
use policy_core::Policy;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fake_runtime::{FakeRuntime, PATIENCE, RegisterReply, RuntimeListener};

/// The policy most tests enforce: corporate images without `latest`, no privileged
/// containers, no added capabilities, CPU and memory limits, no host namespaces, no root.
pub const POLICY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: daemon-test
spec:
  effect: enforce
  rules:
    images:
      allowed: ['^registry\.corp/']
      forbiddenTags: [latest]
    privileged: {}
    capabilities:
      allowedAdd: [NET_BIND_SERVICE]
    resources:
      requireLimits: [cpu, memory]
    hostNamespaces: {}
    runAsNonRoot: {}
";

/// A compliant image.
pub const IMAGE: &str = "registry.corp/shop/web:1.4.2";

/// Compiles a policy document.
pub fn policy(yaml: &str) -> Policy {
    Policy::parse("test-policy.yaml", yaml).expect("valid test policy")
}

/// Polls `condition` until it holds; panics with `what` after [`PATIENCE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What [`MemorySpecs`] holds for a container.
#[derive(Debug, Clone)]
enum Stored {
    Spec(Vec<u8>),
    Fails(String),
    /// No record yet (containerd answers NotFound), as right after an NRI CreateContainer.
    NotYet,
}

/// containerd's container records, in memory: an OCI spec (JSON) or an error per id. Ids
/// without an entry have no spec.
#[derive(Debug, Clone, Default)]
pub struct MemorySpecs {
    specs: Arc<Mutex<HashMap<String, Stored>>>,
    kills: Arc<Mutex<Vec<(String, i32)>>>,
    /// containerd's task list. Tests that do not model tasks leave it `None`: listing then
    /// fails as on a containerd that cannot answer, and audits judge the inventory NRI reported.
    tasks: Arc<Mutex<Option<HashSet<String>>>>,
    reads: Arc<Mutex<HashMap<String, usize>>>,
    /// containerd's image records.
    images: Arc<Mutex<Vec<ImageRecord>>>,
    /// Image names of container records, where a test sets one.
    record_images: Arc<Mutex<HashMap<String, String>>>,
    /// Containers made outside Kubernetes (ctr, Docker), by containerd namespace.
    outside: Arc<Mutex<std::collections::BTreeMap<String, Vec<Outside>>>>,
    /// Signals sent to them: `(containerd namespace, id, signal)`.
    outside_kills: Arc<Mutex<Vec<(String, String, i32)>>>,
    /// How long each `record` read takes (as containerd's answer over gRPC), and the most
    /// reads seen under way at once: `(latency, under way, most)`.
    read_latency: Arc<Mutex<(Duration, usize, usize)>>,
}

/// A container made outside Kubernetes, in [`MemorySpecs`].
#[derive(Debug, Clone)]
struct Outside {
    id: String,
    image: String,
    labels: HashMap<String, String>,
    spec: Vec<u8>,
    /// Its task's pid; `None` once it stopped.
    pid: Option<u32>,
}

impl MemorySpecs {
    /// Container `id` has no record yet: reading it is NotFound until [`MemorySpecs::insert`].
    pub fn not_yet(&self, id: &str) {
        self.lock().insert(id.to_string(), Stored::NotYet);
    }

    /// How many times container `id`'s spec was read.
    pub fn reads(&self, id: &str) -> usize {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// containerd's image records are `records` (`(name, digest)`).
    pub fn set_images(&self, records: &[(&str, &str)]) {
        *self.images.lock().unwrap_or_else(PoisonError::into_inner) = records
            .iter()
            .map(|(name, digest)| ImageRecord {
                name: (*name).to_string(),
                digest: (*digest).to_string(),
            })
            .collect();
    }

    /// Container `id`'s record names image `name` (by default: the normalized name its spec's
    /// CRI annotation holds).
    pub fn set_record_image(&self, id: &str, name: &str) {
        self.record_images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), name.to_string());
    }

    /// The image name container `id`'s record holds.
    fn record_image(&self, id: &str, spec: &RuntimeSpec) -> String {
        if let Some(name) = self
            .record_images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return name.clone();
        }
        spec.annotation("io.kubernetes.cri.image-name")
            .map(|n| policy_core::image::ImageRef::parse(n).as_str().to_string())
            .unwrap_or_default()
    }

    /// Container `id` has `spec`.
    pub fn insert(&self, id: &str, spec: &Value) {
        let json = serde_json::to_vec(spec).expect("JSON");
        self.lock().insert(id.to_string(), Stored::Spec(json));
    }

    /// Reading container `id`'s spec fails as a containerd call fails.
    pub fn fail(&self, id: &str, message: &str) {
        self.lock()
            .insert(id.to_string(), Stored::Fails(message.to_string()));
    }

    /// containerd's task list holds exactly `ids`, all running.
    pub fn set_tasks(&self, ids: &[&str]) {
        *self.tasks() = Some(ids.iter().map(|id| (*id).to_string()).collect());
    }

    /// Container `id`'s record is gone (removed): no spec, no task.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
        self.exit(id);
    }

    /// From now on listing the tasks fails, as on a containerd that cannot answer.
    pub fn fail_task_list(&self) {
        *self.tasks() = None;
    }

    /// Container `id`'s task exited: it leaves the task list (its record stays).
    pub fn exit(&self, id: &str) {
        if let Some(live) = &mut *self.tasks() {
            live.remove(id);
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Option<HashSet<String>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.specs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes every spec read take `latency`, as containerd's answer over gRPC does.
    pub fn set_read_latency(&self, latency: Duration) {
        self.read_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0 = latency;
    }

    /// The most spec reads seen under way at once.
    pub fn most_reads_at_once(&self) -> usize {
        self.read_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .2
    }

    /// Every signal sent so far: `(container id, signal)`, in order.
    pub fn kills(&self) -> Vec<(String, i32)> {
        self.kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A container made outside Kubernetes (`ctr -n <namespace> run`): record `id` of
    /// `image` with `spec` and `labels`, its task running as `pid` (a restart: another pid).
    pub fn run_outside(
        &self,
        namespace: &str,
        id: &str,
        image: &str,
        spec: &Value,
        labels: &[(&str, &str)],
        pid: u32,
    ) {
        let mut outside = self.outside.lock().unwrap_or_else(PoisonError::into_inner);
        let list = outside.entry(namespace.to_string()).or_default();
        list.retain(|c| c.id != id);
        list.push(Outside {
            id: id.to_string(),
            image: image.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            spec: serde_json::to_vec(spec).expect("JSON"),
            pid: Some(pid),
        });
    }

    /// Every signal sent to a container made outside Kubernetes: `(containerd namespace, id,
    /// signal)`, in order.
    pub fn outside_kills(&self) -> Vec<(String, String, i32)> {
        self.outside_kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the task of container `id` of `namespace` (made outside Kubernetes) still runs.
    pub fn outside_running(&self, namespace: &str, id: &str) -> bool {
        self.outside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .is_some_and(|l| l.iter().any(|c| c.id == id && c.pid.is_some()))
    }
}

impl ContainerdApi for MemorySpecs {
    async fn record(&self, id: &str) -> Result<ContainerRecord, ContainerdError> {
        let latency = {
            let mut l = self
                .read_latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            l.1 += 1;
            l.2 = l.2.max(l.1);
            l.0
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.read_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1 -= 1;
        *self
            .reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_string())
            .or_default() += 1;
        let stored = self.lock().get(id).cloned();
        match stored {
            Some(Stored::Spec(json)) => RuntimeSpec::from_json(&json)
                .map(|spec| ContainerRecord {
                    image: self.record_image(id, &spec),
                    spec,
                })
                .map_err(|source| ContainerdError::BadSpec {
                    id: id.to_string(),
                    source,
                }),
            Some(Stored::Fails(message)) => Err(ContainerdError::Call {
                call: "Containers.Get",
                status: Box::new(tonic::Status::unavailable(message)),
            }),
            Some(Stored::NotYet) => Err(ContainerdError::Call {
                call: "Containers.Get",
                status: Box::new(tonic::Status::not_found(format!(
                    "container \"{id}\": not found"
                ))),
            }),
            None => Err(ContainerdError::NoSpec(id.to_string())),
        }
    }

    /// The image records set by [`MemorySpecs::set_images`] (any namespace).
    async fn images(&self, _namespace: &str) -> Result<Vec<ImageRecord>, ContainerdError> {
        Ok(self
            .images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    /// Records the signal; a container with a stored spec has a task to signal.
    async fn kill(&self, id: &str, signal: i32) -> Result<bool, ContainerdError> {
        self.kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id.to_string(), signal));
        Ok(self.lock().contains_key(id))
    }

    /// The task list set by [`MemorySpecs::set_tasks`]; an error when none was set.
    async fn live_tasks(&self) -> Result<HashSet<String>, ContainerdError> {
        self.tasks().clone().ok_or_else(|| ContainerdError::Call {
            call: "Tasks.List",
            status: Box::new(tonic::Status::unavailable("no task list in this test")),
        })
    }

    /// The namespaces of the containers made outside Kubernetes.
    async fn namespaces(&self) -> Result<Vec<String>, ContainerdError> {
        Ok(self
            .outside
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect())
    }

    /// The records set by [`MemorySpecs::run_outside`].
    async fn containers(&self, namespace: &str) -> Result<Vec<ListedContainer>, ContainerdError> {
        let outside = self.outside.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(outside
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|c| ListedContainer {
                id: c.id.clone(),
                image: c.image.clone(),
                labels: c.labels.clone(),
                spec: RuntimeSpec::from_json(&c.spec).map_err(|e| e.to_string()),
            })
            .collect())
    }

    /// The running tasks of [`MemorySpecs::run_outside`]'s containers.
    async fn tasks_in(&self, namespace: &str) -> Result<Vec<LiveTask>, ContainerdError> {
        let outside = self.outside.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(outside
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(LiveTask {
                    id: c.id.clone(),
                    pid: c.pid?,
                })
            })
            .collect())
    }

    /// Records the signal; SIGKILL stops the task.
    async fn kill_in(
        &self,
        namespace: &str,
        id: &str,
        signal: i32,
    ) -> Result<bool, ContainerdError> {
        self.outside_kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((namespace.to_string(), id.to_string(), signal));
        let mut outside = self.outside.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = outside
            .get_mut(namespace)
            .and_then(|l| l.iter_mut().find(|c| c.id == id && c.pid.is_some()))
        else {
            return Ok(false);
        };
        if signal == 9 {
            c.pid = None;
        }
        Ok(true)
    }
}

/// The plugin's state: policy handle, specs, audit sink, and the enforcer and auditor over
/// them.
pub struct Plugin {
    /// The policy in force (swap it to reload).
    pub policy: PolicyHandle,
    /// containerd's records.
    pub specs: MemorySpecs,
    /// The audit log.
    pub audit: Arc<Memory>,
    /// The auditor (with its enforcer) every connection's service shares.
    pub auditor: Arc<Auditor<MemorySpecs>>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
}

impl Plugin {
    /// A plugin enforcing [`POLICY`] that refuses undecided rules at start.
    pub fn new() -> Self {
        Self::with(POLICY, UndecidedAtStart::Deny)
    }

    /// A plugin enforcing `policy_yaml`.
    pub fn with(policy_yaml: &str, undecided: UndecidedAtStart) -> Self {
        Self::configured(policy_yaml, undecided, ComplianceConfig::default())
    }

    /// A plugin around an enforcer built elsewhere (its own audit sink and metrics); `audit`
    /// and `metrics` of the result are unused placeholders.
    pub fn from_enforcer(enforcer: Enforcer<MemorySpecs>) -> Self {
        Plugin {
            policy: Arc::clone(enforcer.policy()),
            specs: enforcer.specs().clone(),
            audit: Arc::new(Memory::default()),
            auditor: Arc::new(Auditor::new(
                Arc::new(enforcer),
                ComplianceConfig::default(),
            )),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// A plugin enforcing `policy_yaml`, auditing as `compliance` says.
    pub fn configured(
        policy_yaml: &str,
        undecided: UndecidedAtStart,
        compliance: ComplianceConfig,
    ) -> Self {
        let policy: PolicyHandle = Loaded::first(policy(policy_yaml));
        let specs = MemorySpecs::default();
        let audit = Arc::new(Memory::default());
        let metrics = Arc::new(Metrics::default());
        let enforcer = Arc::new(Enforcer::new(
            Arc::clone(&policy),
            specs.clone(),
            audit.clone(),
            Arc::clone(&metrics),
            "node-1".to_string(),
            undecided,
        ));
        Plugin {
            policy,
            specs,
            audit,
            auditor: Arc::new(Auditor::new(enforcer, compliance)),
            metrics,
        }
    }

    /// A fresh service for one connection.
    pub fn service(&self) -> Arc<PluginService<Auditor<MemorySpecs>>> {
        Arc::new(PluginService::new(Arc::clone(&self.auditor)))
    }

    /// Serves this plugin on `stream` as `nodeguard serve` serves a connection, registering
    /// within [`PATIENCE`], until the task is aborted or the connection ends.
    pub fn serve_on<T>(
        &self,
        stream: T,
    ) -> JoinHandle<Result<connection::Ended, connection::ConnectionError>>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let service = self.service();
        tokio::spawn(async move {
            connection::serve(
                stream,
                service,
                &registration(),
                PATIENCE,
                std::future::pending(),
                || {},
            )
            .await
        })
    }

    /// Audit records of `phase` (`create`, `start`, `update`, `sync`).
    pub fn records(&self, phase: &str) -> Vec<Value> {
        self.audit
            .records()
            .into_iter()
            .filter(|r| r["phase"] == phase)
            .collect()
    }
}

/// The audit log as it stood when each reply came off the wire, by stream id.
#[derive(Clone, Default)]
pub struct AuditAtReply {
    seen: Arc<Mutex<HashMap<u32, Vec<Value>>>>,
}

impl AuditAtReply {
    /// Snapshots `audit` at every reply `runtime` receives from now on.
    pub fn install(runtime: &FakeRuntime, audit: &Arc<Memory>) -> Self {
        let this = AuditAtReply::default();
        let (seen, audit) = (Arc::clone(&this.seen), Arc::clone(audit));
        runtime.observe_replies(move |reply| {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(reply.stream_id, audit.records());
        });
        this
    }

    /// Calls `method` and returns its result with the audit records that existed when the
    /// reply arrived.
    pub async fn call(
        &self,
        runtime: &FakeRuntime,
        method: &str,
        request: &impl prost::Message,
    ) -> (Result<bytes::Bytes, RpcError>, Vec<Value>) {
        self.call_raw(runtime, method, request.encode_to_vec())
            .await
    }

    /// [`AuditAtReply::call`] with an encoded request.
    pub async fn call_raw(
        &self,
        runtime: &FakeRuntime,
        method: &str,
        payload: Vec<u8>,
    ) -> (Result<bytes::Bytes, RpcError>, Vec<Value>) {
        let (message, reply) = runtime.prepare(method::NAME, method, payload);
        let stream_id = reply.stream_id();
        runtime.send(&message).await;
        let result = reply.result().await;
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&stream_id)
            .expect("the observer saw the reply");
        (result, seen)
    }
}

/// How nodeguard registers in these tests.
pub fn registration() -> Registration {
    Registration {
        name: "nodeguard".to_string(),
        index: "10".to_string(),
    }
}

/// `serve::run` connected to a [`RuntimeListener`], as `nodeguard serve` runs it.
pub struct Daemon {
    /// The plugin's state.
    pub plugin: Plugin,
    /// The runtime's socket.
    pub listener: RuntimeListener,
    /// Readiness as the daemon reports it.
    pub state: Arc<ConnectionState>,
    /// Cancelling it shuts the daemon down.
    pub shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Daemon {
    /// Starts the daemon with a 5 s registration timeout (short backoff).
    pub fn start(plugin: Plugin) -> Self {
        Self::start_with(plugin, Duration::from_secs(5))
    }

    /// Starts the daemon with `registration_timeout`, backing off 10 ms doubling to 40 ms.
    pub fn start_with(plugin: Plugin, registration_timeout: Duration) -> Self {
        let listener = RuntimeListener::bind();
        let config = ServeConfig {
            endpoint: Endpoint::Socket(listener.path().to_path_buf()),
            registration: registration(),
            registration_timeout,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        };
        let state = Arc::new(ConnectionState::default());
        let shutdown = CancellationToken::new();
        let auditor = Arc::clone(&plugin.auditor);
        let task = tokio::spawn(nodeguard::nri::serve::run(
            config,
            move || Arc::new(PluginService::new(Arc::clone(&auditor))),
            Arc::clone(&state),
            shutdown.clone(),
        ));
        Daemon {
            plugin,
            listener,
            state,
            shutdown,
            task,
        }
    }

    /// Starts the daemon and plays containerd's handshake: accept the registration, then
    /// Configure and an empty Synchronize.
    pub async fn connected() -> (Daemon, FakeRuntime) {
        Self::connected_with(Plugin::new()).await
    }

    /// [`Daemon::connected`] with `plugin`.
    pub async fn connected_with(plugin: Plugin) -> (Daemon, FakeRuntime) {
        let daemon = Daemon::start(plugin);
        let runtime = daemon.listener.accept(RegisterReply::Ok).await;
        runtime.registration().await;
        handshake(&runtime).await;
        let state = Arc::clone(&daemon.state);
        wait_until("the daemon is registered", || state.is_registered()).await;
        (daemon, runtime)
    }

    /// Cancels the shutdown token and waits for `serve::run` to return (panics after
    /// [`PATIENCE`]).
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("serve::run returns promptly after shutdown")
            .expect("serve::run does not panic");
    }

    /// Whether `serve::run` has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Configure and an empty Synchronize, as containerd sends them after registration.
pub async fn handshake(runtime: &FakeRuntime) -> nri::ConfigureResponse {
    let configured: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    let synced: nri::SynchronizeResponse = runtime
        .call_ok(method::SYNCHRONIZE, &nri::SynchronizeRequest::default())
        .await;
    assert_eq!(synced, nri::SynchronizeResponse::default());
    configured
}

/// containerd 2.1's Configure.
pub fn configure() -> nri::ConfigureRequest {
    nri::ConfigureRequest {
        config: String::new(),
        runtime_name: "containerd".into(),
        runtime_version: "v2.1.4".into(),
        registration_timeout: 5000,
        request_timeout: 2000,
        ..Default::default()
    }
}

fn namespace(kind: &str) -> nri::LinuxNamespace {
    nri::LinuxNamespace {
        r#type: kind.into(),
        path: format!("/proc/42/ns/{kind}"),
    }
}

/// Pod `default/web` with its own PID, IPC and network namespaces.
pub fn pod() -> nri::PodSandbox {
    nri::PodSandbox {
        id: "sandbox-1".into(),
        name: "web".into(),
        uid: "uid-1".into(),
        namespace: "default".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        linux: Some(nri::LinuxPodSandbox {
            namespaces: vec![namespace("pid"), namespace("ipc"), namespace("network")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pod `default/web` sharing the host's PID namespace.
pub fn host_pid_pod() -> nri::PodSandbox {
    let mut pod = pod();
    if let Some(linux) = pod.linux.as_mut() {
        linux.namespaces.retain(|n| n.r#type != "pid");
    }
    pod
}

/// Container `app` (id `id`) of [`pod`] running [`IMAGE`] with CPU and memory limits: what
/// containerd tells at CreateContainer about a compliant container.
pub fn container(id: &str) -> nri::Container {
    nri::Container {
        id: id.into(),
        pod_sandbox_id: "sandbox-1".into(),
        name: "app".into(),
        annotations: [
            (IMAGE_ANNOTATION.to_string(), IMAGE.to_string()),
            (
                CONTAINER_TYPE_ANNOTATION.to_string(),
                "container".to_string(),
            ),
        ]
        .into(),
        linux: Some(nri::LinuxContainer {
            namespaces: vec![namespace("mount")],
            resources: Some(limits(500, 256 << 20)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// [`container`] as `Synchronize` lists it while it runs.
pub fn running(id: &str) -> nri::Container {
    let mut c = container(id);
    c.state = nri::ContainerState::ContainerRunning as i32;
    c
}

/// Configures the plugin and synchronizes `pods` and `containers` in one part.
pub async fn synchronize(
    runtime: &FakeRuntime,
    pods: Vec<nri::PodSandbox>,
    containers: Vec<nri::Container>,
) {
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    let _: nri::SynchronizeResponse = runtime
        .call_ok(
            method::SYNCHRONIZE,
            &nri::SynchronizeRequest {
                pods,
                containers,
                more: false,
            },
        )
        .await;
}

/// A creation as NRI v0.10+ runs it: CreateContainer, then ValidateContainerAdjustment with
/// `adjust` (what the plugins before and after nodeguard changed). `Err`: the rejection.
pub async fn create_and_validate(
    runtime: &FakeRuntime,
    c: nri::Container,
    adjust: nri::ContainerAdjustment,
) -> Result<(), String> {
    let created: nri::CreateContainerResponse = runtime
        .call_ok(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(c.clone()),
            },
        )
        .await;
    assert_eq!(
        created,
        nri::CreateContainerResponse::default(),
        "CreateContainer adjusts nothing"
    );
    let validated: nri::ValidateContainerAdjustmentResponse = runtime
        .call_ok(
            method::VALIDATE_CONTAINER_ADJUSTMENT,
            &nri::ValidateContainerAdjustmentRequest {
                pod: Some(pod()),
                container: Some(c),
                adjust: Some(adjust),
                plugins: vec![nri::PluginInstance {
                    name: "nodeguard".into(),
                    index: "10".into(),
                }],
                ..Default::default()
            },
        )
        .await;
    if validated.reject {
        Err(validated.reason)
    } else {
        Ok(())
    }
}

/// Starts container `id` of [`pod`]; panics unless it is allowed.
pub async fn start_ok(runtime: &FakeRuntime, id: &str) {
    let _: nri::StartContainerResponse = runtime
        .call_ok(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(container(id)),
            },
        )
        .await;
}

/// [`container`] running `image`.
pub fn container_with_image(id: &str, image: &str) -> nri::Container {
    let mut c = container(id);
    c.annotations
        .insert(IMAGE_ANNOTATION.to_string(), image.to_string());
    c
}

/// [`container`] without resource limits.
pub fn container_without_limits(id: &str) -> nri::Container {
    let mut c = container(id);
    if let Some(linux) = c.linux.as_mut() {
        linux.resources = Some(nri::LinuxResources::default());
    }
    c
}

/// Resources with a CPU limit of `millicores` and a memory limit of `memory` bytes.
pub fn limits(millicores: i64, memory: i64) -> nri::LinuxResources {
    nri::LinuxResources {
        cpu: Some(nri::LinuxCpu {
            shares: Some(nri::OptionalUInt64 { value: 512 }),
            quota: Some(nri::OptionalInt64 {
                value: millicores * 100,
            }),
            period: Some(nri::OptionalUInt64 { value: 100_000 }),
            ..Default::default()
        }),
        memory: Some(nri::LinuxMemory {
            limit: Some(nri::OptionalInt64 { value: memory }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The OCI spec containerd commits for a compliant [`container`]: UID 1000, the runtime's
/// default capabilities, /proc masked, limits set.
pub fn compliant_spec() -> Value {
    json!({
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 1000, "gid": 1000},
            "args": ["/server"],
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "app",
            "io.kubernetes.cri.image-name": IMAGE,
            "io.kubernetes.cri.sandbox-id": "sandbox-1",
            "io.kubernetes.cri.sandbox-name": "web",
            "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}, {"type": "mount"}],
            "resources": {
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "memory": {"limit": 268_435_456}
            },
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

/// Every capability Linux knows, as a privileged container's spec lists them.
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// A privileged container's spec: every capability, nothing of /proc masked.
pub fn privileged_spec() -> Value {
    let mut spec = compliant_spec();
    let all = json!(ALL_CAPABILITIES);
    spec["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    let linux = spec["linux"].as_object_mut().expect("linux");
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    spec
}

/// A spec adding `CAP_SYS_ADMIN` (not privileged: /proc stays masked).
pub fn sys_admin_spec() -> Value {
    let mut spec = compliant_spec();
    let caps = json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]);
    spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    spec
}

/// A spec running as root.
pub fn root_spec() -> Value {
    let mut spec = compliant_spec();
    spec["process"]["user"] = json!({"uid": 0, "gid": 0});
    spec
}
