//! The compliance report: results of the last compliance audit in the Kubernetes Policy
//! working group's `PolicyReport` format (`wgpolicyk8s.io/v1alpha2`), one report per namespace
//! in a `v1` `List` (and one `ClusterPolicyReport` of the containers made outside Kubernetes),
//! written atomically to a file; and `nodeguard report`, which prints it.
//!
//! The file is what `kubectl apply -f` takes where the PolicyReport CRD is installed, and what
//! policy-report tooling (Policy Reporter, ...) reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where `nodeguard serve` writes the compliance report and `nodeguard report` reads it.
pub const DEFAULT_REPORT: &str = "/var/lib/nodeguard/report.json";

/// `apiVersion` of every report.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// What `source` says in every result.
pub const SOURCE: &str = "nodeguard";

/// The outcome of one rule for one container, as PolicyReport names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The rule holds.
    Pass,
    /// An enforced or audited rule is broken.
    Fail,
    /// A `warn` rule is broken.
    Warn,
    /// The rule could not be evaluated (the container's spec could not be read).
    Error,
    /// The rule cannot be decided on the node (the field it needs is not visible there).
    Skip,
}

impl Outcome {
    /// The name PolicyReport uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Warn => "warn",
            Outcome::Error => "error",
            Outcome::Skip => "skip",
        }
    }
}

/// Counts of results by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Results that passed.
    #[serde(default)]
    pub pass: u64,
    /// Results that failed.
    #[serde(default)]
    pub fail: u64,
    /// Warnings.
    #[serde(default)]
    pub warn: u64,
    /// Rules that could not be evaluated.
    #[serde(default)]
    pub error: u64,
    /// Rules skipped.
    #[serde(default)]
    pub skip: u64,
}

impl Summary {
    /// Counts one result of `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pass => self.pass += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Warn => self.warn += 1,
            Outcome::Error => self.error += 1,
            Outcome::Skip => self.skip += 1,
        }
    }

    /// The counts of `results`.
    pub fn of(results: &[ReportResult]) -> Summary {
        let mut summary = Summary::default();
        for r in results {
            summary.add(r.result);
        }
        summary
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Summary) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.warn += other.warn;
        self.error += other.error;
        self.skip += other.skip;
    }
}

/// A reference to the object a result is about (a Pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// `v1`.
    pub api_version: String,
    /// `Pod`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// When a result was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Unix seconds.
    pub seconds: i64,
    /// Nanoseconds.
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp of `time`.
    pub fn of(time: SystemTime) -> Self {
        let d = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        }
    }
}

/// One result: one rule for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// The policy document's name.
    pub policy: String,
    /// The rule id.
    pub rule: String,
    /// The outcome.
    pub result: Outcome,
    /// Always true: every result counts.
    #[serde(default)]
    pub scored: bool,
    /// `nodeguard`.
    #[serde(default)]
    pub source: String,
    /// What is wrong (empty for a pass).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it was found.
    pub timestamp: Timestamp,
    /// The pod (none for a container made outside Kubernetes).
    #[serde(default)]
    pub resources: Vec<ObjectReference>,
    /// `container`, `containerID`, `image`, `effect`, `node`, and where they apply
    /// `startedWhileAway`, `remediation`, and for a container made outside Kubernetes
    /// `nonKubernetes: "true"` with its `containerdNamespace`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl ReportResult {
    fn property(&self, key: &str) -> &str {
        self.properties.get(key).map_or("", String::as_str)
    }
}

/// Object metadata of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// `nodeguard-<node>`.
    pub name: String,
    /// The namespace whose pods the report covers.
    #[serde(default)]
    pub namespace: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations: generation time, trigger, policy generation.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One namespace's `PolicyReport`, or the `ClusterPolicyReport` of the containers made outside
/// Kubernetes (its namespace empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `PolicyReport`, or `ClusterPolicyReport`.
    pub kind: String,
    /// Metadata.
    pub metadata: Metadata,
    /// Counts of results by outcome.
    pub summary: Summary,
    /// Every result.
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

/// The report file: a `v1` `List` of [`PolicyReport`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportFile {
    /// `v1`.
    pub api_version: String,
    /// `List`.
    pub kind: String,
    /// The reports, by namespace.
    pub items: Vec<PolicyReport>,
}

/// One result of a container's findings: `(policy, rule, outcome, effect, message)`.
pub type FoundResult = (Arc<str>, &'static str, Outcome, policy_core::Effect, String);

impl ReportFile {
    /// A `v1` `List` of `items`.
    pub fn list(items: Vec<PolicyReport>) -> Self {
        ReportFile {
            api_version: "v1".into(),
            kind: "List".into(),
            items,
        }
    }
}

/// What one compliance audit found about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFindings {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub container: String,
    /// Runtime container id.
    pub container_id: String,
    /// Image reference.
    pub image: Option<String>,
    /// Results: `(policy, rule, outcome, effect, message)`.
    pub results: Vec<FoundResult>,
    /// Started while nodeguard was not running (unknown to it before the registration).
    pub started_while_away: bool,
    /// What remediation does (`stopping`, `skipped: nodeguard's own pod`), if anything.
    pub remediation: Option<String>,
    /// For a container made outside Kubernetes (not through CRI): its containerd namespace.
    /// Its pod fields are then empty and `container` is its id.
    pub non_kubernetes: Option<String>,
}

