//! Containers made outside Kubernetes: what `ctr`, nerdctl, Docker (moby), buildkit or any
//! other client of containerd's socket runs, in any containerd namespace. They never reach
//! NRI (CRI alone calls it), so NRI's inventory does not hold them; every compliance audit
//! lists them through containerd's own API instead (namespaces, then the live tasks and the
//! container records of each), and judges each running one on its OCI spec and image as a
//! non-Kubernetes workload: the rules that need its pod skip it ([`NO_POD`]). See ADR 0021.
//!
//! `remediate: stop` stops such a container at the audit after a registration, as any other,
//! and also at the first periodic audit that sees it (nothing judged it before it ran); never
//! at the audit after a policy reload.

use policy_core::{ContainerView, Decision, Policy};
use tracing::{debug, warn};

use crate::runtime::containerd::{ContainerdApi, ListedContainer, LiveTask};
use nodeguard_views::oci::{outside_kubernetes_view, unknown_outside_kubernetes_view};

/// What no container made outside Kubernetes has, since it has no pod: the rules that lack
/// only these skip it (they are listed apart, as admission-only checks are, and never make
/// its verdict undecided).
pub const NO_POD: [&str; 2] = ["pod.labels", "hostPorts"];

/// A task made outside Kubernetes, as one audit saw it: a restarted task (a new pid) is
/// another.
pub(super) type Seen = (String, u32);

/// The running containers made outside Kubernetes in one containerd namespace.
pub(super) struct Listed {
    /// The containerd namespace.
    pub(super) namespace: String,
    /// Its running containers made outside Kubernetes, each with its task, by id.
    pub(super) containers: Vec<(ListedContainer, LiveTask)>,
}

/// Every running container made outside Kubernetes in the containerd namespaces `policy`
/// judges, by namespace (sorted), each with its task. A namespace containerd cannot list is
/// left out (logged); `None` when the namespaces themselves cannot be listed.
pub(super) async fn list<S: ContainerdApi>(api: &S, policy: &Policy) -> Option<Vec<Listed>> {
    let mut namespaces = match api.namespaces().await {
        Ok(namespaces) => namespaces,
        Err(error) => {
            warn!(%error, "cannot list containerd's namespaces: containers made outside Kubernetes are not audited");
            return None;
        }
    };
    namespaces.sort();
    let mut out = Vec::new();
    for namespace in namespaces {
        if !policy.judges_containerd_namespace(&namespace) {
            debug!(%namespace, "no policy judges this containerd namespace");
            continue;
        }
        let tasks = match api.tasks_in(&namespace).await {
            Ok(tasks) => tasks,
            Err(error) => {
                warn!(%namespace, %error, "cannot list the tasks of a containerd namespace");
                continue;
            }
        };
        if tasks.is_empty() {
            continue;
        }
        let records = match api.containers(&namespace).await {
            Ok(records) => records,
            Err(error) => {
                warn!(%namespace, %error, "cannot list the containers of a containerd namespace");
                continue;
            }
        };
        let mut containers: Vec<(ListedContainer, LiveTask)> = records
            .into_iter()
            .filter(|c| !c.is_cri(&namespace))
            .filter_map(|c| {
                let task = tasks.iter().find(|t| t.id == c.id)?.clone();
                Some((c, task))
            })
            .collect();
        containers.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        out.push(Listed {
            namespace,
            containers,
        });
    }
    Some(out)
}

/// The view of a listed container made outside Kubernetes, on its spec; when the spec cannot
/// be read, on its id and image alone, with the reason.
pub(super) fn view_of(
    namespace: &str,
    record: &ListedContainer,
) -> (ContainerView, Option<String>) {
    let id = record.id.as_str();
    match &record.spec {
        Ok(spec) => (outside_kubernetes_view(spec, id, &record.image), None),
        Err(why) => {
            warn!(%namespace, id, error = %why, "cannot read the container's spec");
            (
                unknown_outside_kubernetes_view(id, &record.image),
                Some(why.clone()),
            )
        }
    }
}

/// Moves what a check lacked for want of a pod (`NO_POD`) from its undecided fields to those
/// nothing on the node will ever decide: they do not make the verdict undecided.
pub(super) fn without_pod(findings: &mut Decision) {
    let (no_pod, rest) = std::mem::take(&mut findings.undecided)
        .into_iter()
        .partition(|u| NO_POD.contains(&u.missing));
    findings.undecided = rest;
    findings.admission_only.extend::<Vec<_>>(no_pod);
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::{Effect, Undecided};

    #[test]
    fn what_only_a_pod_has_never_leaves_a_verdict_undecided() {
        let lacking = |missing| Undecided {
            policy: "p".into(),
            rule: "r",
            effect: Effect::Enforce,
            missing,
        };
        let mut d = Decision {
            undecided: vec![
                lacking("pod.labels"),
                lacking("security.privileged"),
                lacking("hostPorts"),
            ],
            ..Decision::default()
        };
        without_pod(&mut d);
        assert_eq!(d.undecided, [lacking("security.privileged")]);
        assert_eq!(
            d.admission_only,
            [lacking("pod.labels"), lacking("hostPorts")]
        );
    }
}
