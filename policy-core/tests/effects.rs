//! Effects (enforce, audit, warn, disabled) per rule and per document, and how a decision's
//! verdict and refusal message follow from them.

use std::sync::Arc;

use policy_core::view::ProcMount;
use policy_core::{
    ContainerView, Decision, Effect, Policy, PssLevel, Undecided, Verdict, Violation, evaluate,
};

use crate::util::{document, findings, policy, rules, undecided, with};

fn offender() -> ContainerView {
    with(|v| {
        v.security.privileged = Some(true);
        v.security.read_only_root_filesystem = Some(false);
        v.security.proc_mount = Some(ProcMount::Unmasked);
        v.host_ports = Some(vec![80]);
    })
}

const MIXED: &str = "privileged: {effect: audit}
readOnlyRootFilesystem: {effect: warn}
procMount: {effect: disabled}
hostPorts: {}
";

#[test]
fn each_rule_reports_with_its_own_effect() {
    let p = rules(MIXED);
    let mut ids: Vec<&str> = p.check_ids().collect();
    ids.sort_unstable();
    assert_eq!(ids, ["hostPorts", "privileged", "readOnlyRootFilesystem"]);
    let d = evaluate(&p, &offender());
    let mut got = findings(&d);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            (
                "hostPorts",
                Effect::Enforce,
                "container binds host port 80 (no host ports are allowed)"
            ),
            ("privileged", Effect::Audit, "container is privileged"),
            (
                "readOnlyRootFilesystem",
                Effect::Warn,
                "container's root filesystem is writable"
            ),
        ]
    );
    assert_eq!(d.verdict(), Verdict::Deny);
    assert_eq!(
        d.refusal_message(),
        "container binds host port 80 (no host ports are allowed) [hostPorts]"
    );
}

#[test]
fn audit_and_warn_never_deny() {
    let p = rules(MIXED);
    let mut view = offender();
    view.host_ports = Some(Vec::new());
    let d = evaluate(&p, &view);
    assert_eq!(d.violations.len(), 2, "{d:#?}");
    assert_eq!(d.verdict(), Verdict::Allow);
    assert!(!d.is_denied());
    assert!(!d.is_clean());
    assert_eq!(d.enforced().count(), 0);
    assert_eq!(d.refusal_message(), "");
}

#[test]
fn a_disabled_rule_is_not_evaluated_at_all() {
    let p = rules("procMount: {effect: disabled}\n");
    assert_eq!(p.check_count(), 0);
    assert!(evaluate(&p, &offender()).is_clean());
    assert!(evaluate(&p, &ContainerView::default()).is_clean());
}

#[test]
fn the_spec_effect_is_every_rule_default_and_rules_override_it() {
    let p = policy(&document(
        "audited",
        "effect: audit
rules:
  privileged: {}
  hostPorts: {effect: enforce}
  images: {requireDigest: true, forbiddenTags: [latest]}
",
    ));
    let d = evaluate(
        &p,
        &with(|v| {
            v.security.privileged = Some(true);
            v.image = Some(policy_core::image::ImageRef::parse("registry.corp/app"));
        }),
    );
    let mut got: Vec<(&str, Effect)> = d.violations.iter().map(|v| (v.rule, v.effect)).collect();
    got.sort_unstable();
    // Every check an `images` rule compiles into shares its effect.
    assert_eq!(
        got,
        [
            ("images.digest", Effect::Audit),
            ("images.tag", Effect::Audit),
            ("privileged", Effect::Audit),
        ]
    );
    assert_eq!(d.verdict(), Verdict::Allow);
    let d = evaluate(&p, &with(|v| v.host_ports = Some(vec![22])));
    assert_eq!(d.violations[0].effect, Effect::Enforce);
    assert_eq!(d.verdict(), Verdict::Deny);
}

#[test]
fn a_disabled_spec_keeps_only_rules_that_set_their_own_effect() {
    let p = policy(&document(
        "mostly-off",
        "effect: disabled
rules:
  privileged: {}
  procMount: {effect: warn}
",
    ));
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["procMount"]);
    let d = evaluate(&p, &offender());
    assert_eq!(
        findings(&d),
        [(
            "procMount",
            Effect::Warn,
            "container mounts /proc unmasked (procMount: Unmasked)"
        )]
    );
    // A document whose every rule is disabled loads and checks nothing.
    let off = policy(&document(
        "off",
        "effect: disabled\nrules: {privileged: {}}\n",
    ));
    assert_eq!(off.check_count(), 0);
    assert_eq!(off.names().collect::<Vec<_>>(), ["off"]);
}

