//! What runs on the node, as NRI told nodeguard: the inventory compliance audits judge, and
//! the state file that lets a restarted nodeguard name what started while it was away.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nodeguard_proto::nri::v1alpha1::{self as nri, ContainerState};
use nodeguard_views::nri::{pod_without_unread, without_unread};
use tracing::warn;

use super::report;

/// Maps keyed by runtime ids, hashed with foldhash (randomly seeded, several times faster than
/// the standard SipHash on 64-character ids, which audits look up by the ten thousand).
type ById<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Known {
    pods: ById<Arc<nri::PodSandbox>>,
    containers: ById<Arc<nri::Container>>,
    /// Bumped at every change, so a writer knows whether the state file is behind.
    changes: u64,
    /// Whether a `Synchronize` has filled it since the process started.
    synchronized: bool,
}

/// The containers running on the node, as NRI told nodeguard: replaced at every
/// `Synchronize`, added to when a container starts, and pruned before every compliance audit to
/// the tasks containerd still runs ([`Inventory::retain_live`]). nodeguard does not subscribe to
/// NRI's stop and remove events (each would cost the runtime a synchronous call per container);
/// when a runtime sends them anyway, they are applied at once.
#[derive(Debug, Default)]
pub struct Inventory {
    known: Mutex<Known>,
}

impl Inventory {
    fn lock(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces everything with what `Synchronize` delivered (each container without what no
    /// view reads), stopped containers left out.
    /// Returns the ids known to run before, when this process has synchronized before (after
    /// a reconnection); `None` at the first registration.
    pub fn replace(
        &self,
        pods: Vec<Arc<nri::PodSandbox>>,
        containers: Vec<Arc<nri::Container>>,
    ) -> Option<HashSet<String>> {
        let mut known = self.lock();
        let before = known
            .synchronized
            .then(|| known.containers.keys().cloned().collect());
        known.synchronized = true;
        known.changes += 1;
        known.pods = pods.into_iter().map(|p| (p.id.clone(), p)).collect();
        known.containers = containers
            .into_iter()
            .filter(|c| c.state != ContainerState::ContainerStopped as i32)
            .map(|c| (c.id.clone(), c))
            .collect();
        before
    }

    /// A container started.
    pub fn started(&self, pod: &nri::PodSandbox, container: &nri::Container) {
        let mut known = self.lock();
        known.changes += 1;
        known
            .pods
            .insert(pod.id.clone(), Arc::new(pod_without_unread(pod.clone())));
        known.containers.insert(
            container.id.clone(),
            Arc::new(without_unread(container.clone())),
        );
    }

    /// A container stopped or was removed.
    pub fn stopped(&self, container_id: &str) {
        let mut known = self.lock();
        if known.containers.remove(container_id).is_some() {
            known.changes += 1;
        }
    }

    /// A pod was removed, with its containers.
    pub fn pod_removed(&self, pod_id: &str) {
        let mut known = self.lock();
        known.changes += 1;
        known.pods.remove(pod_id);
        known.containers.retain(|_, c| c.pod_sandbox_id != pod_id);
    }

    /// Keeps only the containers in `live` (the tasks containerd still runs) and the pods that
    /// still have a container; returns how many containers were dropped.
    pub fn retain_live(&self, live: &HashSet<String>) -> usize {
        let mut known = self.lock();
        let before = known.containers.len();
        known.containers.retain(|id, _| live.contains(id));
        let dropped = before - known.containers.len();
        if dropped > 0 {
            known.changes += 1;
            let Known {
                pods, containers, ..
            } = &mut *known;
            let with_containers: HashSet<&str, foldhash::fast::RandomState> = containers
                .values()
                .map(|c| c.pod_sandbox_id.as_str())
                .collect();
            pods.retain(|id, _| with_containers.contains(id.as_str()));
        }
        dropped
    }

    /// Every running container with its pod, sorted by the pod's namespace, then container id
    /// (the order of the report; shared, not copied).
    pub fn snapshot(&self) -> Vec<(Arc<nri::PodSandbox>, Arc<nri::Container>)> {
        let known = self.lock();
        let mut all: Vec<_> = known
            .containers
            .values()
            .filter_map(|c| known.pods.get(&c.pod_sandbox_id).map(|p| (p, c)))
            .collect();
        sort_by_namespace_and_id(&mut all);
        all.into_iter()
            .map(|(p, c)| (Arc::clone(p), Arc::clone(c)))
            .collect()
    }

    /// How many running containers are known.
    pub fn len(&self) -> usize {
        self.lock().containers.len()
    }

    /// Whether no running container is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the running containers, sorted, and the change count they are from; `None`
    /// until a `Synchronize` has filled the inventory (before, it knows nothing, and must not
    /// overwrite what a previous nodeguard left).
    pub fn ids(&self) -> Option<(Vec<String>, u64)> {
        let known = self.lock();
        if !known.synchronized {
            return None;
        }
        let mut ids: Vec<String> = known.containers.keys().cloned().collect();
        ids.sort();
        Some((ids, known.changes))
    }
}

/// Sorts `all` by the pod's namespace, then the container id. The strings live in thousands
/// of separate allocations; comparing them in place costs cache misses at every comparison, so
/// each entry is first given a compact key (its namespace's rank and the first 16 bytes of its
/// id, zero-padded, which order as the ids do), and the ids are compared only when two keys
/// are equal.
fn sort_by_namespace_and_id(all: &mut Vec<(&Arc<nri::PodSandbox>, &Arc<nri::Container>)>) {
    let mut namespaces: Vec<&str> = all.iter().map(|(p, _)| p.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let rank: HashMap<&str, u32, foldhash::fast::RandomState> =
        namespaces.iter().copied().zip(0u32..).collect();
    let mut keyed: Vec<(u32, [u8; 16], usize)> = all
        .iter()
        .enumerate()
        .map(|(i, (p, c))| {
            let mut prefix = [0u8; 16];
            let n = c.id.len().min(16);
            prefix[..n].copy_from_slice(&c.id.as_bytes()[..n]);
            (rank[p.namespace.as_str()], prefix, i)
        })
        .collect();
    // Ids are unique: an unstable sort gives the one order.
    keyed.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| all[a.2].1.id.cmp(&all[b.2].1.id))
    });
    *all = keyed.iter().map(|&(_, _, i)| all[i]).collect();
}

