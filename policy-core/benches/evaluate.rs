//! Evaluation speed: nodeguard's policy core and the same checks written as Rego, evaluated
//! by regorus, side by side on the same container.
//!
//! Three policies, each judged on a compliant pod and on a pod breaking many rules (both
//! single-container; `pods/*.json`): the 12-rule policy (`policies/twelve-rules.yaml`, 16
//! checks) against 14 Gatekeeper-style templates (`rego/`); the `restricted` preset against
//! a Rego PSS restricted; the `baseline` preset against a Rego PSS baseline. nodeguard judges
//! a `ContainerView` built from the pod; regorus gets the pod as `input.review.object`.
//! Neither the view nor regorus' input `Value` is built inside the timed loop.
//!
//! Before measuring, every pair is run on three pods (the two timed ones and
//! `pods/agreement-only.json`) and must report the same broken rules; between them the pods
//! break every check of every policy.
//!
//! regorus is used as an admission controller would use it: engine prepared once (policies
//! loaded, analysed by a first evaluation), then per review `set_input` + `eval_rule` on the
//! same engine. For the 12-rule policy that is done once per constraint
//! (`regorus-per-constraint`, as Gatekeeper hands each constraint its parameters) and as one
//! query whose rules bind each constraint's parameters `with` (`regorus-one-query`). The
//! `regorus-rvm*` rows run the same Rego compiled to regorus' bytecode VM, the VM reused.
//! The `regorus-usage` group times the two ways to share one prepared policy between
//! threads: cloning the engine per review and `CompiledPolicy::eval_with_input`.
//!
//! Run with `cargo bench -p policy-core --bench evaluate`; see `docs/performance.md`.

mod common;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use policy_core::{Policy, PssLevel, evaluate};

use common::{COMPLIANT_POD, OneQuery, PerConstraint, Rvm, VIOLATING_POD};

const PODS: [(&str, &str); 2] = [("compliant", COMPLIANT_POD), ("violating", VIOLATING_POD)];

/// Checks, once, that each nodeguard policy and its Rego twins agree on every pod, and prints
/// what is compared.
fn agreement(_: &mut Criterion) {
    let twelve = common::twelve_rules();
    println!(
        "12-rule policy: {} checks: {}",
        twelve.check_count(),
        twelve.check_ids().collect::<Vec<_>>().join(", ")
    );
    let mut per_constraint = PerConstraint::twelve_rules();
    let broken = common::assert_agree("12 rules, per constraint", &twelve, &mut |pod| {
        let inputs = per_constraint.inputs(pod);
        common::rego_rules(&per_constraint.evaluate(&inputs))
    });
    show(&broken);
    let mut one_query = OneQuery::twelve_rules();
    common::assert_agree("12 rules, one query", &twelve, &mut |pod| {
        common::rego_rules([&one_query.evaluate(&OneQuery::input(pod))])
    });
    let mut rvm = Rvm::per_constraint(&mut PerConstraint::twelve_rules());
    common::assert_agree("12 rules, RVM", &twelve, &mut |pod| {
        common::rego_rules(&rvm.evaluate(&per_constraint.inputs(pod)))
    });
    for (level, policy) in [
        (PssLevel::Restricted, common::restricted()),
        (PssLevel::Baseline, common::baseline()),
    ] {
        println!(
            "{} preset: {} checks: {}",
            level.as_str(),
            policy.check_count(),
            policy.check_ids().collect::<Vec<_>>().join(", ")
        );
        let mut rego = OneQuery::pss(level);
        let broken = common::assert_agree(level.as_str(), &policy, &mut |pod| {
            common::rego_rules([&rego.evaluate(&OneQuery::input(pod))])
        });
        show(&broken);
        let mut rvm = Rvm::one_query(&mut OneQuery::pss(level));
        common::assert_agree(level.as_str(), &policy, &mut |pod| {
            common::rego_rules(&rvm.evaluate(&[OneQuery::input(pod)]))
        });
    }
    println!("nodeguard and regorus (interpreter and RVM) agree on every policy and pod");
}

