//! Gatekeeper constraint kinds judged natively: the checks a `constraints.gatekeeper.sh`
//! constraint compiles into, with the gatekeeper-library's semantics and messages.
//!
//! Facts come from the library's templates (their Rego and CEL); the code is ours. Where a
//! template has both, Gatekeeper runs the CEL one by default and its message is the one users
//! see; where the CEL message joins every offending container of a pod into one line, the node,
//! which judges one container at a time, gives the Rego message per container.
//!
//! Images are compared as written in the pod (`nginx`, not `docker.io/library/nginx:latest`),
//! as the library's string prefixes and suffixes compare them: that is what containerd 2.x
//! tells the node; containerd 1.7 tells an already normalized name.

mod common;
mod pod_security;

pub(crate) use common::{Dialect, rego_value};
use common::{lists_image, rego_array, rego_set};

pub(crate) use pod_security::{
    CapabilityRule, FsGroupRule, IdRule, Max, RatioRule, SeLinuxEntry, SeccompRule, SeccompV2Rule,
    SysctlRule, UserRules,
};

use crate::findings::{Findings, also_named, judge_allowed_images, judge_denied_images, known};
pub(crate) use crate::matcher::AllowedHostPath;
use crate::quantity::{Bytes, Millicores};
use crate::view::{ContainerKind, ContainerView, MountSource, ViewSource};

/// The containers a constraint leaves be: the library's `exemptImages` (Azure's
/// `excludedImages`), read as its `exempt_container` reads them (an entry ending in `*` is a
/// prefix, one trailing `*` removed; any other entry must equal the image), and Azure's
/// `excludedContainers` (container names, compared exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Exempt {
    images: Vec<String>,
    containers: Vec<String>,
}

impl Exempt {
    pub(crate) fn new(images: Vec<String>, containers: Vec<String>) -> Self {
        Exempt { images, containers }
    }

    /// Whether it spares no container.
    pub(crate) fn is_empty(&self) -> bool {
        self.images.is_empty() && self.containers.is_empty()
    }

    /// Whether the container is exempt. An unknown image is never exempt by image.
    pub(crate) fn covers(&self, view: &ContainerView) -> bool {
        if self.containers.contains(&view.name) {
            return true;
        }
        // Any name of the image's content (ADR 0020).
        view.image_aliases().any(|image| {
            self.images
                .iter()
                .any(|entry| lists_image(entry, image.as_written()))
        })
    }
}

