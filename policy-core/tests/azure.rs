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
