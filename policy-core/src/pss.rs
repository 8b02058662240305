//! The Kubernetes Pod Security Standards, by policy version, as checks on one container.
//!
//! Each control follows the published standard
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>): a manifest is
//! judged on what it declares, at pod and container level, exactly as Pod Security Admission
//! judges it; a runtime view is judged on the effective settings the node sees. See
//! `docs/pss-rules.md` for the rules and `docs/policy.md` for how each maps to a node-side
//! observation.
//!
//! Like Pod Security Admission's `enforce-version`, a [`PssVersion`] picks the standard of one
//! Kubernetes release: a control the release did not have is not run
//! ([`Control::of_level_at`]), and a control that changed is judged as that release judged it
//! (the safe sysctls, the SELinux types, the Windows exemptions, the relaxations for a pod
//! with its own user namespace).

use std::fmt;
use std::str::FromStr;

use crate::capabilities::{self, CapabilitySet};
use crate::document::PssLevel;
use crate::findings::{
    Findings, describe_apparmor, describe_seccomp, judge_run_as_non_root, known,
};
use crate::view::{AppArmor, Capabilities, ContainerView, ProcMount, Seccomp, VolumeType};

/// One control of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Control {
    /// Baseline: Windows HostProcess containers are forbidden.
    HostProcess,
    /// Baseline: host PID, IPC and network namespaces are forbidden.
    HostNamespaces,
    /// Baseline: privileged containers are forbidden.
    Privileged,
    /// Baseline: only a fixed set of capabilities may be added.
    CapabilitiesBaseline,
    /// Baseline: hostPath volumes are forbidden.
    HostPathVolumes,
    /// Baseline: host ports are forbidden.
    HostPorts,
    /// Baseline: probes and lifecycle handlers may not target other hosts.
    ProbeHosts,
    /// Baseline: AppArmor may not be disabled.
    AppArmor,
    /// Baseline: SELinux type must be a container type; user and role may not be set.
    SeLinux,
    /// Baseline: `/proc` must be masked (unless the pod has its own user namespace).
    ProcMount,
    /// Restricted: `/proc` must be masked, user namespace or not.
    ProcMountRestricted,
    /// Baseline: seccomp may not be disabled.
    SeccompBaseline,
    /// Baseline: only safe sysctls.
    Sysctls,
    /// Restricted: only a fixed set of volume types.
    VolumeTypes,
    /// Restricted: privilege escalation must be disallowed.
    PrivilegeEscalation,
    /// Restricted: containers must run as non-root.
    RunAsNonRoot,
    /// Restricted: the user id may not be 0.
    RunAsUser,
    /// Restricted: a seccomp profile must be set.
    SeccompRestricted,
    /// Restricted: drop ALL capabilities, add only NET_BIND_SERVICE.
    CapabilitiesRestricted,
}

/// A version of the Pod Security Standards, as Pod Security Admission takes it
/// (`pod-security.kubernetes.io/enforce-version`): `latest`, or the `v1.<minor>` of a
/// Kubernetes release.
///
/// A version newer than [`PssVersion::NEWEST`] is judged as the newest, as Pod Security
/// Admission judges a version newer than it knows; versions before [`PssVersion::OLDEST`] are
/// refused (their seccomp control read the alpha annotations, which nodeguard does not).
///
/// ```
/// use policy_core::pss::PssVersion;
/// let v: PssVersion = "v1.35".parse().unwrap();
/// assert_eq!(v.minor(), 35);
/// assert_eq!("latest".parse::<PssVersion>().unwrap().minor(), PssVersion::NEWEST);
/// assert_eq!("v1.99".parse::<PssVersion>().unwrap().minor(), PssVersion::NEWEST);
/// assert_eq!(
///     "1.35".parse::<PssVersion>().unwrap_err().to_string(),
///     r#""1.35" is not a Kubernetes version; write v1.35 or latest"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PssVersion {
    /// The newest version nodeguard knows ([`PssVersion::NEWEST`]).
    #[default]
    Latest,
    /// `v1.<minor>`, as written (parsing refuses one before [`PssVersion::OLDEST`]; built
    /// directly, it is judged as the oldest).
    V1(u32),
}

