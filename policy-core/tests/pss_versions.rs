//! Pod Security Standards by version (`podSecurity.version`, [`Policy::pod_security_at`]):
//! each difference between versions is a pod judged differently at the two versions around
//! it, as Pod Security Admission's versioned checks judge it; and a malformed version is an
//! error at its field.

use policy_core::capabilities::CapabilitySet;
use policy_core::pss::{PssVersion, SAFE_SYSCTLS};
use policy_core::view::{Capabilities, Layered, ProcMount, SeLinux, Seccomp};
use policy_core::{ContainerView, Effect, Policy, PssLevel, Verdict, evaluate};

use crate::util::{
    assert_clean, assert_undecided, document, error_places, messages, policy, policy_err,
    runtime_compliant, with,
};

fn at(level: PssLevel, minor: u32) -> Policy {
    Policy::pod_security_at(level, PssVersion::V1(minor), Effect::Enforce)
}

fn baseline(minor: u32) -> Policy {
    at(PssLevel::Baseline, minor)
}

fn restricted(minor: u32) -> Policy {
    at(PssLevel::Restricted, minor)
}

fn ids(p: &Policy) -> Vec<&'static str> {
    let mut ids: Vec<&str> = p.check_ids().collect();
    ids.sort_unstable();
    ids
}

/// The rule ids that fail, sorted, each once.
fn failing(p: &Policy, view: &ContainerView) -> Vec<&'static str> {
    let mut ids: Vec<&str> = evaluate(p, view)
        .violations
        .iter()
        .map(|v| v.rule)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[test]
fn latest_and_versions_newer_than_nodeguard_knows_are_v1_37() {
    for level in [PssLevel::Baseline, PssLevel::Restricted] {
        let latest = Policy::pod_security(level, Effect::Enforce);
        assert_eq!(ids(&at(level, 37)), ids(&latest));
        assert_eq!(ids(&at(level, 40)), ids(&latest));
    }
    let sysctl = with(|v| {
        v.security.sysctls = Some(vec![("net.ipv4.tcp_notsent_lowat".into(), "1".into())]);
    });
    assert_clean(&baseline(40), &sysctl);
    assert_eq!("v1.40".parse::<PssVersion>().unwrap().minor(), 37);
}

#[test]
fn each_version_runs_the_controls_it_had() {
    let has = |p: &Policy, id: &str| p.check_ids().any(|i| i == id);
    // The probe and lifecycle host control came with v1.34.
    assert!(!has(&baseline(33), "pss.baseline.probeHosts"));
    assert!(has(&baseline(34), "pss.baseline.probeHosts"));
    assert_eq!(baseline(33).check_count() + 1, baseline(34).check_count());
    // Restricted procMount (unmasked /proc refused even in a user namespace) came with v1.35
    // and replaces the baseline one; before, restricted ran the baseline one.
    assert!(has(&restricted(34), "pss.baseline.procMount"));
    assert!(!has(&restricted(34), "pss.restricted.procMount"));
    assert!(has(&restricted(35), "pss.restricted.procMount"));
    assert!(!has(&restricted(35), "pss.baseline.procMount"));
    // runAsUser came with v1.23.
    assert!(!has(&restricted(22), "pss.restricted.runAsUser"));
    assert!(has(&restricted(23), "pss.restricted.runAsUser"));
    // Restricted capabilities came with v1.22; before, restricted ran the baseline control.
    assert!(has(&restricted(21), "pss.baseline.capabilities"));
    assert!(!has(&restricted(21), "pss.restricted.capabilities"));
    assert!(has(&restricted(22), "pss.restricted.capabilities"));
    assert_eq!(
        ids(&restricted(19)),
        [
            "pss.baseline.appArmor",
            "pss.baseline.capabilities",
            "pss.baseline.hostNamespaces",
            "pss.baseline.hostPorts",
            "pss.baseline.hostProcess",
            "pss.baseline.privileged",
            "pss.baseline.procMount",
            "pss.baseline.seLinux",
            "pss.baseline.sysctls",
            "pss.restricted.privilegeEscalation",
            "pss.restricted.runAsNonRoot",
            "pss.restricted.seccomp",
            "pss.restricted.volumeTypes",
        ]
    );
}

