//! Shared helpers: loading policies (inline or from `testdata/`), building container views,
//! and reading decisions with precise assertions.

use std::collections::BTreeMap;

use policy_core::capabilities::CapabilitySet;
use policy_core::image::ImageRef;
use policy_core::quantity::{Bytes, Millicores};
use policy_core::view::{
    AppArmor, Capabilities, ContainerKind, HostNamespaces, Layered, PodView, ProcMount, Resources,
    Seccomp, Security, Volume, VolumeType,
};
use policy_core::{ContainerView, Decision, Effect, Policy, PolicyErrors, Verdict, Violation};

/// One mebibyte.
pub const MI: u64 = 1 << 20;

/// The text of a fixture under `policy-core/testdata/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Loads a fixture that must be valid.
pub fn load(name: &str) -> Policy {
    Policy::parse(name, &fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads a fixture that must be invalid, returning its errors.
pub fn load_err(name: &str) -> PolicyErrors {
    match Policy::parse(name, &fixture(name)) {
        Ok(_) => panic!("{name} loaded, but it holds mistakes"),
        Err(e) => e,
    }
}

/// Parses an inline policy that must be valid.
pub fn policy(yaml: &str) -> Policy {
    Policy::parse("inline.yaml", yaml).unwrap_or_else(|e| panic!("{e}\n--- policy ---\n{yaml}"))
}

/// Parses an inline policy that must be invalid.
pub fn policy_err(yaml: &str) -> PolicyErrors {
    match Policy::parse("inline.yaml", yaml) {
        Ok(_) => panic!("policy loaded, but it holds mistakes:\n{yaml}"),
        Err(e) => e,
    }
}

/// The YAML of one `NodePolicy` document named `name` whose `spec` is `spec` (block YAML,
/// written without indentation).
pub fn document(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec, 2)
    )
}

/// A one-document policy named `test` with `rules` (block YAML, unindented) as `spec.rules`.
pub fn rules(rules: &str) -> Policy {
    policy(&document("test", &format!("rules:\n{}", indent(rules, 2))))
}

/// Indents every line of `text` by `by` spaces.
pub fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().fold(String::new(), |mut out, line| {
        if !line.trim().is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
        out
    })
}

/// Pod labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// A container as a Kubernetes manifest would describe it, compliant with every rule of
/// `testdata/all-rules.yaml` and with the restricted Pod Security Standard: every field
/// known, settings declared at pod level where Kubernetes allows it.
// The struct update keeps this compiling while `view.rs` gains fields (they start unknown).
#[allow(clippy::needless_update)]
pub fn compliant() -> ContainerView {
    ContainerView {
        name: "app".into(),
        kind: Some(ContainerKind::Regular),
        image: Some(ImageRef::parse(
            "registry.corp/team/app:1.4.2@sha256:0123abcd",
        )),
        pod: PodView {
            name: "web-0".into(),
            namespace: "prod".into(),
            uid: "2f1c3a".into(),
            labels: labels(&[("app", "web"), ("team", "payments"), ("env", "prod")]),
            labels_unknown: false,
            namespace_assumed: false,
            annotations: BTreeMap::new(),
            os: None,
            automount_token: Some(Some(false)),
            namespace_labels: None,
        },
        host_namespaces: HostNamespaces::NONE,
        host_ports: Some(Vec::new()),
        volumes: Some(vec![Volume {
            name: "config".into(),
            kind: VolumeType::ConfigMap,
            host_path: None,
            driver: None,
        }]),
        mounts: Some(Vec::new()),
        devices: Some(Vec::new()),
        resources: Some(Resources {
            cpu_request: Some(Millicores(250)),
            cpu_limit: Some(Millicores(500)),
            memory_request: Some(Bytes(128 * MI)),
            memory_request_known: true,
            memory_limit: Some(Bytes(256 * MI)),
        }),
        probe_hosts: Some(Vec::new()),
        handlers: Some(Vec::new()),
        security: Security {
            privileged: Some(false),
            allow_privilege_escalation: Some(Some(false)),
            capabilities: Some(Capabilities::Declared {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()],
            }),
            run_as_non_root: Some(Layered {
                pod: Some(true),
                container: None,
            }),
            run_as_user: Some(Layered {
                pod: Some(1000),
                container: None,
            }),
            run_as_group: Some(Layered {
                pod: Some(1000),
                container: None,
            }),
            supplemental_groups: Some(vec![2000]),
            fs_group: Some(Some(2000)),
            read_only_root_filesystem: Some(true),
            seccomp: Some(Layered {
                pod: Some(Seccomp::RuntimeDefault),
                container: None,
            }),
            apparmor: Some(Layered::effective_only(AppArmor::RuntimeDefault)),
            selinux: Some(Layered::default()),
            proc_mount: Some(ProcMount::Default),
            sysctls: Some(Vec::new()),
            host_process: Some(false),
            host_users: Some(true),
            // Fields added later are unknown until these helpers learn them.
            ..Default::default()
        },
        tty: Some(false),
        stdin: Some(false),
        ..ContainerView::default()
    }
}

