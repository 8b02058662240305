//! The gatekeeper-library's pod-security and resource kinds: allowed and disallowed pods per
//! kind, written from the templates' semantics (the CEL form where Gatekeeper runs it, the
//! Rego form's per-container messages), in manifests and as the node sees them.

use policy_core::capabilities::CapabilitySet;
use policy_core::image::ImageRef;
use policy_core::quantity::{Bytes, Millicores};
use policy_core::view::{
    AppArmor, Capabilities, ContainerKind, ContainerView, Layered, Mount, MountSource, ProcMount,
    SeLinux, Seccomp, ViewSource, Volume, VolumeType,
};
use policy_core::{Policy, evaluate};

use crate::util::{MI, compliant};

fn constraint(kind: &str, parameters: &str) -> Policy {
    let text = format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: c}}\nspec:\n  parameters: {parameters}\n"
    );
    Policy::parse("c.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Every violation's message.
fn messages(policy: &Policy, view: &ContainerView) -> Vec<String> {
    evaluate(policy, view)
        .violations
        .into_iter()
        .map(|v| v.message)
        .collect()
}

/// The fields the checks lacked.
fn unknown(policy: &Policy, view: &ContainerView) -> Vec<&'static str> {
    evaluate(policy, view)
        .lacking()
        .map(|u| u.missing)
        .collect()
}

fn view(edit: impl FnOnce(&mut ContainerView)) -> ContainerView {
    let mut v = compliant();
    v.name = "nginx".into();
    v.pod.name = "nginx-pod".into();
    edit(&mut v);
    v
}

/// The same container as the runtime shows it (effective values only).
fn on_node(edit: impl FnOnce(&mut ContainerView)) -> ContainerView {
    view(|v| {
        v.source = ViewSource::Runtime;
        v.security.run_as_non_root = None;
        v.security.fs_group = None;
        v.stdin = None;
        v.pod.automount_token = None;
        v.security.seccomp = Some(Layered::default());
        v.security.run_as_user = Some(Layered::effective_only(1000));
        v.security.run_as_group = Some(Layered::effective_only(1000));
        edit(v);
    })
}

#[test]
fn container_requests_need_both_and_cap_them_on_manifests_memory_stays_unknown_on_the_node() {
    let policy = constraint("K8sContainerRequests", "{cpu: 300m, memory: 1Gi}");
    assert_eq!(messages(&policy, &compliant()), Vec::<String>::new());
    let over = view(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_request = Some(Millicores(400));
        r.memory_request = Some(Bytes(2048 * MI));
    });
    assert_eq!(
        messages(&policy, &over),
        [
            "container <nginx> cpu request <400m> is higher than the maximum allowed of <300m>",
            "container <nginx> memory request <2Gi> is higher than the maximum allowed of <1Gi>"
        ]
    );
    let none = view(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_request = None;
        r.memory_request = None;
    });
    assert_eq!(
        messages(&policy, &none),
        ["container <nginx> has no resource requests"]
    );
    let node = on_node(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_request = None;
        r.memory_request = None;
        r.memory_request_known = false;
    });
    assert_eq!(
        messages(&policy, &node),
        ["container <nginx> has no cpu request"]
    );
    assert_eq!(unknown(&policy, &node), ["resources.memoryRequest"]);
    let ephemeral = view(|v| {
        v.kind = Some(ContainerKind::Ephemeral);
        v.resources.as_mut().unwrap().cpu_request = None;
    });
    assert!(messages(&policy, &ephemeral).is_empty());
}

