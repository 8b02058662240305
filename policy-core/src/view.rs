//! The domain view of one container about to run: everything a node can learn about it.
//!
//! A view is filled from whatever source is at hand: an NRI `CreateContainer` request (no
//! security context yet), the container's full OCI spec at start, or a Kubernetes manifest.
//! Every field the source could not tell is *unknown* (`None`), never a guessed `false`: a
//! rule whose input is unknown reports itself undecided, and the caller chooses what that
//! means (the daemon re-checks at container start, when the full spec is known).
//!
//! Some Kubernetes settings exist both for the pod and for each container (`runAsNonRoot`,
//! `runAsUser`, `seccompProfile`, `seLinuxOptions`, `appArmorProfile`). Pod Security
//! Admission judges each declared level, not only the one that wins, so a [`Layered`] value
//! keeps both. A runtime source knows only the effective value and puts it at container level.

use std::collections::BTreeMap;

use crate::capabilities::CapabilitySet;
use crate::image::ImageRef;
use crate::quantity::{Bytes, Millicores};

/// A fact about the container, or `None` when the source could not tell.
pub type Known<T> = Option<T>;

/// One container, as the policy sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerView {
    /// Container name within its pod (the Kubernetes name, not the runtime id).
    pub name: String,
    /// What kind of container this is within its pod.
    pub kind: Known<ContainerKind>,
    /// The image, normalized: the reference the pod gave where the source tells it (a
    /// manifest, containerd 2.x), otherwise the name the runtime gives the content.
    pub image: Known<ImageRef>,
    /// Every other name the runtime knows the same image content by (the same manifest
    /// digest): a mirror's name, another tag, a digest reference. Empty when the source cannot
    /// tell (a manifest) or the content has no other name. Rules that allow or deny images by
    /// name look at these too; see ADR 0020.
    pub image_names: Vec<ImageRef>,
    /// OCI images mounted into the container as volumes (Kubernetes image volumes), as the
    /// runtime tells them: judged by the image rules like the container's own image.
    pub image_volumes: Vec<ImageVolume>,
    /// The pod the container belongs to.
    pub pod: PodView,
    /// Host namespaces the pod shares.
    pub host_namespaces: HostNamespaces,
    /// Host ports the container binds (non-zero `hostPort`s).
    pub host_ports: Known<Vec<u16>>,
    /// The pod's volumes.
    pub volumes: Known<Vec<Volume>>,
    /// The container's mounts.
    pub mounts: Known<Vec<Mount>>,
    /// Host devices given to the container.
    pub devices: Known<Vec<Device>>,
    /// CPU and memory requests and limits.
    pub resources: Known<Resources>,
    /// Hosts that probes and lifecycle handlers target (`httpGet.host`, `tcpSocket.host`).
    pub probe_hosts: Known<Vec<String>>,
    /// The container's probes and lifecycle handlers (manifests only: the kubelet runs them).
    pub handlers: Known<Vec<Handler>>,
    /// The security context.
    pub security: Security,
    /// Whether the container has a TTY (`tty`; on the node, the OCI `process.terminal`).
    pub tty: Known<bool>,
    /// Whether the container keeps its stdin open (`stdin`; never on the node).
    pub stdin: Known<bool>,
    /// Where the view comes from: what a source cannot tell apart differs.
    pub source: ViewSource,
}

/// An OCI image mounted into a container as a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageVolume {
    /// Where the image is mounted in the container.
    pub destination: String,
    /// The digest (`sha256:...`) of the content mounted (its manifest or index); empty when
    /// the source does not tell it (a manifest naming the image by tag).
    pub digest: String,
    /// Every name the content is known by (a manifest: the reference it gives); `None` until
    /// the runtime's image records are read, empty when the runtime knows no name for it.
    pub names: Known<Vec<ImageRef>>,
}

