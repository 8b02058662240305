//! Kubernetes Events about what nodeguard found: a pod's audit- and warn-effect findings and
//! remediation stops, and a policy object the node rejected. Recorded here, published by the
//! cluster-connected mode (which deduplicates and rate-limits them); refusals need none, the
//! kubelet's own `CreateContainerError` event carries them.

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    /// `v1`, `nodeguard.io/v1alpha1`, ...
    pub api_version: String,
    /// `Pod`, `NodePolicy`, a constraint kind.
    pub kind: String,
    /// Its namespace (empty: cluster-scoped).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID (empty when unknown).
    pub uid: String,
}

/// One Event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectEvent {
    /// What it is about.
    pub regarding: Regarding,
    /// `Warning` (else `Normal`).
    pub warning: bool,
    /// Why, in PascalCase: `PolicyWarning`, `PolicyAudit`, `PolicyStopped`, `PolicyRejected`.
    pub reason: &'static str,
    /// What nodeguard did: `Judged`, `Stopped`, `Validated`.
    pub action: &'static str,
    /// The findings, as `kubectl describe` shows them.
    pub message: String,
}

/// Where Events go. `record` must not block: a recorder queues, drops what it cannot send,
/// and sends at its own pace.
pub trait EventRecorder: Send + Sync + std::fmt::Debug {
    /// Records `event`.
    fn record(&self, event: ObjectEvent);
}