/// Why a text is not a [`PssVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not `latest` nor `v1.<minor>`.
    #[error("{written} is not a Kubernetes version; write {}", suggestion(*.minor))]
    Malformed {
        /// What was written, quoted if it was text.
        written: String,
        /// The minor version it seems to mean, for the suggestion.
        minor: Option<u32>,
    },
    /// A version before [`PssVersion::OLDEST`].
    #[error(
        "v1.{minor} is older than nodeguard judges; write v1.{oldest} or later, or latest (before \
         v1.{oldest} the seccomp control read the alpha annotations, which nodeguard does not)",
        oldest = PssVersion::OLDEST
    )]
    TooOld {
        /// The minor version written.
        minor: u32,
    },
}

/// What to write instead of a malformed version that seems to mean v1.`minor`.
fn suggestion(minor: Option<u32>) -> String {
    match minor {
        Some(minor) if minor >= PssVersion::OLDEST => format!("v1.{minor} or latest"),
        _ => format!("v1.<minor> (such as v1.{}) or latest", PssVersion::NEWEST),
    }
}

impl PssVersion {
    /// The oldest version nodeguard judges: v1.19.
    pub const OLDEST: u32 = 19;
    /// The newest version nodeguard knows, what `latest` means: v1.37.
    pub const NEWEST: u32 = 37;

    /// The minor version judged: [`PssVersion::NEWEST`] for `latest` and for any newer version
    /// (and [`PssVersion::OLDEST`] for an older one).
    pub fn minor(self) -> u32 {
        match self {
            PssVersion::Latest => Self::NEWEST,
            PssVersion::V1(minor) => minor.clamp(Self::OLDEST, Self::NEWEST),
        }
    }

    /// Whether the version judged is v1.`minor` or newer.
    pub fn at_least(self, minor: u32) -> bool {
        self.minor() >= minor
    }

    /// The version `text` names, or why it names none.
    fn read(text: &str) -> Result<PssVersion, VersionError> {
        if text == "latest" {
            return Ok(PssVersion::Latest);
        }
        // Exactly `v1.` and a minor without leading zeros, as Pod Security Admission reads it.
        let minor = text.strip_prefix("v1.").filter(|m| {
            !m.is_empty()
                && m.bytes().all(|b| b.is_ascii_digit())
                && (m.len() == 1 || !m.starts_with('0'))
        });
        match minor.and_then(|m| m.parse::<u32>().ok()) {
            Some(minor) if minor < Self::OLDEST => Err(VersionError::TooOld { minor }),
            Some(minor) => Ok(PssVersion::V1(minor)),
            None => Err(VersionError::Malformed {
                written: format!("{text:?}"),
                minor: meant_minor(text),
            }),
        }
    }
}

/// The minor version a malformed `text` seems to mean (`1.35`, `V1.35`, `v1.35.2`, `v1.035`):
/// `1`, a dot, then digits, after an optional `v`.
pub(crate) fn meant_minor(text: &str) -> Option<u32> {
    let rest = text.trim();
    let rest = rest.strip_prefix(['v', 'V']).unwrap_or(rest);
    let mut parts = rest.split('.');
    if parts.next() != Some("1") {
        return None;
    }
    let minor = parts
        .next()
        .filter(|m| m.bytes().all(|b| b.is_ascii_digit()))?;
    if parts.clone().count() > 1 || !parts.all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    minor.parse().ok()
}

impl FromStr for PssVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<PssVersion, VersionError> {
        PssVersion::read(text)
    }
}

impl fmt::Display for PssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PssVersion::Latest => f.write_str("latest"),
            PssVersion::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// Capabilities the baseline level allows to add.
pub const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// [`BASELINE_CAPABILITIES`] as a set, built once.
fn baseline_capabilities() -> &'static CapabilitySet {
    static SET: std::sync::LazyLock<CapabilitySet> =
        std::sync::LazyLock::new(|| CapabilitySet::from_names(BASELINE_CAPABILITIES));
    &SET
}

/// The one capability the restricted level lets a container keep, as a set, built once.
fn net_bind_service() -> &'static CapabilitySet {
    static SET: std::sync::LazyLock<CapabilitySet> =
        std::sync::LazyLock::new(|| CapabilitySet::from_names(["NET_BIND_SERVICE"]));
    &SET
}

/// Sysctls the baseline level allows, each with the minor version (v1.x) that first allowed it.
pub const SAFE_SYSCTLS: [(&str, u32); 14] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

