//! The API server's accepted documents, shared by the watchers (which change them), the
//! reloader (which merges them with the files) and the cache on disk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use super::cache;
use super::documents::{Applied, ClusterDocuments, ObjectKey};
use crate::ops::events::{EventRecorder, ObjectEvent, Regarding};
use crate::ops::metrics::{Sample, SampleValue, Source};
use crate::ops::reload::{MoreDocument, MoreSources};

/// The API server's documents, shared by the watchers (which change them), the reloader
/// (which merges them with the files) and the cache on disk.
#[derive(Debug)]
pub struct ClusterPolicy {
    documents: Mutex<ClusterDocuments>,
    /// Where the accepted documents are kept; `None` keeps nothing (tests).
    cache: Option<PathBuf>,
    /// Notified when the accepted documents change: the reloader's trigger.
    changed: Arc<Notify>,
    /// Where a rejection is reported as an Event on the object.
    events: Option<Arc<dyn EventRecorder>>,
    /// Generations rejected so far.
    rejections: AtomicU64,
    /// Held while the cache is written: one writer at a time, each writing the documents as
    /// they are when it holds it (so the last write is the newest state).
    saving: Mutex<()>,
}

impl ClusterPolicy {
    /// The documents kept in `cache` (none when there is no cache yet, or it cannot be read:
    /// then said in the log), notifying `changed` at every change; with `strict`
    /// (`serve --strict`), a document with notes is rejected, as the files' are.
    pub fn from_cache(cache: Option<PathBuf>, changed: Arc<Notify>, strict: bool) -> Self {
        let documents = match cache.as_deref().map(|path| cache::load(path, strict)) {
            None => ClusterDocuments::new(strict),
            Some(Ok((documents, left_out))) => {
                for why in left_out {
                    warn!("cached API policy object left out: {why}");
                }
                if !documents.accepted().is_empty() {
                    info!(
                        objects = documents.accepted().len(),
                        "enforcing the API server's policy kept on disk until the API server answers"
                    );
                }
                documents
            }
            Some(Err(e)) => {
                error!(error = %e, "the cached API policy cannot be read: starting without it");
                ClusterDocuments::new(strict)
            }
        };
        ClusterPolicy {
            documents: Mutex::new(documents),
            cache,
            changed,
            events: None,
            rejections: AtomicU64::new(0),
            saving: Mutex::new(()),
        }
    }

    /// The same, reporting each rejected generation as an Event on its object (once per
    /// node and generation).
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventRecorder>) -> Self {
        self.events = Some(events);
        self
    }

    fn lock(&self) -> MutexGuard<'_, ClusterDocuments> {
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The accepted objects and their generations, in key order.
    pub fn in_force(&self) -> Vec<(ObjectKey, i64)> {
        self.lock()
            .accepted()
            .iter()
            .map(|(k, a)| (k.clone(), a.generation))
            .collect()
    }

    /// Takes in an object the API server sent (added or changed).
    pub fn apply(&self, object: &Value) -> Applied {
        let applied = self.apply_quietly(object);
        if applied == Applied::Accepted {
            self.changed_now();
        }
        applied
    }

    /// [`ClusterPolicy::apply`] without keeping the documents on disk or waking the reloader:
    /// for the objects of a full list, which [`ClusterPolicy::listed`] ends.
    pub fn apply_quietly(&self, object: &Value) -> Applied {
        let applied = self.lock().apply(object);
        match &applied {
            Applied::Accepted => {}
            Applied::Rejected { errors, generation } => {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                let name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let kind = object
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                error!(
                    kind,
                    name,
                    generation,
                    "API policy object rejected; its last good generation (if any) stays in force:\n{errors}"
                );
                if let Some(events) = &self.events {
                    let text = |pointer: &str| {
                        object
                            .pointer(pointer)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    events.record(ObjectEvent {
                        regarding: Regarding {
                            api_version: text("/apiVersion"),
                            kind: kind.to_string(),
                            namespace: String::new(),
                            name: name.to_string(),
                            uid: text("/metadata/uid"),
                        },
                        warning: true,
                        reason: "PolicyRejected",
                        action: "Validated",
                        message: format!(
                            "nodeguard: generation {generation} is not enforced (the last good one stays in force): {errors}"
                        ),
                    });
                }
            }
            Applied::Unchanged => {}
        }
        applied
    }

    /// Forgets a deleted object.
    pub fn delete(&self, key: &ObjectKey) {
        if self.lock().delete(key) {
            info!(%key, "API policy object deleted");
            self.changed_now();
        }
    }

    /// After a full list of `kind`: forgets the objects of that kind not listed.
    pub fn retain_listed(&self, kind: &str, present: &[ObjectKey]) {
        self.listed(kind, present, false);
    }

    /// Ends a full list of `kind` whose objects were applied quietly (`changed`: one of them
    /// was accepted): forgets the objects of that kind not listed, and if anything changed
    /// keeps the documents on disk and wakes the reloader, once.
    pub fn listed(&self, kind: &str, present: &[ObjectKey], changed: bool) {
        if self.lock().retain_listed(kind, present) || changed {
            self.changed_now();
        }
    }

    /// The kinds of the objects in force.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .lock()
            .accepted()
            .keys()
            .map(|k| k.kind.clone())
            .collect();
        kinds.dedup();
        kinds
    }

    /// Keeps the accepted documents on disk and wakes the reloader.
    fn changed_now(&self) {
        if let Some(path) = &self.cache {
            let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
            let documents = self.lock().clone();
            if let Err(e) = cache::save(path, &documents) {
                warn!(error = %e, "cannot keep the API server's policy on disk");
            }
        }
        self.changed.notify_one();
    }
}

impl Source for ClusterPolicy {
    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample {
            name: "cluster_policy_objects",
            help: "NodePolicy objects and constraints of the API server in force (accepted, or kept from the cache)",
            value: SampleValue::Gauge(i64::try_from(self.lock().accepted().len()).unwrap_or(i64::MAX)),
        });
        out.push(Sample {
            name: "cluster_policy_rejections",
            help: "Generations of API server policy objects this node rejected (each logged once, with an Event on the object); the last good generation stays in force",
            value: SampleValue::Counter(self.rejections.load(Ordering::Relaxed)),
        });
    }
}

impl MoreSources for ClusterPolicy {
    fn documents(&self) -> Vec<MoreDocument> {
        self.lock().documents()
    }
}

/// A shared [`ClusterPolicy`].
pub type ClusterPolicyHandle = Arc<ClusterPolicy>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_in_force_and_rejections_are_counted() {
        let policy = ClusterPolicy::from_cache(None, Arc::new(Notify::new()), false);
        let object = |generation: i64, rule: &str| {
            json!({"apiVersion": "nodeguard.io/v1alpha1", "kind": "NodePolicy",
                   "metadata": {"name": "p", "generation": generation},
                   "spec": {"rules": {rule: {}}}})
        };
        policy.apply(&object(1, "privileged"));
        policy.apply(&object(2, "privilegd"));
        policy.apply(&object(2, "privilegd"));
        let mut samples = Vec::new();
        policy.samples(&mut samples);
        assert_eq!(samples[0].value, SampleValue::Gauge(1));
        assert_eq!(
            samples[1].value,
            SampleValue::Counter(1),
            "once per generation"
        );
    }
}
