//! Gatekeeper constraints as policy: the library's kinds judged with its semantics and
//! messages, `match`, `enforcementAction`, `kind: List`, templates, and what a node cannot
//! enforce reported as notes. Fixtures in `policy-core/testdata/gatekeeper/`, written from the
//! templates' semantics.

use policy_core::view::{ContainerKind, ContainerView};
use policy_core::{Effect, Policy, evaluate};

use crate::util::{compliant, fixture, labels, with};

fn library() -> Policy {
    Policy::parse("library.yaml", &fixture("gatekeeper/library.yaml")).unwrap()
}

fn constraint(kind: &str, spec: &str) -> Policy {
    let text = format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: c}}\nspec:\n{spec}"
    );
    Policy::parse("c.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
}

fn image(view: &mut ContainerView, image: &str) {
    view.image = Some(policy_core::image::ImageRef::parse(image));
}

/// (policy, rule, effect, message) of every violation.
fn violations(policy: &Policy, view: &ContainerView) -> Vec<(String, String, Effect, String)> {
    evaluate(policy, view)
        .violations
        .iter()
        .map(|v| {
            (
                v.policy.to_string(),
                v.rule.to_string(),
                v.effect,
                v.message.clone(),
            )
        })
        .collect()
}

#[test]
fn a_list_of_constraints_loads_with_its_template_left_alone() {
    let policy = library();
    assert_eq!(
        policy.names().collect::<Vec<_>>(),
        [
            "K8sAllowedRepos/repo-is-openpolicyagent",
            "K8sPSPPrivilegedContainer/psp-privileged-container",
            "K8sDisallowedTags/container-image-must-not-have-latest-tag",
            "K8sImageDigests/container-image-must-have-digest",
        ]
    );
    assert!(policy.notes().is_empty(), "{:?}", policy.notes());
}

#[test]
fn allowed_repos_compares_string_prefixes_of_the_image_as_written() {
    let policy = library();
    let mut view = with(|v| v.pod.namespace = "default".into());
    image(&mut view, "openpolicyagent/opa:0.9.2");
    assert!(violations(&policy, &view).is_empty());
    image(&mut view, "nginx");
    assert_eq!(
        violations(&policy, &view),
        [(
            "K8sAllowedRepos/repo-is-openpolicyagent".to_string(),
            "K8sAllowedRepos".to_string(),
            Effect::Enforce,
            r#"container <app> has an invalid image repo <nginx>, allowed repos are ["openpolicyagent/"]"#
                .to_string()
        )]
    );
    // The library's lists name init and ephemeral containers so.
    view.kind = Some(ContainerKind::Init);
    assert!(
        violations(&policy, &view)[0]
            .3
            .starts_with("initContainer <app>")
    );
    view.kind = Some(ContainerKind::Ephemeral);
    assert!(
        violations(&policy, &view)[0]
            .3
            .starts_with("ephemeralContainer <app>")
    );
    // `namespaces: [default, team-*]`: another namespace is not matched.
    view.pod.namespace = "team-a".into();
    assert_eq!(violations(&policy, &view).len(), 1);
    view.pod.namespace = "prod".into();
    assert!(violations(&policy, &view).is_empty());
}

#[test]
fn privileged_containers_are_refused_outside_excluded_namespaces_and_exempt_images() {
    let policy = library();
    let mut view = with(|v| v.security.privileged = Some(true));
    image(&mut view, "registry.corp/shop/web:1");
    let found = violations(&policy, &view);
    assert_eq!(
        found,
        [(
            "K8sPSPPrivilegedContainer/psp-privileged-container".to_string(),
            "K8sPSPPrivilegedContainer".to_string(),
            Effect::Enforce,
            "Privileged container is not allowed: app, securityContext.privileged: true"
                .to_string()
        )]
    );
    image(&mut view, "registry.k8s.io/kube-proxy:v1.31.0");
    assert!(violations(&policy, &view).is_empty(), "exempt image");
    image(&mut view, "registry.corp/shop/web:1");
    view.pod.namespace = "kube-system".into();
    assert!(violations(&policy, &view).is_empty(), "excluded namespace");
    // Not known before start: undecided at create.
    view.pod.namespace = "default".into();
    view.security.privileged = None;
    let decision = evaluate(&policy, &view);
    assert_eq!(decision.undecided[0].rule, "K8sPSPPrivilegedContainer");
}

