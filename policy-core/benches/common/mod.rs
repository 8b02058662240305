//! What the benchmark binaries share: the policies, the pods (read into views by the product's
//! own manifest reader), the regorus set-ups, and the check that both engines reach the same
//! verdict.
//!
//! Each bench binary uses only part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;

use nodeguard_views::manifest::PodManifest;
use policy_core::view::ContainerView;
use policy_core::{Decision, Effect, Policy, PssLevel, evaluate};
use regorus::Engine;
use serde_json::{Value as Json, json};

/// The 12-rule nodeguard policy.
pub const TWELVE_RULES_YAML: &str = include_str!("../policies/twelve-rules.yaml");

/// A pod whose one container passes the 12-rule policy, `restricted` and `baseline`.
pub const COMPLIANT_POD: &str = include_str!("../pods/compliant.json");

/// A pod whose one container breaks many rules of each policy.
pub const VIOLATING_POD: &str = include_str!("../pods/violating.json");

/// A pod, not timed, breaking the rules the violating pod keeps, so that every check of
/// every policy is seen to fire alike in both engines.
pub const AGREEMENT_ONLY_POD: &str = include_str!("../pods/agreement-only.json");

/// 23 Gatekeeper constraints of the gatekeeper-library's pod kinds, one per kind (`gatekeeper`
/// bench; the library's own Rego is read at run time, never stored here).
pub const GATEKEEPER_CONSTRAINTS_YAML: &str =
    include_str!("../policies/gatekeeper-constraints.yaml");

/// A pod whose one container passes every Gatekeeper constraint of the bench.
pub const GATEKEEPER_COMPLIANT_POD: &str = include_str!("../pods/gatekeeper-compliant.json");

/// A pod whose one container breaks every Gatekeeper constraint of the bench.
pub const GATEKEEPER_VIOLATING_POD: &str = include_str!("../pods/gatekeeper-violating.json");

/// The helpers the templates share (a Gatekeeper template's `libs`).
pub const LIB: (&str, &str) = ("lib_k8s.rego", include_str!("../rego/lib_k8s.rego"));

/// The Gatekeeper-style templates of the 12-rule policy's 16 checks: (file name, source).
pub const TWELVE_RULES_TEMPLATES: [(&str, &str); 14] = [
    (
        "allowed_repos.rego",
        include_str!("../rego/allowed_repos.rego"),
    ),
    (
        "disallowed_repos.rego",
        include_str!("../rego/disallowed_repos.rego"),
    ),
    (
        "disallowed_tags.rego",
        include_str!("../rego/disallowed_tags.rego"),
    ),
    ("privileged.rego", include_str!("../rego/privileged.rego")),
    (
        "privilege_escalation.rego",
        include_str!("../rego/privilege_escalation.rego"),
    ),
    (
        "capabilities.rego",
        include_str!("../rego/capabilities.rego"),
    ),
    (
        "container_limits.rego",
        include_str!("../rego/container_limits.rego"),
    ),
    (
        "host_namespaces.rego",
        include_str!("../rego/host_namespaces.rego"),
    ),
    ("host_ports.rego", include_str!("../rego/host_ports.rego")),
    (
        "host_filesystem.rego",
        include_str!("../rego/host_filesystem.rego"),
    ),
    (
        "run_as_non_root.rego",
        include_str!("../rego/run_as_non_root.rego"),
    ),
    (
        "read_only_root_filesystem.rego",
        include_str!("../rego/read_only_root_filesystem.rego"),
    ),
    ("seccomp.rego", include_str!("../rego/seccomp.rego")),
    (
        "required_labels.rego",
        include_str!("../rego/required_labels.rego"),
    ),
];

/// One constraint per template: which template, with which parameters.
pub const TWELVE_RULES_CONSTRAINTS: &str = include_str!("../rego/twelve-rules.constraints.json");

/// The 14 constraints as one query (each template evaluated `with` its parameters).
pub const TWELVE_RULES_QUERY: (&str, &str) = (
    "twelve_rules.rego",
    include_str!("../rego/twelve_rules.rego"),
);

/// The Pod Security Standards controls and the two levels built from them.
pub const PSS: [(&str, &str); 3] = [
    (
        "pss_controls.rego",
        include_str!("../rego/pss_controls.rego"),
    ),
    (
        "pss_baseline.rego",
        include_str!("../rego/pss_baseline.rego"),
    ),
    (
        "pss_restricted.rego",
        include_str!("../rego/pss_restricted.rego"),
    ),
];

/// The 12-rule policy.
pub fn twelve_rules() -> Policy {
    Policy::parse("twelve-rules.yaml", TWELVE_RULES_YAML).expect("the 12-rule policy loads")
}

/// The bench's Gatekeeper constraints, as nodeguard loads them.
pub fn gatekeeper_constraints() -> Policy {
    Policy::parse("gatekeeper-constraints.yaml", GATEKEEPER_CONSTRAINTS_YAML)
        .unwrap_or_else(|e| panic!("the Gatekeeper constraints load: {e}"))
}

