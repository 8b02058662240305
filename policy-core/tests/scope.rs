//! Scoping: namespace globs and exclusions, pod label selectors, container names, exempt
//! images; several documents in one file, each with its own scope.

use std::collections::BTreeSet;

use policy_core::image::ImageRef;
use policy_core::view::ProcMount;
use policy_core::{ContainerView, Effect, Policy, PssLevel, evaluate};

use crate::util::{compliant, labels, load, undecided};

/// A container that breaks every rule of `testdata/scoped.yaml`.
fn offender(
    namespace: &str,
    name: &str,
    pod_labels: &[(&str, &str)],
    image: &str,
) -> ContainerView {
    let mut v = compliant();
    v.pod.namespace = namespace.into();
    v.name = name.into();
    v.pod.labels = labels(pod_labels);
    v.image = Some(ImageRef::parse(image));
    v.security.privileged = Some(true);
    v.security.read_only_root_filesystem = Some(false);
    v.security.proc_mount = Some(ProcMount::Unmasked);
    v.host_ports = Some(vec![80]);
    v
}

const WEB: &[(&str, &str)] = &[("app", "web"), ("tier", "front"), ("team", "a")];

/// The documents that reported a violation.
fn reporting(policy: &Policy, view: &ContainerView) -> BTreeSet<String> {
    evaluate(policy, view)
        .violations
        .iter()
        .map(|v| v.policy.to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

#[test]
fn documents_load_in_file_order() {
    assert_eq!(
        load("scoped.yaml").names().collect::<Vec<_>>(),
        [
            "everywhere",
            "production",
            "web-pods",
            "app-containers",
            "pinned-images"
        ]
    );
}

#[test]
fn a_container_in_every_scope_is_judged_by_every_document() {
    let policy = load("scoped.yaml");
    let d = evaluate(
        &policy,
        &offender("prod", "app", WEB, "registry.corp/app:1"),
    );
    let mut got: Vec<(&str, &str)> = d.violations.iter().map(|v| (&*v.policy, v.rule)).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [
            ("app-containers", "procMount"),
            ("everywhere", "privileged"),
            ("pinned-images", "images.digest"),
            ("production", "privileged"),
            ("production", "readOnlyRootFilesystem"),
            ("web-pods", "hostPorts"),
        ]
    );
}

#[test]
fn nothing_in_kube_system_is_exempt_by_default() {
    let policy = load("scoped.yaml");
    let view = offender("kube-system", "coredns", &[], "registry.corp/coredns:1");
    // Only documents that exclude it (pinned-images: kube-*) or select others skip it.
    assert_eq!(reporting(&policy, &view), set(&["everywhere"]));
    let pss = Policy::pod_security(PssLevel::Baseline, Effect::Enforce);
    assert!(evaluate(&pss, &view).is_denied());
}

#[test]
fn namespaces_and_excluded_namespaces_are_whole_string_globs() {
    let policy = load("scoped.yaml");
    let judged_by_production = |ns: &str| {
        reporting(&policy, &offender(ns, "x", &[], "registry.k8s.io/x:1")).contains("production")
    };
    for ns in ["prod", "prod-eu", "prod-", "team-a"] {
        assert!(judged_by_production(ns), "{ns}");
    }
    for ns in [
        "production",
        "prod-sandbox",
        "team-ab",
        "team-",
        "dev",
        "my-prod",
    ] {
        assert!(!judged_by_production(ns), "{ns}");
    }
}

#[test]
fn pod_selectors_follow_kubernetes_semantics() {
    let policy = load("scoped.yaml");
    let judged_by_web = |pod_labels: &[(&str, &str)]| {
        reporting(
            &policy,
            &offender("dev", "x", pod_labels, "registry.k8s.io/x:1"),
        )
        .contains("web-pods")
    };
    assert!(judged_by_web(WEB));
    assert!(judged_by_web(&[
        ("app", "web"),
        ("tier", "edge"),
        ("team", "a"),
        ("env", "prod")
    ]));
    // matchLabels
    assert!(!judged_by_web(&[
        ("app", "api"),
        ("tier", "front"),
        ("team", "a")
    ]));
    // In: absent or other value
    assert!(!judged_by_web(&[("app", "web"), ("team", "a")]));
    assert!(!judged_by_web(&[
        ("app", "web"),
        ("tier", "back"),
        ("team", "a")
    ]));
    // DoesNotExist
    assert!(!judged_by_web(&[
        ("app", "web"),
        ("tier", "front"),
        ("team", "a"),
        ("legacy", "")
    ]));
    // NotIn: present with a listed value
    assert!(!judged_by_web(&[
        ("app", "web"),
        ("tier", "front"),
        ("team", "a"),
        ("env", "dev")
    ]));
    // Exists
    assert!(!judged_by_web(&[("app", "web"), ("tier", "front")]));
}

#[test]
fn container_names_and_exclusions_are_globs() {
    let policy = load("scoped.yaml");
    let judged = |name: &str| {
        reporting(&policy, &offender("dev", name, &[], "registry.k8s.io/x:1"))
            .contains("app-containers")
    };
    for name in ["app", "app-sidecar", "app-"] {
        assert!(judged(name), "{name}");
    }
    for name in ["app-debug", "web", "application", "my-app"] {
        assert!(!judged(name), "{name}");
    }
}

#[test]
fn exempt_images_skip_the_whole_document() {
    let policy = load("scoped.yaml");
    for image in ["registry.k8s.io/pause:3.9", "registry.corp/app:debug"] {
        assert!(
            !reporting(&policy, &offender("dev", "x", &[], image)).contains("pinned-images"),
            "{image}"
        );
    }
    assert!(
        reporting(&policy, &offender("dev", "x", &[], "registry.corp/app:1"))
            .contains("pinned-images")
    );
}

#[test]
fn an_unknown_image_is_never_exempt() {
    let policy = load("scoped.yaml");
    let mut view = offender("dev", "x", &[], "registry.k8s.io/x:1");
    view.image = None;
    let d = evaluate(&policy, &view);
    assert_eq!(undecided(&d), [("images.digest", "image")]);
    assert_eq!(&*d.undecided[0].policy, "pinned-images");
}

#[test]
fn the_same_rule_in_two_documents_reports_twice_with_each_name() {
    let policy = load("scoped.yaml");
    let mut view = compliant();
    view.name = "sidecar".into();
    view.pod.labels.clear();
    view.security.privileged = Some(true);
    let d = evaluate(&policy, &view);
    let got: Vec<(&str, &str, &str)> = d
        .violations
        .iter()
        .map(|v| (&*v.policy, v.rule, v.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("everywhere", "privileged", "container is privileged"),
            ("production", "privileged", "container is privileged"),
        ]
    );
}

#[test]
fn an_unknown_namespace_is_in_no_namespace_list() {
    // Current behaviour (reported as questionable): with `namespaces` set, a container whose
    // namespace the source could not tell is outside the document, which then allows it.
    let policy = load("scoped.yaml");
    let got = reporting(&policy, &offender("", "x", &[], "registry.corp/app:1"));
    assert_eq!(got, set(&["everywhere", "pinned-images"]));
}

/// `containerdNamespaces` and `excludedContainerdNamespaces` say which containerd namespaces'
/// containers a document judges: Kubernetes' are in `k8s.io`, what `ctr`, nerdctl, Docker or
/// buildkit make is in its own. By default every one.
#[test]
fn containerd_namespaces_choose_which_runtime_namespaces_a_document_judges() {
    let policy = Policy::parse(
        "p.yaml",
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: everywhere}\n\
         spec:\n  rules: {privileged: {}}\n---\n\
         apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: docker}\n\
         spec:\n  scope: {containerdNamespaces: [moby]}\n  rules: {privileged: {}}\n---\n\
         apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: not-builds}\n\
         spec:\n  scope: {excludedContainerdNamespaces: ['build*', k8s.io]}\n  rules: {privileged: {}}\n",
    )
    .unwrap();
    let mut privileged = compliant();
    privileged.security.privileged = Some(true);
    // Kubernetes' containers: the policy as loaded judges `k8s.io`.
    assert_eq!(reporting(&policy, &privileged), set(&["everywhere"]));
    let docker = policy.in_containerd_namespace("moby");
    assert_eq!(
        reporting(&docker, &privileged),
        set(&["everywhere", "docker", "not-builds"])
    );
    let builds = policy.in_containerd_namespace("buildkit");
    assert_eq!(reporting(&builds, &privileged), set(&["everywhere"]));
    assert!(policy.judges_containerd_namespace("buildkit"));
    // Nothing judges a namespace every document leaves out.
    let only_docker = Policy::parse(
        "p.yaml",
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: docker}\n\
         spec:\n  scope: {containerdNamespaces: [moby]}\n  rules: {privileged: {}}\n",
    )
    .unwrap();
    assert!(!only_docker.judges_containerd_namespace("default"));
    assert!(only_docker.judges_containerd_namespace("moby"));
    assert!(reporting(&only_docker, &privileged).is_empty());
    assert!(
        policy_core::applicable_checks(
            &only_docker.in_containerd_namespace("default"),
            &privileged
        )
        .next()
        .is_none()
    );
}

