//! Compiled matchers: globs, regex lists, label selectors, and the scope built from them.

use std::collections::BTreeMap;

use regex::RegexSet;

use crate::document::SelectorOperator;
use crate::view::ContainerView;

/// Glob patterns (`*` any run of characters, `?` one character), matched against whole
/// strings. An empty list matches nothing.
#[derive(Debug, Clone)]
pub struct Globs {
    set: RegexSet,
    patterns: Vec<String>,
}

/// Translates a glob into an anchored regex.
pub fn glob_to_regex(glob: &str) -> String {
    let mut re = String::with_capacity(glob.len() + 8);
    re.push('^');
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

impl Globs {
    /// Compiles glob patterns. Globs cannot be malformed, but the regex engine may refuse
    /// an absurdly large set.
    ///
    /// # Errors
    /// When the compiled set exceeds the regex size limit.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, regex::Error> {
        let set = RegexSet::new(patterns.iter().map(|p| glob_to_regex(p.as_ref())))?;
        Ok(Globs {
            set,
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
        })
    }

    /// A list that matches nothing.
    pub fn empty() -> Self {
        Globs {
            set: RegexSet::empty(),
            patterns: Vec::new(),
        }
    }

    /// Whether any pattern matches the whole of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Regexes (unanchored, as written), one compiled set.
#[derive(Debug, Clone)]
pub struct Regexes {
    set: RegexSet,
}

impl Regexes {
    /// Compiles a list of regexes.
    ///
    /// # Errors
    /// When a regex is invalid (validation compiles each one alone first to name it).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, regex::Error> {
        Ok(Regexes {
            set: RegexSet::new(patterns.iter().map(AsRef::as_ref))?,
        })
    }

    /// Whether any regex matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        self.set.patterns()
    }

    /// The first pattern that matches, if any.
    pub fn first_match(&self, text: &str) -> Option<&str> {
        // `matches` allocates; most texts match nothing, which `is_match` tells for free.
        if !self.set.is_match(text) {
            return None;
        }
        self.set
            .matches(text)
            .iter()
            .next()
            .map(|i| self.set.patterns()[i].as_str())
    }
}