fn show(broken: &[(&str, BTreeSet<String>)]) {
    for (pod, ids) in broken {
        println!(
            "  {pod} pod breaks {}: {}",
            ids.len(),
            ids.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

/// Prepares a regorus evaluation of one pod: returns the closure to time.
type Prepare<'a> = &'a mut dyn FnMut(&serde_json::Value) -> Box<dyn FnMut()>;

/// nodeguard and regorus on one policy, both pods.
fn side_by_side(c: &mut Criterion, group: &str, policy: &Policy, rego: &mut [(&str, Prepare<'_>)]) {
    let mut g = c.benchmark_group(group);
    for (pod_name, text) in PODS {
        let pod = common::pod(text);
        let view = common::view_from_pod(&pod);
        g.bench_function(BenchmarkId::new("nodeguard", pod_name), |b| {
            b.iter(|| evaluate(black_box(policy), black_box(&view)));
        });
        for (name, make) in rego.iter_mut() {
            let mut run = make(&pod);
            g.bench_function(BenchmarkId::new(*name, pod_name), |b| b.iter(&mut run));
        }
    }
    g.finish();
}

fn twelve_rules(c: &mut Criterion) {
    let policy = common::twelve_rules();
    side_by_side(
        c,
        "twelve-rules",
        &policy,
        &mut [
            ("regorus-per-constraint", &mut |pod| {
                let mut rego = PerConstraint::twelve_rules();
                let inputs = rego.inputs(pod);
                Box::new(move || {
                    black_box(rego.evaluate(black_box(&inputs)));
                })
            }),
            ("regorus-one-query", &mut |pod| {
                let mut rego = OneQuery::twelve_rules();
                let input = OneQuery::input(pod);
                Box::new(move || {
                    black_box(rego.evaluate(black_box(&input)));
                })
            }),
            ("regorus-rvm-per-constraint", &mut |pod| {
                let mut per = PerConstraint::twelve_rules();
                let inputs = per.inputs(pod);
                let mut rvm = Rvm::per_constraint(&mut per);
                Box::new(move || {
                    black_box(rvm.evaluate(black_box(&inputs)));
                })
            }),
        ],
    );
}

fn pss(c: &mut Criterion, level: PssLevel) {
    let policy = Policy::pod_security(level, policy_core::Effect::Enforce);
    side_by_side(
        c,
        level.as_str(),
        &policy,
        &mut [
            ("regorus", &mut |pod| {
                let mut rego = OneQuery::pss(level);
                let input = OneQuery::input(pod);
                Box::new(move || {
                    black_box(rego.evaluate(black_box(&input)));
                })
            }),
            ("regorus-rvm", &mut |pod| {
                let mut rvm = Rvm::one_query(&mut OneQuery::pss(level));
                let inputs = [OneQuery::input(pod)];
                Box::new(move || {
                    black_box(rvm.evaluate(black_box(&inputs)));
                })
            }),
        ],
    );
}

fn restricted(c: &mut Criterion) {
    pss(c, PssLevel::Restricted);
}

fn baseline(c: &mut Criterion) {
    pss(c, PssLevel::Baseline);
}

/// Other ways to call regorus per review, on the 12-rule one-query policy and compliant pod.
fn regorus_usage(c: &mut Criterion) {
    let pod = common::pod(COMPLIANT_POD);
    let input = OneQuery::input(&pod);
    let mut prepared = OneQuery::twelve_rules();
    // The first evaluation analyses the modules; clones then start prepared.
    let expected = prepared.evaluate(&input);
    let compiled = prepared
        .engine
        .compile_with_entrypoint(&regorus::Rc::from(prepared.rule.as_str()))
        .expect("policy compiles");
    assert_eq!(
        compiled.eval_with_input(input.clone()).expect("evaluates"),
        expected
    );
    let mut g = c.benchmark_group("regorus-usage");
    g.bench_function(
        BenchmarkId::new("clone-engine-per-eval", "compliant"),
        |b| {
            b.iter(|| {
                let mut engine = prepared.clone();
                engine.evaluate(black_box(&input))
            });
        },
    );
    g.bench_function(
        BenchmarkId::new("compiled-policy-per-eval", "compliant"),
        |b| {
            b.iter(|| compiled.eval_with_input(black_box(input.clone())));
        },
    );
    g.finish();
}

/// nodeguard on 12 rules (one document) and 48 rules (four documents).
fn policy_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy-size");
    for (name, policy) in [
        ("12-rules", common::twelve_rules()),
        ("48-rules", common::forty_eight_rules()),
    ] {
        for (pod_name, text) in PODS {
            let view = common::view_from_pod(&common::pod(text));
            g.bench_function(BenchmarkId::new(name, pod_name), |b| {
                b.iter(|| evaluate(black_box(&policy), black_box(&view)));
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

fn main() {
    let mut c = config().configure_from_args();
    agreement(&mut c);
    twelve_rules(&mut c);
    restricted(&mut c);
    baseline(&mut c);
    regorus_usage(&mut c);
    policy_size(&mut c);
    c.final_summary();
}
