//! Gatekeeper constraints (`constraints.gatekeeper.sh`) as policy documents: `match` becomes the
//! document's scope, `enforcementAction` its effect, and the kind with its `parameters` a check
//! judged natively ([`crate::gatekeeper`]). What a node cannot enforce is never dropped in
//! silence: it is a note with its place ([`super::PolicyNote`]).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::compile::{CompiledDocument, ContainerdScope, compile_selector};
use super::constraint_kinds::strings;
use super::validate::Ctx;
use crate::decision::{Effect, Remediation};
use crate::document::LabelSelectorRaw;
use crate::gatekeeper::{Dialect, Exempt, GkRule, Pattern};
use crate::matcher::{Globs, LabelSelector, Scope};
use crate::quantity::{Bytes, Millicores};
use crate::rules::{Check, Rule};

/// The API group of constraints.
pub const CONSTRAINT_GROUP: &str = "constraints.gatekeeper.sh";
/// The API group of constraint templates.
pub const TEMPLATE_GROUP: &str = "templates.gatekeeper.sh";
/// The enforcement point nodeguard reads in `scopedEnforcementActions`; without an entry for
/// it (or `*`), the webhook's (`validation.gatekeeper.sh`) applies.
pub const ENFORCEMENT_POINT: &str = "node.nodeguard.io";
/// The webhook's enforcement point.
const WEBHOOK_POINT: &str = "validation.gatekeeper.sh";

/// The versions of the constraint group nodeguard reads.
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];

fn group_of(api_version: &str) -> Option<(&str, &str)> {
    api_version.split_once('/')
}

/// Whether a document is a Gatekeeper constraint.
pub(super) fn is_constraint(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(group_of)
        .is_some_and(|(group, _)| group == CONSTRAINT_GROUP)
}

/// Whether a document is a constraint template: accepted, never run (nodeguard implements each
/// kind natively).
pub(super) fn is_template(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(group_of)
        .is_some_and(|(group, _)| group == TEMPLATE_GROUP)
        && value.get("kind").and_then(Value::as_str) == Some("ConstraintTemplate")
}

