//! Property tests of the evaluator and the loader: evaluation never panics on any view,
//! findings do not depend on the order of rules or documents, adding rules only adds
//! findings (so deny wins), and parsing never panics on any text.

use policy_core::capabilities::{self, CapabilitySet};
use policy_core::image::ImageRef;
use policy_core::quantity::{Bytes, Millicores};
use policy_core::view::{
    AppArmor, Capabilities, ContainerKind, Device, HostNamespaces, Layered, Mount, MountSource,
    PodView, ProcMount, Resources, SeLinux, Seccomp, Security, Volume, VolumeType,
};
use policy_core::{ContainerView, Decision, Effect, Policy, PssLevel, Verdict, evaluate};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::util::{fixture, load};

// ---------------------------------------------------------------------------------------
// Arbitrary container views: every field known or unknown, values drawn mostly from pools
// that policies mention (so rules fire) and sometimes from arbitrary text.

fn text(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(pool).prop_map(str::to_string),
        1 => "\\PC{0,16}",
    ]
    .boxed()
}

fn layered<T: Clone + std::fmt::Debug + 'static>(
    s: impl Strategy<Value = T> + Clone + 'static,
) -> BoxedStrategy<Layered<T>> {
    (option::of(s.clone()), option::of(s))
        .prop_map(|(pod, container)| Layered { pod, container })
        .boxed()
}

const NAMES: &[&str] = &["app", "app-debug", "app-sidecar", "sidecar", "web", ""];
const NAMESPACES: &[&str] = &["prod", "prod-eu", "prod-sandbox", "kube-system", "dev", ""];
const IMAGES: &[&str] = &[
    "nginx",
    "registry.corp/team/app:1.0",
    "registry.corp/team/app@sha256:0123",
    "registry.corp/app:debug",
    "registry.k8s.io/pause:3.9",
    "ghcr.io/corp/tool:latest",
    "quay.io/x/miner:2",
    "",
    "a:b@c:d",
];
const LABEL_KEYS: &[&str] = &["app", "tier", "team", "env", "legacy"];
const LABEL_VALUES: &[&str] = &["web", "front", "edge", "prod", "staging", "dev", "", "a"];
const PATHS: &[&str] = &[
    "/",
    "/var/log",
    "/var/log/pods",
    "/var/logs",
    "/var/log/../../etc",
    "/etc/corp/app.yaml",
    "/data",
    "",
    "relative/path",
];
const CAPS: &[&str] = &[
    "ALL",
    "all",
    "NET_BIND_SERVICE",
    "CHOWN",
    "NET_RAW",
    "SYS_ADMIN",
    "cap_net_admin",
    "FUTURE_CAP",
    "",
];
const SYSCTLS: &[&str] = &[
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_forward",
    "kernel.shm_rmid_forced",
    "kernel.msgmax",
    "net/ipv4/tcp_syncookies",
];
const PROFILES: &[&str] = &["profiles/audit.json", "k8s-web", "other", ""];

fn arb_kind() -> impl Strategy<Value = ContainerKind> {
    select(vec![
        ContainerKind::Regular,
        ContainerKind::Init,
        ContainerKind::Ephemeral,
    ])
}

fn arb_volume_type() -> impl Strategy<Value = VolumeType> {
    let mut types: Vec<VolumeType> = VolumeType::NAMED.iter().map(|(t, _)| *t).collect();
    types.push(VolumeType::Other);
    select(types)
}

fn arb_volume() -> impl Strategy<Value = Volume> {
    (text(NAMES), arb_volume_type(), option::of(text(PATHS))).prop_map(|(name, kind, host_path)| {
        Volume {
            name,
            kind,
            host_path,
            driver: None,
        }
    })
}

fn arb_mount() -> impl Strategy<Value = Mount> {
    let source = prop_oneof![
        text(PATHS).prop_map(MountSource::HostPath),
        (arb_volume_type(), text(NAMES))
            .prop_map(|(kind, name)| MountSource::KubeletVolume { kind, name }),
        Just(MountSource::Runtime),
    ];
    (text(PATHS), source, any::<bool>()).prop_map(|(destination, source, read_only)| Mount {
        destination,
        source,
        read_only,
    })
}

