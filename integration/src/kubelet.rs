//! What the kubelet would send: pod and container descriptions turned into CRI requests.
//!
//! The shapes follow what a kubelet with the cgroupfs driver sends on a cgroup v1 node
//! (metadata, the `io.kubernetes.*` labels and annotations, log paths, the pod's cgroup parent,
//! CPU shares/quota/period and memory limit, masked paths, the termination-log mount), so the
//! NRI plugin under test sees what it would see on a real node.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_cri::v1 as cri;

/// The CFS period the kubelet uses for CPU limits, in microseconds.
const CPU_PERIOD_US: i64 = 100_000;

/// What `/proc` paths the kubelet masks in a non-privileged container (the default `procMount`).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// What `/proc` paths the kubelet makes read-only in a non-privileged container.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A shell loop that runs until SIGTERM, for containers that must stay up.
pub const SLEEP_FOREVER: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"];

/// A seccomp (or AppArmor) profile choice, as in a Kubernetes security context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Profile {
    /// No profile: the kubelet's default when none is set.
    #[default]
    Unconfined,
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile on the node, by path (seccomp) or name (AppArmor).
    Localhost(String),
}

impl Profile {
    fn to_cri(&self) -> cri::SecurityProfile {
        use cri::security_profile::ProfileType;
        let (profile_type, localhost_ref) = match self {
            Profile::Unconfined => (ProfileType::Unconfined, String::new()),
            Profile::RuntimeDefault => (ProfileType::RuntimeDefault, String::new()),
            Profile::Localhost(r) => (ProfileType::Localhost, r.clone()),
        };
        cri::SecurityProfile {
            profile_type: profile_type as i32,
            localhost_ref,
        }
    }
}

/// A pod's quality-of-service class; it picks the pod's cgroup parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QosClass {
    /// Every container has equal requests and limits.
    Guaranteed,
    /// Some requests or limits.
    #[default]
    Burstable,
    /// No requests or limits at all.
    BestEffort,
}

/// A pod to run, described the way a pod spec would.
///
/// Pods always use the node's network here (there is no CNI); see [`PodSpec::new`].
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`; generated when `None`.
    pub uid: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.hostNetwork`. Must stay `true` on this testbed: there is no CNI.
    pub host_network: bool,
    /// `spec.hostPID`.
    pub host_pid: bool,
    /// `spec.hostIPC`.
    pub host_ipc: bool,
    /// Whether any container of the pod is privileged (the kubelet marks the sandbox so).
    pub privileged: bool,
    /// `spec.securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `spec.securityContext.runAsGroup`.
    pub run_as_group: Option<i64>,
    /// `spec.securityContext.supplementalGroups`.
    pub supplemental_groups: Vec<i64>,
    /// `spec.securityContext.sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// `spec.securityContext.seccompProfile`.
    pub seccomp: Profile,
    /// The pod's QoS class (status.qosClass), which sets its cgroup parent.
    pub qos: QosClass,
    /// `spec.runtimeClassName`'s handler; empty for the default runtime.
    pub runtime_handler: String,
}

impl PodSpec {
    /// A host-network pod `namespace/name` with no labels.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> PodSpec {
        PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            host_network: true,
            ..PodSpec::default()
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> PodSpec {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> PodSpec {
        self.annotations.insert(key.into(), value.into());
        self
    }
}

/// A host path mounted into a container (a `hostPath` volume and its `volumeMount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    /// Path on the node.
    pub host_path: PathBuf,
    /// Path in the container.
    pub container_path: String,
    /// `readOnly`.
    pub readonly: bool,
}

