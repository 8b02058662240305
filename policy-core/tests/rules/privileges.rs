//! `rules.privileged`, `rules.privilegeEscalation` and `rules.procMount`.

use policy_core::view::ProcMount;

use crate::util::{assert_clean, assert_denied, assert_undecided, compliant, rules, with};

#[test]
fn privileged_passes_unprivileged_containers() {
    assert_clean(&rules("privileged: {}\n"), &compliant());
    // `~` means every default too.
    assert_clean(&rules("privileged: ~\n"), &compliant());
}

#[test]
fn privileged_denies_privileged_containers() {
    assert_denied(
        &rules("privileged: {}\n"),
        &with(|v| v.security.privileged = Some(true)),
        "privileged",
        "container is privileged",
    );
}

#[test]
fn privileged_is_undecided_when_unknown() {
    assert_undecided(
        &rules("privileged: {}\n"),
        &with(|v| v.security.privileged = None),
        &[("privileged", "security.privileged")],
    );
}

#[test]
fn privilege_escalation_needs_an_explicit_false() {
    let p = rules("privilegeEscalation: {}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &with(|v| v.security.allow_privilege_escalation = Some(Some(true))),
        "privilegeEscalation",
        "container allows privilege escalation (allowPrivilegeEscalation: true)",
    );
    // Not set: Linux allows escalation (no_new_privs is off).
    assert_denied(
        &p,
        &with(|v| v.security.allow_privilege_escalation = Some(None)),
        "privilegeEscalation",
        "container allows privilege escalation (allowPrivilegeEscalation is not set to false)",
    );
}

#[test]
fn privilege_escalation_is_undecided_when_unknown() {
    assert_undecided(
        &rules("privilegeEscalation: {}\n"),
        &with(|v| v.security.allow_privilege_escalation = None),
        &[("privilegeEscalation", "security.allowPrivilegeEscalation")],
    );
}

#[test]
fn proc_mount_denies_an_unmasked_proc() {
    let p = rules("procMount: {}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &with(|v| v.security.proc_mount = Some(ProcMount::Unmasked)),
        "procMount",
        "container mounts /proc unmasked (procMount: Unmasked)",
    );
    assert_undecided(
        &p,
        &with(|v| v.security.proc_mount = None),
        &[("procMount", "security.procMount")],
    );
}
