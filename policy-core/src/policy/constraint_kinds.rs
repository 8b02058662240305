//! The parameters of the library's pod-security and resource kinds, and of the Azure Policy
//! kinds that share their semantics, read into their checks ([`crate::gatekeeper`]); and the
//! kinds the node can never judge, with why.

use serde::Deserialize;
use serde_json::Value;

use super::validate::Ctx;
use crate::gatekeeper::{
    CapabilityRule, Dialect, FsGroupRule, GkRule, IdRule, RatioRule, SeLinuxEntry, SeccompRule,
    SeccompV2Rule, SysctlRule, UserRules, rego_value,
};
use crate::quantity::{Bytes, Millicores};

/// A constraint's parameters of one kind: the list it needs, whether it is given.
pub(super) fn strings(ctx: &mut Ctx<'_>, params: &Value, key: &str) -> Option<Option<Vec<String>>> {
    match params.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(v) => ctx
            .typed::<Vec<String>>(&format!("spec.parameters.{key}"), v)
            .map(Some),
    }
}

/// A kind's check and the parameters it takes; `None` inside when Gatekeeper reports nothing.
pub(super) type Read = (Option<GkRule>, &'static [&'static str]);

const EXEMPT: &[&str] = &["exemptImages"];
const AZURE_EXCLUDED: &[&str] = &["excludedContainers", "excludedImages"];

/// A quantity parameter, as written (a YAML number is its text) and parsed.
fn quantity<T>(
    ctx: &mut Ctx<'_>,
    params: &Value,
    key: &str,
    parse: fn(&str) -> Result<T, crate::quantity::QuantityError>,
) -> Option<Option<(String, Option<T>)>> {
    match params.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some((s.clone(), parse(s).ok()))),
        Some(Value::Number(n)) => Some(Some((n.to_string(), parse(&n.to_string()).ok()))),
        Some(_) => {
            ctx.error(
                &format!("spec.parameters.{key}"),
                format!("{key} must be a quantity such as \"500m\" or \"1Gi\""),
            );
            None
        }
    }
}