/// The state file: the ids of the containers nodeguard knows to run, so that a restarted
/// nodeguard can tell which ones started while it was away.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateFile {
    /// `nodeguard.io/state/v1`.
    schema: String,
    /// Running container ids.
    containers: Vec<String>,
}

const STATE_SCHEMA: &str = "nodeguard.io/state/v1";

/// Reads the container ids of a state file; `None` when there is none (a first start) or it
/// cannot be read (logged).
pub fn read_state(path: &std::path::Path) -> Option<HashSet<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the state file");
            return None;
        }
    };
    match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(state) if state.schema == STATE_SCHEMA => Some(state.containers.into_iter().collect()),
        Ok(state) => {
            warn!(path = %path.display(), schema = %state.schema, "unknown state file schema; ignored");
            None
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "unreadable state file; ignored");
            None
        }
    }
}

/// Writes `ids` to the state file atomically.
///
/// # Errors
/// When the file cannot be written.
pub fn write_state(path: &std::path::Path, ids: Vec<String>) -> std::io::Result<()> {
    let state = StateFile {
        schema: STATE_SCHEMA.to_string(),
        containers: ids,
    };
    let json = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
    report::write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(id: &str, namespace: &str) -> Arc<nri::PodSandbox> {
        Arc::new(nri::PodSandbox {
            id: id.into(),
            namespace: namespace.into(),
            ..Default::default()
        })
    }

    fn running(id: &str, pod: &str) -> Arc<nri::Container> {
        Arc::new(nri::Container {
            id: id.into(),
            pod_sandbox_id: pod.into(),
            state: ContainerState::ContainerRunning as i32,
            ..Default::default()
        })
    }

    #[test]
    fn the_snapshot_is_sorted_by_namespace_then_id() {
        let inventory = Inventory::default();
        // Namespaces sharing 16-byte prefixes too.
        let pods = vec![
            pod("p1", "prod"),
            pod("p2", "dev"),
            pod("p3", ""),
            pod("p4", "team-platform-observability"),
            pod("p5", "team-platform-observabilit"),
            pod("p6", "team-platform-ob\0"),
        ];
        // Ids sharing 16-byte prefixes, shorter and longer, and one with a NUL byte.
        let ids = [
            ("0123456789abcdef-b", "p1"),
            ("0123456789abcdef-a", "p1"),
            ("0123456789abcdef", "p1"),
            ("0123456789abcde", "p1"),
            ("0123456789abcde\0", "p1"),
            ("z", "p2"),
            ("a", "p2"),
            ("m", "p3"),
            ("b", "p4"),
            ("c", "p5"),
            ("e", "p6"),
            ("d", "p4"),
            ("orphan", "p9"),
        ];
        let containers = ids.iter().map(|(id, pod)| running(id, pod)).collect();
        inventory.replace(pods, containers);
        let got: Vec<(String, String)> = inventory
            .snapshot()
            .iter()
            .map(|(p, c)| (p.namespace.clone(), c.id.clone()))
            .collect();
        let mut want: Vec<(String, String)> = ids
            .iter()
            .filter(|(_, pod)| *pod != "p9")
            .map(|(id, pod)| {
                let namespace = match *pod {
                    "p1" => "prod",
                    "p2" => "dev",
                    "p4" => "team-platform-observability",
                    "p5" => "team-platform-observabilit",
                    "p6" => "team-platform-ob\0",
                    _ => "",
                };
                (namespace.to_string(), (*id).to_string())
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
}
