//! The library's pod-security and resource kinds beyond the first ones (capabilities, users
//! and groups, seccomp, AppArmor, SELinux, `/proc`, sysctls, volumes, FlexVolume drivers,
//! fsGroup, the service account token, HostProcess, TTYs, requests and ratios), and the Azure
//! Policy kinds that share their semantics. Each check reads the view as the node or a
//! manifest gives it; where the node cannot tell what the template asks, it says which field
//! it lacked.

use crate::capabilities::{self, CapabilitySet};
use crate::findings::{Findings, known};
use crate::quantity::{Bytes, Millicores};
use crate::view::{
    AppArmor, Capabilities, ContainerKind, ContainerView, Layered, MountSource, ProcMount, SeLinux,
    Seccomp, ViewSource, VolumeType,
};

use super::common::{Dialect, rego_array, rego_set};

/// Where the service account token is mounted into every container that gets one.
pub(crate) const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A maximum as written in the constraint and as parsed (a text that does not parse is not
/// compared, as the template's parser leaves it undefined).
pub(crate) type Max<T> = Option<(String, Option<T>)>;

/// `container`, `init container` or `ephemeral container`, as the capabilities template's
/// messages say (Azure's always say `container`).
fn capability_prefix(view: &ContainerView, dialect: Dialect) -> &'static str {
    match (dialect, view.kind) {
        (Dialect::Library, Some(ContainerKind::Init)) => "init container",
        (Dialect::Library, Some(ContainerKind::Ephemeral)) => "ephemeral container",
        _ => "container",
    }
}

/// K8sPSPCapabilities (and Azure's AllowedCapabilities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapabilityRule {
    /// `allowedCapabilities` (`None`: absent, nothing may be added).
    pub(crate) allowed: Option<Vec<String>>,
    /// `requiredDropCapabilities`.
    pub(crate) required_drop: Vec<String>,
    /// Library: compared exactly, as the CEL form Gatekeeper runs does; Azure: without case.
    pub(crate) dialect: Dialect,
}

impl CapabilityRule {
    fn same(&self, a: &str, b: &str) -> bool {
        match self.dialect {
            Dialect::Library => a == b,
            Dialect::Azure => a.eq_ignore_ascii_case(b),
        }
    }

    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let caps = known!(out, &view.security.capabilities, "security.capabilities");
        let prefix = capability_prefix(view, self.dialect);
        let name = &view.name;
        let star = self
            .allowed
            .as_ref()
            .is_some_and(|a| a.iter().any(|c| c == "*"));
        let allowed = self.allowed.as_deref().unwrap_or_default();
        let allowed_text = || match &self.allowed {
            Some(list) => rego_array(list),
            None => "NONE".to_string(),
        };
        let drops_all = |drop: &[String]| drop.iter().any(|d| d.eq_ignore_ascii_case("all"));
        let (disallowed_add, missing_drop) = match caps {
            Capabilities::Declared { add, drop } => (
                !star && add.iter().any(|a| !allowed.iter().any(|x| self.same(a, x))),
                !self.required_drop.is_empty()
                    && !drops_all(drop)
                    && self
                        .required_drop
                        .iter()
                        .any(|r| !drop.iter().any(|d| self.same(r, d))),
            ),
            // The node sees what the container holds: "added" is what it holds beyond the
            // runtime's default set, and a required drop is a capability it must not hold
            // unless it is allowed back (`ALL`: nothing but the allowed ones).
            // A privileged container holds every capability whatever it asked for: the node
            // cannot tell what it added.
            Capabilities::Effective(_) if view.security.privileged == Some(true) => {
                out.unknown("security.capabilities");
                return;
            }
            Capabilities::Effective(set) => {
                let allowed_set = if star {
                    CapabilitySet::all()
                } else {
                    CapabilitySet::from_names(allowed.iter().filter(|a| *a != "*"))
                };
                let added = set.difference(capabilities::runtime_default());
                let required = CapabilitySet::from_names(&self.required_drop);
                (
                    !star && !added.difference(&allowed_set).is_empty(),
                    !set.intersection(&required)
                        .difference(&allowed_set)
                        .is_empty(),
                )
            }
        };
        if disallowed_add {
            out.violation(format!(
                "{prefix} <{name}> has a disallowed capability. Allowed capabilities are {}",
                allowed_text()
            ));
        }
        if missing_drop {
            out.violation(format!(
                "{prefix} <{name}> is not dropping all required capabilities. Container must drop all of {} or \"ALL\"",
                rego_array(&self.required_drop),
            ));
        }
    }
}

