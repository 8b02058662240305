//! The policy document as written: `NodePolicy` objects, deserialized strictly.
//!
//! These types mirror the YAML one to one (`deny_unknown_fields` everywhere) and hold no
//! logic; [`crate::policy`] validates them and compiles them into checks. Values that can be
//! written in several forms (ports, quantities) stay [`serde_json::Value`] here and are read
//! during validation, where a bad one gets a precise message.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::decision::Effect;

/// The `apiVersion` nodeguard reads.
pub const API_VERSION: &str = "nodeguard.io/v1alpha1";
/// The `kind` nodeguard reads.
pub const KIND: &str = "NodePolicy";

/// The top of a document; `spec` is read part by part so one mistake does not hide another.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DocumentRaw {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Name and labels.
    pub metadata: MetadataRaw,
    /// The policy itself.
    #[serde(default)]
    pub spec: Value,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataRaw {
    /// Policy name, reported with every violation.
    pub name: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `spec`, with its parts left raw.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecRaw {
    /// Default effect of every rule that does not set its own.
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Which containers the policy applies to.
    #[serde(default)]
    pub scope: Option<Value>,
    /// A Pod Security Standards preset.
    #[serde(default)]
    pub pod_security: Option<Value>,
    /// Rules by name.
    #[serde(default)]
    pub rules: Option<serde_json::Map<String, Value>>,
}

/// `spec.scope`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScopeRaw {
    /// Namespace globs the policy applies to (default: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace globs it never applies to.
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    /// Pods it applies to, by label.
    #[serde(default)]
    pub pod_selector: Option<LabelSelectorRaw>,
    /// Namespaces it applies to, by their labels (known on the node in the cluster-connected
    /// mode only; elsewhere the containers in the other criteria's scope are skipped).
    #[serde(default)]
    pub namespace_selector: Option<LabelSelectorRaw>,
    /// Container-name globs it applies to (default: all).
    #[serde(default)]
    pub container_names: Vec<String>,
    /// Container-name globs it never applies to.
    #[serde(default)]
    pub excluded_container_names: Vec<String>,
    /// Image regexes exempt from every rule of the policy.
    #[serde(default)]
    pub exempt_images: Vec<String>,
    /// Globs of the containerd namespaces whose containers the policy judges (default: all).
    /// Kubernetes' containers (made through CRI) are in `k8s.io`; containers made with `ctr`,
    /// nerdctl, Docker or buildkit are in their own (see ADR 0021).
    #[serde(default)]
    pub containerd_namespaces: Vec<String>,
    /// Globs of the containerd namespaces whose containers the policy never judges.
    #[serde(default)]
    pub excluded_containerd_namespaces: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRaw {
    /// Labels that must have exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelExpressionRaw>,
}

/// One set-based label requirement.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelExpressionRaw {
    /// Label key.
    pub key: String,
    /// How to compare.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Label selector operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is not one of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// Pod Security Standards levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PssLevel {
    /// The baseline level: prevents known privilege escalations.
    Baseline,
    /// The restricted level: current pod hardening best practice.
    Restricted,
}

impl PssLevel {
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PssLevel::Baseline => "baseline",
            PssLevel::Restricted => "restricted",
        }
    }
}

/// `spec.podSecurity`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSecurityRaw {
    /// `baseline` or `restricted` (required; read as optional so that a mistake in it does not
    /// hide those in the exemptions).
    #[serde(default)]
    pub level: Option<PssLevel>,
    /// The version of the standard, as Pod Security Admission's `enforce-version`: `v1.<minor>`
    /// or `latest` (the default). Kept raw: an unquoted `1.35` is a number, and the error says
    /// what to write ([`crate::pss::PssVersion`]).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub version: Option<Value>,
    /// Effect of every control (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Controls switched off, everywhere or for some namespaces or images; each read on its
    /// own ([`ExemptionRaw`]), so one's mistakes do not hide another's.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<ExemptionRaw>"))]
    pub exemptions: Vec<Value>,
}

/// One exemption from Pod Security Standards controls.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExemptionRaw {
    /// Control names (see `docs/policy.md`).
    #[serde(default)]
    pub controls: Vec<String>,
    /// Only in these namespaces (globs; default: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Only for these images (regexes; default: all).
    #[serde(default)]
    pub images: Vec<String>,
}

/// A rule that has nothing to set but its effect.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlagRuleRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
}

/// `rules.images`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Regexes of which the image must match at least one.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Regexes the image must match none of.
    #[serde(default)]
    pub denied: Vec<String>,
    /// Whether the image must be pinned by digest.
    #[serde(default)]
    pub require_digest: bool,
    /// Tags that may not be used (an image with neither tag nor digest is `latest`).
    #[serde(default)]
    pub forbidden_tags: Vec<String>,
    /// Regexes of images this rule does not judge.
    #[serde(default)]
    pub exempt: Vec<String>,
}

/// `rules.hostNamespaces`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostNamespacesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Host namespaces that may be shared (default: none).
    #[serde(default)]
    pub allowed: Vec<HostNamespaceName>,
}

/// A host namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum HostNamespaceName {
    /// `hostPID`
    Pid,
    /// `hostIPC`
    Ipc,
    /// `hostNetwork`
    Network,
}

/// `rules.capabilities`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapabilitiesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Capabilities that may be added beyond the runtime's defaults.
    #[serde(default)]
    pub allowed_add: Vec<String>,
    /// Capabilities that must be dropped (`ALL` for all).
    #[serde(default)]
    pub required_drop: Vec<String>,
}

/// `cpu` or `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResourceName {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
}

