//! Check of the policy loader: arbitrary text to [`Policy::parse`] and
//! [`yaml::parse_documents`].
//!
//! Inputs are bytes; invalid UTF-8 is replaced (lossily) so that every input reaches the YAML
//! parser, as a policy file read with `read_to_string` would after its own check.

use std::collections::BTreeMap;

use policy_core::capabilities::CapabilitySet;
use policy_core::image::ImageRef;
use policy_core::view::{
    Capabilities, ContainerKind, ContainerView, HostNamespaces, Mount, MountSource, PodView,
    Security,
};
use policy_core::yaml::{self, Location};
use policy_core::{Policy, Verdict, evaluate};

const SOURCE: &str = "fuzz.yaml";

fn valid(location: Location) -> bool {
    location.line >= 1 && location.column >= 1
}

/// Views a fuzzed policy that loads is evaluated against: one that knows nothing and one that
/// knows a lot, most of it bad.
fn views() -> [ContainerView; 2] {
    let bad = ContainerView {
        name: "app".to_string(),
        kind: Some(ContainerKind::Regular),
        image: Some(ImageRef::parse("docker.io/library/nginx:latest")),
        pod: PodView {
            name: "web".to_string(),
            namespace: "default".to_string(),
            uid: "0b7f".to_string(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            annotations: BTreeMap::new(),
            os: None,
        },
        host_namespaces: HostNamespaces {
            pid: Some(true),
            ipc: Some(false),
            network: Some(true),
        },
        host_ports: Some(vec![80, 9050]),
        volumes: Some(Vec::new()),
        mounts: Some(vec![Mount {
            destination: "/host".to_string(),
            source: MountSource::HostPath("/var/../etc".to_string()),
            read_only: false,
        }]),
        devices: Some(Vec::new()),
        resources: None,
        probe_hosts: Some(vec!["169.254.169.254".to_string()]),
        security: Security {
            privileged: Some(true),
            allow_privilege_escalation: Some(None),
            capabilities: Some(Capabilities::Effective(CapabilitySet::from_names([
                "CAP_SYS_ADMIN",
                "NET_RAW",
            ]))),
            sysctls: Some(vec![("kernel.msgmax".to_string(), "1".to_string())]),
            host_users: Some(true),
            ..Security::default()
        },
    };
    [ContainerView::default(), bad]
}

/// `policy_yaml`: never panics; a YAML error and every policy error has a line and column of
/// at least 1; policy errors are never empty and come in reading order; a policy that loads
/// evaluates any view, and its decisions name only its own checks.
pub fn policy_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match yaml::parse_documents(&text) {
        Ok(documents) => {
            for document in &documents {
                assert!(valid(document.locations.start()));
            }
        }
        Err(err) => assert!(valid(err.location), "YAML error at {}: {err}", err.location),
    }
    match Policy::parse(SOURCE, &text) {
        Ok(policy) => {
            let ids: Vec<&str> = policy.check_ids().collect();
            for view in views() {
                let decision = evaluate(&policy, &view);
                for rule in decision
                    .violations
                    .iter()
                    .map(|v| v.rule)
                    .chain(decision.undecided.iter().map(|u| u.rule))
                {
                    assert!(ids.contains(&rule), "{rule} is not a check of the policy");
                }
                assert_eq!(
                    decision.verdict() == Verdict::Deny,
                    decision.enforced().next().is_some()
                );
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "Err without errors");
            for error in &errors.0 {
                assert_eq!(error.source_name, SOURCE);
                assert!(valid(error.location), "error without position: {error}");
            }
            assert!(
                errors.0.is_sorted_by_key(|e| e.location),
                "errors out of reading order"
            );
            let _ = errors.to_string();
        }
    }
}