/// A container to create in a pod, described the way a container spec would.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// `name`.
    pub name: String,
    /// `image`, as written in the pod spec (e.g. `registry.local/busybox:1`).
    pub image: String,
    /// `command` (replaces the image's entrypoint); empty keeps the image's.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `workingDir`.
    pub working_dir: String,
    /// `env`, in order.
    pub env: Vec<(String, String)>,
    /// Extra CRI labels (the kubelet's own are always added).
    pub labels: BTreeMap<String, String>,
    /// Extra CRI annotations (the kubelet's own are always added).
    pub annotations: BTreeMap<String, String>,
    /// `securityContext.privileged`.
    pub privileged: bool,
    /// `resources.limits.cpu`, in millicores.
    pub cpu_limit_millis: Option<i64>,
    /// `resources.requests.cpu`, in millicores; defaults to the limit, as the API server does.
    pub cpu_request_millis: Option<i64>,
    /// `resources.limits.memory`, in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// `resources.requests.memory`, in bytes; defaults to the limit, as the API server does.
    pub memory_request_bytes: Option<i64>,
    /// Host PID namespace; `None` follows the pod (what the kubelet does).
    pub host_pid: Option<bool>,
    /// Host IPC namespace; `None` follows the pod (what the kubelet does).
    pub host_ipc: Option<bool>,
    /// `securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `securityContext.runAsGroup`.
    pub run_as_group: Option<i64>,
    /// `securityContext.readOnlyRootFilesystem`.
    pub read_only_root_filesystem: bool,
    /// `securityContext.allowPrivilegeEscalation`; `Some(false)` sets `no_new_privs`.
    pub allow_privilege_escalation: Option<bool>,
    /// `securityContext.capabilities.add`, e.g. `"NET_ADMIN"` or `"CAP_NET_ADMIN"`.
    pub capabilities_add: Vec<String>,
    /// `securityContext.capabilities.drop`.
    pub capabilities_drop: Vec<String>,
    /// `hostPath` volume mounts.
    pub mounts: Vec<HostMount>,
    /// `securityContext.seccompProfile`.
    pub seccomp: Profile,
    /// Image volumes (`volumes[].image.reference`) mounted into the container.
    pub image_volumes: Vec<ImageVolumeMount>,
}

/// An image volume mounted into a container: the pod's `volumes[].image.reference` and the
/// container's `volumeMounts[]` entry for it.
#[derive(Debug, Clone, Default)]
pub struct ImageVolumeMount {
    /// `image.reference`, as written in the pod spec.
    pub reference: String,
    /// `mountPath`.
    pub container_path: String,
}

/// The image IDs the kubelet resolved (from `ImageStatus`, or `PullImage`) before creating a
/// container: its own image's and each image volume's, in [`ContainerSpec::image_volumes`]
/// order. A 1.28+ kubelet names images by ID and sends the pod's string beside it.
#[derive(Debug, Clone, Default)]
pub struct ImageIds {
    /// The container image's ID.
    pub image: String,
    /// Each image volume's ID.
    pub volumes: Vec<String>,
}

impl ContainerSpec {
    /// A container `name` running `image` with the image's own command.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            ..ContainerSpec::default()
        }
    }

    /// Sets the command (the pod spec's `command`).
    pub fn command<I, S>(mut self, command: I) -> ContainerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// Runs [`SLEEP_FOREVER`]: a busybox container that stays up until stopped.
    pub fn sleep_forever(self) -> ContainerSpec {
        self.command(SLEEP_FOREVER)
    }

    /// Mounts image `reference` (an image volume) at `container_path`.
    pub fn image_volume(
        mut self,
        reference: impl Into<String>,
        container_path: impl Into<String>,
    ) -> ContainerSpec {
        self.image_volumes.push(ImageVolumeMount {
            reference: reference.into(),
            container_path: container_path.into(),
        });
        self
    }

    /// Sets CPU (millicores) and memory (bytes) limits; requests default to them.
    pub fn limits(mut self, cpu_millis: i64, memory_bytes: i64) -> ContainerSpec {
        self.cpu_limit_millis = Some(cpu_millis);
        self.memory_limit_bytes = Some(memory_bytes);
        self
    }

    /// Makes the container privileged.
    pub fn privileged(mut self) -> ContainerSpec {
        self.privileged = true;
        self
    }
}

/// Where the simulated kubelet keeps its files, and its cgroup root.
#[derive(Debug, Clone)]
pub(crate) struct KubeletPaths {
    /// Stands for `/var/lib/kubelet` and `/var/log`.
    pub(crate) root: PathBuf,
    /// The kubelet's `--cgroup-root`.
    pub(crate) cgroup_root: String,
}