/// The name a constraint's violations carry as their policy: `Kind/name`.
pub(super) fn constraint_name(value: &Value) -> Option<String> {
    let kind = value.get("kind").and_then(Value::as_str)?;
    let name = value.pointer("/metadata/name").and_then(Value::as_str)?;
    Some(format!("{kind}/{}", name.trim()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KindsRaw {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MatchRaw {
    #[serde(default)]
    kinds: Vec<KindsRaw>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    excluded_namespaces: Vec<String>,
    #[serde(default)]
    label_selector: Option<LabelSelectorRaw>,
    #[serde(default)]
    namespace_selector: Option<LabelSelectorRaw>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopedActionRaw {
    action: String,
    #[serde(default)]
    enforcement_points: Vec<PointRaw>,
}

#[derive(Debug, Deserialize)]
struct PointRaw {
    name: String,
}

/// Whether a wildcard of `namespaces`, `excludedNamespaces` or `name` has Gatekeeper's shape:
/// `*` only at either end.
fn valid_wildcard(pattern: &str) -> bool {
    let inner = pattern.strip_prefix('*').unwrap_or(pattern);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    inner.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':' || b == b'.'
    })
}

/// An action's effect, strongest first when several apply.
fn effect_of(action: &str) -> Option<Effect> {
    match action {
        "deny" | "" => Some(Effect::Enforce),
        "warn" => Some(Effect::Warn),
        "dryrun" => Some(Effect::Audit),
        _ => None,
    }
}

fn rank(effect: Effect) -> u8 {
    match effect {
        Effect::Enforce => 3,
        Effect::Warn => 2,
        Effect::Audit => 1,
        Effect::Disabled => 0,
    }
}

/// The effect of `enforcementAction` on the node; `None` when the constraint does not act here.
fn effect(ctx: &mut Ctx<'_>, spec: &Value) -> Option<Effect> {
    let action = match spec.get("enforcementAction") {
        None | Some(Value::Null) => "deny",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            ctx.error(
                "spec.enforcementAction",
                "enforcementAction must be a string: deny, dryrun, warn or scoped",
            );
            return None;
        }
    };
    if action != "scoped" {
        let effect = effect_of(action);
        if effect.is_none() {
            ctx.error(
                "spec.enforcementAction",
                format!(
                    "unknown enforcementAction {action:?}; expected one of deny, dryrun, warn, scoped"
                ),
            );
        }
        return effect;
    }
    let raw = spec
        .get("scopedEnforcementActions")
        .cloned()
        .unwrap_or(Value::Null);
    let entries = ctx.typed::<Vec<ScopedActionRaw>>("spec.scopedEnforcementActions", &raw)?;
    if entries.is_empty() {
        ctx.error(
            "spec.scopedEnforcementActions",
            "enforcementAction scoped needs scopedEnforcementActions",
        );
        return None;
    }
    let for_point = |point: &str| -> Vec<&ScopedActionRaw> {
        entries
            .iter()
            .filter(|e| {
                e.enforcement_points
                    .iter()
                    .any(|p| p.name == point || p.name == "*")
            })
            .collect()
    };
    let mut chosen = for_point(ENFORCEMENT_POINT);
    if chosen.is_empty() {
        chosen = for_point(WEBHOOK_POINT);
    }
    let mut best: Option<Effect> = None;
    for (i, entry) in entries.iter().enumerate() {
        match effect_of(&entry.action) {
            Some(e) if chosen.iter().any(|c| std::ptr::eq(*c, entry)) => {
                if best.is_none_or(|b| rank(e) > rank(b)) {
                    best = Some(e);
                }
            }
            Some(_) => {}
            None => ctx.error(
                &format!("spec.scopedEnforcementActions[{i}].action"),
                format!(
                    "unknown action {:?}; expected one of deny, dryrun, warn",
                    entry.action
                ),
            ),
        }
    }
    if best.is_none() {
        ctx.note(
            "spec.scopedEnforcementActions",
            format!(
                "no action for {ENFORCEMENT_POINT}, {WEBHOOK_POINT} or *: the constraint does not act on the node"
            ),
        );
    }
    best
}

/// What `match` says of pods on the node.
enum Matches {
    /// The pods of this scope.
    Pods(Box<Scope>),
    /// No pod ever (noted).
    Never,
}

/// The scope `match` describes for pods on the node; `None` when it is invalid (errors
/// recorded).
fn scope(ctx: &mut Ctx<'_>, spec: &Value) -> Option<Matches> {
    let Some(raw) = spec.get("match") else {
        return Some(Matches::Pods(Box::new(Scope {
            gatekeeper: true,
            ..Scope::default()
        })));
    };
    let m: MatchRaw = ctx.typed("spec.match", raw)?;
    let mut ok = true;
    let pod = |k: &KindsRaw| {
        (k.api_groups.is_empty() || k.api_groups.iter().any(|g| g.is_empty() || g == "*"))
            && (k.kinds.is_empty() || k.kinds.iter().any(|k| k == "Pod" || k == "*"))
    };
    let mut applies = true;
    if !m.kinds.is_empty() && !m.kinds.iter().any(pod) {
        ctx.note(
            "spec.match.kinds",
            "matches no Pod kind: the constraint never applies to a container on the node",
        );
        applies = false;
    }
    if m.scope.as_deref() == Some("Cluster") {
        ctx.note(
            "spec.match.scope",
            "scope Cluster matches no Pod (pods are namespaced): the constraint never applies on the node",
        );
        applies = false;
    }
    if m.source.as_deref() == Some("Generated") {
        ctx.note(
            "spec.match.source",
            "source Generated matches only pods Gatekeeper expands from workloads, never a pod on the node",
        );
        applies = false;
    }
    let mut wildcards = |ctx: &mut Ctx<'_>, path: &str, patterns: &[String]| -> Option<Globs> {
        for (i, p) in patterns.iter().enumerate() {
            if !valid_wildcard(p) {
                ctx.error(
                    &format!("{path}[{i}]"),
                    format!("{p:?} is not a Gatekeeper wildcard: lowercase letters, digits, '-', ':' and '.', with '*' only at either end"),
                );
                ok = false;
            }
        }
        ctx.globs(path, patterns).ok().flatten()
    };
    let namespaces = wildcards(ctx, "spec.match.namespaces", &m.namespaces);
    let excluded = wildcards(ctx, "spec.match.excludedNamespaces", &m.excluded_namespaces);
    let names = m
        .name
        .as_ref()
        .filter(|n| !n.is_empty())
        .map(std::slice::from_ref)
        .and_then(|n| wildcards(ctx, "spec.match.name", n));
    let selector = match &m.label_selector {
        Some(raw) => compile_selector(ctx, "spec.match.labelSelector", raw),
        None => Some(LabelSelector::default()),
    };
    let selector = selector?;
    // Matched against the namespace's labels, which the node knows in the cluster-connected
    // mode; elsewhere the containers in scope are listed as skipped for it.
    let namespace_selector = match &m.namespace_selector {
        Some(raw) => Some(compile_selector(ctx, "spec.match.namespaceSelector", raw)?),
        None => None,
    };
    if !ok {
        return None;
    }
    let scope = Scope {
        namespaces,
        excluded_namespaces: excluded,
        pod_selector: selector,
        pod_names: names,
        gatekeeper: true,
        namespace_selector,
        ..Scope::default()
    };
    Some(if applies {
        Matches::Pods(Box::new(scope))
    } else {
        Matches::Never
    })
}

/// Azure's V4 `allowedHostPorts`: `"80"` or `"3000-5000"` each.
fn host_port_list(ctx: &mut Ctx<'_>, params: &Value) -> Option<Option<Vec<(u16, u16)>>> {
    let Some(entries) = strings(ctx, params, "allowedHostPorts")? else {
        return Some(Some(Vec::new()));
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let (lo, hi) = entry.split_once('-').unwrap_or((entry, entry));
        match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
            (Ok(lo), Ok(hi)) if lo <= hi => out.push((lo, hi)),
            _ => {
                ctx.error(
                    &format!("spec.parameters.allowedHostPorts[{i}]"),
                    format!("{entry:?} is not a port or a range of ports such as \"3000-5000\""),
                );
                ok = false;
            }
        }
    }
    ok.then_some(Some(out))
}