/// Azure's DisallowedCapabilities: no added capability is listed (`*`: every container).
pub(crate) fn disallowed_capabilities(
    listed: &[String],
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    let caps = known!(out, &view.security.capabilities, "security.capabilities");
    if matches!(caps, Capabilities::Effective(_)) && view.security.privileged == Some(true) {
        out.unknown("security.capabilities");
        return;
    }
    let star = listed.iter().any(|c| c == "*");
    let hit = match caps {
        Capabilities::Declared { add, .. } => add.iter().any(|a| listed.contains(a)),
        Capabilities::Effective(set) => !set
            .difference(capabilities::runtime_default())
            .intersection(&CapabilitySet::from_names(
                listed.iter().filter(|c| *c != "*"),
            ))
            .is_empty(),
    };
    if star || hit {
        out.violation(format!(
            "container <{}> has a disallowed capability. Disallowed capabilities are {}",
            view.name,
            rego_array(listed)
        ));
    }
}

/// One field's rule of K8sPSPAllowedUsers: `{rule, ranges}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdRule {
    /// `rule`: `MustRunAs`, `MustRunAsNonRoot`, `MayRunAs`, `RunAsAny`.
    pub(crate) rule: String,
    /// `ranges` (`None`: absent).
    pub(crate) ranges: Option<Vec<(i64, i64)>>,
    /// The field's parameter as OPA prints it.
    pub(crate) printed: String,
}

impl IdRule {
    fn in_range(&self, id: u32) -> bool {
        self.ranges
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|(min, max)| *min <= i64::from(id) && (*max < 0 || i64::from(id) <= *max))
    }

    /// Whether a user id is accepted.
    fn accepts_user(&self, uid: u32) -> bool {
        match self.rule.as_str() {
            "RunAsAny" => true,
            "MustRunAsNonRoot" => uid != 0,
            "MustRunAs" => self.in_range(uid),
            _ => false,
        }
    }

    /// Whether a group id is accepted; `None` when the template reports nothing (a range rule
    /// without `ranges`: OPA leaves the check undefined).
    fn accepts_group(&self, gid: u32) -> Option<bool> {
        match self.rule.as_str() {
            "RunAsAny" => Some(true),
            _ if self.ranges.is_none() => None,
            "MayRunAs" | "MustRunAs" => Some(self.in_range(gid)),
            _ => Some(false),
        }
    }
}

/// K8sPSPAllowedUsers (and Azure's AllowedUsersGroups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserRules {
    pub(crate) run_as_user: Option<IdRule>,
    pub(crate) run_as_group: Option<IdRule>,
    pub(crate) supplemental_groups: Option<IdRule>,
    pub(crate) fs_group: Option<IdRule>,
}

impl UserRules {
    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let sec = &view.security;
        let name = &view.name;
        if let Some(p) = &self.run_as_user {
            let user = known!(out, &sec.run_as_user, "security.runAsUser");
            match user.effective() {
                Some(&uid) if !p.accepts_user(uid) => out.violation(format!(
                    "Container {name} is attempting to run as disallowed user {uid}. Allowed runAsUser: {}",
                    p.printed
                )),
                Some(_) => {}
                None if p.rule == "MustRunAs" => out.violation(format!(
                    "Container {name} is attempting to run without a required securityContext/runAsUser"
                )),
                None if p.rule == "MustRunAsNonRoot" => {
                    let non_root = known!(out, &sec.run_as_non_root, "security.runAsNonRoot");
                    if non_root.effective() != Some(&true) {
                        out.violation(format!(
                            "Container {name} is attempting to run without a required securityContext/runAsNonRoot or securityContext/runAsUser != 0"
                        ));
                    }
                }
                None => {}
            }
        }
        let required = |out: &mut Findings<'_>, field: &str, p: &IdRule| {
            if p.rule == "MustRunAs" {
                out.violation(format!(
                    "Container {name} is attempting to run without a required securityContext/{field}. Allowed {field}: {}",
                    p.printed
                ));
            }
        };
        // On the node every process has a group and the groups its image and `fsGroup` give
        // it: a group the pod may leave unset (MayRunAs) cannot be told from one it declared.
        let undeclarable = |p: &IdRule| view.source == ViewSource::Runtime && p.rule == "MayRunAs";
        if let Some(p) = &self.run_as_group {
            let group = known!(out, &sec.run_as_group, "security.runAsGroup");
            match group.effective() {
                Some(&gid) if p.accepts_group(gid) == Some(false) && undeclarable(p) => {
                    out.unknown("security.runAsGroup");
                }
                Some(&gid) => {
                    if p.accepts_group(gid) == Some(false) {
                        out.violation(format!(
                            "Container {name} is attempting to run as disallowed group {gid}. Allowed runAsGroup: {}",
                            p.printed
                        ));
                    }
                }
                None => required(out, "runAsGroup", p),
            }
        }
        if let Some(p) = &self.supplemental_groups {
            let groups = known!(out, &sec.supplemental_groups, "security.supplementalGroups");
            let refused = groups.iter().any(|g| p.accepts_group(*g) == Some(false));
            if groups.is_empty() {
                required(out, "supplementalGroups", p);
            } else if refused && undeclarable(p) {
                out.unknown("security.supplementalGroups");
            } else if refused {
                let printed: Vec<String> = groups.iter().map(u32::to_string).collect();
                out.violation(format!(
                    "Container {name} is attempting to run with disallowed supplementalGroups [{}]. Allowed supplementalGroups: {}",
                    printed.join(", "),
                    p.printed
                ));
            }
        }
        if let Some(p) = &self.fs_group {
            match known!(out, &sec.fs_group, "security.fsGroup") {
                Some(gid) => {
                    if p.accepts_group(*gid) == Some(false) {
                        out.violation(format!(
                            "Container {name} is attempting to run as disallowed group {gid}. Allowed fsGroup: {}",
                            p.printed
                        ));
                    }
                }
                None => required(out, "fsGroup", p),
            }
        }
    }
}