/// A ratio parameter (`"2"`, `"1.5"`); one that is not a number is not compared, as the
/// template's `to_number` leaves it undefined (noted).
fn ratio(ctx: &mut Ctx<'_>, params: &Value, key: &str) -> Option<Option<(String, f64)>> {
    let text = match params.get(key) {
        None | Some(Value::Null) => return Some(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            ctx.error(
                &format!("spec.parameters.{key}"),
                format!("{key} must be a number, written as a string (\"2\")"),
            );
            return None;
        }
    };
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Some(Some((text, n))),
        _ => {
            ctx.note(
                &format!("spec.parameters.{key}"),
                format!("{key} {text:?} is not a number: Gatekeeper compares nothing with it, nor does the node"),
            );
            Some(None)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdRuleRaw {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    ranges: Option<Vec<RangeRaw>>,
}

#[derive(Deserialize)]
struct RangeRaw {
    min: i64,
    max: i64,
}

fn id_rule(ctx: &mut Ctx<'_>, params: &Value, key: &str) -> Option<Option<IdRule>> {
    let Some(raw) = params.get(key).filter(|v| !v.is_null()) else {
        return Some(None);
    };
    let parsed: IdRuleRaw = ctx.typed(&format!("spec.parameters.{key}"), raw)?;
    if parsed.rule.is_empty() {
        ctx.note(
            &format!("spec.parameters.{key}"),
            format!("{key} without a rule: Gatekeeper judges nothing of it, nor does the node"),
        );
        return Some(None);
    }
    Some(Some(IdRule {
        rule: parsed.rule,
        ranges: parsed
            .ranges
            .map(|r| r.into_iter().map(|r| (r.min, r.max)).collect()),
        printed: rego_value(raw),
    }))
}

fn users(ctx: &mut Ctx<'_>, params: &Value) -> Option<UserRules> {
    let (u, g, s, f) = (
        id_rule(ctx, params, "runAsUser"),
        id_rule(ctx, params, "runAsGroup"),
        id_rule(ctx, params, "supplementalGroups"),
        id_rule(ctx, params, "fsGroup"),
    );
    Some(UserRules {
        run_as_user: u?,
        run_as_group: g?,
        supplemental_groups: s?,
        fs_group: f?,
    })
}

/// Notes that without `key` the kind reports nothing in Gatekeeper (the template's message
/// prints it), nor on the node.
fn silent(ctx: &mut Ctx<'_>, kind: &str, key: &str) {
    ctx.note(
        &format!("spec.parameters.{key}"),
        format!("{kind} without parameters.{key} reports nothing in Gatekeeper, nor on the node"),
    );
}

fn list(ctx: &mut Ctx<'_>, params: &Value, key: &str) -> Option<Vec<String>> {
    Some(strings(ctx, params, key)?.unwrap_or_default())
}

/// Reads the kinds of this module; `None` outside when the parameters are invalid (errors
/// recorded), `Some(None)` when the kind is not one of them.
#[allow(clippy::too_many_lines)]
pub(super) fn read(ctx: &mut Ctx<'_>, kind: &str, params: &Value) -> Option<Option<Read>> {
    let azure = kind.starts_with("K8sAzure");
    let dialect = if azure {
        Dialect::Azure
    } else {
        Dialect::Library
    };
    let read: Read = match kind {
        "K8sContainerRequests" => {
            let (cpu, memory) = (
                quantity(ctx, params, "cpu", Millicores::parse),
                quantity(ctx, params, "memory", Bytes::parse),
            );
            (
                Some(GkRule::ContainerRequests {
                    cpu: cpu?,
                    memory: memory?,
                }),
                &["cpu", "memory", "exemptImages"],
            )
        }
        "K8sContainerRatios" => {
            let (r, c) = (ratio(ctx, params, "ratio"), ratio(ctx, params, "cpuRatio"));
            (
                Some(GkRule::ContainerRatios(RatioRule {
                    ratio: r?,
                    cpu_ratio: c?,
                })),
                &["ratio", "cpuRatio", "exemptImages"],
            )
        }
        "K8sRequiredResources" => {
            let (limits, requests) = (list(ctx, params, "limits"), list(ctx, params, "requests"));
            (
                Some(GkRule::RequiredResources {
                    limits: limits?,
                    requests: requests?,
                }),
                &["limits", "requests", "exemptImages"],
            )
        }
        "K8sDisallowInteractiveTTY" => (Some(GkRule::InteractiveTty), EXEMPT),
        "K8sPSPCapabilities"
        | "K8sAzureV3AllowedCapabilities"
        | "K8sAzureV2AllowedCapabilities"
        | "K8sAzureV1AllowedCapabilities"
        | "K8sAzureAllowedCapabilities" => {
            let (allowed, drop) = (
                strings(ctx, params, "allowedCapabilities"),
                list(ctx, params, "requiredDropCapabilities"),
            );
            (
                Some(GkRule::Capabilities(CapabilityRule {
                    allowed: allowed?,
                    required_drop: drop?,
                    dialect,
                })),
                if azure {
                    &[
                        "allowedCapabilities",
                        "requiredDropCapabilities",
                        "excludedContainers",
                        "excludedImages",
                    ]
                } else {
                    &[
                        "allowedCapabilities",
                        "requiredDropCapabilities",
                        "exemptImages",
                    ]
                },
            )
        }
        "K8sAzureV3DisallowedCapabilities" => (
            Some(GkRule::DisallowedCapabilities(list(
                ctx,
                params,
                "disallowedCapabilities",
            )?)),
            &[
                "disallowedCapabilities",
                "excludedContainers",
                "excludedImages",
            ],
        ),
        "K8sPSPAllowedUsers"
        | "K8sAzureV3AllowedUsersGroups"
        | "K8sAzureV2AllowedUsersGroups"
        | "K8sAzureV1AllowedUsersGroups"
        | "K8sAzureAllowedUsersGroups" => (
            Some(GkRule::AllowedUsers(Box::new(users(ctx, params)?))),
            if azure {
                &[
                    "runAsUser",
                    "runAsGroup",
                    "supplementalGroups",
                    "fsGroup",
                    "excludedContainers",
                    "excludedImages",
                ]
            } else {
                &[
                    "runAsUser",
                    "runAsGroup",
                    "supplementalGroups",
                    "fsGroup",
                    "exemptImages",
                ]
            },
        ),
        "K8sPSPFSGroup" => {
            let rule = match params.get("rule") {
                None | Some(Value::Null) => None,
                Some(v) => Some(ctx.typed::<String>("spec.parameters.rule", v)?),
            };
            let ranges = match params.get("ranges") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => ctx
                    .typed::<Vec<RangeRaw>>("spec.parameters.ranges", v)?
                    .into_iter()
                    .map(|r| (r.min, r.max))
                    .collect(),
            };
            (
                Some(GkRule::FsGroup(FsGroupRule {
                    rule,
                    ranges,
                    printed: rego_value(params),
                })),
                &["rule", "ranges"],
            )
        }
        "K8sPSPSeccomp" => {
            let (profiles, files) = (
                list(ctx, params, "allowedProfiles"),
                list(ctx, params, "allowedLocalhostFiles"),
            );
            (
                Some(GkRule::Seccomp(
                    SeccompRule::library(&profiles?, &files?),
                    Dialect::Library,
                )),
                &["allowedProfiles", "allowedLocalhostFiles", "exemptImages"],
            )
        }
        "K8sAzureV3AllowedSeccomp" | "K8sAzureV2AllowedSeccomp" | "K8sAzureAllowedSeccomp" => (
            Some(GkRule::Seccomp(
                SeccompRule::azure(&list(ctx, params, "allowedProfiles")?),
                Dialect::Azure,
            )),
            &["allowedProfiles", "excludedContainers", "excludedImages"],
        ),
        "K8sPSPSeccompV2" => {
            let (profiles, files) = (
                list(ctx, params, "allowedProfiles"),
                list(ctx, params, "allowedLocalhostFiles"),
            );
            (
                Some(GkRule::SeccompV2(SeccompV2Rule {
                    profiles: profiles?,
                    files: files?,
                })),
                &["allowedProfiles", "allowedLocalhostFiles", "exemptImages"],
            )
        }
        "K8sPSPAppArmor" => {
            let Some(allowed) = strings(ctx, params, "allowedProfiles")? else {
                silent(ctx, kind, "allowedProfiles");
                return Some(Some((None, &["allowedProfiles", "exemptImages"])));
            };
            (
                Some(GkRule::AppArmor(allowed, Dialect::Library)),
                &["allowedProfiles", "exemptImages"],
            )
        }
        "K8sAzureV3EnforceAppArmor" | "K8sAzureV2EnforceAppArmor" | "K8sAzureEnforceAppArmor" => {
            let allowed = strings(ctx, params, "allowedProfiles")?
                .unwrap_or_else(|| vec!["runtime/default".to_string()]);
            (
                Some(GkRule::AppArmor(allowed, Dialect::Azure)),
                &["allowedProfiles", "excludedContainers", "excludedImages"],
            )
        }
        "K8sPSPSELinuxV2" | "K8sAzureV2SELinux" | "K8sAzureV1SELinux" | "K8sAzureSELinux" => {
            #[derive(Deserialize)]
            struct EntryRaw {
                level: Option<String>,
                role: Option<String>,
                #[serde(rename = "type")]
                kind: Option<String>,
                user: Option<String>,
            }
            let known: &'static [&'static str] = if azure {
                &["allowedSELinuxOptions", "excludedImages"]
            } else {
                &["allowedSELinuxOptions", "exemptImages"]
            };
            let Some(raw) = params.get("allowedSELinuxOptions").filter(|v| !v.is_null()) else {
                silent(ctx, kind, "allowedSELinuxOptions");
                return Some(Some((None, known)));
            };
            let entries: Vec<EntryRaw> = ctx.typed("spec.parameters.allowedSELinuxOptions", raw)?;
            (
                Some(GkRule::SeLinux(
                    entries
                        .into_iter()
                        .map(|e| SeLinuxEntry {
                            level: e.level,
                            role: e.role,
                            kind: e.kind,
                            user: e.user,
                        })
                        .collect(),
                    rego_value(raw),
                    dialect,
                )),
                known,
            )
        }
        "K8sPSPProcMount" | "K8sAzureV4ProcMount" | "K8sAzureV3ProcMount" | "K8sAzureProcMount" => {
            let unmasked = params
                .get("procMount")
                .and_then(Value::as_str)
                .is_some_and(|p| p.eq_ignore_ascii_case("unmasked"));
            (
                Some(GkRule::ProcMount(unmasked)),
                if azure {
                    &["procMount", "excludedContainers", "excludedImages"]
                } else {
                    &["procMount", "exemptImages"]
                },
            )
        }
        "K8sPSPForbiddenSysctls" => {
            let (forbidden, allowed) = (
                strings(ctx, params, "forbiddenSysctls"),
                strings(ctx, params, "allowedSysctls"),
            );
            (
                Some(GkRule::Sysctls(SysctlRule {
                    forbidden: forbidden?,
                    allowed: allowed?,
                    dialect,
                })),
                &["forbiddenSysctls", "allowedSysctls"],
            )
        }
        "K8sAzureV1ForbiddenSysctls" | "K8sAzureForbiddenSysctls" => (
            Some(GkRule::Sysctls(SysctlRule {
                forbidden: strings(ctx, params, "forbiddenSysctls")?,
                allowed: None,
                dialect,
            })),
            &["forbiddenSysctls"],
        ),
        "K8sPSPVolumeTypes" | "K8sAzureV2VolumeTypes" | "K8sAzureVolumeTypes" => {
            let known: &'static [&'static str] = if azure {
                &["volumes", "excludedImages"]
            } else {
                &["volumes"]
            };
            let volumes = strings(ctx, params, "volumes")?;
            if volumes.is_none() {
                silent(ctx, kind, "volumes");
            }
            (volumes.map(GkRule::VolumeTypes), known)
        }
        "K8sPSPFlexVolumes" => {
            #[derive(Deserialize)]
            struct DriverRaw {
                driver: String,
            }
            let Some(raw) = params.get("allowedFlexVolumes").filter(|v| !v.is_null()) else {
                silent(ctx, kind, "allowedFlexVolumes");
                return Some(Some((None, &["allowedFlexVolumes"])));
            };
            let drivers: Vec<DriverRaw> = ctx.typed("spec.parameters.allowedFlexVolumes", raw)?;
            (
                Some(GkRule::FlexVolumes(
                    drivers.into_iter().map(|d| d.driver).collect(),
                    Dialect::Library,
                )),
                &["allowedFlexVolumes"],
            )
        }
        "K8sAzureV1FlexVolumes" | "K8sAzureFlexVolumes" => (
            Some(GkRule::FlexVolumes(
                list(ctx, params, "allowedFlexVolumeDrivers")?,
                Dialect::Azure,
            )),
            &["allowedFlexVolumeDrivers"],
        ),
        "K8sPSPAutomountServiceAccountTokenPod" => (Some(GkRule::AutomountToken), &[]),
        "K8sAzureV2BlockAutomountToken"
        | "K8sAzureV1BlockAutomountToken"
        | "K8sAzureBlockAutomountToken" => (Some(GkRule::AutomountToken), &["excludedImages"]),
        "K8sPSPHostProcess" => (Some(GkRule::HostProcess), EXEMPT),
        "K8sPSPHostProbesLifecycle" => (Some(GkRule::HostProbesLifecycle), EXEMPT),
        "K8sRequiredProbes" => {
            let (probes, types) = (list(ctx, params, "probes"), list(ctx, params, "probeTypes"));
            (
                Some(GkRule::RequiredProbes {
                    probes: probes?,
                    probe_types: types?,
                }),
                &["probes", "probeTypes"],
            )
        }
        "K8sAzureV3ReadOnlyRootFilesystem"
        | "K8sAzureV2ReadOnlyRootFilesystem"
        | "K8sAzureReadOnlyRootFilesystem" => (
            Some(GkRule::ReadOnlyRootFilesystem(Dialect::Azure)),
            AZURE_EXCLUDED,
        ),
        "K8sAzureV3NoPrivilegeEscalation" | "K8sAzureV2NoPrivilegeEscalation" => (
            Some(GkRule::AzureNoPrivilegeEscalation { force: false }),
            AZURE_EXCLUDED,
        ),
        "K8sAzureV4NoPrivilegeEscalation" => {
            let force = match params.get("forcePrivilegeEscalationToBeFalse") {
                None | Some(Value::Null) => false,
                Some(v) => {
                    ctx.typed::<bool>("spec.parameters.forcePrivilegeEscalationToBeFalse", v)?
                }
            };
            (
                Some(GkRule::AzureNoPrivilegeEscalation { force }),
                &[
                    "forcePrivilegeEscalationToBeFalse",
                    "excludedContainers",
                    "excludedImages",
                ],
            )
        }
        "K8sAzureContainerNoPrivilegeEscalation" => (
            Some(GkRule::AzureNoPrivilegeEscalation { force: true }),
            &[],
        ),
        "K8sAzureV1BlockDefault" | "K8sAzureBlockDefault" => (Some(GkRule::AzureBlockDefault), &[]),
        _ => return Some(None),
    };
    Some(Some(read))
}