#[test]
fn a_namespace_selector_needs_the_namespaces_labels_and_matches_them() {
    let policy = crate::util::policy(
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: prod-only}\nspec:\n  scope:\n    namespaceSelector:\n      matchExpressions: [{key: env, operator: In, values: [prod]}]\n  rules:\n    privileged: {}\n",
    );
    let mut view = compliant();
    view.security.privileged = Some(true);
    // Without the labels (no API server): skipped for this document, with the reason.
    assert!(reporting(&policy, &view).is_empty());
    assert_eq!(
        policy.not_enforced(&view).collect::<Vec<_>>(),
        [("prod-only", policy_core::policy::NEEDS_NAMESPACE_LABELS)]
    );
    view.pod.namespace_labels = Some(labels(&[("env", "prod")]));
    assert_eq!(reporting(&policy, &view), set(&["prod-only"]));
    assert_eq!(policy.not_enforced(&view).count(), 0);
    view.pod.namespace_labels = Some(labels(&[("env", "dev")]));
    assert!(reporting(&policy, &view).is_empty());
    assert_eq!(policy.not_enforced(&view).count(), 0);
    // A selector's mistakes are located like any other.
    let errors = crate::util::policy_err(
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: bad}\nspec:\n  scope:\n    namespaceSelector:\n      matchExpressions: [{key: env, operator: In}]\n",
    );
    assert!(
        errors
            .to_string()
            .contains("spec.scope.namespaceSelector.matchExpressions[0]"),
        "{errors}"
    );
}
