//! Hot reload of the policy: the files are re-read periodically (and on SIGHUP); a change is
//! validated in full before it replaces the policy in force. A bad policy is logged with
//! every error, counted, and never replaces the last good one.
//!
//! Polling rather than inotify: a ConfigMap volume changes by swapping a `..data` symlink,
//! which file watches on the policy files themselves miss, and the kubelet only refreshes
//! ConfigMap volumes every minute or so anyway (docs/adr/0010-policy-reload-by-polling.md).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use policy_core::{Policy, PolicyErrors};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::ops::metrics::Metrics;
use crate::ops::policy_files::{LoadError, PolicyPath, Sources};

/// A policy and its generation (1 at start, one more per successful reload), swapped
/// together so that nothing can pair a policy with another's generation.
#[derive(Debug)]
pub struct Loaded {
    /// The generation.
    pub generation: u64,
    /// The compiled policy.
    pub policy: Policy,
}

impl Loaded {
    /// A handle to `policy` as generation 1, the policy a daemon starts with.
    pub fn first(policy: Policy) -> PolicyHandle {
        Arc::new(ArcSwap::from_pointee(Loaded {
            generation: 1,
            policy,
        }))
    }
}

/// The shared, atomically replaceable policy in force, with its generation.
pub type PolicyHandle = Arc<ArcSwap<Loaded>>;

/// What one reload check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files are as last seen (good or bad): nothing to do.
    Unchanged,
    /// A new policy is in force.
    Reloaded {
        /// Its generation.
        generation: u64,
    },
    /// The files changed but are unusable; the last good policy stays in force.
    Rejected {
        /// Every error, as one text.
        errors: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The sources of the policy in force, or of a rejected change.
    Sources(Sources),
    /// The files could not be read; the error text.
    Unreadable(String),
}

#[derive(Debug)]
struct State {
    seen: Seen,
    last_error: Option<String>,
}

/// Policy documents from elsewhere than the files (the API server's, in the cluster-connected
/// mode), each already valid on its own, merged with the files' at every reload.
pub trait MoreSources: Send + Sync + std::fmt::Debug {
    /// The documents as they are now.
    fn documents(&self) -> Vec<MoreDocument>;
}

/// One document of [`MoreSources`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoreDocument {
    /// Its policy name.
    pub policy: String,
    /// Its source name, for messages and `/metrics`.
    pub source: PathBuf,
    /// Its text.
    pub text: String,
}

/// `documents` as policy sources, leaving out those whose policy name is in `taken`: with
/// each left out, why.
pub fn without_taken(
    documents: Vec<MoreDocument>,
    taken: &[&str],
) -> (Vec<(PathBuf, String)>, Vec<String>) {
    let mut sources = Vec::with_capacity(documents.len());
    let mut left_out = Vec::new();
    for d in documents {
        if taken.contains(&d.policy.as_str()) {
            left_out.push(format!(
                "{}: a policy file already defines {:?}; the file's is in force",
                d.source.display(),
                d.policy
            ));
        } else {
            sources.push((d.source, d.text));
        }
    }
    (sources, left_out)
}

/// Re-reads the policy at a path and swaps it in when it changed and is valid.
#[derive(Debug)]
pub struct Reloader {
    path: PolicyPath,
    more: Option<Arc<dyn MoreSources>>,
    policy: PolicyHandle,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

/// The files' sources with `more`'s merged in (those whose names the files use left out,
/// each named in the second part).
///
/// # Errors
/// The files' own mistakes: the merge needs their names.
pub fn merged(
    path: &PolicyPath,
    files: Sources,
    more: Option<Vec<MoreDocument>>,
) -> Result<(Sources, Vec<String>), PolicyErrors> {
    let Some(more) = more else {
        return Ok((files, Vec::new()));
    };
    let (extra, left_out) = {
        let alone = path.compile(&files)?;
        let taken: Vec<&str> = alone.names().collect();
        without_taken(more, &taken)
    };
    let Sources(mut all) = files;
    all.extend(extra);
    Ok((Sources(all), left_out))
}

impl Reloader {
    /// A reloader for the policy at `path`, now in force in `policy`, compiled from
    /// `sources`.
    pub fn new(
        path: PolicyPath,
        policy: PolicyHandle,
        sources: Sources,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.policy_initial();
        metrics.policy_in_force(&policy.load().policy);
        Reloader {
            path,
            more: None,
            policy,
            metrics,
            state: Mutex::new(State {
                seen: Seen::Sources(sources),
                last_error: None,
            }),
        }
    }