/// Where a [`ContainerView`] comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ViewSource {
    /// A Kubernetes manifest (`nodeguard check`): every field as declared.
    #[default]
    Manifest,
    /// The runtime (NRI, an OCI spec): what is in force, with what the runtime fills in itself
    /// (an SELinux level, a seccomp profile's kind at start) not told apart from what the pod
    /// declared.
    Runtime,
}

/// A probe or lifecycle handler of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// Where it is declared: `livenessProbe`, `readinessProbe`, `startupProbe`, `postStart`,
    /// `preStop`.
    pub point: &'static str,
    /// The actions it declares: `exec`, `httpGet`, `tcpSocket`, `grpc`, `sleep`.
    pub actions: Vec<&'static str>,
    /// The host its `httpGet` or `tcpSocket` targets, if set.
    pub host: Option<String>,
}

impl Handler {
    /// Whether it is a probe (not a lifecycle hook).
    pub fn is_probe(&self) -> bool {
        self.point.ends_with("Probe")
    }
}

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// An ordinary container.
    Regular,
    /// An init container.
    Init,
    /// An ephemeral (debug) container.
    Ephemeral,
}

/// The pod a container belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Pod namespace (empty when unknown).
    pub namespace: String,
    /// The object named no namespace and `namespace` is what it was placed in (`default`, or
    /// `check -n`): a Gatekeeper constraint's namespace criteria then match it, as Gatekeeper
    /// matches an object without a namespace.
    pub namespace_assumed: bool,
    /// Pod UID (empty when unknown).
    pub uid: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// The source cannot tell the pod's labels (a bare OCI `config.json`): `labels` is empty
    /// for want of knowing, and rules on labels stay undecided.
    pub labels_unknown: bool,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// The pod's declared operating system (`spec.os.name`), if any.
    pub os: Option<String>,
    /// `automountServiceAccountToken` (`Some(None)`: not set); unknown on the node, which sees
    /// the token's mount instead.
    pub automount_token: Known<Option<bool>>,
    /// The labels of the pod's namespace: known on the node in the cluster-connected mode
    /// (from the API server), which a `namespaceSelector` needs.
    pub namespace_labels: Known<BTreeMap<String, String>>,
}

impl PodView {
    /// Whether the pod declares itself a Windows pod.
    pub fn is_windows(&self) -> bool {
        self.os.as_deref() == Some("windows")
    }
}

/// Host namespaces shared by the pod; each `None` when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNamespaces {
    /// `hostPID`.
    pub pid: Known<bool>,
    /// `hostIPC`.
    pub ipc: Known<bool>,
    /// `hostNetwork`.
    pub network: Known<bool>,
}

impl HostNamespaces {
    /// Every host namespace known and unshared.
    pub const NONE: HostNamespaces = HostNamespaces {
        pid: Some(false),
        ipc: Some(false),
        network: Some(false),
    };
}

/// Kubernetes volume types, as named in a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumeType {
    /// `hostPath`
    HostPath,
    /// `configMap`
    ConfigMap,
    /// `secret`
    Secret,
    /// `emptyDir`
    EmptyDir,
    /// `projected`
    Projected,
    /// `downwardAPI`
    DownwardApi,
    /// `csi`
    Csi,
    /// `ephemeral`
    Ephemeral,
    /// `persistentVolumeClaim`
    PersistentVolumeClaim,
    /// `image`
    Image,
    /// `nfs`
    Nfs,
    /// `flexVolume`
    FlexVolume,
    /// Any other in-tree or legacy type (`iscsi`, `rbd`, `gitRepo`, ...).
    Other,
}

