//! Compliance audits of the containers already running: at every registration (NRI's
//! `Synchronize` hands over what exists, including what started while nodeguard was away),
//! periodically, and after every policy reload. Each container is judged on its full OCI spec
//! from containerd; every decision goes to the audit log (phase `sync`); the results go to the
//! PolicyReport file ([`report`]); and, for rules that say `remediate: stop`, containers found
//! breaking them at registration are stopped through containerd's tasks API.
//!
//! NRI reports only Kubernetes' containers (CRI's). What `ctr`, nerdctl, Docker or buildkit
//! make, in any containerd namespace, is listed through containerd's API at every audit and
//! judged as a non-Kubernetes workload (module `outside`).

mod inventory;
mod outside;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use nodeguard_proto::nri::v1alpha1 as nri;
use policy_core::{
    CheckOutcome, CheckResult, ContainerView, Decision, Effect, Policy, Remediation,
};
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::enforce::{AfterReply, Enforcement, Enforcer, Refusal};
use crate::ops::audit::{self, Phase};
use crate::ops::metrics::DecisionTally;
use crate::runtime::containerd::ContainerdApi;
pub use inventory::{Inventory, read_state, write_state};
use report::{ContainerFindings, Outcome, ReportContext};

/// How many containers' views an audit builds ahead of the one it judges, in all: how many
/// spec reads it asks containerd for at once.
const VIEWS_AHEAD: usize = 8;
/// How many tasks build an audit's views.
const VIEW_BUILDERS: usize = 2;
/// How many built views a builder hands over at once.
const VIEWS_HANDED: usize = 64;

/// Where `nodeguard serve` keeps the ids of the containers it knows to run.
pub const DEFAULT_STATE: &str = "/var/lib/nodeguard/containers.json";

/// The rule id of a report's result for a constraint the node cannot judge (a kind nodeguard
/// does not implement, a match that needs the API server): its outcome is `skip`.
pub const NOT_ENFORCED: &str = "not-enforced";
/// SIGTERM.
const SIGTERM: i32 = 15;
/// SIGKILL.
const SIGKILL: i32 = 9;

/// How compliance audits report and remediate.
#[derive(Debug, Clone)]
pub struct ComplianceConfig {
    /// Where the PolicyReport file goes (none: not written).
    pub report_path: Option<PathBuf>,
    /// How long a container stopped by remediation has between SIGTERM and SIGKILL.
    pub remediation_grace: Duration,
    /// nodeguard's own pod (`namespace`, `name`), which remediation never stops.
    pub own_pod: Option<(String, String)>,
    /// Where nodeguard keeps the ids of the containers it knows to run, to tell after a
    /// restart which ones started while it was away (none: it cannot tell).
    pub state_path: Option<PathBuf>,
    /// Where the reports go besides the file (the API server, in the cluster-connected mode).
    pub report_sink: Option<Arc<dyn report::ReportSink>>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            report_path: None,
            remediation_grace: Duration::from_secs(10),
            own_pod: None,
            state_path: None,
            report_sink: None,
        }
    }
}

/// What started a compliance audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// nodeguard (re)registered with the runtime: the containers of `Synchronize`. `known`:
    /// the containers nodeguard knew to be running before (none on a first start without a
    /// state file); any other is one that started while nodeguard was away.
    Registration {
        /// Container ids known to run before this registration.
        known: Option<HashSet<String>>,
    },
    /// The periodic audit (`--audit-interval`).
    Periodic,
    /// A new policy was loaded.
    PolicyReload,
}

impl Trigger {
    /// The name written in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Registration { .. } => "registration",
            Trigger::Periodic => "periodic",
            Trigger::PolicyReload => "policy-reload",
        }
    }
}

/// What a compliance audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Containers audited.
    pub containers: usize,
    /// Containers whose every rule passed.
    pub pass: u64,
    /// Containers breaking an enforced or audited rule.
    pub fail: u64,
    /// Containers breaking only `warn` rules.
    pub warn: u64,
    /// Containers with rules that could not be evaluated or decided.
    pub skip: u64,
    /// Ids of containers nodeguard did not know to run before a registration: started while
    /// it was away.
    pub started_while_away: Vec<String>,
    /// Ids of containers remediation is stopping.
    pub stopping: Vec<String>,
    /// Of [`AuditSummary::containers`], those made outside Kubernetes (listed through
    /// containerd's API, not NRI).
    pub non_kubernetes: usize,
}

