//! Evaluation speed on Gatekeeper constraints: nodeguard judging 23 typical constraints of the
//! gatekeeper-library's pod kinds (`policies/gatekeeper-constraints.yaml`, one per kind), and
//! regorus evaluating the library's own Rego for the same constraints, side by side on the same
//! container.
//!
//! nodeguard compiles the constraints into checks when it loads them and judges a
//! `ContainerView` built from the pod (outside the timed loop, with the same helper as the other
//! benches). The regorus side needs a gatekeeper-library checkout, named by the environment
//! variable `GATEKEEPER_LIBRARY` (its `library/` folder, or the checkout's root): the bench reads
//! each kind's `template.yaml` from it at run time (nothing of the library is stored in this
//! repository), takes the template's Rego and its `libs` (`spec.targets[0].rego`/`libs`, or the
//! `engine: Rego` entry of `spec.targets[0].code`), and loads them into a regorus engine of their
//! own, one per template, as Gatekeeper compiles each template apart. Each review is then
//! evaluated as Gatekeeper evaluates it: once per constraint, `data.<package>.violation` with
//! `input = {"review": <AdmissionRequest of the pod>, "parameters": <the constraint's>}`, the
//! input built outside the timed loop. The `regorus-rvm` rows run the same Rego compiled to
//! regorus' bytecode VM. Without `GATEKEEPER_LIBRARY` the regorus side is skipped (a line says
//! so) and nodeguard is timed alone.
//!
//! Before timing, both engines judge each pod and must find the same constraints violated (a
//! constraint is violated when its `violation` set is not empty); a disagreement is printed
//! constraint by constraint, with both engines' messages, and the bench panics.
//!
//! Run with `GATEKEEPER_LIBRARY=<checkout>/library cargo bench -p policy-core --bench gatekeeper`;
//! see `docs/performance.md`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use policy_core::{Decision, Policy, evaluate};
use regorus::Engine;
use serde_json::{Value as Json, json};

const PODS: [(&str, &str); 2] = [
    ("compliant", common::GATEKEEPER_COMPLIANT_POD),
    ("violating", common::GATEKEEPER_VIOLATING_POD),
];

/// Where the library is read from.
const LIBRARY_VAR: &str = "GATEKEEPER_LIBRARY";

/// The folders of the library holding the pod kinds' templates.
const TEMPLATE_DIRS: [&str; 2] = ["general", "pod-security-policy"];

/// One constraint of the fixture.
struct Constraint {
    /// `Kind/name`, as nodeguard names a constraint in its violations.
    id: String,
    kind: String,
    /// `spec.parameters`, if any.
    parameters: Option<Json>,
}

fn constraints() -> Vec<Constraint> {
    policy_core::yaml::parse_documents(common::GATEKEEPER_CONSTRAINTS_YAML)
        .expect("the constraints fixture is YAML")
        .into_iter()
        .map(|doc| {
            let kind = doc.value["kind"].as_str().expect("kind").to_string();
            let name = doc.value["metadata"]["name"].as_str().expect("name");
            Constraint {
                id: format!("{kind}/{name}"),
                kind,
                parameters: doc.value["spec"].get("parameters").cloned(),
            }
        })
        .collect()
}

/// The constraints as nodeguard loads them; every one must be enforced on the node.
fn policy(constraints: &[Constraint]) -> Policy {
    let policy = common::gatekeeper_constraints();
    assert!(
        policy.notes().is_empty(),
        "every bench constraint must be enforced on the node: {:?}",
        policy.notes()
    );
    let names: Vec<&str> = policy.names().collect();
    let ids: Vec<&str> = constraints.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(names, ids, "one policy document per constraint");
    policy
}

/// The constraints nodeguard finds violated, with their messages; panics if any check was
/// undecided (the bench views are complete).
fn nodeguard_verdicts(decision: &Decision) -> BTreeMap<String, Vec<String>> {
    assert!(
        decision.undecided.is_empty(),
        "undecided checks: {:?}",
        decision.undecided
    );
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &decision.violations {
        found
            .entry(v.policy.to_string())
            .or_default()
            .push(v.message.clone());
    }
    found
}