#[test]
fn probe_hosts_are_allowed_at_v1_33_and_refused_from_v1_34() {
    let view = with(|v| v.probe_hosts = Some(vec!["db.internal".into()]));
    for level in [PssLevel::Baseline, PssLevel::Restricted] {
        assert_clean(&at(level, 33), &view);
        for minor in [34, 35, 37] {
            assert_eq!(
                messages(&evaluate(&at(level, minor), &view)),
                [(
                    "pss.baseline.probeHosts",
                    "probes or lifecycle handlers target other hosts (db.internal)"
                )],
                "v1.{minor}"
            );
        }
    }
    // The node never sees probes: from v1.34 the control is admission-only there; before, it
    // is not a control at all, and a compliant container is simply allowed.
    let node = runtime_compliant();
    assert_clean(&restricted(33), &node);
    let d = evaluate(&restricted(34), &node);
    assert_eq!(d.verdict(), Verdict::Allow, "{d:#?}");
    assert_eq!(
        d.admission_only
            .iter()
            .map(|u| (u.rule, u.missing))
            .collect::<Vec<_>>(),
        [("pss.baseline.probeHosts", "probeHosts")]
    );
}

/// A pod with its own user namespace whose container runs as root, declares no runAsNonRoot
/// and mounts /proc unmasked.
fn user_namespace_root() -> ContainerView {
    with(|v| {
        v.security.host_users = Some(false);
        v.security.run_as_non_root = Some(Layered::default());
        v.security.run_as_user = Some(Layered::effective_only(0));
        v.security.proc_mount = Some(ProcMount::Unmasked);
    })
}

#[test]
fn a_user_namespace_relaxes_three_controls_from_v1_35_only() {
    let view = user_namespace_root();
    // v1.34: nothing is relaxed.
    assert_eq!(failing(&baseline(34), &view), ["pss.baseline.procMount"]);
    assert_eq!(
        failing(&restricted(34), &view),
        [
            "pss.baseline.procMount",
            "pss.restricted.runAsNonRoot",
            "pss.restricted.runAsUser",
        ]
    );
    // v1.35 and later: runAsNonRoot, runAsUser and baseline procMount pass; restricted still
    // refuses an unmasked /proc.
    for minor in [35, 36, 37] {
        assert_clean(&baseline(minor), &view);
        assert_eq!(
            failing(&restricted(minor), &view),
            ["pss.restricted.procMount"],
            "v1.{minor}"
        );
    }
    // Each relaxation alone.
    let root = with(|v| {
        v.security.host_users = Some(false);
        v.security.run_as_user = Some(Layered::effective_only(0));
    });
    assert_eq!(
        failing(&restricted(34), &root),
        ["pss.restricted.runAsUser"]
    );
    assert_clean(&restricted(35), &root);
    let no_run_as_non_root = with(|v| {
        v.security.host_users = Some(false);
        v.security.run_as_non_root = Some(Layered::default());
    });
    assert_eq!(
        failing(&restricted(34), &no_run_as_non_root),
        ["pss.restricted.runAsNonRoot"]
    );
    assert_clean(&restricted(35), &no_run_as_non_root);
    let unmasked = with(|v| {
        v.security.host_users = Some(false);
        v.security.proc_mount = Some(ProcMount::Unmasked);
    });
    assert_eq!(
        failing(&baseline(34), &unmasked),
        ["pss.baseline.procMount"]
    );
    assert_clean(&baseline(35), &unmasked);
    // In the host's user namespace nothing changes between the versions.
    let host_root = with(|v| v.security.run_as_user = Some(Layered::effective_only(0)));
    assert_eq!(
        failing(&restricted(34), &host_root),
        failing(&restricted(35), &host_root)
    );
}

