//! Prometheus metrics: what nodeguard decided, how fast, and the health of its connection,
//! policy and audit log. Served in the OpenMetrics text format by [`crate::ops::http`].
//!
//! Counters and histograms are updated where things happen; values that already live
//! elsewhere (the connection state, the audit log's counters) are read at scrape time by a
//! collector, so they cannot drift from their source.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use policy_core::Decision;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::ops::audit::{Outcome, Phase};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    phase: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    phase: &'static str,
    rule: &'static str,
    effect: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DocumentLabels {
    policy: String,
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// Where the spec judged at StartContainer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecSource {
    /// Read after the create, off the request path.
    Prefetched,
    /// Read from containerd inside the StartContainer request.
    OnDemand,
}

impl SpecSource {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecSource::Prefetched => "prefetched",
            SpecSource::OnDemand => "on_demand",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutsideLabels {
    containerd_namespace: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemediationLabels {
    rule: &'static str,
    result: &'static str,
}

type HistogramFamily = Family<PhaseLabels, Histogram, fn() -> Histogram>;

/// Evaluation alone: from about a microsecond (a compliant container) to a millisecond.
fn evaluation_histogram() -> Histogram {
    Histogram::new([
        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2,
    ])
}

/// A whole request, spec read included, up to containerd's 2 s timeout and beyond.
fn request_histogram() -> Histogram {
    Histogram::new([
        1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
    ])
}

/// Values read at scrape time from where they live.
pub trait Source: fmt::Debug + Send + Sync + 'static {
    /// Appends this source's samples.
    fn samples(&self, out: &mut Vec<Sample>);
}

/// One value a [`Source`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name without the `nodeguard_` prefix (and, for counters, without `_total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// The value.
    pub value: SampleValue,
}

/// A [`Sample`]'s value and type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    /// A monotonic count.
    Counter(u64),
    /// A value that goes up and down.
    Gauge(i64),
}

#[derive(Debug)]
struct Sources(Vec<Arc<dyn Source>>);

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut samples = Vec::new();
        for source in &self.0 {
            source.samples(&mut samples);
        }
        for sample in samples {
            match sample.value {
                SampleValue::Counter(v) => {
                    let metric = ConstCounter::new(v);
                    let e = encoder.encode_descriptor(
                        sample.name,
                        sample.help,
                        None,
                        metric.metric_type(),
                    )?;
                    metric.encode(e)?;
                }
                SampleValue::Gauge(v) => {
                    let metric = ConstGauge::new(v);
                    let e = encoder.encode_descriptor(
                        sample.name,
                        sample.help,
                        None,
                        metric.metric_type(),
                    )?;
                    metric.encode(e)?;
                }
            }
        }
        Ok(())
    }
}

/// A new metric of type `M`, registered under `name` (after the registry's prefix).
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// The decisions of many containers (an audit's), counted as [`Metrics::decision`] counts
/// them, for [`Metrics::add_decisions`]: the shared metrics are then updated once per label
/// set instead of once per container and violation.
#[derive(Debug)]
pub struct DecisionTally {
    phase: Phase,
    decisions: Vec<(Outcome, u64)>,
    violations: HashMap<(&'static str, &'static str), u64, foldhash::fast::RandomState>,
}

impl DecisionTally {
    /// Nothing counted yet, for decisions of `phase`.
    pub fn new(phase: Phase) -> Self {
        DecisionTally {
            phase,
            decisions: Vec::new(),
            violations: HashMap::default(),
        }
    }

    /// Counts one decision and its violations (those of a `stopped` record are not counted
    /// again).
    pub fn count(&mut self, outcome: Outcome, decision: &Decision) {
        match self.decisions.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, count)) => *count += 1,
            None => self.decisions.push((outcome, 1)),
        }
        if outcome == Outcome::Stopped {
            return;
        }
        for v in &decision.violations {
            *self
                .violations
                .entry((v.rule, v.effect.as_str()))
                .or_default() += 1;
        }
    }
}

/// Every metric nodeguard exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    violations: Family<ViolationLabels, Counter>,
    evaluation: HistogramFamily,
    requests: HistogramFamily,
    spec_read_failures: Counter,
    policy_generation: Gauge,
    policy_reloads: Family<ResultLabels, Counter>,
    policy_last_reload_success: Gauge,
    policy_last_reload_time: Gauge,
    compliance_containers: Family<ResultLabels, Gauge>,
    compliance_last_audit_time: Gauge,
    remediations: Family<RemediationLabels, Counter>,
    report_write_failures: Counter,
    malformed_requests: Family<MethodLabels, Counter>,
    spec_reads: Family<SourceLabels, Counter>,
    policy_notes: Gauge,
    policy_not_enforced: Family<PolicyLabels, Gauge>,
    policy_documents: Family<DocumentLabels, Gauge>,
    compliance_non_kubernetes: Family<OutsideLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Vec::new())
    }
}

