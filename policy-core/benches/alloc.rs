//! Heap allocations per evaluation: nodeguard on the 12-rule policy (one document) and on 48
//! rules (the same twelve in four documents), on the presets, on the `gatekeeper` bench's 23
//! constraints, and regorus for comparison.
//!
//! Counting uses `dhat`'s heap profiler in testing mode as the global allocator, so no unsafe
//! code is written here (the workspace forbids it). Every count is the difference of
//! `dhat::HeapStats::total_blocks` around many evaluations, divided by their number, after one
//! warm-up evaluation (the regex engine fills a per-thread cache on first use). A
//! reallocation counts as an allocation. Prints a table; fails only if a pair of engines
//! disagrees.
//!
//! Run with `cargo bench -p policy-core --bench alloc`; see `docs/performance.md`.

mod common;

use std::hint::black_box;

use policy_core::capabilities::CapabilitySet;
use policy_core::view::{Capabilities, ContainerView};
use policy_core::{Policy, PssLevel, evaluate};

use common::{COMPLIANT_POD, OneQuery, PerConstraint, Rvm, VIOLATING_POD};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Evaluations per measurement.
const RUNS: u64 = 200;

/// Allocations and bytes allocated per call of `f`.
fn per_call(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let before = dhat::HeapStats::get();
    for _ in 0..RUNS {
        f();
    }
    let after = dhat::HeapStats::get();
    #[allow(clippy::cast_precision_loss)]
    let per = |a: u64, b: u64| (a - b) as f64 / RUNS as f64;
    (
        per(after.total_blocks, before.total_blocks),
        per(after.total_bytes, before.total_bytes),
    )
}

/// The compliant container as the node sees it at `CreateContainer`: the effective
/// capability set (empty: it drops ALL) instead of the manifest's add/drop lists.
fn runtime_shaped(view: &ContainerView) -> ContainerView {
    let mut view = view.clone();
    view.security.capabilities = Some(Capabilities::Effective(CapabilitySet::default()));
    view
}

fn row(case: &str, checks: Option<usize>, violations: usize, (allocs, bytes): (f64, f64)) {
    let checks = checks.map_or("-".to_string(), |n| n.to_string());
    println!("{case:<58} {checks:>6} {violations:>10} {allocs:>12.1} {bytes:>11.0}");
}

fn nodeguard(case: &str, policy: &Policy, view: &ContainerView) -> f64 {
    let violations = evaluate(policy, view).violations.len();
    let counts = per_call(|| {
        black_box(evaluate(black_box(policy), black_box(view)));
    });
    row(case, Some(policy.check_count()), violations, counts);
    counts.0
}

