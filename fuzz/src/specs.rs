//! Checks of the readers that turn container descriptions into views (`nodeguard-views`): OCI
//! runtime specs ([`RuntimeSpec::from_json`], then `ContainerView::try_from` or the start
//! view) and Kubernetes manifests (`PodManifest::try_from`), each view then judged by the
//! restricted Pod Security Standards preset (the most rules that read a view).

use nodeguard_proto::nri::v1alpha1 as nri;
use nodeguard_views::manifest::{ManifestError, PodManifest};
use nodeguard_views::nri::Start;
use nodeguard_views::oci::RuntimeSpec;
use policy_core::{ContainerView, Decision, Effect, Policy, PssLevel, Verdict, evaluate, yaml};

/// The restricted preset, enforced.
pub fn restricted() -> Policy {
    Policy::pod_security(PssLevel::Restricted, Effect::Enforce)
}

/// What holds of every decision of the enforced preset.
fn check_decision(policy: &Policy, decision: &Decision) {
    let ids: Vec<&str> = policy.check_ids().collect();
    for violation in &decision.violations {
        assert!(ids.contains(&violation.rule), "{}", violation.rule);
        assert_eq!(violation.effect, Effect::Enforce);
        assert!(
            !violation.message.is_empty(),
            "{} without a message",
            violation.rule
        );
    }
    assert_eq!(
        decision.verdict() == Verdict::Deny,
        !decision.violations.is_empty()
    );
}

/// `oci_spec`: arbitrary bytes to [`RuntimeSpec::from_json`], then to a view as `check` takes
/// it (`ContainerView::try_from`, which refuses JSON without `ociVersion`) and as the daemon
/// takes it at container start (`Start`, whatever the spec says), each to [`evaluate`] against
/// `policy`. Never panics; the views are pure functions of the spec.
pub fn oci_spec(policy: &Policy, data: &[u8]) {
    let Ok(spec) = RuntimeSpec::from_json(data) else {
        return;
    };
    match ContainerView::try_from(&spec) {
        Ok(view) => {
            assert!(spec.is_runtime_spec());
            assert_eq!(Ok(&view), ContainerView::try_from(&spec).as_ref());
            check_decision(policy, &evaluate(policy, &view));
        }
        Err(_) => assert!(!spec.is_runtime_spec()),
    }
    let (pod, container) = (nri::PodSandbox::default(), nri::Container::default());
    let at_start = || {
        ContainerView::from(Start {
            pod: &pod,
            container: &container,
            spec: &spec,
        })
    };
    let view = at_start();
    assert_eq!(view, at_start(), "the start view is deterministic");
    check_decision(policy, &evaluate(policy, &view));
}

/// `manifest`: arbitrary text to [`yaml::parse_documents`], each document (and each item of a
/// `List`) to `PodManifest::try_from`, each container view to [`evaluate`] against
/// `policy`. Never panics; a manifest error's path leads to a position in the text.
pub fn manifest(policy: &Policy, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(documents) = yaml::parse_documents(&text) else {
        return;
    };
    for document in &documents {
        let items = match document.value.get("items").and_then(|i| i.as_array()) {
            Some(items) => items.iter().collect(),
            None => vec![&document.value],
        };
        for item in items {
            match PodManifest::try_from(item) {
                Ok(pod) => {
                    for view in &pod.containers {
                        check_decision(policy, &evaluate(policy, view));
                    }
                }
                Err(ManifestError::NotAPod { .. }) => {}
                Err(ManifestError::Invalid(err)) => {
                    let location = document.locations.nearest(&err.path);
                    assert!(location.line >= 1 && location.column >= 1, "{err}");
                }
            }
        }
    }
}
