//! Compiled rules and how each judges a container.
//!
//! A rule of the policy document may compile into several checks (`images` gives
//! `images.allowed`, `images.denied`, ...), each with its own id and effect. Checks read the
//! [`ContainerView`] only; they allocate only to describe a violation.

use std::fmt::Write as _;

use regex::Regex;

use crate::capabilities::{self, CapabilitySet};
use crate::decision::{Effect, Remediation};
use crate::document::ResourceName;
use crate::findings::{
    Findings, also_named, describe_apparmor, describe_seccomp, judge_allowed_images,
    judge_denied_images, judge_run_as_non_root, known,
};
pub(crate) use crate::matcher::AllowedHostPath;
use crate::matcher::{Globs, Regexes};
use crate::pss;
use crate::quantity::{Bytes, Millicores};
use crate::view::{
    AppArmor, Capabilities, ContainerView, MountSource, ProcMount, Seccomp, VolumeType,
};

/// An inclusive range of ids or ports.
pub(crate) type Range<T> = (T, T);

fn in_ranges<T: PartialOrd + Copy>(value: T, ranges: &[Range<T>]) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= value && value <= hi)
}

fn describe_ranges<T: PartialEq + std::fmt::Display>(ranges: &[Range<T>]) -> String {
    let mut out = String::new();
    for (i, (lo, hi)) in ranges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if lo == hi {
            let _ = write!(out, "{lo}");
        } else {
            let _ = write!(out, "{lo}-{hi}");
        }
    }
    out
}

/// Which profile kinds a seccomp or AppArmor rule accepts.
#[derive(Debug, Clone)]
pub(crate) struct ProfilePolicy {
    pub(crate) runtime_default: bool,
    pub(crate) localhost: bool,
    pub(crate) unconfined: bool,
    pub(crate) localhost_names: Option<Globs>,
}

impl ProfilePolicy {
    fn describe(&self) -> String {
        let mut kinds = Vec::new();
        if self.runtime_default {
            kinds.push("RuntimeDefault");
        }
        if self.localhost {
            kinds.push("Localhost");
        }
        if self.unconfined {
            kinds.push("Unconfined");
        }
        kinds.join(", ")
    }

    fn localhost_ok(&self, name: &str) -> bool {
        self.localhost
            && self
                .localhost_names
                .as_ref()
                .is_none_or(|g| g.is_match(name))
    }
}

/// Allowed SELinux option values (`None`: any).
#[derive(Debug, Clone)]
pub(crate) struct SeLinuxPolicy {
    pub(crate) types: Option<Vec<String>>,
    pub(crate) users: Option<Vec<String>>,
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) levels: Option<Vec<String>>,
}

/// A required pod label.
#[derive(Debug, Clone)]
pub(crate) struct LabelRequirement {
    pub(crate) key: String,
    pub(crate) value: Option<Regex>,
}

/// The judgement a check makes.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    ImagesAllowed(Regexes),
    ImagesDenied(Regexes),
    ImagesDigest,
    ImagesTag(Vec<String>),
    Privileged,
    PrivilegeEscalation,
    CapabilitiesAdd {
        allowed: CapabilitySet,
    },
    CapabilitiesDrop {
        required: CapabilitySet,
        all: bool,
        allowed_add: CapabilitySet,
    },
    ResourceLimits(Vec<ResourceName>),
    ResourceRequests(Vec<ResourceName>),
    MaxLimits {
        cpu: Option<Millicores>,
        memory: Option<Bytes>,
    },
    MaxRatio {
        cpu: Option<f64>,
        memory: Option<f64>,
    },
    HostNamespaces {
        pid: bool,
        ipc: bool,
        network: bool,
    },
    HostPorts(Vec<Range<u16>>),
    HostPath(Vec<AllowedHostPath>),
    RunAsNonRoot,
    RunAsUser(Vec<Range<u32>>),
    RunAsGroup(Vec<Range<u32>>),
    SupplementalGroups(Vec<Range<u32>>),
    ReadOnlyRootFilesystem,
    Seccomp(ProfilePolicy),
    AppArmor(ProfilePolicy),
    SeLinux(SeLinuxPolicy),
    ProcMount,
    Sysctls {
        allowed: Option<Globs>,
        forbidden: Option<Globs>,
    },
    VolumeTypes(Vec<VolumeType>),
    RequiredLabels(Vec<LabelRequirement>),
    Devices(Option<Globs>),
    Pss(pss::Control, pss::PssVersion),
    /// A Gatekeeper kind, with the containers its constraint exempts.
    Gatekeeper(crate::gatekeeper::GkRule, crate::gatekeeper::Exempt),
}