#[test]
fn container_ratios_compare_limit_to_request_cpu_ratio_only_with_ratio() {
    let policy = constraint("K8sContainerRatios", "{ratio: '2'}");
    // compliant(): 500m / 250m and 256Mi / 128Mi, exactly 2.
    assert!(messages(&policy, &compliant()).is_empty());
    let over = view(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_limit = Some(Millicores(800));
        r.memory_limit = Some(Bytes(2048 * MI));
    });
    assert_eq!(
        messages(&policy, &over),
        [
            "container <nginx> cpu limit <800m> is higher than the maximum allowed ratio of <2>",
            "container <nginx> memory limit <2Gi> is higher than the maximum allowed ratio of <2>"
        ]
    );
    let cpu = constraint("K8sContainerRatios", "{ratio: '1', cpuRatio: '10'}");
    let fine = view(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_limit = Some(Millicores(2500));
        r.memory_limit = Some(Bytes(128 * MI));
    });
    assert!(messages(&cpu, &fine).is_empty());
    let alone = constraint("K8sContainerRatios", "{cpuRatio: '10'}");
    assert!(
        messages(&alone, &over).is_empty(),
        "cpuRatio alone compares nothing"
    );
    let bare = view(|v| {
        v.resources = Some(policy_core::view::Resources {
            memory_request_known: true,
            ..Default::default()
        });
    });
    let mut found = messages(&policy, &bare);
    found.sort();
    assert_eq!(
        found,
        [
            "container <nginx> has no resource limits",
            "container <nginx> has no resource requests"
        ]
    );
}

#[test]
fn required_resources_name_the_missing_set() {
    let policy = constraint(
        "K8sRequiredResources",
        "{limits: [cpu, memory], requests: [cpu, memory]}",
    );
    assert!(messages(&policy, &compliant()).is_empty());
    let v = view(|v| {
        let r = v.resources.as_mut().unwrap();
        r.cpu_limit = None;
        r.memory_limit = None;
        r.cpu_request = None;
    });
    assert_eq!(
        messages(&policy, &v),
        [
            r#"container <nginx> does not have <{"cpu", "memory"}> limits defined"#,
            r#"container <nginx> does not have <{"cpu"}> requests defined"#
        ]
    );
    let nothing = constraint("K8sRequiredResources", "{}");
    assert!(messages(&nothing, &v).is_empty());
}

#[test]
fn interactive_tty_refuses_tty_or_stdin_the_node_sees_only_the_tty() {
    let policy = constraint("K8sDisallowInteractiveTTY", "{}");
    assert!(messages(&policy, &compliant()).is_empty());
    let stdin = view(|v| v.stdin = Some(true));
    assert_eq!(
        messages(&policy, &stdin),
        [
            "Containers using tty or stdin (nginx) are not allowed running image: registry.corp/team/app:1.4.2@sha256:0123abcd"
        ]
    );
    let tty = on_node(|v| v.tty = Some(true));
    assert_eq!(messages(&policy, &tty).len(), 1);
    let node = on_node(|v| v.tty = Some(false));
    assert!(messages(&policy, &node).is_empty());
    assert_eq!(unknown(&policy, &node), ["stdin"]);
    assert!(!evaluate(&policy, &node).admission_only[0].seen_on_node());
}

#[test]
fn capabilities_compare_exactly_in_manifests_and_by_effect_on_the_node() {
    let policy = constraint(
        "K8sPSPCapabilities",
        "{allowedCapabilities: [NET_BIND_SERVICE], requiredDropCapabilities: [ALL]}",
    );
    assert!(messages(&policy, &compliant()).is_empty());
    let add = view(|v| {
        v.security.capabilities = Some(Capabilities::Declared {
            add: vec!["SYS_ADMIN".into()],
            drop: vec!["NET_RAW".into()],
        });
    });
    assert_eq!(
        messages(&policy, &add),
        [
            r#"container <nginx> has a disallowed capability. Allowed capabilities are ["NET_BIND_SERVICE"]"#,
            r#"container <nginx> is not dropping all required capabilities. Container must drop all of ["ALL"] or "ALL""#
        ]
    );
    // The CEL form compares exactly: `net_bind_service` is not the allowed name.
    let lower = view(|v| {
        v.kind = Some(ContainerKind::Init);
        v.security.capabilities = Some(Capabilities::Declared {
            add: vec!["net_bind_service".into()],
            drop: vec!["all".into()],
        });
    });
    assert_eq!(
        messages(&policy, &lower),
        [
            r#"init container <nginx> has a disallowed capability. Allowed capabilities are ["NET_BIND_SERVICE"]"#
        ]
    );
    let none = constraint("K8sPSPCapabilities", "{}");
    assert_eq!(
        messages(&none, &add),
        ["container <nginx> has a disallowed capability. Allowed capabilities are NONE"]
    );
    let star = constraint("K8sPSPCapabilities", "{allowedCapabilities: ['*']}");
    assert!(messages(&star, &add).is_empty());
    // On the node: what the container holds beyond the runtime's default set is "added".
    let node = on_node(|v| {
        v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
            "NET_BIND_SERVICE",
        ])));
    });
    assert!(messages(&policy, &node).is_empty());
    let node = on_node(|v| {
        v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
            "SYS_ADMIN",
            "CHOWN",
        ])));
    });
    assert_eq!(messages(&policy, &node).len(), 2);
}