impl AuditSummary {
    /// Counts one container of `outcome`.
    fn count(&mut self, outcome: Outcome) {
        *[
            &mut self.pass,
            &mut self.fail,
            &mut self.warn,
            &mut self.skip,
        ][container_slot(outcome)] += 1;
    }
}

/// Where a container of `outcome` counts among `[pass, fail, warn, skip]` (an error counts
/// as a skip): the audit's summary and the per-namespace counts of containers made outside
/// Kubernetes.
fn container_slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Fail => 1,
        Outcome::Warn => 2,
        Outcome::Error | Outcome::Skip => 3,
    }
}

/// The namespace of a batch of Kubernetes containers' findings (all of one namespace).
fn pod_namespace(batch: &[ContainerFindings]) -> Option<String> {
    batch.first().map(|c| c.namespace.clone())
}

/// What the reports of one audit say about it, owned by the thread that writes them.
struct Header {
    node: String,
    generated: SystemTime,
    trigger: &'static str,
    policy_generation: u64,
    policy_sources: String,
}

/// What the audit hands the writing thread.
enum Handed {
    /// One report's findings: a Kubernetes namespace's (`Some`), or the containers made
    /// outside Kubernetes (`None`).
    Report(Option<String>, Vec<ContainerFindings>),
    /// The audit is complete: put the file in place. Without it (the audit was cancelled, at
    /// shutdown) the partial file is removed and the previous report stays.
    Complete,
}

/// Where one audit's findings go while it judges: the report file, written on a blocking
/// thread one namespace at a time as the audit hands them over (so the file is written while
/// the next namespace is judged, and only a few namespaces' findings are in memory at once),
/// and the reports for the cluster's sink.
struct ReportOutput {
    batches: Option<tokio::sync::mpsc::Sender<Handed>>,
    done: Option<tokio::task::JoinHandle<Written>>,
}

/// What the writing thread did: the file's outcome (none: no file) and the reports for the
/// sink (none: no sink).
type Written = (Option<std::io::Result<()>>, Option<report::ReportFile>);

impl ReportOutput {
    /// Starts the writer of the report file at `path` and, with `sink`, the builder of the
    /// reports for it; with neither, findings are dropped as they come.
    fn start(path: Option<PathBuf>, sink: bool, header: Header) -> Self {
        if path.is_none() && !sink {
            return ReportOutput {
                batches: None,
                done: None,
            };
        }
        // Two namespaces in flight at most: one written, one waiting.
        let (batches, mut received) = tokio::sync::mpsc::channel::<Handed>(2);
        let done = tokio::task::spawn_blocking(move || {
            let context = ReportContext {
                node: &header.node,
                generated: header.generated,
                trigger: header.trigger,
                policy_generation: header.policy_generation,
                policy_sources: &header.policy_sources,
            };
            let mut file = path.map(|p| report::ReportWriter::create(&p, &context));
            let mut items = sink.then(Vec::new);
            loop {
                let (namespace, containers) = match received.blocking_recv() {
                    Some(Handed::Report(namespace, containers)) => (namespace, containers),
                    Some(Handed::Complete) => break,
                    // Cancelled: the writer's drop removes the partial file.
                    None => return (None, None),
                };
                if let Some(Ok(writer)) = &mut file
                    && let Err(e) = writer.namespace(namespace.as_deref(), &containers)
                {
                    file = Some(Err(e));
                }
                if let Some(items) = &mut items {
                    items.push(report::namespace_report(
                        &context,
                        namespace.as_deref(),
                        &containers,
                    ));
                }
            }
            (
                file.map(|f| f.and_then(report::ReportWriter::finish)),
                items.map(report::ReportFile::list),
            )
        });
        ReportOutput {
            batches: Some(batches),
            done: Some(done),
        }
    }

    /// Hands one report's findings over (waits while the writer is two behind).
    async fn send(&mut self, namespace: Option<String>, containers: Vec<ContainerFindings>) {
        if let Some(batches) = &self.batches
            && batches
                .send(Handed::Report(namespace, containers))
                .await
                .is_err()
        {
            // The writing thread is gone (it panicked): `finish` says so.
            self.batches = None;
        }
    }

