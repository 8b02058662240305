//! Loading policies: parse, validate every part, compile once; and evaluation.
//!
//! A load either yields a complete, immutable [`Policy`] or a [`PolicyErrors`] listing every
//! mistake found, each with its file, line, column and field path. Nothing is half-loaded.
//!
//! - this module: the public API ([`Policy`], [`PolicyErrors`]) and evaluation ([`evaluate`],
//!   [`results`]);
//! - `error`: a mistake and its place;
//! - `validate`: the error-recovering validation context that reports every mistake with its
//!   place;
//! - `compile`: documents, scope, exemptions and the Pod Security Standards preset;
//! - `rule`: each rule of `spec.rules` into its checks.

mod compile;
mod constraint;
mod constraint_kinds;
mod convert;
mod error;
mod rule;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::decision::{Decision, Effect, Remediation, Undecided, Violation};
use crate::document::PssLevel;
use crate::findings::Findings;
use crate::matcher::{Scope, ScopeMatch};
use crate::pss::PssVersion;
use crate::view::ContainerView;
use crate::yaml::{self, Location, Locations};

/// Why a document is skipped for a container whose namespace's labels are not known.
pub const NEEDS_NAMESPACE_LABELS: &str = "its namespaceSelector needs the labels of the container's namespace, which this node does not have (they come from the API server with serve --cluster)";
use compile::{CompiledDocument, ContainerdScope, compile_document, pss_checks};
pub use constraint::{CONSTRAINT_GROUP, ENFORCEMENT_POINT, TEMPLATE_GROUP};
pub use error::{PolicyError, PolicyErrors, PolicyNote};
pub use rule::RULE_NAMES;
use validate::Ctx;

/// The containerd namespace of Kubernetes' containers (CRI's): what a policy judges unless
/// [`Policy::in_containerd_namespace`] says otherwise.
pub const KUBERNETES_CONTAINERD_NAMESPACE: &str = "k8s.io";

/// A compiled, immutable set of policy documents. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    documents: Vec<CompiledDocument>,
    notes: Vec<PolicyNote>,
    /// The containerd namespace of the containers this policy judges; `None`: Kubernetes'
    /// ([`KUBERNETES_CONTAINERD_NAMESPACE`]). Documents whose `containerdNamespaces` scope does
    /// not hold it judge nothing.
    containerd_namespace: Option<Arc<str>>,
    /// Where each document was read, by policy name (a file's path, or `api:Kind/name@3`).
    origins: Arc<BTreeMap<String, String>>,
    /// Whether a check reads the other names of an image's content ([`Policy::reads_image_names`]),
    /// found once at load: the daemon asks at every container creation.
    reads_image_names: bool,
}

/// Whether any check of `documents` reads the other names of an image's content or its image
/// volumes: a rule that allows or denies images by name, or an exemption by image.
fn documents_read_image_names(documents: &[CompiledDocument]) -> bool {
    documents.iter().any(|d| {
        (d.scope.exempt_images.is_some() && !d.checks.is_empty())
            || d.checks.iter().any(crate::rules::Check::reads_image_names)
    })
}

impl Policy {
    /// Loads the `NodePolicy` documents of one YAML text.
    ///
    /// # Errors
    /// Every mistake found, with `source_name`, line, column and field.
    ///
    /// ```
    /// let policy = policy_core::Policy::parse("policy.yaml", r#"
    /// apiVersion: nodeguard.io/v1alpha1
    /// kind: NodePolicy
    /// metadata: {name: images}
    /// spec:
    ///   rules:
    ///     images: {allowed: ['^registry\.corp/']}
    /// "#).unwrap();
    /// assert_eq!(policy.check_count(), 1);
    /// ```
    pub fn parse(source_name: &str, text: &str) -> Result<Policy, PolicyErrors> {
        Self::parse_many([(source_name, text)])
    }