#[test]
fn allowed_users_judge_each_field_by_its_rule() {
    let policy = constraint(
        "K8sPSPAllowedUsers",
        "{runAsUser: {rule: MustRunAs, ranges: [{min: 100, max: 200}]}, runAsGroup: {rule: MayRunAs, ranges: [{min: 100, max: 200}]}, supplementalGroups: {rule: MustRunAs, ranges: [{min: 100, max: 200}]}, fsGroup: {rule: MustRunAs, ranges: [{min: 100, max: 200}]}}",
    );
    let fine = view(|v| {
        v.security.run_as_user = Some(Layered::effective_only(150));
        v.security.run_as_group = Some(Layered::effective_only(150));
        v.security.supplemental_groups = Some(vec![150]);
        v.security.fs_group = Some(Some(150));
    });
    assert!(messages(&policy, &fine).is_empty());
    let bad = view(|v| {
        v.security.run_as_user = Some(Layered {
            pod: Some(150),
            container: Some(0),
        });
        v.security.supplemental_groups = Some(vec![5, 150]);
        v.security.fs_group = Some(None);
    });
    assert_eq!(
        messages(&policy, &bad),
        [
            r#"Container nginx is attempting to run as disallowed user 0. Allowed runAsUser: {"ranges": [{"max": 200, "min": 100}], "rule": "MustRunAs"}"#,
            r#"Container nginx is attempting to run as disallowed group 1000. Allowed runAsGroup: {"ranges": [{"max": 200, "min": 100}], "rule": "MayRunAs"}"#,
            r#"Container nginx is attempting to run with disallowed supplementalGroups [5, 150]. Allowed supplementalGroups: {"ranges": [{"max": 200, "min": 100}], "rule": "MustRunAs"}"#,
            r#"Container nginx is attempting to run without a required securityContext/fsGroup. Allowed fsGroup: {"ranges": [{"max": 200, "min": 100}], "rule": "MustRunAs"}"#,
        ]
    );
    // The library's sample: non-root users, any group (no ranges: OPA reports nothing).
    let sample = constraint(
        "K8sPSPAllowedUsers",
        "{runAsUser: {rule: MustRunAsNonRoot}, runAsGroup: {rule: RunAsAny}, supplementalGroups: {rule: RunAsAny}, fsGroup: {rule: RunAsAny}}",
    );
    let root = view(|v| v.security.run_as_user = Some(Layered::effective_only(0)));
    assert_eq!(
        messages(&sample, &root),
        [
            r#"Container nginx is attempting to run as disallowed user 0. Allowed runAsUser: {"rule": "MustRunAsNonRoot"}"#
        ]
    );
    let unset = view(|v| {
        v.security.run_as_user = Some(Layered::default());
        v.security.run_as_non_root = Some(Layered::default());
    });
    assert_eq!(
        messages(&sample, &unset),
        [
            "Container nginx is attempting to run without a required securityContext/runAsNonRoot or securityContext/runAsUser != 0"
        ]
    );
    // On the node the process's user is judged; fsGroup never reaches it.
    assert!(messages(&sample, &on_node(|_| {})).is_empty());
    let node_root = on_node(|v| v.security.run_as_user = Some(Layered::effective_only(0)));
    assert_eq!(messages(&sample, &node_root).len(), 1);
    assert_eq!(
        unknown(
            &policy,
            &on_node(|v| {
                v.security.run_as_user = Some(Layered::effective_only(150));
                v.security.run_as_group = Some(Layered::effective_only(150));
                v.security.supplemental_groups = Some(vec![150]);
            })
        ),
        ["security.fsGroup"]
    );
}

