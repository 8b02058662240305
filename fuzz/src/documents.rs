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
        image_names: vec![ImageRef::parse("evil.example/nginx:1")],
        image_volumes: vec![
            policy_core::view::ImageVolume {
                destination: "/data".to_string(),
                digest: format!("sha256:{}", "a".repeat(64)),
                names: Some(vec![ImageRef::parse("evil.example/data:1")]),
            },
            policy_core::view::ImageVolume {
                destination: "/unread".to_string(),
                digest: format!("sha256:{}", "b".repeat(64)),
                names: None,
            },
        ],
        pod: PodView {
            name: "web".to_string(),
            namespace: "default".to_string(),
            uid: "0b7f".to_string(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            labels_unknown: false,
            namespace_assumed: false,
            annotations: BTreeMap::new(),
            os: None,
            automount_token: Some(None),
            namespace_labels: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
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
        handlers: Some(vec![policy_core::view::Handler {
            point: "livenessProbe",
            actions: vec!["httpGet"],
            host: Some("169.254.169.254".to_string()),
        }]),
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
        tty: Some(true),
        stdin: Some(true),
        source: policy_core::view::ViewSource::Runtime,
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

/// Nodes and content bytes of a value, counted as the YAML reader charges them: every value
/// and every mapping key is a node; strings and keys bring their bytes.
fn size(value: &serde_json::Value) -> (usize, usize) {
    use serde_json::Value;
    match value {
        Value::String(s) => (1, s.len()),
        Value::Array(items) => items
            .iter()
            .map(size)
            .fold((1, 0), |(n, b), (n2, b2)| (n + n2, b + b2)),
        Value::Object(map) => map.iter().fold((1, 0), |(n, b), (key, v)| {
            let (n2, b2) = size(v);
            (n + 1 + n2, b + key.len() + b2)
        }),
        _ => (1, 0),
    }
}

/// The limits a `yaml_limits` input is read with, chosen by its first byte: small enough that
/// short inputs reach them; the high bit reads a top-level `items` list item by item.
pub fn fuzz_limits(control: u8) -> yaml::Limits {
    let nodes = [4, 64, 1_000, 100_000][usize::from(control & 3)];
    let bytes = [512, 4_096, 65_536, 1 << 20][usize::from((control >> 2) & 3)];
    let total = match (control >> 4) & 3 {
        0 => bytes,
        1 => bytes * 2,
        2 => bytes * 8,
        _ => usize::MAX,
    };
    yaml::Limits {
        max_depth: if control & 0x40 == 0 {
            8
        } else {
            yaml::MAX_DEPTH
        },
        max_nodes: nodes,
        max_document_bytes: bytes,
        max_total_bytes: total,
        split_items: control & 0x80 != 0,
    }
}

/// `yaml_limits`: `[control][text]`. The text is read document by document with the limits
/// the control byte chooses ([`fuzz_limits`]). Never panics; every error has a position; and
/// the **bounds hold**: each document read has at most `max_nodes` nodes, its nodes at
/// [`yaml::NODE_BYTES`] each plus its strings' bytes stay within `max_document_bytes`, all of
/// them within `max_total_bytes`, and what the reader says it spent is never less than what
/// the documents hold — however aliases nest. After an error on one document the reader goes
/// on only when that error was the document's own.
pub fn yaml_limits(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let limits = fuzz_limits(control);
    let text = String::from_utf8_lossy(rest);
    let mut stream = yaml::Documents::new(&text, limits);
    let mut total = 0usize;
    while let Some(result) = stream.next() {
        match result {
            Ok(document) => {
                assert!(valid(document.locations.start()));
                let (nodes, bytes) = size(&document.value);
                let charged = nodes * yaml::NODE_BYTES + bytes;
                assert!(nodes <= limits.max_nodes, "{nodes} nodes over {limits:?}");
                assert!(
                    charged <= limits.max_document_bytes,
                    "{charged} bytes over {limits:?}"
                );
                total += charged;
                assert!(total <= limits.max_total_bytes, "{total} over {limits:?}");
                assert!(stream.expanded_bytes() >= total, "spent less than held");
            }
            Err(err) => assert!(valid(err.location), "YAML error at {}: {err}", err.location),
        }
    }
    // The stream is fused: once done, it stays done.
    assert!(stream.next().is_none());
}
