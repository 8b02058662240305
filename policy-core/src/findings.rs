//! What the rules ([`crate::rules`]) and the Pod Security Standards controls ([`crate::pss`])
//! share: where a check writes what it finds, how profiles are named in messages, and the
//! `runAsNonRoot` judgement both make.

use std::sync::Arc;

use crate::decision::{Decision, Effect, Remediation, Undecided, Violation};
use crate::view::{AppArmor, ContainerView, Seccomp};

/// Where a check writes what it finds.
pub(crate) struct Findings<'a> {
    pub(crate) decision: &'a mut Decision,
    pub(crate) policy: &'a Arc<str>,
    pub(crate) rule: &'static str,
    pub(crate) effect: Effect,
    pub(crate) remediate: Remediation,
}

impl Findings<'_> {
    /// Records a violation.
    pub(crate) fn violation(&mut self, message: String) {
        self.decision.violations.push(Violation {
            policy: Arc::clone(self.policy),
            rule: self.rule,
            effect: self.effect,
            message,
            remediate: self.remediate,
        });
    }

    /// Records that the check lacked `field`: undecided, or admission-only when no node ever
    /// sees that field.
    pub(crate) fn unknown(&mut self, field: &'static str) {
        let lacking = Undecided {
            policy: Arc::clone(self.policy),
            rule: self.rule,
            effect: self.effect,
            missing: field,
        };
        if lacking.seen_on_node() {
            self.decision.undecided.push(lacking);
        } else {
            self.decision.admission_only.push(lacking);
        }
    }
}

/// Unwraps a known field or records the check as undecided and returns.
macro_rules! known {
    ($out:expr, $value:expr, $field:literal) => {
        match $value {
            Some(v) => v,
            None => {
                $out.unknown($field);
                return;
            }
        }
    };
}
pub(crate) use known;

/// A seccomp profile as messages name it.
pub(crate) fn describe_seccomp(value: &Seccomp) -> String {
    match value {
        Seccomp::RuntimeDefault => "RuntimeDefault".to_string(),
        Seccomp::Localhost(name) => format!("Localhost ({name})"),
        Seccomp::Unconfined => "Unconfined".to_string(),
        Seccomp::Confined => "(set by the runtime)".to_string(),
    }
}

/// An AppArmor profile as messages name it.
pub(crate) fn describe_apparmor(value: &AppArmor) -> String {
    match value {
        AppArmor::RuntimeDefault => "RuntimeDefault".to_string(),
        AppArmor::Localhost(name) => format!("Localhost ({name})"),
        AppArmor::Unconfined => "Unconfined".to_string(),
    }
}

/// The user id of root.
pub(crate) const ROOT_UID: u32 = 0;

/// `runAsNonRoot`: on a manifest, the declared setting (and, with `check_declared_uid`, a
/// declared user id of 0); on the node, the actual user id.
pub(crate) fn judge_run_as_non_root(
    view: &ContainerView,
    out: &mut Findings<'_>,
    check_declared_uid: bool,
) {
    let sec = &view.security;
    let uid = sec
        .run_as_user
        .as_ref()
        .and_then(|u| u.effective().copied());
    if let Some(declared) = &sec.run_as_non_root {
        // A manifest: judge what it declares, as Pod Security Admission does.
        for (level, value) in declared.declared() {
            if !value {
                out.violation(format!("{} runAsNonRoot is false", level.describe()));
                return;
            }
        }
        if declared.effective().is_none() {
            out.violation("runAsNonRoot is not set to true".to_string());
        } else if check_declared_uid && uid == Some(ROOT_UID) {
            out.violation("container runs as root (runAsUser: 0)".to_string());
        }
        return;
    }
    // A runtime view: the user is what it is.
    let user = known!(out, &sec.run_as_user, "security.runAsUser");
    match user.effective() {
        Some(&ROOT_UID) => out.violation("container runs as root (UID 0)".to_string()),
        Some(_) => {}
        None => out.unknown("security.runAsUser"),
    }
}