impl Metrics {
    /// The metrics, with `sources` read at every scrape.
    pub fn new(sources: Vec<Arc<dyn Source>>) -> Self {
        let mut registry = Registry::with_prefix("nodeguard");
        let decisions: Family<DecisionLabels, Counter> = registered(
            &mut registry,
            "decisions",
            "Containers judged, by phase (create, start, update, sync) and outcome (allowed, refused, audited, warned, undecided, stopped)",
        );
        let violations: Family<ViolationLabels, Counter> = registered(
            &mut registry,
            "violations",
            "Rule violations found, by phase, rule id and effect",
        );
        let evaluation = HistogramFamily::new_with_constructor(evaluation_histogram);
        registry.register(
            "evaluation_duration_seconds",
            "Time to evaluate the policy for one container, by phase",
            evaluation.clone(),
        );
        let requests = HistogramFamily::new_with_constructor(request_histogram);
        registry.register(
            "request_duration_seconds",
            "Time to answer one runtime request, spec read from containerd included, by phase",
            requests.clone(),
        );
        let spec_read_failures: Counter = registered(
            &mut registry,
            "spec_read_failures",
            "Container OCI specs that could not be read from containerd",
        );
        let policy_generation: Gauge = registered(
            &mut registry,
            "policy_generation",
            "Generation of the policy in force: 1 at start, one more at every successful reload",
        );
        let policy_reloads: Family<ResultLabels, Counter> = registered(
            &mut registry,
            "policy_reloads",
            "Policy reloads attempted, by result (success, failure); a failure keeps the last good policy",
        );
        let policy_last_reload_success: Gauge = registered(
            &mut registry,
            "policy_last_reload_success",
            "1 when the last policy (re)load succeeded, 0 when the files on disk are rejected",
        );
        let policy_last_reload_time: Gauge = registered(
            &mut registry,
            "policy_last_reload_timestamp_seconds",
            "Unix time of the last policy reload attempt",
        );
        let compliance_containers: Family<ResultLabels, Gauge> = registered(
            &mut registry,
            "compliance_containers",
            "Containers found by the last compliance audit, by result (pass, fail, warn; skip: a rule could not be decided or evaluated)",
        );
        let compliance_last_audit_time: Gauge = registered(
            &mut registry,
            "compliance_last_audit_timestamp_seconds",
            "Unix time the last compliance audit finished",
        );
        let remediations: Family<RemediationLabels, Counter> = registered(
            &mut registry,
            "remediations",
            "Containers nodeguard stopped (remediate: stop), by rule and result (stopped, failed)",
        );
        let report_write_failures: Counter = registered(
            &mut registry,
            "report_write_failures",
            "Compliance reports that could not be written",
        );
        let malformed_requests: Family<MethodLabels, Counter> = registered(
            &mut registry,
            "malformed_requests",
            "Runtime requests refused as malformed (undecodable, or without the pod or container they concern), by NRI method",
        );
        let spec_reads: Family<SourceLabels, Counter> = registered(
            &mut registry,
            "start_specs",
            "Container OCI specs judged at StartContainer, by source: prefetched (read after the create, off the request path) or on_demand (read inside the request)",
        );
        let policy_notes: Gauge = registered(
            &mut registry,
            "policy_notes",
            "What the policy in force asks that the node does not enforce: constraints and parameters `nodeguard policy validate` lists as notes",
        );
        let policy_not_enforced: Family<PolicyLabels, Gauge> = registered(
            &mut registry,
            "policy_not_enforced",
            "1 for each constraint of the policy in force the node cannot judge (a kind nodeguard does not implement, a match that needs the API server); its containers are skipped in the report",
        );
        let policy_documents: Family<DocumentLabels, Gauge> = registered(
            &mut registry,
            "policy_document",
            "1 for each document of the policy in force, with where it was read: a file's path, or api:Kind/name@generation for an object of the API server (serve --cluster)",
        );
        let compliance_non_kubernetes: Family<OutsideLabels, Gauge> = registered(
            &mut registry,
            "compliance_non_kubernetes_containers",
            "Containers made outside Kubernetes (ctr, nerdctl, Docker, buildkit) found running by the last compliance audit, by containerd namespace and result (pass, fail, warn, skip); also counted in compliance_containers",
        );
        registry.register_collector(Box::new(Sources(sources)));
        Metrics {
            registry,
            decisions,
            violations,
            evaluation,
            requests,
            spec_read_failures,
            policy_generation,
            policy_reloads,
            policy_last_reload_success,
            policy_last_reload_time,
            compliance_containers,
            compliance_last_audit_time,
            remediations,
            report_write_failures,
            malformed_requests,
            spec_reads,
            policy_notes,
            policy_not_enforced,
            policy_documents,
            compliance_non_kubernetes,
        }
    }

