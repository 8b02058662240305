//! The JSON Schema of a `NodePolicy`'s `spec` (feature `schema`), for the CRD that lets the
//! API server reject a malformed document before nodeguard sees it.
//!
//! Generated from the very types the loader reads the document into ([`crate::document`]);
//! the parts the loader reads as raw values (a rule's `remediate`, each rule by name) are
//! spelled out here, and a test keeps [`Rules`] in step with [`crate::policy::RULE_NAMES`].
//! nodeguard validates every document itself anyway: the schema is a first line only.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::decision::{Effect, Remediation};
use crate::document::{
    CapabilitiesRaw, DevicesRaw, FlagRuleRaw, HostNamespacesRaw, HostPathRaw, HostPortsRaw,
    ImagesRaw, PodSecurityRaw, ProfileRuleRaw, RequiredLabelsRaw, ResourcesRaw, ScopeRaw,
    SeLinuxRaw, SysctlsRaw, UsersRaw, VolumeTypesRaw,
};

/// A rule with its `remediate` setting.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WithRemediate<T> {
    /// The rule's own settings.
    #[serde(flatten)]
    pub rule: T,
    /// What to do about running containers that break the rule (`stop` needs `enforce`).
    #[serde(default)]
    pub remediate: Option<Remediation>,
}

/// `spec.rules`: every rule, each optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Rules {
    pub images: Option<WithRemediate<ImagesRaw>>,
    pub privileged: Option<WithRemediate<FlagRuleRaw>>,
    pub privilege_escalation: Option<WithRemediate<FlagRuleRaw>>,
    pub capabilities: Option<WithRemediate<CapabilitiesRaw>>,
    pub resources: Option<WithRemediate<ResourcesRaw>>,
    pub host_namespaces: Option<WithRemediate<HostNamespacesRaw>>,
    pub host_ports: Option<WithRemediate<HostPortsRaw>>,
    pub host_path: Option<WithRemediate<HostPathRaw>>,
    pub run_as_non_root: Option<WithRemediate<FlagRuleRaw>>,
    pub users: Option<WithRemediate<UsersRaw>>,
    pub read_only_root_filesystem: Option<WithRemediate<FlagRuleRaw>>,
    pub seccomp: Option<WithRemediate<ProfileRuleRaw>>,
    pub app_armor: Option<WithRemediate<ProfileRuleRaw>>,
    pub se_linux: Option<WithRemediate<SeLinuxRaw>>,
    pub proc_mount: Option<WithRemediate<FlagRuleRaw>>,
    pub sysctls: Option<WithRemediate<SysctlsRaw>>,
    pub volume_types: Option<WithRemediate<VolumeTypesRaw>>,
    pub required_labels: Option<WithRemediate<RequiredLabelsRaw>>,
    pub devices: Option<WithRemediate<DevicesRaw>>,
}

/// `spec` of a `NodePolicy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePolicySpec {
    /// Default effect of every rule that does not set its own (default `enforce`).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Which containers the policy applies to (default: all).
    #[serde(default)]
    pub scope: Option<ScopeRaw>,
    /// A Pod Security Standards preset.
    #[serde(default)]
    pub pod_security: Option<WithRemediate<PodSecurityRaw>>,
    /// Rules by name.
    #[serde(default)]
    pub rules: Option<Rules>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_are_those_the_loader_knows() {
        let schema = schemars::schema_for!(Rules);
        let mut names: Vec<&str> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = crate::policy::RULE_NAMES.to_vec();
        names.sort_unstable();
        known.sort_unstable();
        assert_eq!(names, known);
    }
}