/// Why the node can never judge a kind: what it reads never reaches the runtime.
pub(super) fn never_on_node(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "K8sAzureV2ContainerEnforceProbes"
        | "K8sAzureV1ContainerEnforceProbes"
        | "K8sAzureContainerEnforceProbes" => {
            "it judges probes, which the kubelet runs and never gives the runtime"
        }
        "K8sContainerEphemeralStorageLimit" => {
            "it judges ephemeral-storage limits, which the kubelet enforces itself and never gives the runtime"
        }
        "K8sAzureV2ContainerAllowedPullPolicy" | "K8sAzureContainerAllowedPullPolicy" => {
            "it judges imagePullPolicy, which the kubelet applies and never gives the runtime"
        }
        "K8sAzureV1ContainerRestrictedImagePulls" => {
            "it judges imagePullSecrets, which never reach the runtime"
        }
        "K8sAzureV1BlockNakedPods" => "it judges ownerReferences, which never reach the runtime",
        "K8sAzureV1WindowsBlockContainerAdmin"
        | "K8sAzureV1WindowsContainerAllowedUsernames"
        | "K8sAzureV1WindowsContainerResources"
        | "K8sAzureV1WindowsBlockHostProcess" => {
            "it applies to Windows pods, which never run on a Linux node"
        }
        "K8sAzureV1AntiAffinityRules" => "it judges workload objects, not pods",
        "K8sAzureV1DefenderBlockVulnerableImages" | "K8sAzureV1NotationVerification" => {
            "it needs data from outside the cluster"
        }
        "K8sAzureV1RestrictedLabels" => "it needs the requesting user's identity",
        _ => return None,
    })
}
