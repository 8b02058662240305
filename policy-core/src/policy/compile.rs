//! Compiling documents: metadata, effect, scope and its selectors, exemptions, remediation
//! and the Pod Security Standards preset. Each rule of `spec.rules` goes to [`super::rule`].

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::rule::compile_rule;
use super::validate::{Ctx, join, lenient_document, lenient_spec};
use crate::decision::{Effect, Remediation};
use crate::document::{
    self, DocumentRaw, ExemptionRaw, LabelSelectorRaw, PodSecurityRaw, PssLevel, ScopeRaw,
    SelectorOperator, SpecRaw,
};
use crate::matcher::{Globs, LabelExpression, LabelSelector, Scope};
use crate::pss::{self, Control, PssVersion, VersionError};
use crate::rules::{Check, Exemption, Rule};

/// One compiled `NodePolicy` document.
#[derive(Debug, Clone)]
pub(super) struct CompiledDocument {
    pub(super) name: Arc<str>,
    pub(super) scope: Scope,
    pub(super) checks: Vec<Check>,
    /// Why the node cannot judge this document (a Gatekeeper constraint of a kind nodeguard
    /// does not implement, or that needs the API server): it has no checks, and the containers
    /// in its scope are listed as skipped for it ([`super::Policy::not_enforced`]).
    pub(super) not_enforced: Option<Arc<str>>,
    /// The containerd namespaces whose containers it judges.
    pub(super) containerd: ContainerdScope,
}

/// The containerd namespaces whose containers a document judges (`containerdNamespaces`,
/// `excludedContainerdNamespaces`): every one by default.
#[derive(Debug, Clone, Default)]
pub(super) struct ContainerdScope {
    /// Namespaces included (`None`: all).
    pub(super) namespaces: Option<Globs>,
    /// Namespaces excluded.
    pub(super) excluded: Option<Globs>,
}

impl ContainerdScope {
    /// Whether the document judges the containers of containerd namespace `namespace`.
    pub(super) fn holds(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|g| g.is_match(namespace))
            && !self
                .excluded
                .as_ref()
                .is_some_and(|g| g.is_match(namespace))
    }
}