#[test]
fn disallowed_tags_warn_for_latest_and_missing_tags_on_labelled_pods() {
    let policy = library();
    let mut view = with(|v| v.pod.labels = labels(&[("tier", "web")]));
    image(&mut view, "openpolicyagent/opa:0.9.2");
    assert!(violations(&policy, &view).is_empty());
    image(&mut view, "openpolicyagent/opa:latest");
    let found = violations(&policy, &view);
    assert_eq!(found[0].2, Effect::Warn, "enforcementAction: warn");
    assert_eq!(
        found[0].3,
        r#"container <app> uses a disallowed tag <openpolicyagent/opa:latest>; disallowed tags are ["latest"]"#
    );
    image(&mut view, "registry:5000/nginx");
    assert_eq!(
        violations(&policy, &view)[0].3,
        "container <app> didn't specify an image tag <registry:5000/nginx>"
    );
    image(&mut view, "nginx@sha256:abc");
    assert!(
        violations(&policy, &view).is_empty(),
        "a digest is a tag's stand-in"
    );
    image(&mut view, "openpolicyagent/opa-exp2:latest");
    assert!(violations(&policy, &view).is_empty(), "exempt by prefix");
    // The label selector: unlabelled pods are not matched.
    view.pod.labels = labels(&[("tier", "db")]);
    image(&mut view, "nginx:latest");
    assert!(violations(&policy, &view).is_empty());
}

#[test]
fn image_digests_only_audit_pods_whose_name_matches() {
    let policy = library();
    let mut view = with(|v| v.pod.name = "digest-job".into());
    image(&mut view, "registry.corp/a/b:1");
    let found = violations(&policy, &view);
    assert_eq!(found[0].2, Effect::Audit, "enforcementAction: dryrun");
    assert_eq!(
        found[0].3,
        "container <app> uses an image without a digest <registry.corp/a/b:1>"
    );
    image(&mut view, "registry.corp/a/b:1@sha256:0123abcd");
    assert!(violations(&policy, &view).is_empty());
    view.pod.name = "web".into();
    image(&mut view, "registry.corp/a/b:1");
    assert!(violations(&policy, &view).is_empty(), "match.name digest-*");
}

#[test]
fn pod_security_kinds_judge_what_the_node_sees() {
    let host = constraint(
        "K8sPSPHostNamespace",
        "  match: {kinds: [{kinds: [Pod]}]}\n",
    );
    let mut view = with(|v| v.pod.name = "web-0".into());
    assert!(violations(&host, &view).is_empty());
    view.host_namespaces.ipc = Some(true);
    assert_eq!(
        violations(&host, &view)[0].3,
        "Sharing the host namespace is not allowed: web-0"
    );

    let escalation = constraint(
        "K8sPSPAllowPrivilegeEscalationContainer",
        "  parameters: {}\n",
    );
    let mut view = compliant();
    view.security.allow_privilege_escalation = Some(Some(false));
    assert!(violations(&escalation, &view).is_empty());
    for unset in [Some(None), Some(Some(true))] {
        view.security.allow_privilege_escalation = unset;
        assert_eq!(
            violations(&escalation, &view)[0].3,
            "Privilege escalation container is not allowed: app"
        );
    }

    let read_only = constraint("K8sPSPReadOnlyRootFilesystem", "  parameters: {}\n");
    let mut view = compliant();
    view.security.read_only_root_filesystem = Some(false);
    assert_eq!(
        violations(&read_only, &view)[0].3,
        "only read-only root filesystem container is allowed: app"
    );
}

#[test]
fn scoped_actions_take_the_nodes_point_then_the_webhooks() {
    let scoped = |entries: &str| {
        constraint(
            "K8sPSPPrivilegedContainer",
            &format!("  enforcementAction: scoped\n  scopedEnforcementActions:\n{entries}"),
        )
    };
    let mut view = with(|v| v.security.privileged = Some(true));
    image(&mut view, "x:1");
    let node = scoped(
        "    - {action: warn, enforcementPoints: [{name: node.nodeguard.io}]}\n    - {action: deny, enforcementPoints: [{name: validation.gatekeeper.sh}]}\n",
    );
    assert_eq!(violations(&node, &view)[0].2, Effect::Warn);
    let webhook =
        scoped("    - {action: dryrun, enforcementPoints: [{name: validation.gatekeeper.sh}]}\n");
    assert_eq!(violations(&webhook, &view)[0].2, Effect::Audit);
    let all = scoped(
        "    - {action: dryrun, enforcementPoints: [{name: '*'}]}\n    - {action: deny, enforcementPoints: [{name: '*'}]}\n",
    );
    assert_eq!(
        violations(&all, &view)[0].2,
        Effect::Enforce,
        "deny is the strongest"
    );
}