#[test]
fn fs_group_is_judged_in_manifests_only() {
    let policy = constraint(
        "K8sPSPFSGroup",
        "{rule: MayRunAs, ranges: [{min: 1, max: 1000}]}",
    );
    let fine = view(|v| v.security.fs_group = Some(Some(500)));
    assert!(messages(&policy, &fine).is_empty());
    let unset = view(|v| v.security.fs_group = Some(None));
    assert!(messages(&policy, &unset).is_empty(), "MayRunAs allows none");
    let bad = view(|v| v.security.fs_group = Some(Some(2000)));
    assert_eq!(
        messages(&policy, &bad),
        [
            r#"The provided pod spec fsGroup is not allowed, pod: nginx-pod. Allowed fsGroup: {"ranges": [{"max": 1000, "min": 1}], "rule": "MayRunAs"}"#
        ]
    );
    let must = constraint("K8sPSPFSGroup", "{rule: MustRunAs, ranges: []}");
    assert_eq!(messages(&must, &fine).len(), 1);
    let no_rule = constraint("K8sPSPFSGroup", "{ranges: [{min: 1, max: 2}]}");
    assert!(messages(&no_rule, &bad).is_empty());
    assert_eq!(unknown(&policy, &on_node(|_| {})), ["security.fsGroup"]);
}

#[test]
fn seccomp_finds_the_profile_where_the_template_does() {
    let policy = constraint(
        "K8sPSPSeccomp",
        "{allowedProfiles: [runtime/default, localhost/profile.json], exemptImages: [nginx-exempt]}",
    );
    assert!(messages(&policy, &compliant()).is_empty());
    let annotation = view(|v| {
        v.security.seccomp = Some(Layered::default());
        v.pod.annotations.insert(
            "container.seccomp.security.alpha.kubernetes.io/nginx".into(),
            "unconfined".into(),
        );
    });
    assert_eq!(
        messages(&policy, &annotation),
        [
            "Seccomp profile 'unconfined' is not allowed for container 'nginx'. Found at: annotation container.seccomp.security.alpha.kubernetes.io/nginx. Allowed profiles: runtime/default, localhost/profile.json"
        ]
    );
    let log = view(|v| {
        v.security.seccomp = Some(Layered {
            pod: Some(Seccomp::RuntimeDefault),
            container: Some(Seccomp::Localhost("profile.log".into())),
        });
    });
    assert_eq!(
        messages(&policy, &log),
        [
            "Seccomp profile 'localhost/profile.log' is not allowed for container 'nginx'. Found at: container securityContext. Allowed profiles: runtime/default, localhost/profile.json"
        ]
    );
    let exempt = view(|v| {
        v.image = Some(ImageRef::parse("nginx-exempt"));
        v.security.seccomp = Some(Layered::effective_only(Seccomp::Unconfined));
    });
    assert!(messages(&policy, &exempt).is_empty());
    // The securityContext forms expand as the CEL form expands them.
    let typed = constraint(
        "K8sPSPSeccomp",
        "{allowedProfiles: [RuntimeDefault, Localhost], allowedLocalhostFiles: ['*']}",
    );
    let not_set = view(|v| v.security.seccomp = Some(Layered::default()));
    assert_eq!(
        messages(&typed, &not_set),
        [
            "Seccomp profile 'not configured' is not allowed for container 'nginx'. Found at: no explicit profile found. Allowed profiles: RuntimeDefault, runtime/default, docker/default, localhost/*"
        ]
    );
    assert!(messages(&typed, &log).is_empty());
    // On the node, a filter of unknown kind passes where any would, else stays undecided.
    let confined = on_node(|v| {
        v.security.seccomp = Some(Layered::effective_only(Seccomp::Confined));
    });
    assert!(evaluate(&typed, &confined).is_clean());
    assert_eq!(unknown(&policy, &confined), ["security.seccomp"]);
}