fn arb_quantity() -> impl Strategy<Value = Option<u64>> {
    option::of(prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        0u64..4_000_000_000
    ])
}

fn arb_resources() -> impl Strategy<Value = Resources> {
    (
        arb_quantity(),
        arb_quantity(),
        arb_quantity(),
        any::<bool>(),
        arb_quantity(),
    )
        .prop_map(
            |(cpu_request, cpu_limit, memory_request, memory_request_known, memory_limit)| {
                Resources {
                    cpu_request: cpu_request.map(Millicores),
                    cpu_limit: cpu_limit.map(Millicores),
                    memory_request: memory_request.map(Bytes),
                    memory_request_known,
                    memory_limit: memory_limit.map(Bytes),
                }
            },
        )
}

fn arb_capabilities() -> impl Strategy<Value = Capabilities> {
    prop_oneof![
        (vec(text(CAPS), 0..4), vec(text(CAPS), 0..4))
            .prop_map(|(add, drop)| Capabilities::Declared { add, drop }),
        vec(text(CAPS), 0..6)
            .prop_map(|names| Capabilities::Effective(CapabilitySet::from_names(names))),
        Just(Capabilities::Effective(
            capabilities::runtime_default().clone()
        )),
        Just(Capabilities::Effective(CapabilitySet::all())),
    ]
}

fn arb_id() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![
        Just(0u32),
        Just(1000),
        Just(5000),
        Just(u32::MAX),
        any::<u32>()
    ]
}

fn arb_seccomp() -> impl Strategy<Value = Seccomp> + Clone {
    prop_oneof![
        Just(Seccomp::RuntimeDefault),
        text(PROFILES).prop_map(Seccomp::Localhost),
        Just(Seccomp::Unconfined),
        Just(Seccomp::Confined),
    ]
}

fn arb_apparmor() -> impl Strategy<Value = AppArmor> + Clone {
    prop_oneof![
        Just(AppArmor::RuntimeDefault),
        text(PROFILES).prop_map(AppArmor::Localhost),
        Just(AppArmor::Unconfined),
    ]
}

fn arb_selinux() -> impl Strategy<Value = SeLinux> + Clone {
    let part = |pool| option::of(text(pool));
    (
        part(&["system_u", ""]),
        part(&["system_r", ""]),
        part(&["container_t", "spc_t", ""]),
        part(&["s0:c1,c2", "s0"]),
    )
        .prop_map(|(user, role, kind, level)| SeLinux {
            user,
            role,
            kind,
            level,
        })
}

#[allow(clippy::needless_update)]
fn arb_security() -> impl Strategy<Value = Security> {
    let first = (
        option::of(any::<bool>()),
        option::of(option::of(any::<bool>())),
        option::of(arb_capabilities()),
        option::of(layered(any::<bool>())),
        option::of(layered(arb_id())),
        option::of(layered(arb_id())),
        option::of(vec(arb_id(), 0..3)),
        option::of(any::<bool>()),
    );
    let second = (
        option::of(layered(arb_seccomp())),
        option::of(layered(arb_apparmor())),
        option::of(layered(arb_selinux())),
        option::of(select(vec![ProcMount::Default, ProcMount::Unmasked])),
        option::of(vec((text(SYSCTLS), text(&["1", ""])), 0..3)),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    );
    (first, second).prop_map(
        |(
            (privileged, escalation, caps, non_root, user, group, supplemental, read_only),
            (seccomp, apparmor, selinux, proc_mount, sysctls, host_process, host_users),
        )| {
            Security {
                privileged,
                allow_privilege_escalation: escalation,
                capabilities: caps,
                run_as_non_root: non_root,
                run_as_user: user,
                run_as_group: group,
                supplemental_groups: supplemental,
                read_only_root_filesystem: read_only,
                seccomp,
                apparmor,
                selinux,
                proc_mount,
                sysctls,
                host_process,
                host_users,
                // Fields added later stay unknown.
                ..Security::default()
            }
        },
    )
}