/// Four copies of the 12-rule policy under four names: 48 rules in four documents.
pub fn forty_eight_rules() -> Policy {
    let stream: Vec<String> = (1..=4)
        .map(|i| {
            TWELVE_RULES_YAML.replace(
                "name: bench-twelve-rules",
                &format!("name: bench-twelve-rules-{i}"),
            )
        })
        .collect();
    Policy::parse("forty-eight-rules.yaml", &stream.join("---\n"))
        .expect("the 48-rule policy loads")
}

/// The `restricted` preset.
pub fn restricted() -> Policy {
    Policy::pod_security(PssLevel::Restricted, Effect::Enforce)
}

/// The `baseline` preset.
pub fn baseline() -> Policy {
    Policy::pod_security(PssLevel::Baseline, Effect::Enforce)
}

/// Parses one of the pod files.
pub fn pod(text: &str) -> Json {
    serde_json::from_str(text).expect("pod JSON parses")
}

/// The view of a bench pod's one container, as the product reads a Pod manifest
/// (`nodeguard-views`): the bench times evaluation of the views nodeguard itself builds.
pub fn view_from_pod(pod: &Json) -> ContainerView {
    let manifest = PodManifest::try_from(pod).expect("the bench pods are valid Pods");
    let [view]: [ContainerView; 1] = manifest
        .containers
        .try_into()
        .expect("the bench pods have one container");
    view
}

/// A regorus engine holding every template, evaluated the way Gatekeeper evaluates a
/// review: once per constraint, with that constraint's parameters as `input.parameters`.
pub struct PerConstraint {
    engine: Engine,
    /// `data.<template>.violation` and the constraint's parameters, per constraint.
    constraints: Vec<(String, Json)>,
}

impl PerConstraint {
    /// Loads the templates and reads the constraints of the 12-rule policy.
    pub fn twelve_rules() -> PerConstraint {
        let engine = engine_with([&LIB].into_iter().chain(&TWELVE_RULES_TEMPLATES));
        let list: Vec<Json> =
            serde_json::from_str(TWELVE_RULES_CONSTRAINTS).expect("constraints parse");
        let constraints = list
            .into_iter()
            .map(|c| {
                let template = c["template"].as_str().expect("template name");
                (
                    format!("data.{template}.violation"),
                    c["parameters"].clone(),
                )
            })
            .collect();
        PerConstraint {
            engine,
            constraints,
        }
    }

    /// The inputs for one pod, one per constraint (built once, outside the timed loop).
    pub fn inputs(&self, pod: &Json) -> Vec<regorus::Value> {
        self.constraints
            .iter()
            .map(|(_, parameters)| {
                regorus::Value::from(json!({
                    "review": {"kind": {"kind": "Pod", "version": "v1"}, "object": pod},
                    "parameters": parameters,
                }))
            })
            .collect()
    }

    /// Evaluates every constraint on prepared inputs; the violation sets, one per constraint.
    pub fn evaluate(&mut self, inputs: &[regorus::Value]) -> Vec<regorus::Value> {
        self.constraints
            .iter()
            .zip(inputs)
            .map(|((rule, _), input)| {
                self.engine.set_input(input.clone());
                self.engine.eval_rule(rule.clone()).expect("rule evaluates")
            })
            .collect()
    }
}

/// A regorus engine answering one query that yields every violation.
#[derive(Clone)]
pub struct OneQuery {
    /// The engine, policies and data loaded (and, after the first evaluation, analysed).
    pub engine: Engine,
    /// The rule evaluated, `data.<package>.violation`.
    pub rule: String,
}

impl OneQuery {
    /// The 14 constraints of the 12-rule policy as one query, parameters in `data.constraints`.
    pub fn twelve_rules() -> OneQuery {
        let mut engine = engine_with(
            [&LIB]
                .into_iter()
                .chain(&TWELVE_RULES_TEMPLATES)
                .chain([&TWELVE_RULES_QUERY]),
        );
        let list: Vec<Json> =
            serde_json::from_str(TWELVE_RULES_CONSTRAINTS).expect("constraints parse");
        let by_template: serde_json::Map<String, Json> = list
            .into_iter()
            .map(|c| {
                (
                    c["template"].as_str().expect("template name").to_string(),
                    c["parameters"].clone(),
                )
            })
            .collect();
        engine
            .add_data(regorus::Value::from(
                json!({"constraints": Json::Object(by_template)}),
            ))
            .expect("constraints load");
        OneQuery {
            engine,
            rule: "data.nodeguard.bench.twelverules.violation".to_string(),
        }
    }

    /// The Pod Security Standards at `level`.
    pub fn pss(level: PssLevel) -> OneQuery {
        OneQuery {
            engine: engine_with([&LIB].into_iter().chain(&PSS)),
            rule: format!("data.k8spss{}.violation", level.as_str()),
        }
    }