    /// Loads the documents of several sources (the files of a ConfigMap, say) as one policy.
    /// Policy names must be unique across all of them.
    ///
    /// # Errors
    /// Every mistake found in any source.
    pub fn parse_many<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Policy, PolicyErrors> {
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        let mut documents = Vec::new();
        // Each name with where it was first defined.
        let mut names: BTreeMap<String, (String, Location)> = BTreeMap::new();
        // The sources share one budget: many files cannot expand further than one.
        let mut spent = 0;
        for (source_name, text) in sources {
            let (docs, expanded) = yaml::read_all(text, yaml::Limits::POLICY, spent);
            spent = expanded;
            let docs = match docs {
                Ok(docs) => docs,
                Err(e) => {
                    errors.push(PolicyError {
                        source_name: source_name.to_string(),
                        location: e.location,
                        path: String::new(),
                        message: format!("invalid YAML: {}", e.message),
                    });
                    continue;
                }
            };
            if docs.is_empty() {
                errors.push(PolicyError {
                    source_name: source_name.to_string(),
                    location: Location { line: 1, column: 1 },
                    path: String::new(),
                    message: "no NodePolicy document found".to_string(),
                });
            }
            for doc in docs {
                for (value, locations) in items(&doc) {
                    let mut ctx = Ctx {
                        source_name,
                        locations: &locations,
                        errors: &mut errors,
                        notes: &mut notes,
                        recovered: false,
                    };
                    // Templates are accepted and not run: nodeguard implements each kind.
                    if constraint::is_template(value) {
                        continue;
                    }
                    let (compiled, name) = if constraint::is_constraint(value) {
                        (
                            constraint::compile_constraint(&mut ctx, value),
                            constraint::constraint_name(value),
                        )
                    } else {
                        (
                            compile_document(&mut ctx, value),
                            value
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .map(|n| n.trim().to_string())
                                .filter(|n| !n.is_empty()),
                        )
                    };
                    // Names are compared whether or not their documents hold other mistakes.
                    let here = (source_name.to_string(), locations.nearest("metadata.name"));
                    if let Some(name) = name
                        && let Some((file, at)) = names.get(&name).cloned().or_else(|| {
                            names.insert(name.clone(), here);
                            None
                        })
                    {
                        ctx.error(
                            "metadata.name",
                            format!(
                                "policy name {name:?} is used by another document (first at {file}:{at})"
                            ),
                        );
                    } else if let Some(compiled) = compiled {
                        documents.push(compiled);
                    }
                }
            }
        }
        if errors.is_empty() {
            let origins = names
                .into_iter()
                .map(|(name, (source, _))| (name, source))
                .collect();
            Ok(Policy {
                reads_image_names: documents_read_image_names(&documents),
                documents,
                notes,
                containerd_namespace: None,
                origins: Arc::new(origins),
            })
        } else {
            // In reading order: by file (as given), then line and column.
            let order: Vec<String> = errors.iter().map(|e| e.source_name.clone()).collect();
            errors.sort_by_key(|e| {
                let file = order.iter().position(|n| *n == e.source_name).unwrap_or(0);
                (file, e.location)
            });
            Err(PolicyErrors(errors))
        }
    }

    /// The `NodePolicy` documents closest to the Gatekeeper constraints of `sources` (what
    /// `nodeguard policy convert` prints): each preceded by a comment naming its constraint and
    /// saying what differs; a constraint that cannot be converted is a comment saying why.
    /// `NodePolicy` documents of the sources are left out.
    ///
    /// # Errors
    /// Every mistake of the sources, as [`Policy::parse_many`] reports them.
    pub fn convert<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<String, PolicyErrors> {
        Self::parse_many(sources.clone())?;
        let mut out = String::new();
        let (mut errors, mut notes) = (Vec::new(), Vec::new());
        for (source_name, text) in sources {
            let docs = yaml::read_all(text, yaml::Limits::POLICY, 0)
                .0
                .unwrap_or_default();
            for doc in &docs {
                for (value, locations) in items(doc) {
                    if !constraint::is_constraint(value) {
                        continue;
                    }
                    let mut ctx = Ctx {
                        source_name,
                        locations: &locations,
                        errors: &mut errors,
                        notes: &mut notes,
                        recovered: false,
                    };
                    if !out.is_empty() {
                        out.push_str("---\n");
                    }
                    out.push_str(&constraint::convert_constraint(&mut ctx, value));
                }
            }
        }
        Ok(out)
    }

    /// The Pod Security Standards preset for `level` at the latest version, all controls with
    /// `effect`, applied to every namespace (nothing is exempt unless the caller says so).
    pub fn pod_security(level: PssLevel, effect: Effect) -> Policy {
        Self::pod_security_at(level, PssVersion::Latest, effect)
    }