/// A template's Rego as Gatekeeper runs it: the policy, its libraries, the rule queried.
struct TemplateRego {
    /// The template file, for messages.
    path: PathBuf,
    rego: String,
    libs: Vec<String>,
    /// `data.<package>.violation`.
    rule: String,
}

/// Reads the Rego of one `template.yaml`: `spec.targets[0].rego` and `.libs`, or the source of
/// the `engine: Rego` entry of `spec.targets[0].code`.
/// A template that cannot be read is an error only if a constraint needs its kind: `Err` says
/// why.
fn read_template(path: &Path) -> Result<(String, TemplateRego), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let docs = policy_core::yaml::parse_documents(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let doc = &docs.first().expect("a template document").value;
    let kind = doc
        .pointer("/spec/crd/spec/names/kind")
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("{}: no spec.crd.spec.names.kind", path.display()));
    let target = &doc["spec"]["targets"][0];
    let source = if target.get("rego").is_some() {
        target
    } else {
        target["code"]
            .as_array()
            .and_then(|code| code.iter().find(|c| c["engine"] == "Rego"))
            .map(|c| &c["source"])
            .unwrap_or_else(|| panic!("{}: no Rego in spec.targets[0]", path.display()))
    };
    let rego = source["rego"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: the Rego is not a string", path.display()))
        .to_string();
    let libs = source
        .get("libs")
        .and_then(Json::as_array)
        .map(|libs| {
            libs.iter()
                .map(|l| l.as_str().expect("a lib is a string").to_string())
                .collect()
        })
        .unwrap_or_default();
    let package = rego
        .lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .unwrap_or_else(|| panic!("{}: no package line", path.display()))
        .trim();
    let rule = format!("data.{package}.violation");
    Ok((
        kind.to_string(),
        TemplateRego {
            path: path.to_path_buf(),
            rego,
            libs,
            rule,
        },
    ))
}

/// The library's checkout, from `GATEKEEPER_LIBRARY`: `Ok(None)` when unset, `Err` (why) when
/// it names no library.
fn library_dir() -> Result<Option<PathBuf>, String> {
    let Some(dir) = std::env::var_os(LIBRARY_VAR) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    // The checkout's root will do as well as its `library/` folder.
    let dir = if dir.join("library").join(TEMPLATE_DIRS[0]).is_dir() {
        dir.join("library")
    } else {
        dir
    };
    if TEMPLATE_DIRS.iter().all(|d| dir.join(d).is_dir()) {
        Ok(Some(dir))
    } else {
        Err(format!(
            "{LIBRARY_VAR}={} holds no {} folders; it must name a gatekeeper-library checkout's library/ folder",
            dir.display(),
            TEMPLATE_DIRS.join(" and ")
        ))
    }
}

/// The Rego of every kind of the fixture, read from the library's templates.
fn templates(dir: &Path, constraints: &[Constraint]) -> BTreeMap<String, TemplateRego> {
    let mut by_kind = BTreeMap::new();
    let mut unreadable = Vec::new();
    for folder in TEMPLATE_DIRS {
        let entries = std::fs::read_dir(dir.join(folder))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(folder).display()));
        for entry in entries {
            let path = entry.expect("directory entry").path().join("template.yaml");
            if path.is_file() {
                match read_template(&path) {
                    Ok((kind, template)) => {
                        by_kind.insert(kind, template);
                    }
                    Err(why) => unreadable.push(why),
                }
            }
        }
    }
    let wanted: BTreeSet<&str> = constraints.iter().map(|c| c.kind.as_str()).collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|k| !by_kind.contains_key(**k))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{}: no template for {missing:?}; templates not read: {unreadable:#?}",
        dir.display()
    );
    by_kind.retain(|k, _| wanted.contains(k.as_str()));
    by_kind
}

/// One engine per template, its libraries and Rego loaded (Rego v0, as the library is written).
fn engine_for(template: &TemplateRego) -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(true);
    for (i, lib) in template.libs.iter().enumerate() {
        engine
            .add_policy(format!("lib{i}.rego"), lib.clone())
            .unwrap_or_else(|e| panic!("{} lib {i}: {e}", template.path.display()));
    }
    engine
        .add_policy("template.rego".to_string(), template.rego.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", template.path.display()));
    engine
}

