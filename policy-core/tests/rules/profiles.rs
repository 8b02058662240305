//! `rules.readOnlyRootFilesystem`, `rules.seccomp`, `rules.appArmor` and `rules.seLinux`.

use policy_core::ContainerView;
use policy_core::view::{AppArmor, Layered, SeLinux, Seccomp};
use policy_core::{Verdict, evaluate};

use crate::util::{
    assert_clean, assert_denied, assert_undecided, compliant, messages, rules, with,
};

#[test]
fn read_only_root_filesystem() {
    let p = rules("readOnlyRootFilesystem: {}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &with(|v| v.security.read_only_root_filesystem = Some(false)),
        "readOnlyRootFilesystem",
        "container's root filesystem is writable",
    );
    assert_undecided(
        &p,
        &with(|v| v.security.read_only_root_filesystem = None),
        &[("readOnlyRootFilesystem", "security.readOnlyRootFilesystem")],
    );
}

fn seccomp(pod: Option<Seccomp>, container: Option<Seccomp>) -> ContainerView {
    with(|v| v.security.seccomp = Some(Layered { pod, container }))
}

fn localhost(name: &str) -> Seccomp {
    Seccomp::Localhost(name.into())
}

#[test]
fn seccomp_allows_runtime_default_and_localhost_by_default() {
    let p = rules("seccomp: {}\n");
    assert_clean(&p, &seccomp(Some(Seccomp::RuntimeDefault), None));
    assert_clean(&p, &seccomp(None, Some(localhost("profiles/audit.json"))));
    assert_clean(
        &p,
        &seccomp(Some(Seccomp::RuntimeDefault), Some(localhost("a.json"))),
    );
    // The node sees a filter but not its kind: either allowed kind would do.
    assert_clean(&p, &seccomp(None, Some(Seccomp::Confined)));
}

#[test]
fn seccomp_judges_every_declared_level() {
    let p = rules("seccomp: {}\n");
    assert_denied(
        &p,
        &seccomp(None, Some(Seccomp::Unconfined)),
        "seccomp",
        "container seccomp profile Unconfined is not allowed (allowed: RuntimeDefault, Localhost)",
    );
    // A bad pod-level profile is reported even though the container overrides it.
    assert_denied(
        &p,
        &seccomp(Some(Seccomp::Unconfined), Some(Seccomp::RuntimeDefault)),
        "seccomp",
        "pod-level seccomp profile Unconfined is not allowed (allowed: RuntimeDefault, Localhost)",
    );
}

#[test]
fn seccomp_requires_a_profile_unless_unconfined_is_allowed() {
    assert_denied(
        &rules("seccomp: {}\n"),
        &seccomp(None, None),
        "seccomp",
        "no seccomp profile is set (allowed: RuntimeDefault, Localhost)",
    );
    let lax = rules("seccomp: {allowed: [Unconfined, RuntimeDefault]}\n");
    assert_clean(&lax, &seccomp(None, None));
    assert_clean(&lax, &seccomp(None, Some(Seccomp::Unconfined)));
    assert_denied(
        &lax,
        &seccomp(None, Some(localhost("x.json"))),
        "seccomp",
        "container seccomp profile Localhost (x.json) is not allowed (allowed: RuntimeDefault, Unconfined)",
    );
}

#[test]
fn seccomp_localhost_profiles_match_globs() {
    let p = rules(
        "seccomp:\n  allowed: [Localhost]\n  allowedLocalhostProfiles: ['profiles/*.json']\n",
    );
    assert_clean(&p, &seccomp(None, Some(localhost("profiles/audit.json"))));
    assert_denied(
        &p,
        &seccomp(None, Some(localhost("other/audit.json"))),
        "seccomp",
        "container seccomp profile Localhost (other/audit.json) is not allowed (allowed: Localhost)",
    );
    assert_denied(
        &p,
        &seccomp(None, Some(Seccomp::RuntimeDefault)),
        "seccomp",
        "container seccomp profile RuntimeDefault is not allowed (allowed: Localhost)",
    );
}

#[test]
fn seccomp_is_undecided_when_unknown() {
    assert_undecided(
        &rules("seccomp: {}\n"),
        &with(|v| v.security.seccomp = None),
        &[("seccomp", "security.seccomp")],
    );
}

fn apparmor(pod: Option<AppArmor>, container: Option<AppArmor>) -> ContainerView {
    with(|v| v.security.apparmor = Some(Layered { pod, container }))
}