    /// The Pod Security Standards preset for `level` as the standard of `version` has it
    /// (what `podSecurity: {level, version}` holds), named `pss-<level>` like
    /// [`Policy::pod_security`].
    ///
    /// ```
    /// use policy_core::{Effect, Policy, PssLevel, pss::PssVersion};
    /// let v1_33 = Policy::pod_security_at(PssLevel::Baseline, PssVersion::V1(33), Effect::Enforce);
    /// // The probe and lifecycle host control came with v1.34.
    /// assert!(v1_33.check_ids().all(|id| id != "pss.baseline.probeHosts"));
    /// ```
    pub fn pod_security_at(level: PssLevel, version: PssVersion, effect: Effect) -> Policy {
        let name: Arc<str> = Arc::from(format!("pss-{}", level.as_str()));
        let documents = vec![CompiledDocument {
            name,
            scope: Scope::default(),
            checks: pss_checks(level, version, effect, Vec::new()),
            not_enforced: None,
            containerd: ContainerdScope::default(),
        }];
        Policy {
            reads_image_names: documents_read_image_names(&documents),
            documents,
            notes: Vec::new(),
            containerd_namespace: None,
            origins: Arc::default(),
        }
    }

    /// Where each document was read (a file's path, or `api:Kind/name@generation` for an
    /// object of the API server), by policy name, in name order.
    pub fn origins(&self) -> impl Iterator<Item = (&str, &str)> {
        self.origins
            .iter()
            .map(|(name, source)| (name.as_str(), source.as_str()))
    }

    /// What the load accepted but the node will not enforce, with its place: Gatekeeper kinds
    /// nodeguard does not implement, parameters that need the API server, constraints that
    /// match no pod. Empty for a policy of `NodePolicy` documents.
    pub fn notes(&self) -> &[PolicyNote] {
        &self.notes
    }

    /// Whether any check reads the other names of a container's image content or its image
    /// volumes (ADR 0020): only then need the runtime's image records be read.
    ///
    /// ```
    /// let names = |rules: &str| policy_core::Policy::parse("p.yaml", &format!(
    ///     "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {{name: p}}\nspec:\n  rules: {rules}\n"
    /// )).unwrap().reads_image_names();
    /// assert!(names("{images: {allowed: ['^registry\\.corp/']}}"));
    /// assert!(!names("{images: {forbiddenTags: [latest]}}"));
    /// assert!(!names("{privileged: {}}"));
    /// ```
    pub fn reads_image_names(&self) -> bool {
        self.reads_image_names
    }

    /// The same policy judging the containers of containerd namespace `namespace` (made
    /// outside Kubernetes, with `ctr`, nerdctl, Docker, buildkit): only the documents whose
    /// `containerdNamespaces` scope holds it apply.
    ///
    /// ```
    /// let policy = policy_core::Policy::parse("p.yaml", "apiVersion: nodeguard.io/v1alpha1
    /// kind: NodePolicy
    /// metadata: {name: p}
    /// spec:
    ///   scope: {excludedContainerdNamespaces: [buildkit]}
    ///   rules: {privileged: {}}
    /// ").unwrap();
    /// let mut view = policy_core::ContainerView::default();
    /// view.security.privileged = Some(true);
    /// assert!(policy_core::evaluate(&policy.in_containerd_namespace("moby"), &view).is_denied());
    /// assert!(!policy_core::evaluate(&policy.in_containerd_namespace("buildkit"), &view).is_denied());
    /// assert!(policy.judges_containerd_namespace("moby"));
    /// assert!(!policy.judges_containerd_namespace("buildkit"));
    /// ```
    #[must_use]
    pub fn in_containerd_namespace(&self, namespace: &str) -> Policy {
        Policy {
            containerd_namespace: Some(Arc::from(namespace)),
            ..self.clone()
        }
    }

    /// Whether any document judges the containers of containerd namespace `namespace`.
    pub fn judges_containerd_namespace(&self, namespace: &str) -> bool {
        self.documents.iter().any(|d| d.containerd.holds(namespace))
    }

    /// The documents that judge the containers of this policy's containerd namespace.
    fn judging(&self) -> impl Iterator<Item = &CompiledDocument> {
        let namespace = self
            .containerd_namespace
            .as_deref()
            .unwrap_or(KUBERNETES_CONTAINERD_NAMESPACE);
        self.documents
            .iter()
            .filter(move |d| d.containerd.holds(namespace))
    }