    /// Records what the policy now in force does not enforce.
    pub fn policy_in_force(&self, policy: &policy_core::Policy) {
        self.policy_notes
            .set(i64::try_from(policy.notes().len()).unwrap_or(i64::MAX));
        self.policy_not_enforced.clear();
        for name in policy.not_enforced_names() {
            self.policy_not_enforced
                .get_or_create(&PolicyLabels {
                    policy: name.to_string(),
                })
                .set(1);
        }
        self.policy_documents.clear();
        for (policy, source) in policy.origins() {
            self.policy_documents
                .get_or_create(&DocumentLabels {
                    policy: policy.to_string(),
                    source: source.to_string(),
                })
                .set(1);
        }
    }

    /// Counts a malformed request to NRI method `method` (a method nodeguard serves).
    pub fn malformed_request(&self, method: &str) {
        self.malformed_requests
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .inc();
    }

    /// Counts one decision and its violations. A `stopped` record repeats the violations of
    /// the audit that found them: they are not counted again.
    pub fn decision(&self, phase: Phase, outcome: Outcome, decision: &Decision) {
        let phase = phase.as_str();
        self.decisions
            .get_or_create(&DecisionLabels {
                phase,
                outcome: outcome.as_str(),
            })
            .inc();
        if outcome == Outcome::Stopped {
            return;
        }
        for v in &decision.violations {
            self.violations
                .get_or_create(&ViolationLabels {
                    phase,
                    rule: v.rule,
                    effect: v.effect.as_str(),
                })
                .inc();
        }
    }

    /// Adds what `tally` counted (the decisions of an audit): one update per label set.
    pub fn add_decisions(&self, tally: &DecisionTally) {
        let phase = tally.phase.as_str();
        for (outcome, count) in &tally.decisions {
            self.decisions
                .get_or_create(&DecisionLabels {
                    phase,
                    outcome: outcome.as_str(),
                })
                .inc_by(*count);
        }
        for ((rule, effect), count) in &tally.violations {
            self.violations
                .get_or_create(&ViolationLabels {
                    phase,
                    rule,
                    effect,
                })
                .inc_by(*count);
        }
    }