/// The library's Rego for every constraint, evaluated as Gatekeeper evaluates a review: once per
/// constraint, on its template's engine.
struct Gatekeeper {
    /// Per constraint: its id, its template's engine, the rule queried.
    constraints: Vec<(String, Engine, String)>,
    /// Per constraint, its parameters (for the inputs).
    parameters: Vec<Option<Json>>,
}

impl Gatekeeper {
    fn new(dir: &Path, constraints: &[Constraint]) -> Gatekeeper {
        let templates = templates(dir, constraints);
        Gatekeeper {
            constraints: constraints
                .iter()
                .map(|c| {
                    let t = &templates[&c.kind];
                    (c.id.clone(), engine_for(t), t.rule.clone())
                })
                .collect(),
            parameters: constraints.iter().map(|c| c.parameters.clone()).collect(),
        }
    }

    /// The inputs for one pod, one per constraint (built once, outside the timed loop): the
    /// review as Gatekeeper's admission target hands it over for a Pod's creation.
    fn inputs(&self, pod: &Json) -> Vec<regorus::Value> {
        self.parameters
            .iter()
            .map(|parameters| {
                let mut input = json!({
                    "review": {
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "name": pod["metadata"]["name"],
                        "namespace": pod["metadata"]["namespace"],
                        "operation": "CREATE",
                        "object": pod,
                    },
                });
                if let Some(p) = parameters {
                    input["parameters"] = p.clone();
                }
                regorus::Value::from(input)
            })
            .collect()
    }

    /// Evaluates every constraint on prepared inputs; the violation sets, one per constraint.
    fn evaluate(&mut self, inputs: &[regorus::Value]) -> Vec<regorus::Value> {
        self.constraints
            .iter_mut()
            .zip(inputs)
            .map(|((id, engine, rule), input)| {
                engine.set_input(input.clone());
                engine
                    .eval_rule(rule.clone())
                    .unwrap_or_else(|e| panic!("{id}: {rule}: {e}"))
            })
            .collect()
    }

    fn ids(&self) -> impl Iterator<Item = &str> {
        self.constraints.iter().map(|(id, _, _)| id.as_str())
    }
}

/// The same Rego compiled to regorus' bytecode VM, one program and VM per constraint.
struct GatekeeperRvm {
    vms: Vec<(String, regorus::rvm::vm::RegoVM, String)>,
}

impl GatekeeperRvm {
    fn new(gk: &mut Gatekeeper) -> GatekeeperRvm {
        let vms = gk
            .constraints
            .iter_mut()
            .map(|(id, engine, rule)| {
                let compiled = engine
                    .compile_with_entrypoint(&regorus::Rc::from(rule.as_str()))
                    .unwrap_or_else(|e| panic!("{id}: {rule} compiles: {e}"));
                let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
                    &compiled,
                    &[rule.as_str()],
                )
                .unwrap_or_else(|e| panic!("{id}: {rule} compiles to RVM bytecode: {e}"));
                let mut vm = regorus::rvm::vm::RegoVM::new();
                vm.load_program(program);
                vm.set_data(engine.get_data()).expect("data loads");
                (id.clone(), vm, rule.clone())
            })
            .collect();
        GatekeeperRvm { vms }
    }

    fn evaluate(&mut self, inputs: &[regorus::Value]) -> Vec<regorus::Value> {
        self.vms
            .iter_mut()
            .zip(inputs)
            .map(|((id, vm, rule), input)| {
                vm.set_input(input.clone());
                vm.execute_entry_point_by_name(rule)
                    .unwrap_or_else(|e| panic!("{id}: {rule} runs: {e}"))
            })
            .collect()
    }
}

/// The constraints whose violation set is not empty, with their messages.
fn rego_verdicts<'a>(
    ids: impl Iterator<Item = &'a str>,
    sets: &[regorus::Value],
) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for (id, set) in ids.zip(sets) {
        if *set == regorus::Value::Undefined {
            continue;
        }
        let set = set
            .as_set()
            .unwrap_or_else(|_| panic!("{id}: violation is not a set: {set}"));
        if set.is_empty() {
            continue;
        }
        let messages = set
            .iter()
            .map(|v| {
                v["msg"]
                    .as_string()
                    .map_or_else(|_| v.to_string(), |m| m.to_string())
            })
            .collect();
        found.insert(id.to_string(), messages);
    }
    found
}

