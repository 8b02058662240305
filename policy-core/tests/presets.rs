//! Pod Security Standards presets: `Policy::pod_security` and `spec.podSecurity`, every
//! control failing alone with its id `pss.<level>.<name>`, and exemptions (a whole control,
//! or narrowed by namespaces and images).

use policy_core::capabilities::{CapabilitySet, runtime_default};
use policy_core::image::ImageRef;
use policy_core::view::{
    AppArmor, Capabilities, HostNamespaces, Layered, ProcMount, SeLinux, Seccomp, Volume,
    VolumeType,
};
use policy_core::{ContainerView, Effect, Policy, PssLevel, Verdict, evaluate};

use crate::util::{
    assert_clean, assert_undecided, compliant, document, findings, messages, policy,
    runtime_compliant, undecided, with,
};

fn baseline() -> Policy {
    Policy::pod_security(PssLevel::Baseline, Effect::Enforce)
}

fn restricted() -> Policy {
    Policy::pod_security(PssLevel::Restricted, Effect::Enforce)
}

const BASELINE_IDS: [&str; 12] = [
    "pss.baseline.hostProcess",
    "pss.baseline.hostNamespaces",
    "pss.baseline.privileged",
    "pss.baseline.capabilities",
    "pss.baseline.hostPathVolumes",
    "pss.baseline.hostPorts",
    "pss.baseline.probeHosts",
    "pss.baseline.appArmor",
    "pss.baseline.seLinux",
    "pss.baseline.procMount",
    "pss.baseline.seccomp",
    "pss.baseline.sysctls",
];

#[test]
fn each_level_runs_its_controls_restricted_replacing_four_baseline_ones() {
    assert_eq!(baseline().check_ids().collect::<Vec<_>>(), BASELINE_IDS);
    assert_eq!(baseline().names().collect::<Vec<_>>(), ["pss-baseline"]);
    let mut ids: Vec<&str> = restricted().check_ids().collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "pss.baseline.appArmor",
            "pss.baseline.hostNamespaces",
            "pss.baseline.hostPorts",
            "pss.baseline.hostProcess",
            "pss.baseline.privileged",
            "pss.baseline.probeHosts",
            "pss.baseline.seLinux",
            "pss.baseline.sysctls",
            "pss.restricted.capabilities",
            "pss.restricted.privilegeEscalation",
            "pss.restricted.procMount",
            "pss.restricted.runAsNonRoot",
            "pss.restricted.runAsUser",
            "pss.restricted.seccomp",
            "pss.restricted.volumeTypes",
        ]
    );
}

#[test]
fn a_restricted_compliant_manifest_passes_both_levels() {
    assert_clean(&baseline(), &compliant());
    assert_clean(&restricted(), &compliant());
}

#[test]
fn a_restricted_compliant_runtime_view_passes_but_cannot_see_probes() {
    // The node never sees probes: that control stays undecided at runtime.
    for p in [baseline(), restricted()] {
        assert_undecided(
            &p,
            &runtime_compliant(),
            &[("pss.baseline.probeHosts", "probeHosts")],
        );
    }
    let mut view = runtime_compliant();
    view.probe_hosts = Some(Vec::new());
    assert_clean(&restricted(), &view);
}

#[test]
fn baseline_ignores_what_only_restricted_forbids() {
    let view = with(|v| {
        let sec = &mut v.security;
        sec.allow_privilege_escalation = Some(None);
        sec.run_as_non_root = Some(Layered::default());
        sec.run_as_user = Some(Layered::effective_only(0));
        sec.seccomp = Some(Layered::default());
        sec.capabilities = Some(Capabilities::Declared {
            add: vec!["CHOWN".into()],
            drop: Vec::new(),
        });
        v.volumes = Some(vec![Volume {
            name: "share".into(),
            kind: VolumeType::Nfs,
            host_path: None,
            driver: None,
        }]);
    });
    assert_clean(&baseline(), &view);
    let d = evaluate(&restricted(), &view);
    let mut ids: Vec<&str> = d.violations.iter().map(|v| v.rule).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        [
            "pss.restricted.capabilities",
            "pss.restricted.privilegeEscalation",
            "pss.restricted.runAsNonRoot",
            "pss.restricted.runAsUser",
            "pss.restricted.seccomp",
            "pss.restricted.volumeTypes",
        ]
    );
}

type Mutation = fn(&mut ContainerView);