    /// The reloader merging `more`'s documents with the files' at every check.
    #[must_use]
    pub fn with_more_sources(mut self, more: Arc<dyn MoreSources>) -> Self {
        // The policy in force was compiled from them too: what the first check compares with.
        if let Seen::Sources(seen) = &mut self.lock().seen {
            seen.0.extend(without_taken(more.documents(), &[]).0);
        }
        self.more = Some(more);
        self
    }

    /// The generation of the policy in force: 1 at start, one more per successful reload.
    pub fn generation(&self) -> u64 {
        self.policy.load().generation
    }

    /// Why the files on disk are rejected, when they are.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the files; swaps in the policy when they changed and compile.
    pub fn check(&self) -> ReloadOutcome {
        // The files, and the other sources' documents (one snapshot, compared and compiled):
        // what a change is seen in.
        let read = self.path.read().map(|files| {
            let more = self.more.as_ref().map(|m| m.documents());
            let mut seen = files.clone();
            if let Some(more) = &more {
                seen.0.extend(without_taken(more.clone(), &[]).0);
            }
            (files, more, seen)
        });
        let mut state = self.lock();
        let seen = match &read {
            Ok((_, _, seen)) => Seen::Sources(seen.clone()),
            Err(e) => Seen::Unreadable(e.to_string()),
        };
        if seen == state.seen {
            return ReloadOutcome::Unchanged;
        }
        state.seen = seen;
        let compiled = read.and_then(|(files, more, _)| {
            let (sources, left_out) = merged(&self.path, files, more)?;
            for why in left_out {
                tracing::warn!("API policy object left out: {why}");
            }
            self.path.compile(&sources).map_err(LoadError::from)
        });
        match compiled {
            Ok(policy) => {
                state.last_error = None;
                // Checks run one at a time (under `state`): the generation only grows.
                let generation = self.generation() + 1;
                info!(
                    generation,
                    policies = policy.names().collect::<Vec<_>>().join(","),
                    checks = policy.check_count(),
                    "policy reloaded"
                );
                for note in policy.notes() {
                    tracing::warn!("not enforced on this node: {note}");
                }
                self.policy.store(Arc::new(Loaded { generation, policy }));
                self.metrics.policy_load(true, generation);
                self.metrics.policy_in_force(&self.policy.load().policy);
                ReloadOutcome::Reloaded { generation }
            }
            Err(e) => {
                let errors = e.to_string();
                error!(
                    path = %self.path.describe(),
                    generation = self.generation(),
                    "policy change rejected; the last good policy stays in force:\n{errors}"
                );
                state.last_error = Some(errors.clone());
                self.metrics.policy_load(false, self.generation());
                ReloadOutcome::Rejected { errors }
            }
        }
    }
}

/// Checks for a new policy every `interval` and whenever `trigger` is notified (SIGHUP), until
/// `shutdown`; calls `on_reload` after each successful reload.
pub async fn watch(
    reloader: Arc<Reloader>,
    interval: Duration,
    trigger: Arc<Notify>,
    shutdown: CancellationToken,
    on_reload: impl Fn(u64) + Send,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = trigger.notified() => info!("reload requested"),
            () = shutdown.cancelled() => return,
        }
        let checker = Arc::clone(&reloader);
        // Reading files blocks: off the async workers.
        match tokio::task::spawn_blocking(move || checker.check()).await {
            Ok(ReloadOutcome::Reloaded { generation }) => on_reload(generation),
            Ok(_) => {}
            Err(e) => error!(error = %e, "policy reload failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    fn policy_text(name: &str) -> String {
        format!(
            "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {{name: {name}}}\nspec: {{rules: {{privileged: {{}}}}}}\n"
        )
    }

    /// A reloader over `path`, loaded as the daemon loads it at start.
    fn reloader(path: &Path) -> (Reloader, PolicyHandle, Arc<Metrics>) {
        let path = PolicyPath::new(path);
        let sources = path.read().unwrap();
        let policy = Loaded::first(sources.compile().unwrap());
        let metrics = Arc::new(Metrics::default());
        (
            Reloader::new(path, Arc::clone(&policy), sources, Arc::clone(&metrics)),
            policy,
            metrics,
        )
    }

    fn names(policy: &PolicyHandle) -> Vec<String> {
        policy.load().policy.names().map(str::to_string).collect()
    }

    #[test]
    fn a_valid_change_is_swapped_in_and_an_unchanged_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, policy_text("one")).unwrap();
        let (r, policy, metrics) = reloader(&file);
        assert_eq!(r.check(), ReloadOutcome::Unchanged);
        std::fs::write(&file, policy_text("two")).unwrap();
        assert_eq!(r.check(), ReloadOutcome::Reloaded { generation: 2 });
        assert_eq!(names(&policy), ["two"]);
        assert_eq!(r.generation(), 2);
        assert_eq!(r.check(), ReloadOutcome::Unchanged);
        let text = metrics.encode();
        assert!(text.contains("nodeguard_policy_generation 2"), "{text}");
        assert!(text.contains(r#"nodeguard_policy_reloads_total{result="success"} 1"#));
    }

    #[test]
    fn garbage_empty_and_deleted_policies_never_replace_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, policy_text("good")).unwrap();
        let (r, policy, metrics) = reloader(&file);
        let typo = policy_text("typo").replace("privileged", "privilegd");
        let bad: [(&str, Option<&[u8]>); 4] = [
            ("garbage", Some(b"\x00\xff{{{ not: [yaml")),
            ("a typo", Some(typo.as_bytes())),
            ("empty", Some(b"")),
            ("deleted", None),
        ];
        let mut failures = 0;
        for (what, content) in bad {
            match content {
                Some(bytes) => std::fs::write(&file, bytes).unwrap(),
                None => std::fs::remove_file(&file).unwrap(),
            }
            let outcome = r.check();
            let ReloadOutcome::Rejected { errors } = &outcome else {
                panic!("{what}: {outcome:?}");
            };
            failures += 1;
            assert!(
                errors.contains("policy.yaml"),
                "{what}: the error names the file: {errors}"
            );
            assert_eq!(names(&policy), ["good"], "{what}");
            assert_eq!(r.generation(), 1, "{what}");
            assert_eq!(r.last_error().as_deref(), Some(errors.as_str()));
            // The same bad state is reported once, not at every check.
            assert_eq!(r.check(), ReloadOutcome::Unchanged, "{what}");
        }
        let text = metrics.encode();
        assert!(
            text.contains(&format!(
                r#"nodeguard_policy_reloads_total{{result="failure"}} {failures}"#
            )),
            "{text}"
        );
        assert!(text.contains("nodeguard_policy_last_reload_success 0"));
        std::fs::write(&file, policy_text("fixed")).unwrap();
        assert_eq!(r.check(), ReloadOutcome::Reloaded { generation: 2 });
        assert_eq!(names(&policy), ["fixed"]);
        assert_eq!(r.last_error(), None);
        assert!(
            metrics
                .encode()
                .contains("nodeguard_policy_last_reload_success 1")
        );
    }

    #[test]
    fn a_configmap_symlink_swap_is_picked_up() {
        // A ConfigMap volume: `policy.yaml -> ..data/policy.yaml`, `..data -> ..<timestamp>`;
        // the kubelet writes a new timestamped directory and renames a new `..data` link over
        // the old one.
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path();
        std::fs::create_dir(volume.join("..2026_11_24_01")).unwrap();
        std::fs::write(
            volume.join("..2026_11_24_01/policy.yaml"),
            policy_text("v1"),
        )
        .unwrap();
        symlink("..2026_11_24_01", volume.join("..data")).unwrap();
        symlink("..data/policy.yaml", volume.join("policy.yaml")).unwrap();
        let (r, policy, _) = reloader(volume);
        assert_eq!(names(&policy), ["v1"]);
        std::fs::create_dir(volume.join("..2026_11_24_02")).unwrap();
        std::fs::write(
            volume.join("..2026_11_24_02/policy.yaml"),
            policy_text("v2"),
        )
        .unwrap();
        symlink("..2026_11_24_02", volume.join("..data_tmp")).unwrap();
        std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
        std::fs::remove_dir_all(volume.join("..2026_11_24_01")).unwrap();
        assert_eq!(r.check(), ReloadOutcome::Reloaded { generation: 2 });
        assert_eq!(names(&policy), ["v2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn watch_reloads_on_its_interval_and_on_trigger_and_stops_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, policy_text("one")).unwrap();
        let (r, policy, _) = reloader(&file);
        let r = Arc::new(r);
        let trigger = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(watch(
            Arc::clone(&r),
            Duration::from_secs(3600),
            Arc::clone(&trigger),
            shutdown.clone(),
            move |generation| tx.send(generation).unwrap(),
        ));
        std::fs::write(&file, policy_text("two")).unwrap();
        trigger.notify_one();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(names(&policy), ["two"]);
        std::fs::write(&file, policy_text("three")).unwrap();
        tokio::time::advance(Duration::from_secs(3601)).await;
        assert_eq!(rx.recv().await, Some(3));
        shutdown.cancel();
        task.await.unwrap();
    }
}