pub(super) fn compile_document(ctx: &mut Ctx<'_>, value: &Value) -> Option<CompiledDocument> {
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
        None => Some((Scope::default(), ContainerdScope::default())),
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
    let (scope, containerd) = scope?;
    ok.then(|| CompiledDocument {
        not_enforced: None,
        name: Arc::from(name),
        scope,
        checks,
        containerd,
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

fn compile_scope(ctx: &mut Ctx<'_>, value: &Value) -> Option<(Scope, ContainerdScope)> {
    let raw: ScopeRaw = ctx.typed("spec.scope", value)?;
    let namespaces = ctx.globs("spec.scope.namespaces", &raw.namespaces);
    let excluded = ctx.globs("spec.scope.excludedNamespaces", &raw.excluded_namespaces);
    let containers = ctx.globs("spec.scope.containerNames", &raw.container_names);
    let excluded_containers = ctx.globs(
        "spec.scope.excludedContainerNames",
        &raw.excluded_container_names,
    );
    let exempt = ctx.regexes("spec.scope.exemptImages", &raw.exempt_images);
    ctx.unanchored_images("spec.scope.exemptImages", &raw.exempt_images);
    let selector = match &raw.pod_selector {
        Some(s) => compile_selector(ctx, "spec.scope.podSelector", s),
        None => Some(LabelSelector::default()),
    };
    let namespace_selector = raw
        .namespace_selector
        .as_ref()
        .map(|s| compile_selector(ctx, "spec.scope.namespaceSelector", s));
    let containerd = containerd_namespaces(
        ctx,
        "spec.scope.containerdNamespaces",
        &raw.containerd_namespaces,
    );
    let containerd_excluded = containerd_namespaces(
        ctx,
        "spec.scope.excludedContainerdNamespaces",
        &raw.excluded_containerd_namespaces,
    );
    let scope = Scope {
        namespaces: namespaces.ok()?,
        excluded_namespaces: excluded.ok()?,
        pod_selector: selector?,
        container_names: containers.ok()?,
        excluded_container_names: excluded_containers.ok()?,
        exempt_images: exempt.ok()?,
        pod_names: None,
        gatekeeper: false,
        namespace_selector: match namespace_selector {
            Some(selector) => Some(selector?),
            None => None,
        },
    };
    Some((
        scope,
        ContainerdScope {
            namespaces: containerd.ok()?,
            excluded: containerd_excluded.ok()?,
        },
    ))
}

/// Globs of containerd namespace names at `path`: containerd names a namespace with letters,
/// digits and single `.`, `_` or `-` between them, so any other character (a `/`, a space)
/// is a mistake, reported at the pattern's place.
fn containerd_namespaces(
    ctx: &mut Ctx<'_>,
    path: &str,
    patterns: &[String],
) -> Result<Option<Globs>, ()> {
    let mut ok = true;
    for (i, p) in patterns.iter().enumerate() {
        if let Some(c) = p
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?')))
        {
            ctx.error(
                &format!("{path}[{i}]"),
                format!(
                    "{p:?} is not a containerd namespace: {c:?} is not allowed (letters, digits, \
                     '.', '_', '-', and the wildcards '*' and '?')"
                ),
            );
            ok = false;
        }
    }
    let globs = ctx.globs(path, patterns);
    if ok { globs } else { Err(()) }
}

pub(super) fn compile_selector(
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

/// The checks of the Pod Security Standards `level` at `version`, each control with `effect`
/// unless `exemptions` switch it off.
pub(super) fn pss_checks(
    level: PssLevel,
    version: PssVersion,
    effect: Effect,
    exemptions: Vec<(Control, Exemption)>,
) -> Vec<Check> {
    if effect == Effect::Disabled {
        return Vec::new();
    }
    Control::of_level_at(level, version)
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
                rule: Rule::Pss(control, version),
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
    let version = match raw.version.as_ref().map(read_version) {
        None => PssVersion::Latest,
        Some(Ok(version)) => version,
        Some(Err(e)) => {
            ctx.error("spec.podSecurity.version", e.to_string());
            ok = false;
            PssVersion::Latest
        }
    };
    if raw.level.is_none() {
        // Absent (a wrong value was reported where it stands).
        if value.get("level").is_none() {
            ctx.error(
                "spec.podSecurity",
                "missing field `level` (baseline or restricted)",
            );
        }
        ok = false;
    }
    let mut exemptions = Vec::new();
    for (i, exemption) in raw.exemptions.iter().enumerate() {
        let at = format!("spec.podSecurity.exemptions[{i}]");
        let Some(ExemptionRaw {
            controls,
            namespaces,
            images,
        }) = ctx.typed::<ExemptionRaw>(&at, exemption)
        else {
            ok = false;
            continue;
        };
        if controls.is_empty() {
            ctx.checks_nothing(&format!("{at}.controls"), "name at least one control");
            ok = false;
        }
        let ns = ctx.globs(&format!("{at}.namespaces"), &namespaces);
        let im = ctx.regexes(&format!("{at}.images"), &images);
        ctx.unanchored_images(&format!("{at}.images"), &images);
        let (ns, im) = match (ns, im) {
            (Ok(ns), Ok(im)) => (ns, im),
            _ => {
                ok = false;
                (None, None)
            }
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
    match raw.level {
        Some(level) if ok => {
            checks.extend(pss_checks(
                level,
                version,
                raw.effect.unwrap_or(default_effect),
                exemptions,
            ));
            true
        }
        _ => false,
    }
}

/// The version `spec.podSecurity.version` names. YAML reads an unquoted `1.35` as a number: the
/// error names it as one, and says what to write when the minor version is clear (`1.30` reads
/// as `1.3`, so a one-digit minor is not suggested).
fn read_version(value: &Value) -> Result<PssVersion, VersionError> {
    match value {
        Value::String(text) => text.parse(),
        Value::Number(n) => {
            let text = n.to_string();
            Err(VersionError::Malformed {
                minor: pss::meant_minor(&text).filter(|m| *m >= 10),
                written: format!("the number {text}"),
            })
        }
        other => Err(VersionError::Malformed {
            written: other.to_string(),
            minor: None,
        }),
    }
}
