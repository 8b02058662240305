//! Enforcement: judging containers at create, start, update and sync, and what to tell
//! containerd.
//!
//! This is the daemon's policy-facing core. It knows NRI's messages but no sockets: the
//! plugin service ([`crate::plugin`]) calls it, and tests call it directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use nodeguard_proto::nri::v1alpha1 as nri;
use policy_core::view::ContainerView;
use policy_core::{Decision, Effect, Policy, evaluate};
use tracing::{info, warn};

use crate::audit::{AuditSink, ContainerRef, Outcome, Phase, PodRef, Record};
use crate::containerd::SpecSource;
use crate::nri_view;

/// Fields no node ever sees (they live only in the pod spec): rules that need them stay
/// undecided on the node, are recorded as such, and never refuse a container.
pub const NODE_INVISIBLE: [&str; 2] = ["probeHosts", "resources.memoryRequest"];

/// What to do at container start with an enforced rule that still cannot decide (the spec
/// could not be read, or lacks what the rule needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UndecidedAtStart {
    /// Refuse the start (fail closed).
    Deny,
    /// Let it start and record it.
    Allow,
}

/// A refusal, worded for the kubelet's event (`kubectl describe` shows it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The shared, atomically replaceable policy in force.
pub type PolicyHandle = Arc<ArcSwap<Policy>>;

/// Judges containers and records every decision.
pub struct Enforcer<S> {
    policy: PolicyHandle,
    specs: S,
    audit: Arc<dyn AuditSink>,
    node: String,
    undecided_at_start: UndecidedAtStart,
    /// Pod sysctls by sandbox id: a sandbox's spec never changes, so it is read once per pod.
    pod_sysctls: Mutex<HashMap<String, Vec<(String, String)>>>,
}

/// Sandboxes whose sysctls are remembered at most (the cache is emptied when full).
const POD_SYSCTLS_CACHE: usize = 4096;

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

/// Enforced rules still undecided that the node could have decided.
fn decidable_undecided(decision: &Decision) -> Vec<&'static str> {
    decision
        .undecided
        .iter()
        .filter(|u| u.effect == Effect::Enforce && !NODE_INVISIBLE.contains(&u.missing))
        .map(|u| u.rule)
        .collect()
}

impl<S: SpecSource> Enforcer<S> {
    /// An enforcer reading the policy from `policy` and specs from `specs`.
    pub fn new(
        policy: PolicyHandle,
        specs: S,
        audit: Arc<dyn AuditSink>,
        node: String,
        undecided_at_start: UndecidedAtStart,
    ) -> Self {
        Enforcer {
            policy,
            specs,
            audit,
            node,
            undecided_at_start,
            pod_sysctls: Mutex::new(HashMap::new()),
        }
    }

    /// The policy handle (for reloads).
    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    fn record(
        &self,
        phase: Phase,
        view: &ContainerView,
        id: &str,
        decision: &Decision,
        refused: bool,
    ) {
        let outcome = Outcome::of(decision, refused);
        self.audit.record(&Record {
            schema: crate::audit::SCHEMA,
            time: Record::now(),
            node: &self.node,
            phase,
            outcome,
            pod: PodRef {
                namespace: view.pod.namespace.clone(),
                name: view.pod.name.clone(),
                uid: view.pod.uid.clone(),
            },
            container: ContainerRef {
                name: view.name.clone(),
                id: id.to_string(),
            },
            image: view.image.as_ref().map(|i| i.as_str().to_string()),
            decision,
        });
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
            Outcome::Undecided | Outcome::Allowed => info!(?phase, ?outcome, "allowed"),
        }
    }

    /// Judges a container about to be created. Rules the request cannot decide are left to
    /// [`Enforcer::start`].
    ///
    /// # Errors
    /// The refusal when an enforced rule is violated.
    pub fn create(&self, pod: &nri::PodSandbox, container: &nri::Container) -> Result<(), Refusal> {
        let view = nri_view::create_view(pod, container);
        let decision = evaluate(&self.policy.load(), &view);
        let refused = decision.is_denied();
        self.record(Phase::Create, &view, &container.id, &decision, refused);
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
        let (view, decision, failure) = match self.specs.spec(&container.id).await {
            Ok(spec) => {
                let mut view = nri_view::start_view(pod, container, &spec);
                self.add_pod_sysctls(pod, &mut view).await;
                let decision = evaluate(&self.policy.load(), &view);
                (view, decision, None)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the container's spec");
                let view = nri_view::create_view(pod, container);
                let decision = evaluate(&self.policy.load(), &view);
                (view, decision, Some(e.to_string()))
            }
        };
        let undecided = decidable_undecided(&decision);
        let refuse_undecided =
            !undecided.is_empty() && self.undecided_at_start == UndecidedAtStart::Deny;
        let refused = decision.is_denied() || refuse_undecided;
        self.record(Phase::Start, &view, &container.id, &decision, refused);
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
        let cached = self
            .pod_sysctls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&pod.id)
            .cloned();
        if let Some(sysctls) = cached {
            view.security.sysctls = Some(sysctls);
            return;
        }
        match self.specs.spec(&pod.id).await {
            Ok(sandbox) => {
                let sysctls = sandbox.to_view().security.sysctls.unwrap_or_default();
                let mut cache = self
                    .pod_sysctls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= POD_SYSCTLS_CACHE {
                    cache.clear();
                }
                cache.insert(pod.id.clone(), sysctls.clone());
                view.security.sysctls = Some(sysctls);
            }
            Err(e) => {
                warn!(error = %e, "cannot read the pod sandbox's spec for its sysctls");
                view.security.sysctls = None;
            }
        }
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
        let mut updated = container.clone();
        if let Some(resources) = resources {
            updated.linux.get_or_insert_with(Default::default).resources = Some(resources.clone());
        }
        let view = nri_view::create_view(pod, &updated);
        let mut decision = evaluate(&self.policy.load(), &view);
        decision
            .violations
            .retain(|v| v.rule.starts_with("resources."));
        decision
            .undecided
            .retain(|u| u.rule.starts_with("resources."));
        let refused = decision.is_denied();
        self.record(Phase::Update, &view, &container.id, &decision, refused);
        if refused {
            Err(refusal(&view, &decision))
        } else {
            Ok(())
        }
    }

    /// Audits containers that already exist (at registration): judged on their full spec
    /// when containerd gives it, else on what NRI tells. Nothing is refused.
    pub async fn audit_existing(
        &self,
        pods: &[nri::PodSandbox],
        containers: &[nri::Container],
    ) -> usize {
        let mut noncompliant = 0;
        for container in containers {
            let Some(pod) = pods.iter().find(|p| p.id == container.pod_sandbox_id) else {
                continue;
            };
            let view = match self.specs.spec(&container.id).await {
                Ok(spec) => {
                    let mut view = nri_view::start_view(pod, container, &spec);
                    self.add_pod_sysctls(pod, &mut view).await;
                    view
                }
                Err(_) => nri_view::create_view(pod, container),
            };
            let decision = evaluate(&self.policy.load(), &view);
            if decision.is_denied() {
                noncompliant += 1;
            }
            self.record(Phase::Sync, &view, &container.id, &decision, false);
        }
        noncompliant
    }
}