impl KubeletPaths {
    pub(crate) fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.root
            .join("log/pods")
            .join(format!("{namespace}_{name}_{uid}"))
    }

    pub(crate) fn container_dir(&self, uid: &str, container: &str) -> PathBuf {
        self.root
            .join("pods")
            .join(uid)
            .join("containers")
            .join(container)
    }

    fn cgroup_parent(&self, qos: QosClass, uid: &str) -> String {
        let root = self.cgroup_root.trim_end_matches('/');
        match qos {
            QosClass::Guaranteed => format!("{root}/kubepods/pod{uid}"),
            QosClass::Burstable => format!("{root}/kubepods/burstable/pod{uid}"),
            QosClass::BestEffort => format!("{root}/kubepods/besteffort/pod{uid}"),
        }
    }
}

/// A random 64-bit value (std's hasher keys come from the OS's random source).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    hasher.finish()
}

/// A random version-4 UUID, as the API server gives pods.
pub(crate) fn new_uid() -> String {
    let hi = random_u64();
    let lo = random_u64();
    let a = (hi >> 32) as u32;
    let b = (hi >> 16) as u16;
    let c = (hi as u16 & 0x0fff) | 0x4000;
    let d = ((lo >> 48) as u16 & 0x3fff) | 0x8000;
    let e = lo & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}

/// A short random hex string (the kubelet names termination-log files so).
pub(crate) fn random_hex(len: usize) -> String {
    let mut s = format!("{:016x}", random_u64());
    s.truncate(len.min(16));
    s
}

/// The node's memory in bytes (for the Burstable `oom_score_adj` formula).
fn node_memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(8 << 30)
}

fn namespace_mode(host: bool) -> i32 {
    if host {
        cri::NamespaceMode::Node as i32
    } else {
        cri::NamespaceMode::Pod as i32
    }
}

/// The `RunPodSandbox` config the kubelet would send for `spec`, with its uid.
pub(crate) fn pod_sandbox_config(spec: &PodSpec, paths: &KubeletPaths) -> cri::PodSandboxConfig {
    let uid = spec.uid.clone().unwrap_or_else(new_uid);
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert("io.kubernetes.pod.name".into(), spec.name.clone());
    labels.insert("io.kubernetes.pod.namespace".into(), spec.namespace.clone());
    labels.insert("io.kubernetes.pod.uid".into(), uid.clone());
    let mut annotations: HashMap<String, String> = spec.annotations.clone().into_iter().collect();
    annotations.insert("kubernetes.io/config.source".into(), "api".into());
    annotations.insert(
        "kubernetes.io/config.seen".into(),
        "2025-01-01T00:00:00.000000000Z".into(),
    );
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: spec.name.clone(),
            uid: uid.clone(),
            namespace: spec.namespace.clone(),
            attempt: 0,
        }),
        // The kubelet leaves the hostname empty for host-network pods (they share the node's
        // UTS namespace, where runc refuses to set one).
        hostname: if spec.host_network {
            String::new()
        } else {
            spec.name.clone()
        },
        log_directory: paths
            .pod_log_dir(&spec.namespace, &spec.name, &uid)
            .to_string_lossy()
            .into_owned(),
        dns_config: None,
        port_mappings: Vec::new(),
        labels,
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: paths.cgroup_parent(spec.qos, &uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: namespace_mode(spec.host_network),
                    pid: namespace_mode(spec.host_pid),
                    ipc: namespace_mode(spec.host_ipc),
                    ..Default::default()
                }),
                run_as_user: spec.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: spec.run_as_group.map(|value| cri::Int64Value { value }),
                supplemental_groups: spec.supplemental_groups.clone(),
                privileged: spec.privileged,
                seccomp: Some(spec.seccomp.to_cri()),
                ..Default::default()
            }),
            sysctls: spec.sysctls.clone().into_iter().collect(),
            overhead: None,
            resources: None,
        }),
        windows: None,
    }
}

/// CPU shares for a request, as the kubelet computes them (minimum 2).
fn cpu_shares(request_millis: Option<i64>) -> i64 {
    match request_millis {
        None | Some(0) => 2,
        Some(m) => (m * 1024 / 1000).max(2),
    }
}