/// Narrows a check to some namespaces and images (Pod Security exemptions).
#[derive(Debug, Clone)]
pub(crate) struct Exemption {
    pub(crate) namespaces: Option<Globs>,
    pub(crate) images: Option<Regexes>,
}

impl Exemption {
    fn covers(&self, view: &ContainerView) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|g| g.is_match(&view.pod.namespace))
            && self
                .images
                .as_ref()
                .is_none_or(|re| view.image_aliases().any(|i| re.is_match(i.as_str())))
    }
}

/// One compiled check.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) id: &'static str,
    pub(crate) effect: Effect,
    pub(crate) rule: Rule,
    /// What to do about running containers that break it.
    pub(crate) remediate: Remediation,
    /// Images this check does not judge.
    pub(crate) exempt_images: Option<Regexes>,
    /// Exemptions from this check.
    pub(crate) exemptions: Vec<Exemption>,
}

impl Check {
    /// Whether no container could be exempt from this check by its name or image: what can
    /// be judged before any container exists.
    pub(crate) fn pod_wide(&self) -> bool {
        self.exempt_images.is_none()
            && self.exemptions.iter().all(|e| e.images.is_none())
            && match &self.rule {
                Rule::Gatekeeper(_, exempt) => exempt.is_empty(),
                _ => true,
            }
    }

    /// Whether this check reads the other names of an image's content or image volumes
    /// (ADR 0020): a rule that allows or denies images by name, or an exemption by image.
    pub(crate) fn reads_image_names(&self) -> bool {
        !self.pod_wide()
            || match &self.rule {
                Rule::ImagesAllowed(_) | Rule::ImagesDenied(_) => true,
                Rule::Gatekeeper(rule, _) => rule.reads_image_names(),
                _ => false,
            }
    }

    /// Whether the container is exempt from this check.
    pub(crate) fn exempts(&self, view: &ContainerView) -> bool {
        crate::matcher::image_exempt(self.exempt_images.as_ref(), view)
            || self.exemptions.iter().any(|e| e.covers(view))
    }

    /// Runs the check unless the container is exempt from it.
    pub(crate) fn run(&self, view: &ContainerView, out: &mut Findings<'_>) {
        if self.exempts(view) {
            return;
        }
        self.rule.judge(view, out);
    }
}