#[test]
fn seccomp_v2_judges_types_and_localhost_files() {
    let baseline = constraint(
        "K8sPSPSeccompV2",
        "{allowedProfiles: [RuntimeDefault, Localhost, not configured], allowedLocalhostFiles: ['*']}",
    );
    let restricted = constraint(
        "K8sPSPSeccompV2",
        "{allowedProfiles: [RuntimeDefault, Localhost], allowedLocalhostFiles: [profile.json]}",
    );
    let unconfined = view(|v| {
        v.security.seccomp = Some(Layered {
            pod: Some(Seccomp::Unconfined),
            container: None,
        });
    });
    assert_eq!(
        messages(&baseline, &unconfined),
        [
            r#"Seccomp profile 'Unconfined' is not allowed for container 'nginx'. Found at: pod securityContext. Allowed profiles: {"type": "RuntimeDefault"}, {"type": "Localhost", "localHostProfile": "*"}, {"type": "not configured"}"#
        ]
    );
    let none = view(|v| v.security.seccomp = Some(Layered::default()));
    assert!(messages(&baseline, &none).is_empty());
    assert_eq!(
        messages(&restricted, &none),
        [
            r#"Seccomp profile 'not configured' is not allowed for container 'nginx'. Found at: no explicit profile found. Allowed profiles: {"type": "RuntimeDefault"}, {"type": "Localhost", "localHostProfile": "profile.json"}"#
        ]
    );
    let other = view(|v| {
        v.security.seccomp = Some(Layered::effective_only(Seccomp::Localhost("x.json".into())));
    });
    assert_eq!(
        messages(&restricted, &other),
        [
            r#"Seccomp profile 'Localhost' With file 'x.json' is not allowed for container 'nginx'. Found at: container securityContext. Allowed profiles: {"type": "RuntimeDefault"}, {"type": "Localhost", "localHostProfile": "profile.json"}"#
        ]
    );
    assert!(messages(&baseline, &other).is_empty());
}

#[test]
fn apparmor_defaults_to_runtime_default_and_compares_exactly() {
    let policy = constraint(
        "K8sPSPAppArmor",
        "{allowedProfiles: [runtime/default, localhost/*]}",
    );
    assert!(messages(&policy, &compliant()).is_empty());
    let unset = view(|v| v.security.apparmor = Some(Layered::default()));
    assert!(messages(&policy, &unset).is_empty());
    let unconfined = view(|v| {
        v.security.apparmor = Some(Layered {
            pod: Some(AppArmor::RuntimeDefault),
            container: Some(AppArmor::Unconfined),
        });
    });
    assert_eq!(
        messages(&policy, &unconfined),
        [
            r#"AppArmor profile is not allowed, pod: nginx-pod, container: nginx. Allowed profiles: ["runtime/default", "localhost/*"]"#
        ]
    );
    let local = view(|v| {
        v.security.apparmor = Some(Layered::effective_only(AppArmor::Localhost("k8s-x".into())));
    });
    assert_eq!(
        messages(&policy, &local).len(),
        1,
        "localhost/* is no wildcard"
    );
}

