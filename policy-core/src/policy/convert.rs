//! A Gatekeeper kind's check as `NodePolicy` rules, for `nodeguard policy convert`: the closest rules
//! nodeguard's own format has, and what differs from the constraint (said, never hidden).

use serde_json::{Value, json};

use crate::gatekeeper::{AllowedHostPath, Dialect, GkRule, IdRule, SeLinuxEntry};

/// What a check becomes in a `NodePolicy`.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// `spec.rules` entries: rule name and its parameters.
    pub(crate) rules: Vec<(&'static str, Value)>,
    /// How the rules differ from the constraint.
    pub(crate) caveats: Vec<String>,
}

impl Converted {
    fn rule(mut self, name: &'static str, value: Value) -> Self {
        self.rules.push((name, value));
        self
    }

    fn caveat(mut self, text: &str) -> Self {
        self.caveats.push(text.to_string());
        self
    }
}

/// An unanchored pattern's text as a regex anchored at the start.
fn prefix_regex(prefix: &str) -> String {
    format!("^{}", regex::escape(prefix))
}

/// An entry that is exact, or a prefix when it ends in `*`, as a regex.
fn star_regex(entry: &str) -> String {
    match entry.strip_suffix('*') {
        Some(prefix) => prefix_regex(prefix),
        None => format!("^{}$", regex::escape(entry)),
    }
}

/// A seccomp constraint allowing none of the kinds a `NodePolicy` names.
const NO_PROFILE_KIND: &str = "the constraint allows no RuntimeDefault, Localhost or Unconfined profile (only \"not configured\" or annotation spellings): a NodePolicy cannot say that, no rule";

/// Images as written in the pod against `NodePolicy`'s normalized names.
pub(super) const AS_WRITTEN: &str = "the constraint compares the image as written in the pod (nginx); a NodePolicy compares the normalized name (docker.io/library/nginx:latest): review the patterns";

/// Exempt images (exact, or a prefix ending in `*`) as `NodePolicy` regexes.
pub(crate) fn exempt_regexes(images: &[String]) -> Vec<String> {
    images.iter().map(|i| star_regex(i)).collect()
}

fn host_paths(allowed: &[AllowedHostPath]) -> Value {
    Value::Array(
        allowed
            .iter()
            .map(|a| json!({"pathPrefix": a.prefix, "readOnly": a.read_only}))
            .collect(),
    )
}