impl VolumeType {
    /// Every type with its pod-spec name, [`VolumeType::Other`] excepted.
    pub const NAMED: [(VolumeType, &'static str); 12] = [
        (VolumeType::HostPath, "hostPath"),
        (VolumeType::ConfigMap, "configMap"),
        (VolumeType::Secret, "secret"),
        (VolumeType::EmptyDir, "emptyDir"),
        (VolumeType::Projected, "projected"),
        (VolumeType::DownwardApi, "downwardAPI"),
        (VolumeType::Csi, "csi"),
        (VolumeType::Ephemeral, "ephemeral"),
        (VolumeType::PersistentVolumeClaim, "persistentVolumeClaim"),
        (VolumeType::Image, "image"),
        (VolumeType::Nfs, "nfs"),
        (VolumeType::FlexVolume, "flexVolume"),
    ];

    /// The pod-spec name of the type (`hostPath`, `configMap`, ...).
    pub fn name(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("other", |(_, n)| n)
    }

    /// The type named so in a pod spec; unknown names are [`VolumeType::Other`].
    pub fn from_name(name: &str) -> VolumeType {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(VolumeType::Other, |(t, _)| *t)
    }
}

/// Fields no node ever sees: they live only in the pod spec (a probe's `host`, a declared
/// memory request). Named as [`crate::Undecided::missing`] names them.
pub const NEVER_ON_NODE: [&str; 5] = [
    "probeHosts",
    "handlers",
    "resources.memoryRequest",
    "stdin",
    "security.fsGroup",
];

/// Where a mount's content comes from, as seen on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A directory or file of the host, bind-mounted (a `hostPath` volume).
    HostPath(String),
    /// A volume the kubelet manages under its pods directory.
    KubeletVolume {
        /// Volume type.
        kind: VolumeType,
        /// Volume name.
        name: String,
    },
    /// A `subPath` of a pod volume: the kubelet bind-mounts it from its `volume-subpaths`
    /// directory, whose name does not tell the volume's type; the daemon resolves it through
    /// the node's mount table to what is mounted there (see `docs/policy.md`).
    KubeletSubPath {
        /// Volume name.
        volume: String,
        /// The mount's source, the kubelet's `.../volume-subpaths/<volume>/<container>/<n>`.
        path: String,
    },
    /// A file or filesystem the kubelet or runtime provides to every container
    /// (`/etc/hosts`, `resolv.conf`, termination log, `/dev/shm`, `proc`, `sysfs`, ...).
    Runtime,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// Volume type.
    pub kind: VolumeType,
    /// For `hostPath` volumes, the host path.
    pub host_path: Option<String>,
    /// For `flexVolume` volumes, the driver (`example/lvm`), when the source tells it.
    pub driver: Option<String>,
}

/// A mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the container.
    pub destination: String,
    /// Where the content comes from.
    pub source: MountSource,
    /// Whether the mount is read-only.
    pub read_only: bool,
}

/// A host device node given to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path inside the container.
    pub path: String,
}

/// CPU and memory requests and limits; each `None` when not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU request (the node derives it from cgroup CPU shares).
    pub cpu_request: Option<Millicores>,
    /// CPU limit (the node derives it from CFS quota / period).
    pub cpu_limit: Option<Millicores>,
    /// Memory request (not visible on the node: `None` there means unknown, see
    /// [`Resources::memory_request_known`]).
    pub memory_request: Option<Bytes>,
    /// Whether the source can see memory requests at all.
    pub memory_request_known: bool,
    /// Memory limit.
    pub memory_limit: Option<Bytes>,
}

/// A setting that Kubernetes lets the pod declare and each container override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layered<T> {
    /// The pod-level value, if declared (manifests only).
    pub pod: Option<T>,
    /// The container-level value, if declared; for runtime sources, the effective value.
    pub container: Option<T>,
}

impl<T> Default for Layered<T> {
    fn default() -> Self {
        Layered {
            pod: None,
            container: None,
        }
    }
}

impl<T> Layered<T> {
    /// A value known only as the effective one (runtime sources).
    pub fn effective_only(value: T) -> Self {
        Layered {
            pod: None,
            container: Some(value),
        }
    }

    /// The value in force: the container's, else the pod's.
    pub fn effective(&self) -> Option<&T> {
        self.container.as_ref().or(self.pod.as_ref())
    }