/// K8sPSPFSGroup (deprecated in the library for the users kind's `fsGroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsGroupRule {
    /// `rule` (`None`: absent, nothing is checked).
    pub(crate) rule: Option<String>,
    /// `ranges`.
    pub(crate) ranges: Vec<(i64, i64)>,
    /// The constraint's `parameters` as OPA prints them.
    pub(crate) printed: String,
}

impl FsGroupRule {
    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let Some(rule) = &self.rule else {
            return;
        };
        let fs_group = *known!(out, &view.security.fs_group, "security.fsGroup");
        let in_range = |g: u32| {
            self.ranges
                .iter()
                .any(|(min, max)| *min <= i64::from(g) && i64::from(g) <= *max)
        };
        let allowed = match (rule.as_str(), fs_group) {
            ("RunAsAny", _) | ("MayRunAs", None) => true,
            ("MustRunAs" | "MayRunAs", Some(g)) => in_range(g),
            _ => false,
        };
        if !allowed {
            out.violation(format!(
                "The provided pod spec fsGroup is not allowed, pod: {}. Allowed fsGroup: {}",
                view.pod.name, self.printed
            ));
        }
    }
}

/// The seccomp profile of a container as the seccomp templates find it: the profile, and
/// where it was found. `None` when the node cannot tell the profile's kind (a filter in the
/// OCI spec at start on containerd before 2.2.1).
fn seccomp_of(view: &ContainerView, seccomp: &Layered<Seccomp>) -> Option<(Profile, String)> {
    let declared = |s: &Seccomp| match s {
        Seccomp::RuntimeDefault => Some(Profile::RuntimeDefault),
        Seccomp::Localhost(file) => Some(Profile::Localhost(file.clone())),
        Seccomp::Unconfined => Some(Profile::Unconfined),
        Seccomp::Confined => None,
    };
    if let Some(s) = &seccomp.container {
        return declared(s).map(|p| (p, "container securityContext".to_string()));
    }
    if let Some(s) = &seccomp.pod {
        return declared(s).map(|p| (p, "pod securityContext".to_string()));
    }
    // The deprecated annotations, the container's first.
    let container_key = format!(
        "container.seccomp.security.alpha.kubernetes.io/{}",
        view.name
    );
    let annotations = &view.pod.annotations;
    if let Some(value) = annotations.get(&container_key) {
        return Some((
            Profile::Annotation(value.clone()),
            format!("annotation {container_key}"),
        ));
    }
    if let Some(value) = annotations.get("seccomp.security.alpha.kubernetes.io/pod") {
        return Some((
            Profile::Annotation(value.clone()),
            "annotation seccomp.security.alpha.kubernetes.io/pod".to_string(),
        ));
    }
    Some((
        Profile::NotConfigured,
        "no explicit profile found".to_string(),
    ))
}

/// A seccomp profile as the templates name it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Profile {
    RuntimeDefault,
    Localhost(String),
    Unconfined,
    /// A deprecated annotation's value, as written.
    Annotation(String),
    NotConfigured,
}

/// K8sPSPSeccomp, with the semantics of its CEL form (what Gatekeeper runs), and Azure's
/// AllowedSeccomp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeccompRule {
    /// `allowedProfiles` expanded as the template expands it, in its order.
    pub(crate) allowed: Vec<String>,
    /// `*` is allowed: nothing is checked.
    pub(crate) any: bool,
}