#[test]
fn selinux_options_agree_with_an_entry_on_every_field_they_set() {
    let policy = constraint(
        "K8sPSPSELinuxV2",
        "{allowedSELinuxOptions: [{type: container_t}, {type: container_init_t}]}",
    );
    assert!(messages(&policy, &compliant()).is_empty());
    let bad = view(|v| {
        v.security.selinux = Some(Layered {
            pod: Some(SeLinux {
                kind: Some("container_t".into()),
                level: Some("s0:c123,c456".into()),
                ..SeLinux::default()
            }),
            container: Some(SeLinux {
                kind: Some("svirt_lxc_net_t".into()),
                user: Some("system_u".into()),
                ..SeLinux::default()
            }),
        });
    });
    assert_eq!(
        messages(&policy, &bad),
        [
            r#"SELinux options is not allowed, pod: nginx-pod. Allowed options: [{"type": "container_t"}, {"type": "container_init_t"}]"#,
            r#"SELinux options is not allowed, pod: nginx-pod, container: nginx. Allowed options: [{"type": "container_t"}, {"type": "container_init_t"}]"#,
        ]
    );
    // On the node the runtime sets user, role and level itself: only the type is judged.
    let node = on_node(|v| {
        v.security.selinux = Some(Layered::effective_only(SeLinux {
            kind: Some("container_t".into()),
            level: Some("s0:c1,c2".into()),
            ..SeLinux::default()
        }));
    });
    assert!(messages(&policy, &node).is_empty());
}

#[test]
fn proc_mount_sysctls_and_host_process() {
    let proc = constraint("K8sPSPProcMount", "{procMount: Default}");
    let unmasked = view(|v| v.security.proc_mount = Some(ProcMount::Unmasked));
    assert_eq!(
        messages(&proc, &unmasked),
        ["ProcMount type is not allowed, container: nginx. Allowed procMount types: default"]
    );
    assert!(
        messages(
            &constraint("K8sPSPProcMount", "{procMount: unmasked}"),
            &unmasked
        )
        .is_empty()
    );
    assert!(messages(&constraint("K8sPSPProcMount", "{}"), &compliant()).is_empty());

    let sysctls = constraint(
        "K8sPSPForbiddenSysctls",
        "{forbiddenSysctls: ['kernel.*'], allowedSysctls: ['net.*']}",
    );
    let set = |names: &[&str]| {
        view(|v| {
            v.security.sysctls = Some(
                names
                    .iter()
                    .map(|n| ((*n).to_string(), "1".into()))
                    .collect(),
            );
        })
    };
    assert!(messages(&sysctls, &set(&["net.ipv4.ip_local_port_range"])).is_empty());
    assert_eq!(
        messages(&sysctls, &set(&["kernel.msgmax"])),
        ["The sysctl is not allowed for pod: nginx-pod, forbidden: kernel.*, allowed: net.*"]
    );
    assert_eq!(
        messages(&sysctls, &set(&["vm.swappiness"])).len(),
        1,
        "not allowed"
    );
    let empty = constraint(
        "K8sPSPForbiddenSysctls",
        "{forbiddenSysctls: [], allowedSysctls: []}",
    );
    assert_eq!(
        messages(&empty, &set(&["net.core.somaxconn"])),
        ["The sysctl is not allowed for pod: nginx-pod, forbidden: , allowed: empty"]
    );
    let only_forbidden = constraint("K8sPSPForbiddenSysctls", "{forbiddenSysctls: ['*']}");
    assert_eq!(
        messages(&only_forbidden, &set(&["net.core.somaxconn"])),
        ["The sysctl is not allowed for pod: nginx-pod, forbidden: *, allowed: unspecified"]
    );

    let host_process = constraint("K8sPSPHostProcess", "{}");
    assert!(messages(&host_process, &compliant()).is_empty());
    let hp = view(|v| v.security.host_process = Some(true));
    assert_eq!(
        messages(&host_process, &hp),
        [
            "HostProcess container is not allowed: nginx, securityContext.windowsOptions.hostProcess: true"
        ]
    );
}