    /// The input for one pod (built once, outside the timed loop).
    pub fn input(pod: &Json) -> regorus::Value {
        regorus::Value::from(json!({
            "review": {"kind": {"kind": "Pod", "version": "v1"}, "object": pod},
        }))
    }

    /// Evaluates the query; the violation set.
    pub fn evaluate(&mut self, input: &regorus::Value) -> regorus::Value {
        self.engine.set_input(input.clone());
        self.engine
            .eval_rule(self.rule.clone())
            .expect("rule evaluates")
    }
}

fn engine_with<'a>(modules: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Engine {
    let mut engine = Engine::new();
    // The templates use the syntax of Gatekeeper's library (`violation[{"msg": msg}] { ... }`).
    engine.set_rego_v0(true);
    for (name, source) in modules {
        engine
            .add_policy((*name).to_string(), (*source).to_string())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    engine
}

/// The rule ids nodeguard reports; panics if any check was undecided (the bench views are
/// complete, so none should be).
pub fn nodeguard_rules(decision: &Decision) -> BTreeSet<String> {
    assert!(
        decision.undecided.is_empty(),
        "undecided checks: {:?}",
        decision.undecided
    );
    decision
        .violations
        .iter()
        .map(|v| v.rule.to_string())
        .collect()
}

/// The rule ids (`details.rule`) of regorus violation sets.
pub fn rego_rules<'a>(sets: impl IntoIterator<Item = &'a regorus::Value>) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for set in sets {
        if *set == regorus::Value::Undefined {
            continue;
        }
        for v in set.as_set().expect("violation is a set").iter() {
            let rule = v["details"]["rule"].as_string().expect("details.rule");
            rules.insert(rule.to_string());
        }
    }
    rules
}

/// One policy and its Rego twin, judged on every pod: both engines must report the same set
/// of broken rules, none for the compliant pod, some for the others. Returns, per violating
/// pod, the rule ids it breaks.
pub fn assert_agree(
    name: &str,
    policy: &Policy,
    rego: &mut dyn FnMut(&Json) -> BTreeSet<String>,
) -> Vec<(&'static str, BTreeSet<String>)> {
    let mut broken = Vec::new();
    for (which, text) in [
        ("compliant", COMPLIANT_POD),
        ("violating", VIOLATING_POD),
        ("agreement-only", AGREEMENT_ONLY_POD),
    ] {
        let pod = pod(text);
        let decision = evaluate(policy, &view_from_pod(&pod));
        let ours = nodeguard_rules(&decision);
        let theirs = rego(&pod);
        assert_eq!(
            ours, theirs,
            "{name}, {which} pod: nodeguard and regorus disagree"
        );
        if which == "compliant" {
            assert!(ours.is_empty(), "{name}: the compliant pod breaks {ours:?}");
            assert!(!decision.is_denied());
        } else {
            assert!(decision.is_denied(), "{name}: the {which} pod is allowed");
            broken.push((which, ours));
        }
    }
    broken
}

/// Rego compiled to regorus' bytecode VM (RVM), the VM reused across reviews: per review,
/// `set_input` and run each entry point.
pub struct Rvm {
    vm: regorus::rvm::vm::RegoVM,
    /// Entry points (`data.<package>.violation`), run in order.
    entry_points: Vec<String>,
}

impl Rvm {
    /// Compiles `entry_points` of the policies and data loaded in `engine`.
    fn compile(engine: &mut Engine, entry_points: Vec<String>) -> Rvm {
        let compiled = engine
            .compile_with_entrypoint(&regorus::Rc::from(entry_points[0].as_str()))
            .expect("policy compiles");
        let names: Vec<&str> = entry_points.iter().map(String::as_str).collect();
        let program =
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &names)
                .expect("policy compiles to RVM bytecode");
        let mut vm = regorus::rvm::vm::RegoVM::new();
        vm.load_program(program);
        vm.set_data(engine.get_data()).expect("data loads");
        Rvm { vm, entry_points }
    }

    /// The query of `one` (the RVM has no `with`, so not the 12-rule one-query form).
    pub fn one_query(one: &mut OneQuery) -> Rvm {
        let rule = one.rule.clone();
        Rvm::compile(&mut one.engine, vec![rule])
    }

    /// Every constraint of `per` as an entry point of one program.
    pub fn per_constraint(per: &mut PerConstraint) -> Rvm {
        let rules = per.constraints.iter().map(|(r, _)| r.clone()).collect();
        Rvm::compile(&mut per.engine, rules)
    }

    /// Runs each entry point on its input (one per entry point, as prepared by
    /// [`PerConstraint::inputs`] or [`OneQuery::input`]); the violation sets.
    pub fn evaluate(&mut self, inputs: &[regorus::Value]) -> Vec<regorus::Value> {
        self.entry_points
            .iter()
            .zip(inputs)
            .map(|(entry, input)| {
                self.vm.set_input(input.clone());
                self.vm
                    .execute_entry_point_by_name(entry)
                    .expect("program runs")
            })
            .collect()
    }
}