    /// Waits for the file to be in place and the sink's reports to be built.
    async fn finish(mut self) -> Written {
        if let Some(batches) = self.batches.take() {
            // An error here means the thread is gone; awaiting it says why.
            let _ = batches.send(Handed::Complete).await;
        }
        match self.done.take() {
            Some(done) => done.await.unwrap_or_else(|e| {
                (
                    Some(Err(std::io::Error::other(format!(
                        "the report writer failed: {e}"
                    )))),
                    None,
                )
            }),
            None => (None, None),
        }
    }
}

/// Keeps track of what runs and audits it: the enforcer's judgement applied to the inventory,
/// with the report, the state file and remediation. It is what the NRI service talks to
/// ([`Enforcement`]): requests to judge go to the enforcer, news of what runs to the inventory.
pub struct Auditor<S> {
    enforcer: Arc<Enforcer<S>>,
    /// The containers running on the node, as NRI told.
    inventory: Inventory,
    config: ComplianceConfig,
    /// Held while a compliance audit runs: audits never overlap.
    auditing: tokio::sync::Mutex<()>,
    /// The inventory change count last written to the state file.
    state_written: tokio::sync::Mutex<Option<u64>>,
    /// The tasks made outside Kubernetes that the last audit listed, by containerd namespace:
    /// one not there is seen for the first time.
    outside_seen: std::sync::Mutex<HashMap<String, HashSet<outside::Seen>>>,
}

/// A container of the inventory with its view and, when its spec could not be read, why.
type Built = (
    Arc<nri::PodSandbox>,
    Arc<nri::Container>,
    (ContainerView, Option<String>),
);

/// The tasks that build an audit's views (each a spec read from containerd, parsed, and the
/// view), ahead of the judging, in the snapshot's order. The snapshot is cut into batches of
/// [`VIEWS_HANDED`]; builder `k` builds batches `k`, `k + VIEW_BUILDERS`, ..., each with its
/// reads overlapping ([`VIEWS_AHEAD`] in all: one at a time, an audit would wait out
/// containerd's answer for every container in turn), and hands each batch over whole (one
/// wake-up per batch, not per container). On two cores the builders and the judging task run
/// side by side. The builders are aborted if the audit is dropped.
struct ViewBuilders {
    batches: Vec<tokio::sync::mpsc::Receiver<Vec<Built>>>,
    builders: Vec<AbortOnDropHandle<()>>,
    /// The batch to take next.
    next: usize,
}

