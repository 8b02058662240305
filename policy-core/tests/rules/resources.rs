//! `rules.resources`: required limits (default CPU and memory) and requests, maximum limits,
//! maximum limit/request ratios, and memory requests the node cannot see.

use policy_core::quantity::{Bytes, Millicores};
use policy_core::view::Resources;
use policy_core::{ContainerView, Verdict, evaluate};

use crate::util::{
    MI, assert_clean, assert_denied, assert_undecided, compliant, messages, rules, undecided, with,
};

fn resources(f: impl FnOnce(&mut Resources)) -> ContainerView {
    with(|v| f(v.resources.as_mut().expect("compliant() knows resources")))
}

#[test]
fn limits_are_required_for_cpu_and_memory_by_default() {
    let p = rules("resources: {}\n");
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["resources.limits"]);
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &resources(|r| r.cpu_limit = None),
        "resources.limits",
        "container has no CPU limit",
    );
    assert_denied(
        &p,
        &resources(|r| r.memory_limit = None),
        "resources.limits",
        "container has no memory limit",
    );
    assert_denied(
        &p,
        &resources(|r| {
            r.cpu_limit = None;
            r.memory_limit = None;
        }),
        "resources.limits",
        "container has no CPU or memory limit",
    );
}

#[test]
fn require_limits_can_name_one_resource_or_none() {
    let p = rules("resources: {requireLimits: [memory]}\n");
    assert_clean(&p, &resources(|r| r.cpu_limit = None));
    let none = rules("resources: {requireLimits: [], requireRequests: [cpu]}\n");
    assert_eq!(none.check_ids().collect::<Vec<_>>(), ["resources.requests"]);
}

#[test]
fn unknown_resources_leave_every_resources_check_undecided() {
    let p = rules(
        "resources:
  requireRequests: [cpu]
  maxLimits: {cpu: 2}
  maxLimitRequestRatio: {cpu: 2}
",
    );
    assert_undecided(
        &p,
        &with(|v| v.resources = None),
        &[
            ("resources.limits", "resources"),
            ("resources.requests", "resources"),
            ("resources.maxLimits", "resources"),
            ("resources.ratio", "resources"),
        ],
    );
}

#[test]
fn requests_are_required_as_listed() {
    let p = rules("resources: {requireLimits: [], requireRequests: [cpu, memory]}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &resources(|r| r.cpu_request = None),
        "resources.requests",
        "container has no CPU request",
    );
    assert_denied(
        &p,
        &resources(|r| {
            r.cpu_request = None;
            r.memory_request = None;
        }),
        "resources.requests",
        "container has no CPU or memory request",
    );
}

#[test]
fn a_memory_request_the_node_cannot_see_is_undecided() {
    let p = rules("resources: {requireLimits: [], requireRequests: [cpu, memory]}\n");
    let invisible = |r: &mut Resources| {
        r.memory_request = None;
        r.memory_request_known = false;
    };
    assert_undecided(
        &p,
        &resources(invisible),
        &[("resources.requests", "resources.memoryRequest")],
    );
    // A missing CPU request is still a violation, and deny wins over undecided.
    let d = evaluate(
        &p,
        &resources(|r| {
            invisible(r);
            r.cpu_request = None;
        }),
    );
    assert_eq!(
        messages(&d),
        [("resources.requests", "container has no CPU request")]
    );
    assert_eq!(
        undecided(&d),
        [("resources.requests", "resources.memoryRequest")]
    );
    assert_eq!(d.verdict(), Verdict::Deny);
}

#[test]
fn max_limits_compare_exact_quantities() {
    let p = rules("resources: {requireLimits: [], maxLimits: {cpu: 1500m, memory: 1Gi}}\n");
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["resources.maxLimits"]);
    assert_clean(
        &p,
        &resources(|r| {
            r.cpu_limit = Some(Millicores(1500));
            r.memory_limit = Some(Bytes(1024 * MI));
        }),
    );
    assert_denied(
        &p,
        &resources(|r| r.cpu_limit = Some(Millicores(2000))),
        "resources.maxLimits",
        "CPU limit 2 exceeds the maximum 1500m",
    );
    assert_denied(
        &p,
        &resources(|r| r.memory_limit = Some(Bytes(1024 * MI + 1))),
        "resources.maxLimits",
        "memory limit 1073741825 exceeds the maximum 1Gi",
    );
}

#[test]
fn max_limits_deny_a_missing_limit() {
    let p = rules("resources: {requireLimits: [], maxLimits: {cpu: 2, memory: 1G}}\n");
    let d = evaluate(
        &p,
        &resources(|r| {
            r.cpu_limit = None;
            r.memory_limit = None;
        }),
    );
    assert_eq!(
        messages(&d),
        [
            (
                "resources.maxLimits",
                "container has no CPU limit (maximum 2)"
            ),
            (
                "resources.maxLimits",
                "container has no memory limit (maximum 1000000000)"
            ),
        ]
    );
}

#[test]
fn ratio_compares_limit_to_request() {
    let p = rules("resources: {requireLimits: [], maxLimitRequestRatio: {cpu: 2, memory: 1.5}}\n");
    assert_eq!(p.check_ids().collect::<Vec<_>>(), ["resources.ratio"]);
    // 500m / 250m = 2 is the maximum itself.
    assert_clean(&p, &resources(|r| r.memory_request = Some(Bytes(200 * MI))));
    let d = evaluate(
        &p,
        &resources(|r| {
            r.cpu_request = Some(Millicores(100));
            r.cpu_limit = Some(Millicores(1000));
        }),
    );
    assert_eq!(
        messages(&d),
        [
            (
                "resources.ratio",
                "CPU limit is 10.00 times the request, above the maximum ratio 2"
            ),
            (
                "resources.ratio",
                "memory limit is 2.00 times the request, above the maximum ratio 1.5"
            ),
        ]
    );
}

#[test]
fn ratio_takes_a_missing_request_as_the_limit() {
    // Kubernetes defaults a missing request to the limit.
    let p = rules("resources: {requireLimits: [], maxLimitRequestRatio: {cpu: 1}}\n");
    assert_clean(&p, &resources(|r| r.cpu_request = None));
    // No limit, nothing to compare.
    assert_clean(&p, &resources(|r| r.cpu_limit = None));
    // A zero request is an infinite ratio.
    assert_denied(
        &p,
        &resources(|r| r.cpu_request = Some(Millicores(0))),
        "resources.ratio",
        "CPU limit is inf times the request, above the maximum ratio 1",
    );
}

#[test]
fn ratio_is_undecided_for_memory_requests_the_node_cannot_see() {
    let p = rules("resources: {requireLimits: [], maxLimitRequestRatio: {memory: 2}}\n");
    assert_undecided(
        &p,
        &resources(|r| {
            r.memory_request = None;
            r.memory_request_known = false;
        }),
        &[("resources.ratio", "resources.memoryRequest")],
    );
}
