//! Kubernetes manifests as container views: the pods of `Pod`s and of workload templates.
//!
//! Reads the pod-spec fields the policy judges (see `docs/policy.md`) from a manifest as the
//! API server would store it, applying the defaults that change a verdict (a request defaults
//! to its limit; a volume with no source is an `emptyDir`). Unknown fields are ignored, as
//! `kubectl` does for other API versions; mistyped known fields are errors with their path.

use std::collections::BTreeMap;

use policy_core::image::ImageRef;
use policy_core::quantity::{Bytes, Millicores};
use policy_core::view::{
    AppArmor, Capabilities, ContainerKind, ContainerView, Handler, HostNamespaces, ImageVolume,
    Layered, Mount, MountSource, PodView, ProcMount, Resources, SeLinux, Seccomp, Security,
    ViewSource, Volume, VolumeType,
};
use serde::Deserialize;
use serde_json::Value;

/// Why a Kubernetes object gives no pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The kind holds no pod (`Service`, `ConfigMap`, ...): nothing to judge.
    #[error("a {kind:?} holds no pod")]
    NotAPod {
        /// The object's kind (empty when it has none).
        kind: String,
    },
    /// A pod-bearing object that cannot be read.
    #[error(transparent)]
    Invalid(#[from] InvalidManifest),
}

/// A manifest that names a pod-bearing kind but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidManifest {
    /// Field path inside the document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// One pod found in a manifest, with a view of each of its containers.
#[derive(Debug, Clone)]
pub struct PodManifest {
    /// The object's kind (`Pod`, `Deployment`, ...).
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's namespace (`default` when not set).
    pub namespace: String,
    /// Whether the object names its namespace (Helm output often does not).
    pub namespace_given: bool,
    /// One view per container, init and ephemeral containers included.
    pub containers: Vec<ContainerView>,
}

/// Where the pod template sits in each kind PSA evaluates; for other kinds (an Argo Rollout,
/// a Knative Service, any operator's workload), where the object's shape shows one: a
/// `spec.template` or `spec.jobTemplate.spec.template` whose spec lists containers.
fn template_path(kind: &str, doc: &Value) -> Option<&'static [&'static str]> {
    if let Some(path) = known_template_path(kind) {
        return Some(path);
    }
    let has_containers = |template: Option<&Value>| {
        template
            .and_then(|t| t.pointer("/spec/containers"))
            .is_some_and(Value::is_array)
    };
    if has_containers(doc.pointer("/spec/template")) {
        Some(&["spec", "template"])
    } else if has_containers(doc.pointer("/spec/jobTemplate/spec/template")) {
        Some(&["spec", "jobTemplate", "spec", "template"])
    } else {
        None
    }
}

fn known_template_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &[],
        "PodTemplate" => &["template"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    })
}

/// The pod of one Kubernetes object (a `Pod`, or a workload's pod template), as the API
/// server would store it.
///
/// ```
/// use nodeguard_views::manifest::{ManifestError, PodManifest};
/// let pod = serde_json::json!({"kind": "Pod", "metadata": {"name": "web"},
///     "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
/// let manifest = PodManifest::try_from(&pod).unwrap();
/// assert_eq!((manifest.namespace.as_str(), manifest.containers.len()), ("default", 1));
/// let svc = serde_json::json!({"kind": "Service", "spec": {}});
/// assert!(matches!(PodManifest::try_from(&svc), Err(ManifestError::NotAPod { .. })));
/// ```
impl TryFrom<&Value> for PodManifest {
    type Error = ManifestError;