impl Rule {
    #[allow(clippy::too_many_lines)]
    fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let sec = &view.security;
        match self {
            Rule::Gatekeeper(rule, exempt) => rule.judge_unless(exempt, view, out),
            Rule::ImagesAllowed(allowed) => judge_allowed_images(
                view,
                out,
                |name| allowed.is_match(name.as_str()),
                |image| {
                    format!(
                        "image {:?} does not match any allowed pattern ({})",
                        image.as_str(),
                        allowed.patterns().join(", ")
                    )
                },
                |at, name| {
                    format!(
                        "image volume at {at}: image {name:?} does not match any allowed pattern ({})",
                        allowed.patterns().join(", ")
                    )
                },
            ),
            Rule::ImagesDenied(denied) => judge_denied_images(
                view,
                out,
                |name| denied.first_match(name.as_str()),
                |image, name, pattern| {
                    format!(
                        "image {:?}{} matches denied pattern {pattern}",
                        image.as_str(),
                        also_named(image, name)
                    )
                },
                |at, name, pattern| {
                    format!(
                        "image volume at {at}: image {:?} matches denied pattern {pattern}",
                        name.as_str()
                    )
                },
            ),
            Rule::ImagesDigest => {
                let image = known!(out, &view.image, "image");
                if image.digest().is_none() {
                    out.violation(format!(
                        "image {:?} is not pinned by digest (@sha256:...)",
                        image.as_str()
                    ));
                }
            }
            Rule::ImagesTag(forbidden) => {
                let image = known!(out, &view.image, "image");
                if image.digest().is_none()
                    && let Some(tag) = image.tag()
                    && forbidden.iter().any(|f| f == tag)
                {
                    out.violation(format!(
                        "image {:?} uses forbidden tag {tag:?}",
                        image.as_str()
                    ));
                }
            }
            Rule::Privileged => {
                if *known!(out, &sec.privileged, "security.privileged") {
                    out.violation("container is privileged".to_string());
                }
            }
            Rule::PrivilegeEscalation => {
                match known!(
                    out,
                    &sec.allow_privilege_escalation,
                    "security.allowPrivilegeEscalation"
                ) {
                    Some(false) => {}
                    Some(true) => out.violation(
                        "container allows privilege escalation (allowPrivilegeEscalation: true)"
                            .to_string(),
                    ),
                    None => out.violation(
                        "container allows privilege escalation (allowPrivilegeEscalation is not set to false)"
                            .to_string(),
                    ),
                }
            }
            Rule::CapabilitiesAdd { allowed } => {
                let caps = known!(out, &sec.capabilities, "security.capabilities");
                let added = match caps {
                    Capabilities::Declared { add, .. } => CapabilitySet::from_names(add),
                    Capabilities::Effective(set) => set.difference(capabilities::runtime_default()),
                };
                let extra = added.difference(allowed);
                if !extra.is_empty() {
                    out.violation(format!(
                        "container adds capabilities that are not allowed: {extra} (allowed: {})",
                        describe_set(allowed)
                    ));
                }
            }
            Rule::CapabilitiesDrop {
                required,
                all,
                allowed_add,
            } => {
                let caps = known!(out, &sec.capabilities, "security.capabilities");
                match caps {
                    Capabilities::Declared { drop, .. } => {
                        let drops_all = drop.iter().any(|d| capabilities::is_all(d));
                        if *all && !drops_all {
                            out.violation("container does not drop ALL capabilities".to_string());
                        } else if !drops_all {
                            let missing = required.difference(&CapabilitySet::from_names(drop));
                            if !missing.is_empty() {
                                out.violation(format!(
                                    "container does not drop required capabilities: {missing}"
                                ));
                            }
                        }
                    }
                    Capabilities::Effective(set) => {
                        let kept = set.intersection(required).difference(allowed_add);
                        if !kept.is_empty() {
                            out.violation(format!(
                                "container keeps capabilities that must be dropped: {kept}"
                            ));
                        }
                    }
                }
            }
            Rule::ResourceLimits(required) => {
                let res = known!(out, &view.resources, "resources");
                let missing: Vec<&str> = required
                    .iter()
                    .filter(|r| match r {
                        ResourceName::Cpu => res.cpu_limit.is_none(),
                        ResourceName::Memory => res.memory_limit.is_none(),
                    })
                    .map(|r| resource_label(*r))
                    .collect();
                if !missing.is_empty() {
                    out.violation(format!("container has no {} limit", missing.join(" or ")));
                }
            }
            Rule::ResourceRequests(required) => {
                let res = known!(out, &view.resources, "resources");
                let mut missing = Vec::new();
                for r in required {
                    match r {
                        ResourceName::Cpu if res.cpu_request.is_none() => missing.push("CPU"),
                        ResourceName::Memory if !res.memory_request_known => {
                            out.unknown("resources.memoryRequest");
                        }
                        ResourceName::Memory if res.memory_request.is_none() => {
                            missing.push("memory");
                        }
                        _ => {}
                    }
                }
                if !missing.is_empty() {
                    out.violation(format!("container has no {} request", missing.join(" or ")));
                }
            }
            Rule::MaxLimits { cpu, memory } => {
                let res = known!(out, &view.resources, "resources");
                if let Some(max) = cpu {
                    match res.cpu_limit {
                        Some(limit) if limit > *max => {
                            out.violation(format!("CPU limit {limit} exceeds the maximum {max}"))
                        }
                        None => {
                            out.violation(format!("container has no CPU limit (maximum {max})"))
                        }
                        Some(_) => {}
                    }
                }
                if let Some(max) = memory {
                    match res.memory_limit {
                        Some(limit) if limit > *max => {
                            out.violation(format!("memory limit {limit} exceeds the maximum {max}"))
                        }
                        None => {
                            out.violation(format!("container has no memory limit (maximum {max})"));
                        }
                        Some(_) => {}
                    }
                }
            }
            Rule::MaxRatio { cpu, memory } => {
                let res = known!(out, &view.resources, "resources");
                if let (Some(max), Some(limit)) = (cpu, res.cpu_limit) {
                    let request = res.cpu_request.unwrap_or(limit);
                    check_ratio(out, "CPU", limit.0, request.0, *max);
                }
                if let (Some(max), Some(limit)) = (memory, res.memory_limit) {
                    if !res.memory_request_known {
                        out.unknown("resources.memoryRequest");
                    } else {
                        let request = res.memory_request.unwrap_or(limit);
                        check_ratio(out, "memory", limit.0, request.0, *max);
                    }
                }
            }
            Rule::HostNamespaces { pid, ipc, network } => {
                let ns = &view.host_namespaces;
                let mut unknown = false;
                for (allowed, value, field, name) in [
                    (*pid, ns.pid, "hostPID", "PID"),
                    (*ipc, ns.ipc, "hostIPC", "IPC"),
                    (*network, ns.network, "hostNetwork", "network"),
                ] {
                    match (allowed, value) {
                        (true, _) | (false, Some(false)) => {}
                        (false, Some(true)) => out
                            .violation(format!("pod shares the host's {name} namespace ({field})")),
                        (false, None) => unknown = true,
                    }
                }
                if unknown {
                    out.unknown("hostNamespaces");
                }
            }
            Rule::HostPorts(allowed) => {
                let ports = known!(out, &view.host_ports, "hostPorts");
                for &port in ports {
                    if port != 0 && !in_ranges(port, allowed) {
                        if allowed.is_empty() {
                            out.violation(format!(
                                "container binds host port {port} (no host ports are allowed)"
                            ));
                        } else {
                            out.violation(format!(
                                "container binds host port {port}, outside the allowed {}",
                                describe_ranges(allowed)
                            ));
                        }
                    }
                }
            }
            Rule::HostPath(allowed) => judge_host_paths(view, allowed, out),
            Rule::RunAsNonRoot => judge_run_as_non_root(view, out, true),
            Rule::RunAsUser(ranges) => {
                let user = known!(out, &sec.run_as_user, "security.runAsUser");
                judge_id(out, "user", "runAsUser", user.effective().copied(), ranges);
            }
            Rule::RunAsGroup(ranges) => {
                let group = known!(out, &sec.run_as_group, "security.runAsGroup");
                judge_id(
                    out,
                    "group",
                    "runAsGroup",
                    group.effective().copied(),
                    ranges,
                );
            }
            Rule::SupplementalGroups(ranges) => {
                let groups = known!(out, &sec.supplemental_groups, "security.supplementalGroups");
                for &gid in groups {
                    if !in_ranges(gid, ranges) {
                        out.violation(format!(
                            "supplemental group {gid} is outside the allowed {}",
                            describe_ranges(ranges)
                        ));
                    }
                }
            }
            Rule::ReadOnlyRootFilesystem => {
                if !*known!(
                    out,
                    &sec.read_only_root_filesystem,
                    "security.readOnlyRootFilesystem"
                ) {
                    out.violation("container's root filesystem is writable".to_string());
                }
            }
            Rule::Seccomp(policy) => {
                let profile = known!(out, &sec.seccomp, "security.seccomp");
                for (level, value) in profile.declared() {
                    let ok = match value {
                        Seccomp::RuntimeDefault => policy.runtime_default,
                        Seccomp::Localhost(name) => policy.localhost_ok(name),
                        Seccomp::Unconfined => policy.unconfined,
                        // A filter is applied, but the node cannot tell which: enough unless the
                        // rule narrows the Localhost profiles it accepts.
                        Seccomp::Confined if policy.runtime_default => true,
                        Seccomp::Confined
                            if policy.localhost && policy.localhost_names.is_none() =>
                        {
                            true
                        }
                        Seccomp::Confined if policy.localhost => {
                            out.unknown("security.seccomp.profile");
                            continue;
                        }
                        Seccomp::Confined => false,
                    };
                    if !ok {
                        out.violation(format!(
                            "{} seccomp profile {} is not allowed (allowed: {})",
                            level.describe(),
                            describe_seccomp(value),
                            policy.describe()
                        ));
                    }
                }
                if profile.effective().is_none() && !policy.unconfined {
                    out.violation(format!(
                        "no seccomp profile is set (allowed: {})",
                        policy.describe()
                    ));
                }
            }
            Rule::AppArmor(policy) => {
                let profile = known!(out, &sec.apparmor, "security.appArmor");
                for (level, value) in profile.declared() {
                    let ok = match value {
                        AppArmor::RuntimeDefault => policy.runtime_default,
                        AppArmor::Localhost(name) => policy.localhost_ok(name),
                        AppArmor::Unconfined => policy.unconfined,
                    };
                    if !ok {
                        out.violation(format!(
                            "{} AppArmor profile {} is not allowed (allowed: {})",
                            level.describe(),
                            describe_apparmor(value),
                            policy.describe()
                        ));
                    }
                }
                if profile.effective().is_none() && !policy.unconfined {
                    out.violation(format!(
                        "no AppArmor profile is set (allowed: {})",
                        policy.describe()
                    ));
                }
            }
            Rule::SeLinux(policy) => {
                let options = known!(out, &sec.selinux, "security.seLinuxOptions");
                for (level, value) in options.declared() {
                    for (part, given, allowed) in [
                        ("type", &value.kind, &policy.types),
                        ("user", &value.user, &policy.users),
                        ("role", &value.role, &policy.roles),
                        ("level", &value.level, &policy.levels),
                    ] {
                        if let (Some(given), Some(allowed)) = (given, allowed)
                            && !given.is_empty()
                            && !allowed.contains(given)
                        {
                            out.violation(format!(
                                "{} SELinux {part} {given:?} is not allowed (allowed: {})",
                                level.describe(),
                                if allowed.is_empty() {
                                    "none".to_string()
                                } else {
                                    allowed.join(", ")
                                }
                            ));
                        }
                    }
                }
            }
            Rule::ProcMount => {
                if *known!(out, &sec.proc_mount, "security.procMount") == ProcMount::Unmasked {
                    out.violation(
                        "container mounts /proc unmasked (procMount: Unmasked)".to_string(),
                    );
                }
            }
            Rule::Sysctls { allowed, forbidden } => {
                let sysctls = known!(out, &sec.sysctls, "security.sysctls");
                for (name, _) in sysctls {
                    if forbidden.as_ref().is_some_and(|g| g.is_match(name)) {
                        out.violation(format!("sysctl {name} is forbidden"));
                    } else if allowed.as_ref().is_some_and(|g| !g.is_match(name)) {
                        out.violation(format!("sysctl {name} is not allowed"));
                    }
                }
            }
            Rule::VolumeTypes(allowed) => {
                let volumes = known!(out, &view.volumes, "volumes");
                for v in volumes {
                    if !allowed.contains(&v.kind) {
                        out.violation(format!(
                            "volume {:?} is of type {}, which is not allowed (allowed: {})",
                            v.name,
                            v.kind.name(),
                            allowed
                                .iter()
                                .map(|t| t.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            Rule::RequiredLabels(required) => {
                if view.pod.labels_unknown {
                    out.unknown("pod.labels");
                    return;
                }
                for req in required {
                    match (view.pod.labels.get(&req.key), &req.value) {
                        (None, _) => out.violation(format!("pod has no label {:?}", req.key)),
                        (Some(v), Some(re)) if !re.is_match(v) => out.violation(format!(
                            "pod label {}={v:?} does not match {}",
                            req.key,
                            re.as_str()
                        )),
                        _ => {}
                    }
                }
            }
            Rule::Devices(allowed) => {
                let devices = known!(out, &view.devices, "devices");
                for d in devices {
                    if !allowed.as_ref().is_some_and(|g| g.is_match(&d.path)) {
                        out.violation(format!("container is given host device {}", d.path));
                    }
                }
            }
            Rule::Pss(control, version) => pss::judge(*control, *version, view, out),
        }
    }
}

fn resource_label(r: ResourceName) -> &'static str {
    match r {
        ResourceName::Cpu => "CPU",
        ResourceName::Memory => "memory",
    }
}

fn describe_set(set: &CapabilitySet) -> String {
    if set.is_empty() {
        "none".to_string()
    } else {
        set.to_string()
    }
}

fn check_ratio(out: &mut Findings<'_>, what: &str, limit: u64, request: u64, max: f64) {
    #[allow(clippy::cast_precision_loss)]
    let ratio = if request == 0 {
        f64::INFINITY
    } else {
        limit as f64 / request as f64
    };
    if ratio > max {
        out.violation(format!(
            "{what} limit is {ratio:.2} times the request, above the maximum ratio {max}"
        ));
    }
}

fn judge_id(
    out: &mut Findings<'_>,
    what: &str,
    field: &str,
    id: Option<u32>,
    ranges: &[Range<u32>],
) {
    match id {
        None => out.violation(format!(
            "{field} is not set; the {what} id must be in {}",
            describe_ranges(ranges)
        )),
        Some(id) if !in_ranges(id, ranges) => out.violation(format!(
            "container runs with {what} id {id}, outside the allowed {}",
            describe_ranges(ranges)
        )),
        Some(_) => {}
    }
}

fn judge_host_paths(view: &ContainerView, allowed: &[AllowedHostPath], out: &mut Findings<'_>) {
    if view.mounts.is_none() && view.volumes.is_none() {
        out.unknown("mounts");
        return;
    }
    let allowing = |path: &str| {
        allowed
            .iter()
            .find(|a| crate::matcher::path_has_prefix(path, &a.prefix))
    };
    let mounted = |path: &str| {
        view.mounts
            .iter()
            .flatten()
            .any(|m| matches!(&m.source, MountSource::HostPath(p) if p == path))
    };
    for m in view.mounts.iter().flatten() {
        let MountSource::HostPath(path) = &m.source else {
            continue;
        };
        match allowing(path) {
            None => out.violation(format!(
                "host path {path} is mounted at {} but is not allowed",
                m.destination
            )),
            Some(a) if a.read_only && !m.read_only => out.violation(format!(
                "host path {path} is mounted at {} writable; it must be read-only",
                m.destination
            )),
            Some(_) => {}
        }
    }
    for v in view.volumes.iter().flatten() {
        if let Some(path) = &v.host_path
            && !mounted(path)
            && allowing(path).is_none()
        {
            out.violation(format!(
                "volume {:?} uses host path {path}, which is not allowed",
                v.name
            ));
        }
    }
}
