//! Enforcement: judging containers at create, start, update and sync, and what to tell
//! containerd.
//!
//! This is the daemon's policy-facing core. It knows NRI's messages but no sockets. The NRI
//! service is written against [`Enforcement`], what the runtime's requests ask of nodeguard;
//! the compliance layer implements it around an [`Enforcer`], adding what runs to its
//! inventory.

pub mod prefetch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nodeguard_proto::nri::v1alpha1 as nri;
use policy_core::image::ImageRef;
use policy_core::view::{ContainerView, MountSource};
use policy_core::{Decision, Effect, evaluate};
use tracing::{Instrument as _, debug, info_span, warn};

use crate::ops::audit::{AuditSink, ContainerRef, NonKubernetes, Outcome, Phase, PodRef, Record};
use crate::ops::events::{EventRecorder, ObjectEvent, Regarding};
use crate::ops::metrics::{Metrics, SpecSource};
use crate::ops::namespaces::NamespaceLabels;
use crate::ops::reload::PolicyHandle;
use crate::runtime::containerd::{ContainerRecord, ContainerdApi, ContainerdError, K8S_NAMESPACE};
use crate::runtime::images::ImageNames;
use nodeguard_views::kubelet::SANDBOX_ID_ANNOTATION;
use nodeguard_views::nri::{Create, Start};
use prefetch::{Prefetched, Ticket};

/// What to do at container start with an enforced rule that still cannot decide (the spec
/// could not be read, or lacks what the rule needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UndecidedAtStart {
    /// Refuse the start (fail closed).
    Deny,
    /// Let it start and record it.
    Allow,
}

/// Work a request leaves for after its reply: the NRI service hands it to the connection,
/// which runs it once the reply is written, so that nothing of it delays the reply.
pub type AfterReply = Box<dyn FnOnce() + Send>;

