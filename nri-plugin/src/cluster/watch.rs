//! Following the API server's policy objects: `NodePolicy` objects and the constraints of
//! every kind served under `constraints.gatekeeper.sh`, with kube-rs watchers (list, then watch
//! from the list's resourceVersion, relist on `410 Gone`, retry with backoff).
//!
//! The API server is not a dependency of enforcement: while it is away the documents already
//! accepted (or read from the cache at start) stay in force, and the watchers retry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::crd::NodePolicy;
use super::documents::ObjectKey;
use super::shared::ClusterPolicy;
use crate::ops::namespaces::NamespaceLabels;
use k8s_openapi::api::core::v1::Namespace;

/// The API group of Gatekeeper's constraints (Azure Policy for AKS installs them too).
pub const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";

/// How often the constraint kinds are discovered again (a new ConstraintTemplate adds one).
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);

/// Follows the objects of `resource` into `policy` until `shutdown`: every object listed or
/// changed is applied, every deleted one forgotten, and after each full list the objects no
/// longer listed are forgotten. Errors (the API server away, `410 Gone`) are retried with
/// kube-rs's default backoff.
pub async fn follow(
    client: Client,
    resource: ApiResource,
    policy: Arc<ClusterPolicy>,
    shutdown: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let kind = resource.kind.clone();
    let mut listed: Vec<ObjectKey> = Vec::new();
    // Whether an object of the list under way was taken in: the documents are kept on disk
    // and the reloader woken once, when the list ends.
    let mut list_changed = false;
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else {
            return;
        };
        match event {
            Ok(Event::Init) => {
                listed.clear();
                list_changed = false;
            }
            Ok(Event::InitApply(object)) => {
                if let Some(key) = key_of(&kind, &object) {
                    listed.push(key);
                }
                list_changed |= policy.apply_quietly(&to_value(&kind, &resource, object))
                    == super::documents::Applied::Accepted;
            }
            Ok(Event::InitDone) => {
                debug!(kind, objects = listed.len(), "listed");
                policy.listed(&kind, &listed, list_changed);
            }
            Ok(Event::Apply(object)) => {
                policy.apply(&to_value(&kind, &resource, object));
            }
            Ok(Event::Delete(object)) => {
                if let Some(key) = key_of(&kind, &object) {
                    policy.delete(&key);
                }
            }
            Err(e) => warn!(kind, error = %e, "watching the API server's policy objects; retrying"),
        }
    }
}

fn key_of(kind: &str, object: &DynamicObject) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind: kind.to_string(),
        name: object.metadata.name.clone()?,
    })
}

/// The object as JSON, with the kind and apiVersion a list's items may lack.
fn to_value(kind: &str, resource: &ApiResource, object: DynamicObject) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), kind.into());
        map.insert("apiVersion".into(), resource.api_version.clone().into());
    }
    value
}

/// Follows the namespaces' labels into `labels` until `shutdown` (a full list replaces them
/// all; errors are retried with backoff), keeping them in `keep` (if any) at every change, so
/// that a restart without the API server judges `namespaceSelector`s from its first container.
pub async fn follow_namespaces(
    client: Client,
    labels: Arc<NamespaceLabels>,
    keep: Option<std::path::PathBuf>,
    shutdown: CancellationToken,
) {
    let save = |labels: &NamespaceLabels| {
        if let (Some(path), Some(all)) = (&keep, labels.snapshot())
            && let Err(e) = super::cache::save_labels(path, &all)
        {
            warn!(error = %e, "cannot keep the namespaces' labels on disk");
        }
    };
    let api: Api<Namespace> = Api::all(client);
    let mut listed = HashMap::new();
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let labels_of = |ns: &Namespace| ns.metadata.labels.clone().unwrap_or_default();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            None => return,
            Some(Ok(Event::Init)) => listed.clear(),
            Some(Ok(Event::InitApply(ns))) => {
                if let Some(name) = ns.metadata.name.clone() {
                    listed.insert(name, labels_of(&ns));
                }
            }
            Some(Ok(Event::InitDone)) => {
                labels.replace_all(std::mem::take(&mut listed));
                save(&labels);
            }
            Some(Ok(Event::Apply(ns))) => {
                if let Some(name) = &ns.metadata.name {
                    labels.set(name, labels_of(&ns));
                    save(&labels);
                }
            }
            Some(Ok(Event::Delete(ns))) => {
                if let Some(name) = &ns.metadata.name {
                    labels.remove(name);
                    save(&labels);
                }
            }
            Some(Err(e)) => warn!(error = %e, "watching the namespaces' labels; retrying"),
        }
    }
}

/// The kind of the NodePolicy objects (followed apart from the constraints).
const NODE_POLICY_KIND: &str = "NodePolicy";

/// The `NodePolicy` resource.
pub fn node_policies() -> ApiResource {
    ApiResource::erase::<NodePolicy>(&())
}

/// The constraint kinds the API server serves under [`CONSTRAINTS_GROUP`] (none when the
/// group does not exist: Gatekeeper is not installed).
///
/// # Errors
/// When the API server cannot be asked.
pub async fn constraint_kinds(client: &Client) -> Result<Vec<ApiResource>, kube::Error> {
    let groups = kube::discovery::Discovery::new(client.clone())
        .filter(&[CONSTRAINTS_GROUP])
        .run()
        .await?;
    Ok(groups
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(resource, _)| resource)
        .filter(|r| !r.plural.contains('/'))
        .collect())
}

/// Follows `NodePolicy` objects and every constraint kind until `shutdown`, discovering the
/// constraint kinds again every `interval` (a watcher per kind; a kind no longer served is
/// stopped and its objects forgotten).
pub async fn run(
    client: Client,
    policy: Arc<ClusterPolicy>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(follow(
        client.clone(),
        node_policies(),
        Arc::clone(&policy),
        shutdown.clone(),
    ));
    let mut followed: BTreeMap<String, CancellationToken> = BTreeMap::new();
    loop {
        match constraint_kinds(&client).await {
            Ok(kinds) => {
                let served: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
                // Constraints kept on disk of a kind no longer served (its template, or
                // Gatekeeper, removed while this node was away) go too.
                for kind in policy.kinds() {
                    if kind != NODE_POLICY_KIND
                        && !served.contains(&kind)
                        && !followed.contains_key(&kind)
                    {
                        info!(kind, "constraint kind no longer served");
                        policy.retain_listed(&kind, &[]);
                    }
                }
                for resource in kinds {
                    if followed.contains_key(&resource.kind) {
                        continue;
                    }
                    info!(kind = resource.kind, "following constraints");
                    let stop = shutdown.child_token();
                    followed.insert(resource.kind.clone(), stop.clone());
                    tokio::spawn(follow(client.clone(), resource, Arc::clone(&policy), stop));
                }
                followed.retain(|kind, stop| {
                    let keep = served.contains(kind);
                    if !keep {
                        info!(kind, "constraint kind no longer served");
                        stop.cancel();
                        policy.retain_listed(kind, &[]);
                    }
                    keep
                });
            }
            Err(e) => warn!(error = %e, "discovering the constraint kinds; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