/// A library kind's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GkRule {
    /// K8sAllowedRepos: the image starts with one of `repos`.
    AllowedRepos(Vec<String>),
    /// K8sAllowedReposv2: the image equals an entry, or starts with one ending in `*`.
    AllowedImages(Vec<String>),
    /// K8sDisallowedRepos: the image starts with none of `repos`.
    DisallowedRepos(Vec<String>),
    /// K8sDisallowedTags: no tag of `tags`, and a tag at all.
    DisallowedTags(Vec<String>),
    /// K8sImageDigests: the image names a digest.
    ImageDigests,
    /// Azure's allowed images (`imageRegex`): the image as written matches the regex, searched
    /// unanchored as OPA's `re_match` does.
    ImageRegex(Pattern),
    /// K8sPSPPrivilegedContainer (Azure's NoPrivilege: the same check, its own message).
    Privileged(Dialect),
    /// K8sPSPHostNamespace: neither hostPID nor hostIPC (and, for Azure's V3, nor hostNetwork).
    HostNamespace {
        /// hostNetwork counts too.
        network: bool,
    },
    /// K8sPSPAllowPrivilegeEscalationContainer: privilege escalation explicitly off.
    AllowPrivilegeEscalation,
    /// K8sPSPReadOnlyRootFilesystem (Azure's: the same check, its own message).
    ReadOnlyRootFilesystem(Dialect),
    /// K8sPSPHostNetworkingPorts: host network only if allowed, host ports within `min..=max`;
    /// `parameters` as the message prints them.
    HostNetworkingPorts {
        /// `hostNetwork` (Azure: `allowHostNetwork`): whether the pod may share the host's network.
        host_network: bool,
        /// `min` (Azure: `minPort`): the lowest host port allowed.
        min: Option<i64>,
        /// `max` (Azure: `maxPort`): the highest host port allowed.
        max: Option<i64>,
        /// Azure's V4 `allowedHostPorts`: ports and inclusive ranges, the only ones allowed.
        allowed: Option<Vec<(u16, u16)>>,
        /// The constraint's `parameters`, as Gatekeeper's message prints them.
        parameters: String,
        /// Whose message: Azure's names the container too.
        dialect: Dialect,
    },
    /// K8sPSPHostFilesystem: host paths under an allowed prefix (read-only where it says);
    /// the library's CEL form compares string prefixes, Azure's whole path components.
    HostFilesystem(Vec<AllowedHostPath>, Dialect),
    /// K8sRequiredLabels: each key present, its value matching its regex.
    RequiredLabels(Vec<RequiredLabel>),
    /// K8sContainerRequests: requests set, and not above the maxima.
    ContainerRequests {
        /// `cpu`: the largest request.
        cpu: Max<Millicores>,
        /// `memory`: the largest request.
        memory: Max<Bytes>,
    },
    /// K8sContainerRatios.
    ContainerRatios(RatioRule),
    /// K8sRequiredResources: `limits` and `requests` (resource names) set.
    RequiredResources {
        /// Limits that must be set.
        limits: Vec<String>,
        /// Requests that must be set.
        requests: Vec<String>,
    },
    /// K8sDisallowInteractiveTTY.
    InteractiveTty,
    /// K8sPSPCapabilities, Azure's AllowedCapabilities.
    Capabilities(CapabilityRule),
    /// Azure's DisallowedCapabilities.
    DisallowedCapabilities(Vec<String>),
    /// K8sPSPAllowedUsers, Azure's AllowedUsersGroups.
    AllowedUsers(Box<UserRules>),
    /// K8sPSPFSGroup.
    FsGroup(FsGroupRule),
    /// K8sPSPSeccomp, Azure's AllowedSeccomp.
    Seccomp(SeccompRule, Dialect),
    /// K8sPSPSeccompV2.
    SeccompV2(SeccompV2Rule),
    /// K8sPSPAppArmor (`allowedProfiles`), Azure's EnforceAppArmor.
    AppArmor(Vec<String>, Dialect),
    /// K8sPSPSELinuxV2 (`allowedSELinuxOptions`, and as OPA prints them), Azure's SELinux.
    SeLinux(Vec<SeLinuxEntry>, String, Dialect),
    /// K8sPSPProcMount: whether `Unmasked` is allowed.
    ProcMount(bool),
    /// K8sPSPForbiddenSysctls, Azure's ForbiddenSysctls.
    Sysctls(SysctlRule),
    /// K8sPSPVolumeTypes (`volumes`), Azure's VolumeTypes.
    VolumeTypes(Vec<String>),
    /// K8sPSPFlexVolumes (the allowed drivers), Azure's FlexVolumes.
    FlexVolumes(Vec<String>, Dialect),
    /// K8sPSPAutomountServiceAccountTokenPod, Azure's BlockAutomountToken.
    AutomountToken,
    /// K8sPSPHostProcess.
    HostProcess,
    /// K8sPSPHostProbesLifecycle: no probe or lifecycle hook targets a host.
    HostProbesLifecycle,
    /// K8sRequiredProbes: each of `probes` is set with one of `probe_types`.
    RequiredProbes {
        /// `probes` (`readinessProbe`, ...).
        probes: Vec<String>,
        /// `probeTypes` (`tcpSocket`, `httpGet`, `exec`, ...).
        probe_types: Vec<String>,
    },
    /// Azure's NoPrivilegeEscalation (V3): escalation explicitly off, or (unless `force`) a
    /// root or unset user.
    AzureNoPrivilegeEscalation {
        /// V4's `forcePrivilegeEscalationToBeFalse` (and the legacy kind): the library's check.
        force: bool,
    },
    /// Azure's BlockDefault: no pod in the `default` namespace.
    AzureBlockDefault,
    /// Azure's PodEnforceLabels: each key present, any value.
    LabelsPresent(Vec<String>),
    /// K8sContainerLimits (Azure's ContainerLimits): limits set, and not above the maxima
    /// (`None`: not checked).
    ContainerLimits {
        /// `cpu` (library: absent or `"-1"`, CPU not checked at all; Azure's `cpuLimit`: absent,
        /// only its presence is checked, with an empty text), as written and parsed.
        cpu: Option<(String, Option<Millicores>)>,
        /// `memory` (a presence check always; the maximum when it parses), as written and parsed.
        memory: Option<(String, Option<Bytes>)>,
    },
}

