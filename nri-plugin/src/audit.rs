//! The audit log: one JSON object per line for every decision, written before the reply.
//!
//! The format is stable and versioned (`schema`); see `docs/audit-log.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use policy_core::{Decision, Verdict};
use serde::Serialize;

/// The schema identifier every record carries.
pub const SCHEMA: &str = "nodeguard.io/audit/v1";

/// When in a container's life a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// At `CreateContainer`.
    Create,
    /// At `StartContainer`.
    Start,
    /// At `UpdateContainer`.
    Update,
    /// While auditing containers already running (`Synchronize`).
    Sync,
}

/// What nodeguard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed with nothing to report.
    Allowed,
    /// Refused.
    Refused,
    /// Allowed, with violations of `audit` rules.
    Audited,
    /// Allowed, with violations of `warn` rules.
    Warned,
    /// Allowed for now: an enforced rule could not decide yet (re-checked at start).
    Undecided,
}

impl Outcome {
    /// The outcome of a decision, given whether it was enforced.
    pub fn of(decision: &Decision, refused: bool) -> Outcome {
        use policy_core::Effect;
        if refused {
            Outcome::Refused
        } else if decision.verdict() == Verdict::Undecided {
            Outcome::Undecided
        } else if decision.violations.iter().any(|v| v.effect == Effect::Warn) {
            Outcome::Warned
        } else if !decision.violations.is_empty() {
            Outcome::Audited
        } else {
            Outcome::Allowed
        }
    }
}

/// The pod a record is about.
#[derive(Debug, Clone, Serialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// The container a record is about.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerRef {
    /// Kubernetes container name.
    pub name: String,
    /// Runtime container id.
    pub id: String,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// RFC 3339 time with milliseconds, UTC.
    pub time: String,
    /// Node name.
    pub node: &'a str,
    /// Phase of the decision.
    pub phase: Phase,
    /// What nodeguard did.
    pub outcome: Outcome,
    /// The pod.
    pub pod: PodRef,
    /// The container.
    pub container: ContainerRef,
    /// The image reference, normalized.
    pub image: Option<String>,
    /// Every violation and undecided rule.
    #[serde(flatten)]
    pub decision: &'a Decision,
}

impl Record<'_> {
    /// The current time in the record's format.
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

/// Where records go.
pub trait AuditSink: Send + Sync {
    /// Writes one record. Failures are the sink's to report (log and count); they never
    /// block enforcement.
    fn record(&self, record: &Record<'_>);
}

/// An audit log that drops everything (no `--audit-log`).
#[derive(Debug, Default)]
pub struct Discard;

impl AuditSink for Discard {
    fn record(&self, _: &Record<'_>) {}
}

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditFile {
    /// Opens (creating) the log at `path` for appending.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditFile {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
        })
    }
}

impl AuditSink for AuditFile {
    fn record(&self, record: &Record<'_>) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
        let written = guard.as_mut().map(|f| f.write_all(&line));
        if !matches!(written, Some(Ok(()))) {
            tracing::error!(path = %self.path.display(), "cannot write the audit log");
            *guard = None;
        }
    }
}

/// An in-memory sink, for tests.
#[derive(Debug, Default)]
pub struct Memory {
    lines: Mutex<Vec<serde_json::Value>>,
}

impl Memory {
    /// Every record written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for Memory {
    fn record(&self, record: &Record<'_>) {
        if let Ok(v) = serde_json::to_value(record) {
            self.lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(v);
        }
    }
}