    /// The documents the node cannot judge whose scope holds the container of `view`, each as
    /// `(policy name, why)`: a compliance report lists the container as skipped for them. A
    /// document whose `namespaceSelector` needs the namespace's labels, which the view lacks,
    /// is one of them.
    pub fn not_enforced<'p>(
        &'p self,
        view: &'p ContainerView,
    ) -> impl Iterator<Item = (&'p str, &'p str)> + 'p {
        self.judging().filter_map(move |d| {
            match (d.not_enforced.as_deref(), d.scope.matches(view)) {
                (Some(why), ScopeMatch::Yes) => Some((&*d.name, why)),
                (_, ScopeMatch::NeedsNamespaceLabels) => Some((&*d.name, NEEDS_NAMESPACE_LABELS)),
                _ => None,
            }
        })
    }

    /// The policy, or its notes as errors: what `--strict` asks (nothing accepted that the
    /// node will not enforce).
    ///
    /// # Errors
    /// Every note, as an error with its place.
    pub fn into_strict(self) -> Result<Policy, PolicyErrors> {
        if self.notes.is_empty() {
            Ok(self)
        } else {
            Err(PolicyErrors(self.notes))
        }
    }

    /// Names of the documents the node cannot judge (see [`Policy::not_enforced`]).
    pub fn not_enforced_names(&self) -> impl Iterator<Item = &str> {
        self.documents
            .iter()
            .filter(|d| d.not_enforced.is_some())
            .map(|d| &*d.name)
    }

    /// Names of the policy documents the node judges, in load order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.documents
            .iter()
            .filter(|d| d.not_enforced.is_none())
            .map(|d| &*d.name)
    }

    /// Number of checks across all documents (disabled ones excluded).
    pub fn check_count(&self) -> usize {
        self.documents.iter().map(|d| d.checks.len()).sum()
    }

    /// Ids of every check, in evaluation order.
    pub fn check_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.documents
            .iter()
            .flat_map(|d| d.checks.iter().map(|c| c.id))
    }
}

/// The documents of one YAML document: itself, or the items of a `List` (what
/// `kubectl get <kinds> -o yaml` prints).
fn items(doc: &yaml::Document) -> Vec<(&Value, Locations)> {
    match doc.value.get("items") {
        Some(Value::Array(items))
            if doc.value.get("kind").and_then(Value::as_str) == Some("List") =>
        {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, doc.locations.within(&format!("items[{i}]"))))
                .collect()
        }
        _ => vec![(&doc.value, doc.locations.clone())],
    }
}

/// Judges one container against every policy document that applies to it.
///
/// Evaluation reads the policy and the view only; it allocates nothing for a compliant
/// container and otherwise only what describes the findings.
///
/// ```
/// use policy_core::{evaluate, Policy, view::ContainerView, image::ImageRef};
/// let policy = Policy::parse("p.yaml", r#"
/// apiVersion: nodeguard.io/v1alpha1
/// kind: NodePolicy
/// metadata: {name: images}
/// spec: {rules: {images: {allowed: ['^registry\.corp/']}}}
/// "#).unwrap();
/// let view = ContainerView { image: Some(ImageRef::parse("docker.io/evil/x:1")), ..Default::default() };
/// let decision = evaluate(&policy, &view);
/// assert!(decision.is_denied());
/// assert_eq!(decision.violations[0].message,
///     r#"image "docker.io/evil/x:1" does not match any allowed pattern (^registry\.corp/)"#);
/// ```
pub fn evaluate(policy: &Policy, view: &ContainerView) -> Decision {
    judge(policy, view, false)
}

/// Runs every check whose document applies to the container of `view` (with `pod_only`, only
/// those no container could be exempt from by its name or image) into one decision.
fn judge(policy: &Policy, view: &ContainerView, pod_only: bool) -> Decision {
    let mut decision = Decision::default();
    for doc in policy.judging() {
        if (pod_only && !doc.scope.pod_wide()) || !doc.scope.applies_to(view) {
            continue;
        }
        for check in doc.checks.iter().filter(|c| !pod_only || c.pod_wide()) {
            let mut out = Findings {
                decision: &mut decision,
                policy: &doc.name,
                rule: check.id,
                effect: check.effect,
                remediate: check.remediate,
            };
            check.run(view, &mut out);
        }
    }
    decision
}

/// Judges a pod before any of its containers exists (NRI's `RunPodSandbox`), on `view`: the
/// pod and its pod-level facts (host namespaces, sysctls), every container field unknown. Only
/// the violations of checks that no container could be exempt from (by name or image) count;
/// what lacks a container's facts is left to its containers' own judgement, so the decision
/// has no undecided rule. A pod refused here never reaches the host: no network, no sysctls.
pub fn evaluate_pod(policy: &Policy, view: &ContainerView) -> Decision {
    let mut decision = judge(policy, view, true);
    decision.undecided.clear();
    decision.admission_only.clear();
    decision
}

