//! Loading policies: parse, validate every part, compile once; and evaluation.
//!
//! A load either yields a complete, immutable [`Policy`] or a [`PolicyErrors`] listing every
//! mistake found, each with its file, line, column and field path. Nothing is half-loaded.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::capabilities::{self, CapabilitySet};
use crate::decision::{Decision, Effect, Remediation, Undecided, Violation};
use crate::document::{
    self, CapabilitiesRaw, DevicesRaw, DocumentRaw, ExemptionRaw, FlagRuleRaw, HostNamespaceName,
    HostNamespacesRaw, HostPathRaw, HostPortsRaw, IdRangeRaw, ImagesRaw, LabelSelectorRaw,
    PodSecurityRaw, ProfileKind, ProfileRuleRaw, PssLevel, RequiredLabelsRaw, ResourceName,
    ResourcesRaw, ScopeRaw, SeLinuxRaw, SelectorOperator, SpecRaw, SysctlsRaw, UsersRaw,
    VolumeTypesRaw,
};
use crate::matcher::{Globs, LabelExpression, LabelSelector, Regexes, Scope};
use crate::pss::Control;
use crate::quantity::{Bytes, Millicores};
use crate::rules::{
    AllowedHostPath, Check, Exemption, Findings, LabelRequirement, ProfilePolicy, Range, Rule,
    SeLinuxPolicy,
};
use crate::view::{ContainerView, VolumeType};
use crate::yaml::{self, Location, Locations};

/// Largest compiled size of one regex, so a policy cannot make the node agent balloon.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Most mistakes reported for one object (a rule, the scope, ...) before giving up on it.
const MAX_ERRORS_PER_OBJECT: usize = 32;