impl SeccompRule {
    /// The library's CEL expansion: `Localhost` goes, each allowed file comes as
    /// `localhost/<file>`; `Unconfined` reads `unconfined`; `RuntimeDefault` brings
    /// `runtime/default` and `docker/default`.
    pub(crate) fn library(profiles: &[String], files: &[String]) -> Self {
        let mut allowed: Vec<String> = Vec::new();
        let mut push = |p: String| {
            if !allowed.contains(&p) {
                allowed.push(p);
            }
        };
        for p in profiles.iter().filter(|p| *p != "Localhost") {
            push(if p == "Unconfined" {
                "unconfined".to_string()
            } else {
                p.clone()
            });
        }
        if profiles.iter().any(|p| p == "RuntimeDefault") {
            push("runtime/default".to_string());
            push("docker/default".to_string());
        }
        if profiles.iter().any(|p| p == "Localhost") {
            for f in files {
                push(format!("localhost/{f}"));
            }
        }
        SeccompRule {
            any: profiles.iter().any(|p| p == "*"),
            allowed,
        }
    }

    /// Azure's expansion: every entry, plus the other spelling of each.
    pub(crate) fn azure(profiles: &[String]) -> Self {
        let mut allowed: Vec<String> = profiles.to_vec();
        for p in profiles {
            let extra: &[&str] = match p.as_str() {
                "RuntimeDefault" => &["runtime/default", "docker/default"],
                "Unconfined" => &["unconfined"],
                "runtime/default" | "docker/default" => &["RuntimeDefault"],
                "unconfined" => &["Unconfined"],
                l if l.starts_with("localhost") => &["Localhost"],
                _ => &[],
            };
            for e in extra {
                if !allowed.iter().any(|a| a == e) {
                    allowed.push((*e).to_string());
                }
            }
        }
        allowed.sort();
        SeccompRule {
            any: profiles.iter().any(|p| p == "*"),
            allowed,
        }
    }

    fn allows(&self, profile: &str) -> bool {
        self.allowed.iter().any(|a| a == profile)
            || (profile.starts_with("localhost/")
                && self.allowed.iter().any(|a| a == "localhost/*"))
    }

    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>, dialect: Dialect) {
        if self.any {
            return;
        }
        let seccomp = known!(out, &view.security.seccomp, "security.seccomp");
        let Some((profile, at)) = seccomp_of(view, seccomp) else {
            // A filter whose kind the node cannot tell passes only where any would.
            let default = self.allows("runtime/default") || self.allows("docker/default");
            if !(default && self.allows("localhost/*")) {
                out.unknown("security.seccomp");
            }
            return;
        };
        let default = if self.allows("runtime/default") || !self.allows("docker/default") {
            "runtime/default"
        } else {
            "docker/default"
        };
        let text = match (&profile, dialect) {
            // Azure's template names a securityContext profile by its type.
            (Profile::RuntimeDefault, Dialect::Azure) => "RuntimeDefault".to_string(),
            (Profile::Unconfined, Dialect::Azure) => "Unconfined".to_string(),
            (Profile::RuntimeDefault, Dialect::Library) => default.to_string(),
            (Profile::Localhost(file), _) => format!("localhost/{file}"),
            (Profile::Unconfined, Dialect::Library) => "unconfined".to_string(),
            (Profile::Annotation(value), _) => value.clone(),
            (Profile::NotConfigured, _) => "not configured".to_string(),
        };
        // The node reads a profile the pod did not set as not configured: it cannot tell it
        // from a declared Unconfined, and lets it pass where either would (as the baseline
        // preset does).
        let runtime_unset = view.source == ViewSource::Runtime && profile == Profile::NotConfigured;
        if self.allows(&text) || (runtime_unset && self.allows("unconfined")) {
            return;
        }
        let listed = match dialect {
            Dialect::Library => self.allowed.join(", "),
            Dialect::Azure => rego_set(&self.allowed),
        };
        match (&profile, dialect) {
            (Profile::Localhost(file), Dialect::Azure) => out.violation(format!(
                "Seccomp profile 'Localhost' with file '{file}' is not allowed for container '{}'. Found at: {at}. Allowed profiles: {listed}",
                view.name
            )),
            _ => out.violation(format!(
                "Seccomp profile '{text}' is not allowed for container '{}'. Found at: {at}. Allowed profiles: {listed}",
                view.name
            )),
        }
    }
}

/// K8sPSPSeccompV2, with the semantics of its CEL form: profile types, and Localhost files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeccompV2Rule {
    /// `allowedProfiles`.
    pub(crate) profiles: Vec<String>,
    /// `allowedLocalhostFiles`.
    pub(crate) files: Vec<String>,
}