/// Notes every parameter the kind does not take (Gatekeeper's schema drops them).
fn unknown_parameters(ctx: &mut Ctx<'_>, kind: &str, params: &Value, known: &[&str]) {
    if let Some(map) = params.as_object() {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            ctx.note(
                &format!("spec.parameters.{key}"),
                format!(
                    "{kind} has no parameter {key:?}; it is ignored (Gatekeeper's schema drops it)"
                ),
            );
        }
    }
}

/// What a kind with its parameters comes to on the node.
enum Judged {
    /// A check.
    Check(Rule),
    /// Nothing: Gatekeeper reports nothing with these parameters (noted).
    Silent,
    /// The node cannot judge it (noted), for this reason.
    NotOnNode(String),
}

/// The check of one kind with its parameters; `None` when the parameters are invalid (errors
/// recorded).
fn rule(ctx: &mut Ctx<'_>, kind: &str, params: &Value) -> Option<Judged> {
    // A parameter the library's message prints, when absent, makes Gatekeeper report nothing.
    let silent_without = |ctx: &mut Ctx<'_>, key: &str| {
        ctx.note(
            &format!("spec.parameters.{key}"),
            format!(
                "{kind} without parameters.{key} reports nothing in Gatekeeper, nor on the node"
            ),
        );
    };
    let (gk, known): (Option<GkRule>, &[&str]) = match kind {
        "K8sAllowedRepos" => {
            let repos = strings(ctx, params, "repos")?;
            if repos.is_none() {
                silent_without(ctx, "repos");
            }
            (repos.map(GkRule::AllowedRepos), &["repos"])
        }
        "K8sAllowedReposv2" => {
            let images = strings(ctx, params, "allowedImages")?;
            if images.is_none() {
                silent_without(ctx, "allowedImages");
            }
            (images.map(GkRule::AllowedImages), &["allowedImages"])
        }
        "K8sDisallowedRepos" => (
            Some(GkRule::DisallowedRepos(
                strings(ctx, params, "repos")?.unwrap_or_default(),
            )),
            &["repos"],
        ),
        "K8sDisallowedTags" => (
            Some(GkRule::DisallowedTags(
                strings(ctx, params, "tags")?.unwrap_or_default(),
            )),
            &["tags", "exemptImages"],
        ),
        "K8sImageDigests" => (Some(GkRule::ImageDigests), &["exemptImages"]),
        "K8sPSPPrivilegedContainer" => (
            Some(GkRule::Privileged(Dialect::Library)),
            &["exemptImages"],
        ),
        "K8sAzureV2NoPrivilege" | "K8sAzureV1NoPrivilege" | "K8sAzureContainerNoPrivilege" => (
            Some(GkRule::Privileged(Dialect::Azure)),
            &["excludedContainers", "excludedImages"],
        ),
        "K8sPSPHostNamespace" => (Some(GkRule::HostNamespace { network: false }), &[]),
        "K8sAzureV2BlockHostNamespace"
        | "K8sAzureV1BlockHostNamespace"
        | "K8sAzureBlockHostNamespace" => (
            Some(GkRule::HostNamespace { network: false }),
            &["excludedImages"],
        ),
        "K8sAzureV3BlockHostNamespace" => (
            Some(GkRule::HostNamespace { network: true }),
            &["excludedImages"],
        ),
        "K8sAzureV2ContainerAllowedImages" | "K8sAzureContainerAllowedImages" => {
            // Without `imageRegex` the template's negated match holds for every image.
            let regex = match params.get("imageRegex") {
                None | Some(Value::Null) => Some(Pattern(regex::Regex::new("a^").ok()?)),
                Some(Value::String(r)) => ctx.regex("spec.parameters.imageRegex", r).map(Pattern),
                Some(_) => {
                    ctx.error(
                        "spec.parameters.imageRegex",
                        "imageRegex must be a string (a regex)",
                    );
                    None
                }
            };
            (
                Some(GkRule::ImageRegex(regex?)),
                &["imageRegex", "excludedContainers"],
            )
        }
        "K8sAzureV1PodEnforceLabels" | "K8sAzurePodEnforceLabels" => {
            let labels = strings(ctx, params, "labels")?;
            if labels.is_none() {
                silent_without(ctx, "labels");
            }
            (labels.map(GkRule::LabelsPresent), &["labels"])
        }
        "K8sPSPAllowPrivilegeEscalationContainer" => {
            (Some(GkRule::AllowPrivilegeEscalation), &["exemptImages"])
        }
        "K8sPSPReadOnlyRootFilesystem" => (
            Some(GkRule::ReadOnlyRootFilesystem(Dialect::Library)),
            &["exemptImages"],
        ),
        "K8sPSPHostNetworkingPorts"
        | "K8sAzureV3HostNetworkingPorts"
        | "K8sAzureV2HostNetworkingPorts"
        | "K8sAzureV1HostNetworkingPorts"
        | "K8sAzureHostNetworkingPorts"
        | "K8sAzureV4HostNetworkingPorts" => {
            let azure = kind.starts_with("K8sAzure");
            let v4 = kind == "K8sAzureV4HostNetworkingPorts";
            let (network_key, min_key, max_key) = if azure {
                ("allowHostNetwork", "minPort", "maxPort")
            } else {
                ("hostNetwork", "min", "max")
            };
            let host_network = match params.get(network_key) {
                None | Some(Value::Null) => Some(false),
                Some(v) => ctx.typed::<bool>(&format!("spec.parameters.{network_key}"), v),
            };
            let port = |ctx: &mut Ctx<'_>, key: &str| match params.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(v) if !v4 => ctx
                    .typed::<i64>(&format!("spec.parameters.{key}"), v)
                    .map(Some),
                Some(_) => Some(None),
            };
            let (min, max) = (port(ctx, min_key), port(ctx, max_key));
            let allowed = if v4 {
                host_port_list(ctx, params)
            } else {
                Some(None)
            };
            let (host_network, min, max, allowed) = (host_network?, min?, max?, allowed?);
            let parameters = if params.is_object() {
                crate::gatekeeper::rego_value(params)
            } else {
                "{}".to_string()
            };
            let known: &[&str] = match (azure, v4) {
                (false, _) => &["hostNetwork", "min", "max", "exemptImages"],
                (true, false) => &[
                    "allowHostNetwork",
                    "minPort",
                    "maxPort",
                    "excludedContainers",
                    "excludedImages",
                ],
                (true, true) => &["allowHostNetwork", "allowedHostPorts", "excludedImages"],
            };
            (
                Some(GkRule::HostNetworkingPorts {
                    host_network,
                    min,
                    max,
                    allowed,
                    parameters,
                    dialect: if azure {
                        Dialect::Azure
                    } else {
                        Dialect::Library
                    },
                }),
                known,
            )
        }
        "K8sPSPHostFilesystem"
        | "K8sAzureV4HostFilesystem"
        | "K8sAzureV3HostFilesystem"
        | "K8sAzureV2HostFilesystem"
        | "K8sAzureV1HostFilesystem"
        | "K8sAzureHostFilesystem" => {
            let azure = kind.starts_with("K8sAzure");
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Allowed {
                path_prefix: String,
                #[serde(default)]
                read_only: bool,
            }
            let allowed = match params.get("allowedHostPaths") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => ctx.typed::<Vec<Allowed>>("spec.parameters.allowedHostPaths", v)?,
            };
            (
                Some(GkRule::HostFilesystem(
                    allowed
                        .into_iter()
                        .map(|a| crate::gatekeeper::AllowedHostPath {
                            prefix: a.path_prefix,
                            read_only: a.read_only,
                        })
                        .collect(),
                    if azure {
                        Dialect::Azure
                    } else {
                        Dialect::Library
                    },
                )),
                if azure {
                    &[
                        "allowedHostPaths",
                        "windowsAllowedHostPaths",
                        "excludedContainers",
                        "excludedImages",
                    ]
                } else {
                    &["allowedHostPaths"]
                },
            )
        }
        "K8sRequiredLabels" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Label {
                key: String,
                #[serde(default)]
                allowed_regex: Option<String>,
            }
            let labels = match params.get("labels") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => ctx.typed::<Vec<Label>>("spec.parameters.labels", v)?,
            };
            if params.get("message").is_some() {
                ctx.note(
                    "spec.parameters.message",
                    "message is used only by the template's Rego; Gatekeeper runs its CEL, as nodeguard does, with the library's own messages",
                );
            }
            let mut required = Vec::new();
            let mut ok = true;
            for (i, l) in labels.into_iter().enumerate() {
                let allowed = match l.allowed_regex.filter(|r| !r.is_empty()) {
                    None => None,
                    Some(r) => {
                        let re =
                            ctx.regex(&format!("spec.parameters.labels[{i}].allowedRegex"), &r);
                        ok &= re.is_some();
                        re
                    }
                };
                required.push(crate::gatekeeper::RequiredLabel {
                    key: l.key,
                    allowed,
                });
            }
            if !ok {
                return None;
            }
            (
                Some(GkRule::RequiredLabels(required)),
                &["labels", "message"],
            )
        }
        "K8sContainerLimits"
        | "K8sAzureV3ContainerLimits"
        | "K8sAzureV2ContainerLimits"
        | "K8sAzureV1ContainerLimits"
        | "K8sAzureContainerLimits" => {
            let azure = kind.starts_with("K8sAzure");
            let (cpu_key, memory_key) = if azure {
                ("cpuLimit", "memoryLimit")
            } else {
                ("cpu", "memory")
            };
            let text = |ctx: &mut Ctx<'_>, key: &str| match params.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(Value::Number(n)) => Some(Some(n.to_string())),
                Some(_) => {
                    ctx.error(
                        &format!("spec.parameters.{key}"),
                        format!("{key} must be a quantity such as \"500m\" or \"1Gi\""),
                    );
                    None
                }
            };
            let (cpu, memory) = (text(ctx, cpu_key), text(ctx, memory_key));
            let (cpu, memory) = (cpu?, memory?);
            // Azure's template checks a CPU limit is there whatever `cpuLimit` says.
            let cpu = match cpu {
                None if azure => Some((String::new(), None)),
                Some(c) if c == "-1" && !azure => None,
                other => other.map(|c| {
                    let parsed = Millicores::parse(&c).ok();
                    (c, parsed)
                }),
            };
            let memory = memory.map(|m| {
                let parsed = Bytes::parse(&m).ok();
                (m, parsed)
            });
            let known: &[&str] = if azure {
                &[
                    "cpuLimit",
                    "memoryLimit",
                    "excludedContainers",
                    "excludedImages",
                ]
            } else {
                &["cpu", "memory", "exemptImages"]
            };
            (Some(GkRule::ContainerLimits { cpu, memory }), known)
        }
        _ => {
            if let Some(read) = super::constraint_kinds::read(ctx, kind, params)? {
                read
            } else if let Some(why) = super::constraint_kinds::never_on_node(kind) {
                ctx.note(
                    "kind",
                    format!("{kind} cannot be enforced on a node: {why}"),
                );
                return Some(Judged::NotOnNode(format!("{kind}: {why}")));
            } else {
                ctx.note(
                    "kind",
                    format!("nodeguard does not implement the Gatekeeper kind {kind:?}: the constraint is not enforced on the node"),
                );
                return Some(Judged::NotOnNode(format!(
                    "nodeguard does not implement the kind {kind}"
                )));
            }
        }
    };
    unknown_parameters(ctx, kind, params, known);
    let list = |ctx: &mut Ctx<'_>, key: &str| -> Option<Vec<String>> {
        if known.contains(&key) {
            Some(strings(ctx, params, key)?.unwrap_or_default())
        } else {
            Some(Vec::new())
        }
    };
    let (images, excluded_images, containers) = (
        list(ctx, "exemptImages"),
        list(ctx, "excludedImages"),
        list(ctx, "excludedContainers"),
    );
    let mut images = images?;
    images.extend(excluded_images?);
    let exempt = Exempt::new(images, containers?);
    Some(gk.map_or(Judged::Silent, |gk| {
        Judged::Check(Rule::Gatekeeper(gk, exempt))
    }))
}