/// Removes the node at `segments` from `value`; false when there is nothing to remove (the
/// path is empty or does not lead anywhere).
fn remove_at(value: &mut Value, segments: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// The rule names a policy's `spec.rules` may hold.
pub const RULE_NAMES: [&str; 19] = [
    "images",
    "privileged",
    "privilegeEscalation",
    "capabilities",
    "resources",
    "hostNamespaces",
    "hostPorts",
    "hostPath",
    "runAsNonRoot",
    "users",
    "readOnlyRootFilesystem",
    "seccomp",
    "appArmor",
    "seLinux",
    "procMount",
    "sysctls",
    "volumeTypes",
    "requiredLabels",
    "devices",
];

/// One mistake in a policy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or other source) name.
    pub source_name: String,
    /// Where the mistake is.
    pub location: Location,
    /// The field path (`spec.rules.images.allowed[1]`), empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.source_name, self.location)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every mistake found while loading policies (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in policy", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// One compiled `NodePolicy` document.
#[derive(Debug, Clone)]
struct CompiledDocument {
    name: Arc<str>,
    scope: Scope,
    checks: Vec<Check>,
}

/// A compiled, immutable set of policy documents. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    documents: Vec<CompiledDocument>,
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
        let mut documents = Vec::new();
        let mut names = BTreeSet::new();
        // The sources share one budget: many files cannot expand further than one.
        let mut spent = 0;
        for (source_name, text) in sources {
            let mut stream = yaml::Documents::new(text, yaml::Limits::POLICY).after(spent);
            let docs: Result<Vec<_>, _> = stream.by_ref().collect();
            spent = stream.expanded_bytes();
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
                let mut ctx = Ctx {
                    source_name,
                    locations: &doc.locations,
                    errors: &mut errors,
                    recovered: false,
                };
                let compiled = compile_document(&mut ctx, &doc.value);
                // Names are compared whether or not their documents hold other mistakes.
                let name = doc
                    .value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|n| !n.is_empty());
                if let Some(name) = name
                    && !names.insert(name.to_string())
                {
                    ctx.error(
                        "metadata.name",
                        format!("policy name {name:?} is used by another document"),
                    );
                } else if let Some(compiled) = compiled {
                    documents.push(compiled);
                }
            }
        }
        if errors.is_empty() {
            Ok(Policy { documents })
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

    /// The Pod Security Standards preset for `level`, all controls with `effect`, applied to
    /// every namespace (nothing is exempt unless the caller says so).
    pub fn pod_security(level: PssLevel, effect: Effect) -> Policy {
        let name: Arc<str> = Arc::from(format!("pss-{}", level.as_str()));
        Policy {
            documents: vec![CompiledDocument {
                name,
                scope: Scope::default(),
                checks: pss_checks(level, effect, Vec::new()),
            }],
        }
    }

    /// Names of the policy documents, in load order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.documents.iter().map(|d| &*d.name)
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
    let mut decision = Decision::default();
    for doc in &policy.documents {
        if !doc.scope.applies_to(view) {
            continue;
        }
        for check in &doc.checks {
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
        } else if let Some(undecided) = self.findings.undecided.first() {
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
    for doc in policy.documents.iter().filter(|d| d.scope.applies_to(view)) {
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

/// A check of the policy that applies to a container: in scope, not exempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedCheck<'p> {
    /// Name of the policy document holding it.
    pub policy: &'p str,
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
        .documents
        .iter()
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

/// Validation context for one document.
struct Ctx<'a> {
    source_name: &'a str,
    locations: &'a Locations,
    errors: &'a mut Vec<PolicyError>,
    /// Whether a mistake was cut out of some object of this document to look for more: the
    /// object may then look emptier than written, so "checks nothing" is not reported.
    recovered: bool,
}

fn join(path: &str, child: &str) -> String {
    match (path.is_empty(), child.is_empty() || child == ".") {
        (_, true) => path.to_string(),
        (true, false) => child.to_string(),
        (false, false) if child.starts_with('[') => format!("{path}{child}"),
        (false, false) => format!("{path}.{child}"),
    }
}

impl Ctx<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            source_name: self.source_name.to_string(),
            location: self.locations.nearest(path),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes `value` (found at `path`) strictly, recording a located error on failure.
    fn typed<T: DeserializeOwned>(&mut self, path: &str, value: &Value) -> Option<T> {
        // serde stops at the first error. To report every mistake of one object, record the
        // error, cut the offending field out of a copy, and try again. What is returned after
        // a cut is only used to find further mistakes: the recorded errors fail the load.
        let mut value = std::borrow::Cow::Borrowed(value);
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_OBJECT {
            let e = match serde_path_to_error::deserialize::<_, T>(value.as_ref()) {
                Ok(v) => {
                    self.recovered |= !removed.is_empty();
                    return Some(v);
                }
                Err(e) => e,
            };
            let relative = e.path().to_string();
            let mut at = join(path, &relative);
            let message = e.inner().to_string();
            // Point an unknown field's error at the field itself (serde_path_to_error
            // usually names it already; never name it twice).
            if let Some(rest) = message.strip_prefix("unknown field `")
                && let Some(field) = rest.split('`').next()
                && at != field
                && !at.ends_with(&format!(".{field}"))
            {
                at = join(&at, field);
            }
            // A field cut out earlier is not missing a second time.
            if let Some(rest) = message.strip_prefix("missing field `")
                && let Some(field) = rest.split('`').next()
                && removed.contains(&join(&at, field))
            {
                return None;
            }
            self.error(&at, message);
            let segments: Vec<&serde_path_to_error::Segment> = e.path().iter().collect();
            if !remove_at(value.to_mut(), &segments) {
                return None;
            }
            removed.push(at);
        }
        None
    }

    /// Reports a rule (or list) that checks nothing, unless a mistake cut out of the document
    /// may be why it looks empty.
    fn checks_nothing(&mut self, path: &str, message: &str) {
        if !self.recovered {
            self.error(path, message);
        }
    }

    fn regex(&mut self, path: &str, pattern: &str) -> Option<Regex> {
        match RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason);
                self.error(path, format!("invalid regex {pattern:?}: {reason}"));
                None
            }
        }
    }

    /// Compiles a list of regexes, naming each bad one. `None` when empty or invalid.
    fn regexes(&mut self, path: &str, patterns: &[String]) -> Result<Option<Regexes>, ()> {
        let mut ok = true;
        for (i, p) in patterns.iter().enumerate() {
            ok &= self.regex(&format!("{path}[{i}]"), p).is_some();
        }
        if !ok {
            return Err(());
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        Regexes::new(patterns).map(Some).map_err(|e| {
            self.error(path, format!("regex list too large: {e}"));
        })
    }

    fn globs(&mut self, path: &str, patterns: &[String]) -> Result<Option<Globs>, ()> {
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                self.error(&format!("{path}[{i}]"), "empty pattern");
                return Err(());
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        Globs::new(patterns).map(Some).map_err(|e| {
            self.error(path, format!("pattern list too large: {e}"));
        })
    }
}