#[test]
fn what_a_node_cannot_enforce_is_a_located_note_never_a_silent_pass() {
    let policy = Policy::parse(
        "unenforceable.yaml",
        &fixture("gatekeeper/unenforceable.yaml"),
    )
    .unwrap();
    assert_eq!(
        policy.names().collect::<Vec<_>>(),
        ["K8sPSPHostNamespace/host-namespace-by-label"]
    );
    // The kind it does not implement stays in the policy, with no check: the containers in its
    // scope are listed as skipped for it.
    assert_eq!(
        policy.not_enforced_names().collect::<Vec<_>>(),
        [
            "K8sAzureV2ContainerEnforceProbes/must-have-probes",
            "K8sCorpPodRule/corp-rule"
        ]
    );
    // The namespaceSelector is matched against the namespace's labels; without them (no API
    // server) the container is skipped for that constraint, with the reason.
    let mut view = with(|v| v.host_namespaces.pid = Some(true));
    view.pod.namespace = "prod".into();
    let skipped: Vec<(&str, &str)> = policy.not_enforced(&view).collect();
    assert_eq!(skipped.len(), 3);
    assert_eq!(skipped[1].0, "K8sPSPHostNamespace/host-namespace-by-label");
    assert_eq!(skipped[1].1, policy_core::policy::NEEDS_NAMESPACE_LABELS);
    assert!(violations(&policy, &view).is_empty());
    view.pod.namespace_labels = Some([("env".to_string(), "prod".to_string())].into());
    assert_eq!(policy.not_enforced(&view).count(), 2);
    assert_eq!(
        violations(&policy, &view).len(),
        1,
        "judged in a namespace labelled env=prod"
    );
    view.pod.namespace_labels = Some([("env".to_string(), "dev".to_string())].into());
    assert_eq!(policy.not_enforced(&view).count(), 2);
    assert!(
        violations(&policy, &view).is_empty(),
        "out of scope elsewhere"
    );
}

#[test]
fn constraint_mistakes_are_errors_with_their_place() {
    let text = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAllowedRepos\nmetadata: {name: bad}\nspec:\n  enforcementAction: block\n  match:\n    namespaces: ['prod_*']\n  parameters:\n    repos: registry.corp/\n";
    let errors = Policy::parse("bad.yaml", text).unwrap_err();
    let places: Vec<(usize, &str)> = errors
        .0
        .iter()
        .map(|e| (e.location.line, e.path.as_str()))
        .collect();
    assert_eq!(
        places,
        [
            (5, "spec.enforcementAction"),
            (7, "spec.match.namespaces[0]"),
            (9, "spec.parameters.repos")
        ],
        "{errors}"
    );
    // Names are unique across NodePolicy documents and constraints alike.
    let twice = format!("{text}---\n{text}")
        .replace("block", "deny")
        .replace("prod_*", "prod-*")
        .replace("repos: registry.corp/", "repos: [registry.corp/]");
    let errors = Policy::parse("twice.yaml", &twice).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("\"K8sAllowedRepos/bad\" is used by another document"),
        "{errors}"
    );
}

#[test]
fn constraints_and_node_policies_mix_in_one_policy() {
    let text = format!(
        "{}---\napiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {{name: limits}}\nspec: {{rules: {{resources: {{requireLimits: [cpu]}}}}}}\n",
        fixture("gatekeeper/library.yaml")
    );
    let policy = Policy::parse("mixed.yaml", &text).unwrap();
    assert_eq!(policy.names().last(), Some("limits"));
    assert_eq!(policy.names().count(), 5);
}

