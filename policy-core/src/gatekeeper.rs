//! Gatekeeper constraint kinds judged natively: the checks a `constraints.gatekeeper.sh`
//! constraint compiles into, with the gatekeeper-library's semantics and messages.
//!
//! Facts come from the library's templates (their Rego and CEL); the code is ours. Where a
//! template has both, Gatekeeper runs the CEL one by default and its message is the one users
//! see; where the CEL message joins every offending container of a pod into one line, the node,
//! which judges one container at a time, gives the Rego message per container.
//!
//! Images are compared as written in the pod (`nginx`, not `docker.io/library/nginx:latest`),
//! as the library's string prefixes and suffixes compare them: that is what containerd 2.x
//! tells the node; containerd 1.7 tells an already normalized name.

use crate::findings::{Findings, known};
use crate::view::{ContainerKind, ContainerView};

/// `exemptImages`, as the library's `exempt_container` reads it: an entry ending in `*` is a
/// prefix (one trailing `*` removed), any other entry must equal the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExemptImages(Vec<String>);

impl ExemptImages {
    pub(crate) fn new(entries: Vec<String>) -> Self {
        ExemptImages(entries)
    }

    /// Whether the container's image is exempt. An unknown image is never exempt.
    pub(crate) fn covers(&self, view: &ContainerView) -> bool {
        let Some(image) = &view.image else {
            return false;
        };
        let image = image.as_written();
        self.0.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => image == entry,
        })
    }
}

/// A library kind's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GkRule {
    /// K8sAllowedRepos: the image starts with one of `repos`.
    AllowedRepos(Vec<String>),
    /// K8sAllowedReposv2: the image equals an entry, or starts with one ending in `*`.
    AllowedImages(Vec<String>),
    /// K8sDisallowedRepos: the image starts with none of `repos`.
    DisallowedRepos(Vec<String>),
    /// K8sDisallowedTags: no tag of `tags`, and a tag at all.
    DisallowedTags(Vec<String>),
    /// K8sImageDigests: the image names a digest.
    ImageDigests,
    /// K8sPSPPrivilegedContainer.
    Privileged,
    /// K8sPSPHostNamespace: neither hostPID nor hostIPC.
    HostNamespace,
    /// K8sPSPAllowPrivilegeEscalationContainer: privilege escalation explicitly off.
    AllowPrivilegeEscalation,
    /// K8sPSPReadOnlyRootFilesystem.
    ReadOnlyRootFilesystem,
}

/// `container`, `initContainer` or `ephemeralContainer`, as the library's messages say.
fn container_word(view: &ContainerView) -> &'static str {
    match view.kind {
        Some(ContainerKind::Init) => "initContainer",
        Some(ContainerKind::Ephemeral) => "ephemeralContainer",
        _ => "container",
    }
}

/// A list as OPA's `sprintf("%v")` prints an array: `["a", "b"]`.
fn rego_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The library's loose digest test: `@algorithm:hex` anywhere in the image.
fn has_digest(image: &str) -> bool {
    let Some((_, after)) = image.split_once('@') else {
        return false;
    };
    let Some((algorithm, encoded)) = after.split_once(':') else {
        return false;
    };
    let alg_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let enc_ok = encoded
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    alg_ok && enc_ok
}