    /// Every declared value with the level that declared it.
    pub fn declared(&self) -> impl Iterator<Item = (Level, &T)> {
        self.pod
            .iter()
            .map(|v| (Level::Pod, v))
            .chain(self.container.iter().map(|v| (Level::Container, v)))
    }
}

/// The level of a [`Layered`] setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Declared in the pod's security context.
    Pod,
    /// Declared in the container's security context (or effective on the node).
    Container,
}

impl Level {
    /// A phrase naming the level in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Level::Pod => "pod-level",
            Level::Container => "container",
        }
    }
}

/// Capabilities, as declared in a manifest or as effective on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capabilities {
    /// `securityContext.capabilities.add` / `.drop`, names exactly as written (Pod Security
    /// Admission compares them case-sensitively, without normalizing).
    Declared {
        /// Added capabilities.
        add: Vec<String>,
        /// Dropped capabilities.
        drop: Vec<String>,
    },
    /// The effective (bounding) set the runtime will grant.
    Effective(CapabilitySet),
}

/// A seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile file on the node.
    Localhost(String),
    /// No filtering.
    Unconfined,
    /// A profile is applied but the node cannot tell which kind (OCI spec at start).
    Confined,
}

/// An AppArmor profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppArmor {
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile loaded on the node.
    Localhost(String),
    /// No AppArmor confinement.
    Unconfined,
}

/// SELinux options (each part `None` when not declared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeLinux {
    /// SELinux user.
    pub user: Option<String>,
    /// SELinux role.
    pub role: Option<String>,
    /// SELinux type.
    pub kind: Option<String>,
    /// SELinux level (MCS/MLS range).
    pub level: Option<String>,
}

/// `/proc` mount type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcMount {
    /// The runtime masks and write-protects sensitive `/proc` paths.
    Default,
    /// Nothing is masked.
    Unmasked,
}

/// The container's security context; every field `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// Privileged mode.
    pub privileged: Known<bool>,
    /// `allowPrivilegeEscalation` (`Some(None)`: not set, which allows it).
    pub allow_privilege_escalation: Known<Option<bool>>,
    /// Capabilities.
    pub capabilities: Known<Capabilities>,
    /// `runAsNonRoot` as declared (manifests only; the node sees the user instead).
    pub run_as_non_root: Known<Layered<bool>>,
    /// User id the process runs as.
    pub run_as_user: Known<Layered<u32>>,
    /// Primary group id.
    pub run_as_group: Known<Layered<u32>>,
    /// Supplemental group ids.
    pub supplemental_groups: Known<Vec<u32>>,
    /// The pod's `fsGroup` (`Some(None)`: not set); never on the node, where it is one of the
    /// supplemental groups.
    pub fs_group: Known<Option<u32>>,
    /// Read-only root filesystem.
    pub read_only_root_filesystem: Known<bool>,
    /// Seccomp profile (`Layered` with neither level set: no profile declared).
    pub seccomp: Known<Layered<Seccomp>>,
    /// AppArmor profile (annotations count as container-level declarations).
    pub apparmor: Known<Layered<AppArmor>>,
    /// SELinux options.
    pub selinux: Known<Layered<SeLinux>>,
    /// `/proc` mount type.
    pub proc_mount: Known<ProcMount>,
    /// Namespaced sysctls set for the pod.
    pub sysctls: Known<Vec<(String, String)>>,
    /// Windows `hostProcess` (declared anywhere in the pod).
    pub host_process: Known<bool>,
    /// Whether the pod uses the host's user namespace (`hostUsers`, default true).
    pub host_users: Known<bool>,
}

impl ContainerView {
    /// The container's image and every other name of its content (none when the image is
    /// unknown).
    pub fn image_aliases(&self) -> impl Iterator<Item = &ImageRef> {
        self.image
            .iter()
            .chain(self.image.iter().flat_map(|_| self.image_names.iter()))
    }

    /// The image reference as text, or `<unknown image>`.
    pub fn image_text(&self) -> &str {
        self.image
            .as_ref()
            .map_or("<unknown image>", ImageRef::as_str)
    }
}
