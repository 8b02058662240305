//! One module per group of rules of `spec.rules`: for each rule a passing container, a
//! violating one (exact rule id, effect and message), and one whose input is unknown
//! (undecided, `Verdict::Undecided` when enforced).

mod capabilities;
mod host;
mod images;
mod pod;
mod privileges;
mod profiles;
mod resources;
mod users;

use policy_core::evaluate;

use crate::util::{assert_clean, compliant, findings, load, runtime_compliant, undecided};

#[test]
fn the_compliant_container_passes_every_rule() {
    let policy = load("all-rules.yaml");
    assert_clean(&policy, &compliant());
}

#[test]
fn every_rule_compiles_into_its_checks() {
    let policy = load("all-rules.yaml");
    assert_eq!(policy.names().collect::<Vec<_>>(), ["all-rules"]);
    let mut ids: Vec<&str> = policy.check_ids().collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "appArmor",
            "capabilities.add",
            "capabilities.drop",
            "devices",
            "hostNamespaces",
            "hostPath",
            "hostPorts",
            "images.allowed",
            "images.denied",
            "images.digest",
            "images.tag",
            "privilegeEscalation",
            "privileged",
            "procMount",
            "readOnlyRootFilesystem",
            "requiredLabels",
            "resources.limits",
            "resources.maxLimits",
            "resources.ratio",
            "resources.requests",
            "runAsNonRoot",
            "seLinux",
            "seccomp",
            "sysctls",
            "users.runAsGroup",
            "users.runAsUser",
            "users.supplementalGroups",
            "volumeTypes",
        ]
    );
    assert_eq!(policy.check_count(), ids.len());
}

#[test]
fn a_view_that_knows_nothing_leaves_every_rule_undecided_but_required_labels() {
    let policy = load("all-rules.yaml");
    let d = evaluate(&policy, &Default::default());
    let mut got = undecided(&d);
    got.sort_unstable();
    got.dedup();
    assert_eq!(
        got,
        [
            ("appArmor", "security.appArmor"),
            ("capabilities.add", "security.capabilities"),
            ("capabilities.drop", "security.capabilities"),
            ("devices", "devices"),
            ("hostNamespaces", "hostNamespaces"),
            ("hostPath", "mounts"),
            ("hostPorts", "hostPorts"),
            ("images.allowed", "image"),
            ("images.denied", "image"),
            ("images.digest", "image"),
            ("images.tag", "image"),
            ("privilegeEscalation", "security.allowPrivilegeEscalation"),
            ("privileged", "security.privileged"),
            ("procMount", "security.procMount"),
            ("readOnlyRootFilesystem", "security.readOnlyRootFilesystem"),
            ("resources.limits", "resources"),
            ("resources.maxLimits", "resources"),
            ("resources.ratio", "resources"),
            ("resources.requests", "resources"),
            ("runAsNonRoot", "security.runAsUser"),
            ("seLinux", "security.seLinuxOptions"),
            ("seccomp", "security.seccomp"),
            ("sysctls", "security.sysctls"),
            ("users.runAsGroup", "security.runAsGroup"),
            ("users.runAsUser", "security.runAsUser"),
            ("users.supplementalGroups", "security.supplementalGroups"),
            ("volumeTypes", "volumes"),
        ]
    );
    // Pod labels are always known (possibly empty), so requiredLabels decides.
    assert_eq!(
        findings(&d)
            .iter()
            .map(|(rule, _, message)| (*rule, *message))
            .collect::<Vec<_>>(),
        [
            ("requiredLabels", r#"pod has no label "team""#),
            ("requiredLabels", r#"pod has no label "env""#),
        ]
    );
}

#[test]
fn the_runtime_view_of_the_compliant_container_passes_leaving_memory_requests_to_admission() {
    let policy = load("all-rules.yaml");
    let d = evaluate(&policy, &runtime_compliant());
    assert!(d.violations.is_empty(), "{d:#?}");
    // The node cannot see memory requests: both rules that need one say so.
    let mut got = undecided(&d);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            ("resources.ratio", "resources.memoryRequest"),
            ("resources.requests", "resources.memoryRequest"),
        ]
    );
    // Only admission can judge a memory request: the node's verdict is final.
    assert!(d.undecided.is_empty(), "{d:#?}");
    assert_eq!(d.verdict(), policy_core::Verdict::Allow);
}