impl GkRule {
    /// The closest `NodePolicy` rules.
    #[allow(clippy::too_many_lines)]
    pub(crate) fn to_node_policy(&self) -> Converted {
        let none = Converted::default();
        match self {
            GkRule::AllowedRepos(repos) => none
                .rule(
                    "images",
                    json!({"allowed": repos.iter().map(|r| prefix_regex(r)).collect::<Vec<_>>()}),
                )
                .caveat(AS_WRITTEN),
            GkRule::AllowedImages(images) => none
                .rule(
                    "images",
                    json!({"allowed": images.iter().map(|i| star_regex(i)).collect::<Vec<_>>()}),
                )
                .caveat(AS_WRITTEN),
            GkRule::ImageRegex(pattern) => none
                .rule("images", json!({"allowed": [pattern.0.as_str()]}))
                .caveat(AS_WRITTEN),
            GkRule::DisallowedRepos(repos) => none
                .rule(
                    "images",
                    json!({"denied": repos.iter().map(|r| prefix_regex(r)).collect::<Vec<_>>()}),
                )
                .caveat(AS_WRITTEN),
            GkRule::DisallowedTags(tags) => none
                .rule("images", json!({"forbiddenTags": tags}))
                .caveat("an image without a tag is `latest` in a NodePolicy: add latest to forbiddenTags to refuse untagged images as the constraint does"),
            GkRule::ImageDigests => none.rule("images", json!({"requireDigest": true})),
            GkRule::Privileged(_) => none.rule("privileged", json!({})),
            GkRule::HostNamespace { network } => {
                let allowed: &[&str] = if *network { &[] } else { &["network"] };
                none.rule("hostNamespaces", json!({"allowed": allowed}))
            }
            GkRule::AllowPrivilegeEscalation => none.rule("privilegeEscalation", json!({})),
            GkRule::AzureNoPrivilegeEscalation { force } => {
                let out = none.rule("privilegeEscalation", json!({}));
                if *force {
                    out
                } else {
                    out.caveat("the constraint lets an unset allowPrivilegeEscalation pass for root or unset users; the NodePolicy rule asks for false always")
                }
            }
            GkRule::ReadOnlyRootFilesystem(_) => none.rule("readOnlyRootFilesystem", json!({})),
            GkRule::HostNetworkingPorts {
                host_network,
                min,
                max,
                allowed,
                ..
            } => {
                let namespaces: &[&str] = if *host_network {
                    &["pid", "ipc", "network"]
                } else {
                    &["pid", "ipc"]
                };
                let ports: Vec<Value> = match (allowed, min, max) {
                    (Some(list), _, _) => list
                        .iter()
                        .map(|(lo, hi)| {
                            if lo == hi {
                                json!(lo)
                            } else {
                                json!(format!("{lo}-{hi}"))
                            }
                        })
                        .collect(),
                    (None, min, max) => {
                        let lo = min.unwrap_or(1).clamp(1, 65535);
                        let hi = max.unwrap_or(65535).clamp(0, 65535);
                        if lo <= hi {
                            vec![json!(format!("{lo}-{hi}"))]
                        } else {
                            Vec::new()
                        }
                    }
                };
                none.rule("hostNamespaces", json!({"allowed": namespaces}))
                    .rule("hostPorts", json!({"allowed": ports}))
            }
            GkRule::HostFilesystem(allowed, dialect) => {
                let out = none.rule("hostPath", json!({"allowed": host_paths(allowed)}));
                match dialect {
                    Dialect::Library => out.caveat("the constraint compares string prefixes (/foo holds /fool); a NodePolicy whole path components"),
                    Dialect::Azure => out,
                }
            }
            GkRule::RequiredLabels(labels) => none.rule(
                "requiredLabels",
                json!({"labels": labels.iter().map(|l| match &l.allowed {
                    Some(re) => json!({"key": l.key, "allowedRegex": re.as_str()}),
                    None => json!({"key": l.key}),
                }).collect::<Vec<_>>()}),
            ),
            GkRule::LabelsPresent(keys) => none.rule(
                "requiredLabels",
                json!({"labels": keys.iter().map(|k| json!({"key": k})).collect::<Vec<_>>()}),
            ),
            GkRule::ContainerLimits { cpu, memory } => {
                let mut require = Vec::new();
                let mut max = serde_json::Map::new();
                if let Some((written, parsed)) = cpu {
                    require.push("cpu");
                    if parsed.is_some() {
                        max.insert("cpu".into(), json!(written));
                    }
                }
                require.push("memory");
                if let Some((written, Some(_))) = memory {
                    max.insert("memory".into(), json!(written));
                }
                let mut rule = json!({"requireLimits": require});
                if !max.is_empty() {
                    rule["maxLimits"] = Value::Object(max);
                }
                none.rule("resources", rule)
            }
            GkRule::ContainerRequests { cpu, memory } => {
                let out = none.rule("resources", json!({"requireLimits": [], "requireRequests": ["cpu", "memory"]}));
                if cpu.is_some() || memory.is_some() {
                    out.caveat("a NodePolicy has no maximum request: the constraint's cpu and memory maxima are not carried over")
                } else {
                    out
                }
            }
            GkRule::ContainerRatios(rule) => {
                let mut ratio = serde_json::Map::new();
                if let Some((_, r)) = &rule.ratio {
                    let cpu = rule.cpu_ratio.as_ref().map_or(*r, |c| c.1);
                    ratio.insert("cpu".into(), json!(cpu));
                    ratio.insert("memory".into(), json!(r));
                }
                none.rule(
                    "resources",
                    json!({"requireLimits": ["cpu", "memory"], "requireRequests": ["cpu", "memory"], "maxLimitRequestRatio": ratio}),
                )
            }
            GkRule::RequiredResources { limits, requests } => none.rule(
                "resources",
                json!({"requireLimits": limits, "requireRequests": requests}),
            ),
            GkRule::Capabilities(rule) => {
                let allowed: Vec<&String> = rule
                    .allowed
                    .iter()
                    .flatten()
                    .filter(|c| *c != "*")
                    .collect();
                let out = none.rule(
                    "capabilities",
                    json!({"allowedAdd": allowed, "requiredDrop": rule.required_drop}),
                );
                if rule.allowed.iter().flatten().any(|c| c == "*") {
                    out.caveat("the constraint allows any capability (*); a NodePolicy lists them")
                } else {
                    out
                }
            }
            GkRule::AllowedUsers(rules) => {
                let ranges = |r: &IdRule| {
                    let list: Vec<Value> = r
                        .ranges
                        .iter()
                        .flatten()
                        .map(|(min, max)| {
                            let max = if *max < 0 { i64::from(u32::MAX) } else { *max };
                            let top = i64::from(u32::MAX);
                            json!({"min": (*min).clamp(0, top), "max": max.clamp(0, top)})
                        })
                        .collect();
                    Value::Array(list)
                };
                let mut users = serde_json::Map::new();
                let mut out = none;
                for (key, rule) in [
                    ("runAsUser", &rules.run_as_user),
                    ("runAsGroup", &rules.run_as_group),
                    ("supplementalGroups", &rules.supplemental_groups),
                ] {
                    let Some(r) = rule else { continue };
                    match r.rule.as_str() {
                        "MustRunAs" | "MayRunAs" if r.ranges.is_some() => {
                            users.insert(key.into(), ranges(r));
                            if r.rule == "MayRunAs" {
                                out = out.caveat(&format!("{key} MayRunAs allows an unset id; a NodePolicy range needs one"));
                            }
                        }
                        "MustRunAsNonRoot" => out = out.rule("runAsNonRoot", json!({})),
                        _ => {}
                    }
                }
                if rules.fs_group.is_some() {
                    out = out.caveat("a NodePolicy has no fsGroup rule: the constraint's fsGroup is not carried over");
                }
                if users.is_empty() {
                    out
                } else {
                    out.rule("users", Value::Object(users))
                }
            }
            GkRule::Seccomp(rule, _) => {
                let mut kinds = Vec::new();
                let has = |p: &str| rule.allowed.iter().any(|a| a == p);
                if has("runtime/default") || has("docker/default") || has("RuntimeDefault") {
                    kinds.push("RuntimeDefault");
                }
                let files: Vec<String> = rule
                    .allowed
                    .iter()
                    .filter_map(|a| a.strip_prefix("localhost/"))
                    .map(str::to_string)
                    .collect();
                if !files.is_empty() {
                    kinds.push("Localhost");
                }
                if has("unconfined") || has("Unconfined") {
                    kinds.push("Unconfined");
                }
                if rule.any {
                    return none.caveat("the constraint allows any seccomp profile: no rule");
                }
                if kinds.is_empty() {
                    return none.caveat(NO_PROFILE_KIND);
                }
                let mut value = json!({"allowed": kinds});
                if !files.iter().any(|f| f == "*") && !files.is_empty() {
                    value["allowedLocalhostProfiles"] = json!(files);
                }
                none.rule("seccomp", value).caveat("a NodePolicy does not read the deprecated seccomp annotations, nor allow \"not configured\"")
            }
            GkRule::SeccompV2(rule) => {
                if rule.profiles.iter().any(|p| p == "*") {
                    return none.caveat("the constraint allows any seccomp profile: no rule");
                }
                let kinds: Vec<&str> = ["RuntimeDefault", "Localhost", "Unconfined"]
                    .into_iter()
                    .filter(|k| rule.profiles.iter().any(|p| p == k))
                    .collect();
                if kinds.is_empty() {
                    return none.caveat(NO_PROFILE_KIND);
                }
                let mut value = json!({"allowed": kinds});
                if kinds.contains(&"Localhost") && !rule.files.iter().any(|f| f == "*") {
                    value["allowedLocalhostProfiles"] = json!(rule.files);
                }
                let out = none.rule("seccomp", value);
                if rule.profiles.iter().any(|p| p == "not configured") {
                    out.caveat("the constraint allows pods without a profile (\"not configured\"); a NodePolicy allows that only with Unconfined")
                } else {
                    out
                }
            }
            GkRule::AppArmor(allowed, _) => {
                let kinds: Vec<&str> = [
                    ("runtime/default", "RuntimeDefault"),
                    ("unconfined", "Unconfined"),
                ]
                .into_iter()
                .filter(|(p, _)| allowed.iter().any(|a| a == p))
                .map(|(_, k)| k)
                .chain(
                    allowed
                        .iter()
                        .any(|a| a.starts_with("localhost/"))
                        .then_some("Localhost"),
                )
                .collect();
                let names: Vec<&str> = allowed
                    .iter()
                    .filter_map(|a| a.strip_prefix("localhost/"))
                    .collect();
                let mut value = json!({"allowed": kinds});
                if !names.is_empty() {
                    value["allowedLocalhostProfiles"] = json!(names);
                }
                none.rule("appArmor", value)
                    .caveat("a NodePolicy requires a profile to be set unless Unconfined is allowed; the constraint counts an unset one as runtime/default")
            }
            GkRule::SeLinux(entries, _, _) => {
                let collect = |f: fn(&SeLinuxEntry) -> &Option<String>| {
                    let mut v: Vec<String> = entries.iter().filter_map(|e| f(e).clone()).collect();
                    v.dedup();
                    v
                };
                none.rule(
                    "seLinux",
                    json!({
                        "allowedTypes": collect(|e| &e.kind),
                        "allowedUsers": collect(|e| &e.user),
                        "allowedRoles": collect(|e| &e.role),
                    }),
                )
                .caveat("a NodePolicy allows each field on its own; the constraint needs one entry to agree on all of them")
            }
            GkRule::ProcMount(unmasked) => {
                if *unmasked {
                    none.caveat("the constraint allows Unmasked: no rule")
                } else {
                    none.rule("procMount", json!({}))
                }
            }
            GkRule::Sysctls(rule) => {
                let globs = |list: &Option<Vec<String>>| -> Option<Vec<String>> {
                    list.as_ref().map(|l| {
                        l.iter()
                            .map(|e| match e.strip_suffix('*') {
                                Some(prefix) => format!("{}*", prefix.replace('*', "")),
                                None => e.clone(),
                            })
                            .collect()
                    })
                };
                let mut value = serde_json::Map::new();
                if let Some(f) = globs(&rule.forbidden) {
                    value.insert("forbidden".into(), json!(f));
                }
                if let Some(a) = globs(&rule.allowed) {
                    value.insert("allowed".into(), json!(a));
                }
                if value.is_empty() {
                    none.caveat("the constraint lists no sysctl: no rule")
                } else {
                    none.rule("sysctls", Value::Object(value))
                }
            }
            GkRule::VolumeTypes(allowed) => {
                if allowed.iter().any(|a| a == "*") {
                    none.caveat("the constraint allows any volume type: no rule")
                } else {
                    let known: Vec<&String> = allowed
                        .iter()
                        .filter(|a| {
                            crate::view::VolumeType::from_name(a) != crate::view::VolumeType::Other
                        })
                        .collect();
                    none.rule("volumeTypes", json!({"allowed": known}))
                }
            }
            GkRule::InteractiveTty
            | GkRule::FlexVolumes(..)
            | GkRule::FsGroup(_)
            | GkRule::AutomountToken
            | GkRule::HostProcess
            | GkRule::HostProbesLifecycle
            | GkRule::RequiredProbes { .. }
            | GkRule::DisallowedCapabilities(_)
            | GkRule::AzureBlockDefault => {
                none.caveat("no NodePolicy rule expresses this kind: nodeguard judges the constraint itself")
            }
        }
    }
}