/// CFS quota for a limit, as the kubelet computes it (minimum 1000 µs).
fn cpu_quota(limit_millis: i64) -> i64 {
    (limit_millis * CPU_PERIOD_US / 1000).max(1000)
}

/// The container's `oom_score_adj` for the pod's QoS class (the kubelet's formula).
fn oom_score_adj(qos: QosClass, memory_request: Option<i64>) -> i64 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = memory_request.unwrap_or(0);
            let adj = 1000 - (1000 * request) / node_memory_bytes().max(1);
            adj.clamp(2, 999)
        }
    }
}

/// The container's `linux.resources`.
pub(crate) fn container_resources(
    spec: &ContainerSpec,
    qos: QosClass,
) -> cri::LinuxContainerResources {
    let cpu_request = spec.cpu_request_millis.or(spec.cpu_limit_millis);
    let memory_request = spec.memory_request_bytes.or(spec.memory_limit_bytes);
    let (cpu_period, cpu_quota) = match spec.cpu_limit_millis {
        Some(limit) if limit > 0 => (CPU_PERIOD_US, cpu_quota(limit)),
        _ => (0, 0),
    };
    cri::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares: cpu_shares(cpu_request),
        memory_limit_in_bytes: spec.memory_limit_bytes.unwrap_or(0),
        oom_score_adj: oom_score_adj(qos, memory_request),
        ..Default::default()
    }
}

