//! Linux capabilities as a bit set, and the runtime's default set.

use std::fmt;

/// Capability names in kernel bit order (`CAP_` prefix omitted, as Kubernetes writes them).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities. Names outside [`NAMES`] are kept aside so nothing is silently lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CapabilitySet {
    bits: u64,
    unknown: Vec<String>,
}

/// Whether a capability name means "all of them" (`ALL`, any case, `CAP_` prefix or not),
/// without allocating.
pub fn is_all(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("ALL") || name.eq_ignore_ascii_case("CAP_ALL")
}

/// Normalizes a capability name: upper case, without the `CAP_` prefix.
pub fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}

/// The bit of a capability written in any case, with or without `CAP_`.
fn bit_ignoring_case(name: &str) -> Option<u64> {
    let name = name.trim();
    let name = match name.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("CAP_") => &name[4..],
        _ => name,
    };
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| 1u64 << i)
}

fn bit(name: &str) -> Option<u64> {
    NAMES.iter().position(|n| *n == name).map(|i| 1u64 << i)
}

impl CapabilitySet {
    /// The empty set.
    pub const EMPTY: CapabilitySet = CapabilitySet {
        bits: 0,
        unknown: Vec::new(),
    };

    /// The set of every capability the kernel defines.
    pub fn all() -> Self {
        CapabilitySet {
            bits: (1u64 << NAMES.len()) - 1,
            unknown: Vec::new(),
        }
    }

    /// Builds a set from names such as `NET_ADMIN` or `CAP_NET_ADMIN` (any case).
    /// `ALL` stands for every capability.
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut set = CapabilitySet::default();
        for name in names {
            set.insert(name.as_ref());
        }
        set
    }

    /// Adds one capability by name (`ALL` adds every one). Known names are matched without
    /// allocating; only an unknown name is copied.
    pub fn insert(&mut self, name: &str) {
        if is_all(name) {
            self.bits |= Self::all().bits;
        } else if let Some(b) = bit_ignoring_case(name) {
            self.bits |= b;
        } else {
            let name = normalize(name);
            if !self.unknown.contains(&name) {
                self.unknown.push(name);
            }
        }
    }

    /// Whether the set holds the capability.
    pub fn contains(&self, name: &str) -> bool {
        let name = normalize(name);
        bit(&name).map_or_else(|| self.unknown.contains(&name), |b| self.bits & b != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits == 0 && self.unknown.is_empty()
    }

    /// Capabilities in `self` that are not in `other`.
    pub fn difference(&self, other: &CapabilitySet) -> CapabilitySet {
        CapabilitySet {
            bits: self.bits & !other.bits,
            unknown: self
                .unknown
                .iter()
                .filter(|n| !other.unknown.contains(n))
                .cloned()
                .collect(),
        }
    }

    /// Capabilities in both sets.
    pub fn intersection(&self, other: &CapabilitySet) -> CapabilitySet {
        CapabilitySet {
            bits: self.bits & other.bits,
            unknown: self
                .unknown
                .iter()
                .filter(|n| other.unknown.contains(n))
                .cloned()
                .collect(),
        }
    }

    /// Whether every capability of `self` is in `other`.
    pub fn is_subset(&self, other: &CapabilitySet) -> bool {
        self.bits & !other.bits == 0 && self.unknown.iter().all(|n| other.unknown.contains(n))
    }

    /// The names in the set, in kernel order, unknown names last.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1u64 << i) != 0)
            .map(|(_, n)| *n)
            .chain(self.unknown.iter().map(String::as_str))
    }
}

impl fmt::Display for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// The capabilities containerd (and CRI-O, and Docker) give a non-privileged container by
/// default. A capability in a container's effective set beyond these was added for it.
/// Built once.
pub fn runtime_default() -> &'static CapabilitySet {
    static DEFAULT: std::sync::LazyLock<CapabilitySet> = std::sync::LazyLock::new(|| {
        CapabilitySet::from_names([
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "MKNOD",
            "NET_RAW",
            "SETGID",
            "SETUID",
            "SETFCAP",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "SYS_CHROOT",
            "KILL",
            "AUDIT_WRITE",
        ])
    });
    &DEFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        let set = CapabilitySet::from_names(["cap_net_admin", "SYS_TIME", "Cap_Bpf"]);
        assert!(set.contains("NET_ADMIN"));
        assert!(set.contains("CAP_SYS_TIME"));
        assert!(set.contains("bpf"));
        assert_eq!(set.to_string(), "NET_ADMIN, SYS_TIME, BPF");
    }

    #[test]
    fn all_means_every_capability() {
        let set = CapabilitySet::from_names(["ALL"]);
        assert!(NAMES.iter().all(|n| set.contains(n)));
    }

    #[test]
    fn unknown_names_are_kept() {
        let set = CapabilitySet::from_names(["FUTURE_CAP"]);
        assert!(!set.is_empty());
        assert!(!set.is_subset(&CapabilitySet::all()));
        assert_eq!(set.to_string(), "FUTURE_CAP");
    }

    #[test]
    fn set_algebra() {
        let added = CapabilitySet::from_names(["NET_ADMIN", "CHOWN"]).difference(runtime_default());
        assert_eq!(added.to_string(), "NET_ADMIN");
        assert!(runtime_default().is_subset(&CapabilitySet::all()));
    }
}
