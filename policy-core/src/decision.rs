//! What evaluation returns: every violation found, and every rule that could not decide.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a rule does when it is violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Refuse the container.
    Enforce,
    /// Allow it, and record the violation in the audit log and reports.
    Audit,
    /// Allow it, record it, and warn (the daemon logs a warning).
    Warn,
    /// The rule is not evaluated.
    Disabled,
}

impl Effect {
    /// The effect's name as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Enforce => "enforce",
            Effect::Audit => "audit",
            Effect::Warn => "warn",
            Effect::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What nodeguard does to a container already running that is found violating a rule (the
/// rule's `remediate`). Opt-in: by default nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Remediation {
    /// Report only.
    #[default]
    None,
    /// Stop the container (its task is killed; the kubelet's restart is judged afresh).
    Stop,
}

impl Remediation {
    /// Whether nothing is done.
    pub fn is_none(&self) -> bool {
        *self == Remediation::None
    }
}

/// One rule broken by the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Name of the policy document holding the rule.
    pub policy: Arc<str>,
    /// Rule id, e.g. `images.allowed` or `pss.restricted.runAsNonRoot`.
    pub rule: &'static str,
    /// The rule's effect.
    pub effect: Effect,
    /// What is wrong, for a person to act on.
    pub message: String,
    /// What to do about a running container that breaks the rule.
    #[serde(skip_serializing_if = "Remediation::is_none")]
    pub remediate: Remediation,
}

/// A rule that could not decide because the view lacks a field it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undecided {
    /// Name of the policy document holding the rule.
    pub policy: Arc<str>,
    /// Rule id.
    pub rule: &'static str,
    /// The rule's effect.
    pub effect: Effect,
    /// The unknown field (`security.capabilities`, ...).
    pub missing: &'static str,
}

impl Undecided {
    /// Whether a node can ever see the field this rule lacked: not for the fields that live only
    /// in the pod spec ([`crate::view::NEVER_ON_NODE`]). A rule undecided for want of those stays
    /// undecided on the node (admission or `nodeguard check` decide it), and never refuses.
    pub fn seen_on_node(&self) -> bool {
        !crate::view::NEVER_ON_NODE.contains(&self.missing)
    }
}

/// The overall outcome of a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No enforced rule is violated or undecided.
    Allow,
    /// At least one enforced rule is violated.
    Deny,
    /// No enforced rule is violated, but at least one enforced rule could not decide.
    Undecided,
}

/// Every finding of one evaluation, in policy order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Rules broken, whatever their effect.
    pub violations: Vec<Violation>,
    /// Rules that lacked input a node can see (a later phase may decide them).
    pub undecided: Vec<Undecided>,
    /// Rules that lacked what only the pod spec tells, which no node ever sees (probes, a
    /// memory request, `stdin`, `fsGroup`): admission decides them, never the node. They do
    /// not make a verdict undecided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admission_only: Vec<Undecided>,
}

impl Decision {
    /// The outcome: deny wins over undecided, which wins over allow.
    pub fn verdict(&self) -> Verdict {
        if self.enforced().next().is_some() {
            Verdict::Deny
        } else if self.undecided.iter().any(|u| u.effect == Effect::Enforce) {
            Verdict::Undecided
        } else {
            Verdict::Allow
        }
    }

    /// Whether an enforced rule is violated.
    pub fn is_denied(&self) -> bool {
        self.verdict() == Verdict::Deny
    }

    /// Violations of enforced rules.
    pub fn enforced(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.effect == Effect::Enforce)
    }

    /// Whether nothing at all was found.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.undecided.is_empty() && self.admission_only.is_empty()
    }

    /// Every rule that lacked input: [`Decision::undecided`], then
    /// [`Decision::admission_only`].
    pub fn lacking(&self) -> impl Iterator<Item = &Undecided> {
        self.undecided.iter().chain(&self.admission_only)
    }

    /// The enforced violations' messages joined into one line, for a refusal. A violation
    /// that two policy documents both report (the same rule and message) is named once.
    pub fn refusal_message(&self) -> String {
        let mut out = String::new();
        let enforced: Vec<&Violation> = self.enforced().collect();
        for (i, v) in enforced.iter().enumerate() {
            let repeated = enforced[..i]
                .iter()
                .any(|w| w.rule == v.rule && w.message == v.message);
            if repeated {
                continue;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&v.message);
            out.push_str(" [");
            out.push_str(v.rule);
            out.push(']');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(policy: &str, rule: &'static str, message: &str) -> Violation {
        Violation {
            policy: Arc::from(policy),
            rule,
            effect: Effect::Enforce,
            message: message.to_string(),
            remediate: Remediation::None,
        }
    }

    #[test]
    fn a_refusal_names_a_violation_reported_by_two_policies_once() {
        let decision = Decision {
            violations: vec![
                violation(
                    "baseline",
                    "pss.baseline.privileged",
                    "container is privileged",
                ),
                violation(
                    "restricted",
                    "pss.baseline.privileged",
                    "container is privileged",
                ),
                violation(
                    "restricted",
                    "pss.restricted.runAsNonRoot",
                    "runAsNonRoot is not set to true",
                ),
            ],
            undecided: Vec::new(),
            admission_only: Vec::new(),
        };
        assert_eq!(
            decision.refusal_message(),
            "container is privileged [pss.baseline.privileged]; \
             runAsNonRoot is not set to true [pss.restricted.runAsNonRoot]"
        );
    }
}