/// Whether the baseline level of `version` allows the sysctl `name`.
pub fn safe_sysctl(name: &str, version: PssVersion) -> bool {
    SAFE_SYSCTLS
        .iter()
        .any(|(safe, since)| *safe == name && version.at_least(*since))
}

/// Prefix of the deprecated per-container AppArmor annotations.
pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// SELinux types the baseline level allows (`container_engine_t` from v1.31).
pub const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The SELinux types the baseline level of `version` allows.
pub fn selinux_types(version: PssVersion) -> &'static [&'static str] {
    if version.at_least(31) {
        &SELINUX_TYPES
    } else {
        &SELINUX_TYPES[..3]
    }
}

/// Volume types the restricted level allows.
pub const RESTRICTED_VOLUME_TYPES: [VolumeType; 9] = [
    VolumeType::ConfigMap,
    VolumeType::Image,
    VolumeType::Csi,
    VolumeType::DownwardApi,
    VolumeType::EmptyDir,
    VolumeType::Ephemeral,
    VolumeType::PersistentVolumeClaim,
    VolumeType::Projected,
    VolumeType::Secret,
];

impl Control {
    /// Every control, baseline first.
    pub const ALL: [Control; 19] = [
        Control::HostProcess,
        Control::HostNamespaces,
        Control::Privileged,
        Control::CapabilitiesBaseline,
        Control::HostPathVolumes,
        Control::HostPorts,
        Control::ProbeHosts,
        Control::AppArmor,
        Control::SeLinux,
        Control::ProcMount,
        Control::SeccompBaseline,
        Control::Sysctls,
        Control::VolumeTypes,
        Control::PrivilegeEscalation,
        Control::RunAsNonRoot,
        Control::RunAsUser,
        Control::SeccompRestricted,
        Control::CapabilitiesRestricted,
        Control::ProcMountRestricted,
    ];

    /// The level that introduces the control.
    pub fn level(self) -> PssLevel {
        match self {
            Control::VolumeTypes
            | Control::PrivilegeEscalation
            | Control::RunAsNonRoot
            | Control::RunAsUser
            | Control::SeccompRestricted
            | Control::CapabilitiesRestricted
            | Control::ProcMountRestricted => PssLevel::Restricted,
            _ => PssLevel::Baseline,
        }
    }

