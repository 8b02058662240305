//! Compiling each rule of `spec.rules` into its checks, validating every parameter.

use serde_json::Value;

use super::validate::Ctx;
use crate::capabilities::{self, CapabilitySet};
use crate::decision::{Effect, Remediation};
use crate::document::{
    CapabilitiesRaw, DevicesRaw, FlagRuleRaw, HostNamespaceName, HostNamespacesRaw, HostPathRaw,
    HostPortsRaw, IdRangeRaw, ImagesRaw, ProfileKind, ProfileRuleRaw, RequiredLabelsRaw,
    ResourceName, ResourcesRaw, SeLinuxRaw, SysctlsRaw, UsersRaw, VolumeTypesRaw,
};
use crate::matcher::{Globs, Regexes};
use crate::quantity::{Bytes, Millicores};
use crate::rules::{
    AllowedHostPath, Check, LabelRequirement, ProfilePolicy, Range, Rule, SeLinuxPolicy,
};
use crate::view::VolumeType;

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

/// Adds a check unless its effect is `disabled`.
pub(super) fn push(
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

pub(super) fn compile_rule(
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
    ctx.unanchored_images(&format!("{path}.allowed"), &raw.allowed);
    ctx.unanchored_images(&format!("{path}.exempt"), &raw.exempt);
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
