//! NRI requests as container views: what the node knows at container create, and how the
//! full OCI spec completes it at start.

use std::collections::BTreeMap;

use nodeguard_proto::nri::v1alpha1::{self as nri, security_profile::ProfileType};
use policy_core::image::ImageRef;
use policy_core::quantity::Bytes;
use policy_core::view::{
    ContainerKind, ContainerView, Device, HostNamespaces, Layered, Mount, PodView, Resources,
    Seccomp, Security, ViewSource,
};

use crate::kubelet;
use crate::kubelet::{CONTAINER_TYPE_ANNOTATION, IMAGE_ANNOTATION};
use crate::oci::{RuntimeSpec, volumes_of};

/// `container` without what no container view reads, which on a real node is most of its
/// size: its arguments and environment (the kubelet adds every Service's variables), hooks,
/// labels, the annotations other than the three a view reads (container type, image name,
/// host ports), mount options other than `ro`, namespace paths, cgroups path, rlimits, CDI
/// devices, seccomp policy and the resources other than CPU and memory. What nodeguard keeps
/// of a running container: [`ContainerView::from`] a [`Create`] of it is the same as of the
/// whole container (tested).
pub fn without_unread(mut container: nri::Container) -> nri::Container {
    container.args = Vec::new();
    container.env = Vec::new();
    container.hooks = None;
    container.labels = Default::default();
    container.annotations.retain(|key, _| {
        [
            CONTAINER_TYPE_ANNOTATION,
            IMAGE_ANNOTATION,
            kubelet::PORTS_ANNOTATION,
        ]
        .contains(&key.as_str())
    });
    container.annotations.shrink_to_fit();
    for m in &mut container.mounts {
        m.options.retain(|o| o == "ro");
    }
    container.rlimits = Vec::new();
    container.cdi_devices = Vec::new();
    container.status_reason = String::new();
    container.status_message = String::new();
    if let Some(linux) = &mut container.linux {
        for n in &mut linux.namespaces {
            n.path = String::new();
        }
        linux.cgroups_path = String::new();
        linux.seccomp_policy = None;
        linux.resources = linux.resources.take().map(|r| nri::LinuxResources {
            cpu: r.cpu,
            memory: r.memory,
            ..Default::default()
        });
    }
    container
}

/// `pod` without what no view reads: its runtime handler, IP addresses, process id, cgroup
/// paths, resources and namespace paths (the namespaces' types are kept: they tell which host
/// namespaces the pod shares). What nodeguard keeps of a pod.
pub fn pod_without_unread(mut pod: nri::PodSandbox) -> nri::PodSandbox {
    pod.runtime_handler = String::new();
    pod.ips = Vec::new();
    pod.pid = 0;
    pod.linux = pod.linux.take().map(|linux| nri::LinuxPodSandbox {
        namespaces: linux
            .namespaces
            .into_iter()
            .map(|n| nri::LinuxNamespace {
                r#type: n.r#type,
                path: String::new(),
            })
            .collect(),
        ..Default::default()
    });
    pod
}

/// A request that does not say which container it is about: a protocol error, never judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NriError {
    /// No pod in the request.
    #[error("no pod")]
    NoPod,
    /// No container in the request.
    #[error("no container")]
    NoContainer,
    /// A pod without an id.
    #[error("a pod without an id")]
    NoPodId,
    /// A container without an id.
    #[error("a container without an id")]
    NoContainerId,
}

/// The pod and container a request is about, both present and with their ids.
///
/// # Errors
/// What is missing.
pub fn subject(
    pod: Option<nri::PodSandbox>,
    container: Option<nri::Container>,
) -> Result<(nri::PodSandbox, nri::Container), NriError> {
    match (pod, container) {
        (None, _) => Err(NriError::NoPod),
        (_, None) => Err(NriError::NoContainer),
        (Some(pod), _) if pod.id.is_empty() => Err(NriError::NoPodId),
        (_, Some(container)) if container.id.is_empty() => Err(NriError::NoContainerId),
        (Some(pod), Some(container)) => Ok((pod, container)),
    }
}