impl SeccompV2Rule {
    fn listed(&self) -> String {
        let mut items = Vec::new();
        for p in &self.profiles {
            if p == "Localhost" {
                for f in &self.files {
                    items.push(format!(
                        "{{\"type\": \"Localhost\", \"localHostProfile\": {f:?}}}"
                    ));
                }
            } else {
                items.push(format!("{{\"type\": {p:?}}}"));
            }
        }
        items.join(", ")
    }

    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        if self.profiles.iter().any(|p| p == "*") {
            return;
        }
        let seccomp = known!(out, &view.security.seccomp, "security.seccomp");
        let localhost_ok = |file: &str| {
            self.profiles.iter().any(|p| p == "Localhost")
                && self.files.iter().any(|f| f == "*" || f == file)
        };
        let type_ok = |t: &str| self.profiles.iter().any(|p| p == t);
        let (level, at) = match (&seccomp.container, &seccomp.pod) {
            (Some(s), _) => (Some(s), "container securityContext"),
            (None, Some(s)) => (Some(s), "pod securityContext"),
            (None, None) => (None, "no explicit profile found"),
        };
        let name = &view.name;
        let kind = match level {
            Some(Seccomp::RuntimeDefault) => "RuntimeDefault",
            Some(Seccomp::Unconfined) => "Unconfined",
            Some(Seccomp::Localhost(file)) => {
                if !localhost_ok(file) {
                    out.violation(format!(
                        "Seccomp profile 'Localhost' With file '{file}' is not allowed for container '{name}'. Found at: {at}. Allowed profiles: {}",
                        self.listed()
                    ));
                }
                return;
            }
            Some(Seccomp::Confined) => {
                if !(type_ok("RuntimeDefault") && localhost_ok("*")) {
                    out.unknown("security.seccomp");
                }
                return;
            }
            None => "not configured",
        };
        let runtime_unset = view.source == ViewSource::Runtime && level.is_none();
        if type_ok(kind) || (runtime_unset && type_ok("Unconfined")) {
            return;
        }
        out.violation(format!(
            "Seccomp profile '{kind}' is not allowed for container '{name}'. Found at: {at}. Allowed profiles: {}",
            self.listed()
        ));
    }
}

/// An AppArmor profile as the templates name it, in two parts (`localhost/` and its name).
fn apparmor_name(profile: &AppArmor) -> (&'static str, &str) {
    match profile {
        AppArmor::RuntimeDefault => ("runtime/default", ""),
        AppArmor::Unconfined => ("unconfined", ""),
        AppArmor::Localhost(name) => ("localhost/", name),
    }
}

/// K8sPSPAppArmor: the effective profile (the container's field or annotation, else the pod's
/// field, else `runtime/default`) is one of `allowed`, compared exactly. Azure's EnforceAppArmor
/// reads the annotation only, defaulting to `runtime/default`.
pub(crate) fn apparmor(
    allowed: &[String],
    dialect: Dialect,
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    const DEFAULT: (&str, &str) = ("runtime/default", "");
    let in_force = |out: &mut Findings<'_>| -> Option<(&'static str, &str)> {
        let apparmor = view.security.apparmor.as_ref();
        let Some(apparmor) = apparmor else {
            out.unknown("security.apparmor");
            return None;
        };
        Some(apparmor.effective().map_or(DEFAULT, apparmor_name))
    };
    let annotation = || {
        let key = format!("{}{}", crate::pss::APPARMOR_ANNOTATION_PREFIX, view.name);
        view.pod.annotations.get(&key)
    };
    let (head, tail): (&str, &str) = match dialect {
        Dialect::Library => match in_force(out) {
            Some(p) => p,
            None => return,
        },
        Dialect::Azure => match (annotation(), view.source) {
            (Some(value), _) => (value.as_str(), ""),
            // On the node the annotation may be gone (a pod using the field): judge what is
            // in force.
            (None, ViewSource::Runtime) => match in_force(out) {
                Some(p) => p,
                None => return,
            },
            (None, ViewSource::Manifest) => DEFAULT,
        },
    };
    let listed = allowed
        .iter()
        .any(|a| a.strip_prefix(head).is_some_and(|rest| rest == tail));
    if !listed {
        out.violation(format!(
            "AppArmor profile is not allowed, pod: {}, container: {}. Allowed profiles: {}",
            view.pod.name,
            view.name,
            rego_array(allowed)
        ));
    }
}

/// An entry of K8sPSPSELinuxV2's `allowedSELinuxOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeLinuxEntry {
    pub(crate) level: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) user: Option<String>,
}