/// One constraint as a `NodePolicy` document (YAML, comments naming the source constraint and
/// what differs), or a comment saying why it is not converted. The constraint is valid (the
/// caller loaded the policy first).
pub(super) fn convert_constraint(ctx: &mut Ctx<'_>, value: &Value) -> String {
    use std::fmt::Write as _;
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let at = ctx.locations.nearest("kind");
    let mut out = format!("# From {kind}/{name} ({}:{})\n", ctx.source_name, at.line);
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);
    let params = spec.get("parameters").cloned().unwrap_or(Value::Null);
    let before = ctx.notes.len();
    let effect = effect(ctx, &spec);
    let matches = scope(ctx, &spec);
    let judged = rule(ctx, kind, &params);
    let (Some(effect), Some(Matches::Pods(_)), Some(Judged::Check(Rule::Gatekeeper(gk, _)))) =
        (effect, matches, judged)
    else {
        let why = ctx.notes[before..]
            .last()
            .map_or("Gatekeeper reports nothing with these parameters", |n| {
                n.message.as_str()
            });
        let _ = writeln!(out, "# Not converted: {why}");
        return out;
    };
    let converted = gk.to_node_policy();
    for caveat in &converted.caveats {
        let _ = writeln!(out, "# Note: {caveat}");
    }
    if converted.rules.is_empty() {
        return out;
    }
    let m = spec.get("match").cloned().unwrap_or(Value::Null);
    let mut scope = serde_json::Map::new();
    for (from, to) in [
        ("namespaces", "namespaces"),
        ("excludedNamespaces", "excludedNamespaces"),
    ] {
        if let Some(list) = m
            .get(from)
            .filter(|l| l.as_array().is_some_and(|a| !a.is_empty()))
        {
            scope.insert(to.into(), list.clone());
        }
    }
    if let Some(selector) = m.get("labelSelector").filter(|s| !s.is_null()) {
        scope.insert("podSelector".into(), selector.clone());
    }
    if let Some(selector) = m.get("namespaceSelector").filter(|s| !s.is_null()) {
        scope.insert("namespaceSelector".into(), selector.clone());
    }
    let list = |key: &str| -> Vec<String> {
        params
            .get(key)
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_default()
    };
    let mut exempt = list("exemptImages");
    exempt.extend(list("excludedImages"));
    if !exempt.is_empty() {
        let _ = writeln!(out, "# Note: exempt images: {}", super::convert::AS_WRITTEN);
        if kind == "K8sPSPHostNetworkingPorts" {
            let _ = writeln!(
                out,
                "# Note: the constraint exempts these images' host ports only; a NodePolicy scope exempts them from the host network rule too"
            );
        }
        scope.insert(
            "exemptImages".into(),
            json_strings(super::convert::exempt_regexes(&exempt)),
        );
    }
    let containers = list("excludedContainers");
    if !containers.is_empty() {
        scope.insert("excludedContainerNames".into(), json_strings(containers));
    }
    if m.get("name").is_some_and(|n| !n.is_null()) {
        let _ = writeln!(
            out,
            "# Note: a NodePolicy has no pod-name scope: match.name is not carried over"
        );
    }
    let doc_name: String = format!("{kind}-{name}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "apiVersion: {}\nkind: {}\nmetadata:\n  name: {doc_name}\nspec:\n  effect: {}",
        crate::document::API_VERSION,
        crate::document::KIND,
        effect.as_str()
    );
    if !scope.is_empty() {
        let _ = writeln!(out, "  scope: {}", Value::Object(scope));
    }
    let _ = writeln!(out, "  rules:");
    for (rule, value) in &converted.rules {
        let _ = writeln!(out, "    {rule}: {value}");
    }
    out
}