impl ViewBuilders {
    fn start<S: ContainerdApi + 'static>(
        enforcer: &Arc<Enforcer<S>>,
        containers: Vec<(Arc<nri::PodSandbox>, Arc<nri::Container>)>,
    ) -> Self {
        let mut shares: Vec<Vec<_>> = (0..VIEW_BUILDERS).map(|_| Vec::new()).collect();
        for (i, container) in containers.into_iter().enumerate() {
            shares[(i / VIEWS_HANDED) % VIEW_BUILDERS].push(container);
        }
        let (mut batches, mut builders) = (Vec::new(), Vec::new());
        for share in shares {
            let (handed, batch) = tokio::sync::mpsc::channel(2);
            let enforcer = Arc::clone(enforcer);
            builders.push(AbortOnDropHandle::new(tokio::spawn(
                async move {
                    // `chunks` cuts the share back into the snapshot's batches: the share is
                    // whole batches, and at its end perhaps the snapshot's last, shorter one.
                    let views = futures::stream::iter(share)
                        .map(|(pod, container)| {
                            let enforcer = Arc::clone(&enforcer);
                            async move {
                                let viewed = enforcer.full_view(&pod, &container).await;
                                (pod, container, viewed)
                            }
                        })
                        .buffered(VIEWS_AHEAD / VIEW_BUILDERS)
                        .chunks(VIEWS_HANDED);
                    let mut views = std::pin::pin!(views);
                    while let Some(built) = views.next().await {
                        if handed.send(built).await.is_err() {
                            return;
                        }
                    }
                }
                .in_current_span(),
            )));
            batches.push(batch);
        }
        ViewBuilders {
            batches,
            builders,
            next: 0,
        }
    }

    /// The next batch in the snapshot's order; `None` after the last.
    async fn next(&mut self) -> Option<Vec<Built>> {
        let builder = self.next % VIEW_BUILDERS;
        self.next += 1;
        self.batches[builder].recv().await
    }

    /// Waits for the builders to end; if one panicked, the audit fails as it would have
    /// building the views itself.
    async fn finish(self) {
        let ViewBuilders {
            batches, builders, ..
        } = self;
        // A builder still handing over (the judging stopped early) ends at its next send.
        drop(batches);
        for builder in builders {
            if let Err(e) = builder.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

impl<S: ContainerdApi + 'static> Auditor<S> {
    /// An auditor of what `enforcer` judges, reporting and remediating as `config` says.
    pub fn new(enforcer: Arc<Enforcer<S>>, config: ComplianceConfig) -> Self {
        Auditor {
            enforcer,
            inventory: Inventory::default(),
            config,
            auditing: tokio::sync::Mutex::new(()),
            state_written: tokio::sync::Mutex::new(None),
            outside_seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The enforcer whose judgement audits apply.
    pub fn enforcer(&self) -> &Arc<Enforcer<S>> {
        &self.enforcer
    }

    /// The running containers nodeguard knows of.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Audits every running container nodeguard knows of against the policy in force. Audits
    /// never overlap: a second one waits for the first.
    pub async fn compliance_audit(self: &Arc<Self>, trigger: Trigger) -> AuditSummary {
        let _running = self.auditing.lock().await;
        let enforcer = &self.enforcer;
        // Containers that stopped since the last audit leave the inventory here: nodeguard does
        // not subscribe to the stop and remove events. When containerd cannot say, the audit
        // judges what NRI last reported, and a container gone meanwhile is an error result.
        match enforcer.specs().live_tasks().await {
            Ok(live) => {
                let dropped = self.inventory.retain_live(&live);
                if dropped > 0 {
                    debug!(dropped, "containers no longer running left the inventory");
                }
            }
            Err(error) => {
                warn!(%error, "cannot list containerd's tasks; auditing the last known inventory")
            }
        }
        let containers = self.inventory.snapshot();
        {
            let pods: HashSet<&str, foldhash::fast::RandomState> =
                containers.iter().map(|(p, _)| p.id.as_str()).collect();
            enforcer.retain_pods(|id| pods.contains(id));
        }
        let known = match &trigger {
            Trigger::Registration { known } => known.as_ref(),
            _ => None,
        };
        let mut summary = AuditSummary {
            containers: containers.len(),
            ..AuditSummary::default()
        };
        // One policy for the whole audit, and the generation the report names is its own.
        let loaded = enforcer.policy().load_full();
        let (generation, policy) = (loaded.generation, &loaded.policy);
        let sources = serde_json::to_string(
            &policy
                .origins()
                .collect::<std::collections::BTreeMap<&str, &str>>(),
        )
        .unwrap_or_default();
        let mut output = ReportOutput::start(
            self.config.report_path.clone(),
            self.config.report_sink.is_some(),
            Header {
                node: enforcer.node().to_string(),
                generated: SystemTime::now(),
                trigger: trigger.as_str(),
                policy_generation: generation,
                policy_sources: sources,
            },
        );
        // The snapshot is sorted by namespace: each namespace's findings go to the report as
        // soon as the next namespace starts, and are written while it is judged.
        let mut batch: Vec<ContainerFindings> = Vec::new();
        // The decisions are counted in the metrics once the containers are judged.
        let mut tally = DecisionTally::new(Phase::Sync);
        let mut views = ViewBuilders::start(enforcer, containers);
        while let Some(ready) = views.next().await {
            for (pod, container, (mut view, failure)) in ready {
                if batch.last().is_some_and(|c| c.namespace != pod.namespace) {
                    let namespace = pod_namespace(&batch);
                    output.send(namespace, std::mem::take(&mut batch)).await;
                }
                let started = std::time::Instant::now();
                let checks = policy_core::results(policy, &view);
                enforcer
                    .metrics()
                    .evaluation(Phase::Sync, started.elapsed());
                let decision = Decision::from_results(&checks);
                let results = report_results(policy, &view, checks, failure.as_deref(), false);
                let started_while_away = known.is_some_and(|seen| !seen.contains(&container.id));
                let outcome = audit::Outcome::of(&decision, false);
                tally.count(outcome, &decision);
                enforcer.write_record(
                    None,
                    Phase::Sync,
                    outcome,
                    &view,
                    &container.id,
                    &decision,
                    started_while_away,
                );
                if started_while_away {
                    summary.started_while_away.push(container.id.clone());
                    warn!(
                        namespace = %view.pod.namespace,
                        pod = %view.pod.name,
                        container = %view.name,
                        id = %container.id,
                        verdict = ?decision.verdict(),
                        "container started while nodeguard was not running"
                    );
                }
                let stop_for = remediated_rules(&decision);
                let mut remediation = None;
                if matches!(trigger, Trigger::Registration { .. }) && !stop_for.is_empty() {
                    if self.is_own_pod(&pod) {
                        warn!(
                            pod = %pod.name,
                            "not stopping nodeguard's own pod; exempt it from the policy"
                        );
                        remediation = Some("skipped: nodeguard's own pod".to_string());
                    } else {
                        remediation = Some("stopping".to_string());
                        summary.stopping.push(container.id.clone());
                        self.spawn_stop(
                            view.clone(),
                            decision.clone(),
                            &container.id,
                            None,
                            stop_for,
                        );
                    }
                }
                // The view is done with: its strings move into the findings.
                let findings = ContainerFindings {
                    image: view.image.as_ref().map(|i| i.as_str().to_string()),
                    namespace: std::mem::take(&mut view.pod.namespace),
                    pod: std::mem::take(&mut view.pod.name),
                    pod_uid: std::mem::take(&mut view.pod.uid),
                    container: std::mem::take(&mut view.name),
                    container_id: container.id.clone(),
                    results,
                    started_while_away,
                    remediation,
                    non_kubernetes: None,
                };
                summary.count(findings.outcome());
                batch.push(findings);
            }
        }
        views.finish().await;
        enforcer.metrics().add_decisions(&tally);
        if !batch.is_empty() {
            output.send(pod_namespace(&batch), batch).await;
        }
        let mut outside_findings = Vec::new();
        let outside = self
            .audit_outside(&trigger, policy, &mut outside_findings)
            .await;
        summary.non_kubernetes = outside_findings.len();
        summary.containers += summary.non_kubernetes;
        for c in &outside_findings {
            summary.count(c.outcome());
        }
        if !outside_findings.is_empty() {
            output.send(None, outside_findings).await;
        }
        enforcer.metrics().compliance_non_kubernetes(&outside);
        enforcer
            .metrics()
            .compliance(summary.pass, summary.fail, summary.warn, summary.skip);
        self.persist_state().await;
        let (written, reports) = output.finish().await;
        if let (Some(sink), Some(reports)) = (&self.config.report_sink, reports) {
            sink.publish(reports);
        }
        if let Some(Err(error)) = written {
            enforcer.metrics().report_write_failure();
            error!(
                path = %self.config.report_path.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(),
                %error,
                "cannot write the compliance report"
            );
        }
        info!(
            trigger = trigger.as_str(),
            containers = summary.containers,
            pass = summary.pass,
            fail = summary.fail,
            warn = summary.warn,
            skip = summary.skip,
            started_while_away = summary.started_while_away.len(),
            stopping = summary.stopping.len(),
            non_kubernetes = summary.non_kubernetes,
            "compliance audit finished"
        );
        summary
    }

    /// Replaces the inventory with what `Synchronize` delivered; returns what nodeguard knew
    /// to run before: the inventory before it is replaced (after a reconnection), else the
    /// state file a previous nodeguard left.
    pub fn take_inventory(
        &self,
        pods: Vec<Arc<nri::PodSandbox>>,
        containers: Vec<Arc<nri::Container>>,
    ) -> Option<HashSet<String>> {
        let before = self.inventory.replace(pods, containers);
        before.or_else(|| self.config.state_path.as_deref().and_then(read_state))
    }

    /// Writes the running containers' ids to the state file when they changed since the last
    /// write, once a `Synchronize` has filled the inventory. Called after every audit,
    /// periodically and at shutdown; failures are logged and retried.
    pub async fn persist_state(&self) {
        let Some(path) = self.config.state_path.clone() else {
            return;
        };
        let Some((ids, changes)) = self.inventory.ids() else {
            return;
        };
        let mut written = self.state_written.lock().await;
        if *written == Some(changes) {
            return;
        }
        match tokio::task::spawn_blocking(move || write_state(&path, ids)).await {
            Ok(Ok(())) => *written = Some(changes),
            Ok(Err(e)) => warn!(error = %e, "cannot write the state file"),
            Err(e) => warn!(error = %e, "cannot write the state file"),
        }
    }

    /// Audits the containers made outside Kubernetes against `policy`: an audit record each,
    /// their findings added to `all`, remediation where it applies. Returns their counts by
    /// containerd namespace: `[pass, fail, warn, skip]`.
    async fn audit_outside(
        self: &Arc<Self>,
        trigger: &Trigger,
        policy: &Policy,
        all: &mut Vec<ContainerFindings>,
    ) -> BTreeMap<String, [u64; 4]> {
        let enforcer = Arc::clone(&self.enforcer);
        let mut counts = BTreeMap::new();
        let Some(listed) = outside::list(enforcer.specs(), policy).await else {
            return counts;
        };
        let previously = std::mem::take(
            &mut *self
                .outside_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut seen_now = HashMap::new();
        for outside::Listed {
            namespace,
            containers,
        } in listed
        {
            let judged = policy.in_containerd_namespace(&namespace);
            let before: HashSet<outside::Seen> =
                previously.get(&namespace).cloned().unwrap_or_default();
            let mut seen: HashSet<outside::Seen> = HashSet::new();
            let count: &mut [u64; 4] = counts.entry(namespace.clone()).or_default();
            for (record, task) in containers {
                let id = record.id.as_str();
                let (mut view, failure) = outside::view_of(&namespace, &record);
                enforcer
                    .resolve_images_in(&namespace, &mut view, None)
                    .await;
                if failure.is_some() {
                    enforcer.metrics().spec_read_failure();
                }
                let started = Instant::now();
                let mut checks = policy_core::results(&judged, &view);
                enforcer
                    .metrics()
                    .evaluation(Phase::Sync, started.elapsed());
                for check in &mut checks {
                    outside::without_pod(&mut check.findings);
                }
                let decision = Decision::from_results(&checks);
                let results = report_results(&judged, &view, checks, failure.as_deref(), true);
                let outcome = audit::Outcome::of(&decision, false);
                enforcer.metrics().decision(Phase::Sync, outcome, &decision);
                enforcer.write_record(
                    Some(&namespace),
                    Phase::Sync,
                    outcome,
                    &view,
                    id,
                    &decision,
                    false,
                );
                let key: outside::Seen = (record.id.clone(), task.pid);
                let first_sight = !before.contains(&key);
                seen.insert(key);
                let stop_for = remediated_rules(&decision);
                let stops = match trigger {
                    Trigger::Registration { .. } => true,
                    Trigger::Periodic => first_sight,
                    Trigger::PolicyReload => false,
                };
                let mut remediation = None;
                if stops && !stop_for.is_empty() {
                    remediation = Some("stopping".to_string());
                    self.spawn_stop(
                        view.clone(),
                        decision.clone(),
                        id,
                        Some(namespace.clone()),
                        stop_for,
                    );
                } else if first_sight && !decision.violations.is_empty() {
                    warn!(%namespace, id, image = %view.image_text(), verdict = ?decision.verdict(), "container made outside Kubernetes breaks the policy");
                }
                let findings = ContainerFindings {
                    namespace: String::new(),
                    pod: String::new(),
                    pod_uid: String::new(),
                    container: record.id.clone(),
                    container_id: record.id.clone(),
                    image: view.image.as_ref().map(|i| i.as_str().to_string()),
                    results,
                    started_while_away: false,
                    remediation,
                    non_kubernetes: Some(namespace.clone()),
                };
                count[container_slot(findings.outcome())] += 1;
                all.push(findings);
            }
            seen_now.insert(namespace, seen);
        }
        *self
            .outside_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = seen_now;
        counts
    }

    fn is_own_pod(&self, pod: &nri::PodSandbox) -> bool {
        self.config
            .own_pod
            .as_ref()
            .is_some_and(|(ns, name)| *ns == pod.namespace && *name == pod.name)
    }

    /// Stops a container in the background: SIGTERM, then SIGKILL after the grace period.
    /// `outside`: the containerd namespace of a container made outside Kubernetes.
    fn spawn_stop(
        self: &Arc<Self>,
        view: ContainerView,
        decision: Decision,
        id: &str,
        outside: Option<String>,
        rules: Vec<&'static str>,
    ) {
        let this = Arc::clone(self);
        let id = id.to_string();
        let what = match &outside {
            Some(namespace) => format!(
                "container {id} in containerd namespace {namespace} (made outside Kubernetes)"
            ),
            None => format!(
                "container {:?} in pod {}/{} ({id})",
                view.name, view.pod.namespace, view.pod.name
            ),
        };
        tokio::spawn(async move {
            warn!(rules = rules.join(","), "remediation: stopping {what}");
            let rule = rules.first().copied().unwrap_or("");
            let enforcer = &this.enforcer;
            let kill = |signal| {
                let (specs, id, outside) = (enforcer.specs(), &id, &outside);
                async move {
                    match outside {
                        Some(namespace) => specs.kill_in(namespace, id, signal).await,
                        None => specs.kill(id, signal).await,
                    }
                }
            };
            match kill(SIGTERM).await {
                Ok(true) => {
                    tokio::time::sleep(this.config.remediation_grace).await;
                    match kill(SIGKILL).await {
                        Ok(_) => {
                            info!("remediation: stopped {what}");
                            enforcer.metrics().remediation(rule, true);
                            enforcer.metrics().decision(
                                Phase::Sync,
                                audit::Outcome::Stopped,
                                &decision,
                            );
                            enforcer.write_record(
                                outside.as_deref(),
                                Phase::Sync,
                                audit::Outcome::Stopped,
                                &view,
                                &id,
                                &decision,
                                false,
                            );
                        }
                        Err(e) => {
                            error!(error = %e, "remediation: cannot kill {what}");
                            enforcer.metrics().remediation(rule, false);
                        }
                    }
                }
                Ok(false) => {
                    info!("remediation: {what} had already stopped");
                }
                Err(e) => {
                    error!(error = %e, "remediation: cannot stop {what}");
                    enforcer.metrics().remediation(rule, false);
                }
            }
            if outside.is_none() {
                this.inventory.stopped(&id);
            }
        });
    }
}

/// The rules broken by `decision` whose breach stops a running container: enforced, with
/// `remediate: stop`.
fn remediated_rules(decision: &Decision) -> Vec<&'static str> {
    decision
        .violations
        .iter()
        .filter(|v| v.effect == Effect::Enforce && v.remediate == Remediation::Stop)
        .map(|v| v.rule)
        .collect()
}

/// The report's results of one container: one per applied check (a violated check one per
/// violation), then a skip for each constraint the node cannot judge. `failure`: why the
/// container's spec could not be read. `outside`: the container was made outside Kubernetes,
/// so the rules that need its pod skip it ([`outside::NO_POD`]).
fn report_results(
    policy: &Policy,
    view: &ContainerView,
    checks: Vec<CheckResult<'_>>,
    failure: Option<&str>,
    outside: bool,
) -> Vec<report::FoundResult> {
    let mut results = Vec::with_capacity(checks.len());
    for mut check in checks {
        let applied = check.check;
        // The messages move into the results (the decision has its own copies).
        if !check.findings.violations.is_empty() {
            let outcome = if applied.effect == Effect::Warn {
                Outcome::Warn
            } else {
                Outcome::Fail
            };
            for v in std::mem::take(&mut check.findings.violations) {
                results.push((
                    Arc::clone(applied.policy),
                    applied.rule,
                    outcome,
                    applied.effect,
                    v.message,
                ));
            }
            continue;
        }
        let mut result = |outcome, message: String| {
            results.push((
                Arc::clone(applied.policy),
                applied.rule,
                outcome,
                applied.effect,
                message,
            ));
        };
        match check.outcome() {
            CheckOutcome::Pass => result(Outcome::Pass, String::new()),
            // Its violations were taken above.
            CheckOutcome::Violated(_) => {}
            CheckOutcome::Undecided(u) if outside && outside::NO_POD.contains(&u.missing) => {
                result(
                    Outcome::Skip,
                    format!(
                        "{} does not exist for a container made outside Kubernetes",
                        u.missing
                    ),
                );
            }
            CheckOutcome::Undecided(u) => match failure {
                Some(f) if u.seen_on_node() => result(
                    Outcome::Error,
                    format!("cannot evaluate without {}: {f}", u.missing),
                ),
                _ => result(
                    Outcome::Skip,
                    format!("{} is not visible on the node", u.missing),
                ),
            },
        }
    }
    // A constraint the node cannot judge: its containers are skipped for it, not passed.
    for (name, why) in policy.not_enforced(view) {
        results.push((
            Arc::from(name),
            NOT_ENFORCED,
            Outcome::Skip,
            Effect::Disabled,
            format!("not judged on the node: {why}"),
        ));
    }
    results
}

impl<S: ContainerdApi + 'static> Enforcement for Auditor<S> {
    async fn run_pod_sandbox(&self, pod: &nri::PodSandbox) -> Result<(), Refusal> {
        self.enforcer.run_pod_sandbox(pod).await
    }

    async fn create(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> Result<(), Refusal> {
        self.enforcer.create(pod, container).await
    }

    fn created(self: &Arc<Self>, pod: &nri::PodSandbox, container: &nri::Container) {
        self.enforcer.read_ahead(&pod.id, &container.id);
    }

    async fn start(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> Result<(), Refusal> {
        self.enforcer.start(pod, container).await?;
        self.inventory.started(pod, container);
        Ok(())
    }

    fn update(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
        resources: Option<&nri::LinuxResources>,
    ) -> Result<(), Refusal> {
        self.enforcer.update(pod, container, resources)
    }

    fn synchronized(
        self: &Arc<Self>,
        pods: Vec<Arc<nri::PodSandbox>>,
        containers: Vec<Arc<nri::Container>>,
    ) -> AfterReply {
        // Containers created and not started yet: their starts come next; read their specs
        // ahead (begun now, so that an update after the reply drops them).
        let created = containers
            .iter()
            .filter(|c| c.state == nri::ContainerState::ContainerCreated as i32)
            .map(|c| (c.pod_sandbox_id.clone(), c.id.clone()))
            .collect();
        let read_ahead = self.enforcer.read_ahead_existing(created);
        let known = self.take_inventory(pods, containers);
        // Audit what already runs after replying: reading specs takes longer than the
        // runtime's request timeout allows.
        let this = Arc::clone(self);
        Box::new(move || {
            if let Some(read_ahead) = read_ahead {
                read_ahead();
            }
            tokio::spawn(
                async move {
                    this.compliance_audit(Trigger::Registration { known }).await;
                }
                .instrument(info_span!("compliance-audit")),
            );
        })
    }

    fn stopped(&self, container_id: &str) {
        self.enforcer.forget(container_id);
        self.inventory.stopped(container_id);
    }

    fn pod_removed(&self, pod_id: &str) {
        self.inventory.pod_removed(pod_id);
    }

    fn malformed_request(&self, method: &str) {
        self.enforcer.metrics().malformed_request(method);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            node: "node-1".into(),
            generated: SystemTime::UNIX_EPOCH,
            trigger: "periodic",
            policy_generation: 1,
            policy_sources: String::new(),
        }
    }

    fn findings(namespace: &str, id: &str) -> ContainerFindings {
        report::tests::findings(namespace, "web", id, &[("privileged", Outcome::Pass)])
    }

    #[tokio::test]
    async fn a_complete_audit_replaces_the_report_and_a_cancelled_one_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut output = ReportOutput::start(Some(path.clone()), true, header());
        output
            .send(Some("dev".into()), vec![findings("dev", "a")])
            .await;
        output
            .send(Some("prod".into()), vec![findings("prod", "b")])
            .await;
        let (written, reports) = output.finish().await;
        assert!(matches!(written, Some(Ok(()))));
        let file = report::read(&path).unwrap();
        assert_eq!(
            Some(&file),
            reports.as_ref(),
            "the sink gets what the file says"
        );
        assert_eq!(file.items.len(), 2);

        // An audit dropped half way (nodeguard shutting down): the report stays whole.
        let mut cancelled = ReportOutput::start(Some(path.clone()), false, header());
        cancelled
            .send(Some("dev".into()), vec![findings("dev", "c")])
            .await;
        let thread = cancelled.done.take().unwrap();
        drop(cancelled);
        assert!(matches!(thread.await.unwrap(), (None, None)));
        assert_eq!(report::read(&path).unwrap(), file);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no partial file"
        );
    }
}
