//! `rules.runAsNonRoot` (a manifest's declarations, or the user the node sees) and
//! `rules.users` (id ranges).

use policy_core::ContainerView;
use policy_core::view::Layered;

use crate::util::{
    assert_clean, assert_denied, assert_undecided, compliant, rules, runtime_compliant, with,
};

fn declared(pod: Option<bool>, container: Option<bool>) -> ContainerView {
    with(|v| v.security.run_as_non_root = Some(Layered { pod, container }))
}

#[test]
fn run_as_non_root_manifest_passes_when_declared_true_at_either_level() {
    let p = rules("runAsNonRoot: {}\n");
    assert_clean(&p, &declared(Some(true), None));
    assert_clean(&p, &declared(None, Some(true)));
    assert_clean(&p, &declared(Some(true), Some(true)));
}

#[test]
fn run_as_non_root_manifest_denies_every_declared_false() {
    let p = rules("runAsNonRoot: {}\n");
    // A pod-level false is not rescued by the container.
    assert_denied(
        &p,
        &declared(Some(false), Some(true)),
        "runAsNonRoot",
        "pod-level runAsNonRoot is false",
    );
    assert_denied(
        &p,
        &declared(Some(true), Some(false)),
        "runAsNonRoot",
        "container runAsNonRoot is false",
    );
    assert_denied(
        &p,
        &declared(None, None),
        "runAsNonRoot",
        "runAsNonRoot is not set to true",
    );
}

#[test]
fn run_as_non_root_manifest_denies_a_declared_root_user() {
    let p = rules("runAsNonRoot: {}\n");
    assert_denied(
        &p,
        &with(|v| v.security.run_as_user = Some(Layered::effective_only(0))),
        "runAsNonRoot",
        "container runs as root (runAsUser: 0)",
    );
    // The manifest's declaration decides even when the user is unknown.
    assert_clean(&p, &with(|v| v.security.run_as_user = None));
}

#[test]
fn run_as_non_root_runtime_view_judges_the_user_it_sees() {
    let p = rules("runAsNonRoot: {}\n");
    assert_clean(&p, &runtime_compliant());
    let mut root = runtime_compliant();
    root.security.run_as_user = Some(Layered::effective_only(0));
    assert_denied(&p, &root, "runAsNonRoot", "container runs as root (UID 0)");
}

#[test]
fn run_as_non_root_runtime_view_is_undecided_without_a_user() {
    let p = rules("runAsNonRoot: {}\n");
    let mut view = runtime_compliant();
    view.security.run_as_user = None;
    assert_undecided(&p, &view, &[("runAsNonRoot", "security.runAsUser")]);
    view.security.run_as_user = Some(Layered::default());
    assert_undecided(&p, &view, &[("runAsNonRoot", "security.runAsUser")]);
}

const USERS: &str = "users:
  runAsUser: [{min: 1000, max: 1999}, {min: 5000, max: 5000}]
  runAsGroup: [{min: 1000, max: 65535}]
  supplementalGroups: [{min: 1, max: 65535}]
";

#[test]
fn users_compile_one_check_per_range_list() {
    let p = rules(USERS);
    assert_eq!(
        p.check_ids().collect::<Vec<_>>(),
        [
            "users.runAsUser",
            "users.runAsGroup",
            "users.supplementalGroups"
        ]
    );
    let p = rules("users: {runAsGroup: [{min: 0, max: 0}]}\n");
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["users.runAsGroup"]);
}

#[test]
fn users_pass_ids_inside_any_range_bounds_included() {
    let p = rules(USERS);
    for uid in [1000, 1500, 1999, 5000] {
        assert_clean(
            &p,
            &with(|v| v.security.run_as_user = Some(Layered::effective_only(uid))),
        );
    }
    assert_clean(&p, &compliant());
}

#[test]
fn users_deny_ids_outside_the_ranges() {
    let p = rules(USERS);
    for uid in [0, 999, 2000, 4999, 5001] {
        assert_denied(
            &p,
            &with(|v| v.security.run_as_user = Some(Layered::effective_only(uid))),
            "users.runAsUser",
            &format!("container runs with user id {uid}, outside the allowed 1000-1999, 5000"),
        );
    }
    assert_denied(
        &p,
        &with(|v| v.security.run_as_group = Some(Layered::effective_only(0))),
        "users.runAsGroup",
        "container runs with group id 0, outside the allowed 1000-65535",
    );
    assert_denied(
        &p,
        &with(|v| v.security.supplemental_groups = Some(vec![2000, 0])),
        "users.supplementalGroups",
        "supplemental group 0 is outside the allowed 1-65535",
    );
}

#[test]
fn users_judge_the_effective_id_of_a_manifest() {
    // The container's value overrides the pod's.
    let p = rules(USERS);
    assert_clean(
        &p,
        &with(|v| {
            v.security.run_as_user = Some(Layered {
                pod: Some(0),
                container: Some(1500),
            })
        }),
    );
}

#[test]
fn users_deny_an_id_that_is_not_set() {
    let p = rules(USERS);
    assert_denied(
        &p,
        &with(|v| v.security.run_as_user = Some(Layered::default())),
        "users.runAsUser",
        "runAsUser is not set; the user id must be in 1000-1999, 5000",
    );
    assert_denied(
        &p,
        &with(|v| v.security.run_as_group = Some(Layered::default())),
        "users.runAsGroup",
        "runAsGroup is not set; the group id must be in 1000-65535",
    );
}

#[test]
fn users_are_undecided_when_unknown() {
    let p = rules(USERS);
    assert_undecided(
        &p,
        &with(|v| {
            v.security.run_as_user = None;
            v.security.run_as_group = None;
            v.security.supplemental_groups = None;
        }),
        &[
            ("users.runAsUser", "security.runAsUser"),
            ("users.runAsGroup", "security.runAsGroup"),
            ("users.supplementalGroups", "security.supplementalGroups"),
        ],
    );
}