#[test]
fn whether_the_node_saw_a_user_namespace_matters_from_v1_35_only() {
    // The node tells a user namespace by the pod's namespaces (NRI) or the spec's (OCI);
    // where it cannot, v1.35+ cannot decide what the namespace would relax, and older
    // versions, which relax nothing, decide without it.
    let view = with(|v| {
        v.security.host_users = None;
        v.security.run_as_user = Some(Layered::effective_only(0));
        v.security.proc_mount = Some(ProcMount::Unmasked);
    });
    assert_eq!(failing(&baseline(34), &view), ["pss.baseline.procMount"]);
    assert_eq!(evaluate(&baseline(34), &view).verdict(), Verdict::Deny);
    assert_undecided(
        &baseline(35),
        &view,
        &[("pss.baseline.procMount", "security.hostUsers")],
    );
    let d = evaluate(&restricted(34), &view);
    assert!(d.undecided.is_empty(), "{d:#?}");
    assert_eq!(
        failing(&restricted(34), &view),
        ["pss.baseline.procMount", "pss.restricted.runAsUser"]
    );
}

#[test]
fn each_safe_sysctl_is_allowed_from_its_version() {
    for (name, since) in SAFE_SYSCTLS {
        let view = with(|v| v.security.sysctls = Some(vec![(name.to_string(), "1".into())]));
        assert_clean(&baseline(since.max(PssVersion::OLDEST)), &view);
        if since > PssVersion::OLDEST {
            assert_eq!(
                messages(&evaluate(&baseline(since - 1), &view)),
                [(
                    "pss.baseline.sysctls",
                    format!("pod sets unsafe sysctls ({name})").as_str()
                )],
                "{name} before v1.{since}"
            );
        }
    }
}

#[test]
fn the_v1_37_sysctls_are_refused_at_v1_36_and_allowed_at_v1_37() {
    let view = with(|v| {
        v.security.sysctls = Some(vec![
            ("net.ipv4.tcp_slow_start_after_idle".into(), "0".into()),
            ("net.ipv4.tcp_notsent_lowat".into(), "16384".into()),
            ("net.ipv4.tcp_rmem".into(), "4096 87380 6291456".into()),
        ]);
    });
    assert_eq!(
        messages(&evaluate(&baseline(36), &view)),
        [(
            "pss.baseline.sysctls",
            "pod sets unsafe sysctls (net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_notsent_lowat)"
        )]
    );
    assert_clean(&baseline(37), &view);
    assert_clean(&restricted(37), &view);
    assert_eq!(
        messages(&evaluate(&baseline(31), &view)),
        [(
            "pss.baseline.sysctls",
            "pod sets unsafe sysctls (net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_notsent_lowat, net.ipv4.tcp_rmem)"
        )]
    );
}

#[test]
fn selinux_container_engine_t_is_allowed_from_v1_31() {
    let view = with(|v| {
        v.security.selinux = Some(Layered::effective_only(SeLinux {
            kind: Some("container_engine_t".into()),
            ..SeLinux::default()
        }));
    });
    assert_eq!(
        messages(&evaluate(&baseline(30), &view)),
        [(
            "pss.baseline.seLinux",
            r#"container SELinux type "container_engine_t" is not allowed (allowed: container_t, container_init_t, container_kvm_t)"#
        )]
    );
    assert_clean(&baseline(31), &view);
}

#[test]
fn windows_pods_are_exempt_from_three_restricted_controls_from_v1_25() {
    let view = with(|v| {
        v.pod.os = Some("windows".into());
        v.security.allow_privilege_escalation = Some(None);
        v.security.seccomp = Some(Layered::default());
        v.security.capabilities = Some(Capabilities::Declared {
            add: Vec::new(),
            drop: Vec::new(),
        });
    });
    assert_eq!(
        failing(&restricted(24), &view),
        [
            "pss.restricted.capabilities",
            "pss.restricted.privilegeEscalation",
            "pss.restricted.seccomp",
        ]
    );
    assert_clean(&restricted(25), &view);
}

#[test]
fn before_v1_22_restricted_judges_capabilities_as_baseline_does() {
    // Keeping every capability the runtime gives is fine before v1.22 (no drop: [ALL]).
    let view = with(|v| {
        v.security.capabilities = Some(Capabilities::Declared {
            add: vec!["CHOWN".into()],
            drop: Vec::new(),
        });
    });
    assert_clean(&restricted(21), &view);
    assert_eq!(
        failing(&restricted(22), &view),
        ["pss.restricted.capabilities"]
    );
    let admin = with(|v| {
        v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
            "SYS_ADMIN",
        ])));
    });
    assert_eq!(
        failing(&restricted(21), &admin),
        ["pss.baseline.capabilities"]
    );
    // A pod without seccomp still fails restricted at v1.19, its oldest version here.
    let no_seccomp = with(|v| v.security.seccomp = Some(Layered::<Seccomp>::default()));
    assert_eq!(
        failing(&restricted(19), &no_seccomp),
        ["pss.restricted.seccomp"]
    );
}