/// A container as NRI describes it at `CreateContainer` (or `UpdateContainer`, with the new
/// resources in place).
#[derive(Debug, Clone, Copy)]
pub struct Create<'a> {
    /// Its pod.
    pub pod: &'a nri::PodSandbox,
    /// The container.
    pub container: &'a nri::Container,
}

/// A container at `StartContainer`: NRI's description and the OCI spec containerd committed.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    /// Its pod.
    pub pod: &'a nri::PodSandbox,
    /// The container.
    pub container: &'a nri::Container,
    /// Its committed OCI spec.
    pub spec: &'a RuntimeSpec,
}

/// What the node knows at `CreateContainer`: identity, image, host namespaces, mounts,
/// devices, resources and host ports; the security context only as far as the runtime sends
/// it (seccomp from containerd 2.2.1, user and sysctls from 2.3).
impl From<Create<'_>> for ContainerView {
    fn from(at: Create<'_>) -> Self {
        create_view(at.pod, at.container)
    }
}

/// What the node knows at `StartContainer`: the committed OCI spec, with the pod's identity,
/// labels and annotations (which a spec does not carry) from NRI.
impl From<Start<'_>> for ContainerView {
    fn from(at: Start<'_>) -> Self {
        start_view(at.pod, at.container, at.spec)
    }
}

/// `map`'s entries in key order. Inserted one by one: collecting would first gather and sort
/// them in a vector of its own, for maps that hold a handful of labels or annotations.
fn sorted(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    let mut sorted = BTreeMap::new();
    for (k, v) in map {
        sorted.insert(k.clone(), v.clone());
    }
    sorted
}

/// The pod as NRI describes it.
pub fn pod_view(pod: &nri::PodSandbox) -> PodView {
    PodView {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        namespace_assumed: false,
        uid: pod.uid.clone(),
        labels: sorted(&pod.labels),
        labels_unknown: false,
        annotations: sorted(&pod.annotations),
        os: None,
        automount_token: None,
        namespace_labels: None,
    }
}