    fn try_from(doc: &Value) -> Result<Self, ManifestError> {
        pod_from_document(doc)?.ok_or_else(|| ManifestError::NotAPod {
            kind: doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// Reads the pod of one manifest document. `Ok(None)` for kinds that hold no pod.
fn pod_from_document(doc: &Value) -> Result<Option<PodManifest>, InvalidManifest> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(path) = template_path(kind, doc) else {
        return Ok(None);
    };
    let meta: ObjectMeta = field(doc, "metadata")?.unwrap_or_default();
    let mut template = doc;
    let mut at = String::new();
    for key in path {
        at = if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        };
        template = template.get(key).ok_or_else(|| InvalidManifest {
            path: at.clone(),
            message: format!("{kind} has no {at}"),
        })?;
    }
    let prefix = if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    };
    let pod_meta: ObjectMeta = if path.is_empty() {
        meta.clone()
    } else {
        field(template, "metadata")
            .map_err(|e| e.within(&prefix))?
            .unwrap_or_default()
    };
    let spec: PodSpec = field(template, "spec")
        .map_err(|e| e.within(&prefix))?
        .ok_or_else(|| InvalidManifest {
            path: format!("{prefix}spec"),
            message: format!("{kind} has no pod spec"),
        })?;
    let namespace_given = meta.namespace.as_deref().is_some_and(|n| !n.is_empty());
    let namespace = meta
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let pod = PodView {
        name: meta.name.clone().unwrap_or_default(),
        namespace: namespace.clone(),
        namespace_assumed: !namespace_given,
        uid: String::new(),
        labels: pod_meta.labels.clone(),
        labels_unknown: false,
        annotations: pod_meta.annotations.clone(),
        os: spec.os.as_ref().map(|os| os.name.clone()),
        automount_token: Some(spec.automount_service_account_token),
        namespace_labels: None,
    };
    let containers = views(&spec, &pod).map_err(|e| e.within(&format!("{prefix}spec.")))?;
    Ok(Some(PodManifest {
        kind: kind.to_string(),
        name: pod.name.clone(),
        namespace,
        namespace_given,
        containers,
    }))
}

impl PodManifest {
    /// Places an object that names no namespace in `namespace`, as `kubectl -n` and
    /// `helm template -n` do; an object that names one keeps it.
    pub fn default_namespace(&mut self, namespace: &str) {
        if self.namespace_given {
            return;
        }
        self.namespace = namespace.to_string();
        for view in &mut self.containers {
            view.pod.namespace = namespace.to_string();
            view.pod.namespace_assumed = false;
        }
    }
}

impl InvalidManifest {
    fn within(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}{}", self.path);
        self
    }
}

