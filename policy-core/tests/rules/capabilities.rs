//! `rules.capabilities`: allowedAdd and requiredDrop, for capabilities as a manifest declares
//! them and as the node sees them in effect.

use policy_core::capabilities::{CapabilitySet, runtime_default};
use policy_core::view::Capabilities;
use policy_core::{ContainerView, evaluate};

use crate::util::{assert_clean, assert_denied, assert_undecided, messages, rules, with};

const RESTRICTED: &str = "capabilities: {allowedAdd: [NET_BIND_SERVICE], requiredDrop: [ALL]}\n";
const SOME: &str = "capabilities: {requiredDrop: [NET_RAW, CAP_sys_admin]}\n";

fn declared(add: &[&str], drop: &[&str]) -> ContainerView {
    let strings = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect();
    with(|v| {
        v.security.capabilities = Some(Capabilities::Declared {
            add: strings(add),
            drop: strings(drop),
        });
    })
}

fn effective(set: CapabilitySet) -> ContainerView {
    with(|v| v.security.capabilities = Some(Capabilities::Effective(set)))
}

#[test]
fn declared_drop_all_add_allowed_passes() {
    let p = rules(RESTRICTED);
    assert_clean(&p, &declared(&["NET_BIND_SERVICE"], &["ALL"]));
    assert_clean(&p, &declared(&[], &["ALL", "NET_RAW"]));
}

#[test]
fn declared_adding_a_capability_not_allowed_is_denied() {
    assert_denied(
        &rules(RESTRICTED),
        &declared(&["NET_ADMIN", "NET_BIND_SERVICE", "cap_sys_time"], &["ALL"]),
        "capabilities.add",
        "container adds capabilities that are not allowed: NET_ADMIN, SYS_TIME (allowed: NET_BIND_SERVICE)",
    );
    // With no allowedAdd, nothing may be added.
    assert_denied(
        &rules(SOME),
        &declared(&["CHOWN"], &["NET_RAW", "SYS_ADMIN"]),
        "capabilities.add",
        "container adds capabilities that are not allowed: CHOWN (allowed: none)",
    );
}

#[test]
fn declared_not_dropping_all_is_denied() {
    assert_denied(
        &rules(RESTRICTED),
        &declared(&[], &["NET_RAW", "SYS_ADMIN"]),
        "capabilities.drop",
        "container does not drop ALL capabilities",
    );
}

#[test]
fn declared_required_drops_are_compared_by_normalized_name() {
    let p = rules(SOME);
    assert_clean(&p, &declared(&[], &["cap_net_raw", "SYS_ADMIN"]));
    assert_clean(&p, &declared(&[], &["ALL"]));
    assert_denied(
        &p,
        &declared(&[], &["NET_RAW"]),
        "capabilities.drop",
        "container does not drop required capabilities: SYS_ADMIN",
    );
}

#[test]
fn effective_set_within_the_runtime_default_adds_nothing() {
    let p = rules(SOME);
    let mut set = runtime_default().clone();
    set = set.difference(&CapabilitySet::from_names(["NET_RAW"]));
    assert_clean(&p, &effective(set));
}

#[test]
fn effective_capabilities_beyond_the_runtime_default_count_as_added() {
    let p = rules(RESTRICTED);
    let set = CapabilitySet::from_names(["NET_BIND_SERVICE", "SYS_ADMIN", "BPF"]);
    // They also had to be dropped (requiredDrop: [ALL]).
    let d = evaluate(&p, &effective(set));
    assert_eq!(
        messages(&d),
        [
            (
                "capabilities.add",
                "container adds capabilities that are not allowed: SYS_ADMIN, BPF (allowed: NET_BIND_SERVICE)"
            ),
            (
                "capabilities.drop",
                "container keeps capabilities that must be dropped: SYS_ADMIN, BPF"
            ),
        ]
    );
    // With only an add check, adding is the one violation.
    assert_denied(
        &rules("capabilities: {allowedAdd: [NET_BIND_SERVICE]}\n"),
        &effective(CapabilitySet::from_names(["NET_BIND_SERVICE", "BPF"])),
        "capabilities.add",
        "container adds capabilities that are not allowed: BPF (allowed: NET_BIND_SERVICE)",
    );
}

#[test]
fn effective_capabilities_that_must_be_dropped_are_named() {
    // requiredDrop: [ALL] keeps only what allowedAdd allows.
    let p = rules(RESTRICTED);
    assert_clean(
        &p,
        &effective(CapabilitySet::from_names(["NET_BIND_SERVICE"])),
    );
    assert_clean(&p, &effective(CapabilitySet::EMPTY));
    assert_denied(
        &p,
        &effective(runtime_default().clone()),
        "capabilities.drop",
        "container keeps capabilities that must be dropped: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, \
         KILL, SETGID, SETUID, SETPCAP, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP",
    );
    assert_denied(
        &rules(SOME),
        &effective(runtime_default().clone()),
        "capabilities.drop",
        "container keeps capabilities that must be dropped: NET_RAW",
    );
}

#[test]
fn effective_add_and_drop_are_judged_independently() {
    let d = evaluate(
        &rules(SOME),
        &effective(CapabilitySet::from_names(["NET_RAW", "SYS_ADMIN"])),
    );
    assert_eq!(
        messages(&d),
        [
            (
                "capabilities.add",
                "container adds capabilities that are not allowed: SYS_ADMIN (allowed: none)"
            ),
            (
                "capabilities.drop",
                "container keeps capabilities that must be dropped: NET_RAW, SYS_ADMIN"
            ),
        ]
    );
}

#[test]
fn unknown_capabilities_leave_both_checks_undecided() {
    assert_undecided(
        &rules(RESTRICTED),
        &with(|v| v.security.capabilities = None),
        &[
            ("capabilities.add", "security.capabilities"),
            ("capabilities.drop", "security.capabilities"),
        ],
    );
}

#[test]
fn without_required_drops_only_the_add_check_exists() {
    let p = rules("capabilities: {allowedAdd: [CHOWN]}\n");
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["capabilities.add"]);
    assert_clean(&p, &declared(&["CHOWN"], &[]));
}