impl ContainerFindings {
    /// The container's overall outcome: fail, else warn, else error, else skip, else pass.
    pub fn outcome(&self) -> Outcome {
        let has = |o| self.results.iter().any(|r| r.2 == o);
        [Outcome::Fail, Outcome::Warn, Outcome::Error, Outcome::Skip]
            .into_iter()
            .find(|o| has(*o))
            .unwrap_or(Outcome::Pass)
    }

    /// The report's object reference to the container's pod (none outside Kubernetes).
    fn pod_reference(&self) -> Option<ObjectReference> {
        self.non_kubernetes.is_none().then(|| ObjectReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: self.namespace.clone(),
            name: self.pod.clone(),
            uid: self.pod_uid.clone(),
        })
    }

    /// A result's properties: [`ReportResult::properties`].
    fn properties(&self, effect: policy_core::Effect, node: &str) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::from([
            ("container".to_string(), self.container.clone()),
            ("containerID".to_string(), self.container_id.clone()),
            ("effect".to_string(), effect.as_str().to_string()),
            ("node".to_string(), node.to_string()),
        ]);
        if let Some(image) = &self.image {
            properties.insert("image".into(), image.clone());
        }
        if let Some(namespace) = &self.non_kubernetes {
            properties.insert("containerdNamespace".into(), namespace.clone());
            properties.insert("nonKubernetes".into(), "true".into());
        }
        if let Some(remediation) = &self.remediation {
            properties.insert("remediation".into(), remediation.clone());
        }
        if self.started_while_away {
            properties.insert("startedWhileAway".into(), "true".into());
        }
        properties
    }
}

/// Where, when and why the audit behind a report ran.
#[derive(Debug, Clone)]
pub struct ReportContext<'a> {
    /// Node name.
    pub node: &'a str,
    /// When the audit ran.
    pub generated: SystemTime,
    /// What started it (`registration`, `periodic`, `policy-reload`).
    pub trigger: &'a str,
    /// The policy generation audited against.
    pub policy_generation: u64,
    /// Where each document of the policy in force was read, as a JSON object (policy name to
    /// a file's path, or `api:Kind/name@generation`); empty: not said.
    pub policy_sources: &'a str,
}

impl ReportContext<'_> {
    /// The metadata of the report of `namespace` (none: the containers made outside
    /// Kubernetes).
    fn metadata(&self, namespace: Option<&str>) -> Metadata {
        let name = match namespace {
            Some(_) => format!("nodeguard-{}", self.node),
            None => format!("nodeguard-{}-non-kubernetes", self.node),
        };
        let mut annotations = BTreeMap::from([
            (
                "nodeguard.io/generated".to_string(),
                humantime::format_rfc3339_seconds(self.generated).to_string(),
            ),
            ("nodeguard.io/trigger".into(), self.trigger.to_string()),
            (
                "nodeguard.io/policy-generation".into(),
                self.policy_generation.to_string(),
            ),
        ]);
        if !self.policy_sources.is_empty() {
            annotations.insert(
                "nodeguard.io/policy-sources".into(),
                self.policy_sources.to_string(),
            );
        }
        Metadata {
            name,
            namespace: namespace.unwrap_or_default().to_string(),
            labels: BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), "nodeguard".into()),
                ("nodeguard.io/node".into(), self.node.to_string()),
            ]),
            annotations,
        }
    }
}

/// The `PolicyReport` of one namespace's containers (none: the `ClusterPolicyReport` of the
/// containers made outside Kubernetes), every result owned.
pub fn namespace_report(
    context: &ReportContext<'_>,
    namespace: Option<&str>,
    containers: &[ContainerFindings],
) -> PolicyReport {
    let timestamp = Timestamp::of(context.generated);
    let results: Vec<ReportResult> = containers
        .iter()
        .flat_map(|c| {
            c.results.iter().map(
                move |(policy, rule, outcome, effect, message)| ReportResult {
                    policy: policy.to_string(),
                    rule: (*rule).to_string(),
                    result: *outcome,
                    scored: true,
                    source: SOURCE.into(),
                    message: message.clone(),
                    timestamp,
                    resources: c.pod_reference().into_iter().collect(),
                    properties: c.properties(*effect, context.node),
                },
            )
        })
        .collect();
    PolicyReport {
        api_version: API_VERSION.into(),
        kind: if namespace.is_some() {
            "PolicyReport"
        } else {
            "ClusterPolicyReport"
        }
        .into(),
        metadata: context.metadata(namespace),
        summary: Summary::of(&results),
        results,
    }
}

/// The containers of `containers` by report: Kubernetes' namespaces in order, then the
/// containers made outside Kubernetes (`None`), each in the order given.
fn by_namespace(
    containers: &[ContainerFindings],
) -> BTreeMap<(bool, &str), Vec<ContainerFindings>> {
    let mut grouped: BTreeMap<(bool, &str), Vec<ContainerFindings>> = BTreeMap::new();
    for c in containers {
        let outside = c.non_kubernetes.is_some();
        let namespace = if outside { "" } else { c.namespace.as_str() };
        grouped
            .entry((outside, namespace))
            .or_default()
            .push(c.clone());
    }
    grouped
}