/// A refusal, worded for the kubelet's event (`kubectl describe` shows it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// What the runtime's requests ask of nodeguard: judge a container about to be created,
/// started or updated, and keep track of what runs. The NRI service calls nothing else.
pub trait Enforcement: Send + Sync + 'static {
    /// Judges a pod about to run, before any of its containers: what only the pod tells
    /// (host namespaces, sysctls, labels), so that a refused pod never reaches the host.
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated by the pod itself.
    fn run_pod_sandbox(
        &self,
        pod: &nri::PodSandbox,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Judges a container about to be created.
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated.
    fn create(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// The runtime has the reply allowing a creation ([`Enforcement::create`] returned `Ok`
    /// and the reply is written): what must not delay that reply starts here (the spec
    /// read-ahead).
    fn created(self: &Arc<Self>, pod: &nri::PodSandbox, container: &nri::Container);

    /// Judges a container about to start; an allowed one now runs.
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated or cannot be decided.
    fn start(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Judges a change of a running container's resources.
    ///
    /// # Errors
    /// The refusal when an enforced `resources` rule is violated.
    fn update(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
        resources: Option<&nri::LinuxResources>,
    ) -> Result<(), Refusal>;

    /// `Synchronize` delivered everything that exists (all its parts together; each container
    /// without what no view reads, [`nodeguard_views::nri::without_unread`]). Returns what is
    /// left for after the reply (the audit of what runs, the read-ahead of what is created and
    /// not started), run once the reply is with the runtime.
    fn synchronized(
        self: &Arc<Self>,
        pods: Vec<Arc<nri::PodSandbox>>,
        containers: Vec<Arc<nri::Container>>,
    ) -> AfterReply;

    /// A container stopped or was removed.
    fn stopped(&self, container_id: &str);

    /// A pod was removed, with its containers.
    fn pod_removed(&self, pod_id: &str);

    /// A request to `method` was malformed (counted; it was never judged).
    fn malformed_request(&self, method: &str);
}

/// Judges containers and records every decision.
pub struct Enforcer<S> {
    policy: PolicyHandle,
    specs: S,
    audit: Arc<dyn AuditSink>,
    node: String,
    undecided_at_start: UndecidedAtStart,
    /// Pod sysctls by sandbox id: a sandbox's spec never changes, so it is read once per pod.
    pod_sysctls: Mutex<HashMap<String, PodSysctls, foldhash::fast::RandomState>>,
    /// Specs read after create, for StartContainer to take.
    prefetched: Prefetched,
    metrics: Arc<Metrics>,
    /// The node's mount table, read when a container mounts a kubelet `subPath`.
    mount_table: MountTable,
    /// containerd's image records, for every name of an image's content.
    images: ImageNames,
    /// The namespaces' labels, in the cluster-connected mode.
    namespace_labels: Option<Arc<NamespaceLabels>>,
    /// Where Events about pods go (the cluster-connected mode).
    events: Option<Arc<dyn EventRecorder>>,
}

/// Reads the node's mount table (`/proc/self/mountinfo` unless a test says otherwise); `None`
/// when it cannot be read.
pub type MountTable = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The mount table of nodeguard's own mount namespace: the host's, or, in the DaemonSet, the
/// host's kubelet directory as mounted with `HostToContainer` propagation.
fn own_mount_table() -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo").ok()
}

/// How long a read-ahead waits for containerd's container record after the create.
const READ_AHEAD_PATIENCE: Duration = Duration::from_secs(5);
/// The first pause between read-ahead attempts; it doubles up to [`READ_AHEAD_MAX_PAUSE`].
const READ_AHEAD_FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between read-ahead attempts.
const READ_AHEAD_MAX_PAUSE: Duration = Duration::from_millis(250);

/// Sandboxes whose sysctls are remembered at most (the cache is emptied when full): a bound
/// against pods that come and go between audits, which prune it to the pods that still run
/// ([`Enforcer::retain_pods`]). Above the pods any node runs, so that an audit never reads a
/// sandbox's spec twice.
const POD_SYSCTLS_CACHE: usize = 65_536;
/// A sandbox's sysctls, with when they were read.
type PodSysctls = (Instant, Vec<(String, String)>);

/// How long the sysctls of a sandbox without a running container are kept.
const POD_SYSCTLS_KEPT: Duration = Duration::from_secs(300);

fn describe(view: &ContainerView) -> String {
    format!(
        "container {:?} in pod {}/{}",
        view.name, view.pod.namespace, view.pod.name
    )
}

fn refusal(view: &ContainerView, decision: &Decision) -> Refusal {
    Refusal(format!(
        "nodeguard: refused {}: {}",
        describe(view),
        decision.refusal_message()
    ))
}

/// Whether a spec read ahead is the one of a container of `pod`: containerd names the sandbox
/// in every container's spec; a spec without the annotation is taken as it is.
fn belongs_to(record: &ContainerRecord, pod: &nri::PodSandbox) -> bool {
    record
        .spec
        .annotation(SANDBOX_ID_ANNOTATION)
        .is_none_or(|sandbox| sandbox == pod.id)
}

/// Enforced rules still undecided that the node could have decided.
fn decidable_undecided(decision: &Decision) -> Vec<&'static str> {
    decision
        .undecided
        .iter()
        .filter(|u| u.effect == Effect::Enforce && u.seen_on_node())
        .map(|u| u.rule)
        .collect()
}

impl<S: ContainerdApi> Enforcer<S> {
    /// An enforcer reading the policy from `policy` and specs from `specs`, recording to
    /// `audit` and counting in `metrics`, as node `node`.
    pub fn new(
        policy: PolicyHandle,
        specs: S,
        audit: Arc<dyn AuditSink>,
        metrics: Arc<Metrics>,
        node: String,
        undecided_at_start: UndecidedAtStart,
    ) -> Self {
        Enforcer {
            policy,
            specs,
            audit,
            node,
            undecided_at_start,
            pod_sysctls: Mutex::new(HashMap::default()),
            prefetched: Prefetched::default(),
            metrics,
            mount_table: Arc::new(own_mount_table),
            images: ImageNames::default(),
            namespace_labels: None,
            events: None,
        }
    }