/// Each control broken alone: the level that judges it, the container change, the id and
/// the message expected.
const CONTROLS: &[(PssLevel, Mutation, &str, &str)] = &[
    (
        PssLevel::Restricted,
        |v| v.security.host_process = Some(true),
        "pss.baseline.hostProcess",
        "pod uses Windows hostProcess containers",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.host_namespaces = HostNamespaces {
                network: Some(true),
                pid: Some(true),
                ipc: Some(false),
            }
        },
        "pss.baseline.hostNamespaces",
        "pod shares host namespaces (hostNetwork=true, hostPID=true)",
    ),
    (
        PssLevel::Restricted,
        |v| v.security.privileged = Some(true),
        "pss.baseline.privileged",
        "container is privileged",
    ),
    (
        PssLevel::Baseline,
        |v| {
            v.security.capabilities = Some(Capabilities::Declared {
                add: vec!["CHOWN".into(), "NET_ADMIN".into(), "chown".into()],
                drop: Vec::new(),
            })
        },
        "pss.baseline.capabilities",
        "container adds capabilities beyond the baseline set: NET_ADMIN, chown",
    ),
    (
        PssLevel::Baseline,
        |v| {
            v.volumes = Some(vec![Volume {
                name: "docker".into(),
                kind: VolumeType::HostPath,
                host_path: Some("/var/run/docker.sock".into()),
                driver: None,
            }])
        },
        "pss.baseline.hostPathVolumes",
        "pod uses hostPath volumes (/var/run/docker.sock)",
    ),
    (
        PssLevel::Restricted,
        |v| v.host_ports = Some(vec![0, 8080]),
        "pss.baseline.hostPorts",
        "container uses host ports (8080)",
    ),
    (
        PssLevel::Restricted,
        |v| v.probe_hosts = Some(vec![String::new(), "127.0.0.1".into(), "db".into()]),
        "pss.baseline.probeHosts",
        "probes or lifecycle handlers target other hosts (127.0.0.1, db)",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.apparmor = Some(Layered {
                pod: Some(AppArmor::RuntimeDefault),
                container: Some(AppArmor::Unconfined),
            })
        },
        "pss.baseline.appArmor",
        "AppArmor is disabled or invalid (container profile Unconfined)",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.pod.annotations.insert(
                "container.apparmor.security.beta.kubernetes.io/app".into(),
                "unconfined".into(),
            );
        },
        "pss.baseline.appArmor",
        "AppArmor is disabled or invalid (annotation container.apparmor.security.beta.kubernetes.io/app=unconfined)",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.selinux = Some(Layered {
                pod: None,
                container: Some(SeLinux {
                    kind: Some("spc_t".into()),
                    ..SeLinux::default()
                }),
            })
        },
        "pss.baseline.seLinux",
        r#"container SELinux type "spc_t" is not allowed (allowed: container_t, container_init_t, container_kvm_t, container_engine_t)"#,
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.selinux = Some(Layered {
                pod: Some(SeLinux {
                    user: Some("system_u".into()),
                    level: Some("s0:c1,c2".into()),
                    ..SeLinux::default()
                }),
                container: None,
            })
        },
        "pss.baseline.seLinux",
        "pod-level SELinux user may not be set",
    ),
    (
        PssLevel::Baseline,
        |v| v.security.proc_mount = Some(ProcMount::Unmasked),
        "pss.baseline.procMount",
        "container uses procMount: Unmasked",
    ),
    (
        PssLevel::Baseline,
        |v| {
            v.security.seccomp = Some(Layered {
                pod: Some(Seccomp::Unconfined),
                container: Some(Seccomp::RuntimeDefault),
            })
        },
        "pss.baseline.seccomp",
        "pod-level seccomp profile is Unconfined",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.sysctls = Some(vec![
                ("net.ipv4.tcp_notsent_lowat".into(), "1".into()),
                ("kernel.msgmax".into(), "1".into()),
                ("net/ipv4/tcp_syncookies".into(), "1".into()),
            ])
        },
        "pss.baseline.sysctls",
        "pod sets unsafe sysctls (kernel.msgmax, net/ipv4/tcp_syncookies)",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.volumes = Some(vec![
                Volume {
                    name: "image".into(),
                    kind: VolumeType::Image,
                    host_path: None,
                    driver: None,
                },
                Volume {
                    name: "docker".into(),
                    kind: VolumeType::HostPath,
                    host_path: Some("/var/run/docker.sock".into()),
                    driver: None,
                },
                Volume {
                    name: "repo".into(),
                    kind: VolumeType::Other,
                    host_path: None,
                    driver: None,
                },
            ])
        },
        "pss.restricted.volumeTypes",
        r#"pod uses volume types the restricted level forbids: "docker" (hostPath), "repo" (other)"#,
    ),
    (
        PssLevel::Restricted,
        |v| v.security.allow_privilege_escalation = Some(None),
        "pss.restricted.privilegeEscalation",
        "container must set securityContext.allowPrivilegeEscalation=false",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.run_as_non_root = Some(Layered {
                pod: Some(false),
                container: Some(true),
            })
        },
        "pss.restricted.runAsNonRoot",
        "pod-level runAsNonRoot is false",
    ),
    (
        PssLevel::Restricted,
        |v| v.security.run_as_non_root = Some(Layered::default()),
        "pss.restricted.runAsNonRoot",
        "runAsNonRoot is not set to true",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.run_as_user = Some(Layered {
                pod: Some(0),
                container: Some(1000),
            })
        },
        "pss.restricted.runAsUser",
        "pod-level runAsUser is 0 (root)",
    ),
    (
        PssLevel::Restricted,
        |v| v.security.seccomp = Some(Layered::default()),
        "pss.restricted.seccomp",
        "no seccomp profile is set; securityContext.seccompProfile.type must be RuntimeDefault or Localhost",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.seccomp = Some(Layered {
                pod: Some(Seccomp::RuntimeDefault),
                container: Some(Seccomp::Unconfined),
            })
        },
        "pss.restricted.seccomp",
        "container seccomp profile is Unconfined; it must be RuntimeDefault or Localhost",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.capabilities = Some(Capabilities::Declared {
                add: Vec::new(),
                drop: vec!["all".into()],
            })
        },
        "pss.restricted.capabilities",
        "container must drop ALL capabilities (securityContext.capabilities.drop: [ALL])",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.capabilities = Some(Capabilities::Declared {
                add: vec!["NET_BIND_SERVICE".into(), "CHOWN".into()],
                drop: vec!["ALL".into()],
            })
        },
        "pss.restricted.capabilities",
        "container adds capabilities other than NET_BIND_SERVICE: CHOWN",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
                "NET_BIND_SERVICE",
                "NET_RAW",
            ])))
        },
        "pss.restricted.capabilities",
        "container keeps capabilities other than NET_BIND_SERVICE: NET_RAW",
    ),
    (
        PssLevel::Restricted,
        |v| {
            v.security.proc_mount = Some(ProcMount::Unmasked);
            v.security.host_users = Some(false);
        },
        "pss.restricted.procMount",
        "container uses procMount: Unmasked",
    ),
];