/// The same container as the node sees it at start (as `nri-plugin` fills it): effective
/// values only, no `runAsNonRoot` declaration, effective capabilities, a seccomp filter of
/// unknown kind, memory request and probes invisible.
pub fn runtime_compliant() -> ContainerView {
    let mut view = compliant();
    view.kind = None;
    view.probe_hosts = None;
    view.handlers = None;
    let sec = &mut view.security;
    sec.capabilities = Some(Capabilities::Effective(CapabilitySet::from_names([
        "NET_BIND_SERVICE",
    ])));
    sec.run_as_non_root = None;
    sec.run_as_user = Some(Layered::effective_only(1000));
    sec.run_as_group = Some(Layered::effective_only(1000));
    sec.seccomp = Some(Layered::effective_only(Seccomp::Confined));
    sec.host_process = Some(false);
    if let Some(res) = &mut view.resources {
        res.memory_request = None;
        res.memory_request_known = false;
    }
    view
}

/// `compliant()` changed by `f`.
pub fn with(f: impl FnOnce(&mut ContainerView)) -> ContainerView {
    let mut view = compliant();
    f(&mut view);
    view
}

/// Evaluates and asserts nothing was found.
#[track_caller]
pub fn assert_clean(policy: &Policy, view: &ContainerView) {
    let d = policy_core::evaluate(policy, view);
    assert!(d.is_clean(), "expected a clean decision, got {d:#?}");
    assert_eq!(d.verdict(), Verdict::Allow);
}

/// Evaluates and asserts exactly one violation, of `rule` with `effect`, whose message is
/// exactly `message`; nothing undecided.
#[track_caller]
pub fn assert_violation(
    policy: &Policy,
    view: &ContainerView,
    rule: &str,
    effect: Effect,
    message: &str,
) -> Decision {
    let d = policy_core::evaluate(policy, view);
    assert!(
        d.undecided.is_empty(),
        "nothing should be undecided: {d:#?}"
    );
    assert_eq!(
        findings(&d),
        vec![(rule, effect, message)],
        "violations: {d:#?}"
    );
    let expected = if effect == Effect::Enforce {
        Verdict::Deny
    } else {
        Verdict::Allow
    };
    assert_eq!(d.verdict(), expected);
    d
}

/// Shorthand for one enforced violation.
#[track_caller]
pub fn assert_denied(policy: &Policy, view: &ContainerView, rule: &str, message: &str) {
    assert_violation(policy, view, rule, Effect::Enforce, message);
}

/// Evaluates and asserts no violation and exactly the undecided `(rule, missing)` pairs, in
/// order; the verdict is `Undecided` when any of them is enforced.
#[track_caller]
pub fn assert_undecided(policy: &Policy, view: &ContainerView, expected: &[(&str, &str)]) {
    let d = policy_core::evaluate(policy, view);
    assert!(
        d.violations.is_empty(),
        "nothing should be violated: {d:#?}"
    );
    assert_eq!(undecided(&d), expected, "undecided: {d:#?}");
    if d.undecided.iter().any(|u| u.effect == Effect::Enforce) {
        assert_eq!(d.verdict(), Verdict::Undecided);
    }
}

/// `(rule, effect, message)` of every violation, in order.
pub fn findings(d: &Decision) -> Vec<(&str, Effect, &str)> {
    d.violations
        .iter()
        .map(|v: &Violation| (v.rule, v.effect, v.message.as_str()))
        .collect()
}

/// `(rule, message)` of every violation, in order.
pub fn messages(d: &Decision) -> Vec<(&str, &str)> {
    d.violations
        .iter()
        .map(|v| (v.rule, v.message.as_str()))
        .collect()
}

/// `(rule, missing field)` of every undecided rule, in order.
pub fn undecided(d: &Decision) -> Vec<(&str, &str)> {
    d.lacking().map(|u| (u.rule, u.missing)).collect()
}

/// `(source, line, path)` of every error, in order.
pub fn error_places(e: &PolicyErrors) -> Vec<(&str, usize, &str)> {
    e.0.iter()
        .map(|e| (e.source_name.as_str(), e.location.line, e.path.as_str()))
        .collect()
}