#[test]
fn volume_types_and_flex_volume_drivers() {
    let types = constraint(
        "K8sPSPVolumeTypes",
        "{volumes: [configMap, emptyDir, projected, secret]}",
    );
    let volume = |kind: VolumeType, name: &str, driver: Option<&str>| Volume {
        name: name.into(),
        kind,
        host_path: (kind == VolumeType::HostPath).then(|| "/var/log".into()),
        driver: driver.map(str::to_string),
    };
    let v = view(|v| {
        v.volumes = Some(vec![
            volume(VolumeType::HostPath, "logs", None),
            volume(VolumeType::HostPath, "more", None),
            volume(VolumeType::EmptyDir, "tmp", None),
        ]);
    });
    assert_eq!(
        messages(&types, &v),
        [
            r#"The volume type hostPath is not allowed, pod: nginx-pod. Allowed volume types: ["configMap", "emptyDir", "projected", "secret"]"#
        ]
    );
    assert!(messages(&constraint("K8sPSPVolumeTypes", "{volumes: ['*']}"), &v).is_empty());
    assert!(
        messages(&constraint("K8sPSPVolumeTypes", "{}"), &v).is_empty(),
        "without volumes Gatekeeper reports nothing"
    );

    let flex = constraint(
        "K8sPSPFlexVolumes",
        "{allowedFlexVolumes: [{driver: example/lvm}, {driver: example/cifs}]}",
    );
    let with = |driver: Option<&str>| {
        view(|v| v.volumes = Some(vec![volume(VolumeType::FlexVolume, "test-volume", driver)]))
    };
    assert!(messages(&flex, &with(Some("example/lvm"))).is_empty());
    assert_eq!(
        messages(&flex, &with(Some("example/testdriver"))),
        [
            r#"FlexVolume {"flexVolume": {"driver": "example/testdriver"}, "name": "test-volume"} is not allowed, pod: nginx-pod. Allowed drivers: [{"driver": "example/lvm"}, {"driver": "example/cifs"}]"#
        ]
    );
    assert_eq!(unknown(&flex, &with(None)), ["volumes.flexVolume.driver"]);
}

#[test]
fn the_service_account_token_is_judged_by_the_field_or_its_mount() {
    let policy = constraint("K8sPSPAutomountServiceAccountTokenPod", "{}");
    assert!(messages(&policy, &compliant()).is_empty());
    let explicit = view(|v| v.pod.automount_token = Some(Some(true)));
    assert_eq!(
        messages(&policy, &explicit),
        ["Automounting service account token is disallowed, pod: nginx-pod"]
    );
    let token = Mount {
        destination: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
        source: MountSource::KubeletVolume {
            kind: VolumeType::Projected,
            name: "kube-api-access-x".into(),
        },
        read_only: true,
    };
    let unset = view(|v| {
        v.pod.automount_token = Some(None);
        v.mounts = Some(vec![token.clone()]);
    });
    assert_eq!(messages(&policy, &unset).len(), 1);
    let unset_no_mount = view(|v| v.pod.automount_token = Some(None));
    assert!(messages(&policy, &unset_no_mount).is_empty());
    let node = on_node(|v| v.mounts = Some(vec![token]));
    assert_eq!(messages(&policy, &node).len(), 1);
    assert!(messages(&policy, &on_node(|_| {})).is_empty());
}

#[test]
fn probes_are_judged_in_manifests_and_skipped_on_the_node() {
    use policy_core::view::Handler;
    let handler = |point: &'static str, action: &'static str, host: Option<&str>| Handler {
        point,
        actions: vec![action],
        host: host.map(str::to_string),
    };
    let required = constraint(
        "K8sRequiredProbes",
        "{probes: [readinessProbe, livenessProbe], probeTypes: [tcpSocket, httpGet, exec]}",
    );
    let probed = view(|v| {
        v.handlers = Some(vec![
            handler("readinessProbe", "httpGet", None),
            handler("livenessProbe", "exec", None),
        ]);
    });
    assert!(messages(&required, &probed).is_empty());
    let grpc = view(|v| v.handlers = Some(vec![handler("readinessProbe", "grpc", None)]));
    assert_eq!(
        messages(&required, &grpc),
        [
            "Container <nginx> in your <Pod> <nginx-pod> has no <readinessProbe>",
            "Container <nginx> in your <Pod> <nginx-pod> has no <livenessProbe>"
        ]
    );
    let init = view(|v| {
        v.kind = Some(ContainerKind::Init);
        v.handlers = Some(Vec::new());
    });
    assert!(
        messages(&required, &init).is_empty(),
        "only spec.containers"
    );

    let hosts = constraint("K8sPSPHostProbesLifecycle", "{}");
    assert!(messages(&hosts, &probed).is_empty());
    let bad = view(|v| {
        v.handlers = Some(vec![
            handler("livenessProbe", "httpGet", Some("169.254.169.254")),
            handler("preStop", "tcpSocket", Some("10.0.0.1")),
        ]);
    });
    assert_eq!(
        messages(&hosts, &bad),
        [
            "Container nginx has probe with host field set",
            "Container nginx has lifecycle hook with host field set"
        ]
    );
    // The kubelet runs probes: the node never sees them, and never refuses for them.
    let node = on_node(|v| v.handlers = None);
    for policy in [&required, &hosts] {
        let decision = evaluate(policy, &node);
        assert!(decision.violations.is_empty());
        assert!(decision.undecided.is_empty());
        assert_eq!(decision.admission_only.len(), 1);
        assert_eq!(decision.verdict(), policy_core::Verdict::Allow);
    }
}