#[test]
fn host_network_and_ports_follow_the_parameters() {
    let policy = constraint(
        "K8sPSPHostNetworkingPorts",
        "  parameters: {hostNetwork: false, min: 80, max: 9000}\n",
    );
    let mut view = with(|v| v.pod.name = "web".into());
    view.host_ports = Some(vec![8080]);
    assert!(violations(&policy, &view).is_empty());
    view.host_ports = Some(vec![8080, 9090]);
    assert_eq!(
        violations(&policy, &view)[0].3,
        r#"The specified hostNetwork and hostPort are not allowed, pod: web. Allowed values: {"hostNetwork": false, "max": 9000, "min": 80}"#
    );
    view.host_ports = Some(Vec::new());
    view.host_namespaces.network = Some(true);
    assert_eq!(
        violations(&policy, &view).len(),
        1,
        "host network not allowed"
    );
    let allowed = constraint(
        "K8sPSPHostNetworkingPorts",
        "  parameters: {hostNetwork: true}\n",
    );
    assert!(violations(&allowed, &view).is_empty());
    // exemptImages spares the host ports only: the host network is judged for every pod.
    let exempting = constraint(
        "K8sPSPHostNetworkingPorts",
        "  parameters: {hostNetwork: false, min: 80, max: 9000, exemptImages: ['safeimages.com/*']}\n",
    );
    image(&mut view, "safeimages.com/nginx");
    view.host_ports = Some(vec![9001]);
    view.host_namespaces.network = Some(false);
    assert!(violations(&exempting, &view).is_empty(), "exempt ports");
    view.host_namespaces.network = Some(true);
    assert_eq!(violations(&exempting, &view).len(), 1, "host network");
}

#[test]
fn host_paths_need_an_allowed_prefix_and_read_only_where_it_says() {
    use policy_core::view::{Mount, MountSource};
    let policy = constraint(
        "K8sPSPHostFilesystem",
        "  parameters:\n    allowedHostPaths: [{pathPrefix: /foo, readOnly: true}, {pathPrefix: /logs}]\n",
    );
    let mount = |path: &str, read_only: bool| Mount {
        destination: "/data".into(),
        source: MountSource::HostPath(path.into()),
        read_only,
    };
    let mut view = with(|v| v.pod.name = "p".into());
    view.mounts = Some(vec![mount("/foo/bar", true), mount("/logs/app", false)]);
    assert!(violations(&policy, &view).is_empty());
    view.mounts = Some(vec![mount("/foo/bar", false)]);
    assert_eq!(
        violations(&policy, &view)[0].3,
        r#"HostPath volume {"hostPath": {"path": "/foo/bar"}} is not allowed, pod: p. Allowed path: [{"pathPrefix": "/foo", "readOnly": true}, {"pathPrefix": "/logs", "readOnly": false}]"#
    );
    view.mounts = Some(vec![mount("/etc", true)]);
    assert_eq!(violations(&policy, &view).len(), 1);
    // No allowed paths: every host path is refused.
    let none = constraint("K8sPSPHostFilesystem", "  parameters: {}\n");
    view.mounts = Some(vec![mount("/anything", true)]);
    assert_eq!(violations(&none, &view).len(), 1);
}

#[test]
fn required_labels_speak_as_the_templates_cel() {
    let policy = constraint(
        "K8sRequiredLabels",
        "  parameters:\n    labels: [{key: owner, allowedRegex: '^[a-z]+\\.agilebank\\.demo$'}, {key: team}]\n",
    );
    let mut view =
        with(|v| v.pod.labels = labels(&[("owner", "me.agilebank.demo"), ("team", "a")]));
    assert!(violations(&policy, &view).is_empty());
    view.pod.labels = labels(&[("owner", "someone")]);
    let messages: Vec<String> = violations(&policy, &view)
        .into_iter()
        .map(|v| v.3)
        .collect();
    assert_eq!(
        messages,
        [
            "missing required label, requires all of: owner, team",
            "regex mismatch"
        ]
    );
    // A bare OCI spec cannot tell.
    view.pod.labels_unknown = true;
    assert!(violations(&policy, &view).is_empty());
    assert_eq!(evaluate(&policy, &view).undecided[0].missing, "pod.labels");
}

