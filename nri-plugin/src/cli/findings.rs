//! What `nodeguard check` found, as every output format reads it.

use policy_core::Verdict;
use serde::Serialize;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per object, for people.
    Text,
    /// One JSON document with every result and a summary, for tools.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).
    Sarif,
    /// JUnit XML, one test case per object, for CI test reports.
    Junit,
}

/// What happened to one input file that could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    /// The file.
    pub file: String,
    /// The line the problem is on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong, with the line or field when known.
    pub message: String,
}

/// A violation or undecided rule, attributed to a container.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The containers it concerns, sorted (a pod-level finding names every container).
    pub containers: Vec<String>,
    /// Policy document name.
    pub policy: String,
    /// Rule id.
    pub rule: &'static str,
    /// Effect of the rule.
    pub effect: policy_core::Effect,
    /// Message (for undecided rules, the missing field).
    pub message: String,
}

/// The result for one pod or runtime spec.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// The file it came from.
    pub file: String,
    /// Where the object starts in it: line, counted from 1.
    pub line: usize,
    /// Where the object starts in it: column, counted from 1.
    pub column: usize,
    /// Its kind (`Pod`, `Deployment`, ..., or `OCIRuntimeSpec`).
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The overall verdict.
    pub verdict: Verdict,
    /// Whether any policy applies to it: false when it lies outside every policy's scope
    /// (its namespace, labels or images), so nothing was judged.
    pub policy_applies: bool,
    /// Every violation, whatever its effect.
    pub violations: Vec<Finding>,
    /// Rules that could not decide.
    pub undecided: Vec<Finding>,
}

/// An object `check` read and did not judge, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The file it came from.
    pub file: String,
    /// Its kind.
    pub kind: String,
    /// Its name (`-` when it has none).
    pub name: String,
    /// Why it was not judged.
    pub reason: String,
}

/// What `check` counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects judged.
    pub checked: usize,
    /// Judged, in scope of a policy, and no enforced rule broken or undecided.
    pub passed: usize,
    /// An enforced rule is broken.
    pub failed: usize,
    /// An enforced rule could not decide.
    pub undecided: usize,
    /// Outside the scope of every policy: nothing was judged.
    pub outside_every_policy: usize,
    /// Objects read but not judged.
    pub skipped: usize,
    /// Inputs that could not be used.
    pub input_errors: usize,
}

impl Summary {
    /// The counts of `report`.
    pub fn of(report: &Report) -> Summary {
        let count = |v: Verdict| {
            report
                .results
                .iter()
                .filter(|r| r.verdict == v && (r.policy_applies || v != Verdict::Allow))
                .count()
        };
        Summary {
            checked: report.results.len(),
            passed: count(Verdict::Allow),
            failed: count(Verdict::Deny),
            undecided: count(Verdict::Undecided),
            outside_every_policy: report.results.iter().filter(|r| !r.policy_applies).count(),
            skipped: report.skipped.len(),
            input_errors: report.errors.len(),
        }
    }
}

/// Everything `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The counts, for tools that want only them.
    pub summary: Summary,
    /// Results per object, in input order.
    pub results: Vec<ObjectResult>,
    /// Objects read but not judged (kinds that hold no pod).
    pub skipped: Vec<Skipped>,
    /// Inputs that could not be used.
    pub errors: Vec<InputError>,
}

impl Report {
    /// The exit status: 2 when an input was unusable, 1 when an enforced rule is violated,
    /// else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.results.iter().any(|r| r.verdict == Verdict::Deny) {
            1
        } else {
            0
        }
    }
}
