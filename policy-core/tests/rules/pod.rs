//! Pod-wide rules: `rules.sysctls`, `rules.volumeTypes` and `rules.requiredLabels`.

use policy_core::evaluate;
use policy_core::view::{Volume, VolumeType};

use crate::util::{
    assert_clean, assert_denied, assert_undecided, compliant, labels, messages, rules, with,
};

fn sysctls(names: &[&str]) -> policy_core::ContainerView {
    with(|v| {
        v.security.sysctls = Some(
            names
                .iter()
                .map(|n| ((*n).to_string(), "1".to_string()))
                .collect(),
        );
    })
}

const SYSCTLS: &str = "sysctls:
  allowed: ['net.ipv4.*', kernel.shm_rmid_forced]
  forbidden: [net.ipv4.ip_forward]
";

#[test]
fn sysctls_allowed_by_glob_pass() {
    let p = rules(SYSCTLS);
    assert_clean(&p, &compliant());
    assert_clean(
        &p,
        &sysctls(&["net.ipv4.tcp_syncookies", "kernel.shm_rmid_forced"]),
    );
}

#[test]
fn sysctls_forbidden_wins_over_allowed() {
    assert_denied(
        &rules(SYSCTLS),
        &sysctls(&["net.ipv4.ip_forward"]),
        "sysctls",
        "sysctl net.ipv4.ip_forward is forbidden",
    );
}

#[test]
fn sysctls_not_allowed_are_denied_one_by_one() {
    let d = evaluate(
        &rules(SYSCTLS),
        &sysctls(&[
            "kernel.msgmax",
            "net.ipv4.tcp_rmem",
            "net.ipv6.conf.all.forwarding",
        ]),
    );
    assert_eq!(
        messages(&d),
        [
            ("sysctls", "sysctl kernel.msgmax is not allowed"),
            (
                "sysctls",
                "sysctl net.ipv6.conf.all.forwarding is not allowed"
            ),
        ]
    );
}

#[test]
fn sysctls_with_only_a_forbidden_list_allow_the_rest() {
    let p = rules("sysctls: {forbidden: ['kernel.*']}\n");
    assert_clean(&p, &sysctls(&["net.core.somaxconn"]));
    assert_denied(
        &p,
        &sysctls(&["kernel.msgmax"]),
        "sysctls",
        "sysctl kernel.msgmax is forbidden",
    );
}

#[test]
fn sysctls_with_an_empty_allowed_list_allow_none() {
    let p = rules("sysctls: {allowed: []}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &sysctls(&["net.ipv4.tcp_syncookies"]),
        "sysctls",
        "sysctl net.ipv4.tcp_syncookies is not allowed",
    );
    assert_undecided(
        &p,
        &with(|v| v.security.sysctls = None),
        &[("sysctls", "security.sysctls")],
    );
}

fn volume(name: &str, kind: VolumeType) -> Volume {
    Volume {
        name: name.into(),
        kind,
        host_path: None,
        driver: None,
    }
}

#[test]
fn volume_types_pass_listed_types() {
    let p = rules("volumeTypes: {allowed: [configMap, secret, emptyDir]}\n");
    assert_clean(
        &p,
        &with(|v| {
            v.volumes = Some(vec![
                volume("a", VolumeType::ConfigMap),
                volume("b", VolumeType::Secret),
                volume("c", VolumeType::EmptyDir),
            ]);
        }),
    );
}

#[test]
fn volume_types_deny_each_other_volume() {
    let p = rules("volumeTypes: {allowed: [configMap, secret, emptyDir]}\n");
    let d = evaluate(
        &p,
        &with(|v| {
            v.volumes = Some(vec![
                volume("config", VolumeType::ConfigMap),
                volume("data", VolumeType::HostPath),
                volume("legacy", VolumeType::Other),
            ]);
        }),
    );
    assert_eq!(
        messages(&d),
        [
            (
                "volumeTypes",
                r#"volume "data" is of type hostPath, which is not allowed (allowed: configMap, secret, emptyDir)"#
            ),
            (
                "volumeTypes",
                r#"volume "legacy" is of type other, which is not allowed (allowed: configMap, secret, emptyDir)"#
            ),
        ]
    );
    // An empty list allows no volume at all.
    assert_denied(
        &rules("volumeTypes: {allowed: []}\n"),
        &compliant(),
        "volumeTypes",
        r#"volume "config" is of type configMap, which is not allowed (allowed: )"#,
    );
    assert_undecided(
        &p,
        &with(|v| v.volumes = None),
        &[("volumeTypes", "volumes")],
    );
}

const LABELS: &str = "requiredLabels:
  labels:
    - key: team
    - key: env
      allowedRegex: '^(prod|staging)$'
";

#[test]
fn required_labels_pass_present_and_matching_labels() {
    let p = rules(LABELS);
    assert_clean(&p, &compliant());
    assert_clean(
        &p,
        &with(|v| v.pod.labels = labels(&[("team", ""), ("env", "staging")])),
    );
}

#[test]
fn required_labels_deny_missing_or_mismatched_labels() {
    let p = rules(LABELS);
    assert_denied(
        &p,
        &with(|v| v.pod.labels = labels(&[("env", "prod")])),
        "requiredLabels",
        r#"pod has no label "team""#,
    );
    assert_denied(
        &p,
        &with(|v| v.pod.labels = labels(&[("team", "a"), ("env", "production")])),
        "requiredLabels",
        r#"pod label env="production" does not match ^(prod|staging)$"#,
    );
    // A pod with no labels at all is decided, not undecided: labels are always known.
    let d = evaluate(&p, &with(|v| v.pod.labels.clear()));
    assert_eq!(
        messages(&d),
        [
            ("requiredLabels", r#"pod has no label "team""#),
            ("requiredLabels", r#"pod has no label "env""#),
        ]
    );
    assert!(d.undecided.is_empty());
}

#[test]
fn required_label_regexes_are_unanchored_unless_written_so() {
    let p = rules("requiredLabels: {labels: [{key: env, allowedRegex: 'prod|staging'}]}\n");
    assert_clean(&p, &with(|v| v.pod.labels = labels(&[("env", "nonprod")])));
}