    /// The name used in exemptions (`capabilities` and `seccomp` name both levels' controls).
    pub fn name(self) -> &'static str {
        match self {
            Control::HostProcess => "hostProcess",
            Control::HostNamespaces => "hostNamespaces",
            Control::Privileged => "privileged",
            Control::CapabilitiesBaseline | Control::CapabilitiesRestricted => "capabilities",
            Control::HostPathVolumes => "hostPathVolumes",
            Control::HostPorts => "hostPorts",
            Control::ProbeHosts => "probeHosts",
            Control::AppArmor => "appArmor",
            Control::SeLinux => "seLinux",
            Control::ProcMount | Control::ProcMountRestricted => "procMount",
            Control::SeccompBaseline | Control::SeccompRestricted => "seccomp",
            Control::Sysctls => "sysctls",
            Control::VolumeTypes => "volumeTypes",
            Control::PrivilegeEscalation => "privilegeEscalation",
            Control::RunAsNonRoot => "runAsNonRoot",
            Control::RunAsUser => "runAsUser",
        }
    }

    /// The rule id reported in violations: `pss.<level>.<name>`.
    pub fn id(self) -> &'static str {
        match self {
            Control::HostProcess => "pss.baseline.hostProcess",
            Control::HostNamespaces => "pss.baseline.hostNamespaces",
            Control::Privileged => "pss.baseline.privileged",
            Control::CapabilitiesBaseline => "pss.baseline.capabilities",
            Control::HostPathVolumes => "pss.baseline.hostPathVolumes",
            Control::HostPorts => "pss.baseline.hostPorts",
            Control::ProbeHosts => "pss.baseline.probeHosts",
            Control::AppArmor => "pss.baseline.appArmor",
            Control::SeLinux => "pss.baseline.seLinux",
            Control::ProcMount => "pss.baseline.procMount",
            Control::ProcMountRestricted => "pss.restricted.procMount",
            Control::SeccompBaseline => "pss.baseline.seccomp",
            Control::Sysctls => "pss.baseline.sysctls",
            Control::VolumeTypes => "pss.restricted.volumeTypes",
            Control::PrivilegeEscalation => "pss.restricted.privilegeEscalation",
            Control::RunAsNonRoot => "pss.restricted.runAsNonRoot",
            Control::RunAsUser => "pss.restricted.runAsUser",
            Control::SeccompRestricted => "pss.restricted.seccomp",
            Control::CapabilitiesRestricted => "pss.restricted.capabilities",
        }
    }

    /// The baseline control a restricted one replaces, if any (the restricted check is
    /// strictly stronger, so the level runs only the restricted one).
    pub fn replaces(self) -> Option<Control> {
        match self {
            Control::CapabilitiesRestricted => Some(Control::CapabilitiesBaseline),
            Control::VolumeTypes => Some(Control::HostPathVolumes),
            Control::SeccompRestricted => Some(Control::SeccompBaseline),
            Control::ProcMountRestricted => Some(Control::ProcMount),
            _ => None,
        }
    }

    /// The first version (v1.x) that has the control: Pod Security Admission's
    /// `MinimumVersion` of its first check.
    pub fn since(self) -> u32 {
        match self {
            Control::PrivilegeEscalation => 8,
            Control::SeccompRestricted => 19,
            Control::CapabilitiesRestricted => 22,
            Control::RunAsUser => 23,
            Control::ProbeHosts => 34,
            Control::ProcMountRestricted => 35,
            _ => 0,
        }
    }

    /// Whether the standard of `version` has the control.
    pub fn exists_at(self, version: PssVersion) -> bool {
        version.at_least(self.since())
    }

    /// The controls a level enforces at the latest version.
    pub fn of_level(level: PssLevel) -> impl Iterator<Item = Control> {
        Control::of_level_at(level, PssVersion::Latest)
    }

    /// The controls a level enforces at `version`: those the version has, and at restricted,
    /// the baseline ones no restricted control of that version replaces (before v1.22 the
    /// baseline capabilities control runs at restricted, before v1.35 the baseline procMount).
    pub fn of_level_at(level: PssLevel, version: PssVersion) -> impl Iterator<Item = Control> {
        Control::ALL.into_iter().filter(move |c| {
            c.exists_at(version)
                && match level {
                    PssLevel::Baseline => c.level() == PssLevel::Baseline,
                    PssLevel::Restricted => !Control::ALL
                        .iter()
                        .any(|r| r.exists_at(version) && r.replaces() == Some(*c)),
                }
        })
    }

    /// Whether a name used in exemptions is known.
    pub fn is_known_name(name: &str) -> bool {
        Control::ALL.iter().any(|c| c.name() == name)
    }
}

/// Whether the standard of `version` relaxes a control for a pod with its own user namespace
/// (`hostUsers: false`), judged on what `view` tells of it: `Some(true)` relaxed, `Some(false)`
/// not, `None` when the version relaxes but whether the pod has a user namespace is unknown.
/// Before v1.35 no control is relaxed (the relaxation sat behind an alpha feature gate, off by
/// default, and v1.35 dropped it from the older versions).
fn user_namespace_relaxes(version: PssVersion, view: &ContainerView) -> Option<bool> {
    if !version.at_least(35) {
        return Some(false);
    }
    view.security.host_users.map(|host| !host)
}