/// One set-based requirement of a label selector.
#[derive(Debug, Clone)]
pub struct LabelExpression {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`.
    pub values: Vec<String>,
}

/// A Kubernetes label selector; the empty selector matches every pod.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector {
    /// Exact label values required.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelExpression>,
}

impl LabelSelector {
    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator {
                    SelectorOperator::In => value.is_some_and(|v| e.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// Which containers a policy document applies to.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Namespaces included (`None`: all).
    pub namespaces: Option<Globs>,
    /// Namespaces excluded.
    pub excluded_namespaces: Option<Globs>,
    /// Pod label selector.
    pub pod_selector: LabelSelector,
    /// Container names included (`None`: all).
    pub container_names: Option<Globs>,
    /// Container names excluded.
    pub excluded_container_names: Option<Globs>,
    /// Images exempt from the whole policy.
    pub exempt_images: Option<Regexes>,
    /// Pod names included (`None`: all; a Gatekeeper constraint's `match.name`).
    pub pod_names: Option<Globs>,
    /// Gatekeeper's reading of the namespace criteria: an object that names no namespace
    /// ([`crate::view::PodView::namespace_assumed`]) is neither in nor out of any.
    pub gatekeeper: bool,
    /// The labels the pod's namespace must have (`namespaceSelector`); `None`: any namespace.
    pub namespace_selector: Option<LabelSelector>,
}

/// Whether a scope holds a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMatch {
    /// It does.
    Yes,
    /// It does not.
    No,
    /// It would, if the namespace's labels (which its `namespaceSelector` reads) were known.
    NeedsNamespaceLabels,
}

impl Scope {
    /// Whether the scope depends on nothing but the pod (not on a container's name or image):
    /// what can be matched before any container exists.
    pub fn pod_wide(&self) -> bool {
        self.container_names.is_none()
            && self.excluded_container_names.is_none()
            && self.exempt_images.is_none()
    }

    /// Whether the policy applies to the container.
    pub fn applies_to(&self, view: &ContainerView) -> bool {
        self.matches(view) == ScopeMatch::Yes
    }

    /// Whether the scope holds the container, or cannot tell for want of its namespace's
    /// labels.
    pub fn matches(&self, view: &ContainerView) -> ScopeMatch {
        if !self.holds_but_namespace_labels(view) {
            return ScopeMatch::No;
        }
        match (&self.namespace_selector, &view.pod.namespace_labels) {
            (None, _) => ScopeMatch::Yes,
            (Some(selector), Some(labels)) if selector.matches(labels) => ScopeMatch::Yes,
            (Some(_), Some(_)) => ScopeMatch::No,
            (Some(_), None) => ScopeMatch::NeedsNamespaceLabels,
        }
    }

    fn holds_but_namespace_labels(&self, view: &ContainerView) -> bool {
        let ns = view.pod.namespace.as_str();
        let placed = self.gatekeeper && view.pod.namespace_assumed;
        let included = placed || self.namespaces.as_ref().is_none_or(|g| g.is_match(ns));
        let excluded = !placed
            && self
                .excluded_namespaces
                .as_ref()
                .is_some_and(|g| g.is_match(ns));
        included
            && !excluded
            && self
                .container_names
                .as_ref()
                .is_none_or(|g| g.is_match(&view.name))
            && !self
                .excluded_container_names
                .as_ref()
                .is_some_and(|g| g.is_match(&view.name))
            && !image_exempt(self.exempt_images.as_ref(), view)
            && self.pod_selector.matches(&view.pod.labels)
            && self
                .pod_names
                .as_ref()
                .is_none_or(|g| g.is_match(&view.pod.name))
    }
}

/// An allowed host path: a prefix, and whether paths under it may only be mounted read-only.
/// How the prefix compares is the rule's: whole components ([`path_has_prefix`]) for
/// `NodePolicy` and Azure, a string prefix for the gatekeeper-library's CEL form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedHostPath {
    /// The prefix.
    pub(crate) prefix: String,
    /// Only read-only mounts are allowed under it.
    pub(crate) read_only: bool,
}

/// Whether `path` is `prefix` or lies below it, comparing whole path components (`/var/log`
/// holds `/var/log/app`, not `/var/logs`; `/` holds every absolute path).
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return path.starts_with('/');
    }
    // A `..` component can climb out of any prefix (the mount resolves it), so such a path
    // lies under none but `/`.
    if path.split('/').any(|c| c == "..") {
        return false;
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether the view's image matches an exemption list: any name of its content does (ADR
/// 0020). An unknown image is never exempt.
pub fn image_exempt(exempt: Option<&Regexes>, view: &ContainerView) -> bool {
    exempt.is_some_and(|re| view.image_aliases().any(|i| re.is_match(i.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_strings() {
        let g = Globs::new(&["kube-*", "prod", "team-?"]).unwrap();
        assert!(g.is_match("kube-system"));
        assert!(g.is_match("prod"));
        assert!(g.is_match("team-a"));
        assert!(!g.is_match("production"));
        assert!(!g.is_match("team-ab"));
        assert!(!g.is_match("my-kube-system"));
        let dots = Globs::new(&["net.ipv4.*"]).unwrap();
        assert!(dots.is_match("net.ipv4.tcp_syncookies"));
        assert!(!dots.is_match("netXipv4.a"));
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".into(), "front".into()),
        ]
        .into();
        let sel = |op, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelExpression {
                key: "app".into(),
                operator: op,
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert!(sel(SelectorOperator::In, &["web", "api"]).matches(&labels));
        assert!(!sel(SelectorOperator::NotIn, &["web"]).matches(&labels));
        assert!(sel(SelectorOperator::Exists, &[]).matches(&labels));
        assert!(!sel(SelectorOperator::DoesNotExist, &[]).matches(&labels));
        assert!(LabelSelector::default().matches(&labels));
    }
}