    /// The enforcer recording an Event on the pod for audit- and warn-effect findings and
    /// remediation stops (refusals have the kubelet's own event).
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventRecorder>) -> Self {
        self.events = Some(events);
        self
    }

    /// The Event for a record, if the outcome calls for one: the pod's warn- and audit-effect
    /// findings, or its container stopped.
    fn pod_event(&self, outcome: Outcome, view: &ContainerView, decision: &Decision) {
        let Some(events) = &self.events else {
            return;
        };
        let (reason, action, warning) = match outcome {
            Outcome::Warned => ("PolicyWarning", "Judged", true),
            Outcome::Audited => ("PolicyAudit", "Judged", false),
            Outcome::Stopped => ("PolicyStopped", "Stopped", true),
            _ => return,
        };
        if view.pod.name.is_empty() || view.pod.namespace.is_empty() {
            return;
        }
        let findings: Vec<String> = decision
            .violations
            .iter()
            .map(|v| format!("{} [{} {}]", v.message, v.policy, v.rule))
            .collect();
        let container = if view.name.is_empty() {
            String::new()
        } else {
            format!("container {:?}: ", view.name)
        };
        events.record(ObjectEvent {
            regarding: Regarding {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: view.pod.namespace.clone(),
                name: view.pod.name.clone(),
                uid: view.pod.uid.clone(),
            },
            warning,
            reason,
            action,
            message: format!("nodeguard: {container}{}", findings.join("; ")),
        });
    }

    /// The enforcer giving each view its namespace's labels from `labels` (the API server's,
    /// in the cluster-connected mode), which a `namespaceSelector` needs.
    #[must_use]
    pub fn with_namespace_labels(mut self, labels: Arc<NamespaceLabels>) -> Self {
        self.namespace_labels = Some(labels);
        self
    }

    /// Gives `view` its namespace's labels, when they are known.
    fn add_namespace_labels(&self, view: &mut ContainerView) {
        if let Some(labels) = &self.namespace_labels {
            view.pod.namespace_labels = labels.get(&view.pod.namespace);
        }
    }

    /// The enforcer reading the node's mount table from `table` instead.
    #[must_use]
    pub fn with_mount_table(mut self, table: MountTable) -> Self {
        self.mount_table = table;
        self
    }

    /// Replaces the kubelet `subPath` mounts of `view` with what the mount table says they
    /// are (a host path, a volume of the pod), so that a host path reached through a `subPath`
    /// is judged as the host path it is. The table is read only when there is one.
    fn resolve_sub_paths(&self, pod: &nri::PodSandbox, view: &mut ContainerView) {
        let Some(mounts) = view.mounts.as_mut() else {
            return;
        };
        if !mounts
            .iter()
            .any(|m| matches!(m.source, MountSource::KubeletSubPath { .. }))
        {
            return;
        }
        let Some(text) = (self.mount_table)() else {
            warn!("cannot read the mount table: subPath mounts stay unresolved");
            return;
        };
        let table = nodeguard_views::mountinfo::parse(&text);
        for m in mounts.iter_mut() {
            nodeguard_views::kubelet::resolve_sub_path(m, &table, &pod.uid, &pod.id);
        }
        view.volumes = Some(nodeguard_views::oci::volumes_of(mounts));
    }

    /// Fills in every name of the content of the container's image and image volumes from
    /// containerd's image records (ADR 0020), when the policy judges images by name.
    /// `record_image` is the image name of containerd's container record (at start): the
    /// content that really runs. When the image the request names is not a name of that
    /// content, the view is judged by the record's. Left as it is when the records cannot be
    /// read (image volumes then stay undecided).
    async fn resolve_images(&self, view: &mut ContainerView, record_image: Option<&str>) {
        self.resolve_images_in(K8S_NAMESPACE, view, record_image)
            .await;
    }

    /// `Enforcer::resolve_images` for a container of containerd namespace `namespace`
    /// (one made outside Kubernetes: its images are that namespace's).
    pub async fn resolve_images_in(
        &self,
        namespace: &str,
        view: &mut ContainerView,
        record_image: Option<&str>,
    ) {
        if !self.policy.load().policy.reads_image_names() {
            return;
        }
        let given = view.image.as_ref().map(|i| i.as_str().to_string());
        let record = record_image.filter(|r| !r.is_empty());
        let names: Vec<&str> = given.iter().map(String::as_str).chain(record).collect();
        let digests: Vec<&str> = view
            .image_volumes
            .iter()
            .map(|v| v.digest.as_str())
            .collect();
        let index = match self
            .images
            .index(namespace, &names, &digests, Instant::now(), || {
                self.specs.images(namespace)
            })
            .await
        {
            Ok(index) => index,
            Err(e) => {
                warn!(error = %e, "cannot read containerd's image records: image names unresolved");
                return;
            }
        };
        if let Some(record) = record {
            let content = index.names_with(record);
            if !content.is_empty()
                && !given
                    .as_deref()
                    .is_some_and(|g| content.iter().any(|n| n == g))
            {
                if let Some(given) = &given {
                    warn!(
                        given = %given,
                        record = %record,
                        "the image the request names is not the content the container runs: judged by the record's"
                    );
                }
                view.image = Some(ImageRef::parse(record));
            }
        }
        if let Some(image) = &view.image {
            view.image_names = index
                .names_with(image.as_str())
                .iter()
                .filter(|n| *n != image.as_str())
                .map(|n| ImageRef::parse(n))
                .collect();
        }
        for volume in &mut view.image_volumes {
            volume.names = Some(
                index
                    .names_of(&volume.digest)
                    .iter()
                    .map(|n| ImageRef::parse(n))
                    .collect(),
            );
        }
    }

    /// The policy handle (for reloads).
    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    /// Where decisions are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The node name written in audit records.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The containerd API specs are read from (and containers stopped through).
    pub fn specs(&self) -> &S {
        &self.specs
    }

    /// Evaluates the policy in force for `view`, timing it.
    pub(crate) fn evaluate(&self, phase: Phase, view: &ContainerView) -> Decision {
        let started = Instant::now();
        let decision = evaluate(&self.policy.load().policy, view);
        self.metrics.evaluation(phase, started.elapsed());
        decision
    }

    pub(crate) fn record(
        &self,
        phase: Phase,
        view: &ContainerView,
        id: &str,
        decision: &Decision,
        refused: bool,
    ) {
        let outcome = Outcome::of(decision, refused);
        self.metrics.decision(phase, outcome, decision);
        self.write_record(None, phase, outcome, view, id, decision, false);
    }

    /// Writes one audit record and logs it (the caller counts it in the metrics); `outside`
    /// names the containerd namespace of a container made outside Kubernetes.
    #[allow(clippy::too_many_arguments)] // the record's parts
    pub fn write_record(
        &self,
        outside: Option<&str>,
        phase: Phase,
        outcome: Outcome,
        view: &ContainerView,
        id: &str,
        decision: &Decision,
        started_while_away: bool,
    ) {
        self.audit.record(&Record {
            schema: crate::ops::audit::SCHEMA,
            time: Record::now(),
            node: &self.node,
            phase,
            outcome,
            pod: PodRef {
                namespace: &view.pod.namespace,
                name: &view.pod.name,
                uid: &view.pod.uid,
            },
            container: ContainerRef {
                name: &view.name,
                id,
            },
            image: view.image.as_ref().map(|i| i.as_str()),
            started_while_away,
            non_kubernetes: outside.map(|containerd_namespace| NonKubernetes {
                containerd_namespace,
            }),
            decision,
        });
        if outside.is_none() {
            self.pod_event(outcome, view, decision);
        }
        match outcome {
            Outcome::Refused => warn!(
                ?phase,
                rule_count = decision.violations.len(),
                "refused: {}",
                decision.refusal_message()
            ),
            Outcome::Warned | Outcome::Audited => {
                for v in &decision.violations {
                    warn!(?phase, rule = v.rule, effect = %v.effect, "{}", v.message);
                }
            }
            Outcome::Stopped => warn!(
                ?phase,
                "stopped a running container: {}",
                decision.refusal_message()
            ),
            Outcome::Undecided | Outcome::Allowed => debug!(?phase, ?outcome, "allowed"),
        }
    }

    /// Judges a pod about to run on what the pod alone tells: its host namespaces, its sysctls
    /// (from the sandbox's spec, when containerd has it) and its labels. Checks a container
    /// could be exempt from by name or image wait for the containers.
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated by the pod.
    pub async fn run_pod_sandbox(&self, pod: &nri::PodSandbox) -> Result<(), Refusal> {
        let started = Instant::now();
        let sysctls = if pod.id.is_empty() {
            None
        } else {
            self.pod_sysctls(&pod.id).await
        };
        let mut view = nodeguard_views::nri::sandbox_view(pod, sysctls);
        self.add_namespace_labels(&mut view);
        let decision = {
            let started = Instant::now();
            let decision = policy_core::evaluate_pod(&self.policy.load().policy, &view);
            self.metrics.evaluation(Phase::Sandbox, started.elapsed());
            decision
        };
        let refused = decision.is_denied();
        self.record(Phase::Sandbox, &view, "", &decision, refused);
        self.metrics.request(Phase::Sandbox, started.elapsed());
        if refused {
            Err(Refusal(format!(
                "nodeguard: refused pod {}/{}: {}",
                pod.namespace,
                pod.name,
                decision.refusal_message()
            )))
        } else {
            Ok(())
        }
    }

    /// Judges a container about to be created. Rules the request cannot decide are left to
    /// [`Enforcer::start`].
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated.
    pub async fn create(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> Result<(), Refusal> {
        let started = Instant::now();
        let mut view = ContainerView::from(Create { pod, container });
        self.resolve_sub_paths(pod, &mut view);
        self.resolve_images(&mut view, None).await;
        self.add_namespace_labels(&mut view);
        let decision = self.evaluate(Phase::Create, &view);
        let refused = decision.is_denied();
        self.record(Phase::Create, &view, &container.id, &decision, refused);
        self.metrics.request(Phase::Create, started.elapsed());
        if refused {
            Err(refusal(&view, &decision))
        } else {
            Ok(())
        }
    }

    /// Judges a container about to start, on its full OCI spec from containerd.
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated, or (by default) cannot be decided.
    pub async fn start(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> Result<(), Refusal> {
        let started = Instant::now();
        let spec = match self.prefetched.take(&container.id, Instant::now()) {
            Some(spec) if belongs_to(&spec, pod) => {
                self.metrics.spec_read(SpecSource::Prefetched);
                Ok(spec)
            }
            _ => {
                // A read-ahead still under way is of no use now: dropped when it lands.
                self.prefetched.forget(&container.id);
                self.metrics.spec_read(SpecSource::OnDemand);
                self.specs.record(&container.id).await.map(Arc::new)
            }
        };
        let (view, failure) = self.view_on(pod, container, spec).await;
        let decision = self.evaluate(Phase::Start, &view);
        let undecided = decidable_undecided(&decision);
        let refuse_undecided =
            !undecided.is_empty() && self.undecided_at_start == UndecidedAtStart::Deny;
        let refused = decision.is_denied() || refuse_undecided;
        self.record(Phase::Start, &view, &container.id, &decision, refused);
        self.metrics.request(Phase::Start, started.elapsed());
        if decision.is_denied() {
            return Err(refusal(&view, &decision));
        }
        if refuse_undecided {
            return Err(Refusal(format!(
                "nodeguard: refused {}: cannot verify {}{}",
                describe(&view),
                undecided.join(", "),
                failure.map(|f| format!(" ({f})")).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The view of a container on its full OCI spec from containerd (and its pod's sysctls),
    /// or, when the spec cannot be read, on what NRI tells, with the reason.
    pub async fn full_view(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
    ) -> (ContainerView, Option<String>) {
        let spec = self.specs.record(&container.id).await.map(Arc::new);
        self.view_on(pod, container, spec).await
    }

    /// The view of a container on `spec` (and its pod's sysctls), or on what NRI tells when
    /// the spec could not be read, with the reason.
    async fn view_on(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
        spec: Result<Arc<ContainerRecord>, ContainerdError>,
    ) -> (ContainerView, Option<String>) {
        match spec {
            Ok(spec) => {
                let mut view = ContainerView::from(Start {
                    pod,
                    container,
                    spec: &spec.spec,
                });
                self.resolve_sub_paths(pod, &mut view);
                self.resolve_images(&mut view, Some(&spec.image)).await;
                self.add_namespace_labels(&mut view);
                self.add_pod_sysctls(pod, &mut view).await;
                (view, None)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the container's spec");
                self.metrics.spec_read_failure();
                let mut view = ContainerView::from(Create { pod, container });
                self.resolve_sub_paths(pod, &mut view);
                self.resolve_images(&mut view, None).await;
                self.add_namespace_labels(&mut view);
                (view, Some(e.to_string()))
            }
        }
    }

    /// Pod sysctls are applied to the sandbox, so containerd writes them into the sandbox's
    /// spec, not the container's: read them there.
    async fn add_pod_sysctls(&self, pod: &nri::PodSandbox, view: &mut ContainerView) {
        if view
            .security
            .sysctls
            .as_ref()
            .is_some_and(|s| !s.is_empty())
            || pod.id.is_empty()
        {
            return;
        }
        view.security.sysctls = self.pod_sysctls(&pod.id).await;
    }

    /// Sandbox `pod_id`'s sysctls, read once per pod (a sandbox's spec never changes); `None`
    /// when its spec cannot be read.
    async fn pod_sysctls(&self, pod_id: &str) -> Option<Vec<(String, String)>> {
        let cached = self
            .pod_sysctls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pod_id)
            .map(|(_, sysctls)| sysctls.clone());
        if cached.is_some() {
            return cached;
        }
        match self.specs.record(pod_id).await {
            Ok(sandbox) => {
                let sysctls = sandbox.spec.sysctls();
                let mut cache = self
                    .pod_sysctls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= POD_SYSCTLS_CACHE {
                    cache.clear();
                }
                cache.insert(pod_id.to_string(), (Instant::now(), sysctls.clone()));
                Some(sysctls)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the pod sandbox's spec for its sysctls");
                None
            }
        }
    }

    /// Forgets the sysctls of the sandboxes `running` does not keep and that were not read in
    /// the last five minutes (a pod being created has no running container yet):
    /// called by compliance audits with the pods that still run.
    pub fn retain_pods(&self, running: impl Fn(&str) -> bool) {
        let now = Instant::now();
        self.pod_sysctls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, (read, _)| running(id) || now.duration_since(*read) < POD_SYSCTLS_KEPT);
    }

    /// Reads container `container_id`'s spec (and warms its pod's sysctls) in the background,
    /// as soon as containerd has the record, for [`Enforcer::start`] to take. Called once the
    /// reply allowing the create is with the runtime ([`Enforcement::created`]): the read
    /// begins here, so an update from now on drops it, and runs in a task of its own.
    pub fn read_ahead(self: &Arc<Self>, pod_id: &str, container_id: &str)
    where
        S: 'static,
    {
        let ticket = self.prefetched.begin(container_id);
        let this = Arc::clone(self);
        let (pod_id, id) = (pod_id.to_string(), container_id.to_string());
        let span = info_span!("read-ahead", container = %id);
        tokio::spawn(async move { this.prefetch(&pod_id, &id, ticket).await }.instrument(span));
    }

    /// The read-ahead itself: waits for the record, gives up on any other error, and stores
    /// nothing when an update came meanwhile.
    async fn prefetch(&self, pod_id: &str, id: &str, ticket: Ticket) {
        let deadline = Instant::now() + READ_AHEAD_PATIENCE;
        let mut pause = READ_AHEAD_FIRST_PAUSE;
        loop {
            if !self.prefetched.wanted(id, ticket) {
                return;
            }
            match self.specs.record(id).await {
                Ok(spec) => {
                    if self.prefetched.finish(id, ticket, spec, Instant::now()) {
                        self.pod_sysctls(pod_id).await;
                    }
                    return;
                }
                Err(e) if e.is_not_found() && Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(READ_AHEAD_MAX_PAUSE);
                }
                Err(e) => {
                    debug!(error = %e, "no spec read ahead; the start reads it");
                    self.prefetched.abandon(id, ticket);
                    return;
                }
            }
        }
    }

    /// Begins reading ahead the specs of `containers` (`(pod id, container id)`), containers
    /// that exist and have not started (`Synchronize` lists them as created): an update or a
    /// start from now on drops a container's read. Returns what reads them, one after the
    /// other in one task, each once (their records exist): to run after the reply; `None`
    /// when there are none.
    pub fn read_ahead_existing(
        self: &Arc<Self>,
        containers: Vec<(String, String)>,
    ) -> Option<impl FnOnce() + Send + 'static>
    where
        S: 'static,
    {
        if containers.is_empty() {
            return None;
        }
        let reads: Vec<(String, String, Ticket)> = containers
            .into_iter()
            .map(|(pod_id, id)| {
                let ticket = self.prefetched.begin(&id);
                (pod_id, id, ticket)
            })
            .collect();
        let this = Arc::clone(self);
        Some(move || {
            let span = info_span!("read-ahead", containers = reads.len());
            tokio::spawn(
                async move {
                    for (pod_id, id, ticket) in reads {
                        this.prefetch_existing(&pod_id, &id, ticket).await;
                    }
                }
                .instrument(span),
            );
        })
    }

    /// One read of [`Enforcer::read_ahead_existing`]: skipped when no longer wanted, stored
    /// unless an update or a start came meanwhile, dropped on any error.
    async fn prefetch_existing(&self, pod_id: &str, id: &str, ticket: Ticket) {
        if !self.prefetched.wanted(id, ticket) {
            return;
        }
        match self.specs.record(id).await {
            Ok(spec) => {
                // Synchronize's containers name their sandbox; one that does not has none to warm.
                if self.prefetched.finish(id, ticket, spec, Instant::now()) && !pod_id.is_empty() {
                    self.pod_sysctls(pod_id).await;
                }
            }
            Err(e) => {
                debug!(container = %id, error = %e, "no spec read ahead; the start reads it");
                self.prefetched.abandon(id, ticket);
            }
        }
    }

    /// Forgets what was read ahead for `container_id` (it stopped or went away).
    pub fn forget(&self, container_id: &str) {
        self.prefetched.forget(container_id);
    }

    /// Specs read ahead and not yet taken, with the reads under way.
    pub fn read_ahead_pending(&self) -> usize {
        self.prefetched.len()
    }

    /// Judges a change of a running container's resources: refused when it breaks an
    /// enforced `resources` rule.
    ///
    /// # Errors
    /// The refusal.
    pub fn update(
        &self,
        pod: &nri::PodSandbox,
        container: &nri::Container,
        resources: Option<&nri::LinuxResources>,
    ) -> Result<(), Refusal> {
        // The record's spec may change with the update: a spec read ahead is stale.
        self.prefetched.forget(&container.id);
        let mut updated = container.clone();
        if let Some(resources) = resources {
            updated.linux.get_or_insert_with(Default::default).resources = Some(resources.clone());
        }
        let started = Instant::now();
        let mut view = ContainerView::from(Create {
            pod,
            container: &updated,
        });
        self.add_namespace_labels(&mut view);
        let mut decision = self.evaluate(Phase::Update, &view);
        decision
            .violations
            .retain(|v| v.rule.starts_with("resources."));
        decision
            .undecided
            .retain(|u| u.rule.starts_with("resources."));
        let refused = decision.is_denied();
        self.record(Phase::Update, &view, &container.id, &decision, refused);
        self.metrics.request(Phase::Update, started.elapsed());
        if refused {
            Err(refusal(&view, &decision))
        } else {
            Ok(())
        }
    }
}