/// Judges one control as the standard of `version` has it.
#[allow(clippy::too_many_lines)]
pub(crate) fn judge(
    control: Control,
    version: PssVersion,
    view: &ContainerView,
    out: &mut Findings<'_>,
) {
    let sec = &view.security;
    // Windows pods are exempt from the Linux-only restricted controls (from v1.25).
    if version.at_least(25)
        && view.pod.is_windows()
        && matches!(
            control,
            Control::PrivilegeEscalation
                | Control::SeccompRestricted
                | Control::CapabilitiesRestricted
        )
    {
        return;
    }
    match control {
        Control::HostProcess => {
            if *known!(
                out,
                &sec.host_process,
                "security.windowsOptions.hostProcess"
            ) {
                out.violation("pod uses Windows hostProcess containers".to_string());
            }
        }
        Control::HostNamespaces => {
            let ns = &view.host_namespaces;
            let mut shared = Vec::new();
            let mut unknown = false;
            for (value, field) in [
                (ns.network, "hostNetwork"),
                (ns.pid, "hostPID"),
                (ns.ipc, "hostIPC"),
            ] {
                match value {
                    Some(true) => shared.push(field),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            // A namespace known to be shared is a violation whatever the others are.
            if !shared.is_empty() {
                out.violation(format!(
                    "pod shares host namespaces ({}=true)",
                    shared.join("=true, ")
                ));
            } else if unknown {
                out.unknown("hostNamespaces");
            }
        }
        Control::Privileged => {
            if *known!(out, &sec.privileged, "security.privileged") {
                out.violation("container is privileged".to_string());
            }
        }
        Control::CapabilitiesBaseline => {
            let caps = known!(out, &sec.capabilities, "security.capabilities");
            let extra: Vec<String> = match caps {
                Capabilities::Declared { add, .. } => add
                    .iter()
                    .filter(|c| !BASELINE_CAPABILITIES.contains(&c.as_str()))
                    .cloned()
                    .collect(),
                Capabilities::Effective(set) => set
                    .difference(capabilities::runtime_default())
                    .difference(baseline_capabilities())
                    .names()
                    .map(str::to_string)
                    .collect(),
            };
            if !extra.is_empty() {
                out.violation(format!(
                    "container adds capabilities beyond the baseline set: {}",
                    extra.join(", ")
                ));
            }
        }
        Control::HostPathVolumes => {
            let volumes = known!(out, &view.volumes, "volumes");
            let host: Vec<&str> = volumes
                .iter()
                .filter(|v| v.kind == VolumeType::HostPath)
                .map(|v| v.host_path.as_deref().unwrap_or(v.name.as_str()))
                .collect();
            if !host.is_empty() {
                out.violation(format!("pod uses hostPath volumes ({})", host.join(", ")));
            }
        }
        Control::HostPorts => {
            let ports = known!(out, &view.host_ports, "hostPorts");
            let used: Vec<String> = ports
                .iter()
                .filter(|p| **p != 0)
                .map(u16::to_string)
                .collect();
            if !used.is_empty() {
                out.violation(format!("container uses host ports ({})", used.join(", ")));
            }
        }
        Control::ProbeHosts => {
            let hosts = known!(out, &view.probe_hosts, "probeHosts");
            let bad: Vec<&str> = hosts
                .iter()
                .map(String::as_str)
                .filter(|h| !h.is_empty())
                .collect();
            if !bad.is_empty() {
                out.violation(format!(
                    "probes or lifecycle handlers target other hosts ({})",
                    bad.join(", ")
                ));
            }
        }
        Control::AppArmor => {
            let profile = known!(out, &sec.apparmor, "security.appArmor");
            let mut bad: Vec<String> = profile
                .declared()
                .filter(|(_, value)| **value == AppArmor::Unconfined)
                .map(|(level, value)| {
                    format!("{} profile {}", level.describe(), describe_apparmor(value))
                })
                .collect();
            for (key, value) in &view.pod.annotations {
                if key.starts_with(APPARMOR_ANNOTATION_PREFIX)
                    && !(value.is_empty()
                        || value == "runtime/default"
                        || value.starts_with("localhost/"))
                {
                    bad.push(format!("annotation {key}={value}"));
                }
            }
            if !bad.is_empty() {
                out.violation(format!(
                    "AppArmor is disabled or invalid ({})",
                    bad.join(", ")
                ));
            }
        }
        Control::SeLinux => {
            let options = known!(out, &sec.selinux, "security.seLinuxOptions");
            let allowed = selinux_types(version);
            for (level, value) in options.declared() {
                if let Some(kind) = &value.kind
                    && !kind.is_empty()
                    && !allowed.contains(&kind.as_str())
                {
                    out.violation(format!(
                        "{} SELinux type {kind:?} is not allowed (allowed: {})",
                        level.describe(),
                        allowed.join(", ")
                    ));
                }
                if value.user.as_deref().is_some_and(|u| !u.is_empty()) {
                    out.violation(format!("{} SELinux user may not be set", level.describe()));
                }
                if value.role.as_deref().is_some_and(|r| !r.is_empty()) {
                    out.violation(format!("{} SELinux role may not be set", level.describe()));
                }
            }
        }
        Control::ProcMount | Control::ProcMountRestricted => {
            let proc_mount = *known!(out, &sec.proc_mount, "security.procMount");
            if proc_mount == ProcMount::Unmasked {
                // With its own user namespace, an unmasked /proc exposes nothing of the host's
                // (baseline from v1.35 only; restricted forbids it regardless).
                if control == Control::ProcMount {
                    match user_namespace_relaxes(version, view) {
                        Some(true) => return,
                        Some(false) => {}
                        None => {
                            out.unknown("security.hostUsers");
                            return;
                        }
                    }
                }
                out.violation("container uses procMount: Unmasked".to_string());
            }
        }
        Control::SeccompBaseline => {
            let profile = known!(out, &sec.seccomp, "security.seccomp");
            for (level, value) in profile.declared() {
                if *value == Seccomp::Unconfined {
                    out.violation(format!(
                        "{} seccomp profile is Unconfined",
                        level.describe()
                    ));
                }
            }
        }
        Control::Sysctls => {
            let sysctls = known!(out, &sec.sysctls, "security.sysctls");
            let bad: Vec<&str> = sysctls
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !safe_sysctl(n, version))
                .collect();
            if !bad.is_empty() {
                out.violation(format!("pod sets unsafe sysctls ({})", bad.join(", ")));
            }
        }
        Control::VolumeTypes => {
            let volumes = known!(out, &view.volumes, "volumes");
            let bad: Vec<String> = volumes
                .iter()
                .filter(|v| !RESTRICTED_VOLUME_TYPES.contains(&v.kind))
                .map(|v| format!("{:?} ({})", v.name, v.kind.name()))
                .collect();
            if !bad.is_empty() {
                out.violation(format!(
                    "pod uses volume types the restricted level forbids: {}",
                    bad.join(", ")
                ));
            }
        }
        Control::PrivilegeEscalation => {
            match known!(
                out,
                &sec.allow_privilege_escalation,
                "security.allowPrivilegeEscalation"
            ) {
                Some(false) => {}
                _ => out.violation(
                    "container must set securityContext.allowPrivilegeEscalation=false".to_string(),
                ),
            }
        }
        Control::RunAsNonRoot | Control::RunAsUser => {
            // A pod with its own user namespace passes both from v1.35: its root is not the
            // host's.
            match user_namespace_relaxes(version, view) {
                Some(true) => return,
                Some(false) => {}
                None => {
                    out.unknown("security.hostUsers");
                    return;
                }
            }
            if control == Control::RunAsNonRoot {
                // Pod Security Admission judges the declared runAsNonRoot only; a user id
                // of 0 is the runAsUser control's to report.
                judge_run_as_non_root(view, out, false);
                return;
            }
            let user = known!(out, &sec.run_as_user, "security.runAsUser");
            for (level, uid) in user.declared() {
                if *uid == 0 {
                    out.violation(format!("{} runAsUser is 0 (root)", level.describe()));
                }
            }
        }
        Control::SeccompRestricted => {
            let profile = known!(out, &sec.seccomp, "security.seccomp");
            for (level, value) in profile.declared() {
                if matches!(value, Seccomp::Unconfined) {
                    out.violation(format!(
                        "{} seccomp profile is {}; it must be RuntimeDefault or Localhost",
                        level.describe(),
                        describe_seccomp(value)
                    ));
                }
            }
            if profile.effective().is_none() {
                out.violation(
                    "no seccomp profile is set; securityContext.seccompProfile.type must be RuntimeDefault or Localhost"
                        .to_string(),
                );
            }
        }
        Control::CapabilitiesRestricted => {
            let caps = known!(out, &sec.capabilities, "security.capabilities");
            match caps {
                Capabilities::Declared { add, drop } => {
                    if !drop.iter().any(|d| d == "ALL") {
                        out.violation(
                            "container must drop ALL capabilities (securityContext.capabilities.drop: [ALL])"
                                .to_string(),
                        );
                    }
                    let extra: Vec<&str> = add
                        .iter()
                        .map(String::as_str)
                        .filter(|c| *c != "NET_BIND_SERVICE")
                        .collect();
                    if !extra.is_empty() {
                        out.violation(format!(
                            "container adds capabilities other than NET_BIND_SERVICE: {}",
                            extra.join(", ")
                        ));
                    }
                }
                Capabilities::Effective(set) => {
                    let extra = set.difference(net_bind_service());
                    if !extra.is_empty() {
                        out.violation(format!(
                            "container keeps capabilities other than NET_BIND_SERVICE: {extra}"
                        ));
                    }
                }
            }
        }
    }
}