#[test]
fn each_control_fails_alone_with_its_id_and_message() {
    for (level, mutate, id, message) in CONTROLS {
        let p = Policy::pod_security(*level, Effect::Enforce);
        let view = with(mutate);
        let d = evaluate(&p, &view);
        assert_eq!(
            findings(&d),
            [(*id, Effect::Enforce, *message)],
            "{id} at {level:?}: {d:#?}"
        );
        assert!(d.undecided.is_empty(), "{id}: {d:#?}");
        assert_eq!(d.verdict(), Verdict::Deny);
    }
}

#[test]
fn every_control_has_a_failing_case() {
    let covered: std::collections::BTreeSet<&str> = CONTROLS.iter().map(|c| c.2).collect();
    let mut all: Vec<&str> = BASELINE_IDS.to_vec();
    all.extend(
        restricted()
            .check_ids()
            .filter(|id| id.starts_with("pss.restricted.")),
    );
    for id in all {
        assert!(covered.contains(id), "no failing case for {id}");
    }
}

#[test]
fn effective_capabilities_are_judged_against_the_runtime_default() {
    // Baseline: the runtime's defaults are not "added"; SYS_ADMIN is.
    let mut set = runtime_default().clone();
    set.insert("SYS_ADMIN");
    let view = with(|v| v.security.capabilities = Some(Capabilities::Effective(set)));
    assert_eq!(
        messages(&evaluate(&baseline(), &view)),
        [(
            "pss.baseline.capabilities",
            "container adds capabilities beyond the baseline set: SYS_ADMIN"
        )]
    );
}