/// The report file of `containers`, as [`ReportWriter`] writes it.
pub fn build(context: &ReportContext<'_>, containers: &[ContainerFindings]) -> ReportFile {
    ReportFile::list(
        by_namespace(containers)
            .into_iter()
            .map(|((outside, namespace), containers)| {
                namespace_report(context, (!outside).then_some(namespace), &containers)
            })
            .collect(),
    )
}

/// Writes a report file as a compliance audit goes, one namespace's report at a time, so that
/// the findings of thousands of containers are never all in memory and the file is written
/// while the next namespace is judged. The JSON is byte for byte [`ReportFile`]'s compact
/// serialization (a test checks it); what every result of a container repeats (its pod, its
/// properties) is escaped once per container. Nothing replaces the file until
/// [`ReportWriter::finish`]; dropped before, the temporary file is removed.
pub struct ReportWriter {
    out: Option<std::io::BufWriter<std::fs::File>>,
    tmp: PathBuf,
    path: PathBuf,
    /// Items written so far.
    items: usize,
    /// `,"timestamp":{...}` of every result.
    timestamp: String,
    /// The node's name, escaped as a JSON string.
    node: Vec<u8>,
    /// Metadata of a namespace's report, but for its namespace.
    metadata: Metadata,
    /// Metadata of the report of the containers made outside Kubernetes.
    outside_metadata: Metadata,
}

impl std::fmt::Debug for ReportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWriter")
            .field("path", &self.path)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

/// Writes `text` as a JSON string.
fn json_string(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    json_value(out, &text)
}

/// Writes `value` as JSON.
fn json_value(out: &mut impl std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(out, value).map_err(std::io::Error::other)
}