#[test]
fn undecided_rules_only_hold_a_container_back_when_enforced() {
    let unknown = ContainerView::default();
    let audit = rules("privileged: {effect: audit}\n");
    let d = evaluate(&audit, &unknown);
    assert_eq!(undecided(&d), [("privileged", "security.privileged")]);
    assert_eq!(d.undecided[0].effect, Effect::Audit);
    assert_eq!(d.verdict(), Verdict::Allow);
    let warn = rules("privileged: {effect: warn}\n");
    assert_eq!(evaluate(&warn, &unknown).verdict(), Verdict::Allow);
    let enforce = rules("privileged: {}\n");
    assert_eq!(evaluate(&enforce, &unknown).verdict(), Verdict::Undecided);
}

#[test]
fn deny_wins_over_undecided_which_wins_over_allow() {
    // privileged is unknown (undecided) while hostPorts is violated.
    let p = rules("privileged: {}\nhostPorts: {}\n");
    let view = with(|v| {
        v.security.privileged = None;
        v.host_ports = Some(vec![80]);
    });
    let d = evaluate(&p, &view);
    assert_eq!(undecided(&d), [("privileged", "security.privileged")]);
    assert_eq!(d.verdict(), Verdict::Deny);
    // An audited violation does not outrank an enforced undecided rule.
    let p = rules("privileged: {}\nhostPorts: {effect: audit}\n");
    assert_eq!(evaluate(&p, &view).verdict(), Verdict::Undecided);
}

fn violation(effect: Effect) -> Violation {
    Violation {
        policy: Arc::from("p"),
        rule: "privileged",
        effect,
        message: "container is privileged".into(),
        remediate: policy_core::Remediation::None,
    }
}

fn unknown(effect: Effect) -> Undecided {
    Undecided {
        policy: Arc::from("p"),
        rule: "procMount",
        effect,
        missing: "security.procMount",
    }
}

#[test]
fn verdict_table() {
    use Effect::{Audit, Enforce, Warn};
    let cases: &[(&[Effect], &[Effect], Verdict)] = &[
        (&[], &[], Verdict::Allow),
        (&[Audit, Warn], &[Audit, Warn], Verdict::Allow),
        (&[], &[Enforce], Verdict::Undecided),
        (&[Audit], &[Enforce], Verdict::Undecided),
        (&[Enforce], &[], Verdict::Deny),
        (&[Enforce], &[Enforce], Verdict::Deny),
        (&[Warn, Enforce], &[Audit], Verdict::Deny),
    ];
    for (violations, undecided, verdict) in cases {
        let d = Decision {
            violations: violations.iter().map(|e| violation(*e)).collect(),
            undecided: undecided.iter().map(|e| unknown(*e)).collect(),
            admission_only: Vec::new(),
        };
        assert_eq!(d.verdict(), *verdict, "{violations:?} / {undecided:?}");
        assert_eq!(d.is_denied(), *verdict == Verdict::Deny);
        assert_eq!(d.is_clean(), violations.is_empty() && undecided.is_empty());
        // What only admission can decide never makes the verdict undecided.
        let mut with_admission_only = d.clone();
        with_admission_only.admission_only.push(Undecided {
            missing: "probeHosts",
            ..unknown(Effect::Enforce)
        });
        assert_eq!(with_admission_only.verdict(), *verdict);
        assert!(!with_admission_only.is_clean());
    }
}

#[test]
fn the_refusal_message_lists_every_enforced_violation_with_its_rule() {
    let p = rules("privileged: {}\nreadOnlyRootFilesystem: {}\nprocMount: {effect: audit}\n");
    let d = evaluate(&p, &offender());
    let message = d.refusal_message();
    let mut parts: Vec<&str> = message.split("; ").collect();
    parts.sort_unstable();
    assert_eq!(
        parts,
        [
            "container is privileged [privileged]",
            "container's root filesystem is writable [readOnlyRootFilesystem]",
        ]
    );
}

#[test]
fn effects_are_written_in_lower_case() {
    for (effect, text) in [
        (Effect::Enforce, "enforce"),
        (Effect::Audit, "audit"),
        (Effect::Warn, "warn"),
        (Effect::Disabled, "disabled"),
    ] {
        assert_eq!(effect.as_str(), text);
        assert_eq!(effect.to_string(), text);
        assert_eq!(
            serde_json::to_string(&effect).unwrap(),
            format!("\"{text}\"")
        );
    }
}

#[test]
fn a_decision_serializes_to_stable_json() {
    let mut d = Decision {
        violations: vec![violation(Effect::Enforce)],
        undecided: vec![unknown(Effect::Audit)],
        admission_only: Vec::new(),
    };
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({
            "violations": [{
                "policy": "p",
                "rule": "privileged",
                "effect": "enforce",
                "message": "container is privileged",
            }],
            "undecided": [{
                "policy": "p",
                "rule": "procMount",
                "effect": "audit",
                "missing": "security.procMount",
            }],
        })
    );
    assert_eq!(
        serde_json::to_value(Verdict::Undecided).unwrap(),
        "undecided"
    );
    d.admission_only.push(Undecided {
        missing: "probeHosts",
        ..unknown(Effect::Enforce)
    });
    assert_eq!(
        serde_json::to_value(&d).unwrap()["admissionOnly"],
        serde_json::json!([{
            "policy": "p",
            "rule": "procMount",
            "effect": "enforce",
            "missing": "probeHosts",
        }])
    );
}