#[test]
fn unknown_inputs_leave_controls_undecided() {
    assert_undecided(
        &restricted(),
        &with(|v| v.security.capabilities = None),
        &[("pss.restricted.capabilities", "security.capabilities")],
    );
    assert_undecided(
        &restricted(),
        &with(|v| v.volumes = None),
        &[("pss.restricted.volumeTypes", "volumes")],
    );
    let d = evaluate(&baseline(), &ContainerView::default());
    assert!(d.violations.is_empty(), "{d:#?}");
    assert_eq!(d.lacking().count(), BASELINE_IDS.len(), "{d:#?}");
    assert_eq!(d.verdict(), Verdict::Undecided);
}

#[test]
fn windows_pods_skip_the_three_linux_only_restricted_controls() {
    let view = with(|v| {
        v.pod.os = Some("windows".into());
        v.security.allow_privilege_escalation = Some(None);
        v.security.seccomp = Some(Layered::default());
        v.security.capabilities = Some(Capabilities::Declared {
            add: Vec::new(),
            drop: Vec::new(),
        });
    });
    assert_clean(&restricted(), &view);
    // runAsNonRoot still applies.
    let mut view = view;
    view.security.run_as_non_root = Some(Layered::default());
    assert_eq!(
        messages(&evaluate(&restricted(), &view)),
        [(
            "pss.restricted.runAsNonRoot",
            "runAsNonRoot is not set to true"
        )]
    );
}

#[test]
fn a_user_namespace_relaxes_run_as_non_root_run_as_user_and_baseline_proc_mount() {
    let view = with(|v| {
        v.security.host_users = Some(false);
        v.security.run_as_non_root = Some(Layered::default());
        v.security.run_as_user = Some(Layered::effective_only(0));
        v.security.proc_mount = Some(ProcMount::Unmasked);
    });
    assert_clean(&baseline(), &view);
    assert_eq!(
        messages(&evaluate(&restricted(), &view)),
        [(
            "pss.restricted.procMount",
            "container uses procMount: Unmasked"
        )]
    );
    // Whether the pod has a user namespace decides baseline procMount.
    let unknown = with(|v| {
        v.security.host_users = None;
        v.security.proc_mount = Some(ProcMount::Unmasked);
    });
    assert_undecided(
        &baseline(),
        &unknown,
        &[("pss.baseline.procMount", "security.hostUsers")],
    );
}

#[test]
fn spec_pod_security_matches_the_preset() {
    let p = policy(&document("pss", "podSecurity: {level: restricted}\n"));
    let mut ids: Vec<&str> = p.check_ids().collect();
    let mut preset: Vec<&str> = restricted().check_ids().collect();
    ids.sort_unstable();
    preset.sort_unstable();
    assert_eq!(ids, preset);
    let view = with(|v| v.security.privileged = Some(true));
    let d = evaluate(&p, &view);
    assert_eq!(&*d.violations[0].policy, "pss");
    assert_eq!(
        messages(&d),
        [("pss.baseline.privileged", "container is privileged")]
    );
}

#[test]
fn an_exemption_without_namespaces_or_images_removes_the_whole_control() {
    let p = policy(&document(
        "pss",
        "podSecurity:\n  level: restricted\n  exemptions:\n    - controls: [seccomp, capabilities]\n",
    ));
    assert!(
        p.check_ids()
            .all(|id| !id.ends_with(".seccomp") && !id.ends_with(".capabilities")),
        "{:?}",
        p.check_ids().collect::<Vec<_>>()
    );
    assert_eq!(p.check_count(), restricted().check_count() - 2);
    let view = with(|v| {
        v.security.seccomp = Some(Layered::effective_only(Seccomp::Unconfined));
        v.security.capabilities = Some(Capabilities::Declared {
            add: vec!["SYS_ADMIN".into()],
            drop: Vec::new(),
        });
    });
    assert_clean(&p, &view);
    // At baseline the same name removes the baseline controls.
    let p = policy(&document(
        "pss",
        "podSecurity:\n  level: baseline\n  exemptions:\n    - controls: [capabilities]\n",
    ));
    assert!(p.check_ids().all(|id| id != "pss.baseline.capabilities"));
    let caps_only = with(|v| {
        v.security.capabilities = Some(Capabilities::Declared {
            add: vec!["SYS_ADMIN".into()],
            drop: Vec::new(),
        });
    });
    assert_clean(&p, &caps_only);
    assert!(evaluate(&p, &view).is_denied());
}

const NARROWED: &str = "podSecurity:
  level: baseline
  exemptions:
    - controls: [hostPorts]
      namespaces: ['ingress-*']
    - controls: [privileged]
      images: ['^registry\\.corp/csi-']
    - controls: [hostNamespaces]
      namespaces: [kube-system]
      images: ['^registry\\.k8s\\.io/kube-proxy:']
