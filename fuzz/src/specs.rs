//! Checks of the readers that turn container descriptions into views: OCI runtime specs
//! ([`RuntimeSpec::from_json`], [`RuntimeSpec::to_view`]) and Kubernetes manifests
//! ([`manifest::pod_from_document`]), each view then judged by the restricted Pod Security
//! Standards preset (the most rules that read a view).

use nodeguard::views::manifest;
use nodeguard::views::oci::RuntimeSpec;
use policy_core::{Decision, Effect, Policy, PssLevel, Verdict, evaluate, yaml};

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

/// `oci_spec`: arbitrary bytes to [`RuntimeSpec::from_json`], then [`RuntimeSpec::to_view`]
/// and [`evaluate`] against `policy`. Never panics; the view is a pure function of the spec.
pub fn oci_spec(policy: &Policy, data: &[u8]) {
    let Ok(spec) = RuntimeSpec::from_json(data) else {
        return;
    };
    let view = spec.to_view();
    assert_eq!(view, spec.to_view(), "to_view is deterministic");
    check_decision(policy, &evaluate(policy, &view));
}

/// `manifest`: arbitrary text to [`yaml::parse_documents`], each document (and each item of a
/// `List`) to [`manifest::pod_from_document`], each container view to [`evaluate`] against
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
            match manifest::pod_from_document(item) {
                Ok(Some(pod)) => {
                    for view in &pod.containers {
                        check_decision(policy, &evaluate(policy, view));
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    let location = document.locations.nearest(&err.path);
                    assert!(location.line >= 1 && location.column >= 1, "{err}");
                }
            }
        }
    }
}