fn field<T: serde::de::DeserializeOwned>(
    doc: &Value,
    key: &str,
) -> Result<Option<T>, InvalidManifest> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            let inner = e.path().to_string();
            InvalidManifest {
                path: if inner == "." {
                    key.to_string()
                } else {
                    format!("{key}.{inner}")
                },
                message: policy_core::document::plain_message(&e.into_inner().to_string()),
            }
        }),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<ContainerSpec>,
    #[serde(default)]
    init_containers: Vec<ContainerSpec>,
    #[serde(default)]
    ephemeral_containers: Vec<ContainerSpec>,
    #[serde(default)]
    volumes: Vec<serde_json::Map<String, Value>>,
    #[serde(default, rename = "hostNetwork")]
    host_network: Option<bool>,
    #[serde(default, rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(default, rename = "hostIPC")]
    host_ipc: Option<bool>,
    #[serde(default)]
    host_users: Option<bool>,
    #[serde(default)]
    security_context: Option<PodSecurityContext>,
    #[serde(default)]
    os: Option<PodOs>,
    #[serde(default)]
    automount_service_account_token: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct PodOs {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSecurityContext {
    run_as_non_root: Option<bool>,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    #[serde(default)]
    supplemental_groups: Vec<i64>,
    seccomp_profile: Option<ProfileSpec>,
    app_armor_profile: Option<ProfileSpec>,
    #[serde(rename = "seLinuxOptions")]
    selinux_options: Option<SeLinuxSpec>,
    #[serde(default)]
    sysctls: Vec<SysctlSpec>,
    windows_options: Option<WindowsOptions>,
    fs_group: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerSpec {
    #[serde(default)]
    name: String,
    image: Option<String>,
    #[serde(default)]
    ports: Vec<PortSpec>,
    #[serde(default)]
    resources: ResourcesSpec,
    security_context: Option<ContainerSecurityContext>,
    #[serde(default)]
    volume_mounts: Vec<VolumeMountSpec>,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    stdin: bool,
    liveness_probe: Option<HandlerSpec>,
    readiness_probe: Option<HandlerSpec>,
    startup_probe: Option<HandlerSpec>,
    lifecycle: Option<LifecycleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortSpec {
    host_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourcesSpec {
    #[serde(default)]
    limits: BTreeMap<String, Value>,
    #[serde(default)]
    requests: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerSecurityContext {
    privileged: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    capabilities: Option<CapabilitiesSpec>,
    run_as_non_root: Option<bool>,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    read_only_root_filesystem: Option<bool>,
    seccomp_profile: Option<ProfileSpec>,
    app_armor_profile: Option<ProfileSpec>,
    #[serde(rename = "seLinuxOptions")]
    selinux_options: Option<SeLinuxSpec>,
    proc_mount: Option<String>,
    windows_options: Option<WindowsOptions>,
}

#[derive(Debug, Default, Deserialize)]
struct CapabilitiesSpec {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    drop: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    localhost_profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SeLinuxSpec {
    user: Option<String>,
    role: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SysctlSpec {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WindowsOptions {
    host_process: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMountSpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mount_path: String,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    sub_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HandlerSpec {
    http_get: Option<HostSpec>,
    tcp_socket: Option<HostSpec>,
    exec: Option<Value>,
    grpc: Option<Value>,
    sleep: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct HostSpec {
    host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleSpec {
    post_start: Option<HandlerSpec>,
    pre_stop: Option<HandlerSpec>,
}

fn id(value: Option<i64>, path: &str) -> Result<Option<u32>, InvalidManifest> {
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| InvalidManifest {
                path: path.to_string(),
                message: format!("{v} is not a valid id"),
            })
        })
        .transpose()
}

fn seccomp(p: &ProfileSpec) -> Option<Seccomp> {
    Some(match p.kind.as_deref()? {
        "RuntimeDefault" => Seccomp::RuntimeDefault,
        "Localhost" => Seccomp::Localhost(p.localhost_profile.clone().unwrap_or_default()),
        // Unconfined, and any value the API would not know, disable filtering.
        _ => Seccomp::Unconfined,
    })
}

fn apparmor(p: &ProfileSpec) -> Option<AppArmor> {
    Some(match p.kind.as_deref()? {
        "RuntimeDefault" => AppArmor::RuntimeDefault,
        "Localhost" => AppArmor::Localhost(p.localhost_profile.clone().unwrap_or_default()),
        _ => AppArmor::Unconfined,
    })
}

fn apparmor_annotation(value: &str) -> Option<AppArmor> {
    match value {
        "runtime/default" => Some(AppArmor::RuntimeDefault),
        "unconfined" => Some(AppArmor::Unconfined),
        v => v
            .strip_prefix("localhost/")
            .map(|name| AppArmor::Localhost(name.to_string())),
    }
}

fn selinux(s: &SeLinuxSpec) -> SeLinux {
    SeLinux {
        user: s.user.clone(),
        role: s.role.clone(),
        kind: s.kind.clone(),
        level: s.level.clone(),
    }
}

fn quantity<T>(
    map: &BTreeMap<String, Value>,
    name: &str,
    path: &str,
    parse: fn(&str) -> Result<T, policy_core::quantity::QuantityError>,
) -> Result<Option<T>, InvalidManifest> {
    let Some(v) = map.get(name) else {
        return Ok(None);
    };
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(InvalidManifest {
                path: format!("{path}.{name}"),
                message: format!("expected a quantity, not {other}"),
            });
        }
    };
    parse(&text).map(Some).map_err(|e| InvalidManifest {
        path: format!("{path}.{name}"),
        message: e.to_string(),
    })
}

fn volume(raw: &serde_json::Map<String, Value>) -> Volume {
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let source = raw.keys().find(|k| *k != "name");
    let kind = source.map_or(VolumeType::EmptyDir, |k| VolumeType::from_name(k));
    let host_path = (kind == VolumeType::HostPath).then(|| {
        raw.get("hostPath")
            .and_then(|h| h.get("path"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    let driver = (kind == VolumeType::FlexVolume).then(|| {
        raw.get("flexVolume")
            .and_then(|f| f.get("driver"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    Volume {
        name,
        kind,
        host_path,
        driver,
    }
}

fn handlers(c: &ContainerSpec) -> Vec<Handler> {
    let lifecycle = c.lifecycle.as_ref();
    [
        ("livenessProbe", c.liveness_probe.as_ref()),
        ("readinessProbe", c.readiness_probe.as_ref()),
        ("startupProbe", c.startup_probe.as_ref()),
        ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
        ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
    ]
    .into_iter()
    .filter_map(|(point, h)| {
        let h = h?;
        let actions = [
            ("exec", h.exec.is_some()),
            ("httpGet", h.http_get.is_some()),
            ("tcpSocket", h.tcp_socket.is_some()),
            ("grpc", h.grpc.is_some()),
            ("sleep", h.sleep.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect();
        let host = [h.http_get.as_ref(), h.tcp_socket.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|s| s.host.clone().filter(|h| !h.is_empty()));
        Some(Handler {
            point,
            actions,
            host,
        })
    })
    .collect()
}

fn probe_hosts(c: &ContainerSpec) -> Vec<String> {
    let lifecycle = c.lifecycle.as_ref();
    [
        c.liveness_probe.as_ref(),
        c.readiness_probe.as_ref(),
        c.startup_probe.as_ref(),
        lifecycle.and_then(|l| l.post_start.as_ref()),
        lifecycle.and_then(|l| l.pre_stop.as_ref()),
    ]
    .into_iter()
    .flatten()
    .flat_map(|h| [h.http_get.as_ref(), h.tcp_socket.as_ref()])
    .flatten()
    .filter_map(|h| h.host.clone())
    .collect()
}

fn views(spec: &PodSpec, pod: &PodView) -> Result<Vec<ContainerView>, InvalidManifest> {
    let psc = spec.security_context.as_ref();
    let volumes: Vec<Volume> = spec.volumes.iter().map(volume).collect();
    // Image volumes (`image.reference`), by volume name.
    let image_volumes: Vec<(&str, ImageRef)> = spec
        .volumes
        .iter()
        .filter_map(|raw| {
            let name = raw.get("name").and_then(Value::as_str)?;
            let reference = raw.get("image")?.get("reference").and_then(Value::as_str)?;
            Some((name, ImageRef::parse(reference)))
        })
        .collect();
    let pod_host_process = psc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        .unwrap_or(false);
    let pod_run_as_user = id(psc.and_then(|s| s.run_as_user), "securityContext.runAsUser")?;
    let fs_group = id(psc.and_then(|s| s.fs_group), "securityContext.fsGroup")?;
    let pod_run_as_group = id(
        psc.and_then(|s| s.run_as_group),
        "securityContext.runAsGroup",
    )?;
    let supplemental = psc
        .map(|s| s.supplemental_groups.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, g)| {
            id(
                Some(*g),
                &format!("securityContext.supplementalGroups[{i}]"),
            )
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let sysctls: Vec<(String, String)> = psc
        .map(|s| s.sysctls.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let lists = [
        ("containers", ContainerKind::Regular, &spec.containers),
        ("initContainers", ContainerKind::Init, &spec.init_containers),
        (
            "ephemeralContainers",
            ContainerKind::Ephemeral,
            &spec.ephemeral_containers,
        ),
    ];
    let mut out = Vec::new();
    for (list, kind, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let at = format!("{list}[{i}]");
            let sc = c.security_context.as_ref();
            let limits_at = format!("{at}.resources.limits");
            let requests_at = format!("{at}.resources.requests");
            let cpu_limit = quantity(&c.resources.limits, "cpu", &limits_at, Millicores::parse)?;
            let memory_limit = quantity(&c.resources.limits, "memory", &limits_at, Bytes::parse)?;
            // The API server defaults a missing request to the limit.
            let cpu_request = quantity(
                &c.resources.requests,
                "cpu",
                &requests_at,
                Millicores::parse,
            )?
            .or(cpu_limit);
            let memory_request =
                quantity(&c.resources.requests, "memory", &requests_at, Bytes::parse)?
                    .or(memory_limit);
            let mounts = c
                .volume_mounts
                .iter()
                .map(|m| {
                    let source = match volumes.iter().find(|v| v.name == m.name) {
                        Some(Volume {
                            host_path: Some(path),
                            ..
                        }) => MountSource::HostPath(if m.sub_path.is_empty() {
                            path.clone()
                        } else {
                            format!("{}/{}", path.trim_end_matches('/'), m.sub_path)
                        }),
                        Some(v) => MountSource::KubeletVolume {
                            kind: v.kind,
                            name: v.name.clone(),
                        },
                        None => MountSource::KubeletVolume {
                            kind: VolumeType::Other,
                            name: m.name.clone(),
                        },
                    };
                    Mount {
                        destination: m.mount_path.clone(),
                        source,
                        read_only: m.read_only,
                    }
                })
                .collect();
            let host_ports = c
                .ports
                .iter()
                .filter_map(|p| p.host_port)
                .filter(|p| *p != 0)
                .map(|p| {
                    u16::try_from(p).map_err(|_| InvalidManifest {
                        path: format!("{at}.ports"),
                        message: format!("{p} is not a valid host port"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let annotation = pod
                .annotations
                .get(&format!(
                    "{}{}",
                    policy_core::pss::APPARMOR_ANNOTATION_PREFIX,
                    c.name
                ))
                .and_then(|v| apparmor_annotation(v));
            let container_apparmor = sc
                .and_then(|s| s.app_armor_profile.as_ref())
                .and_then(apparmor)
                .or(annotation);
            let security = Security {
                privileged: Some(sc.and_then(|s| s.privileged).unwrap_or(false)),
                allow_privilege_escalation: Some(sc.and_then(|s| s.allow_privilege_escalation)),
                capabilities: Some(Capabilities::Declared {
                    add: sc
                        .and_then(|s| s.capabilities.as_ref())
                        .map(|c| c.add.clone())
                        .unwrap_or_default(),
                    drop: sc
                        .and_then(|s| s.capabilities.as_ref())
                        .map(|c| c.drop.clone())
                        .unwrap_or_default(),
                }),
                run_as_non_root: Some(Layered {
                    pod: psc.and_then(|s| s.run_as_non_root),
                    container: sc.and_then(|s| s.run_as_non_root),
                }),
                run_as_user: Some(Layered {
                    pod: pod_run_as_user,
                    container: id(
                        sc.and_then(|s| s.run_as_user),
                        &format!("{at}.securityContext.runAsUser"),
                    )?,
                }),
                run_as_group: Some(Layered {
                    pod: pod_run_as_group,
                    container: id(
                        sc.and_then(|s| s.run_as_group),
                        &format!("{at}.securityContext.runAsGroup"),
                    )?,
                }),
                supplemental_groups: Some(supplemental.clone()),
                fs_group: Some(fs_group),
                read_only_root_filesystem: Some(
                    sc.and_then(|s| s.read_only_root_filesystem)
                        .unwrap_or(false),
                ),
                seccomp: Some(Layered {
                    pod: psc
                        .and_then(|s| s.seccomp_profile.as_ref())
                        .and_then(seccomp),
                    container: sc
                        .and_then(|s| s.seccomp_profile.as_ref())
                        .and_then(seccomp),
                }),
                apparmor: Some(Layered {
                    pod: psc
                        .and_then(|s| s.app_armor_profile.as_ref())
                        .and_then(apparmor),
                    container: container_apparmor,
                }),
                selinux: Some(Layered {
                    pod: psc.and_then(|s| s.selinux_options.as_ref()).map(selinux),
                    container: sc.and_then(|s| s.selinux_options.as_ref()).map(selinux),
                }),
                proc_mount: Some(match sc.and_then(|s| s.proc_mount.as_deref()) {
                    None | Some("Default") => ProcMount::Default,
                    Some(_) => ProcMount::Unmasked,
                }),
                sysctls: Some(sysctls.clone()),
                host_process: Some(
                    pod_host_process
                        || sc
                            .and_then(|s| s.windows_options.as_ref())
                            .and_then(|w| w.host_process)
                            .unwrap_or(false),
                ),
                host_users: Some(spec.host_users.unwrap_or(true)),
            };
            out.push(ContainerView {
                name: c.name.clone(),
                kind: Some(kind),
                image: c.image.as_deref().map(ImageRef::parse),
                image_names: Vec::new(),
                image_volumes: c
                    .volume_mounts
                    .iter()
                    .filter_map(|m| {
                        let (_, image) = image_volumes.iter().find(|(n, _)| *n == m.name)?;
                        Some(ImageVolume {
                            destination: m.mount_path.clone(),
                            digest: image.digest().unwrap_or_default().to_string(),
                            names: Some(vec![image.clone()]),
                        })
                    })
                    .collect(),
                pod: pod.clone(),
                host_namespaces: HostNamespaces {
                    pid: Some(spec.host_pid.unwrap_or(false)),
                    ipc: Some(spec.host_ipc.unwrap_or(false)),
                    network: Some(spec.host_network.unwrap_or(false)),
                },
                host_ports: Some(host_ports),
                volumes: Some(volumes.clone()),
                mounts: Some(mounts),
                devices: Some(Vec::new()),
                resources: Some(Resources {
                    cpu_request,
                    cpu_limit,
                    memory_request,
                    memory_request_known: true,
                    memory_limit,
                }),
                probe_hosts: Some(probe_hosts(c)),
                handlers: Some(handlers(c)),
                security,
                tty: Some(c.tty),
                stdin: Some(c.stdin),
                source: ViewSource::Manifest,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_pods_and_templates() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "initContainers": [{"name": "init", "image": "busybox"}]}});
        let m = pod_from_document(&pod).unwrap().unwrap();
        assert_eq!(m.containers.len(), 2);
        assert_eq!(m.namespace, "prod");
        assert_eq!(m.containers[0].pod.labels["app"], "web");
        assert_eq!(m.containers[1].kind, Some(ContainerKind::Init));
        assert_eq!(
            m.containers[0].image.as_ref().unwrap().as_str(),
            "docker.io/library/nginx:latest"
        );

        let cron = json!({"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"x": "y"}},
                "spec": {"containers": [{"name": "a", "image": "a"}]}}}}}});
        let m = pod_from_document(&cron).unwrap().unwrap();
        assert_eq!(m.namespace, "default");
        assert_eq!(m.containers[0].pod.labels["x"], "y");
    }

    #[test]
    fn finds_the_pod_template_of_kinds_it_does_not_know_by_their_shape() {
        let rollout = json!({"kind": "Rollout", "metadata": {"name": "r", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}});
        let m = pod_from_document(&rollout).unwrap().unwrap();
        assert_eq!((m.kind.as_str(), m.containers.len()), ("Rollout", 1));
        let scheduled = json!({"kind": "ScheduledThing", "metadata": {"name": "s"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b"}]}}}}}});
        assert_eq!(
            pod_from_document(&scheduled).unwrap().unwrap().containers[0].name,
            "b"
        );
        // A template without containers is not a pod template.
        let other = json!({"kind": "Widget", "spec": {"template": {"spec": {"size": 3}}}});
        assert!(pod_from_document(&other).unwrap().is_none());
    }

    #[test]
    fn skips_kinds_without_pods() {
        let svc = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {}});
        assert!(pod_from_document(&svc).unwrap().is_none());
    }

    #[test]
    fn reports_malformed_fields_with_their_path() {
        let bad = json!({"kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "lots"}}}]}}}});
        let err = pod_from_document(&bad).unwrap_err();
        assert_eq!(
            err.path,
            "spec.template.spec.containers[0].resources.limits.cpu"
        );
        let mistyped = json!({"kind": "Pod", "spec": {"hostPID": "yes", "containers": []}});
        let err = pod_from_document(&mistyped).unwrap_err();
        assert_eq!(err.path, "spec.hostPID");
    }

    #[test]
    fn requests_default_to_limits_and_sourceless_volumes_are_empty_dirs() {
        let pod = json!({"kind": "Pod", "spec": {
            "volumes": [{"name": "scratch"}, {"name": "logs", "hostPath": {"path": "/var/log"}}],
            "containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": true}]}]}});
        let m = pod_from_document(&pod).unwrap().unwrap();
        let c = &m.containers[0];
        let r = c.resources.unwrap();
        assert_eq!(r.cpu_request, Some(Millicores(1000)));
        assert_eq!(r.memory_request, Some(Bytes(1 << 30)));
        let volumes = c.volumes.as_ref().unwrap();
        assert_eq!(volumes[0].kind, VolumeType::EmptyDir);
        assert_eq!(volumes[1].host_path.as_deref(), Some("/var/log"));
        let mount = &c.mounts.as_ref().unwrap()[0];
        assert_eq!(mount.source, MountSource::HostPath("/var/log".into()));
        assert!(mount.read_only);
    }

    #[test]
    fn keeps_pod_and_container_levels_apart() {
        let pod = json!({"kind": "Pod", "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "image": "a", "securityContext": {"runAsUser": 1000,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]}});
        let m = pod_from_document(&pod).unwrap().unwrap();
        let s = &m.containers[0].security;
        let user = s.run_as_user.as_ref().unwrap();
        assert_eq!((user.pod, user.container), (Some(0), Some(1000)));
        let seccomp = s.seccomp.as_ref().unwrap();
        assert_eq!(seccomp.pod, Some(Seccomp::RuntimeDefault));
        assert_eq!(seccomp.container, Some(Seccomp::Localhost("p.json".into())));
    }

    #[test]
    fn image_volumes_are_the_references_the_pod_mounts() {
        let pod = json!({"kind": "Pod", "spec": {
            "volumes": [{"name": "data", "image": {"reference": "evil.example/data:1"}},
                        {"name": "unused", "image": {"reference": "x"}},
                        {"name": "tmp", "emptyDir": {}}],
            "containers": [{"name": "a", "image": "a",
                "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                 {"name": "tmp", "mountPath": "/tmp"}]}]}});
        let m = pod_from_document(&pod).unwrap().unwrap();
        let volumes = &m.containers[0].image_volumes;
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        assert_eq!(volumes[0].destination, "/data");
        assert_eq!(
            volumes[0].names.as_deref().unwrap()[0].as_str(),
            "evil.example/data:1"
        );
    }

    #[test]
    fn reads_what_only_a_manifest_tells() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"fsGroup": 2000},
            "volumes": [{"name": "f", "flexVolume": {"driver": "example/lvm"}}],
            "containers": [{"name": "a", "image": "a", "tty": true,
                "readinessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
                "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}]}});
        let m = pod_from_document(&pod).unwrap().unwrap();
        let c = &m.containers[0];
        assert_eq!((c.tty, c.stdin), (Some(true), Some(false)));
        assert_eq!(c.security.fs_group, Some(Some(2000)));
        assert_eq!(c.pod.automount_token, Some(Some(false)));
        assert!(c.pod.namespace_assumed, "no namespace in the object");
        let volume = &c.volumes.as_ref().unwrap()[0];
        assert_eq!(
            (volume.kind, volume.driver.as_deref()),
            (VolumeType::FlexVolume, Some("example/lvm"))
        );
        let handlers = c.handlers.as_ref().unwrap();
        assert_eq!(
            handlers
                .iter()
                .map(|h| (h.point, h.actions.clone(), h.host.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("readinessProbe", vec!["httpGet"], Some("10.0.0.1")),
                ("preStop", vec!["exec"], None)
            ]
        );
    }
}