#[test]
fn the_node_never_refuses_what_it_cannot_tell_from_the_pods_declaration() {
    // containerd 2.x's own sandbox sysctls are not the pod's.
    let none_allowed = constraint("K8sPSPForbiddenSysctls", "{allowedSysctls: []}");
    let defaults = |source| {
        view(|v| {
            v.source = source;
            v.security.sysctls = Some(vec![
                ("net.ipv4.ip_unprivileged_port_start".into(), "0".into()),
                ("net.ipv4.ping_group_range".into(), "0 2147483647".into()),
            ]);
        })
    };
    assert!(messages(&none_allowed, &defaults(ViewSource::Runtime)).is_empty());
    assert_eq!(
        messages(&none_allowed, &defaults(ViewSource::Manifest)).len(),
        1
    );

    // A group the pod may leave unset: on the node, the process's group is not a declaration.
    let may = constraint(
        "K8sPSPAllowedUsers",
        "{runAsGroup: {rule: MayRunAs, ranges: [{min: 100, max: 200}]}, supplementalGroups: {rule: MayRunAs, ranges: [{min: 100, max: 200}]}}",
    );
    let node = on_node(|v| {
        v.security.run_as_group = Some(Layered::effective_only(0));
        v.security.supplemental_groups = Some(vec![0, 10]);
    });
    assert!(messages(&may, &node).is_empty());
    assert_eq!(
        unknown(&may, &node),
        ["security.runAsGroup", "security.supplementalGroups"]
    );

    // A rule object without `rule` judges nothing (and says so).
    let ruleless = constraint(
        "K8sPSPAllowedUsers",
        "{runAsUser: {ranges: [{min: 100, max: 200}]}}",
    );
    assert!(
        messages(
            &ruleless,
            &view(|v| v.security.run_as_user = Some(Layered::effective_only(150)))
        )
        .is_empty()
    );
    assert_eq!(ruleless.notes().len(), 1);

    // `*` allows any capability back; a privileged container's set says nothing of its adds.
    let star = constraint(
        "K8sPSPCapabilities",
        "{allowedCapabilities: ['*'], requiredDropCapabilities: [ALL]}",
    );
    let holds = on_node(|v| {
        v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
            "SYS_ADMIN",
        ])));
    });
    assert!(messages(&star, &holds).is_empty());
    let privileged = on_node(|v| {
        v.security.privileged = Some(true);
        v.security.capabilities = Some(Capabilities::Effective(CapabilitySet::all()));
    });
    let strict = constraint("K8sPSPCapabilities", "{allowedCapabilities: []}");
    assert!(messages(&strict, &privileged).is_empty());
    assert_eq!(unknown(&strict, &privileged), ["security.capabilities"]);

    // containerd's default SELinux type on a pod that declares none.
    let selinux = constraint(
        "K8sPSPSELinuxV2",
        "{allowedSELinuxOptions: [{type: svirt_sandbox_file_t}]}",
    );
    let labelled = on_node(|v| {
        v.security.selinux = Some(Layered::effective_only(SeLinux {
            kind: Some("container_t".into()),
            ..SeLinux::default()
        }));
    });
    assert!(messages(&selinux, &labelled).is_empty());
}