impl GkRule {
    pub(crate) fn judge(&self, view: &ContainerView, out: &mut Findings<'_>) {
        let name = &view.name;
        let word = container_word(view);
        match self {
            GkRule::AllowedRepos(repos) => {
                let image = known!(out, &view.image, "image").as_written();
                if !repos.iter().any(|r| image.starts_with(r.as_str())) {
                    out.violation(format!(
                        "{word} <{name}> has an invalid image repo <{image}>, allowed repos are {}",
                        rego_array(repos)
                    ));
                }
            }
            GkRule::AllowedImages(allowed) => {
                let image = known!(out, &view.image, "image").as_written();
                let ok = allowed.iter().any(|a| match a.strip_suffix('*') {
                    Some(prefix) => image.starts_with(prefix),
                    None => image == a,
                });
                if !ok {
                    out.violation(format!(
                        "{word} <{name}> has an invalid image <{image}>, allowed images are {}",
                        rego_array(allowed)
                    ));
                }
            }
            GkRule::DisallowedRepos(repos) => {
                let image = known!(out, &view.image, "image").as_written();
                if repos.iter().any(|r| image.starts_with(r.as_str())) {
                    out.violation(format!(
                        "{word} <{name}> has an invalid image repo <{image}>, disallowed repos are {}",
                        rego_array(repos)
                    ));
                }
            }
            GkRule::DisallowedTags(tags) => {
                let image = known!(out, &view.image, "image").as_written();
                // One set for every list: the library says "container" for all of them.
                if tags.iter().any(|t| image.ends_with(&format!(":{t}"))) {
                    out.violation(format!(
                        "container <{name}> uses a disallowed tag <{image}>; disallowed tags are {}",
                        rego_array(tags)
                    ));
                }
                let last = image.rsplit('/').next().unwrap_or(image);
                if !last.contains(':') {
                    out.violation(format!(
                        "container <{name}> didn't specify an image tag <{image}>"
                    ));
                }
            }
            GkRule::ImageDigests => {
                let image = known!(out, &view.image, "image").as_written();
                if !has_digest(image) {
                    out.violation(format!(
                        "{word} <{name}> uses an image without a digest <{image}>"
                    ));
                }
            }
            GkRule::Privileged => {
                if *known!(out, &view.security.privileged, "security.privileged") {
                    out.violation(format!(
                        "Privileged container is not allowed: {name}, securityContext.privileged: true"
                    ));
                }
            }
            GkRule::HostNamespace => {
                let host = &view.host_namespaces;
                let pid = known!(out, &host.pid, "hostNamespaces.pid");
                let ipc = known!(out, &host.ipc, "hostNamespaces.ipc");
                if *pid || *ipc {
                    out.violation(format!(
                        "Sharing the host namespace is not allowed: {}",
                        view.pod.name
                    ));
                }
            }
            GkRule::AllowPrivilegeEscalation => {
                let allowed = known!(
                    out,
                    &view.security.allow_privilege_escalation,
                    "security.allowPrivilegeEscalation"
                );
                if *allowed != Some(false) {
                    out.violation(format!(
                        "Privilege escalation container is not allowed: {name}"
                    ));
                }
            }
            GkRule::ReadOnlyRootFilesystem => {
                let read_only = known!(
                    out,
                    &view.security.read_only_root_filesystem,
                    "security.readOnlyRootFilesystem"
                );
                if !read_only {
                    out.violation(format!(
                        "only read-only root filesystem container is allowed: {name}"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageRef;

    fn with_image(image: &str) -> ContainerView {
        ContainerView {
            name: "app".into(),
            image: Some(ImageRef::parse(image)),
            ..ContainerView::default()
        }
    }

    #[test]
    fn exempt_images_are_exact_or_a_trailing_star_prefix() {
        let exempt = ExemptImages::new(vec!["nginx:1.27".into(), "registry.corp/tools/*".into()]);
        assert!(exempt.covers(&with_image("nginx:1.27")));
        assert!(!exempt.covers(&with_image("nginx:1.28")));
        assert!(
            !exempt.covers(&with_image("docker.io/library/nginx:1.27")),
            "as written"
        );
        assert!(exempt.covers(&with_image("registry.corp/tools/x:1")));
        assert!(ExemptImages::new(vec!["*".into()]).covers(&with_image("anything")));
        assert!(!exempt.covers(&ContainerView::default()), "unknown image");
    }

    #[test]
    fn digests_are_found_as_loosely_as_the_library_finds_them() {
        assert!(has_digest("nginx@sha256:abc"));
        assert!(has_digest("registry.corp/a/b:1@sha256:0123abcd"));
        assert!(has_digest("a@sha256+b.c:x"));
        assert!(!has_digest("nginx:1.27"));
        assert!(!has_digest("nginx@sha256"));
        assert!(!has_digest("nginx@SHA256:abc"));
        assert!(!has_digest("nginx@:abc"));
    }

    #[test]
    fn arrays_print_as_opa_prints_them() {
        assert_eq!(rego_array(&["a/".into(), "b".into()]), r#"["a/", "b"]"#);
        assert_eq!(rego_array(&[]), "[]");
    }
}