fn compile_document(ctx: &mut Ctx<'_>, value: &Value) -> Option<CompiledDocument> {
    // A mistake at the top (an unknown field, a bad `metadata`) is recorded, and the rest is
    // still read leniently so that it does not hide the mistakes in the spec.
    let (raw, mut ok) = match ctx.typed::<DocumentRaw>("", value) {
        Some(raw) => (raw, true),
        None => (lenient_document(value)?, false),
    };
    if raw.api_version != document::API_VERSION {
        ctx.error(
            "apiVersion",
            format!(
                "unsupported apiVersion {:?}; expected {:?}",
                raw.api_version,
                document::API_VERSION
            ),
        );
        ok = false;
    }
    if raw.kind != document::KIND {
        ctx.error(
            "kind",
            format!(
                "unsupported kind {:?}; expected {:?}",
                raw.kind,
                document::KIND
            ),
        );
        ok = false;
    }
    let name = raw.metadata.name.trim();
    if name.is_empty() {
        ctx.error("metadata.name", "policy name must not be empty");
        ok = false;
    }
    let spec: SpecRaw = if raw.spec.is_null() {
        SpecRaw::default()
    } else if let Some(spec) = ctx.typed("spec", &raw.spec) {
        spec
    } else {
        // Same for a mistake in `spec` itself (a bad `effect`, a misspelt part).
        ok = false;
        lenient_spec(&raw.spec)?
    };
    let spec_recovered = ctx.recovered;
    let default_effect = spec.effect.unwrap_or(Effect::Enforce);
    let scope = match &spec.scope {
        Some(v) => compile_scope(ctx, v),
        None => Some(Scope::default()),
    };
    let mut checks = Vec::new();
    if let Some(v) = &spec.pod_security {
        ok &= with_remediation(ctx, "spec.podSecurity", v, &mut checks, |ctx, v, checks| {
            compile_pod_security(ctx, v, default_effect, checks)
        });
    }
    if let Some(rules) = &spec.rules {
        for (rule_name, rule_value) in rules {
            let path = format!("spec.rules.{rule_name}");
            // Whether a cut made this rule look emptier is judged per rule.
            ctx.recovered = false;
            ok &= with_remediation(ctx, &path, rule_value, &mut checks, |ctx, v, checks| {
                compile_rule(ctx, &path, rule_name, v, default_effect, checks)
            });
        }
    }
    if ok
        && !spec_recovered
        && spec.pod_security.is_none()
        && spec.rules.as_ref().is_none_or(|r| r.is_empty())
    {
        ctx.error(
            "spec",
            "policy has no rules: set spec.podSecurity, spec.rules, or both",
        );
        ok = false;
    }
    let scope = scope?;
    ok.then(|| CompiledDocument {
        name: Arc::from(name),
        scope,
        checks,
    })
}