impl ReportWriter {
    /// Starts the report file of the audit `context` describes at `path` (a temporary file
    /// beside it until [`ReportWriter::finish`]). Creates the directory if needed.
    ///
    /// # Errors
    /// When the directory or the file cannot be created.
    pub fn create(path: &Path, context: &ReportContext<'_>) -> std::io::Result<Self> {
        let tmp = temporary_beside(path)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(256 << 10, file);
        let started = out.write_all(br#"{"apiVersion":"v1","kind":"List","items":["#);
        let timestamp = serde_json::to_string(&Timestamp::of(context.generated))
            .map_err(std::io::Error::other)?;
        let mut node = Vec::new();
        json_string(&mut node, context.node)?;
        let writer = ReportWriter {
            out: Some(out),
            tmp,
            path: path.to_path_buf(),
            items: 0,
            timestamp: format!(r#","timestamp":{timestamp}"#),
            node,
            metadata: context.metadata(Some("")),
            outside_metadata: context.metadata(None),
        };
        started.map(|()| writer)
    }

    /// Writes the report of `namespace`'s containers (none: the `ClusterPolicyReport` of the
    /// containers made outside Kubernetes). Reports go in the order written.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn namespace(
        &mut self,
        namespace: Option<&str>,
        containers: &[ContainerFindings],
    ) -> std::io::Result<()> {
        let mut out = self
            .out
            .take()
            .ok_or_else(|| std::io::Error::other("the report was already finished"))?;
        let written = self.render(&mut out, namespace, containers);
        // Kept on failure too: dropping the writer then removes the temporary file.
        self.out = Some(out);
        self.items += 1;
        written
    }

    /// One report item, as `serde_json::to_writer(&PolicyReport)` writes it.
    fn render(
        &mut self,
        out: &mut impl std::io::Write,
        namespace: Option<&str>,
        containers: &[ContainerFindings],
    ) -> std::io::Result<()> {
        if self.items > 0 {
            out.write_all(b",")?;
        }
        let mut summary = Summary::default();
        for c in containers {
            for r in &c.results {
                summary.add(r.2);
            }
        }
        let kind = if namespace.is_some() {
            "PolicyReport"
        } else {
            "ClusterPolicyReport"
        };
        out.write_all(br#"{"apiVersion":"#)?;
        json_string(out, API_VERSION)?;
        out.write_all(br#","kind":"#)?;
        json_string(out, kind)?;
        out.write_all(br#","metadata":"#)?;
        match namespace {
            Some(namespace) => {
                self.metadata.namespace = namespace.to_string();
                json_value(out, &self.metadata)?;
            }
            None => json_value(out, &self.outside_metadata)?,
        }
        out.write_all(br#","summary":"#)?;
        json_value(out, &summary)?;
        out.write_all(br#","results":["#)?;
        let mut first = true;
        // What every result of one container repeats, escaped once: from `,"resources"` to
        // the effect's value, and after it to the end of the properties.
        let (mut before_effect, mut after_effect) = (Vec::new(), Vec::new());
        for c in containers {
            before_effect.clear();
            after_effect.clear();
            before_effect.extend_from_slice(self.timestamp.as_bytes());
            before_effect.extend_from_slice(br#","resources":["#);
            if c.non_kubernetes.is_none() {
                before_effect.extend_from_slice(br#"{"apiVersion":"v1","kind":"Pod","namespace":"#);
                json_string(&mut before_effect, &c.namespace)?;
                before_effect.extend_from_slice(br#","name":"#);
                json_string(&mut before_effect, &c.pod)?;
                if !c.pod_uid.is_empty() {
                    before_effect.extend_from_slice(br#","uid":"#);
                    json_string(&mut before_effect, &c.pod_uid)?;
                }
                before_effect.push(b'}');
            }
            before_effect.extend_from_slice(br#"],"properties":{"container":"#);
            json_string(&mut before_effect, &c.container)?;
            before_effect.extend_from_slice(br#","containerID":"#);
            json_string(&mut before_effect, &c.container_id)?;
            if let Some(namespace) = &c.non_kubernetes {
                before_effect.extend_from_slice(br#","containerdNamespace":"#);
                json_string(&mut before_effect, namespace)?;
            }
            before_effect.extend_from_slice(br#","effect":"#);
            if let Some(image) = &c.image {
                after_effect.extend_from_slice(br#","image":"#);
                json_string(&mut after_effect, image)?;
            }
            after_effect.extend_from_slice(br#","node":"#);
            after_effect.extend_from_slice(&self.node);
            if c.non_kubernetes.is_some() {
                after_effect.extend_from_slice(br#","nonKubernetes":"true""#);
            }
            if let Some(remediation) = &c.remediation {
                after_effect.extend_from_slice(br#","remediation":"#);
                json_string(&mut after_effect, remediation)?;
            }
            if c.started_while_away {
                after_effect.extend_from_slice(br#","startedWhileAway":"true""#);
            }
            after_effect.extend_from_slice(b"}}");
            for (policy, rule, outcome, effect, message) in &c.results {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                out.write_all(br#"{"policy":"#)?;
                json_string(out, policy)?;
                out.write_all(br#","rule":"#)?;
                json_string(out, rule)?;
                out.write_all(br#","result":""#)?;
                out.write_all(outcome.as_str().as_bytes())?;
                out.write_all(br#"","scored":true,"source":"#)?;
                json_string(out, SOURCE)?;
                if !message.is_empty() {
                    out.write_all(br#","message":"#)?;
                    json_string(out, message)?;
                }
                out.write_all(&before_effect)?;
                json_string(out, effect.as_str())?;
                out.write_all(&after_effect)?;
            }
        }
        out.write_all(b"]}")?;
        Ok(())
    }

    /// Ends the file and puts it in place of the previous report, atomically (renamed over
    /// it; not synced: see below).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn finish(mut self) -> std::io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| std::io::Error::other("the report was already finished"))?;
        // Not synced: the report is rewritten by every audit, the first one at each
        // registration, so after a crash a stale or torn file lives until nodeguard is back
        // (and `nodeguard report` says it cannot read it); syncing tens of megabytes at every
        // audit would cost the node's disk more than that is worth. The rename still makes
        // every reader see one whole report.
        finish_beside(out, b"]}\n", &self.tmp, &self.path, false)
    }
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes the report of `containers` to `path` atomically (what a compliance audit writes,
/// in one call).
///
/// # Errors
/// When the directory cannot be written.
pub fn write_findings(
    path: &Path,
    context: &ReportContext<'_>,
    containers: &[ContainerFindings],
) -> std::io::Result<()> {
    let mut writer = ReportWriter::create(path, context)?;
    for ((outside, namespace), containers) in by_namespace(containers) {
        writer.namespace((!outside).then_some(namespace), &containers)?;
    }
    writer.finish()
}

/// Where each compliance audit's reports go besides the file (the API server, in the
/// cluster-connected mode). `publish` must not block: the sink keeps the newest reports and
/// writes them at its own pace.
pub trait ReportSink: Send + Sync + std::fmt::Debug {
    /// The reports of the audit that just finished, replacing any not yet written.
    fn publish(&self, reports: ReportFile);
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over it, so a reader sees the old content or the new, never half of one. Creates
/// the directory if needed.
///
/// # Errors
/// When the directory cannot be written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_beside(path)?;
    let written = std::fs::File::create(&tmp)
        .and_then(|file| finish_beside(std::io::BufWriter::new(file), bytes, &tmp, path, true));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The temporary file beside `path` that [`finish_beside`] renames over it, a new name at
/// each call (a cancelled audit's writer may still be removing its own); creates the
/// directory if needed. The temporary files of `path` that a killed nodeguard left (a crash
/// in the middle of an audit leaves tens of megabytes, under another pid) are removed: writes
/// of one path never overlap, but for a cancelled one's, which is never put in place.
fn temporary_beside(path: &Path) -> std::io::Result<PathBuf> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "nodeguard".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&prefix) && file.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(dir.join(format!("{prefix}{}.{write}.tmp", std::process::id())))
}

/// Writes `last` to `out` (the temporary file `tmp`), syncs it when `sync` says so and
/// renames it over `path`; on failure removes `tmp`.
fn finish_beside(
    mut out: std::io::BufWriter<std::fs::File>,
    last: &[u8],
    tmp: &Path,
    path: &Path,
    sync: bool,
) -> std::io::Result<()> {
    let written = out
        .write_all(last)
        .and_then(|()| {
            let file = out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            if sync { file.sync_all() } else { Ok(()) }
        })
        .and_then(|()| std::fs::rename(tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// Why a report file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read the report {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a report.
    #[error("{path}: not a nodeguard report (line {line}, column {column}): {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line of the problem.
        line: usize,
        /// Column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a report file.
///
/// # Errors
/// When the file is missing, unreadable or not a report.
pub fn read(path: &Path) -> Result<ReportFile, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReadError::Invalid {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The sum of every namespace's summary.
pub fn total(report: &ReportFile) -> Summary {
    report.items.iter().fold(Summary::default(), |mut t, r| {
        t.merge(&r.summary);
        t
    })
}

/// Which results `nodeguard report` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Passes too (by default only what needs attention).
    pub all: bool,
}

impl Filter {
    fn keeps(&self, report: &PolicyReport, result: &ReportResult) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == report.metadata.namespace)
            && (self.all || result.result != Outcome::Pass)
    }

    /// The report with only the namespaces and results this filter keeps; each report's
    /// summary still counts all its results.
    pub fn apply(&self, report: &ReportFile) -> ReportFile {
        let mut out = report.clone();
        out.items.retain(|r| {
            self.namespace
                .as_deref()
                .is_none_or(|ns| ns == r.metadata.namespace)
        });
        for r in &mut out.items {
            let kept: Vec<ReportResult> = r
                .results
                .iter()
                .filter(|res| self.keeps(r, res))
                .cloned()
                .collect();
            r.results = kept;
        }
        out
    }
}

/// The report as a table: a header line with where and when, the totals, then one row per
/// result the filter keeps.
pub fn render_table(report: &ReportFile, filter: &Filter) -> String {
    let mut out = String::new();
    let first = report.items.first();
    let annotation = |key: &str| {
        first
            .and_then(|r| r.metadata.annotations.get(key))
            .map_or("-", String::as_str)
    };
    let node = first
        .and_then(|r| r.metadata.labels.get("nodeguard.io/node"))
        .map_or("-", String::as_str);
    let scoped = Filter {
        namespace: filter.namespace.clone(),
        all: true,
    }
    .apply(report);
    let t = total(&scoped);
    let _ = writeln!(
        out,
        "node {node}, audited {} ({}), policy generation {}",
        annotation("nodeguard.io/generated"),
        annotation("nodeguard.io/trigger"),
        annotation("nodeguard.io/policy-generation"),
    );
    let _ = writeln!(
        out,
        "pass {}  fail {}  warn {}  error {}  skip {}",
        t.pass, t.fail, t.warn, t.error, t.skip
    );
    let rows: Vec<[String; 7]> = filter
        .apply(report)
        .items
        .iter()
        .flat_map(|r| {
            r.results.iter().map(|res| {
                let pod = res
                    .resources
                    .first()
                    .map_or("-", |o| o.name.as_str())
                    .to_string();
                let namespace = match res.properties.get("containerdNamespace") {
                    Some(ns) if res.property("nonKubernetes") == "true" => {
                        format!("(containerd {ns})")
                    }
                    _ => r.metadata.namespace.clone(),
                };
                let mut message = res.message.clone();
                if res.property("startedWhileAway") == "true" {
                    message.push_str(" [started while nodeguard was not running]");
                }
                if !res.property("remediation").is_empty() {
                    let _ = write!(message, " [remediation: {}]", res.property("remediation"));
                }
                [
                    namespace,
                    pod,
                    res.property("container").to_string(),
                    res.result.as_str().to_uppercase(),
                    res.policy.clone(),
                    res.rule.clone(),
                    message.trim().to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        let audited_here = scoped.items.iter().any(|r| !r.results.is_empty());
        match &filter.namespace {
            Some(ns) if !audited_here => {
                let _ = writeln!(
                    out,
                    "no results in namespace {ns:?}: the last audit judged no container there"
                );
            }
            _ if !audited_here => out.push_str("no containers audited\n"),
            _ => out.push_str("nothing to report: every audited rule passed\n"),
        }
        return out;
    }
    let header = [
        "NAMESPACE",
        "POD",
        "CONTAINER",
        "RESULT",
        "POLICY",
        "RULE",
        "MESSAGE",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(6) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i < 6 {
                let _ = write!(l, "{cell:<width$}  ", width = widths[i]);
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// The cluster-wide view of the reports every node wrote to the API server (`nodeguard report
/// --cluster`): each node's totals and last audit, each namespace's, then the failing
/// containers by policy and rule. `filter` keeps a namespace, and with `all` the passing
/// results too.
pub fn render_cluster(reports: &[PolicyReport], filter: &Filter) -> String {
    let node_of = |r: &PolicyReport| {
        r.metadata
            .labels
            .get("nodeguard.io/node")
            .cloned()
            .unwrap_or_else(|| "-".into())
    };
    let kept: Vec<&PolicyReport> = reports
        .iter()
        .filter(|r| {
            filter
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == r.metadata.namespace)
        })
        .collect();
    let mut nodes: BTreeMap<String, (Summary, String)> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, Summary> = BTreeMap::new();
    // (policy, rule) -> failing `node namespace/pod container: message`.
    let mut failing: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in &kept {
        let node = node_of(r);
        let counted = Summary::of(&r.results);
        let entry = nodes.entry(node.clone()).or_default();
        entry.0.merge(&counted);
        if let Some(at) = r.metadata.annotations.get("nodeguard.io/generated")
            && *at > entry.1
        {
            entry.1.clone_from(at);
        }
        let namespace = if r.metadata.namespace.is_empty() {
            "(outside Kubernetes)".to_string()
        } else {
            r.metadata.namespace.clone()
        };
        namespaces
            .entry(namespace.clone())
            .or_default()
            .merge(&counted);
        for res in &r.results {
            if res.result == Outcome::Fail || (filter.all && res.result != Outcome::Pass) {
                let pod = res.resources.first().map_or("-", |o| o.name.as_str());
                failing
                    .entry((res.policy.clone(), res.rule.clone()))
                    .or_default()
                    .push(format!(
                        "{node} {namespace}/{pod} {}: {}",
                        res.property("container"),
                        res.message
                    ));
            }
        }
    }
    let mut out = String::new();
    let total = nodes.values().fold(Summary::default(), |mut t, (s, _)| {
        t.merge(s);
        t
    });
    let _ = writeln!(
        out,
        "cluster: {} nodes, {} namespaces; pass {}  fail {}  warn {}  error {}  skip {}",
        nodes.len(),
        namespaces.len(),
        total.pass,
        total.fail,
        total.warn,
        total.error,
        total.skip
    );
    let _ = writeln!(out, "\nNODE\tPASS\tFAIL\tWARN\tSKIP\tAUDITED");
    for (node, (s, at)) in &nodes {
        let _ = writeln!(
            out,
            "{node}\t{}\t{}\t{}\t{}\t{at}",
            s.pass, s.fail, s.warn, s.skip
        );
    }
    let _ = writeln!(out, "\nNAMESPACE\tPASS\tFAIL\tWARN\tSKIP");
    for (namespace, s) in &namespaces {
        let _ = writeln!(
            out,
            "{namespace}\t{}\t{}\t{}\t{}",
            s.pass, s.fail, s.warn, s.skip
        );
    }
    if failing.is_empty() {
        let _ = writeln!(out, "\nno container fails a rule");
    }
    for ((policy, rule), containers) in &failing {
        let _ = writeln!(out, "\n{policy} [{rule}]: {}", containers.len());
        for c in containers {
            let _ = writeln!(out, "  {c}");
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use policy_core::Effect;

    /// One container's findings: `results` of policy `corp`, messages for all but passes.
    pub(in crate::compliance) fn findings(
        ns: &str,
        pod: &str,
        id: &str,
        results: &[(&'static str, Outcome)],
    ) -> ContainerFindings {
        ContainerFindings {
            namespace: ns.into(),
            pod: pod.into(),
            pod_uid: format!("uid-{pod}"),
            container: "app".into(),
            container_id: id.into(),
            image: Some("docker.io/library/busybox:1.36".into()),
            results: results
                .iter()
                .map(|(rule, o)| {
                    let message = if *o == Outcome::Pass {
                        String::new()
                    } else {
                        format!("{rule} broken")
                    };
                    (Arc::from("corp"), *rule, *o, Effect::Enforce, message)
                })
                .collect(),
            started_while_away: id == "c2",
            remediation: None,
            non_kubernetes: None,
        }
    }

    /// The context of a periodic audit of `node-1` at the epoch.
    fn epoch_context() -> ReportContext<'static> {
        ReportContext {
            node: "node-1",
            generated: SystemTime::UNIX_EPOCH,
            trigger: "periodic",
            policy_generation: 1,
            policy_sources: "",
        }
    }

    /// The report file `ReportWriter` writes of `containers`, checked to be byte for byte the
    /// compact JSON of the report `build` makes of them (two implementations, one format).
    fn written(context: &ReportContext<'_>, containers: &[ContainerFindings]) -> ReportFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_findings(&path, context, containers).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let built = build(context, containers);
        assert_eq!(text, serde_json::to_string(&built).unwrap() + "\n");
        let file: ReportFile = serde_json::from_str(&text).unwrap();
        assert_eq!(file, built);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        file
    }

    #[test]
    fn containers_made_outside_kubernetes_get_a_cluster_report_of_their_own() {
        let mut outside = findings("", "", "x", &[("privileged", Outcome::Fail)]);
        outside.container = "x".into();
        outside.pod_uid = String::new();
        outside.non_kubernetes = Some("default".into());
        outside.remediation = Some("stopping".into());
        let mut in_k8s_io = findings("", "", "y", &[("privileged", Outcome::Pass)]);
        in_k8s_io.non_kubernetes = Some("k8s.io".into());
        let containers = [
            outside,
            findings("prod", "web", "c1", &[("privileged", Outcome::Pass)]),
            in_k8s_io,
        ];
        let context = epoch_context();
        let file = written(&context, &containers);
        let kinds: Vec<(&str, &str, &str)> = file
            .items
            .iter()
            .map(|r| {
                (
                    r.kind.as_str(),
                    r.metadata.name.as_str(),
                    r.metadata.namespace.as_str(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("PolicyReport", "nodeguard-node-1", "prod"),
                ("ClusterPolicyReport", "nodeguard-node-1-non-kubernetes", "")
            ]
        );
        let outside = &file.items[1];
        assert_eq!(outside.summary.fail, 1);
        assert_eq!(outside.summary.pass, 1);
        let x = &outside.results[0];
        assert!(x.resources.is_empty(), "no pod");
        assert_eq!(x.property("nonKubernetes"), "true");
        assert_eq!(x.property("containerdNamespace"), "default");
        assert_eq!(x.property("container"), "x");
        assert_eq!(outside.results[1].property("containerdNamespace"), "k8s.io");
        let table = render_table(&file, &Filter::default());
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("(containerd default)  -")
                    && l.contains("FAIL")
                    && l.ends_with("[remediation: stopping]")),
            "{table}"
        );
    }

    #[test]
    fn the_written_report_is_byte_for_byte_a_report_files_json() {
        let mut remediated = findings("prod", "web", "c1", &[("privileged", Outcome::Fail)]);
        remediated.remediation = Some("stopping".into());
        remediated.pod_uid = String::new();
        let mut imageless = findings("kube-system", "dns", "c4", &[("privileged", Outcome::Pass)]);
        imageless.image = None;
        let containers = [
            remediated,
            findings(
                "dev",
                "job",
                "c2",
                &[("privileged", Outcome::Warn), ("procMount", Outcome::Skip)],
            ),
            imageless,
            findings("prod", "db", "c3", &[("images.allowed", Outcome::Error)]),
        ];
        let context = ReportContext {
            node: "node-1",
            generated: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
            trigger: "periodic",
            policy_generation: 7,
            policy_sources: "",
        };
        let file = written(&context, &containers);
        let namespaces: Vec<&str> = file
            .items
            .iter()
            .map(|r| r.metadata.namespace.as_str())
            .collect();
        assert_eq!(namespaces, ["dev", "kube-system", "prod"]);
        let prod = &file.items[2];
        assert_eq!(prod.results.len(), 2);
        assert_eq!(prod.summary.fail, 1);
        assert_eq!(prod.summary.error, 1);
        assert_eq!(prod.results[0].property("remediation"), "stopping");
        assert_eq!(prod.results[0].resources[0].uid, "");
        assert_eq!(
            file.items[0].results[0].property("startedWhileAway"),
            "true"
        );
        assert_eq!(file.items[1].results[0].property("image"), "");
    }

    #[test]
    fn text_that_needs_escaping_is_written_as_serde_would() {
        let mut odd = findings(
            "ns-\"quoted\"",
            "pod\\back\nslash",
            "c1",
            &[("privileged", Outcome::Fail), ("procMount", Outcome::Pass)],
        );
        odd.results[0].4 = "tab\there, \u{1}control, é and \u{1F600}".into();
        odd.image = Some("registry.local/a\"b:1".into());
        odd.remediation = Some("skipped: nodeguard's own pod".into());
        let mut outside = findings("", "", "x", &[("privileged", Outcome::Skip)]);
        outside.non_kubernetes = Some("buildkit\u{7f}".into());
        let context = ReportContext {
            node: "node-\"1\"",
            generated: SystemTime::UNIX_EPOCH + std::time::Duration::new(1_795_000_000, 123),
            trigger: "registration",
            policy_generation: 3,
            policy_sources: r#"{"corp":"/etc/nodeguard/policy.yaml"}"#,
        };
        let file = written(&context, &[outside, odd]);
        assert_eq!(file.items.len(), 2);
        assert_eq!(file.items[0].metadata.namespace, "ns-\"quoted\"");
        assert_eq!(
            file.items[0].metadata.annotations["nodeguard.io/policy-sources"],
            context.policy_sources
        );
        assert_eq!(
            file.items[0].results[0].message,
            "tab\there, \u{1}control, é and \u{1F600}"
        );
        assert_eq!(file.items[0].results[0].timestamp.nanos, 123);
    }

    #[test]
    fn temporary_files_a_killed_nodeguard_left_are_removed_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let stale = dir.path().join(".report.json.4242.7.tmp");
        std::fs::write(
            &stale,
            b"{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[",
        )
        .unwrap();
        let other = dir.path().join(".containers.json.4242.0.tmp");
        std::fs::write(&other, b"{}").unwrap();
        let context = epoch_context();
        write_findings(&path, &context, &[]).unwrap();
        assert!(!stale.exists(), "the report's leftover is gone");
        assert!(
            other.exists(),
            "another file's is not the report's to remove"
        );
        assert_eq!(read(&path).unwrap(), build(&context, &[]));
    }

    #[test]
    fn a_writer_dropped_before_it_finishes_leaves_the_previous_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let context = epoch_context();
        let before = [findings(
            "prod",
            "web",
            "c1",
            &[("privileged", Outcome::Pass)],
        )];
        write_findings(&path, &context, &before).unwrap();
        let mut writer = ReportWriter::create(&path, &context).unwrap();
        writer
            .namespace(
                Some("prod"),
                &[findings(
                    "prod",
                    "db",
                    "c2",
                    &[("privileged", Outcome::Fail)],
                )],
            )
            .unwrap();
        drop(writer);
        assert_eq!(read(&path).unwrap(), build(&context, &before));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn sample() -> ReportFile {
        build(
            &ReportContext {
                node: "node-1",
                generated: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
                trigger: "registration",
                policy_generation: 2,
                policy_sources: "",
            },
            &[
                findings(
                    "prod",
                    "web",
                    "c1",
                    &[
                        ("privileged", Outcome::Pass),
                        ("images.allowed", Outcome::Fail),
                    ],
                ),
                findings(
                    "dev",
                    "job",
                    "c2",
                    &[("privileged", Outcome::Warn), ("procMount", Outcome::Skip)],
                ),
                findings("prod", "db", "c3", &[("privileged", Outcome::Pass)]),
            ],
        )
    }

    #[test]
    fn one_policy_report_per_namespace_with_summaries_and_pod_references() {
        let r = sample();
        assert_eq!((r.api_version.as_str(), r.kind.as_str()), ("v1", "List"));
        let namespaces: Vec<&str> = r
            .items
            .iter()
            .map(|i| i.metadata.namespace.as_str())
            .collect();
        assert_eq!(namespaces, ["dev", "prod"]);
        let prod = &r.items[1];
        assert_eq!(prod.api_version, API_VERSION);
        assert_eq!(prod.kind, "PolicyReport");
        assert_eq!(prod.metadata.name, "nodeguard-node-1");
        assert_eq!(
            prod.summary,
            Summary {
                pass: 2,
                fail: 1,
                ..Summary::default()
            }
        );
        let fail = prod
            .results
            .iter()
            .find(|r| r.result == Outcome::Fail)
            .unwrap();
        assert_eq!(fail.rule, "images.allowed");
        assert_eq!(fail.resources[0].kind, "Pod");
        assert_eq!(fail.resources[0].name, "web");
        assert_eq!(fail.property("containerID"), "c1");
        assert_eq!(fail.timestamp.seconds, 1_795_000_000);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["items"][0]["results"][0]["result"], "warn");
        assert_eq!(
            json["items"][0]["results"][0]["properties"]["startedWhileAway"],
            "true"
        );
        assert_eq!(
            json["items"][1]["metadata"]["annotations"]["nodeguard.io/trigger"],
            "registration"
        );
    }

    #[test]
    fn a_written_report_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/report.json");
        write_atomically(&path, &serde_json::to_vec_pretty(&sample()).unwrap()).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back, sample());
        assert_eq!(
            total(&back),
            Summary {
                pass: 2,
                fail: 1,
                warn: 1,
                error: 0,
                skip: 1
            }
        );
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn reading_a_missing_or_foreign_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(&dir.path().join("none.json")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read the report "), "{missing}");
        let foreign = dir.path().join("x.json");
        std::fs::write(&foreign, "{\n  \"kind\": 3\n}\n").unwrap();
        let err = read(&foreign).unwrap_err().to_string();
        assert!(err.contains("not a nodeguard report (line 2,"), "{err}");
    }

    #[test]
    fn the_table_shows_what_needs_attention_and_filters_by_namespace() {
        let r = sample();
        let table = render_table(&r, &Filter::default());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "node node-1, audited 2026-11-18T11:06:40Z (registration), policy generation 2"
        );
        assert_eq!(lines[1], "pass 2  fail 1  warn 1  error 0  skip 1");
        assert!(
            lines[2].starts_with("NAMESPACE  POD  CONTAINER  RESULT  POLICY  RULE"),
            "{table}"
        );
        assert_eq!(lines.len(), 6, "{table}");
        assert!(
            table.contains("WARN") && table.contains("[started while nodeguard was not running]")
        );
        assert!(!table.contains("PASS"));
        let prod = render_table(
            &r,
            &Filter {
                namespace: Some("prod".into()),
                all: true,
            },
        );
        assert!(
            prod.lines().nth(1).unwrap() == "pass 2  fail 1  warn 0  error 0  skip 0",
            "{prod}"
        );
        assert_eq!(
            prod.lines().filter(|l| l.starts_with("prod ")).count(),
            3,
            "{prod}"
        );
        let clean = render_table(
            &r,
            &Filter {
                namespace: Some("none".into()),
                all: false,
            },
        );
        assert!(
            clean.ends_with(
                "no results in namespace \"none\": the last audit judged no container there\n"
            ),
            "{clean}"
        );
        // A namespace whose every result passes says so.
        let staging = build(
            &ReportContext {
                node: "node-1",
                generated: SystemTime::UNIX_EPOCH,
                trigger: "periodic",
                policy_generation: 1,
                policy_sources: "",
            },
            &[findings(
                "staging",
                "api",
                "c9",
                &[("privileged", Outcome::Pass)],
            )],
        );
        let passing = render_table(
            &staging,
            &Filter {
                namespace: Some("staging".into()),
                all: false,
            },
        );
        assert!(
            passing.ends_with("nothing to report: every audited rule passed\n"),
            "{passing}"
        );
    }
}