#[test]
fn spec_pod_security_version_picks_the_standard() {
    let probe = with(|v| v.probe_hosts = Some(vec!["db".into()]));
    for (version, refused) in [
        ("v1.33", false),
        ("v1.34", true),
        ("latest", true),
        ("v1.99", true),
    ] {
        let p = policy(&document(
            "pss",
            &format!("podSecurity: {{level: baseline, version: {version}}}\n"),
        ));
        assert_eq!(evaluate(&p, &probe).is_denied(), refused, "{version}");
        assert_eq!(
            ids(&p),
            ids(&Policy::pod_security_at(
                PssLevel::Baseline,
                version.parse().unwrap(),
                Effect::Enforce
            )),
            "{version}"
        );
    }
    // Without a version: the latest.
    let p = policy(&document("pss", "podSecurity: {level: baseline}\n"));
    assert!(evaluate(&p, &probe).is_denied());
    // Exempting a control the version does not have is accepted and does nothing.
    let p = policy(&document(
        "pss",
        "podSecurity:\n  level: baseline\n  version: v1.33\n  exemptions:\n    - controls: [probeHosts]\n",
    ));
    assert_eq!(ids(&p), ids(&baseline(33)));
}

#[test]
fn a_malformed_version_is_an_error_at_its_field() {
    for (version, message) in [
        (
            r#""1.35""#,
            r#""1.35" is not a Kubernetes version; write v1.35 or latest"#,
        ),
        (
            "1.35",
            "the number 1.35 is not a Kubernetes version; write v1.35 or latest",
        ),
        // YAML reads 1.30 as 1.3: no guess at what was meant.
        (
            "1.30",
            "the number 1.3 is not a Kubernetes version; write v1.<minor> (such as v1.37) or latest",
        ),
        (
            "V1.35",
            r#""V1.35" is not a Kubernetes version; write v1.35 or latest"#,
        ),
        (
            "v1.35.2",
            r#""v1.35.2" is not a Kubernetes version; write v1.35 or latest"#,
        ),
        (
            "v1.035",
            r#""v1.035" is not a Kubernetes version; write v1.35 or latest"#,
        ),
        (
            "Latest",
            r#""Latest" is not a Kubernetes version; write v1.<minor> (such as v1.37) or latest"#,
        ),
        (
            "v2.0",
            r#""v2.0" is not a Kubernetes version; write v1.<minor> (such as v1.37) or latest"#,
        ),
        (
            "[v1.35]",
            r#"["v1.35"] is not a Kubernetes version; write v1.<minor>"#,
        ),
        (
            "v1.18",
            "v1.18 is older than nodeguard judges; write v1.19 or later, or latest",
        ),
        // Not suggested: too old.
        (
            "'1.18'",
            r#""1.18" is not a Kubernetes version; write v1.<minor> (such as v1.37) or latest"#,
        ),
    ] {
        let spec = format!("podSecurity:\n  level: baseline\n  version: {version}\n");
        let errors = policy_err(&document("pss", &spec));
        assert_eq!(
            error_places(&errors),
            [("inline.yaml", 8, "spec.podSecurity.version")],
            "{version}: {errors}"
        );
        assert!(
            errors.0[0].message.starts_with(message),
            "{version}: {:?} should start with {message:?}",
            errors.0[0].message
        );
    }
    // Reported with the document's other mistakes.
    let errors = policy_err(&document(
        "pss",
        "podSecurity:\n  version: '1.35'\n  exemptions:\n    - controls: [hostNetwork]\n",
    ));
    let mut places: Vec<&str> = error_places(&errors).into_iter().map(|e| e.2).collect();
    places.sort_unstable();
    assert_eq!(
        places,
        [
            "spec.podSecurity",
            "spec.podSecurity.exemptions[0].controls[0]",
            "spec.podSecurity.version",
        ],
        "{errors}"
    );
}