/// Compiles one rule (or the `podSecurity` preset) at `path` with `compile`, after taking out
/// its `remediate` setting, which then applies to every check the rule adds. Only enforced
/// checks may be remediated.
fn with_remediation(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: &Value,
    checks: &mut Vec<Check>,
    compile: impl FnOnce(&mut Ctx<'_>, &Value, &mut Vec<Check>) -> bool,
) -> bool {
    let Some(setting) = value.as_object().and_then(|o| o.get("remediate")) else {
        return compile(ctx, value, checks);
    };
    let at = join(path, "remediate");
    let remediate: Option<Remediation> = ctx.typed(&at, setting);
    let mut rest = value.clone();
    if let Some(object) = rest.as_object_mut() {
        object.remove("remediate");
    }
    let before = checks.len();
    let mut ok = compile(ctx, &rest, checks) && remediate.is_some();
    let remediate = remediate.unwrap_or_default();
    if remediate.is_none() {
        return ok;
    }
    let added = &mut checks[before..];
    if let Some(check) = added.iter().find(|c| c.effect != Effect::Enforce) {
        ctx.error(
            &at,
            format!(
                "remediate: stop needs effect enforce, but {} has effect {}: nodeguard only \
                 stops containers for rules it would refuse them for",
                check.id, check.effect,
            ),
        );
        ok = false;
    }
    for check in added {
        check.remediate = remediate;
    }
    ok
}

/// What can be read of a document whose top level failed strict reading (that error is
/// already recorded). Absent or mistyped parts take values that raise no second error.
fn lenient_document(value: &Value) -> Option<DocumentRaw> {
    let text =
        |v: Option<&Value>, default: &str| v.and_then(Value::as_str).unwrap_or(default).to_string();
    let top = value.as_object()?;
    Some(DocumentRaw {
        api_version: text(top.get("apiVersion"), document::API_VERSION),
        kind: text(top.get("kind"), document::KIND),
        metadata: document::MetadataRaw {
            name: text(value.pointer("/metadata/name"), "-"),
            labels: Default::default(),
            annotations: Default::default(),
        },
        spec: top.get("spec").cloned().unwrap_or(Value::Null),
    })
}

/// What can be read of a `spec` that failed strict reading (that error is already recorded).
fn lenient_spec(value: &Value) -> Option<SpecRaw> {
    let spec = value.as_object()?;
    let part = |key: &str| spec.get(key).filter(|v| !v.is_null()).cloned();
    Some(SpecRaw {
        effect: part("effect").and_then(|v| serde_json::from_value(v).ok()),
        scope: part("scope"),
        pod_security: part("podSecurity"),
        rules: spec.get("rules").and_then(Value::as_object).cloned(),
    })
}

fn compile_scope(ctx: &mut Ctx<'_>, value: &Value) -> Option<Scope> {
    let raw: ScopeRaw = ctx.typed("spec.scope", value)?;
    let namespaces = ctx.globs("spec.scope.namespaces", &raw.namespaces);
    let excluded = ctx.globs("spec.scope.excludedNamespaces", &raw.excluded_namespaces);
    let containers = ctx.globs("spec.scope.containerNames", &raw.container_names);
    let excluded_containers = ctx.globs(
        "spec.scope.excludedContainerNames",
        &raw.excluded_container_names,
    );
    let exempt = ctx.regexes("spec.scope.exemptImages", &raw.exempt_images);
    let selector = match &raw.pod_selector {
        Some(s) => compile_selector(ctx, "spec.scope.podSelector", s),
        None => Some(LabelSelector::default()),
    };
    Some(Scope {
        namespaces: namespaces.ok()?,
        excluded_namespaces: excluded.ok()?,
        pod_selector: selector?,
        container_names: containers.ok()?,
        excluded_container_names: excluded_containers.ok()?,
        exempt_images: exempt.ok()?,
    })
}

fn compile_selector(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: &LabelSelectorRaw,
) -> Option<LabelSelector> {
    let mut ok = true;
    let mut expressions = Vec::new();
    for (i, e) in raw.match_expressions.iter().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let needs_values = matches!(e.operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values && e.values.is_empty() {
            ctx.error(&at, format!("operator {:?} needs values", e.operator));
            ok = false;
        }
        if !needs_values && !e.values.is_empty() {
            ctx.error(&at, format!("operator {:?} takes no values", e.operator));
            ok = false;
        }
        if e.key.is_empty() {
            ctx.error(&format!("{at}.key"), "label key must not be empty");
            ok = false;
        }
        expressions.push(LabelExpression {
            key: e.key.clone(),
            operator: e.operator,
            values: e.values.clone(),
        });
    }
    ok.then(|| LabelSelector {
        match_labels: raw.match_labels.clone(),
        match_expressions: expressions,
    })
}

fn pss_checks(
    level: PssLevel,
    effect: Effect,
    exemptions: Vec<(Control, Exemption)>,
) -> Vec<Check> {
    if effect == Effect::Disabled {
        return Vec::new();
    }
    Control::of_level(level)
        .filter_map(|control| {
            let mine: Vec<Exemption> = exemptions
                .iter()
                .filter(|(c, _)| *c == control)
                .map(|(_, e)| e.clone())
                .collect();
            // An exemption with no narrowing switches the control off entirely.
            if mine
                .iter()
                .any(|e| e.namespaces.is_none() && e.images.is_none())
            {
                return None;
            }
            Some(Check {
                id: control.id(),
                effect,
                remediate: Remediation::None,
                rule: Rule::Pss(control),
                exempt_images: None,
                exemptions: mine,
            })
        })
        .collect()
}

fn compile_pod_security(
    ctx: &mut Ctx<'_>,
    value: &Value,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    let Some(raw): Option<PodSecurityRaw> = ctx.typed("spec.podSecurity", value) else {
        return false;
    };
    let mut ok = true;
    let mut exemptions = Vec::new();
    for (
        i,
        ExemptionRaw {
            controls,
            namespaces,
            images,
        },
    ) in raw.exemptions.iter().enumerate()
    {
        let at = format!("spec.podSecurity.exemptions[{i}]");
        if controls.is_empty() {
            ctx.checks_nothing(&format!("{at}.controls"), "name at least one control");
            ok = false;
        }
        let ns = ctx.globs(&format!("{at}.namespaces"), namespaces);
        let im = ctx.regexes(&format!("{at}.images"), images);
        let (Ok(ns), Ok(im)) = (ns, im) else {
            ok = false;
            continue;
        };
        for (j, name) in controls.iter().enumerate() {
            if !Control::is_known_name(name) {
                let known: BTreeSet<&str> = Control::ALL.iter().map(|c| c.name()).collect();
                ctx.error(
                    &format!("{at}.controls[{j}]"),
                    format!(
                        "unknown control {name:?}; expected one of {}",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                );
                ok = false;
                continue;
            }
            for control in Control::ALL.iter().filter(|c| c.name() == name) {
                exemptions.push((
                    *control,
                    Exemption {
                        namespaces: ns.clone(),
                        images: im.clone(),
                    },
                ));
            }
        }
    }
    if ok {
        checks.extend(pss_checks(
            raw.level,
            raw.effect.unwrap_or(default_effect),
            exemptions,
        ));
    }
    ok
}

/// Adds a check unless its effect is `disabled`.
fn push(
    checks: &mut Vec<Check>,
    id: &'static str,
    effect: Effect,
    rule: Rule,
    exempt: Option<Regexes>,
) {
    if effect != Effect::Disabled {
        checks.push(Check {
            id,
            effect,
            remediate: Remediation::None,
            rule,
            exempt_images: exempt,
            exemptions: Vec::new(),
        });
    }
}

fn compile_rule(
    ctx: &mut Ctx<'_>,
    path: &str,
    name: &str,
    value: &Value,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    // A rule written as `privileged: {}` or `privileged: ~` uses every default.
    let empty = Value::Object(serde_json::Map::new());
    let value = if value.is_null() { &empty } else { value };
    let effect = |e: Option<Effect>| e.unwrap_or(default_effect);
    macro_rules! flag {
        ($id:literal, $rule:expr) => {{
            let Some(raw): Option<FlagRuleRaw> = ctx.typed(path, value) else {
                return false;
            };
            push(checks, $id, effect(raw.effect), $rule, None);
            true
        }};
    }
    match name {
        "images" => compile_images(ctx, path, value, default_effect, checks),
        "privileged" => flag!("privileged", Rule::Privileged),
        "privilegeEscalation" => flag!("privilegeEscalation", Rule::PrivilegeEscalation),
        "runAsNonRoot" => flag!("runAsNonRoot", Rule::RunAsNonRoot),
        "readOnlyRootFilesystem" => flag!("readOnlyRootFilesystem", Rule::ReadOnlyRootFilesystem),
        "procMount" => flag!("procMount", Rule::ProcMount),
        "capabilities" => {
            let Some(raw): Option<CapabilitiesRaw> = ctx.typed(path, value) else {
                return false;
            };
            compile_capabilities(ctx, path, raw, default_effect, checks)
        }
        "resources" => {
            let Some(raw): Option<ResourcesRaw> = ctx.typed(path, value) else {
                return false;
            };
            compile_resources(ctx, path, raw, default_effect, checks)
        }
        "hostNamespaces" => {
            let Some(raw): Option<HostNamespacesRaw> = ctx.typed(path, value) else {
                return false;
            };
            let allows = |n| raw.allowed.contains(&n);
            let rule = Rule::HostNamespaces {
                pid: allows(HostNamespaceName::Pid),
                ipc: allows(HostNamespaceName::Ipc),
                network: allows(HostNamespaceName::Network),
            };
            push(checks, "hostNamespaces", effect(raw.effect), rule, None);
            true
        }
        "hostPorts" => {
            let Some(raw): Option<HostPortsRaw> = ctx.typed(path, value) else {
                return false;
            };
            let mut ok = true;
            let mut ranges = Vec::new();
            for (i, v) in raw.allowed.iter().enumerate() {
                match port_range(v) {
                    Ok(r) => ranges.push(r),
                    Err(msg) => {
                        ctx.error(&format!("{path}.allowed[{i}]"), msg);
                        ok = false;
                    }
                }
            }
            if ok {
                push(
                    checks,
                    "hostPorts",
                    effect(raw.effect),
                    Rule::HostPorts(ranges),
                    None,
                );
            }
            ok
        }
        "hostPath" => {
            let Some(raw): Option<HostPathRaw> = ctx.typed(path, value) else {
                return false;
            };
            let mut ok = true;
            for (i, a) in raw.allowed.iter().enumerate() {
                if !a.path_prefix.starts_with('/') {
                    ctx.error(
                        &format!("{path}.allowed[{i}].pathPrefix"),
                        format!("path prefix {:?} must be absolute", a.path_prefix),
                    );
                    ok = false;
                }
            }
            let allowed = raw
                .allowed
                .iter()
                .map(|a| AllowedHostPath {
                    prefix: a.path_prefix.clone(),
                    read_only: a.read_only,
                })
                .collect();
            if ok {
                push(
                    checks,
                    "hostPath",
                    effect(raw.effect),
                    Rule::HostPath(allowed),
                    None,
                );
            }
            ok
        }
        "users" => {
            let Some(raw): Option<UsersRaw> = ctx.typed(path, value) else {
                return false;
            };
            compile_users(ctx, path, raw, default_effect, checks)
        }
        "seccomp" | "appArmor" => {
            let Some(raw): Option<ProfileRuleRaw> = ctx.typed(path, value) else {
                return false;
            };
            let allowed = raw
                .allowed
                .unwrap_or_else(|| vec![ProfileKind::RuntimeDefault, ProfileKind::Localhost]);
            if allowed.is_empty() {
                ctx.checks_nothing(
                    &format!("{path}.allowed"),
                    "allow at least one profile kind",
                );
                return false;
            }
            let Ok(names) = ctx.globs(
                &format!("{path}.allowedLocalhostProfiles"),
                &raw.allowed_localhost_profiles,
            ) else {
                return false;
            };
            let policy = ProfilePolicy {
                runtime_default: allowed.contains(&ProfileKind::RuntimeDefault),
                localhost: allowed.contains(&ProfileKind::Localhost),
                unconfined: allowed.contains(&ProfileKind::Unconfined),
                localhost_names: names,
            };
            if name == "seccomp" {
                push(
                    checks,
                    "seccomp",
                    effect(raw.effect),
                    Rule::Seccomp(policy),
                    None,
                );
            } else {
                push(
                    checks,
                    "appArmor",
                    effect(raw.effect),
                    Rule::AppArmor(policy),
                    None,
                );
            }
            true
        }
        "seLinux" => {
            let Some(raw): Option<SeLinuxRaw> = ctx.typed(path, value) else {
                return false;
            };
            let policy = SeLinuxPolicy {
                types: raw.allowed_types,
                users: raw.allowed_users,
                roles: raw.allowed_roles,
                levels: raw.allowed_levels,
            };
            if policy.types.is_none()
                && policy.users.is_none()
                && policy.roles.is_none()
                && policy.levels.is_none()
            {
                ctx.checks_nothing(path, "rule checks nothing: set allowedTypes, allowedUsers, allowedRoles or allowedLevels",
                );
                return false;
            }
            push(
                checks,
                "seLinux",
                effect(raw.effect),
                Rule::SeLinux(policy),
                None,
            );
            true
        }
        "sysctls" => {
            let Some(raw): Option<SysctlsRaw> = ctx.typed(path, value) else {
                return false;
            };
            if raw.allowed.is_none() && raw.forbidden.is_empty() {
                ctx.checks_nothing(path, "rule checks nothing: set allowed, forbidden or both");
                return false;
            }
            let allowed = match &raw.allowed {
                // An empty allow list allows no sysctl at all.
                Some(list) if list.is_empty() => Ok(Some(Globs::empty())),
                Some(list) => ctx.globs(&format!("{path}.allowed"), list),
                None => Ok(None),
            };
            let forbidden = ctx.globs(&format!("{path}.forbidden"), &raw.forbidden);
            let (Ok(allowed), Ok(forbidden)) = (allowed, forbidden) else {
                return false;
            };
            push(
                checks,
                "sysctls",
                effect(raw.effect),
                Rule::Sysctls { allowed, forbidden },
                None,
            );
            true
        }
        "volumeTypes" => {
            let Some(raw): Option<VolumeTypesRaw> = ctx.typed(path, value) else {
                return false;
            };
            let mut ok = true;
            let mut allowed = Vec::new();
            for (i, t) in raw.allowed.iter().enumerate() {
                match VolumeType::NAMED.iter().find(|(_, n)| n == t) {
                    Some((kind, _)) => allowed.push(*kind),
                    None => {
                        let names: Vec<&str> = VolumeType::NAMED.iter().map(|(_, n)| *n).collect();
                        ctx.error(
                            &format!("{path}.allowed[{i}]"),
                            format!(
                                "unknown volume type {t:?}; expected one of {}",
                                names.join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
            }
            if ok {
                push(
                    checks,
                    "volumeTypes",
                    effect(raw.effect),
                    Rule::VolumeTypes(allowed),
                    None,
                );
            }
            ok
        }
        "requiredLabels" => {
            let Some(raw): Option<RequiredLabelsRaw> = ctx.typed(path, value) else {
                return false;
            };
            let mut ok = true;
            if raw.labels.is_empty() {
                ctx.checks_nothing(&format!("{path}.labels"), "list at least one label");
                ok = false;
            }
            let mut required = Vec::new();
            for (i, l) in raw.labels.iter().enumerate() {
                if l.key.is_empty() {
                    ctx.error(
                        &format!("{path}.labels[{i}].key"),
                        "label key must not be empty",
                    );
                    ok = false;
                }
                let value = match &l.allowed_regex {
                    Some(p) => match ctx.regex(&format!("{path}.labels[{i}].allowedRegex"), p) {
                        Some(re) => Some(re),
                        None => {
                            ok = false;
                            None
                        }
                    },
                    None => None,
                };
                required.push(LabelRequirement {
                    key: l.key.clone(),
                    value,
                });
            }
            if ok {
                push(
                    checks,
                    "requiredLabels",
                    effect(raw.effect),
                    Rule::RequiredLabels(required),
                    None,
                );
            }
            ok
        }
        "devices" => {
            let Some(raw): Option<DevicesRaw> = ctx.typed(path, value) else {
                return false;
            };
            let Ok(allowed) = ctx.globs(&format!("{path}.allowed"), &raw.allowed) else {
                return false;
            };
            push(
                checks,
                "devices",
                effect(raw.effect),
                Rule::Devices(allowed),
                None,
            );
            true
        }
        _ => {
            ctx.error(
                path,
                format!(
                    "unknown rule {name:?}; expected one of {}",
                    RULE_NAMES.join(", ")
                ),
            );
            false
        }
    }
}

fn compile_images(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: &Value,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    let Some(raw): Option<ImagesRaw> = ctx.typed(path, value) else {
        return false;
    };
    let effect = raw.effect.unwrap_or(default_effect);
    let allowed = ctx.regexes(&format!("{path}.allowed"), &raw.allowed);
    let denied = ctx.regexes(&format!("{path}.denied"), &raw.denied);
    let exempt = ctx.regexes(&format!("{path}.exempt"), &raw.exempt);
    let mut ok = true;
    for (i, t) in raw.forbidden_tags.iter().enumerate() {
        if t.is_empty() || t.contains([':', '@', '/']) {
            ctx.error(
                &format!("{path}.forbiddenTags[{i}]"),
                format!("{t:?} is not a tag"),
            );
            ok = false;
        }
    }
    if raw.allowed.is_empty()
        && raw.denied.is_empty()
        && !raw.require_digest
        && raw.forbidden_tags.is_empty()
    {
        ctx.checks_nothing(
            path,
            "rule checks nothing: set allowed, denied, requireDigest or forbiddenTags",
        );
        ok = false;
    }
    let (Ok(allowed), Ok(denied), Ok(exempt)) = (allowed, denied, exempt) else {
        return false;
    };
    if !ok {
        return false;
    }
    if let Some(re) = allowed {
        push(
            checks,
            "images.allowed",
            effect,
            Rule::ImagesAllowed(re),
            exempt.clone(),
        );
    }
    if let Some(re) = denied {
        push(
            checks,
            "images.denied",
            effect,
            Rule::ImagesDenied(re),
            exempt.clone(),
        );
    }
    if raw.require_digest {
        push(
            checks,
            "images.digest",
            effect,
            Rule::ImagesDigest,
            exempt.clone(),
        );
    }
    if !raw.forbidden_tags.is_empty() {
        push(
            checks,
            "images.tag",
            effect,
            Rule::ImagesTag(raw.forbidden_tags),
            exempt,
        );
    }
    true
}

fn capability_names(
    ctx: &mut Ctx<'_>,
    path: &str,
    names: &[String],
    allow_all: bool,
) -> Option<CapabilitySet> {
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let n = capabilities::normalize(name);
        let known = capabilities::NAMES.contains(&n.as_str()) || (allow_all && n == "ALL");
        if !known {
            ctx.error(
                &format!("{path}[{i}]"),
                format!("unknown capability {name:?}"),
            );
            ok = false;
        }
    }
    ok.then(|| CapabilitySet::from_names(names))
}

fn compile_capabilities(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: CapabilitiesRaw,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    let effect = raw.effect.unwrap_or(default_effect);
    let allowed = capability_names(ctx, &format!("{path}.allowedAdd"), &raw.allowed_add, false);
    let required = capability_names(
        ctx,
        &format!("{path}.requiredDrop"),
        &raw.required_drop,
        true,
    );
    let (Some(allowed), Some(required)) = (allowed, required) else {
        return false;
    };
    push(
        checks,
        "capabilities.add",
        effect,
        Rule::CapabilitiesAdd {
            allowed: allowed.clone(),
        },
        None,
    );
    if !raw.required_drop.is_empty() {
        let all = raw
            .required_drop
            .iter()
            .any(|n| capabilities::normalize(n) == "ALL");
        push(
            checks,
            "capabilities.drop",
            effect,
            Rule::CapabilitiesDrop {
                required,
                all,
                allowed_add: allowed,
            },
            None,
        );
    }
    true
}

fn compile_resources(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: ResourcesRaw,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    let effect = raw.effect.unwrap_or(default_effect);
    let mut ok = true;
    let quantity_text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let cpu_max = raw.max_limits.cpu.as_ref().and_then(|v| {
        let at = format!("{path}.maxLimits.cpu");
        match quantity_text(v).map(|t| Millicores::parse(&t)) {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                ctx.error(&at, e.to_string());
                None
            }
            None => {
                ctx.error(&at, "expected a quantity such as 500m or 2");
                None
            }
        }
    });
    ok &= raw.max_limits.cpu.is_none() || cpu_max.is_some();
    let memory_max = raw.max_limits.memory.as_ref().and_then(|v| {
        let at = format!("{path}.maxLimits.memory");
        match quantity_text(v).map(|t| Bytes::parse(&t)) {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                ctx.error(&at, e.to_string());
                None
            }
            None => {
                ctx.error(&at, "expected a quantity such as 512Mi or 2Gi");
                None
            }
        }
    });
    ok &= raw.max_limits.memory.is_none() || memory_max.is_some();
    let mut ratio = |which: &str, v: &Option<Value>| -> Option<f64> {
        let v = v.as_ref()?;
        let at = format!("{path}.maxLimitRequestRatio.{which}");
        match v.as_f64() {
            Some(r) if r >= 1.0 && r.is_finite() => Some(r),
            _ => {
                ctx.error(
                    &at,
                    format!("ratio must be a number of at least 1, not {v}"),
                );
                ok = false;
                None
            }
        }
    };
    let cpu_ratio = ratio("cpu", &raw.max_limit_request_ratio.cpu);
    let memory_ratio = ratio("memory", &raw.max_limit_request_ratio.memory);
    if !ok {
        return false;
    }
    let limits = raw
        .require_limits
        .unwrap_or_else(|| vec![ResourceName::Cpu, ResourceName::Memory]);
    if !limits.is_empty() {
        push(
            checks,
            "resources.limits",
            effect,
            Rule::ResourceLimits(limits),
            None,
        );
    }
    if !raw.require_requests.is_empty() {
        push(
            checks,
            "resources.requests",
            effect,
            Rule::ResourceRequests(raw.require_requests),
            None,
        );
    }
    if cpu_max.is_some() || memory_max.is_some() {
        push(
            checks,
            "resources.maxLimits",
            effect,
            Rule::MaxLimits {
                cpu: cpu_max,
                memory: memory_max,
            },
            None,
        );
    }
    if cpu_ratio.is_some() || memory_ratio.is_some() {
        push(
            checks,
            "resources.ratio",
            effect,
            Rule::MaxRatio {
                cpu: cpu_ratio,
                memory: memory_ratio,
            },
            None,
        );
    }
    true
}

fn id_ranges(ctx: &mut Ctx<'_>, path: &str, ranges: &[IdRangeRaw]) -> Option<Vec<Range<u32>>> {
    let mut ok = true;
    if ranges.is_empty() {
        ctx.checks_nothing(path, "list at least one range");
        ok = false;
    }
    for (i, r) in ranges.iter().enumerate() {
        if r.min > r.max {
            ctx.error(
                &format!("{path}[{i}]"),
                format!("min {} is greater than max {}", r.min, r.max),
            );
            ok = false;
        }
    }
    ok.then(|| ranges.iter().map(|r| (r.min, r.max)).collect())
}

fn compile_users(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: UsersRaw,
    default_effect: Effect,
    checks: &mut Vec<Check>,
) -> bool {
    let effect = raw.effect.unwrap_or(default_effect);
    if raw.run_as_user.is_none() && raw.run_as_group.is_none() && raw.supplemental_groups.is_none()
    {
        ctx.checks_nothing(
            path,
            "rule checks nothing: set runAsUser, runAsGroup or supplementalGroups",
        );
        return false;
    }
    let user = raw
        .run_as_user
        .as_ref()
        .map(|r| id_ranges(ctx, &format!("{path}.runAsUser"), r));
    let group = raw
        .run_as_group
        .as_ref()
        .map(|r| id_ranges(ctx, &format!("{path}.runAsGroup"), r));
    let supplemental = raw
        .supplemental_groups
        .as_ref()
        .map(|r| id_ranges(ctx, &format!("{path}.supplementalGroups"), r));
    if [&user, &group, &supplemental]
        .iter()
        .any(|r| matches!(r, Some(None)))
    {
        return false;
    }
    if let Some(Some(r)) = user {
        push(checks, "users.runAsUser", effect, Rule::RunAsUser(r), None);
    }
    if let Some(Some(r)) = group {
        push(
            checks,
            "users.runAsGroup",
            effect,
            Rule::RunAsGroup(r),
            None,
        );
    }
    if let Some(Some(r)) = supplemental {
        push(
            checks,
            "users.supplementalGroups",
            effect,
            Rule::SupplementalGroups(r),
            None,
        );
    }
    true
}

/// Reads `8080` or `"9000-9100"` as an inclusive port range.
fn port_range(v: &Value) -> Result<Range<u16>, String> {
    let parse = |s: &str| -> Result<u16, String> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?} is not a port (1-65535)"))
    };
    match v {
        Value::Number(n) => {
            let p = n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{n} is not a port (1-65535)"))?;
            Ok((p, p))
        }
        Value::String(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((lo, hi)) => (parse(lo)?, parse(hi)?),
                None => {
                    let p = parse(s)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(format!("range {s:?} runs backwards"));
            }
            Ok((lo, hi))
        }
        other => Err(format!(
            "expected a port or a range such as \"9000-9100\", not {other}"
        )),
    }
}