fn arb_pod() -> impl Strategy<Value = PodView> {
    (
        text(NAMESPACES),
        btree_map(text(LABEL_KEYS), text(LABEL_VALUES), 0..5),
        btree_map(
            text(&["container.apparmor.security.beta.kubernetes.io/app", "note"]),
            text(&["unconfined", "runtime/default", "localhost/x", ""]),
            0..2,
        ),
        option::of(text(&["linux", "windows"])),
        any::<bool>(),
    )
        .prop_map(
            |(namespace, labels, annotations, os, labels_unknown)| PodView {
                name: "pod".into(),
                namespace,
                labels: if labels_unknown {
                    Default::default()
                } else {
                    labels
                },
                labels_unknown,
                annotations,
                os,
                ..PodView::default()
            },
        )
}

/// Any container view, each field known or not.
#[allow(clippy::needless_update)]
pub fn arb_view() -> impl Strategy<Value = ContainerView> {
    let outside = (
        text(NAMES),
        option::of(arb_kind()),
        option::of(text(IMAGES).prop_map(|i| ImageRef::parse(&i))),
        arb_pod(),
        (
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        ),
        option::of(vec(
            prop_oneof![Just(0u16), Just(80), Just(9050), any::<u16>()],
            0..4,
        )),
    );
    let inside = (
        option::of(vec(arb_volume(), 0..4)),
        option::of(vec(arb_mount(), 0..4)),
        option::of(vec(
            text(&["/dev/nvidia0", "/dev/fuse", "/dev/sda"]).prop_map(|path| Device { path }),
            0..3,
        )),
        option::of(arb_resources()),
        option::of(vec(text(&["", "127.0.0.1", "db.svc", "::1"]), 0..3)),
        arb_security(),
    );
    (outside, inside).prop_map(
        |(
            (name, kind, image, pod, (pid, ipc, network), host_ports),
            (volumes, mounts, devices, resources, probe_hosts, security),
        )| {
            ContainerView {
                name,
                kind,
                image,
                pod,
                host_namespaces: HostNamespaces { pid, ipc, network },
                host_ports,
                volumes,
                mounts,
                devices,
                resources,
                probe_hosts,
                security,
                ..ContainerView::default()
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Generated policies: documents with a scope, maybe a Pod Security preset, and rules, each
// rule with an effect. Every generated policy is valid.

/// One rule per rule name, `EFFECT` standing for its effect.
const RULES: [&str; 19] = [
    "images: {allowed: ['^registry\\.corp/', '^ghcr\\.io/'], denied: [':debug$'], requireDigest: true, forbiddenTags: [latest], exempt: ['^registry\\.k8s\\.io/'], effect: EFFECT}",
    "privileged: {effect: EFFECT}",
    "privilegeEscalation: {effect: EFFECT}",
    "capabilities: {allowedAdd: [NET_BIND_SERVICE], requiredDrop: [ALL], effect: EFFECT}",
    "resources: {requireRequests: [cpu, memory], maxLimits: {cpu: 2, memory: 1Gi}, maxLimitRequestRatio: {cpu: 2, memory: 1.5}, effect: EFFECT}",
    "hostNamespaces: {allowed: [ipc], effect: EFFECT}",
    "hostPorts: {allowed: [8080, '9000-9100'], effect: EFFECT}",
    "hostPath: {allowed: [{pathPrefix: /var/log}, {pathPrefix: /etc/corp, readOnly: true}], effect: EFFECT}",
    "runAsNonRoot: {effect: EFFECT}",
    "users: {runAsUser: [{min: 1000, max: 1999}], runAsGroup: [{min: 1, max: 65535}], supplementalGroups: [{min: 1, max: 65535}], effect: EFFECT}",
    "readOnlyRootFilesystem: {effect: EFFECT}",
    "seccomp: {allowed: [RuntimeDefault, Localhost], allowedLocalhostProfiles: ['profiles/*'], effect: EFFECT}",
    "appArmor: {effect: EFFECT}",
    "seLinux: {allowedTypes: [container_t], allowedUsers: [], effect: EFFECT}",
    "procMount: {effect: EFFECT}",
    "sysctls: {allowed: ['net.ipv4.*'], forbidden: [net.ipv4.ip_forward], effect: EFFECT}",
    "volumeTypes: {allowed: [configMap, secret, emptyDir], effect: EFFECT}",
    "requiredLabels: {labels: [{key: team}, {key: env, allowedRegex: '^(prod|staging)$'}], effect: EFFECT}",
    "devices: {allowed: ['/dev/nvidia*'], effect: EFFECT}",
];

const SCOPES: [&str; 7] = [
    "",
    "scope: {namespaces: ['prod*']}\n",
    "scope: {excludedNamespaces: [kube-system, 'prod-*']}\n",
    "scope: {podSelector: {matchLabels: {app: web}, matchExpressions: [{key: env, operator: NotIn, values: [dev]}]}}\n",
    "scope: {containerNames: ['app*'], excludedContainerNames: [app-debug]}\n",
    "scope: {exemptImages: ['^registry\\.k8s\\.io/']}\n",
    "scope: {namespaces: ['*'], podSelector: {matchExpressions: [{key: team, operator: Exists}]}}\n",
];

const PRESETS: [&str; 4] = [
    "",
    "podSecurity: {level: baseline, effect: EFFECT}\n",
    "podSecurity: {level: restricted, effect: EFFECT}\n",
    "podSecurity: {level: restricted, effect: EFFECT, exemptions: [{controls: [seccomp], namespaces: ['prod*']}, {controls: [capabilities]}]}\n",
];

const EFFECTS: [&str; 4] = ["enforce", "audit", "warn", "disabled"];

#[derive(Debug, Clone)]
struct Doc {
    /// Stable name, kept when documents are reordered.
    id: usize,
    scope: usize,
    preset: Option<(usize, usize)>,
    /// `(rule index, effect index)`, rule indexes distinct.
    rules: Vec<(usize, usize)>,
}

impl Doc {
    fn render(&self) -> String {
        let mut spec = SCOPES[self.scope].to_string();
        if let Some((preset, effect)) = self.preset {
            spec.push_str(&PRESETS[preset].replace("EFFECT", EFFECTS[effect]));
        }
        spec.push_str("rules:\n");
        for (rule, effect) in &self.rules {
            spec.push_str("  ");
            spec.push_str(&RULES[*rule].replace("EFFECT", EFFECTS[*effect]));
            spec.push('\n');
        }
        crate::util::document(&format!("doc-{}", self.id), &spec)
    }
}

fn render(docs: &[Doc]) -> String {
    docs.iter()
        .map(Doc::render)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn arb_doc() -> impl Strategy<Value = Doc> {
    (
        0..SCOPES.len(),
        option::of((1..PRESETS.len(), 0..EFFECTS.len())),
        proptest::sample::subsequence((0..RULES.len()).collect::<Vec<_>>(), 1..6),
        vec(0..EFFECTS.len(), 6),
    )
        .prop_map(|(scope, preset, rules, effects)| Doc {
            id: 0,
            scope,
            preset,
            rules: rules.into_iter().zip(effects).collect(),
        })
}

fn arb_docs() -> impl Strategy<Value = Vec<Doc>> {
    vec(arb_doc(), 1..4).prop_map(|mut docs| {
        for (i, d) in docs.iter_mut().enumerate() {
            d.id = i;
        }
        docs
    })
}

fn parse(docs: &[Doc]) -> Policy {
    let text = render(docs);
    Policy::parse("generated.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A deterministic Fisher-Yates shuffle.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from((seed >> 33) % (i as u64 + 1)).unwrap();
        items.swap(i, j);
    }
}

type Finding = (String, &'static str, Effect, String);

/// Every finding as a sorted multiset.
fn findings(d: &Decision) -> (Vec<Finding>, Vec<Finding>) {
    let mut violations: Vec<Finding> = d
        .violations
        .iter()
        .map(|v| (v.policy.to_string(), v.rule, v.effect, v.message.clone()))
        .collect();
    let mut undecided: Vec<Finding> = d
        .undecided
        .iter()
        .map(|u| {
            (
                u.policy.to_string(),
                u.rule,
                u.effect,
                u.missing.to_string(),
            )
        })
        .collect();
    violations.sort();
    undecided.sort();
    (violations, undecided)
}

/// Whether sorted multiset `small` is contained in sorted multiset `big`.
fn contained<T: Ord>(small: &[T], big: &[T]) -> bool {
    let mut big = big.iter().peekable();
    'outer: for item in small {
        for candidate in big.by_ref() {
            match candidate.cmp(item) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => continue 'outer,
                std::cmp::Ordering::Greater => return false,
            }
        }
        return false;
    }
    true
}

/// Invariants of any decision of `policy`.
fn check_decision(policy: &Policy, d: &Decision) -> Result<(), TestCaseError> {
    let ids: Vec<&str> = policy.check_ids().collect();
    let names: Vec<&str> = policy.names().collect();
    for v in &d.violations {
        prop_assert!(
            ids.contains(&v.rule),
            "{} is no check of the policy",
            v.rule
        );
        prop_assert!(names.contains(&&*v.policy));
        prop_assert_ne!(v.effect, Effect::Disabled);
        prop_assert!(!v.message.is_empty());
    }
    for u in &d.undecided {
        prop_assert!(
            ids.contains(&u.rule),
            "{} is no check of the policy",
            u.rule
        );
        prop_assert_ne!(u.effect, Effect::Disabled);
    }
    let enforced = |e: Effect| e == Effect::Enforce;
    let expected = if d.violations.iter().any(|v| enforced(v.effect)) {
        Verdict::Deny
    } else if d.undecided.iter().any(|u| enforced(u.effect)) {
        Verdict::Undecided
    } else {
        Verdict::Allow
    };
    prop_assert_eq!(d.verdict(), expected);
    Ok(())
}

proptest! {
    #[test]
    fn evaluation_never_panics_on_any_view(view in arb_view()) {
        for policy in [
            load("all-rules.yaml"),
            load("scoped.yaml"),
            Policy::pod_security(PssLevel::Baseline, Effect::Enforce),
            Policy::pod_security(PssLevel::Restricted, Effect::Audit),
        ] {
            let d = evaluate(&policy, &view);
            check_decision(&policy, &d)?;
            // Evaluation is a pure function of policy and view.
            prop_assert_eq!(&evaluate(&policy, &view), &d);
        }
    }

    #[test]
    fn every_gatekeeper_kind_judges_any_view_naming_its_constraint(view in arb_view()) {
        let policy = load("gatekeeper/every-kind.yaml");
        let d = evaluate(&policy, &view);
        check_decision(&policy, &d)?;
        prop_assert_eq!(&evaluate(&policy, &view), &d);
        // A constraint's findings carry its kind as the rule and `Kind/name` as the policy.
        for (policy_name, rule) in d
            .violations
            .iter()
            .map(|v| (&*v.policy, v.rule))
            .chain(d.undecided.iter().map(|u| (&*u.policy, u.rule)))
        {
            prop_assert_eq!(policy_name, format!("{rule}/c-{}", rule.to_lowercase()));
        }
        // Azure's excludedContainers spares its container from the allowed-images kind.
        let mut excluded = view.clone();
        excluded.name = "istio-proxy".into();
        let spared = evaluate(&policy, &excluded);
        prop_assert!(spared.violations.iter().all(|v| v.rule != "K8sAzureV2ContainerAllowedImages"));
    }

    #[test]
    fn generated_policies_load_and_evaluate_any_view(docs in arb_docs(), view in arb_view()) {
        let policy = parse(&docs);
        let d = evaluate(&policy, &view);
        check_decision(&policy, &d)?;
    }

    #[test]
    fn per_check_results_add_up_to_the_decision(docs in arb_docs(), view in arb_view()) {
        let policy = parse(&docs);
        let results = policy_core::results(&policy, &view);
        prop_assert_eq!(Decision::from_results(&results), evaluate(&policy, &view));
        // One result per applicable check, each holding only its own findings.
        let applied: Vec<_> = policy_core::applicable_checks(&policy, &view).collect();
        prop_assert_eq!(results.iter().map(|r| r.check).collect::<Vec<_>>(), applied);
        for r in &results {
            prop_assert!(r.findings.violations.iter().all(|v| v.rule == r.check.rule));
            prop_assert!(r.findings.undecided.iter().all(|u| u.rule == r.check.rule));
        }
    }

    #[test]
    fn findings_do_not_depend_on_the_order_of_rules_or_documents(
        docs in arb_docs(),
        view in arb_view(),
        seed in any::<u64>(),
    ) {
        let policy = parse(&docs);
        let mut reordered = docs.clone();
        shuffle(&mut reordered, seed);
        for (i, doc) in reordered.iter_mut().enumerate() {
            shuffle(&mut doc.rules, seed.rotate_left(u32::try_from(i).unwrap()));
        }
        let other = parse(&reordered);
        prop_assert_eq!(findings(&evaluate(&policy, &view)), findings(&evaluate(&other, &view)));
        let mut a: Vec<&str> = policy.check_ids().collect();
        let mut b: Vec<&str> = other.check_ids().collect();
        a.sort_unstable();
        b.sort_unstable();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn removing_rules_never_adds_findings_and_adding_them_never_undoes_a_deny(
        docs in arb_docs(),
        view in arb_view(),
        keep in vec(any::<bool>(), 32),
    ) {
        // `smaller` drops some rules (and documents left with nothing to check).
        let mut flags = keep.iter().cycle();
        let mut smaller: Vec<Doc> = docs
            .iter()
            .cloned()
            .filter_map(|mut d| {
                d.rules.retain(|_| *flags.next().unwrap());
                (!d.rules.is_empty()).then_some(d)
            })
            .collect();
        if smaller.is_empty() {
            // Everything dropped: keep the first rule rather than reject the case (rejects
            // abort a long run).
            let mut first = docs[0].clone();
            first.rules.truncate(1);
            smaller.push(first);
        }
        let big = evaluate(&parse(&docs), &view);
        let small = evaluate(&parse(&smaller), &view);
        let (big_v, big_u) = findings(&big);
        let (small_v, small_u) = findings(&small);
        prop_assert!(contained(&small_v, &big_v), "{small_v:#?}\nnot in\n{big_v:#?}");
        prop_assert!(contained(&small_u, &big_u), "{small_u:#?}\nnot in\n{big_u:#?}");
        if small.verdict() == Verdict::Deny {
            prop_assert_eq!(big.verdict(), Verdict::Deny);
        }
        if big.verdict() == Verdict::Allow {
            prop_assert_eq!(small.verdict(), Verdict::Allow);
        }
    }

    #[test]
    fn a_violated_enforced_rule_always_denies(
        docs in arb_docs(),
        view in arb_view(),
        rule in 0..RULES.len(),
    ) {
        // Alone, unscoped and enforced: does the rule find a violation?
        let extra = Doc { id: 99, scope: 0, preset: None, rules: vec![(rule, 0)] };
        let alone = evaluate(&parse(std::slice::from_ref(&extra)), &view);
        let mut with_extra = docs.clone();
        with_extra.push(extra);
        let d = evaluate(&parse(&with_extra), &view);
        if alone.is_denied() {
            prop_assert_eq!(d.verdict(), Verdict::Deny);
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        check_parse(&text)?;
    }

    #[test]
    fn parse_never_panics_on_yaml_like_text(
        text in "[-:\\[\\]{}&*!|>'\" \na-zA-Z0-9#?,.^$()\\\\]{0,300}",
    ) {
        check_parse(&text)?;
    }

    #[test]
    fn parse_never_panics_on_mutated_valid_policies(
        base in select(vec!["all-rules.yaml", "scoped.yaml", "errors/many-mistakes.yaml"]),
        mutations in vec(arb_mutation(), 1..4),
        view in arb_view(),
    ) {
        let mut text: Vec<char> = fixture(base).chars().collect();
        for m in &mutations {
            m.apply(&mut text);
        }
        let text: String = text.into_iter().collect();
        if let Some(policy) = check_parse(&text)? {
            let d = evaluate(&policy, &view);
            check_decision(&policy, &d)?;
        }
    }
}

/// Parses `text`; on failure, every error must be well formed.
fn check_parse(text: &str) -> Result<Option<Policy>, TestCaseError> {
    match Policy::parse("fuzz.yaml", text) {
        Ok(policy) => Ok(Some(policy)),
        Err(errors) => {
            prop_assert!(!errors.0.is_empty());
            let lines = yaml_line_count(text);
            for e in &errors.0 {
                prop_assert_eq!(&e.source_name, "fuzz.yaml");
                prop_assert!(e.location.line >= 1 && e.location.column >= 1, "{e}");
                prop_assert!(e.location.line <= lines + 1, "{e} beyond {lines} lines");
                prop_assert!(!e.message.is_empty());
            }
            prop_assert!(!errors.to_string().is_empty());
            Ok(None)
        }
    }
}

/// The lines of `text` as YAML counts them: a line break is CR LF, LF or a lone CR
/// (YAML 1.2, production `b-break`), so a lone CR starts a line that `str::lines` does not see.
fn yaml_line_count(text: &str) -> usize {
    let breaks = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\r'))
        .count();
    let unterminated = !text.is_empty() && !text.ends_with(['\n', '\r']);
    (breaks + usize::from(unterminated)).max(1)
}

/// A random edit of a policy text.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Replace { at: usize, with: char },
    SwapLines { a: usize, b: usize },
    DuplicateLine { at: usize },
    Truncate { at: usize },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (
            at,
            prop_oneof![
                Just(": ".to_string()),
                Just("\n- ".to_string()),
                Just("{".to_string()),
                Just("'".to_string()),
                Just("  ".to_string()),
                Just("\n---\n".to_string()),
                Just("&a ".to_string()),
                Just("*a".to_string()),
                "\\PC{0,8}",
            ]
        )
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        (at, any::<char>()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        (at, any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        at.prop_map(|at| Mutation::DuplicateLine { at }),
        at.prop_map(|at| Mutation::Truncate { at }),
    ]
}

impl Mutation {
    fn apply(&self, text: &mut Vec<char>) {
        let n = text.len().max(1);
        match self {
            Mutation::Delete { at, len } => {
                let start = at % n;
                let end = (start + len).min(text.len());
                if start < end {
                    text.drain(start..end);
                }
            }
            Mutation::Insert { at, text: new } => {
                let at = at % (text.len() + 1);
                text.splice(at..at, new.chars());
            }
            Mutation::Replace { at, with } => {
                if !text.is_empty() {
                    text[at % n] = *with;
                }
            }
            Mutation::SwapLines { a, b } => {
                let joined: String = text.iter().collect();
                let mut lines: Vec<&str> = joined.lines().collect();
                if !lines.is_empty() {
                    let len = lines.len();
                    lines.swap(a % len, b % len);
                }
                *text = lines.join("\n").chars().collect();
            }
            Mutation::DuplicateLine { at } => {
                let joined: String = text.iter().collect();
                let mut lines: Vec<&str> = joined.lines().collect();
                if !lines.is_empty() {
                    let i = at % lines.len();
                    lines.insert(i, lines[i]);
                }
                *text = lines.join("\n").chars().collect();
            }
            Mutation::Truncate { at } => text.truncate(at % n),
        }
    }
}

#[test]
fn generated_documents_cover_every_rule_name() {
    let names: Vec<&str> = RULES.iter().map(|r| r.split(':').next().unwrap()).collect();
    assert_eq!(names, policy_core::policy::RULE_NAMES);
    // And every generated shape loads: one document with all rules and each preset.
    for preset in 1..PRESETS.len() {
        for scope in 0..SCOPES.len() {
            let doc = Doc {
                id: 0,
                scope,
                preset: Some((preset, 0)),
                rules: (0..RULES.len()).map(|r| (r, r % EFFECTS.len())).collect(),
            };
            let _ = parse(&[doc]);
        }
    }
}