/// K8sPSPSELinuxV2 (and Azure's SELinux): each declared `seLinuxOptions` agrees with an entry
/// on every field it sets. On the node only the type is judged: the runtime fills in the
/// user, role and level itself.
pub(crate) fn selinux(
    entries: &[SeLinuxEntry],
    printed: &str,
    dialect: Dialect,
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    let options = known!(out, &view.security.selinux, "security.selinux");
    let runtime = view.source == ViewSource::Runtime;
    let agrees = |mine: &Option<String>, theirs: &Option<String>, judged: bool| {
        !judged || mine.is_none() || mine == theirs
    };
    let allowed = |o: &SeLinux| {
        entries.iter().any(|e| {
            agrees(&o.user, &e.user, !runtime)
                && agrees(&o.role, &e.role, !runtime)
                && agrees(&o.kind, &e.kind, true)
                && agrees(&o.level, &e.level, !runtime)
        })
    };
    let pod = &view.pod.name;
    if let Some(o) = &options.pod
        && !allowed(o)
    {
        out.violation(format!(
            "SELinux options is not allowed, pod: {pod}. Allowed options: {printed}"
        ));
    }
    // containerd labels every container `container_t` when the pod declares nothing: on the
    // node that type is not the pod's declaration.
    let runtime_default = runtime
        && options.container.as_ref().and_then(|o| o.kind.as_deref()) == Some("container_t");
    if let Some(o) = &options.container
        && !runtime_default
        && !allowed(o)
    {
        let sep = match dialect {
            Dialect::Library => ":",
            Dialect::Azure => "",
        };
        out.violation(format!(
            "SELinux options is not allowed, pod: {pod}, container{sep} {}. Allowed options: {printed}",
            view.name
        ));
    }
}

/// K8sPSPProcMount: `/proc` unmasked only where `Unmasked` is allowed.
pub(crate) fn proc_mount(unmasked_allowed: bool, view: &ContainerView, out: &mut Findings<'_>) {
    let mount = known!(out, &view.security.proc_mount, "security.procMount");
    if *mount == ProcMount::Unmasked && !unmasked_allowed {
        out.violation(format!(
            "ProcMount type is not allowed, container: {}. Allowed procMount types: default",
            view.name
        ));
    }
}

/// K8sPSPForbiddenSysctls (the CEL form's semantics and message) and Azure's ForbiddenSysctls
/// (the Rego form's: every entry a prefix, a message per sysctl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SysctlRule {
    pub(crate) forbidden: Option<Vec<String>>,
    pub(crate) allowed: Option<Vec<String>>,
    pub(crate) dialect: Dialect,
}

impl SysctlRule {
    fn matches(&self, entry: &str, name: &str) -> bool {
        match self.dialect {
            // The CEL form removes every `*` of an entry ending in one: a prefix.
            Dialect::Library => match entry.strip_suffix('*') {
                Some(_) => {
                    let mut prefix = entry.bytes().filter(|b| *b != b'*');
                    let mut rest = name.bytes();
                    prefix.all(|p| rest.next() == Some(p))
                }
                None => entry == name,
            },
            Dialect::Azure => {
                entry == "*" || entry == name || name.starts_with(entry.trim_matches('*'))
            }
        }
    }

    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let all = known!(out, &view.security.sysctls, "security.sysctls");
        // containerd 2.x sets these two in every sandbox that has its own network, at these
        // values, whatever the pod declares: on the node they are not the pod's.
        let runtime_default = |(name, value): &&(String, String)| {
            view.source == ViewSource::Runtime
                && matches!(
                    (name.as_str(), value.as_str()),
                    ("net.ipv4.ip_unprivileged_port_start", "0")
                        | ("net.ipv4.ping_group_range", "0 2147483647")
                )
        };
        let declared = || all.iter().filter(|s| !runtime_default(s));
        let pod = &view.pod.name;
        let forbidden = self.forbidden.as_deref().unwrap_or_default();
        let is_forbidden = |n: &str| forbidden.iter().any(|e| self.matches(e, n));
        let not_allowed = |n: &str| {
            self.allowed
                .as_ref()
                .is_some_and(|a| !a.iter().any(|e| self.matches(e, n)))
        };
        match self.dialect {
            Dialect::Library => {
                if declared().any(|(n, _)| is_forbidden(n) || not_allowed(n)) {
                    let allowed = match &self.allowed {
                        None => "unspecified".to_string(),
                        Some(a) if a.is_empty() => "empty".to_string(),
                        Some(a) => a.join(", "),
                    };
                    out.violation(format!(
                        "The sysctl is not allowed for pod: {pod}, forbidden: {}, allowed: {allowed}",
                        forbidden.join(", ")
                    ));
                }
            }
            Dialect::Azure => {
                for (n, _) in declared().filter(|(n, _)| is_forbidden(n)) {
                    out.violation(format!(
                        "The sysctl {n} is not allowed, pod: {pod}. Forbidden sysctls: {}",
                        rego_array(forbidden)
                    ));
                }
            }
        }
    }
}