";

fn narrowed_case(namespace: &str, image: Option<&str>) -> ContainerView {
    with(|v| {
        v.pod.namespace = namespace.into();
        v.image = image.map(ImageRef::parse);
        v.host_ports = Some(vec![443]);
        v.security.privileged = Some(true);
        v.host_namespaces = HostNamespaces {
            network: Some(true),
            ..HostNamespaces::NONE
        };
    })
}

fn failing(p: &Policy, view: &ContainerView) -> Vec<&'static str> {
    let mut ids: Vec<&str> = evaluate(p, view)
        .violations
        .iter()
        .map(|v| v.rule)
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn exemptions_narrowed_by_namespace_or_image_apply_only_there() {
    let p = policy(&document("pss", NARROWED));
    // Narrowed exemptions keep the control.
    assert_eq!(p.check_count(), baseline().check_count());
    let all = [
        "pss.baseline.hostNamespaces",
        "pss.baseline.hostPorts",
        "pss.baseline.privileged",
    ];
    assert_eq!(
        failing(&p, &narrowed_case("prod", Some("registry.corp/app:1"))),
        all
    );
    assert_eq!(
        failing(
            &p,
            &narrowed_case("ingress-nginx", Some("registry.corp/app:1"))
        ),
        ["pss.baseline.hostNamespaces", "pss.baseline.privileged"]
    );
    assert_eq!(
        failing(
            &p,
            &narrowed_case("prod", Some("registry.corp/csi-driver:1"))
        ),
        ["pss.baseline.hostNamespaces", "pss.baseline.hostPorts"]
    );
    // Both namespace and image must match.
    assert_eq!(
        failing(
            &p,
            &narrowed_case("kube-system", Some("registry.k8s.io/kube-proxy:v1.31"))
        ),
        ["pss.baseline.hostPorts", "pss.baseline.privileged"]
    );
    assert_eq!(
        failing(
            &p,
            &narrowed_case("kube-system", Some("registry.corp/app:1"))
        ),
        all
    );
    assert_eq!(
        failing(
            &p,
            &narrowed_case("default", Some("registry.k8s.io/kube-proxy:v1.31"))
        ),
        all
    );
    // An unknown image is never exempt.
    assert_eq!(failing(&p, &narrowed_case("prod", None)), all);
}

#[test]
fn pod_security_and_rules_share_a_document_and_its_scope() {
    let p = policy(&document(
        "combined",
        "scope: {namespaces: [prod]}
podSecurity: {level: baseline, effect: warn}
rules:
  readOnlyRootFilesystem: {}
",
    ));
    let view = with(|v| {
        v.security.privileged = Some(true);
        v.security.read_only_root_filesystem = Some(false);
    });
    let d = evaluate(&p, &view);
    let mut got = findings(&d);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            (
                "pss.baseline.privileged",
                Effect::Warn,
                "container is privileged"
            ),
            (
                "readOnlyRootFilesystem",
                Effect::Enforce,
                "container's root filesystem is writable"
            ),
        ]
    );
    let mut elsewhere = view;
    elsewhere.pod.namespace = "dev".into();
    assert!(evaluate(&p, &elsewhere).is_clean());
}

#[test]
fn pss_host_namespaces_reports_a_known_shared_namespace_when_another_is_unknown() {
    let view = with(|v| {
        v.host_namespaces = HostNamespaces {
            network: Some(true),
            pid: None,
            ipc: Some(false),
        }
    });
    let d = evaluate(&baseline(), &view);
    assert_eq!(
        messages(&d),
        [(
            "pss.baseline.hostNamespaces",
            "pod shares host namespaces (hostNetwork=true)"
        )]
    );
    assert_eq!(d.verdict(), Verdict::Deny);
}

#[test]
fn pss_run_as_user_is_undecided_when_host_users_is_unknown() {
    // procMount says undecided when hostUsers is unknown; runAsUser and runAsNonRoot deny.
    let view = with(|v| {
        v.security.host_users = None;
        v.security.run_as_user = Some(Layered::effective_only(0));
    });
    let d = evaluate(&restricted(), &view);
    assert!(d.violations.is_empty(), "{d:#?}");
    let mut got = undecided(&d);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            ("pss.restricted.runAsNonRoot", "security.hostUsers"),
            ("pss.restricted.runAsUser", "security.hostUsers"),
        ]
    );
}