#[test]
fn container_limits_check_presence_and_maxima_as_the_template_does() {
    use policy_core::quantity::{Bytes, Millicores};
    use policy_core::view::Resources;
    let policy = constraint(
        "K8sContainerLimits",
        "  parameters: {cpu: 200m, memory: 1Gi}\n",
    );
    let limits = |cpu: Option<u64>, memory: Option<u64>| {
        Some(Resources {
            cpu_limit: cpu.map(Millicores),
            memory_limit: memory.map(Bytes),
            ..Resources::default()
        })
    };
    let mut view = compliant();
    view.resources = limits(Some(200), Some(1 << 30));
    assert!(
        violations(&policy, &view).is_empty(),
        "equal to the maximum is allowed"
    );
    view.resources = limits(None, None);
    assert_eq!(
        violations(&policy, &view)[0].3,
        "container <app> has no resource limits"
    );
    view.resources = limits(Some(500), None);
    let messages: Vec<String> = violations(&policy, &view)
        .into_iter()
        .map(|v| v.3)
        .collect();
    assert_eq!(
        messages,
        [
            "container <app> cpu limit <500m> is higher than the maximum allowed of <200m>",
            "container <app> has no memory limit"
        ]
    );
    // cpu absent (or "-1"): CPU is not checked at all.
    let memory_only = constraint("K8sContainerLimits", "  parameters: {memory: 1Gi}\n");
    view.resources = limits(None, Some(2 << 30));
    let messages: Vec<String> = violations(&memory_only, &view)
        .into_iter()
        .map(|v| v.3)
        .collect();
    assert_eq!(
        messages,
        ["container <app> memory limit <2Gi> is higher than the maximum allowed of <1Gi>"]
    );
    // Ephemeral containers cannot set resources: left be.
    view.kind = Some(ContainerKind::Ephemeral);
    view.resources = limits(None, None);
    assert!(violations(&policy, &view).is_empty());
}

#[test]
fn an_object_without_a_namespace_is_matched_as_gatekeeper_matches_it() {
    let privileged = |matching: &str| {
        constraint(
            "K8sPSPPrivilegedContainer",
            &format!("  match:\n{matching}"),
        )
    };
    let only_prod = privileged("    namespaces: [prod]\n");
    let not_default = privileged("    excludedNamespaces: [default]\n");
    // A sample pod naming no namespace: `check` places it in `default`.
    let mut sample = with(|v| v.security.privileged = Some(true));
    sample.pod.namespace = "default".into();
    sample.pod.namespace_assumed = true;
    assert_eq!(
        violations(&only_prod, &sample).len(),
        1,
        "no namespace to disqualify it"
    );
    assert_eq!(
        violations(&not_default, &sample).len(),
        1,
        "nor to exclude it"
    );
    // Placed with `check -n`, or on the node, the namespace counts.
    sample.pod.namespace_assumed = false;
    assert!(violations(&only_prod, &sample).is_empty());
    assert!(violations(&not_default, &sample).is_empty());
    // A NodePolicy scope reads the namespace it was placed in either way.
    let node_policy = Policy::parse(
        "p.yaml",
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: p}\nspec:\n  scope: {namespaces: [prod]}\n  rules: {privileged: {}}\n",
    )
    .unwrap();
    sample.pod.namespace_assumed = true;
    assert!(evaluate(&node_policy, &sample).is_clean());
}

#[test]
fn a_mistyped_spec_is_never_silently_ignored() {
    let doc = |spec: &str| {
        format!(
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sPSPVolumeTypes\nmetadata: {{name: v}}\nspec:\n{spec}"
        )
    };
    // A field the spec does not have, and a kind left without the list its message prints.
    let policy = Policy::parse("v.yaml", &doc("  paramters: {volumes: [configMap]}\n")).unwrap();
    let notes: Vec<&str> = policy.notes().iter().map(|n| n.path.as_str()).collect();
    assert_eq!(notes, ["spec.paramters", "spec.parameters.volumes"]);
    // Wrong types are errors, with their place.
    let errors = Policy::parse(
        "v.yaml",
        &doc("  enforcementAction: 7\n  parameters: [1]\n"),
    )
    .unwrap_err();
    let places: Vec<(usize, &str)> = errors
        .0
        .iter()
        .map(|e| (e.location.line, e.path.as_str()))
        .collect();
    assert_eq!(
        places,
        [(5, "spec.enforcementAction"), (6, "spec.parameters")]
    );
}