/// K8sPSPVolumeTypes: every volume's type is allowed (`*`: all). On the node the volumes are
/// those the container mounts.
pub(crate) fn volume_types(allowed: &[String], view: &ContainerView, out: &mut Findings<'_>) {
    if allowed.iter().any(|a| a == "*") {
        return;
    }
    let volumes = known!(out, &view.volumes, "volumes");
    let mut reported: Vec<&str> = Vec::new();
    for v in volumes {
        let name = v.kind.name();
        if !allowed.iter().any(|a| a == name) && !reported.contains(&name) {
            reported.push(name);
            out.violation(format!(
                "The volume type {name} is not allowed, pod: {}. Allowed volume types: {}",
                view.pod.name,
                rego_array(allowed)
            ));
        }
    }
}

/// K8sPSPFlexVolumes: every FlexVolume's driver is allowed.
pub(crate) fn flex_volumes(
    drivers: &[String],
    dialect: Dialect,
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    let volumes = known!(out, &view.volumes, "volumes");
    // The library's parameter is `[{driver}]`, Azure's plain names: each message prints its own.
    let listed = || match dialect {
        Dialect::Library => {
            let items: Vec<String> = drivers
                .iter()
                .map(|d| format!("{{\"driver\": {d:?}}}"))
                .collect();
            format!("[{}]", items.join(", "))
        }
        Dialect::Azure => rego_array(drivers),
    };
    for v in volumes.iter().filter(|v| v.kind == VolumeType::FlexVolume) {
        let Some(driver) = &v.driver else {
            // The node sees a FlexVolume's plugin directory, not which driver it names.
            out.unknown("volumes.flexVolume.driver");
            continue;
        };
        if !drivers.contains(driver) {
            out.violation(format!(
                "FlexVolume {{\"flexVolume\": {{\"driver\": {driver:?}}}, \"name\": {:?}}} is not allowed, pod: {}. Allowed drivers: {}",
                v.name,
                view.pod.name,
                listed()
            ));
        }
    }
}

/// K8sPSPAutomountServiceAccountTokenPod: the pod does not automount its token (explicitly
/// true, or unset with the token mounted; on the node, the token's mount).
pub(crate) fn automount_token(view: &ContainerView, out: &mut Findings<'_>) {
    let automount = match view.pod.automount_token {
        Some(Some(value)) => value,
        Some(None) | None => {
            let mounts = known!(out, &view.mounts, "mounts");
            mounts.iter().any(|m| {
                m.destination.trim_end_matches('/') == TOKEN_PATH
                    && !matches!(m.source, MountSource::Runtime)
            })
        }
    };
    if automount {
        out.violation(format!(
            "Automounting service account token is disallowed, pod: {}",
            view.pod.name
        ));
    }
}

/// K8sPSPHostProcess.
pub(crate) fn host_process(view: &ContainerView, out: &mut Findings<'_>) {
    if *known!(out, &view.security.host_process, "security.hostProcess") {
        out.violation(format!(
            "HostProcess container is not allowed: {}, securityContext.windowsOptions.hostProcess: true",
            view.name
        ));
    }
}

/// K8sDisallowInteractiveTTY: neither a TTY nor an open stdin. The node sees the TTY (at
/// start), never stdin.
pub(crate) fn interactive(view: &ContainerView, out: &mut Findings<'_>) {
    let tty = *known!(out, &view.tty, "tty");
    let stdin = if tty {
        false
    } else {
        *known!(out, &view.stdin, "stdin")
    };
    if tty || stdin {
        out.violation(format!(
            "Containers using tty or stdin ({}) are not allowed running image: {}",
            view.name,
            view.image
                .as_ref()
                .map_or("<unknown image>", |i| i.as_written())
        ));
    }
}

/// K8sContainerRequests: requests set, and not above the maxima.
pub(crate) fn container_requests(
    cpu: &Max<Millicores>,
    memory: &Max<Bytes>,
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    if view.kind == Some(ContainerKind::Ephemeral) {
        return;
    }
    let res = known!(out, &view.resources, "resources");
    let name = &view.name;
    let no_memory = res.memory_request_known && res.memory_request.is_none();
    if res.cpu_request.is_none() && no_memory {
        out.violation(format!("container <{name}> has no resource requests"));
        return;
    }
    request(out, name, "cpu", res.cpu_request, cpu);
    if !res.memory_request_known {
        out.unknown("resources.memoryRequest");
        return;
    }
    request(out, name, "memory", res.memory_request, memory);
}