/// A regex parameter, compared by its text.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(pub(crate) regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// An entry of K8sRequiredLabels' `labels`.
#[derive(Debug, Clone)]
pub(crate) struct RequiredLabel {
    /// The label key.
    pub(crate) key: String,
    /// `allowedRegex`, an unanchored search as RE2 and CEL's `matches` do.
    pub(crate) allowed: Option<regex::Regex>,
}

impl PartialEq for RequiredLabel {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.allowed.as_ref().map(regex::Regex::as_str)
                == other.allowed.as_ref().map(regex::Regex::as_str)
    }
}

impl Eq for RequiredLabel {}

/// `container`, `initContainer` or `ephemeralContainer`, as the library's messages say.
fn container_word(view: &ContainerView) -> &'static str {
    match view.kind {
        Some(ContainerKind::Init) => "initContainer",
        Some(ContainerKind::Ephemeral) => "ephemeralContainer",
        _ => "container",
    }
}

/// The library's loose digest test: `@algorithm:hex` anywhere in the image.
fn has_digest(image: &str) -> bool {
    let Some((_, after)) = image.split_once('@') else {
        return false;
    };
    let Some((algorithm, encoded)) = after.split_once(':') else {
        return false;
    };
    let alg_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let enc_ok = encoded
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    alg_ok && enc_ok
}

impl GkRule {
    /// Whether the check allows or denies images by name (and so reads every name of an
    /// image's content and the image volumes).
    pub(crate) fn reads_image_names(&self) -> bool {
        matches!(
            self,
            GkRule::AllowedRepos(_)
                | GkRule::AllowedImages(_)
                | GkRule::DisallowedRepos(_)
                | GkRule::ImageRegex(_)
        )
    }

    /// Judges the container unless `exempt` spares it. The library's host networking kind
    /// spares only the host ports of an exempt container: sharing the host's network is judged
    /// for every pod, as its template says.
    pub(crate) fn judge_unless(
        &self,
        exempt: &Exempt,
        view: &ContainerView,
        out: &mut Findings<'_>,
    ) {
        let spared = exempt.covers(view);
        match self {
            GkRule::HostNetworkingPorts {
                dialect: Dialect::Library,
                ..
            } => self.host_networking(view, out, spared),
            _ if spared => {}
            _ => self.judge(view, out),
        }
    }

    fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let name = &view.name;
        let word = container_word(view);
        match self {
            GkRule::AllowedRepos(repos) => judge_allowed_images(
                view,
                out,
                |i| repos.iter().any(|r| i.as_written().starts_with(r.as_str())),
                |image| {
                    format!(
                        "{word} <{name}> has an invalid image repo <{}>, allowed repos are {}",
                        image.as_written(),
                        rego_array(repos)
                    )
                },
                |at, image| {
                    format!(
                        "image volume <{at}> of {word} <{name}> has an invalid image repo <{image}>, allowed repos are {}",
                        rego_array(repos)
                    )
                },
            ),
            GkRule::AllowedImages(allowed) => judge_allowed_images(
                view,
                out,
                |i| allowed.iter().any(|a| lists_image(a, i.as_written())),
                |image| {
                    format!(
                        "{word} <{name}> has an invalid image <{}>, allowed images are {}",
                        image.as_written(),
                        rego_array(allowed)
                    )
                },
                |at, image| {
                    format!(
                        "image volume <{at}> of {word} <{name}> has an invalid image <{image}>, allowed images are {}",
                        rego_array(allowed)
                    )
                },
            ),
            GkRule::DisallowedRepos(repos) => judge_denied_images(
                view,
                out,
                |i| {
                    repos
                        .iter()
                        .find(|r| i.as_written().starts_with(r.as_str()))
                        .map(String::as_str)
                },
                |image, denied, _| {
                    format!(
                        "{word} <{name}> has an invalid image repo <{}>, disallowed repos are {}{}",
                        image.as_written(),
                        rego_array(repos),
                        also_named(image, denied)
                    )
                },
                |at, image, _| {
                    format!(
                        "image volume <{at}> of {word} <{name}> has an invalid image repo <{}>, disallowed repos are {}",
                        image.as_written(),
                        rego_array(repos)
                    )
                },
            ),
            GkRule::DisallowedTags(tags) => {
                let image = known!(out, &view.image, "image").as_written();
                // One set for every list: the library says "container" for all of them.
                let tagged = |t: &String| {
                    image
                        .strip_suffix(t.as_str())
                        .is_some_and(|rest| rest.ends_with(':'))
                };
                if tags.iter().any(tagged) {
                    out.violation(format!(
                        "container <{name}> uses a disallowed tag <{image}>; disallowed tags are {}",
                        rego_array(tags)
                    ));
                }
                let last = image.rsplit('/').next().unwrap_or(image);
                if !last.contains(':') {
                    out.violation(format!(
                        "container <{name}> didn't specify an image tag <{image}>"
                    ));
                }
            }
            GkRule::ImageDigests => {
                let image = known!(out, &view.image, "image").as_written();
                if !has_digest(image) {
                    out.violation(format!(
                        "{word} <{name}> uses an image without a digest <{image}>"
                    ));
                }
            }
            GkRule::ImageRegex(Pattern(re)) => judge_allowed_images(
                view,
                out,
                |i| re.is_match(i.as_written()),
                |image| {
                    format!(
                        "Container image {} for container {name} has not been allowed.",
                        image.as_written()
                    )
                },
                |at, image| {
                    format!(
                        "Image volume {at} image {image} for container {name} has not been allowed."
                    )
                },
            ),
            GkRule::Privileged(dialect) => {
                if *known!(out, &view.security.privileged, "security.privileged") {
                    out.violation(match dialect {
                        Dialect::Library => format!(
                            "Privileged container is not allowed: {name}, securityContext.privileged: true"
                        ),
                        // The template prints the whole securityContext; the node knows this much.
                        Dialect::Azure => format!(
                            "Privileged container is not allowed: {name}, securityContext: {{\"privileged\": true}}"
                        ),
                    });
                }
            }
            GkRule::HostNamespace { network } => {
                let host = &view.host_namespaces;
                let pid = known!(out, &host.pid, "hostNamespaces.pid");
                let ipc = known!(out, &host.ipc, "hostNamespaces.ipc");
                let net = if *network {
                    *known!(out, &host.network, "hostNamespaces.network")
                } else {
                    false
                };
                if *pid || *ipc || net {
                    out.violation(format!(
                        "Sharing the host namespace is not allowed: {}",
                        view.pod.name
                    ));
                }
            }
            GkRule::AllowPrivilegeEscalation => {
                let allowed = known!(
                    out,
                    &view.security.allow_privilege_escalation,
                    "security.allowPrivilegeEscalation"
                );
                if *allowed != Some(false) {
                    out.violation(format!(
                        "Privilege escalation container is not allowed: {name}"
                    ));
                }
            }
            GkRule::HostNetworkingPorts { .. } => self.host_networking(view, out, false),
            GkRule::LabelsPresent(keys) => {
                if view.pod.labels_unknown {
                    out.unknown("pod.labels");
                    return;
                }
                let missing: Vec<&String> = keys
                    .iter()
                    .filter(|k| !view.pod.labels.contains_key(k.as_str()))
                    .collect();
                if !missing.is_empty() {
                    out.violation(format!("you must provide labels: {}", rego_set(&missing)));
                }
            }
            GkRule::HostFilesystem(allowed, dialect) => {
                let mounts = known!(out, &view.mounts, "mounts");
                let list = || -> Vec<String> {
                    allowed
                        .iter()
                        .map(|a| {
                            format!(
                                "{{\"pathPrefix\": {:?}, \"readOnly\": {}}}",
                                a.prefix, a.read_only
                            )
                        })
                        .collect()
                };
                let under = |path: &str, prefix: &str| match dialect {
                    Dialect::Library => path.starts_with(prefix),
                    Dialect::Azure => crate::matcher::path_has_prefix(path, prefix),
                };
                for m in mounts {
                    let MountSource::HostPath(path) = &m.source else {
                        continue;
                    };
                    let matching: Vec<&AllowedHostPath> =
                        allowed.iter().filter(|a| under(path, &a.prefix)).collect();
                    let problem = match dialect {
                        Dialect::Library
                            if !matching.iter().any(|a| !a.read_only || m.read_only) =>
                        {
                            Some("is not allowed")
                        }
                        Dialect::Azure if matching.is_empty() => Some("is not allowed"),
                        // Azure: any matching read-only entry asks for a read-only mount.
                        Dialect::Azure if !m.read_only && matching.iter().any(|a| a.read_only) => {
                            Some("does not meet the readonly requirement")
                        }
                        _ => None,
                    };
                    if let Some(problem) = problem {
                        out.violation(format!(
                            "HostPath volume {{\"hostPath\": {{\"path\": {path:?}}}}} {problem}, pod: {}. Allowed path: [{}]",
                            view.pod.name,
                            list().join(", ")
                        ));
                    }
                }
            }
            GkRule::RequiredLabels(required) => {
                if view.pod.labels_unknown {
                    out.unknown("pod.labels");
                    return;
                }
                let labels = &view.pod.labels;
                let missing = required.iter().any(|r| !labels.contains_key(&r.key));
                if missing {
                    let keys: Vec<&str> = required.iter().map(|r| r.key.as_str()).collect();
                    out.violation(format!(
                        "missing required label, requires all of: {}",
                        keys.join(", ")
                    ));
                }
                let mismatch = required
                    .iter()
                    .any(|r| match (labels.get(&r.key), &r.allowed) {
                        (None, _) => true,
                        (Some(v), Some(re)) => !re.is_match(v),
                        (Some(_), None) => false,
                    });
                if mismatch {
                    out.violation("regex mismatch".to_string());
                }
            }
            GkRule::ContainerLimits { cpu, memory } => {
                // Ephemeral containers cannot set resources: the template leaves them be.
                if view.kind == Some(ContainerKind::Ephemeral) {
                    return;
                }
                let resources = known!(out, &view.resources, "resources");
                if resources.cpu_limit.is_none() && resources.memory_limit.is_none() {
                    out.violation(format!("container <{name}> has no resource limits"));
                    return;
                }
                if let Some((written, max)) = cpu {
                    match resources.cpu_limit {
                        None => out.violation(format!("container <{name}> has no cpu limit")),
                        Some(limit) if max.is_some_and(|m| limit > m) => {
                            out.violation(format!(
                                "container <{name}> cpu limit <{limit}> is higher than the maximum allowed of <{written}>"
                            ));
                        }
                        Some(_) => {}
                    }
                }
                match (resources.memory_limit, memory) {
                    (None, _) => out.violation(format!("container <{name}> has no memory limit")),
                    (Some(limit), Some((written, Some(max)))) if limit > *max => {
                        out.violation(format!(
                            "container <{name}> memory limit <{limit}> is higher than the maximum allowed of <{written}>"
                        ));
                    }
                    _ => {}
                }
            }
            GkRule::ContainerRequests { cpu, memory } => {
                pod_security::container_requests(cpu, memory, view, out);
            }
            GkRule::ContainerRatios(rule) => rule.judge(view, out),
            GkRule::RequiredResources { limits, requests } => {
                pod_security::required_resources(limits, requests, view, out);
            }
            GkRule::InteractiveTty => pod_security::interactive(view, out),
            GkRule::Capabilities(rule) => rule.judge(view, out),
            GkRule::DisallowedCapabilities(listed) => {
                pod_security::disallowed_capabilities(listed, view, out);
            }
            GkRule::AllowedUsers(rules) => rules.judge(view, out),
            GkRule::FsGroup(rule) => rule.judge(view, out),
            GkRule::Seccomp(rule, dialect) => rule.judge(view, out, *dialect),
            GkRule::SeccompV2(rule) => rule.judge(view, out),
            GkRule::AppArmor(allowed, dialect) => {
                pod_security::apparmor(allowed, *dialect, view, out);
            }
            GkRule::SeLinux(entries, printed, dialect) => {
                pod_security::selinux(entries, printed, *dialect, view, out);
            }
            GkRule::ProcMount(unmasked) => pod_security::proc_mount(*unmasked, view, out),
            GkRule::Sysctls(rule) => rule.judge(view, out),
            GkRule::VolumeTypes(allowed) => pod_security::volume_types(allowed, view, out),
            GkRule::FlexVolumes(drivers, dialect) => {
                pod_security::flex_volumes(drivers, *dialect, view, out);
            }
            GkRule::AutomountToken => pod_security::automount_token(view, out),
            GkRule::HostProcess => pod_security::host_process(view, out),
            GkRule::HostProbesLifecycle => {
                let handlers = known!(out, &view.handlers, "handlers");
                for (probes, what) in [(true, "probe"), (false, "lifecycle hook")] {
                    if handlers
                        .iter()
                        .any(|h| h.is_probe() == probes && h.host.is_some())
                    {
                        out.violation(format!("Container {name} has {what} with host field set"));
                    }
                }
            }
            GkRule::RequiredProbes {
                probes,
                probe_types,
            } => {
                // Only `spec.containers`: init and ephemeral containers run no probes.
                if view.kind.is_some_and(|k| k != ContainerKind::Regular) {
                    return;
                }
                let handlers = known!(out, &view.handlers, "handlers");
                for probe in probes {
                    let set = handlers.iter().any(|h| {
                        h.point == probe
                            && h.actions.iter().any(|a| probe_types.iter().any(|t| t == a))
                    });
                    if !set {
                        out.violation(format!(
                            "Container <{name}> in your <Pod> <{}> has no <{probe}>",
                            view.pod.name
                        ));
                    }
                }
            }
            GkRule::AzureNoPrivilegeEscalation { force } => {
                let allowed = *known!(
                    out,
                    &view.security.allow_privilege_escalation,
                    "security.allowPrivilegeEscalation"
                );
                // The node sees only whether `noNewPrivileges` is set: escalation not off may be
                // an explicit true or unset, which V3 tells apart for root users.
                let runtime = view.source == ViewSource::Runtime;
                let violated = match allowed {
                    Some(false) => false,
                    Some(true) if !runtime => true,
                    _ if *force => true,
                    // V3: an unset escalation fails only with a non-root user set.
                    _ => {
                        let user = known!(out, &view.security.run_as_user, "security.runAsUser");
                        let non_root = user.effective().is_some_and(|u| *u != 0);
                        if !non_root && allowed.is_some() {
                            out.unknown("security.allowPrivilegeEscalation");
                            return;
                        }
                        non_root
                    }
                };
                if violated {
                    out.violation(format!(
                        "Privilege escalation container is not allowed: {name}"
                    ));
                }
            }
            GkRule::AzureBlockDefault => {
                let ns = view.pod.namespace.as_str();
                if ns.is_empty() || ns == "default" {
                    out.violation(format!(
                        "Usage of the default namespace is not allowed, name: {}, kind: Pod",
                        view.pod.name
                    ));
                }
            }
            GkRule::ReadOnlyRootFilesystem(dialect) => {
                let read_only = known!(
                    out,
                    &view.security.read_only_root_filesystem,
                    "security.readOnlyRootFilesystem"
                );
                if !read_only {
                    out.violation(match dialect {
                        Dialect::Library => format!(
                            "only read-only root filesystem container is allowed: {name}"
                        ),
                        Dialect::Azure => format!(
                            "Readonly root filesystem is required for container. pod:'{}', container:'{name}'",
                            view.pod.name
                        ),
                    });
                }
            }
        }
    }
}