/// Both engines must find the same constraints violated. On a disagreement, prints every
/// constraint on which they differ with both engines' messages, and panics.
fn assert_agree(
    engine: &str,
    constraints: &[Constraint],
    pod_name: &str,
    ours: &BTreeMap<String, Vec<String>>,
    theirs: &BTreeMap<String, Vec<String>>,
) {
    if ours.keys().eq(theirs.keys()) {
        return;
    }
    eprintln!("MISMATCH on the {pod_name} pod: nodeguard and {engine} disagree");
    for c in constraints {
        let (a, b) = (ours.get(&c.id), theirs.get(&c.id));
        if a.is_some() != b.is_some() {
            eprintln!("  {}:", c.id);
            eprintln!("    nodeguard: {}", verdict(a));
            eprintln!("    {engine}: {}", verdict(b));
        }
    }
    panic!("gatekeeper constraints, {pod_name} pod: nodeguard and {engine} disagree");
}

fn verdict(messages: Option<&Vec<String>>) -> String {
    match messages {
        None => "no violation".to_string(),
        Some(m) => format!("violated: {}", m.join(" | ")),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

fn main() {
    let mut c = config().configure_from_args();
    let constraints = constraints();
    let policy = policy(&constraints);
    println!(
        "{} Gatekeeper constraints, {} checks: {}",
        constraints.len(),
        policy.check_count(),
        constraints
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut gatekeeper = match library_dir() {
        Ok(Some(dir)) => {
            println!("regorus side: the library's Rego from {}", dir.display());
            Some(Gatekeeper::new(&dir, &constraints))
        }
        Ok(None) => {
            println!(
                "regorus side SKIPPED: {LIBRARY_VAR} is not set (set it to a gatekeeper-library \
                 checkout's library/ folder to time the library's own Rego); timing nodeguard alone"
            );
            None
        }
        Err(why) => panic!("{why}"),
    };
    let mut rvm = gatekeeper.as_mut().map(GatekeeperRvm::new);

    // Agreement, before any timing: the same constraints violated, none on the compliant pod,
    // every one on the violating pod.
    for (pod_name, text) in PODS {
        let pod = common::pod(text);
        let ours = nodeguard_verdicts(&evaluate(&policy, &common::view_from_pod(&pod)));
        if let (Some(gk), Some(rvm)) = (&mut gatekeeper, &mut rvm) {
            let inputs = gk.inputs(&pod);
            let sets = gk.evaluate(&inputs);
            let interpreted = rego_verdicts(gk.ids(), &sets);
            assert_agree("regorus", &constraints, pod_name, &ours, &interpreted);
            let sets = rvm.evaluate(&inputs);
            let compiled = rego_verdicts(gk.ids(), &sets);
            assert_agree("regorus RVM", &constraints, pod_name, &ours, &compiled);
        }
        let expected = if pod_name == "compliant" {
            0
        } else {
            constraints.len()
        };
        assert_eq!(
            ours.len(),
            expected,
            "the {pod_name} pod breaks {:?}",
            ours.keys()
        );
        println!(
            "  {pod_name} pod breaks {} of {}",
            ours.len(),
            constraints.len()
        );
    }
    if gatekeeper.is_some() {
        println!("nodeguard and regorus (interpreter and RVM) agree on both pods");
    }

    let mut g = c.benchmark_group("gatekeeper-constraints");
    for (pod_name, text) in PODS {
        let pod = common::pod(text);
        let view = common::view_from_pod(&pod);
        g.bench_function(BenchmarkId::new("nodeguard", pod_name), |b| {
            b.iter(|| evaluate(black_box(&policy), black_box(&view)));
        });
        if let (Some(gk), Some(rvm)) = (&mut gatekeeper, &mut rvm) {
            let inputs = gk.inputs(&pod);
            g.bench_function(BenchmarkId::new("regorus", pod_name), |b| {
                b.iter(|| black_box(gk.evaluate(black_box(&inputs))));
            });
            g.bench_function(BenchmarkId::new("regorus-rvm", pod_name), |b| {
                b.iter(|| black_box(rvm.evaluate(black_box(&inputs))));
            });
        }
    }
    g.finish();
    c.final_summary();
}