/// One resource's request: set, and not above its maximum.
fn request<T: PartialOrd + std::fmt::Display>(
    out: &mut Findings<'_>,
    name: &str,
    resource: &str,
    value: Option<T>,
    max: &Max<T>,
) {
    match value {
        None => out.violation(format!("container <{name}> has no {resource} request")),
        Some(req) => {
            if let Some((written, Some(max))) = max
                && req > *max
            {
                out.violation(format!(
                    "container <{name}> {resource} request <{req}> is higher than the maximum allowed of <{written}>"
                ));
            }
        }
    }
}

/// K8sContainerRatios: limits and requests set, limit ÷ request not above `ratio` (CPU:
/// `cpuRatio`, which counts only with `ratio`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatioRule {
    /// `ratio` as written and as a number.
    pub(crate) ratio: Option<(String, f64)>,
    /// `cpuRatio` as written and as a number.
    pub(crate) cpu_ratio: Option<(String, f64)>,
}

impl Eq for RatioRule {}

impl RatioRule {
    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        if view.kind == Some(ContainerKind::Ephemeral) {
            return;
        }
        let res = known!(out, &view.resources, "resources");
        let name = &view.name;
        if res.cpu_limit.is_none() && res.memory_limit.is_none() {
            out.violation(format!("container <{name}> has no resource limits"));
        } else {
            if res.cpu_limit.is_none() {
                out.violation(format!("container <{name}> has no cpu limit"));
            }
            if res.memory_limit.is_none() {
                out.violation(format!("container <{name}> has no memory limit"));
            }
        }
        let no_memory_request = res.memory_request_known && res.memory_request.is_none();
        if res.cpu_request.is_none() && no_memory_request {
            out.violation(format!("container <{name}> has no resource requests"));
        } else {
            if res.cpu_request.is_none() {
                out.violation(format!("container <{name}> has no cpu request"));
            }
            if no_memory_request {
                out.violation(format!("container <{name}> has no memory request"));
            }
        }
        let Some((ratio_text, ratio)) = &self.ratio else {
            return;
        };
        let (cpu_text, cpu_ratio) = self
            .cpu_ratio
            .as_ref()
            .map_or((ratio_text, *ratio), |(t, r)| (t, *r));
        if let (Some(limit), Some(request)) = (res.cpu_limit, res.cpu_request) {
            #[allow(clippy::cast_precision_loss)]
            if limit.0 as f64 > cpu_ratio * request.0 as f64 {
                out.violation(format!(
                    "container <{name}> cpu limit <{limit}> is higher than the maximum allowed ratio of <{cpu_text}>"
                ));
            }
        }
        if !res.memory_request_known {
            out.unknown("resources.memoryRequest");
            return;
        }
        if let (Some(limit), Some(request)) = (res.memory_limit, res.memory_request) {
            #[allow(clippy::cast_precision_loss)]
            if limit.0 as f64 > ratio * request.0 as f64 {
                out.violation(format!(
                    "container <{name}> memory limit <{limit}> is higher than the maximum allowed ratio of <{ratio_text}>"
                ));
            }
        }
    }
}

/// K8sRequiredResources: the listed limits and requests are set.
pub(crate) fn required_resources(
    limits: &[String],
    requests: &[String],
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    if view.kind == Some(ContainerKind::Ephemeral) {
        return;
    }
    let res = known!(out, &view.resources, "resources");
    let name = &view.name;
    // Each listed resource that is absent (a memory request unknown on the node), as an OPA
    // set prints.
    let mut report = |names: &[String], what: &str, absent: &dyn Fn(&str) -> Option<bool>| {
        let mut missing: Vec<&str> = Vec::new();
        for n in names {
            match absent(n) {
                None => out.unknown("resources.memoryRequest"),
                Some(true) => missing.push(n),
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            out.violation(format!(
                "container <{name}> does not have <{}> {what} defined",
                rego_set(&missing)
            ));
        }
    };
    report(limits, "limits", &|n| match n {
        "cpu" => Some(res.cpu_limit.is_none()),
        "memory" => Some(res.memory_limit.is_none()),
        _ => Some(false),
    });
    report(requests, "requests", &|n| match n {
        "cpu" => Some(res.cpu_request.is_none()),
        "memory" if !res.memory_request_known => None,
        "memory" => Some(res.memory_request.is_none()),
        _ => Some(false),
    });
}