/// The `CreateContainer` config the kubelet would send for `spec` in the pod whose sandbox
/// config is `pod`, its images resolved to `ids`. `termination_log` is the (existing) file
/// mounted at `/dev/termination-log`.
pub(crate) fn container_config(
    pod: &cri::PodSandboxConfig,
    qos: QosClass,
    spec: &ContainerSpec,
    ids: &ImageIds,
    termination_log: &Path,
) -> cri::ContainerConfig {
    let meta = pod.metadata.clone().unwrap_or_default();
    let pod_ns = pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();

    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert("io.kubernetes.container.name".into(), spec.name.clone());
    labels.insert("io.kubernetes.pod.name".into(), meta.name.clone());
    labels.insert("io.kubernetes.pod.namespace".into(), meta.namespace.clone());
    labels.insert("io.kubernetes.pod.uid".into(), meta.uid.clone());

    let mut hasher = std::hash::DefaultHasher::new();
    (&spec.name, &spec.image, &spec.command, &spec.args).hash(&mut hasher);
    let mut annotations: HashMap<String, String> = spec.annotations.clone().into_iter().collect();
    annotations.insert(
        "io.kubernetes.container.hash".into(),
        format!("{:08x}", hasher.finish() as u32),
    );
    annotations.insert("io.kubernetes.container.restartCount".into(), "0".into());
    annotations.insert(
        "io.kubernetes.container.terminationMessagePath".into(),
        "/dev/termination-log".into(),
    );
    annotations.insert(
        "io.kubernetes.container.terminationMessagePolicy".into(),
        "File".into(),
    );
    annotations.insert(
        "io.kubernetes.pod.terminationGracePeriod".into(),
        "30".into(),
    );

    let mut envs: Vec<cri::KeyValue> = spec
        .env
        .iter()
        .map(|(key, value)| cri::KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    // Service links of the default `kubernetes` service, as the kubelet injects them.
    for (key, value) in [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
    ] {
        envs.push(cri::KeyValue {
            key: key.into(),
            value: value.into(),
        });
    }

    let mut mounts: Vec<cri::Mount> = spec
        .mounts
        .iter()
        .map(|m| cri::Mount {
            container_path: m.container_path.clone(),
            host_path: m.host_path.to_string_lossy().into_owned(),
            readonly: m.readonly,
            propagation: cri::MountPropagation::PropagationPrivate as i32,
            ..Default::default()
        })
        .collect();
    // Image volumes: by ID, with the pod's reference, read-only (the kubelet's shape).
    for (volume, id) in spec.image_volumes.iter().zip(&ids.volumes) {
        mounts.push(cri::Mount {
            container_path: volume.container_path.clone(),
            readonly: true,
            image: Some(cri::ImageSpec {
                image: id.clone(),
                user_specified_image: volume.reference.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    mounts.push(cri::Mount {
        container_path: "/dev/termination-log".into(),
        host_path: termination_log.to_string_lossy().into_owned(),
        readonly: false,
        propagation: cri::MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    });

    let (masked_paths, readonly_paths) = if spec.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        )
    };
    let capabilities = (!spec.capabilities_add.is_empty() || !spec.capabilities_drop.is_empty())
        .then(|| cri::Capability {
            add_capabilities: spec.capabilities_add.clone(),
            drop_capabilities: spec.capabilities_drop.clone(),
            ..Default::default()
        });

    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: spec.name.clone(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: ids.image.clone(),
            user_specified_image: spec.image.clone(),
            ..Default::default()
        }),
        command: spec.command.clone(),
        args: spec.args.clone(),
        working_dir: spec.working_dir.clone(),
        envs,
        mounts,
        labels,
        annotations,
        log_path: format!("{}/0.log", spec.name),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(container_resources(spec, qos)),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities,
                privileged: spec.privileged,
                namespace_options: Some(cri::NamespaceOption {
                    network: pod_ns.network,
                    pid: spec.host_pid.map_or(pod_ns.pid, namespace_mode),
                    ipc: spec.host_ipc.map_or(pod_ns.ipc, namespace_mode),
                    ..Default::default()
                }),
                run_as_user: spec.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: spec.run_as_group.map(|value| cri::Int64Value { value }),
                readonly_rootfs: spec.read_only_root_filesystem,
                no_new_privs: spec.allow_privilege_escalation == Some(false),
                masked_paths,
                readonly_paths,
                seccomp: Some(spec.seccomp.to_cri()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> KubeletPaths {
        KubeletPaths {
            root: PathBuf::from("/tmp/k"),
            cgroup_root: "/nodeguard-e2e-x".into(),
        }
    }

    #[test]
    fn uids_look_like_uuids_and_differ() {
        let a = new_uid();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_ne!(a, new_uid());
    }

    #[test]
    fn limits_become_cfs_and_memory_settings() {
        let spec = ContainerSpec::new("c", "img").limits(250, 64 << 20);
        let r = container_resources(&spec, QosClass::Burstable);
        assert_eq!(
            (r.cpu_period, r.cpu_quota, r.cpu_shares),
            (100_000, 25_000, 256)
        );
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert!((2..=999).contains(&r.oom_score_adj));
        let none = container_resources(&ContainerSpec::new("c", "img"), QosClass::BestEffort);
        assert_eq!(
            (none.cpu_quota, none.cpu_shares, none.oom_score_adj),
            (0, 2, 1000)
        );
    }

    #[test]
    fn pods_use_host_network_and_a_cgroup_under_the_root() {
        let config = pod_sandbox_config(
            &PodSpec::new("web", "default").label("app", "web"),
            &paths(),
        );
        let linux = config.linux.unwrap();
        let uid = &config.metadata.as_ref().unwrap().uid;
        assert_eq!(
            linux.cgroup_parent,
            format!("/nodeguard-e2e-x/kubepods/burstable/pod{uid}")
        );
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.labels["io.kubernetes.pod.uid"], *uid);
    }

    #[test]
    fn containers_inherit_pod_namespaces_unless_overridden() {
        let pod = pod_sandbox_config(&PodSpec::new("web", "default"), &paths());
        let spec = ContainerSpec {
            host_pid: Some(true),
            ..ContainerSpec::new("c", "registry.local/busybox:1")
        };
        let ids = ImageIds {
            image: "sha256:0123".into(),
            volumes: Vec::new(),
        };
        let config = container_config(&pod, QosClass::Burstable, &spec, &ids, Path::new("/tmp/t"));
        let sc = config.linux.unwrap().security_context.unwrap();
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
        assert!(!sc.masked_paths.is_empty());
        assert_eq!(config.labels["io.kubernetes.container.name"], "c");
        let image = config.image.unwrap();
        assert_eq!(image.image, "sha256:0123", "by ID, as the kubelet sends it");
        assert_eq!(image.user_specified_image, "registry.local/busybox:1");
    }
}
