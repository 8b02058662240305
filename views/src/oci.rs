//! OCI runtime specs (`config.json`) as container views: what the node knows at container start.
//!
//! Reads a tolerant subset of the runtime spec (see ADR 0003: a strict reader would refuse a
//! whole spec over one capability name it does not know). Kubernetes identity comes from the
//! CRI annotations containerd writes into the spec (`io.kubernetes.cri.*`).

use std::collections::BTreeMap;

use policy_core::capabilities::CapabilitySet;
use policy_core::image::ImageRef;
use policy_core::quantity::Bytes;
use policy_core::view::{
    AppArmor, Capabilities, ContainerKind, ContainerView, Device, HostNamespaces, Layered, Mount,
    MountSource, PodView, ProcMount, Resources, SeLinux, Seccomp, Security, ViewSource, Volume,
};
use serde::Deserialize;

use crate::kubelet;

/// The subset of an OCI runtime spec that nodeguard reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpec {
    /// The spec version; its presence tells a runtime spec from other JSON.
    #[serde(default)]
    pub oci_version: String,
    #[serde(default)]
    process: Option<Process>,
    #[serde(default)]
    root: Option<Root>,
    #[serde(default)]
    mounts: Vec<OciMount>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    #[serde(default)]
    user: User,
    #[serde(default)]
    capabilities: Option<ProcessCapabilities>,
    #[serde(default)]
    no_new_privileges: bool,
    #[serde(default)]
    apparmor_profile: String,
    #[serde(default)]
    selinux_label: String,
    #[serde(default)]
    terminal: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct ProcessCapabilities {
    #[serde(default)]
    bounding: Vec<String>,
    #[serde(default)]
    effective: Vec<String>,
    #[serde(default)]
    permitted: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Root {
    #[serde(default)]
    readonly: bool,
}

#[derive(Debug, Default, Deserialize)]
struct OciMount {
    #[serde(default)]
    destination: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    #[serde(default)]
    namespaces: Vec<Namespace>,
    #[serde(default)]
    devices: Vec<OciDevice>,
    #[serde(default)]
    resources: Option<LinuxResources>,
    /// Only whether there is a filter matters (see the view): the profile, tens of kilobytes
    /// with containerd's default, is skipped, not built as a tree.
    #[serde(default)]
    seccomp: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    masked_paths: Vec<String>,
    #[serde(default)]
    readonly_paths: Vec<String>,
    #[serde(default)]
    sysctl: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Namespace {
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
struct OciDevice {
    #[serde(default)]
    path: String,
}

#[derive(Debug, Default, Deserialize)]
struct LinuxResources {
    #[serde(default)]
    cpu: Option<Cpu>,
    #[serde(default)]
    memory: Option<Memory>,
}

#[derive(Debug, Default, Deserialize)]
struct Cpu {
    shares: Option<u64>,
    quota: Option<i64>,
    period: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Memory {
    limit: Option<i64>,
}

/// A runtime spec with a field of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecFieldError {
    /// Field path inside the spec.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// JSON that is not a runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// No `ociVersion`: some other JSON document.
    #[error("not an OCI runtime spec (no ociVersion)")]
    NotARuntimeSpec,
}

/// The container a runtime spec describes. Pod labels are not in a spec; callers that know
/// them (the daemon, from NRI) fill `pod.labels` in.
///
/// ```
/// use nodeguard_views::oci::{OciError, RuntimeSpec};
/// use policy_core::ContainerView;
/// let spec = RuntimeSpec::from_json(br#"{"ociVersion": "1.1.0", "process": {"user": {"uid": 0, "gid": 0}}}"#).unwrap();
/// let view = ContainerView::try_from(&spec).unwrap();
/// assert_eq!(view.security.run_as_user.unwrap().effective(), Some(&0));
/// let other = RuntimeSpec::from_json(br#"{"name": "package.json"}"#).unwrap();
/// assert_eq!(ContainerView::try_from(&other).unwrap_err(), OciError::NotARuntimeSpec);
/// ```
impl TryFrom<&RuntimeSpec> for ContainerView {
    type Error = OciError;

    fn try_from(spec: &RuntimeSpec) -> Result<Self, OciError> {
        if spec.is_runtime_spec() {
            Ok(spec.view())
        } else {
            Err(OciError::NotARuntimeSpec)
        }
    }
}

/// containerd's name for its default AppArmor profile.
const CONTAINERD_APPARMOR_DEFAULT: &str = "cri-containerd.apparmor.d";

impl RuntimeSpec {
    /// Parses a runtime spec from JSON.
    ///
    /// # Errors
    /// When the text is not JSON of the runtime spec's shape.
    pub fn from_json(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// Reads a runtime spec from a JSON or YAML value already parsed, naming the field of the
    /// first mistake.
    ///
    /// # Errors
    /// The field path and what is wrong with it.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, SpecFieldError> {
        serde_path_to_error::deserialize(value).map_err(|e| SpecFieldError {
            path: e.path().to_string(),
            message: policy_core::document::plain_message(&e.inner().to_string()),
        })
    }

    /// Whether a parsed JSON or YAML document is a runtime spec: it has an `ociVersion`.
    pub fn is_spec_document(value: &serde_json::Value) -> bool {
        value.get("ociVersion").is_some()
    }

    /// Whether the spec looks like a runtime spec at all.
    pub fn is_runtime_spec(&self) -> bool {
        !self.oci_version.is_empty()
    }

    /// The value of annotation `key`, if the spec has it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The sysctls the spec sets, sorted by name (a pod's sysctls are in its sandbox's spec).
    pub fn sysctls(&self) -> Vec<(String, String)> {
        self.linux
            .as_ref()
            .map(|l| {
                l.sysctl
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The container view the spec describes, whatever its `ociVersion` says (a spec from
    /// containerd is one). Pod labels are not in a spec; callers that know them fill them in.
    pub(crate) fn view(&self) -> ContainerView {
        let a = &self.annotations;
        let get = |k: &str| a.get(k).cloned().unwrap_or_default();
        let linux = self.linux.as_ref();
        let process = self.process.as_ref();
        let has_ns = |t: &str| linux.is_some_and(|l| l.namespaces.iter().any(|n| n.kind == t));
        let caps = process.and_then(|p| p.capabilities.as_ref()).map(|c| {
            CapabilitySet::from_names(c.bounding.iter().chain(&c.effective).chain(&c.permitted))
        });
        let caps = caps.unwrap_or_default();
        let masked =
            linux.is_some_and(|l| !l.masked_paths.is_empty() || !l.readonly_paths.is_empty());
        // The spec has no privileged flag. A privileged container is given the runtime's own
        // capabilities (every one the runtime holds, which on a restricted host is not all of
        // them) with nothing of /proc masked or read-only: CAP_SYS_ADMIN with no masked paths
        // is that shape, and no unprivileged container has it.
        let privileged = caps.contains("SYS_ADMIN") && !masked;
        let mounts: Vec<Mount> = self
            .mounts
            .iter()
            .map(|m| Mount {
                destination: m.destination.clone(),
                source: kubelet::mount_source(
                    &m.source,
                    &m.kind,
                    a.get(kubelet::SANDBOX_UID_ANNOTATION)
                        .map_or("", String::as_str),
                    a.get(kubelet::SANDBOX_ID_ANNOTATION)
                        .map_or("", String::as_str),
                ),
                read_only: m.options.iter().any(|o| o == "ro"),
            })
            .collect();
        let resources = linux.and_then(|l| l.resources.as_ref());
        let cpu = resources.and_then(|r| r.cpu.as_ref());
        let memory_limit = resources
            .and_then(|r| r.memory.as_ref())
            .and_then(|m| m.limit)
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0)
            .map(Bytes);
        let user = process.map(|p| &p.user);
        ContainerView {
            name: get(kubelet::CONTAINER_NAME_ANNOTATION),
            kind: match a
                .get(kubelet::CONTAINER_TYPE_ANNOTATION)
                .map(String::as_str)
            {
                Some("container") => Some(ContainerKind::Regular),
                _ => None,
            },
            image: a.get(kubelet::IMAGE_ANNOTATION).map(|i| ImageRef::parse(i)),
            image_names: Vec::new(),
            image_volumes: kubelet::image_volumes(
                self.mounts
                    .iter()
                    .map(|m| (m.destination.as_str(), m.source.as_str(), m.kind.as_str())),
                a.get(kubelet::SANDBOX_ID_ANNOTATION)
                    .map_or("", String::as_str),
            ),
            pod: PodView {
                name: get(kubelet::SANDBOX_NAME_ANNOTATION),
                namespace: get(kubelet::SANDBOX_NAMESPACE_ANNOTATION),
                namespace_assumed: false,
                uid: get(kubelet::SANDBOX_UID_ANNOTATION),
                labels: BTreeMap::new(),
                labels_unknown: true,
                annotations: BTreeMap::new(),
                os: None,
                automount_token: None,
                namespace_labels: None,
            },
            host_namespaces: HostNamespaces {
                pid: Some(!has_ns("pid")),
                ipc: Some(!has_ns("ipc")),
                network: Some(!has_ns("network")),
            },
            host_ports: Some(kubelet::host_ports(a)),
            volumes: Some(volumes_of(&mounts)),
            mounts: Some(mounts),
            devices: Some(
                linux
                    .map(|l| {
                        l.devices
                            .iter()
                            .map(|d| Device {
                                path: d.path.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            resources: Some(Resources {
                cpu_request: cpu
                    .and_then(|c| c.shares)
                    .and_then(kubelet::shares_to_millicores),
                cpu_limit: cpu.and_then(|c| kubelet::quota_to_millicores(c.quota, c.period)),
                memory_request: None,
                memory_request_known: false,
                memory_limit,
            }),
            probe_hosts: None,
            handlers: None,
            security: Security {
                privileged: Some(privileged),
                allow_privilege_escalation: process.map(|p| Some(!p.no_new_privileges)),
                capabilities: Some(Capabilities::Effective(caps)),
                run_as_non_root: None,
                run_as_user: user.map(|u| Layered::effective_only(u.uid)),
                run_as_group: user.map(|u| Layered::effective_only(u.gid)),
                supplemental_groups: user.map(|u| u.additional_gids.clone()),
                fs_group: None,
                read_only_root_filesystem: Some(self.root.as_ref().is_some_and(|r| r.readonly)),
                // No filter in the spec is what a pod that sets no profile gets (without the
                // kubelet's seccompDefault): "not set", which the baseline level allows and
                // the restricted level refuses. An explicit Unconfined looks the same.
                seccomp: Some(match linux.and_then(|l| l.seccomp.as_ref()) {
                    Some(_) => Layered::effective_only(Seccomp::Confined),
                    None => Layered::default(),
                }),
                apparmor: process.map(|p| match p.apparmor_profile.as_str() {
                    "" => Layered::default(),
                    "unconfined" => Layered::effective_only(AppArmor::Unconfined),
                    CONTAINERD_APPARMOR_DEFAULT => {
                        Layered::effective_only(AppArmor::RuntimeDefault)
                    }
                    name => Layered::effective_only(AppArmor::Localhost(name.to_string())),
                }),
                selinux: process.map(|p| selinux_label(&p.selinux_label)),
                proc_mount: Some(if masked || privileged {
                    ProcMount::Default
                } else {
                    ProcMount::Unmasked
                }),
                sysctls: Some(
                    linux
                        .map(|l| {
                            l.sysctl
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                host_process: Some(false),
                host_users: Some(!has_ns("user")),
            },
            tty: process.map(|p| p.terminal),
            stdin: None,
            source: ViewSource::Runtime,
        }
    }
}

/// The pod volumes a node can infer from a container's mounts. A `subPath` mount takes the
/// type of another mount of the same volume; alone, its type cannot be told and it is left
/// out (see `docs/policy.md`: a hostPath mounted only by subPath is not seen on the node).
pub fn volumes_of(mounts: &[Mount]) -> Vec<Volume> {
    let mut volumes: Vec<Volume> = Vec::new();
    for m in mounts {
        let volume = match &m.source {
            MountSource::HostPath(path) => Volume {
                name: path.clone(),
                kind: policy_core::view::VolumeType::HostPath,
                host_path: Some(path.clone()),
                driver: None,
            },
            MountSource::KubeletVolume { kind, name } => Volume {
                name: name.clone(),
                kind: *kind,
                host_path: None,
                driver: None,
            },
            MountSource::KubeletSubPath { .. } | MountSource::Runtime => continue,
        };
        if !volumes.contains(&volume) {
            volumes.push(volume);
        }
    }
    volumes
}

/// The runtime fills in user and role itself; only type and level say what the pod asked for.
fn selinux_label(label: &str) -> Layered<SeLinux> {
    let mut parts = label.splitn(4, ':');
    let (_user, _role, kind, level) = (parts.next(), parts.next(), parts.next(), parts.next());
    match kind {
        Some(kind) if !kind.is_empty() => Layered::effective_only(SeLinux {
            user: None,
            role: None,
            kind: Some(kind.to_string()),
            level: level.map(str::to_string),
        }),
        _ => Layered::default(),
    }
}

/// The container a runtime spec describes when containerd's record `id` was made outside
/// Kubernetes (with `ctr`, nerdctl, Docker, buildkit: not through CRI) from image `image`
/// (the record's image name; empty when it names none).
///
/// Such a container has no pod: its pod, namespace and labels are unknown (rules on them
/// skip it), and so are its host ports, which Docker and nerdctl publish outside the spec.
/// CRI's annotations in the spec are not believed (anyone can write them), and nothing is a
/// kubelet volume: every bind mount is a host path, but for the per-container files Docker
/// and nerdctl keep under a directory named after the container (`hosts`, `hostname`,
/// `resolv.conf`, `shm`). The view's name is the container id.
///
/// ```
/// use nodeguard_views::oci::{RuntimeSpec, outside_kubernetes_view};
/// let spec = RuntimeSpec::from_json(br#"{"ociVersion": "1.1.0",
///     "mounts": [{"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]}],
///     "annotations": {"io.kubernetes.cri.sandbox-namespace": "kube-system"}}"#).unwrap();
/// let view = outside_kubernetes_view(&spec, "x", "evil.example/busybox:1");
/// assert_eq!(view.name, "x");
/// assert_eq!(view.pod.namespace, "");
/// assert_eq!(view.image.unwrap().as_str(), "evil.example/busybox:1");
/// assert_eq!(view.volumes.unwrap()[0].host_path.as_deref(), Some("/"));
/// ```
pub fn outside_kubernetes_view(spec: &RuntimeSpec, id: &str, image: &str) -> ContainerView {
    let mut view = spec.view();
    let mounts: Vec<Mount> = spec
        .mounts
        .iter()
        .map(|m| Mount {
            destination: m.destination.clone(),
            source: outside_mount_source(m, id),
            read_only: m.options.iter().any(|o| o == "ro"),
        })
        .collect();
    view.volumes = Some(volumes_of(&mounts));
    view.mounts = Some(mounts);
    view.host_ports = None;
    view.image_volumes = Vec::new();
    outside_identity(view, id, image)
}

/// The view of a container made outside Kubernetes whose spec could not be read: its id and
/// image, and nothing else known.
pub fn unknown_outside_kubernetes_view(id: &str, image: &str) -> ContainerView {
    outside_identity(
        ContainerView {
            source: ViewSource::Runtime,
            ..ContainerView::default()
        },
        id,
        image,
    )
}

/// `view` named as container `id` of image `image`, with no pod.
fn outside_identity(mut view: ContainerView, id: &str, image: &str) -> ContainerView {
    view.name = id.to_string();
    view.kind = None;
    view.image = (!image.is_empty()).then(|| ImageRef::parse(image));
    view.pod = PodView {
        labels_unknown: true,
        ..PodView::default()
    };
    view
}

/// Where a mount of a container made outside Kubernetes comes from: a bind mount is a host
/// path, but for the container's own files kept by Docker and nerdctl under a directory
/// named after its (64-hex-digit) id; anything else is the runtime's.
fn outside_mount_source(m: &OciMount, id: &str) -> MountSource {
    let bind = matches!(m.kind.as_str(), "bind" | "rbind" | "")
        || m.options.iter().any(|o| o == "bind" || o == "rbind");
    if !bind || !m.source.starts_with('/') {
        return MountSource::Runtime;
    }
    let own_file = id.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && !m.source.split('/').any(|c| c == "..")
        && m.source.contains(&format!("/{id}/"))
        && m.source
            .rsplit('/')
            .next()
            .is_some_and(|name| matches!(name, "hosts" | "hostname" | "resolv.conf" | "shm"));
    if own_file {
        MountSource::Runtime
    } else {
        MountSource::HostPath(m.source.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::quantity::Millicores;

    const SPEC: &str = r#"{
      "ociVersion": "1.1.0",
      "process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_FUTURE_THING"]},
        "noNewPrivileges": true, "apparmorProfile": "cri-containerd.apparmor.d"},
      "root": {"path": "rootfs", "readonly": true},
      "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
        {"destination": "/cfg", "type": "bind",
         "source": "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/cfg", "options": ["rbind"]}
      ],
      "annotations": {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.image-name": "registry.local/busybox:1",
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "prod",
        "io.kubernetes.cri.sandbox-uid": "u1"
      },
      "linux": {
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}],
        "resources": {"cpu": {"shares": 512, "quota": 50000, "period": 100000},
                      "memory": {"limit": 268435456}},
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"},
        "maskedPaths": ["/proc/kcore"],
        "sysctl": {"net.ipv4.tcp_syncookies": "1"}
      }
    }"#;

    #[test]
    fn reads_what_the_node_knows_at_start() {
        let spec = RuntimeSpec::from_json(SPEC.as_bytes()).unwrap();
        assert!(spec.is_runtime_spec());
        let v = spec.view();
        assert_eq!(v.name, "app");
        assert_eq!(v.pod.namespace, "prod");
        assert_eq!(
            v.image.as_ref().unwrap().as_str(),
            "registry.local/busybox:1"
        );
        assert_eq!(v.host_namespaces.network, Some(true));
        assert_eq!(v.host_namespaces.pid, Some(false));
        let r = v.resources.unwrap();
        assert_eq!(r.cpu_limit, Some(Millicores(500)));
        assert_eq!(r.cpu_request, Some(Millicores(500)));
        assert_eq!(r.memory_limit, Some(Bytes(256 << 20)));
        let s = &v.security;
        assert_eq!(s.privileged, Some(false));
        assert_eq!(s.allow_privilege_escalation, Some(Some(false)));
        assert_eq!(s.run_as_user.as_ref().unwrap().effective(), Some(&1000));
        assert_eq!(s.read_only_root_filesystem, Some(true));
        assert_eq!(
            s.seccomp.as_ref().unwrap().effective(),
            Some(&Seccomp::Confined)
        );
        assert_eq!(
            s.apparmor.as_ref().unwrap().effective(),
            Some(&AppArmor::RuntimeDefault)
        );
        let Some(Capabilities::Effective(caps)) = &s.capabilities else {
            panic!("effective capabilities expected");
        };
        assert!(caps.contains("FUTURE_THING"), "unknown names are kept");
        let volumes = v.volumes.as_ref().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[0].host_path.as_deref(), Some("/srv/data"));
        assert_eq!(s.proc_mount, Some(ProcMount::Default));
    }

    #[test]
    fn tells_privileged_containers() {
        // A host whose root lacks some capabilities gives privileged containers only the
        // ones it has (here: not SYS_RESOURCE).
        let all: Vec<String> = policy_core::capabilities::NAMES
            .iter()
            .filter(|n| **n != "SYS_RESOURCE")
            .map(|n| format!("CAP_{n}"))
            .collect();
        let json = serde_json::json!({"ociVersion": "1.1.0",
            "process": {"user": {"uid": 0}, "capabilities": {"bounding": all}},
            "linux": {"namespaces": [{"type": "pid"}]}});
        let v = RuntimeSpec::from_json(json.to_string().as_bytes())
            .unwrap()
            .view();
        assert_eq!(v.security.privileged, Some(true));
        assert_eq!(
            v.security.seccomp.unwrap().effective(),
            None,
            "no filter reads as no profile set"
        );
    }

    #[test]
    fn a_seccomp_filter_of_any_shape_reads_as_confined_and_null_as_none() {
        let seccomp = |value: serde_json::Value| {
            let json = serde_json::json!({"ociVersion": "1.1.0", "linux": {"seccomp": value}});
            RuntimeSpec::from_json(json.to_string().as_bytes())
                .unwrap()
                .view()
                .security
                .seccomp
                .unwrap()
                .effective()
                .cloned()
        };
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        });
        assert_eq!(seccomp(profile), Some(Seccomp::Confined));
        assert_eq!(seccomp(serde_json::json!({})), Some(Seccomp::Confined));
        assert_eq!(seccomp(serde_json::Value::Null), None);
    }
}

#[cfg(test)]
mod outside_tests {
    use super::*;

    const DOCKER_ID: &str = "3f9a2c71e0b84d6a9c15e7f2b0d4a8c6e1f3b5d7a9c0e2f4b6d8a0c2e4f6b8d0";

    #[test]
    fn a_container_made_outside_kubernetes_has_no_pod_and_no_kubelet_volume() {
        let json = serde_json::json!({"ociVersion": "1.1.0",
            "process": {"user": {"uid": 0}, "capabilities": {"bounding": ["CAP_CHOWN"]}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/secret", "type": "bind", "options": ["rbind"],
                 "source": "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/token"},
                {"destination": "/etc/resolv.conf", "type": "bind", "options": ["rbind"],
                 "source": format!("/var/lib/docker/containers/{DOCKER_ID}/resolv.conf")},
                {"destination": "/etc/hosts", "type": "none", "options": ["bind"],
                 "source": format!("/var/lib/docker/containers/{DOCKER_ID}/../../etc/hosts")}
            ],
            "annotations": {"io.kubernetes.cri.sandbox-namespace": "kube-system",
                            "io.kubernetes.cri.container-type": "container",
                            "io.kubernetes.cri.image-name": "registry.local/busybox:1"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                      "maskedPaths": ["/proc/kcore"]}});
        let spec = RuntimeSpec::from_json(json.to_string().as_bytes()).unwrap();
        let v = outside_kubernetes_view(&spec, DOCKER_ID, "docker.io/library/busybox:1.36");
        assert_eq!(v.name, DOCKER_ID);
        assert_eq!(
            v.pod,
            PodView {
                labels_unknown: true,
                ..PodView::default()
            }
        );
        assert_eq!(v.kind, None);
        assert_eq!(v.image.unwrap().as_str(), "docker.io/library/busybox:1.36");
        assert_eq!(v.host_ports, None, "published ports are not in the spec");
        assert_eq!(v.host_namespaces.network, Some(true));
        assert_eq!(v.source, ViewSource::Runtime);
        let sources: Vec<&MountSource> = v
            .mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| &m.source)
            .collect();
        assert_eq!(
            sources,
            [
                &MountSource::Runtime,
                &MountSource::HostPath(
                    "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/token".into()
                ),
                &MountSource::Runtime,
                &MountSource::HostPath(format!(
                    "/var/lib/docker/containers/{DOCKER_ID}/../../etc/hosts"
                )),
            ]
        );
        assert_eq!(v.volumes.unwrap().len(), 2);
        // A short id is never taken for a directory of the runtime's own files.
        let named = outside_kubernetes_view(&spec, "x", "");
        assert_eq!(named.image, None);
        let unknown = unknown_outside_kubernetes_view("x", "registry.local/busybox:1");
        assert_eq!(unknown.security.privileged, None);
        assert!(unknown.pod.labels_unknown);
    }
}