fn main() {
    let twelve = common::twelve_rules();
    let forty_eight = common::forty_eight_rules();
    let restricted = common::restricted();
    let baseline = common::baseline();
    let compliant = common::view_from_pod(&common::pod(COMPLIANT_POD));
    let violating = common::view_from_pod(&common::pod(VIOLATING_POD));
    let runtime = runtime_shaped(&compliant);
    let gatekeeper = common::gatekeeper_constraints();
    let gk_compliant = common::view_from_pod(&common::pod(common::GATEKEEPER_COMPLIANT_POD));
    let gk_violating = common::view_from_pod(&common::pod(common::GATEKEEPER_VIOLATING_POD));
    for policy in [&twelve, &forty_eight, &restricted, &baseline] {
        assert!(evaluate(policy, &runtime).is_clean());
    }
    let pod = common::pod(COMPLIANT_POD);
    let bad_pod = common::pod(VIOLATING_POD);
    let mut rego_twelve = OneQuery::twelve_rules();
    let mut rego_twelve2 = OneQuery::twelve_rules();
    let mut rego_restricted = OneQuery::pss(PssLevel::Restricted);
    common::assert_agree("12 rules", &twelve, &mut |p| {
        common::rego_rules([&rego_twelve.evaluate(&OneQuery::input(p))])
    });
    let (input, bad_input) = (OneQuery::input(&pod), OneQuery::input(&bad_pod));
    let mut per_constraint = PerConstraint::twelve_rules();
    let inputs = per_constraint.inputs(&pod);
    let mut rvm_twelve = Rvm::per_constraint(&mut PerConstraint::twelve_rules());
    let mut rvm_restricted = Rvm::one_query(&mut OneQuery::pss(PssLevel::Restricted));

    let _profiler = dhat::Profiler::builder().testing().build();
    println!(
        "{:<58} {:>6} {:>10} {:>12} {:>11}",
        "case", "checks", "violations", "allocs/eval", "bytes/eval"
    );
    let a12 = nodeguard("nodeguard, 12 rules, compliant", &twelve, &compliant);
    let a48 = nodeguard(
        "nodeguard, 48 rules (4 documents), compliant",
        &forty_eight,
        &compliant,
    );
    nodeguard("nodeguard, 12 rules, violating", &twelve, &violating);
    nodeguard(
        "nodeguard, 48 rules (4 documents), violating",
        &forty_eight,
        &violating,
    );
    nodeguard("nodeguard, restricted, compliant", &restricted, &compliant);
    nodeguard("nodeguard, restricted, violating", &restricted, &violating);
    nodeguard("nodeguard, baseline, compliant", &baseline, &compliant);
    nodeguard("nodeguard, baseline, violating", &baseline, &violating);
    nodeguard(
        "nodeguard, 23 Gatekeeper constraints, compliant",
        &gatekeeper,
        &gk_compliant,
    );
    nodeguard(
        "nodeguard, 23 Gatekeeper constraints, violating",
        &gatekeeper,
        &gk_violating,
    );
    let r12 = nodeguard(
        "nodeguard, 12 rules, compliant, effective capabilities",
        &twelve,
        &runtime,
    );
    let r48 = nodeguard(
        "nodeguard, 48 rules, compliant, effective capabilities",
        &forty_eight,
        &runtime,
    );
    nodeguard(
        "nodeguard, restricted, compliant, effective capabilities",
        &restricted,
        &runtime,
    );
    nodeguard(
        "nodeguard, baseline, compliant, effective capabilities",
        &baseline,
        &runtime,
    );
    for (case, rego, input) in [
        (
            "regorus, 12 rules (one query), compliant",
            &mut rego_twelve,
            &input,
        ),
        (
            "regorus, restricted, compliant",
            &mut rego_restricted,
            &input,
        ),
        (
            "regorus, 12 rules (one query), violating",
            &mut rego_twelve2,
            &bad_input,
        ),
    ] {
        let found = common::rego_rules([&rego.evaluate(input)]).len();
        let counts = per_call(|| {
            black_box(rego.evaluate(black_box(input)));
        });
        row(case, None, found, counts);
    }
    let counts = per_call(|| {
        black_box(per_constraint.evaluate(black_box(&inputs)));
    });
    row(
        "regorus, 12 rules (per constraint), compliant",
        None,
        0,
        counts,
    );
    let counts = per_call(|| {
        black_box(rvm_twelve.evaluate(black_box(&inputs)));
    });
    row(
        "regorus RVM, 12 rules (per constraint), compliant",
        None,
        0,
        counts,
    );
    let one_input = [input.clone()];
    let counts = per_call(|| {
        black_box(rvm_restricted.evaluate(black_box(&one_input)));
    });
    row("regorus RVM, restricted, compliant", None, 0, counts);
    println!(
        "compliant container, manifest view: {a12} allocations/eval with 12 rules, {a48} with 48 \
         ({})",
        if a48 > a12 {
            "grows with the policy"
        } else {
            "independent of policy size"
        }
    );
    println!(
        "compliant container, effective capabilities: {r12} allocations/eval with 12 rules, \
         {r48} with 48 ({})",
        if r48 > r12 {
            "grows with the policy"
        } else {
            "independent of policy size"
        }
    );
}