fn json_strings(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// Every kind nodeguard judges: the check id its violations carry is its kind (a test keeps
/// this list and the kinds read in step).
pub(super) const KINDS: &[&str] = &[
    "K8sAllowedRepos",
    "K8sAllowedReposv2",
    "K8sDisallowedRepos",
    "K8sDisallowedTags",
    "K8sImageDigests",
    "K8sPSPPrivilegedContainer",
    "K8sAzureV2NoPrivilege",
    "K8sPSPHostNamespace",
    "K8sAzureV2BlockHostNamespace",
    "K8sAzureV1BlockHostNamespace",
    "K8sAzureBlockHostNamespace",
    "K8sAzureV3BlockHostNamespace",
    "K8sAzureV2ContainerAllowedImages",
    "K8sAzureV1PodEnforceLabels",
    "K8sPSPAllowPrivilegeEscalationContainer",
    "K8sPSPReadOnlyRootFilesystem",
    "K8sPSPHostNetworkingPorts",
    "K8sAzureV3HostNetworkingPorts",
    "K8sAzureV2HostNetworkingPorts",
    "K8sAzureV1HostNetworkingPorts",
    "K8sAzureHostNetworkingPorts",
    "K8sAzureV4HostNetworkingPorts",
    "K8sPSPHostFilesystem",
    "K8sAzureV4HostFilesystem",
    "K8sAzureV3HostFilesystem",
    "K8sAzureV2HostFilesystem",
    "K8sAzureV1HostFilesystem",
    "K8sAzureHostFilesystem",
    "K8sRequiredLabels",
    "K8sContainerLimits",
    "K8sAzureV3ContainerLimits",
    "K8sAzureV2ContainerLimits",
    "K8sAzureV1ContainerLimits",
    "K8sAzureContainerLimits",
    "K8sAzureV1NoPrivilege",
    "K8sAzureContainerNoPrivilege",
    "K8sAzureContainerAllowedImages",
    "K8sAzurePodEnforceLabels",
    "K8sContainerRequests",
    "K8sContainerRatios",
    "K8sRequiredResources",
    "K8sDisallowInteractiveTTY",
    "K8sPSPCapabilities",
    "K8sAzureV3AllowedCapabilities",
    "K8sAzureV2AllowedCapabilities",
    "K8sAzureV1AllowedCapabilities",
    "K8sAzureAllowedCapabilities",
    "K8sAzureV3DisallowedCapabilities",
    "K8sPSPAllowedUsers",
    "K8sAzureV3AllowedUsersGroups",
    "K8sAzureV2AllowedUsersGroups",
    "K8sAzureV1AllowedUsersGroups",
    "K8sAzureAllowedUsersGroups",
    "K8sPSPFSGroup",
    "K8sPSPSeccomp",
    "K8sAzureV3AllowedSeccomp",
    "K8sPSPSeccompV2",
    "K8sPSPAppArmor",
    "K8sAzureV3EnforceAppArmor",
    "K8sPSPSELinuxV2",
    "K8sPSPProcMount",
    "K8sAzureProcMount",
    "K8sPSPForbiddenSysctls",
    "K8sAzureV1ForbiddenSysctls",
    "K8sPSPVolumeTypes",
    "K8sPSPFlexVolumes",
    "K8sAzureV1FlexVolumes",
    "K8sPSPAutomountServiceAccountTokenPod",
    "K8sAzureV2BlockAutomountToken",
    "K8sAzureV1BlockAutomountToken",
    "K8sAzureBlockAutomountToken",
    "K8sPSPHostProcess",
    "K8sPSPHostProbesLifecycle",
    "K8sRequiredProbes",
    "K8sAzureV3ReadOnlyRootFilesystem",
    "K8sAzureV2ReadOnlyRootFilesystem",
    "K8sAzureReadOnlyRootFilesystem",
    "K8sAzureV3NoPrivilegeEscalation",
    "K8sAzureV4NoPrivilegeEscalation",
    "K8sAzureContainerNoPrivilegeEscalation",
    "K8sAzureV1BlockDefault",
    "K8sAzureV2AllowedSeccomp",
    "K8sAzureAllowedSeccomp",
    "K8sAzureV2EnforceAppArmor",
    "K8sAzureEnforceAppArmor",
    "K8sAzureV2SELinux",
    "K8sAzureV1SELinux",
    "K8sAzureSELinux",
    "K8sAzureV4ProcMount",
    "K8sAzureV3ProcMount",
    "K8sAzureForbiddenSysctls",
    "K8sAzureV2VolumeTypes",
    "K8sAzureVolumeTypes",
    "K8sAzureFlexVolumes",
    "K8sAzureV2NoPrivilegeEscalation",
    "K8sAzureBlockDefault",
];

/// The check id a kind's violations carry: the kind.
fn rule_id(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("gatekeeper")
}

/// Compiles one constraint; `None` when it is invalid (errors recorded) or does not act on the
/// node (notes recorded; the load goes on without it).
pub(super) fn compile_constraint(ctx: &mut Ctx<'_>, value: &Value) -> Option<CompiledDocument> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut ok = true;
    if let Some((_, version)) = group_of(api_version)
        && !VERSIONS.contains(&version)
    {
        ctx.error(
            "apiVersion",
            format!(
                "unsupported constraint version {version:?}; expected one of v1, v1beta1, v1alpha1"
            ),
        );
        ok = false;
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() {
        ctx.error("kind", "a constraint needs a kind (its template's kind)");
        ok = false;
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty() {
        ctx.error("metadata.name", "a constraint needs a name");
        ok = false;
    }
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);
    if !spec.is_null() && !spec.is_object() {
        ctx.error("spec", "spec must be a mapping");
        return None;
    }
    if let Some(map) = spec.as_object() {
        for key in map.keys().filter(|k| {
            !matches!(
                k.as_str(),
                "match" | "parameters" | "enforcementAction" | "scopedEnforcementActions"
            )
        }) {
            ctx.note(
                &format!("spec.{key}"),
                format!("{key:?} is not a field of a constraint's spec (match, parameters, enforcementAction, scopedEnforcementActions): it is ignored"),
            );
        }
    }
    let effect = effect(ctx, &spec);
    let scope = scope(ctx, &spec);
    let params = spec.get("parameters").cloned().unwrap_or(Value::Null);
    if !params.is_null() && !params.is_object() {
        ctx.error("spec.parameters", "parameters must be a mapping");
        ok = false;
    }
    let rule = if kind.is_empty() {
        Some(Judged::Silent)
    } else {
        rule(ctx, kind, &params)
    };
    let (Some(matches), Some(judged), true, Some(effect)) = (scope, rule, ok, effect) else {
        return None;
    };
    let name: Arc<str> = Arc::from(format!("{kind}/{name}"));
    let not_enforced = |scope, why: &str| CompiledDocument {
        name: Arc::clone(&name),
        scope,
        checks: Vec::new(),
        not_enforced: Some(Arc::from(why)),
        containerd: ContainerdScope::default(),
    };
    match (matches, judged) {
        (Matches::Never, _) | (_, Judged::Silent) => None,
        (Matches::Pods(scope), Judged::NotOnNode(why)) => Some(not_enforced(*scope, &why)),
        (Matches::Pods(scope), Judged::Check(rule)) => Some(CompiledDocument {
            name: Arc::clone(&name),
            scope: *scope,
            checks: vec![Check {
                id: rule_id(kind),
                effect,
                rule,
                remediate: Remediation::None,
                exempt_images: None,
                exemptions: Vec::new(),
            }],
            not_enforced: None,
            containerd: ContainerdScope::default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::KINDS;
    use crate::Policy;

    /// Every kind name a match arm of the readers accepts.
    fn read_by_the_code() -> Vec<String> {
        let arm = regex::Regex::new(r#""(K8s[A-Za-z0-9]+)"\s*(?:\||=>)"#).unwrap();
        let mut names = Vec::new();
        for (file, from, to) in [
            (
                include_str!("constraint.rs"),
                "fn rule(ctx",
                "/// Every kind nodeguard judges",
            ),
            (
                include_str!("constraint_kinds.rs"),
                "pub(super) fn read(",
                "/// Why the node can never judge",
            ),
        ] {
            let body = &file[file.find(from).unwrap()..file.find(to).unwrap()];
            for c in arm.captures_iter(body) {
                if !names.contains(&c[1].to_string()) {
                    names.push(c[1].to_string());
                }
            }
        }
        names
    }

    #[test]
    fn every_kind_read_is_listed_and_carries_its_own_id() {
        let read = read_by_the_code();
        assert!(read.len() > 80, "{read:?}");
        for kind in &read {
            assert!(
                KINDS.contains(&kind.as_str()),
                "{kind} is read but not in KINDS"
            );
        }
        for kind in KINDS {
            assert!(
                read.iter().any(|r| r == kind),
                "{kind} is in KINDS but not read"
            );
            let text = format!(
                "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: c}}\n"
            );
            let policy = Policy::parse("c.yaml", &text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(
                policy.notes().iter().all(|n| n.path != "kind"),
                "{kind}: {:?}",
                policy.notes()
            );
            assert!(
                policy.check_ids().all(|id| id == *kind),
                "{kind}: {:?}",
                policy.check_ids().collect::<Vec<_>>()
            );
        }
    }
}