/// What the node knows of a pod at `RunPodSandbox`, before any container: the pod, the host
/// namespaces it shares and whether it has a user namespace; `sysctls` when the sandbox's
/// spec was read. Every container field is unknown.
pub fn sandbox_view(
    pod: &nri::PodSandbox,
    sysctls: Option<Vec<(String, String)>>,
) -> ContainerView {
    ContainerView {
        pod: pod_view(pod),
        host_namespaces: host_namespaces(pod),
        security: Security {
            sysctls,
            host_users: pod
                .linux
                .as_ref()
                .filter(|l| !l.namespaces.is_empty())
                .map(|l| !l.namespaces.iter().any(|n| n.r#type == "user")),
            ..Security::default()
        },
        source: ViewSource::Runtime,
        ..ContainerView::default()
    }
}

/// The image a container runs: NRI's own field (containerd 2.4+, NRI v0.12.2) or containerd's
/// CRI annotation.
pub fn image_of(container: &nri::Container) -> Option<ImageRef> {
    container
        .image
        .as_ref()
        .map(|i| i.name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            container
                .annotations
                .get(IMAGE_ANNOTATION)
                .map(String::as_str)
        })
        .map(ImageRef::parse)
}

/// Host namespaces of a pod: a namespace the sandbox lacks is the host's.
fn host_namespaces(pod: &nri::PodSandbox) -> HostNamespaces {
    match &pod.linux {
        // A sandbox always has namespaces of its own (at least a mount namespace): an empty
        // list is a runtime that could not tell them (no sandbox container or task yet).
        Some(linux) if !linux.namespaces.is_empty() => {
            let has = |t: &str| linux.namespaces.iter().any(|n| n.r#type == t);
            HostNamespaces {
                pid: Some(!has("pid")),
                ipc: Some(!has("ipc")),
                network: Some(!has("network")),
            }
        }
        _ => HostNamespaces::default(),
    }
}

/// What the node knows at `CreateContainer`: identity, image, host namespaces, mounts,
/// devices, resources and host ports. The security context is not in the request (containerd
/// 1.7-2.2), so those fields stay unknown unless a newer runtime sends them.
fn create_view(pod: &nri::PodSandbox, container: &nri::Container) -> ContainerView {
    let annotations = sorted(&container.annotations);
    let linux = container.linux.as_ref();
    let mounts: Vec<Mount> = container
        .mounts
        .iter()
        .map(|m| Mount {
            destination: m.destination.clone(),
            source: kubelet::mount_source(
                &m.source,
                &m.r#type,
                &pod.uid,
                &container.pod_sandbox_id,
            ),
            read_only: m.options.iter().any(|o| o == "ro"),
        })
        .collect();
    let resources = linux.and_then(|l| l.resources.as_ref()).map(|r| {
        let cpu = r.cpu.as_ref();
        Resources {
            cpu_request: cpu
                .and_then(|c| c.shares.as_ref())
                .and_then(|s| kubelet::shares_to_millicores(s.value)),
            cpu_limit: cpu.and_then(|c| {
                kubelet::quota_to_millicores(
                    c.quota.as_ref().map(|q| q.value),
                    c.period.as_ref().map(|p| p.value),
                )
            }),
            memory_request: None,
            memory_request_known: false,
            memory_limit: r
                .memory
                .as_ref()
                .and_then(|m| m.limit.as_ref())
                .and_then(|l| u64::try_from(l.value).ok())
                .filter(|l| *l > 0)
                .map(Bytes),
        }
    });
    // containerd 2.2.1+ passes the profile the kubelet sent. A kubelet without
    // `seccompDefault: true` sends Unconfined for a pod that sets no profile, so Unconfined
    // here cannot tell "not set" from a declared Unconfined: it reads as not set, as "no
    // filter" in the OCI spec does at start (baseline allows it, a required profile refuses
    // it). Before 2.2.1 the field is absent, and a type this version does not know is no
    // better: unknown until start.
    let seccomp = linux
        .and_then(|l| l.seccomp_profile.as_ref())
        .and_then(|p| match ProfileType::try_from(p.profile_type).ok()? {
            ProfileType::RuntimeDefault => Some(Layered::effective_only(Seccomp::RuntimeDefault)),
            ProfileType::Localhost => Some(Layered::effective_only(Seccomp::Localhost(
                p.localhost_ref.clone(),
            ))),
            ProfileType::Unconfined => Some(Layered::default()),
        });
    let sysctls = linux.map(|l| &l.sysctl).filter(|s| !s.is_empty()).map(|s| {
        let mut v: Vec<(String, String)> = s.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort();
        v
    });
    ContainerView {
        name: container.name.clone(),
        kind: match annotations
            .get(CONTAINER_TYPE_ANNOTATION)
            .map(String::as_str)
        {
            Some("container") => Some(ContainerKind::Regular),
            _ => None,
        },
        image: image_of(container),
        image_names: Vec::new(),
        image_volumes: kubelet::image_volumes(
            container
                .mounts
                .iter()
                .map(|m| (m.destination.as_str(), m.source.as_str(), m.r#type.as_str())),
            &container.pod_sandbox_id,
        ),
        pod: pod_view(pod),
        host_namespaces: host_namespaces(pod),
        host_ports: Some(kubelet::host_ports(&annotations)),
        volumes: Some(volumes_of(&mounts)),
        mounts: Some(mounts),
        devices: linux.map(|l| {
            l.devices
                .iter()
                .map(|d| Device {
                    path: d.path.clone(),
                })
                .collect()
        }),
        resources,
        probe_hosts: None,
        handlers: None,
        security: Security {
            run_as_user: container
                .user
                .as_ref()
                .map(|u| Layered::effective_only(u.uid)),
            run_as_group: container
                .user
                .as_ref()
                .map(|u| Layered::effective_only(u.gid)),
            supplemental_groups: container.user.as_ref().map(|u| u.additional_gids.clone()),
            seccomp,
            sysctls,
            host_process: Some(false),
            host_users: linux.map(|l| !l.namespaces.iter().any(|n| n.r#type == "user")),
            ..Security::default()
        },
        tty: None,
        stdin: None,
        source: ViewSource::Runtime,
    }
}

/// What the node knows at `StartContainer`: the committed OCI spec, with the pod's identity,
/// labels and annotations (which a spec does not carry) from NRI.
fn start_view(
    pod: &nri::PodSandbox,
    container: &nri::Container,
    spec: &RuntimeSpec,
) -> ContainerView {
    let mut view = spec.view();
    view.pod = pod_view(pod);
    if view.name.is_empty() {
        view.name.clone_from(&container.name);
    }
    if view.image.is_none() {
        view.image = image_of(container);
    }
    // The sandbox, not the container spec, tells which host namespaces the pod shares when
    // NRI describes it.
    let from_pod = host_namespaces(pod);
    if from_pod.pid.is_some() {
        view.host_namespaces = from_pod;
    }
    view
}

/// The mark NRI puts before an annotation key, a mount destination, a device path, a
/// namespace type or a sysctl to remove it.
const REMOVAL_MARK: char = '-';

/// The container as the runtime will create it: `container` (as it was before any plugin)
/// with `adjust` (every plugin's combined adjustments, as `ValidateContainerAdjustment`
/// carries them) applied, for the fields a container view reads (annotations, mounts,
/// devices, namespaces, sysctls, CPU and memory resources; not arguments, environment, hooks
/// or rlimits). Removals (a key marked with a leading `-`) are applied before additions, so a
/// plugin's "remove, then add" replaces.
pub fn adjusted(container: &nri::Container, adjust: &nri::ContainerAdjustment) -> nri::Container {
    let mut c = container.clone();
    let (removed_annotations, added_annotations): (Vec<_>, Vec<_>) = adjust
        .annotations
        .iter()
        .partition(|(key, _)| key.starts_with(REMOVAL_MARK));
    for (key, _) in removed_annotations {
        c.annotations.remove(&key[1..]);
    }
    for (key, value) in added_annotations {
        c.annotations.insert(key.clone(), value.clone());
    }

    for m in &adjust.mounts {
        let destination = m
            .destination
            .strip_prefix(REMOVAL_MARK)
            .unwrap_or(&m.destination);
        c.mounts.retain(|old| old.destination != destination);
    }
    c.mounts.extend(
        adjust
            .mounts
            .iter()
            .filter(|m| !m.destination.starts_with(REMOVAL_MARK))
            .cloned(),
    );

    if let Some(adj) = &adjust.linux {
        let linux = c.linux.get_or_insert_with(Default::default);
        for d in &adj.devices {
            let path = d.path.strip_prefix(REMOVAL_MARK).unwrap_or(&d.path);
            linux.devices.retain(|old| old.path != path);
        }
        linux.devices.extend(
            adj.devices
                .iter()
                .filter(|d| !d.path.starts_with(REMOVAL_MARK))
                .cloned(),
        );
        for n in &adj.namespaces {
            let kind = n.r#type.strip_prefix(REMOVAL_MARK).unwrap_or(&n.r#type);
            linux.namespaces.retain(|old| old.r#type != kind);
        }
        linux.namespaces.extend(
            adj.namespaces
                .iter()
                .filter(|n| !n.r#type.starts_with(REMOVAL_MARK))
                .cloned(),
        );
        for (key, value) in &adj.sysctl {
            match key.strip_prefix(REMOVAL_MARK) {
                Some(key) => {
                    linux.sysctl.remove(key);
                }
                None => {
                    linux.sysctl.insert(key.clone(), value.clone());
                }
            }
        }
        if let Some(r) = &adj.resources {
            merge_resources(linux.resources.get_or_insert_with(Default::default), r);
        }
    }
    c
}

/// Sets in `into` every resource `adjust` sets, among those a view reads (CPU shares, quota
/// and period; memory limit).
fn merge_resources(into: &mut nri::LinuxResources, adjust: &nri::LinuxResources) {
    if let Some(cpu) = &adjust.cpu {
        let into = into.cpu.get_or_insert_with(Default::default);
        if cpu.shares.is_some() {
            into.shares.clone_from(&cpu.shares);
        }
        if cpu.quota.is_some() {
            into.quota.clone_from(&cpu.quota);
        }
        if cpu.period.is_some() {
            into.period.clone_from(&cpu.period);
        }
    }
    if let Some(memory) = &adjust.memory
        && memory.limit.is_some()
    {
        into.memory
            .get_or_insert_with(Default::default)
            .limit
            .clone_from(&memory.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeguard_proto::nri::v1alpha1 as nri;
    use policy_core::view::MountSource;

    fn ns(t: &str) -> nri::LinuxNamespace {
        nri::LinuxNamespace {
            r#type: t.into(),
            path: String::new(),
        }
    }

    pub(crate) fn sample() -> (nri::PodSandbox, nri::Container) {
        let pod = nri::PodSandbox {
            id: "sb1".into(),
            name: "web".into(),
            uid: "u1".into(),
            namespace: "prod".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            linux: Some(nri::LinuxPodSandbox {
                namespaces: vec![ns("ipc"), ns("uts"), ns("network")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = nri::Container {
            id: "c1".into(),
            pod_sandbox_id: "sb1".into(),
            name: "app".into(),
            annotations: [
                (
                    IMAGE_ANNOTATION.to_string(),
                    "registry.local/busybox:1".to_string(),
                ),
                (
                    CONTAINER_TYPE_ANNOTATION.to_string(),
                    "container".to_string(),
                ),
                (
                    kubelet::PORTS_ANNOTATION.to_string(),
                    r#"[{"containerPort":80,"hostPort":8080}]"#.to_string(),
                ),
            ]
            .into(),
            mounts: vec![nri::Mount {
                destination: "/host".into(),
                r#type: "bind".into(),
                source: "/etc".into(),
                options: vec!["rbind".into(), "ro".into()],
            }],
            linux: Some(nri::LinuxContainer {
                resources: Some(nri::LinuxResources {
                    cpu: Some(nri::LinuxCpu {
                        shares: Some(nri::OptionalUInt64 { value: 256 }),
                        quota: Some(nri::OptionalInt64 { value: 25_000 }),
                        period: Some(nri::OptionalUInt64 { value: 100_000 }),
                        ..Default::default()
                    }),
                    memory: Some(nri::LinuxMemory {
                        limit: Some(nri::OptionalInt64 { value: 64 << 20 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        (pod, container)
    }

    #[test]
    fn create_view_holds_what_nri_tells() {
        let (pod, container) = sample();
        let v = create_view(&pod, &container);
        assert_eq!(v.name, "app");
        assert_eq!(v.pod.namespace, "prod");
        assert_eq!(v.pod.labels["app"], "web");
        assert_eq!(v.image.unwrap().as_str(), "registry.local/busybox:1");
        assert_eq!(v.host_namespaces.pid, Some(true));
        assert_eq!(v.host_namespaces.network, Some(false));
        assert_eq!(v.host_ports, Some(vec![8080]));
        let r = v.resources.unwrap();
        assert_eq!(r.cpu_limit, Some(policy_core::quantity::Millicores(250)));
        assert_eq!(r.memory_limit, Some(Bytes(64 << 20)));
        assert_eq!(
            v.mounts.unwrap()[0].source,
            MountSource::HostPath("/etc".into())
        );
        assert_eq!(v.security.privileged, None, "unknown at create");
        assert_eq!(v.security.capabilities, None, "unknown at create");
    }

    #[test]
    fn missing_sandbox_namespaces_are_unknown() {
        let (mut pod, container) = sample();
        pod.linux = None;
        let v = create_view(&pod, &container);
        assert_eq!(v.host_namespaces, HostNamespaces::default());
    }

    #[test]
    fn nri_image_field_wins_over_the_annotation() {
        let (pod, mut container) = sample();
        container.image = Some(nri::Image {
            name: "registry.local/other:2".into(),
            ..Default::default()
        });
        assert_eq!(
            create_view(&pod, &container).image.unwrap().as_str(),
            "registry.local/other:2"
        );
    }

    #[test]
    fn seccomp_at_create_reads_unconfined_as_not_set_and_an_absent_profile_as_unknown() {
        use nri::security_profile::ProfileType;
        let with = |profile: Option<i32>| {
            let (pod, mut container) = sample();
            container.linux.get_or_insert_default().seccomp_profile =
                profile.map(|profile_type| nri::SecurityProfile {
                    profile_type,
                    localhost_ref: "p.json".into(),
                });
            create_view(&pod, &container).security.seccomp
        };
        // containerd before 2.2.1 sends none: start decides.
        assert_eq!(with(None), None);
        // The kubelet's Unconfined for a pod that sets nothing, like "no filter" at start.
        assert_eq!(
            with(Some(ProfileType::Unconfined as i32)),
            Some(Layered::default())
        );
        assert_eq!(
            with(Some(ProfileType::RuntimeDefault as i32)),
            Some(Layered::effective_only(Seccomp::RuntimeDefault))
        );
        assert_eq!(
            with(Some(ProfileType::Localhost as i32)),
            Some(Layered::effective_only(Seccomp::Localhost("p.json".into())))
        );
        // A type a later NRI may add: unknown, not guessed.
        assert_eq!(with(Some(9)), None);
    }

    #[test]
    fn adjustments_apply_removals_before_additions() {
        let (_, mut container) = sample();
        container.annotations.insert("gone".into(), "x".into());
        container.linux.as_mut().unwrap().devices = vec![nri::LinuxDevice {
            path: "/dev/old".into(),
            ..Default::default()
        }];
        container.linux.as_mut().unwrap().namespaces = vec![ns("network")];
        container
            .linux
            .as_mut()
            .unwrap()
            .sysctl
            .insert("net.ipv4.ip_forward".into(), "0".into());
        let adjust = nri::ContainerAdjustment {
            annotations: [
                ("-gone".to_string(), String::new()),
                ("added".to_string(), "y".to_string()),
            ]
            .into(),
            mounts: vec![
                nri::Mount {
                    destination: "-/host".into(),
                    ..Default::default()
                },
                nri::Mount {
                    destination: "/host".into(),
                    r#type: "bind".into(),
                    source: "/var/lib".into(),
                    options: vec!["rbind".into()],
                },
                nri::Mount {
                    destination: "/data".into(),
                    r#type: "bind".into(),
                    source: "/srv".into(),
                    options: vec![],
                },
            ],
            linux: Some(nri::LinuxContainerAdjustment {
                devices: vec![
                    nri::LinuxDevice {
                        path: "-/dev/old".into(),
                        ..Default::default()
                    },
                    nri::LinuxDevice {
                        path: "/dev/fuse".into(),
                        ..Default::default()
                    },
                ],
                namespaces: vec![ns("-network")],
                sysctl: [
                    ("-net.ipv4.ip_forward".to_string(), String::new()),
                    ("kernel.shm_rmid_forced".to_string(), "1".to_string()),
                ]
                .into(),
                resources: Some(nri::LinuxResources {
                    memory: Some(nri::LinuxMemory {
                        limit: Some(nri::OptionalInt64 { value: 128 << 20 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = adjusted(&container, &adjust);
        assert!(!c.annotations.contains_key("gone"));
        assert_eq!(c.annotations["added"], "y");
        let mounts: Vec<(&str, &str)> = c
            .mounts
            .iter()
            .map(|m| (m.destination.as_str(), m.source.as_str()))
            .collect();
        assert_eq!(mounts, [("/host", "/var/lib"), ("/data", "/srv")]);
        let linux = c.linux.as_ref().unwrap();
        let devices: Vec<&str> = linux.devices.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(devices, ["/dev/fuse"]);
        assert!(linux.namespaces.is_empty());
        assert_eq!(
            linux.sysctl.iter().collect::<Vec<_>>(),
            [(&"kernel.shm_rmid_forced".to_string(), &"1".to_string())]
        );
        let resources = linux.resources.as_ref().unwrap();
        assert_eq!(
            resources
                .memory
                .as_ref()
                .unwrap()
                .limit
                .as_ref()
                .unwrap()
                .value,
            128 << 20,
            "the adjusted memory limit"
        );
        assert_eq!(
            resources
                .cpu
                .as_ref()
                .unwrap()
                .quota
                .as_ref()
                .unwrap()
                .value,
            25_000,
            "what the adjustment leaves alone stays"
        );

        // The view reads the adjusted container.
        let (pod, _) = sample();
        let v = create_view(&pod, &c);
        assert_eq!(v.devices.unwrap().len(), 1);
        assert_eq!(v.resources.unwrap().memory_limit, Some(Bytes(128 << 20)));
    }

    #[test]
    fn no_adjustment_changes_nothing() {
        let (_, container) = sample();
        assert_eq!(
            adjusted(&container, &nri::ContainerAdjustment::default()),
            container
        );
    }

    #[test]
    fn a_sandbox_without_namespaces_shares_nothing_known() {
        let (mut pod, _) = sample();
        pod.linux = Some(nri::LinuxPodSandbox::default());
        let view = sandbox_view(&pod, None);
        assert_eq!(
            view.host_namespaces,
            policy_core::view::HostNamespaces::default()
        );
        assert_eq!(view.security.host_users, None);
        pod.linux = Some(nri::LinuxPodSandbox {
            namespaces: vec![ns("mount"), ns("pid")],
            ..Default::default()
        });
        let view = sandbox_view(&pod, Some(Vec::new()));
        assert_eq!(view.host_namespaces.pid, Some(false));
        assert_eq!(view.host_namespaces.network, Some(true));
        assert_eq!(view.security.host_users, Some(true));
    }
}

#[cfg(test)]
mod without_unread_tests {
    use super::*;
    use nodeguard_proto::nri::v1alpha1 as nri;

    fn ns(kind: &str) -> nri::LinuxNamespace {
        nri::LinuxNamespace {
            r#type: kind.into(),
            path: format!("/proc/42/ns/{kind}"),
        }
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    /// A pod with every field NRI fills, as containerd 2.x sends it.
    fn full_pod() -> nri::PodSandbox {
        let resources = nri::LinuxResources {
            cpu: Some(nri::LinuxCpu {
                shares: Some(nri::OptionalUInt64 { value: 102 }),
                ..Default::default()
            }),
            ..Default::default()
        };
        nri::PodSandbox {
            id: "sb".into(),
            name: "web".into(),
            uid: "0b7f5a9e".into(),
            namespace: "prod".into(),
            labels: [pair("app", "web")].into(),
            annotations: [pair("kubernetes.io/config.seen", "2026-12-01T10:00:00Z")].into(),
            runtime_handler: "runc".into(),
            linux: Some(nri::LinuxPodSandbox {
                pod_overhead: Some(Box::new(resources.clone())),
                pod_resources: Some(Box::new(resources.clone())),
                cgroup_parent: "kubepods-burstable.slice".into(),
                cgroups_path: "kubepods-burstable.slice:cri-containerd:sb".into(),
                namespaces: vec![ns("ipc"), ns("uts"), ns("network"), ns("user")],
                resources: Some(Box::new(resources)),
            }),
            pid: 4242,
            ips: vec!["10.244.0.7".into()],
        }
    }

    /// A container with every field NRI fills, and some of each kind that a view reads.
    fn full_container() -> nri::Container {
        nri::Container {
            id: "c1".into(),
            pod_sandbox_id: "sb".into(),
            name: "app".into(),
            state: nri::ContainerState::ContainerRunning as i32,
            labels: [pair("io.kubernetes.pod.name", "web")].into(),
            annotations: [
                pair(IMAGE_ANNOTATION, "registry.corp/web:1"),
                pair(CONTAINER_TYPE_ANNOTATION, "container"),
                pair(
                    kubelet::PORTS_ANNOTATION,
                    r#"[{"containerPort":80,"hostPort":8080}]"#,
                ),
                pair(kubelet::SANDBOX_ID_ANNOTATION, "sb"),
                pair("io.kubernetes.container.hash", "6b1f2e"),
            ]
            .into(),
            args: vec!["/server".into()],
            env: vec!["KUBERNETES_SERVICE_HOST=10.96.0.1".into()],
            mounts: vec![
                nri::Mount {
                    destination: "/data".into(),
                    r#type: "bind".into(),
                    source: "/srv".into(),
                    options: vec!["rbind".into(), "rprivate".into(), "rw".into()],
                },
                nri::Mount {
                    destination: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    r#type: "bind".into(),
                    source: "/var/lib/kubelet/pods/0b7f5a9e/volumes/token".into(),
                    options: vec!["rbind".into(), "rprivate".into(), "ro".into()],
                },
            ],
            hooks: Some(Box::new(nri::Hooks::default())),
            linux: Some(nri::LinuxContainer {
                namespaces: vec![ns("pid"), ns("mount")],
                devices: vec![nri::LinuxDevice {
                    path: "/dev/fuse".into(),
                    r#type: "c".into(),
                    ..Default::default()
                }],
                resources: Some(nri::LinuxResources {
                    cpu: Some(nri::LinuxCpu {
                        shares: Some(nri::OptionalUInt64 { value: 512 }),
                        quota: Some(nri::OptionalInt64 { value: 50_000 }),
                        period: Some(nri::OptionalUInt64 { value: 100_000 }),
                        ..Default::default()
                    }),
                    memory: Some(nri::LinuxMemory {
                        limit: Some(nri::OptionalInt64 { value: 256 << 20 }),
                        ..Default::default()
                    }),
                    pids: Some(nri::LinuxPids { limit: 1024 }),
                    unified: [pair("memory.high", "200000000")].into(),
                    ..Default::default()
                }),
                cgroups_path: "kubepods-burstable-pod0b7f5a9e.slice:cri-containerd:c1".into(),
                seccomp_profile: Some(nri::SecurityProfile {
                    profile_type: ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                seccomp_policy: Some(Box::new(nri::LinuxSeccomp::default())),
                sysctl: [pair("net.ipv4.ip_unprivileged_port_start", "0")].into(),
                ..Default::default()
            }),
            rlimits: vec![nri::PosixRlimit {
                r#type: "RLIMIT_NOFILE".into(),
                hard: 1024,
                soft: 1024,
            }],
            status_message: "running".into(),
            user: Some(nri::User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![2000],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_without_what_no_view_reads_gives_the_same_view() {
        let (pod, container) = (full_pod(), full_container());
        let slimmed = without_unread(container.clone());
        assert!(slimmed.env.is_empty() && slimmed.args.is_empty() && slimmed.hooks.is_none());
        assert!(slimmed.labels.is_empty() && slimmed.annotations.len() == 3);
        assert_eq!(slimmed.mounts[1].options, ["ro"]);
        let view = ContainerView::from(Create {
            pod: &pod,
            container: &container,
        });
        // The fixture exercises what is kept: the slimmed view is not a view of nothing.
        assert_eq!(view.host_ports, Some(vec![8080]));
        assert_eq!(view.mounts.as_ref().map(|m| m[1].read_only), Some(true));
        assert!(view.resources.is_some() && view.security.sysctls.is_some());
        assert_eq!(
            ContainerView::from(Create {
                pod: &pod,
                container: &slimmed
            }),
            view
        );
    }

    #[test]
    fn a_pod_without_what_no_view_reads_gives_the_same_views() {
        let (pod, container) = (full_pod(), full_container());
        let slimmed = pod_without_unread(pod.clone());
        assert!(slimmed.ips.is_empty() && slimmed.runtime_handler.is_empty());
        let linux = slimmed.linux.as_ref().expect("linux kept");
        assert!(linux.resources.is_none() && linux.cgroups_path.is_empty());
        assert_eq!(linux.namespaces.len(), 4);
        let spec =
            RuntimeSpec::from_json(br#"{"process":{"user":{"uid":0,"gid":0}}}"#).expect("spec");
        for (whole, slim) in [
            (
                ContainerView::from(Create {
                    pod: &pod,
                    container: &container,
                }),
                ContainerView::from(Create {
                    pod: &slimmed,
                    container: &container,
                }),
            ),
            (
                ContainerView::from(Start {
                    pod: &pod,
                    container: &container,
                    spec: &spec,
                }),
                ContainerView::from(Start {
                    pod: &slimmed,
                    container: &container,
                    spec: &spec,
                }),
            ),
            (sandbox_view(&pod, None), sandbox_view(&slimmed, None)),
        ] {
            assert_eq!(whole.pod.labels["app"], "web");
            assert_eq!(whole.host_namespaces.network, Some(false));
            assert_eq!(slim, whole);
        }
    }
}