    /// Records how long one evaluation took.
    pub fn evaluation(&self, phase: Phase, took: Duration) {
        self.evaluation
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records how long one runtime request took to answer.
    pub fn request(&self, phase: Phase, took: Duration) {
        self.requests
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a spec judged at StartContainer by where it came from.
    pub fn spec_read(&self, source: SpecSource) {
        self.spec_reads
            .get_or_create(&SourceLabels {
                source: source.as_str(),
            })
            .inc();
    }

    /// Counts a spec containerd could not give.
    pub fn spec_read_failure(&self) {
        self.spec_read_failures.inc();
    }

    /// Records a policy (re)load: `generation` is the policy in force afterwards.
    pub fn policy_load(&self, succeeded: bool, generation: u64) {
        self.policy_reloads
            .get_or_create(&ResultLabels {
                result: if succeeded { "success" } else { "failure" },
            })
            .inc();
        self.policy_last_reload_success.set(i64::from(succeeded));
        self.policy_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.policy_last_reload_time.set(unix_now());
    }

    /// Records the policy loaded at start (not a reload).
    pub fn policy_initial(&self) {
        self.policy_generation.set(1);
        self.policy_last_reload_success.set(1);
        self.policy_last_reload_time.set(unix_now());
    }

    /// Records a finished compliance audit: containers by result.
    pub fn compliance(&self, pass: u64, fail: u64, warn: u64, skip: u64) {
        for (result, n) in [
            ("pass", pass),
            ("fail", fail),
            ("warn", warn),
            ("skip", skip),
        ] {
            self.compliance_containers
                .get_or_create(&ResultLabels { result })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.compliance_last_audit_time.set(unix_now());
    }

    /// Records the containers made outside Kubernetes that the last compliance audit found, by
    /// containerd namespace: `[pass, fail, warn, skip]` each. Namespaces with none are gone.
    pub fn compliance_non_kubernetes(
        &self,
        by_namespace: &std::collections::BTreeMap<String, [u64; 4]>,
    ) {
        self.compliance_non_kubernetes.clear();
        for (namespace, counts) in by_namespace {
            for (result, n) in ["pass", "fail", "warn", "skip"].into_iter().zip(counts) {
                self.compliance_non_kubernetes
                    .get_or_create(&OutsideLabels {
                        containerd_namespace: namespace.clone(),
                        result,
                    })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Counts one remediation attempt.
    pub fn remediation(&self, rule: &'static str, stopped: bool) {
        self.remediations
            .get_or_create(&RemediationLabels {
                rule,
                result: if stopped { "stopped" } else { "failed" },
            })
            .inc();
    }

    /// Counts a report that could not be written.
    pub fn report_write_failure(&self) {
        self.report_write_failures.inc();
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Source for crate::ops::audit::AuditFile {
    fn samples(&self, out: &mut Vec<Sample>) {
        let s = self.stats();
        let gauge = |v: u64| SampleValue::Gauge(i64::try_from(v).unwrap_or(i64::MAX));
        out.extend([
            Sample {
                name: "audit_log_records_written",
                help: "Audit records written to the audit log",
                value: SampleValue::Counter(s.records_written),
            },
            Sample {
                name: "audit_log_write_failures",
                help: "Failed attempts to write the audit log (full disk, unwritable or removed directory, I/O error)",
                value: SampleValue::Counter(s.write_failures),
            },
            Sample {
                name: "audit_log_records_dropped",
                help: "Audit records lost because the in-memory backlog was full while the log could not be written",
                value: SampleValue::Counter(s.records_dropped),
            },
            Sample {
                name: "audit_log_backlog_records",
                help: "Audit records held in memory until the log can be written",
                value: gauge(s.backlog_records),
            },
            Sample {
                name: "audit_log_rotations",
                help: "Audit log rotations",
                value: SampleValue::Counter(s.rotations),
            },
            Sample {
                name: "audit_log_rotation_failures",
                help: "Audit log rotations that failed (the live file keeps growing)",
                value: SampleValue::Counter(s.rotation_failures),
            },
            Sample {
                name: "audit_log_healthy",
                help: "1 when the last audit log write succeeded",
                value: SampleValue::Gauge(i64::from(s.healthy)),
            },
        ]);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::{Effect, Violation};

    #[derive(Debug)]
    struct Fixed;

    impl Source for Fixed {
        fn samples(&self, out: &mut Vec<Sample>) {
            out.push(Sample {
                name: "nri_connected",
                help: "1 while registered",
                value: SampleValue::Gauge(1),
            });
            out.push(Sample {
                name: "nri_registrations",
                help: "registrations",
                value: SampleValue::Counter(3),
            });
        }
    }

    fn violation(rule: &'static str, effect: Effect) -> Violation {
        Violation {
            policy: "p".into(),
            rule,
            effect,
            message: "m".into(),
            remediate: policy_core::Remediation::None,
        }
    }

    /// A decision breaking an enforced rule and a warned one.
    fn two_violations() -> Decision {
        Decision {
            violations: vec![
                violation("privileged", Effect::Enforce),
                violation("images.allowed", Effect::Warn),
            ],
            undecided: Vec::new(),
            admission_only: Vec::new(),
        }
    }

    #[test]
    fn decisions_are_counted_by_phase_outcome_rule_and_effect() {
        let m = Metrics::default();
        let d = two_violations();
        m.decision(Phase::Create, Outcome::Refused, &d);
        m.decision(Phase::Create, Outcome::Refused, &d);
        m.decision(Phase::Start, Outcome::Allowed, &Decision::default());
        m.decision(Phase::Sync, Outcome::Audited, &d);
        m.decision(Phase::Sync, Outcome::Stopped, &d);
        let text = m.encode();
        assert!(text.contains(r#"nodeguard_decisions_total{phase="sync",outcome="stopped"} 1"#));
        assert!(
            text.contains(
                r#"nodeguard_violations_total{phase="sync",rule="privileged",effect="enforce"} 1"#
            ),
            "a stop does not count its violations again: {text}"
        );
        assert!(
            text.contains(r#"nodeguard_decisions_total{phase="create",outcome="refused"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"nodeguard_decisions_total{phase="start",outcome="allowed"} 1"#));
        assert!(text.contains(
            r#"nodeguard_violations_total{phase="create",rule="privileged",effect="enforce"} 2"#
        ));
        assert!(text.contains(
            r#"nodeguard_violations_total{phase="create",rule="images.allowed",effect="warn"} 2"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_tally_adds_what_counting_each_decision_would() {
        let d = two_violations();
        let decisions = [
            (Outcome::Audited, d.clone()),
            (Outcome::Allowed, Decision::default()),
            (Outcome::Audited, d.clone()),
            (Outcome::Stopped, d),
        ];
        let (each, tallied) = (Metrics::default(), Metrics::default());
        let mut tally = DecisionTally::new(Phase::Sync);
        for (outcome, decision) in &decisions {
            each.decision(Phase::Sync, *outcome, decision);
            tally.count(*outcome, decision);
        }
        tallied.add_decisions(&tally);
        let text = tallied.encode();
        assert!(text.contains(
            r#"nodeguard_violations_total{phase="sync",rule="privileged",effect="enforce"} 2"#
        ));
        assert!(text.contains(r#"nodeguard_decisions_total{phase="sync",outcome="audited"} 2"#));
        // The same exposition, but for the order of the series within a family.
        let sorted = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(text), sorted(each.encode()));
    }

    #[test]
    fn containers_made_outside_kubernetes_are_counted_by_containerd_namespace() {
        let m = Metrics::default();
        let mut counts = std::collections::BTreeMap::new();
        counts.insert("default".to_string(), [1, 2, 0, 0]);
        counts.insert("moby".to_string(), [0, 0, 0, 3]);
        m.compliance_non_kubernetes(&counts);
        let text = m.encode();
        for line in [
            r#"nodeguard_compliance_non_kubernetes_containers{containerd_namespace="default",result="fail"} 2"#,
            r#"nodeguard_compliance_non_kubernetes_containers{containerd_namespace="moby",result="skip"} 3"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        counts.remove("moby");
        m.compliance_non_kubernetes(&counts);
        assert!(
            !m.encode().contains("moby"),
            "a namespace with none is gone"
        );
    }

    #[test]
    fn histograms_bucket_durations_by_phase() {
        let m = Metrics::default();
        m.evaluation(Phase::Create, Duration::from_micros(3));
        m.request(Phase::Start, Duration::from_millis(30));
        let text = m.encode();
        for (le, n) in [("0.0000025", 0), ("0.000005", 1), ("0.01", 1)] {
            let line = format!(
                r#"nodeguard_evaluation_duration_seconds_bucket{{le="{le}",phase="create"}} {n}"#
            );
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        assert!(text.contains(r#"nodeguard_request_duration_seconds_count{phase="start"} 1"#));
    }

    #[test]
    fn policy_loads_set_generation_and_result() {
        let m = Metrics::default();
        m.policy_initial();
        m.policy_load(false, 1);
        let text = m.encode();
        assert!(text.contains("nodeguard_policy_generation 1"), "{text}");
        assert!(text.contains("nodeguard_policy_last_reload_success 0"));
        assert!(text.contains(r#"nodeguard_policy_reloads_total{result="failure"} 1"#));
        m.policy_load(true, 2);
        let text = m.encode();
        assert!(text.contains("nodeguard_policy_generation 2"));
        assert!(text.contains("nodeguard_policy_last_reload_success 1"));
    }

    #[test]
    fn what_the_policy_does_not_enforce_is_exposed_and_replaced_at_reload() {
        let m = Metrics::default();
        let policy = policy_core::Policy::parse(
            "c.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoSuchKind\nmetadata: {name: x}\n",
        )
        .unwrap();
        m.policy_in_force(&policy);
        let text = m.encode();
        assert!(text.contains("nodeguard_policy_notes 1"), "{text}");
        assert!(
            text.contains(r#"nodeguard_policy_not_enforced{policy="K8sNoSuchKind/x"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"nodeguard_policy_document{policy="K8sNoSuchKind/x",source="c.yaml"} 1"#
            ),
            "{text}"
        );
        m.policy_in_force(&policy_core::Policy::default());
        let text = m.encode();
        assert!(text.contains("nodeguard_policy_notes 0"), "{text}");
        assert!(!text.contains("K8sNoSuchKind/x"), "{text}");
    }

    #[test]
    fn sources_are_read_at_scrape_time_with_the_prefix() {
        let m = Metrics::new(vec![Arc::new(Fixed)]);
        let text = m.encode();
        assert!(text.contains("nodeguard_nri_connected 1"), "{text}");
        assert!(
            text.contains("nodeguard_nri_registrations_total 3"),
            "{text}"
        );
    }
}