/// `rules.resources`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourcesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Resources whose limit must be set (default: `[cpu, memory]`).
    #[serde(default)]
    pub require_limits: Option<Vec<ResourceName>>,
    /// Resources whose request must be set.
    #[serde(default)]
    pub require_requests: Vec<ResourceName>,
    /// Largest limits allowed.
    #[serde(default)]
    pub max_limits: PerResourceRaw,
    /// Largest limit / request ratios allowed.
    #[serde(default)]
    pub max_limit_request_ratio: PerResourceRaw,
}

/// A value per resource.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PerResourceRaw {
    /// For CPU.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<IntOrString>"))]
    pub cpu: Option<Value>,
    /// For memory.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<IntOrString>"))]
    pub memory: Option<Value>,
}

/// `rules.hostPorts`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPortsRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Ports or ranges (`8080`, `"9000-9100"`) that may be bound on the host.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<IntOrString>"))]
    pub allowed: Vec<Value>,
}

/// `rules.hostPath`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Host paths that may be mounted (default: none).
    #[serde(default)]
    pub allowed: Vec<AllowedHostPathRaw>,
}

/// One allowed host path.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowedHostPathRaw {
    /// Path prefix, matched by whole path components.
    pub path_prefix: String,
    /// Whether mounts under it must be read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// An inclusive id range.
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdRangeRaw {
    /// Smallest id allowed.
    pub min: u32,
    /// Largest id allowed.
    pub max: u32,
}

/// `rules.users`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsersRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Ranges the user id must fall in.
    #[serde(default)]
    pub run_as_user: Option<Vec<IdRangeRaw>>,
    /// Ranges the primary group id must fall in.
    #[serde(default)]
    pub run_as_group: Option<Vec<IdRangeRaw>>,
    /// Ranges every supplemental group id must fall in.
    #[serde(default)]
    pub supplemental_groups: Option<Vec<IdRangeRaw>>,
}

/// Profile kinds for seccomp and AppArmor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProfileKind {
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile on the node.
    Localhost,
    /// No confinement.
    Unconfined,
}

/// `rules.seccomp` and `rules.appArmor`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileRuleRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Profile kinds allowed (default: `[RuntimeDefault, Localhost]`); a profile must be set.
    #[serde(default)]
    pub allowed: Option<Vec<ProfileKind>>,
    /// Globs of `Localhost` profile names allowed (default: any).
    #[serde(default)]
    pub allowed_localhost_profiles: Vec<String>,
}

/// `rules.seLinux`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeLinuxRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Types allowed when a type is set (absent: any).
    #[serde(default)]
    pub allowed_types: Option<Vec<String>>,
    /// Users allowed when a user is set (absent: any; `[]`: none may be set).
    #[serde(default)]
    pub allowed_users: Option<Vec<String>>,
    /// Roles allowed when a role is set (absent: any; `[]`: none may be set).
    #[serde(default)]
    pub allowed_roles: Option<Vec<String>>,
    /// Levels allowed when a level is set (absent: any).
    #[serde(default)]
    pub allowed_levels: Option<Vec<String>>,
}

/// `rules.sysctls`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SysctlsRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Globs of sysctls that may be set (absent: any not forbidden).
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    /// Globs of sysctls that may not be set.
    #[serde(default)]
    pub forbidden: Vec<String>,
}

/// `rules.volumeTypes`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeTypesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Volume types allowed, by pod-spec name (`configMap`, `secret`, ...).
    pub allowed: Vec<String>,
}

/// `rules.requiredLabels`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequiredLabelsRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Labels every pod must carry.
    pub labels: Vec<LabelRequirementRaw>,
}

/// One required pod label.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelRequirementRaw {
    /// Label key.
    pub key: String,
    /// Regex the value must match (default: any value).
    #[serde(default)]
    pub allowed_regex: Option<String>,
}

/// `rules.devices`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DevicesRaw {
    /// Effect (default: the policy's).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Globs of device paths that may be given to containers (default: none).
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// A serde error message in the words of the YAML the user wrote, without Rust's type names:
/// `expected struct FlagRuleRaw` says `expected a mapping`, `expected u32` says `expected a
/// whole number (0 to 4294967295)`, `sequence` says `list`.
///
/// ```
/// use policy_core::document::plain_message;
/// assert_eq!(plain_message("invalid type: boolean `true`, expected struct FlagRuleRaw"),
///            "invalid type: boolean `true`, expected a mapping");
/// assert_eq!(plain_message("invalid type: string \"zero\", expected u32"),
///            "invalid type: string \"zero\", expected a whole number (0 to 4294967295)");
/// ```
pub fn plain_message(message: &str) -> String {
    let mut out = message
        .replace("invalid type: map,", "invalid type: mapping,")
        .replace("invalid type: sequence,", "invalid type: list,")
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a mapping");
    if let Some(at) = out.find("expected struct ") {
        let rest = &out[at + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        out.replace_range(
            at..at + "expected struct ".len() + end,
            "expected a mapping",
        );
    }
    for (rust, plain) in [
        ("u8", "a whole number (0 to 255)"),
        ("u16", "a whole number (0 to 65535)"),
        ("u32", "a whole number (0 to 4294967295)"),
        ("u64", "a whole number (0 or more)"),
        ("usize", "a whole number (0 or more)"),
        ("i32", "a whole number"),
        ("i64", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
    ] {
        let needle = format!("expected {rust}");
        if let Some(at) = out.find(&needle) {
            let after = at + needle.len();
            let whole_word = out[after..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            if whole_word {
                out.replace_range(at..after, &format!("expected {plain}"));
            }
        }
    }
    out
}

/// The schema of a value written as a number or a string (`500m`, `8080`, `8000-8100`).
#[cfg(feature = "schema")]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A string.
    String(String),
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for IntOrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"x-kubernetes-int-or-string": true})
    }

    fn inline_schema() -> bool {
        true
    }
}