#[test]
fn pod_security_effects_come_from_the_preset_the_spec_or_the_caller() {
    let view = with(|v| v.security.privileged = Some(true));
    let audit = Policy::pod_security(PssLevel::Baseline, Effect::Audit);
    let d = evaluate(&audit, &view);
    assert_eq!(
        findings(&d),
        [(
            "pss.baseline.privileged",
            Effect::Audit,
            "container is privileged"
        )]
    );
    assert_eq!(d.verdict(), Verdict::Allow);
    assert_eq!(
        Policy::pod_security(PssLevel::Restricted, Effect::Disabled).check_count(),
        0
    );

    let warn_spec = policy(&document(
        "pss",
        "effect: warn\npodSecurity: {level: baseline}\n",
    ));
    assert_eq!(
        evaluate(&warn_spec, &view).violations[0].effect,
        Effect::Warn
    );
    let own = policy(&document(
        "pss",
        "effect: warn\npodSecurity: {level: baseline, effect: audit}\n",
    ));
    assert_eq!(evaluate(&own, &view).violations[0].effect, Effect::Audit);
}

mod remediation {
    use policy_core::{Remediation, applicable_checks, evaluate};

    use crate::util::{compliant, document, policy_err, rules};

    #[test]
    fn remediate_stop_marks_every_violation_of_the_rule() {
        let p = rules("privileged: {remediate: stop}\nhostNamespaces: {}\n");
        let mut view = compliant();
        view.security.privileged = Some(true);
        view.host_namespaces.pid = Some(true);
        let d = evaluate(&p, &view);
        let by_rule: Vec<(&str, Remediation)> =
            d.violations.iter().map(|v| (v.rule, v.remediate)).collect();
        assert_eq!(
            by_rule,
            [
                ("hostNamespaces", Remediation::None),
                ("privileged", Remediation::Stop)
            ]
        );
        // The audit record names it only when set.
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["violations"][1]["remediate"], "stop");
        assert!(json["violations"][0].get("remediate").is_none());
    }

    #[test]
    fn remediate_applies_to_every_control_of_a_preset() {
        let p = policy_core::Policy::parse(
            "p.yaml",
            &document(
                "pss",
                "podSecurity:\n  level: baseline\n  remediate: stop\n",
            ),
        )
        .unwrap();
        let view = compliant();
        let checks: Vec<_> = applicable_checks(&p, &view).collect();
        assert!(!checks.is_empty());
        assert!(checks.iter().all(|c| c.remediate == Remediation::Stop));
    }

    #[test]
    fn remediate_needs_an_enforced_rule_and_a_known_action() {
        let e = policy_err(&document(
            "t",
            "rules:\n  privileged: {effect: audit, remediate: stop}\n  hostPID: {}\n",
        ));
        let text = e.to_string();
        assert!(
            text.contains("spec.rules.privileged.remediate")
                && text.contains(
                    "remediate: stop needs effect enforce, but privileged has effect audit"
                ),
            "{text}"
        );
        let e = policy_err(&document("t", "rules:\n  privileged: {remediate: kill}\n"));
        let text = e.to_string();
        assert!(
            text.contains("inline.yaml:7:") && text.contains("unknown variant `kill`"),
            "{text}"
        );
    }

    #[test]
    fn applicable_checks_are_those_in_scope_and_not_exempt() {
        let p = policy_core::Policy::parse(
            "p.yaml",
            &format!(
                "{}---\n{}",
                document("everywhere", "rules:\n  privileged: {}\n  images: {allowed: ['.*'], exempt: ['^docker.io/library/busybox']}\n"),
                document("other-ns", "scope: {namespaces: [other]}\nrules:\n  hostNamespaces: {}\n")
            ),
        )
        .unwrap();
        let mut view = compliant();
        let ids = |v: &policy_core::ContainerView| -> Vec<(String, &'static str)> {
            applicable_checks(&p, v)
                .map(|c| (c.policy.to_string(), c.rule))
                .collect()
        };
        assert_eq!(
            ids(&view),
            [
                ("everywhere".to_string(), "images.allowed"),
                ("everywhere".to_string(), "privileged")
            ]
        );
        view.image = Some(policy_core::image::ImageRef::parse("busybox:1"));
        assert_eq!(ids(&view), [("everywhere".to_string(), "privileged")]);
        view.pod.namespace = "other".into();
        view.image = None;
        assert_eq!(
            ids(&view),
            [
                ("everywhere".to_string(), "images.allowed"),
                ("everywhere".to_string(), "privileged"),
                ("other-ns".to_string(), "hostNamespaces")
            ]
        );
    }
}