impl GkRule {
    /// K8sPSPHostNetworkingPorts and Azure's HostNetworkingPorts; `ports_exempt`: the
    /// container's host ports are not judged.
    fn host_networking(&self, view: &ContainerView, out: &mut Findings<'_>, ports_exempt: bool) {
        let GkRule::HostNetworkingPorts {
            host_network,
            min,
            max,
            allowed,
            parameters,
            dialect,
        } = self
        else {
            return;
        };
        let pod = &view.pod.name;
        let on_host = known!(out, &view.host_namespaces.network, "hostNamespaces.network");
        // The host network is a pod's fact: decided before its containers' ports are known.
        let shares_network = *on_host && !host_network;
        let outside = if shares_network || ports_exempt {
            false
        } else {
            let ports = known!(out, &view.host_ports, "hostPorts");
            ports.iter().any(|&p| {
                min.is_some_and(|m| i64::from(p) < m)
                    || max.is_some_and(|m| i64::from(p) > m)
                    || allowed
                        .as_ref()
                        .is_some_and(|a| !a.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p)))
            })
        };
        if shares_network || outside {
            out.violation(match dialect {
                Dialect::Library => format!(
                    "The specified hostNetwork and hostPort are not allowed, pod: {pod}. Allowed values: {parameters}"
                ),
                // At RunPodSandbox there is no container yet to name.
                Dialect::Azure if view.name.is_empty() => format!(
                    "The specified hostNetwork and hostPort are not allowed, pod: {pod}. Allowed values: {parameters}"
                ),
                Dialect::Azure => format!(
                    "The specified hostNetwork and hostPort are not allowed, pod: {pod}, container: {}. Allowed values: {parameters}",
                    view.name
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageRef;

    fn with_image(image: &str) -> ContainerView {
        ContainerView {
            name: "app".into(),
            image: Some(ImageRef::parse(image)),
            ..ContainerView::default()
        }
    }

    #[test]
    fn exempt_images_are_exact_or_a_trailing_star_prefix_and_names_exact() {
        let exempt = Exempt::new(
            vec!["nginx:1.27".into(), "registry.corp/tools/*".into()],
            vec!["debug".into()],
        );
        assert!(exempt.covers(&with_image("nginx:1.27")));
        assert!(!exempt.covers(&with_image("nginx:1.28")));
        assert!(
            !exempt.covers(&with_image("docker.io/library/nginx:1.27")),
            "as written"
        );
        assert!(exempt.covers(&with_image("registry.corp/tools/x:1")));
        assert!(Exempt::new(vec!["*".into()], Vec::new()).covers(&with_image("anything")));
        let mut debug = with_image("docker.io/evil/x:1");
        debug.name = "debug".into();
        assert!(exempt.covers(&debug), "by name");
        debug.image = None;
        assert!(exempt.covers(&debug), "by name, image unknown");
        assert!(!exempt.covers(&ContainerView::default()), "unknown image");
    }

    #[test]
    fn digests_are_found_as_loosely_as_the_library_finds_them() {
        assert!(has_digest("nginx@sha256:abc"));
        assert!(has_digest("registry.corp/a/b:1@sha256:0123abcd"));
        assert!(has_digest("a@sha256+b.c:x"));
        assert!(!has_digest("nginx:1.27"));
        assert!(!has_digest("nginx@sha256"));
        assert!(!has_digest("nginx@SHA256:abc"));
        assert!(!has_digest("nginx@:abc"));
    }

    #[test]
    fn arrays_print_as_opa_prints_them() {
        assert_eq!(rego_array(&["a/".into(), "b".into()]), r#"["a/", "b"]"#);
        assert_eq!(rego_array(&[]), "[]");
    }
}
