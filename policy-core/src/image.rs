//! Container image references, normalized the way containerd names images.
//!
//! `nginx` and `docker.io/library/nginx:latest` are the same image; the node only ever sees the
//! second form (containerd's `io.kubernetes.cri.image-name`). Normalizing both manifests and
//! runtime names the same way lets one policy regex judge both.

use std::fmt;

/// A normalized image reference: `registry/repository[:tag][@digest]`, and the text it was read
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    reference: String,
    /// The reference as written (trimmed), before normalization.
    written: Box<str>,
    /// Byte length of `registry/repository`.
    name_len: usize,
    /// Byte length of the registry host.
    registry_len: usize,
    tag: Option<(usize, usize)>,
    digest_start: Option<usize>,
}

impl ImageRef {
    /// Normalizes an image reference as containerd does: a missing registry is `docker.io`,
    /// a single-component Docker Hub name gains `library/`, and a reference with neither tag
    /// nor digest gains `:latest`.
    ///
    /// ```
    /// use policy_core::image::ImageRef;
    /// let image = ImageRef::parse("nginx");
    /// assert_eq!(image.as_str(), "docker.io/library/nginx:latest");
    /// assert_eq!(image.tag(), Some("latest"));
    /// let pinned = ImageRef::parse("registry.corp:5000/team/app@sha256:abc");
    /// assert_eq!(pinned.registry(), "registry.corp:5000");
    /// assert_eq!(pinned.digest(), Some("sha256:abc"));
    /// assert_eq!(pinned.tag(), None);
    /// ```
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };
        // Docker Hub's legacy host names are docker.io.
        let name = name
            .strip_prefix("index.docker.io/")
            .or_else(|| name.strip_prefix("registry-1.docker.io/"))
            .map_or(name, |rest| if rest.contains('/') { rest } else { name });
        let first = name.split('/').next().unwrap_or_default();
        let has_registry = name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let mut reference = String::with_capacity(text.len() + 24);
        if has_registry {
            reference.push_str(name);
        } else if name.contains('/') {
            reference.push_str("docker.io/");
            reference.push_str(name);
        } else {
            reference.push_str("docker.io/library/");
            reference.push_str(name);
        }
        let registry_len = reference.find('/').unwrap_or(reference.len());
        let name_len = reference.len();
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        };
        let tag = tag.map(|t| {
            reference.push(':');
            let start = reference.len();
            reference.push_str(t);
            (start, reference.len())
        });
        let digest_start = digest.map(|d| {
            reference.push('@');
            let start = reference.len();
            reference.push_str(d);
            start
        });
        ImageRef {
            reference,
            written: text.into(),
            name_len,
            registry_len,
            tag,
            digest_start,
        }
    }

    /// The whole normalized reference.
    pub fn as_str(&self) -> &str {
        &self.reference
    }

    /// The reference as it was written (`nginx`), which Gatekeeper's rules compare as a string.
    /// On the node it is what containerd's image annotation holds: the pod's own string on
    /// containerd 2.x, an already normalized name on 1.7.
    ///
    /// ```
    /// let image = policy_core::image::ImageRef::parse(" nginx:1.27 ");
    /// assert_eq!(image.as_written(), "nginx:1.27");
    /// ```
    pub fn as_written(&self) -> &str {
        &self.written
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> &str {
        &self.reference[..self.name_len]
    }

    /// The registry host (with port, if any).
    pub fn registry(&self) -> &str {
        &self.reference[..self.registry_len]
    }

    /// The tag, if the reference has one (`latest` when it had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.map(|(s, e)| &self.reference[s..e])
    }

    /// The digest (`sha256:...`), if the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest_start.map(|s| &self.reference[s..])
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_containerd() {
        for (given, normalized) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("bitnami/redis", "docker.io/bitnami/redis:latest"),
            (
                "docker.io/library/nginx:latest",
                "docker.io/library/nginx:latest",
            ),
            ("localhost/app", "localhost/app:latest"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            (
                "index.docker.io/bitnami/redis",
                "docker.io/bitnami/redis:latest",
            ),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            (
                "ghcr.io/org/tool@sha256:0123",
                "ghcr.io/org/tool@sha256:0123",
            ),
            (
                "ghcr.io/org/tool:v1@sha256:0123",
                "ghcr.io/org/tool:v1@sha256:0123",
            ),
        ] {
            assert_eq!(ImageRef::parse(given).as_str(), normalized, "{given}");
        }
    }

    #[test]
    fn splits_parts() {
        let image = ImageRef::parse("localhost:5000/a/b:v2");
        assert_eq!(image.registry(), "localhost:5000");
        assert_eq!(image.name(), "localhost:5000/a/b");
        assert_eq!(image.tag(), Some("v2"));
        assert_eq!(image.digest(), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_is_idempotent(text in "[a-z0-9./:@_-]{0,40}") {
            let once = ImageRef::parse(&text);
            let twice = ImageRef::parse(once.as_str());
            proptest::prop_assert_eq!(once.as_str(), twice.as_str());
        }
    }
}