#[test]
fn app_armor_allows_runtime_default_and_localhost_by_default() {
    let p = rules("appArmor: {}\n");
    assert_clean(&p, &apparmor(None, Some(AppArmor::RuntimeDefault)));
    assert_clean(
        &p,
        &apparmor(Some(AppArmor::Localhost("k8s-web".into())), None),
    );
}

#[test]
fn app_armor_denies_unconfined_and_a_missing_profile() {
    let p = rules("appArmor: {}\n");
    assert_denied(
        &p,
        &apparmor(Some(AppArmor::RuntimeDefault), Some(AppArmor::Unconfined)),
        "appArmor",
        "container AppArmor profile Unconfined is not allowed (allowed: RuntimeDefault, Localhost)",
    );
    assert_denied(
        &p,
        &apparmor(Some(AppArmor::Unconfined), Some(AppArmor::RuntimeDefault)),
        "appArmor",
        "pod-level AppArmor profile Unconfined is not allowed (allowed: RuntimeDefault, Localhost)",
    );
    assert_denied(
        &p,
        &apparmor(None, None),
        "appArmor",
        "no AppArmor profile is set (allowed: RuntimeDefault, Localhost)",
    );
}

#[test]
fn app_armor_localhost_profiles_match_globs() {
    let p = rules("appArmor: {allowedLocalhostProfiles: ['k8s-*']}\n");
    assert_clean(
        &p,
        &apparmor(None, Some(AppArmor::Localhost("k8s-web".into()))),
    );
    assert_denied(
        &p,
        &apparmor(None, Some(AppArmor::Localhost("custom".into()))),
        "appArmor",
        "container AppArmor profile Localhost (custom) is not allowed (allowed: RuntimeDefault, Localhost)",
    );
    assert_undecided(
        &p,
        &with(|v| v.security.apparmor = None),
        &[("appArmor", "security.appArmor")],
    );
}

const SELINUX: &str = "seLinux:
  allowedTypes: [container_t, container_init_t]
  allowedUsers: []
  allowedLevels: ['s0:c1,c2']
";

fn selinux(pod: Option<SeLinux>, container: Option<SeLinux>) -> ContainerView {
    with(|v| v.security.selinux = Some(Layered { pod, container }))
}

fn typed(kind: &str) -> SeLinux {
    SeLinux {
        kind: Some(kind.into()),
        ..SeLinux::default()
    }
}

#[test]
fn se_linux_passes_allowed_or_unset_parts() {
    let p = rules(SELINUX);
    assert_clean(&p, &compliant());
    assert_clean(
        &p,
        &selinux(Some(typed("container_t")), Some(typed("container_init_t"))),
    );
    // Empty strings count as unset; roles are not restricted here.
    assert_clean(
        &p,
        &selinux(
            None,
            Some(SeLinux {
                user: Some(String::new()),
                role: Some("system_r".into()),
                kind: Some(String::new()),
                level: Some("s0:c1,c2".into()),
            }),
        ),
    );
}

#[test]
fn se_linux_denies_each_part_not_allowed_at_each_level() {
    let p = rules(SELINUX);
    assert_denied(
        &p,
        &selinux(None, Some(typed("spc_t"))),
        "seLinux",
        r#"container SELinux type "spc_t" is not allowed (allowed: container_t, container_init_t)"#,
    );
    assert_denied(
        &p,
        &selinux(Some(typed("spc_t")), Some(typed("container_t"))),
        "seLinux",
        r#"pod-level SELinux type "spc_t" is not allowed (allowed: container_t, container_init_t)"#,
    );
    let d = evaluate(
        &p,
        &selinux(
            None,
            Some(SeLinux {
                user: Some("system_u".into()),
                role: None,
                kind: None,
                level: Some("s0:c3,c4".into()),
            }),
        ),
    );
    assert_eq!(
        messages(&d),
        [
            (
                "seLinux",
                r#"container SELinux user "system_u" is not allowed (allowed: none)"#
            ),
            (
                "seLinux",
                r#"container SELinux level "s0:c3,c4" is not allowed (allowed: s0:c1,c2)"#
            ),
        ]
    );
    assert_eq!(d.verdict(), Verdict::Deny);
}

#[test]
fn se_linux_is_undecided_when_unknown() {
    assert_undecided(
        &rules(SELINUX),
        &with(|v| v.security.selinux = None),
        &[("seLinux", "security.seLinuxOptions")],
    );
}