/// What one applied check found for one container: its violations and the fields it lacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult<'p> {
    /// The check.
    pub check: AppliedCheck<'p>,
    /// What it reported (its own violations and undecided fields only).
    pub findings: Decision,
}

/// The outcome of one check for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome<'a> {
    /// Nothing wrong.
    Pass,
    /// Broken (every message), whatever else it could not decide.
    Violated(&'a [Violation]),
    /// Not broken as far as it could see, but it lacked a field.
    Undecided(&'a Undecided),
}

impl CheckResult<'_> {
    /// Violated wins over undecided, which wins over pass.
    pub fn outcome(&self) -> CheckOutcome<'_> {
        if !self.findings.violations.is_empty() {
            CheckOutcome::Violated(&self.findings.violations)
        } else if let Some(undecided) = self.findings.lacking().next() {
            CheckOutcome::Undecided(undecided)
        } else {
            CheckOutcome::Pass
        }
    }
}

/// Every check `policy` applies to the container of `view`, each with what it found: the
/// per-check results a compliance report lists. Together they are [`evaluate`]'s decision
/// ([`Decision::from_results`]).
///
/// ```
/// use policy_core::{CheckOutcome, ContainerView, Policy, results};
/// let policy = Policy::parse("p.yaml", "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: p}\nspec: {rules: {privileged: {}, hostPorts: {}}}\n").unwrap();
/// let mut view = ContainerView::default();
/// view.security.privileged = Some(true);
/// let results = results(&policy, &view);
/// let outcome = |rule| results.iter().find(|r| r.check.rule == rule).unwrap().outcome();
/// assert!(matches!(outcome("privileged"), CheckOutcome::Violated(_)));
/// assert!(matches!(outcome("hostPorts"), CheckOutcome::Undecided(u) if u.missing == "hostPorts"));
/// ```
pub fn results<'p>(policy: &'p Policy, view: &ContainerView) -> Vec<CheckResult<'p>> {
    let mut out = Vec::new();
    for doc in policy.judging().filter(|d| d.scope.applies_to(view)) {
        for check in doc.checks.iter().filter(|c| !c.exempts(view)) {
            let mut findings = Decision::default();
            check.run(
                view,
                &mut Findings {
                    decision: &mut findings,
                    policy: &doc.name,
                    rule: check.id,
                    effect: check.effect,
                    remediate: check.remediate,
                },
            );
            out.push(CheckResult {
                check: AppliedCheck {
                    policy: &doc.name,
                    rule: check.id,
                    effect: check.effect,
                    remediate: check.remediate,
                },
                findings,
            });
        }
    }
    out
}

impl Decision {
    /// The decision that per-check results add up to: every violation and undecided field, in
    /// check order (what [`evaluate`] returns for the same policy and view).
    pub fn from_results(results: &[CheckResult<'_>]) -> Decision {
        Decision {
            violations: results
                .iter()
                .flat_map(|r| r.findings.violations.iter().cloned())
                .collect(),
            undecided: results
                .iter()
                .flat_map(|r| r.findings.undecided.iter().cloned())
                .collect(),
            admission_only: results
                .iter()
                .flat_map(|r| r.findings.admission_only.iter().cloned())
                .collect(),
        }
    }
}

/// A check of the policy that applies to a container: in scope, not exempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedCheck<'p> {
    /// Name of the policy document holding it (shared: a report clones it without copying).
    pub policy: &'p Arc<str>,
    /// Rule id.
    pub rule: &'static str,
    /// Its effect.
    pub effect: Effect,
    /// What to do about running containers that break it.
    pub remediate: Remediation,
}

/// Every check `policy` applies to the container of `view`, in policy order: the checks
/// [`evaluate`] runs. A check applied that reports neither a violation nor an undecided
/// field passed.
pub fn applicable_checks<'p>(
    policy: &'p Policy,
    view: &ContainerView,
) -> impl Iterator<Item = AppliedCheck<'p>> {
    policy
        .judging()
        .filter(|doc| doc.scope.applies_to(view))
        .flat_map(move |doc| {
            doc.checks
                .iter()
                .filter(|check| !check.exempts(view))
                .map(|check| AppliedCheck {
                    policy: &doc.name,
                    rule: check.id,
                    effect: check.effect,
                    remediate: check.remediate,
                })
        })
}
