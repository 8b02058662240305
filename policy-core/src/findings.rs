//! What the rules ([`crate::rules`]) and the Pod Security Standards controls ([`crate::pss`])
//! share: where a check writes what it finds, how profiles are named in messages, and the
//! `runAsNonRoot` judgement both make.

use std::sync::Arc;

use crate::decision::{Decision, Effect, Remediation, Undecided, Violation};
use crate::image::ImageRef;
use crate::view::{AppArmor, ContainerView, ImageVolume, Seccomp};

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

/// The name an image volume is shown by: its first name, or its digest when it has none.
pub(crate) fn volume_image(volume: &ImageVolume) -> &str {
    volume
        .names
        .iter()
        .flatten()
        .next()
        .map_or(volume.digest.as_str(), ImageRef::as_str)
}

/// Judges the container's images by a rule that *allows* images by name (ADR 0020): the
/// container's image passes when any name of its content passes (an unknown image leaves the
/// check undecided); each image volume passes when any of its names passes, and one the
/// runtime knows no name of never does (one whose names were not read leaves it undecided). `image_refused` words the container's violation (from
/// the image as given), `volume_refused` an image volume's (from its destination and name).
pub(crate) fn judge_allowed_images(
    view: &ContainerView,
    out: &mut Findings<'_>,
    allowed: impl Fn(&ImageRef) -> bool,
    image_refused: impl FnOnce(&ImageRef) -> String,
    volume_refused: impl Fn(&str, &str) -> String,
) {
    for volume in &view.image_volumes {
        match &volume.names {
            None => out.unknown("imageVolumes"),
            Some(names) if !names.iter().any(&allowed) => {
                out.violation(volume_refused(&volume.destination, volume_image(volume)));
            }
            Some(_) => {}
        }
    }
    let image = known!(out, &view.image, "image");
    if !view.image_aliases().any(allowed) {
        out.violation(image_refused(image));
    }
}

/// Judges the container's images by a rule that *denies* images by name (ADR 0020): the
/// container is refused when any name of its content is denied, and so is each image volume.
/// `denied` gives what denies a name (a pattern, a repository); `image_refused` words the
/// container's violation from the image as given, the denied name and what denies it, and
/// `volume_refused` an image volume's from its destination, the denied name and what denies it.
pub(crate) fn judge_denied_images<'p>(
    view: &ContainerView,
    out: &mut Findings<'_>,
    denied: impl Fn(&ImageRef) -> Option<&'p str>,
    image_refused: impl FnOnce(&ImageRef, &ImageRef, &str) -> String,
    volume_refused: impl Fn(&str, &ImageRef, &str) -> String,
) {
    for volume in &view.image_volumes {
        let Some(names) = &volume.names else {
            out.unknown("imageVolumes");
            continue;
        };
        if let Some((name, why)) = names.iter().find_map(|n| denied(n).map(|why| (n, why))) {
            out.violation(volume_refused(&volume.destination, name, why));
        }
    }
    let image = known!(out, &view.image, "image");
    if let Some((name, why)) = view
        .image_aliases()
        .find_map(|n| denied(n).map(|why| (n, why)))
    {
        out.violation(image_refused(image, name, why));
    }
}

/// ` (named <name> too)` when the name a rule judged is not the image as given, else nothing.
pub(crate) fn also_named(image: &ImageRef, name: &ImageRef) -> String {
    if image.as_str() == name.as_str() {
        String::new()
    } else {
        format!(" (its content is also named {:?})", name.as_str())
    }
}
