//! Azure Policy for AKS constraints (`K8sAzure...` kinds) as policy: the add-on's kinds judged
//! with the semantics and messages of its templates. Fixtures in
//! `policy-core/testdata/gatekeeper/azure-*.yaml`, written from the templates' semantics.

use policy_core::view::{ContainerKind, ContainerView};
use policy_core::{Effect, Policy, evaluate};

use crate::util::{compliant, fixture};

fn seed() -> Policy {
    Policy::parse("azure-seed.yaml", &fixture("gatekeeper/azure-seed.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A compliant container of pod `default/web` by the seed constraints.
fn ok() -> ContainerView {
    let mut view = compliant();
    view.pod.namespace = "default".into();
    view.pod.name = "web".into();
    view.name = "app".into();
    view.image = Some(policy_core::image::ImageRef::parse(
        "myregistry.azurecr.io/shop/web:1.4",
    ));
    for key in ["team", "costcenter"] {
        view.pod.labels.insert(key.into(), "x".into());
    }
    let r = view.resources.as_mut().unwrap();
    r.cpu_limit = Some(policy_core::quantity::Millicores(200));
    r.memory_limit = Some(policy_core::quantity::Bytes(1 << 30));
    view
}

/// (kind, effect, message) of every violation.
fn found(policy: &Policy, view: &ContainerView) -> Vec<(String, Effect, String)> {
    evaluate(policy, view)
        .violations
        .iter()
        .map(|v| (v.rule.to_string(), v.effect, v.message.clone()))
        .collect()
}

fn only(policy: &Policy, view: &ContainerView) -> (String, Effect, String) {
    let mut all = found(policy, view);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

#[test]
fn the_seed_constraints_load_as_the_add_on_installs_them() {
    let policy = seed();
    assert!(policy.notes().is_empty(), "{:?}", policy.notes());
    assert_eq!(policy.names().count(), 5);
    assert!(
        evaluate(&policy, &ok()).is_clean(),
        "{:?}",
        evaluate(&policy, &ok())
    );
    // The add-on's excluded namespaces.
    let mut system = ok();
    system.pod.namespace = "kube-system".into();
    system.security.privileged = Some(true);
    assert!(evaluate(&policy, &system).is_clean());
}

#[test]
fn allowed_images_is_one_unanchored_regex_on_the_image_as_written() {
    let policy = seed();
    let mut view = ok();
    view.image = Some(policy_core::image::ImageRef::parse("nginx"));
    assert_eq!(
        only(&policy, &view),
        (
            "K8sAzureV2ContainerAllowedImages".into(),
            Effect::Enforce,
            "Container image nginx for container app has not been allowed.".into()
        )
    );
    // excludedContainers names a container exactly.
    view.name = "istio-proxy".into();
    assert!(found(&policy, &view).is_empty());
    view.name = "istio-proxy-2".into();
    assert_eq!(found(&policy, &view).len(), 1);
    // Without imageRegex the template's negated match holds for every image.
    let bare = Policy::parse(
        "a.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureContainerAllowedImages\nmetadata: {name: a}\n",
    )
    .unwrap();
    assert_eq!(found(&bare, &ok()).len(), 1);
    // An unanchored regex matches anywhere, as RE2's search does.
    let loose = Policy::parse(
        "a.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureV2ContainerAllowedImages\nmetadata: {name: a}\nspec: {parameters: {imageRegex: azurecr}}\n",
    )
    .unwrap();
    let mut evil = ok();
    evil.image = Some(policy_core::image::ImageRef::parse(
        "evil.example/azurecr:1",
    ));
    assert!(found(&loose, &evil).is_empty());
}

#[test]
fn no_privilege_exempts_images_by_exact_name_or_star_prefix() {
    let policy = seed();
    let mut view = ok();
    view.security.privileged = Some(true);
    assert_eq!(
        only(&policy, &view).2,
        r#"Privileged container is not allowed: app, securityContext: {"privileged": true}"#
    );
    view.image = Some(policy_core::image::ImageRef::parse(
        "myregistry.azurecr.io/debug/shell:2",
    ));
    assert!(found(&policy, &view).is_empty());
}

#[test]
fn container_limits_checks_presence_and_maxima_on_containers_and_init_containers() {
    let policy = seed();
    let mut view = ok();
    view.resources.as_mut().unwrap().cpu_limit = Some(policy_core::quantity::Millicores(500));
    assert_eq!(
        only(&policy, &view).2,
        "container <app> cpu limit <500m> is higher than the maximum allowed of <200m>"
    );
    let r = view.resources.as_mut().unwrap();
    r.cpu_limit = None;
    r.memory_limit = None;
    assert_eq!(
        only(&policy, &view).2,
        "container <app> has no resource limits"
    );
    view.kind = Some(ContainerKind::Ephemeral);
    assert!(found(&policy, &view).is_empty(), "ephemeral containers");
    // Without cpuLimit, a CPU limit must still be there.
    let no_max = Policy::parse(
        "l.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureV3ContainerLimits\nmetadata: {name: l}\nspec: {parameters: {memoryLimit: 1Gi}}\n",
    )
    .unwrap();
    let mut view = ok();
    view.resources.as_mut().unwrap().cpu_limit = None;
    assert_eq!(only(&no_max, &view).2, "container <app> has no cpu limit");
    view.resources.as_mut().unwrap().cpu_limit = Some(policy_core::quantity::Millicores(64_000));
    assert!(found(&no_max, &view).is_empty());
}

#[test]
fn pod_labels_must_be_present_whatever_their_value_and_dryrun_only_audits() {
    let policy = seed();
    let mut view = ok();
    view.pod.labels.clear();
    view.pod.labels.insert("team".into(), String::new());
    assert_eq!(
        only(&policy, &view),
        (
            "K8sAzureV1PodEnforceLabels".into(),
            Effect::Audit,
            r#"you must provide labels: {"costcenter"}"#.into()
        )
    );
    view.pod.labels.clear();
    assert_eq!(
        only(&policy, &view).2,
        r#"you must provide labels: {"costcenter", "team"}"#
    );
    assert!(!evaluate(&policy, &view).is_denied());
}

#[test]
fn host_networking_ports_names_pod_and_container_and_prints_the_parameters() {
    let policy = seed();
    let mut view = ok();
    view.host_ports = Some(vec![8080]);
    assert_eq!(
        only(&policy, &view).2,
        r#"The specified hostNetwork and hostPort are not allowed, pod: web, container: app. Allowed values: {"allowHostNetwork": false, "excludedContainers": [], "excludedImages": [], "maxPort": 0, "minPort": 0}"#
    );
    let mut view = ok();
    view.host_namespaces.network = Some(true);
    assert_eq!(found(&policy, &view).len(), 1);
    // V4: a list of ports and ranges.
    let v4 = Policy::parse(
        "p.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureV4HostNetworkingPorts\nmetadata: {name: p}\nspec: {parameters: {allowedHostPorts: ['80', '3000-5000']}}\n",
    )
    .unwrap();
    for (ports, violated) in [
        (vec![80], false),
        (vec![3000, 5000], false),
        (vec![81], true),
        (vec![80, 5001], true),
    ] {
        let mut view = ok();
        view.host_ports = Some(ports.clone());
        assert_eq!(found(&v4, &view).len(), usize::from(violated), "{ports:?}");
    }
    let bad = Policy::parse(
        "p.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureV4HostNetworkingPorts\nmetadata: {name: p}\nspec: {parameters: {allowedHostPorts: ['80', '5000-3000', http]}}\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = bad.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.parameters.allowedHostPorts[1]",
            "spec.parameters.allowedHostPorts[2]"
        ]
    );
}

fn restricted() -> Policy {
    Policy::parse(
        "azure-restricted.yaml",
        &fixture("gatekeeper/azure-restricted.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Every violation's message under the restricted initiative.
fn restricted_messages(view: &ContainerView) -> Vec<String> {
    found(&restricted(), view)
        .into_iter()
        .map(|f| f.2)
        .collect()
}

#[test]
fn the_restricted_initiative_loads_audits_and_passes_a_restricted_pod() {
    let policy = restricted();
    assert!(policy.notes().is_empty(), "{:?}", policy.notes());
    assert_eq!(policy.names().count(), 9);
    // compliant() declares the restricted standard (non-root 1000, groups 1000/2000,
    // RuntimeDefault at pod level, drop ALL, a configMap volume).
    assert_eq!(restricted_messages(&ok()), Vec::<String>::new());
    let mut bad = ok();
    bad.security.privileged = Some(true);
    bad.host_ports = Some(vec![80]);
    bad.security.seccomp = Some(policy_core::view::Layered::default());
    let decision = evaluate(&policy, &bad);
    assert!(!decision.is_denied(), "Audit is dryrun");
    assert_eq!(decision.violations.len(), 3, "{decision:#?}");
    assert!(
        decision
            .violations
            .iter()
            .all(|v| v.effect == Effect::Audit)
    );
}

#[test]
fn the_restricted_members_speak_with_azures_messages() {
    use policy_core::view::{
        Capabilities, Layered, Mount, MountSource, Seccomp, Volume, VolumeType,
    };
    let mut caps = ok();
    caps.security.capabilities = Some(Capabilities::Declared {
        add: vec!["sys_admin".into()],
        drop: vec![],
    });
    assert_eq!(
        restricted_messages(&caps),
        [
            r#"container <app> has a disallowed capability. Allowed capabilities are ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]"#
        ]
    );
    caps.security.capabilities = Some(Capabilities::Declared {
        add: vec!["net_raw".into()],
        drop: vec![],
    });
    assert!(
        restricted_messages(&caps).is_empty(),
        "compared without case"
    );

    // Host paths: none allowed, compared by whole components.
    let mut host = ok();
    host.mounts = Some(vec![Mount {
        destination: "/logs".into(),
        source: MountSource::HostPath("/var/log".into()),
        read_only: true,
    }]);
    host.volumes = Some(vec![Volume {
        name: "logs".into(),
        kind: VolumeType::HostPath,
        host_path: Some("/var/log".into()),
        driver: None,
    }]);
    assert_eq!(
        restricted_messages(&host),
        [
            r#"HostPath volume {"hostPath": {"path": "/var/log"}} is not allowed, pod: web. Allowed path: []"#,
            r#"The volume type hostPath is not allowed, pod: web. Allowed volume types: ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]"#
        ]
    );

    // V3 privilege escalation: an unset field fails only with a non-root user set.
    let mut escalation = ok();
    escalation.security.allow_privilege_escalation = Some(None);
    assert_eq!(
        restricted_messages(&escalation),
        ["Privilege escalation container is not allowed: app"]
    );
    escalation.security.run_as_user = Some(Layered::effective_only(0));
    escalation.security.run_as_non_root = Some(Layered::default());
    assert_eq!(
        restricted_messages(&escalation),
        [
            r#"Container app is attempting to run as disallowed user 0. Allowed runAsUser: {"ranges": [], "rule": "MustRunAsNonRoot"}"#
        ]
    );

    // Users and groups: fsGroup must be set.
    let mut groups = ok();
    groups.security.fs_group = Some(None);
    assert_eq!(
        restricted_messages(&groups),
        [
            r#"Container app is attempting to run without a required securityContext/fsGroup. Allowed fsGroup: {"ranges": [{"max": 65535, "min": 1}], "rule": "MustRunAs"}"#
        ]
    );

    // Seccomp: the allowed spellings expand to RuntimeDefault; none set fails.
    let mut seccomp = ok();
    seccomp.security.seccomp = Some(Layered::default());
    assert_eq!(
        restricted_messages(&seccomp),
        [
            r#"Seccomp profile 'not configured' is not allowed for container 'app'. Found at: no explicit profile found. Allowed profiles: {"RuntimeDefault", "docker/default", "runtime/default"}"#
        ]
    );
    seccomp.security.seccomp = Some(Layered::effective_only(Seccomp::Localhost("x.json".into())));
    assert_eq!(
        restricted_messages(&seccomp),
        [
            r#"Seccomp profile 'Localhost' with file 'x.json' is not allowed for container 'app'. Found at: container securityContext. Allowed profiles: {"RuntimeDefault", "docker/default", "runtime/default"}"#
        ]
    );
}

#[test]
fn azure_host_paths_match_whole_components_and_ask_for_read_only_mounts() {
    use policy_core::view::{Mount, MountSource};
    let policy = Policy::parse(
        "h.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAzureV3HostFilesystem\nmetadata: {name: h}\nspec: {parameters: {allowedHostPaths: [{pathPrefix: /foo, readOnly: true}, {pathPrefix: /data, readOnly: false}]}}\n",
    )
    .unwrap();
    let mount = |path: &str, read_only: bool| {
        let mut v = ok();
        v.mounts = Some(vec![Mount {
            destination: "/m".into(),
            source: MountSource::HostPath(path.into()),
            read_only,
        }]);
        v
    };
    assert!(found(&policy, &mount("/foo/bar", true)).is_empty());
    assert!(found(&policy, &mount("/data", false)).is_empty());
    assert_eq!(
        only(&policy, &mount("/fool", true)).2,
        r#"HostPath volume {"hostPath": {"path": "/fool"}} is not allowed, pod: web. Allowed path: [{"pathPrefix": "/foo", "readOnly": true}, {"pathPrefix": "/data", "readOnly": false}]"#
    );
    assert!(
        only(&policy, &mount("/foo", false))
            .2
            .starts_with(r#"HostPath volume {"hostPath": {"path": "/foo"}} does not meet the readonly requirement, pod: web."#)
    );
}

#[test]
fn converted_constraints_are_valid_node_policies_naming_their_source() {
    let files = [
        "gatekeeper/azure-seed.yaml",
        "gatekeeper/azure-restricted.yaml",
        "gatekeeper/library.yaml",
        "gatekeeper/unenforceable.yaml",
    ];
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| ((*f).to_string(), fixture(f)))
        .collect();
    let converted = Policy::convert(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
    // Every constraint is named once, converted or not.
    assert_eq!(converted.matches("# From ").count(), 5 + 9 + 4 + 6);
    assert_eq!(converted.matches("# Not converted: ").count(), 5);
    assert!(
        converted.contains("namespaceSelector"),
        "carried over: {converted}"
    );
    assert!(converted.contains(
        "# From K8sAzureV2ContainerAllowedImages/azurepolicy-k8sazurev2containerallowedimag-0a1b2c3d4e5f60718293 (gatekeeper/azure-seed.yaml:9)"
    ));
    // What comes out loads as NodePolicy documents, the effects carried over.
    let policy =
        Policy::parse("converted.yaml", &converted).unwrap_or_else(|e| panic!("{e}\n{converted}"));
    assert_eq!(policy.names().count(), 5 + 9 + 4 + 1);
    assert!(policy.notes().is_empty());
    let mut view = ok();
    view.security.privileged = Some(true);
    let decision = evaluate(&policy, &view);
    let privileged: Vec<(&str, Effect)> = decision
        .violations
        .iter()
        .filter(|v| v.rule == "privileged")
        .map(|v| (&*v.policy, v.effect))
        .collect();
    assert_eq!(
        privileged,
        [
            (
                "k8sazurev2noprivilege-azurepolicy-k8sazurev2noprivilege-1b2c3d4e5f6071829304",
                Effect::Enforce
            ),
            (
                "k8sazurev2noprivilege-azurepolicy-k8sazurev2noprivilege-5f607182930415263748",
                Effect::Audit
            ),
            (
                "k8spspprivilegedcontainer-psp-privileged-container",
                Effect::Enforce
            ),
        ]
    );
    // Only constraints are converted.
    let none = Policy::convert([(
        "p.yaml",
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: p}\nspec: {rules: {privileged: {}}}\n",
    )])
    .unwrap();
    assert!(none.is_empty());
    assert!(Policy::convert([("bad.yaml", "kind: [")]).is_err());
}

#[test]
fn v3_privilege_escalation_on_the_node_refuses_only_what_either_reading_refuses() {
    use policy_core::view::{Layered, ViewSource};
    let policy = restricted();
    // noNewPrivileges unset: escalation explicitly allowed, or not set (which V3 allows for
    // root). A non-root user fails either way; root cannot be told.
    let mut node = ok();
    node.source = ViewSource::Runtime;
    node.security.allow_privilege_escalation = Some(Some(true));
    node.security.run_as_user = Some(Layered::effective_only(1000));
    node.security.run_as_non_root = None;
    assert!(
        found(&policy, &node)
            .iter()
            .any(|f| f.2 == "Privilege escalation container is not allowed: app")
    );
    node.security.run_as_user = Some(Layered::effective_only(0));
    let decision = evaluate(&policy, &node);
    assert!(
        decision
            .undecided
            .iter()
            .any(|u| u.rule == "K8sAzureV3NoPrivilegeEscalation"),
        "{decision:#?}"
    );
}

#[test]
fn every_kind_converts_into_node_policies_that_load() {
    let text = fixture("gatekeeper/every-kind.yaml");
    let converted = Policy::convert([("every-kind.yaml", text.as_str())]).unwrap();
    assert_eq!(converted.matches("# From ").count(), 96);
    let policy =
        Policy::parse("converted.yaml", &converted).unwrap_or_else(|e| panic!("{e}\n{converted}"));
    assert!(policy.names().count() > 60, "{converted}");
    // What the reviewer found not to load: no sysctl, only "not configured", ids past u32.
    let odd = [
        ("K8sPSPForbiddenSysctls", "{}"),
        ("K8sPSPSeccompV2", "{allowedProfiles: ['not configured']}"),
        (
            "K8sPSPAllowedUsers",
            "{runAsGroup: {rule: MustRunAs, ranges: [{min: 1, max: 99999999999}]}}",
        ),
    ];
    for (kind, parameters) in odd {
        let text = format!(
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: o}}\nspec: {{parameters: {parameters}}}\n"
        );
        let converted = Policy::convert([("o.yaml", text.as_str())]).unwrap();
        Policy::parse("converted.yaml", &converted)
            .map(|_| ())
            .or_else(|e| {
                // A conversion with no rule at all is only comments: nothing to load.
                if converted.contains("apiVersion") {
                    Err(e)
                } else {
                    Ok(())
                }
            })
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{converted}"));
    }
}
