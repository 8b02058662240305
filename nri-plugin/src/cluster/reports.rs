//! The compliance reports written back to the API server, where the cluster's tools read them
//! (Policy Reporter, `kubectl get policyreports -A`): after each compliance audit, one report
//! per namespace with containers on this node, named `nodeguard-<node>`, plus a cluster-scoped
//! report of the containers made outside Kubernetes, each owned by the Node object (deleted
//! with it) and labelled with the node.
//!
//! - Every result is written: a report that would pass [`MAX_OBJECT_BYTES`] is split into
//!   `nodeguard-<node>`, `nodeguard-<node>-2`, ... (etcd refuses objects over 1.5 MiB).
//! - An unchanged report is never written again; the writes of one audit are one round, and
//!   rounds are at least `min_interval` apart, the newest audit's reports replacing any not yet
//!   written.
//! - The reports of this node that the round did not write (a namespace with no container on
//!   the node any more) are deleted: their number never grows without bound.
//!
//! Written with server-side apply (field manager `nodeguard`). Formats: `wgpolicyk8s.io/v1alpha2`
//! `PolicyReport` / `ClusterPolicyReport`, or OpenReports `openreports.io/v1alpha1` `Report` /
//! `ClusterReport` (the same fields).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::compliance::report::{PolicyReport, ReportFile, ReportResult, ReportSink, Summary};

/// The most one report object may hold, serialized: well under etcd's 1.5 MiB request limit.
pub const MAX_OBJECT_BYTES: usize = 800 << 10;

/// The label naming the node a report is of.
pub const NODE_LABEL: &str = "nodeguard.io/node";

/// The field manager of nodeguard's writes.
pub const FIELD_MANAGER: &str = "nodeguard";

/// Which report API the reports are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport` and `ClusterPolicyReport`.
    Policyreport,
    /// `openreports.io/v1alpha1` `Report` and `ClusterReport`.
    Openreports,
}

impl ReportFormat {
    /// The resources: namespaced, then cluster-scoped.
    fn resources(self) -> (ApiResource, ApiResource) {
        let (group, version, kinds) = match self {
            ReportFormat::Policyreport => (
                "wgpolicyk8s.io",
                "v1alpha2",
                [
                    ("PolicyReport", "policyreports"),
                    ("ClusterPolicyReport", "clusterpolicyreports"),
                ],
            ),
            ReportFormat::Openreports => (
                "openreports.io",
                "v1alpha1",
                [("Report", "reports"), ("ClusterReport", "clusterreports")],
            ),
        };
        let resource = |(kind, plural): (&str, &str)| ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        (resource(kinds[0]), resource(kinds[1]))
    }
}

/// The newest reports, handed from the compliance audits to the writer.
#[derive(Debug)]
pub struct ReportPublisher {
    latest: watch::Sender<Option<Arc<ReportFile>>>,
}

impl ReportPublisher {
    /// A publisher, and the receiving end the writer reads.
    pub fn new() -> (Self, watch::Receiver<Option<Arc<ReportFile>>>) {
        let (latest, receiver) = watch::channel(None);
        (ReportPublisher { latest }, receiver)
    }
}

impl ReportSink for ReportPublisher {
    fn publish(&self, reports: ReportFile) {
        self.latest.send_replace(Some(Arc::new(reports)));
    }
}

/// One report object to write: where, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportObject {
    /// The namespace (empty: cluster-scoped).
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The object, as applied.
    pub object: Value,
}

/// The Node object that owns the reports: its name and UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The node's name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// The objects of `file` for node `owner`, in `format`: each report labelled with the node,
/// owned by the Node, and split so that no object passes `max_bytes` (every result kept).
/// Pure.
pub fn objects(
    file: &ReportFile,
    owner: &Owner,
    format: ReportFormat,
    max_bytes: usize,
) -> Vec<ReportObject> {
    let (namespaced, cluster) = format.resources();
    let mut out = Vec::new();
    for report in &file.items {
        let resource = if report.metadata.namespace.is_empty() {
            &cluster
        } else {
            &namespaced
        };
        for (i, results) in split(report, max_bytes).into_iter().enumerate() {
            let name = if i == 0 {
                report.metadata.name.clone()
            } else {
                format!("{}-{}", report.metadata.name, i + 1)
            };
            let mut labels = report.metadata.labels.clone();
            labels.insert(NODE_LABEL.into(), owner.name.clone());
            labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
            let mut metadata = json!({
                "name": name,
                "labels": labels,
                "annotations": report.metadata.annotations,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node",
                    "name": owner.name, "uid": owner.uid,
                }],
            });
            if !report.metadata.namespace.is_empty() {
                metadata["namespace"] = report.metadata.namespace.clone().into();
            }
            let object = json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "summary": Summary::of(results),
                "results": results,
            });
            out.push(ReportObject {
                namespace: report.metadata.namespace.clone(),
                name,
                object,
            });
        }
    }
    out
}

/// The results of `report` in parts, none of which serializes past `max_bytes` (one result is
/// never split: a part holds at least one).
fn split(report: &PolicyReport, max_bytes: usize) -> Vec<&[ReportResult]> {
    // What every part carries besides its results.
    let overhead = 2048;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = overhead;
    for (i, result) in report.results.iter().enumerate() {
        let len = serde_json::to_vec(result).map_or(0, |v| v.len()) + 1;
        if i > start && size + len > max_bytes {
            parts.push(&report.results[start..i]);
            start = i;
            size = overhead;
        }
        size += len;
    }
    parts.push(&report.results[start..]);
    parts
}

/// What decides whether an object changed: everything but the time of the audit.
fn fingerprint(object: &Value) -> String {
    let mut object = object.clone();
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.retain(|k, _| !k.ends_with("/generated") && !k.ends_with("/trigger"));
    }
    if let Some(results) = object.get_mut("results").and_then(Value::as_array_mut) {
        for r in results {
            if let Some(r) = r.as_object_mut() {
                r.remove("timestamp");
            }
        }
    }
    object.to_string()
}

/// Writes each audit's reports to the API server.
pub struct ReportWriter {
    client: Client,
    node: String,
    format: ReportFormat,
    min_interval: Duration,
    owner: Option<Owner>,
    /// What was last written, by `(namespace, name)`.
    written: HashMap<(String, String), String>,
}

impl ReportWriter {
    /// A writer for node `node`'s reports, in `format`, rounds at least `min_interval` apart.
    pub fn new(client: Client, node: String, format: ReportFormat, min_interval: Duration) -> Self {
        ReportWriter {
            client,
            node,
            format,
            min_interval,
            owner: None,
            written: HashMap::new(),
        }
    }

    /// Writes the newest reports `latest` holds, a round at a time, until `shutdown`. A
    /// failed round is tried again with the newest reports.
    pub async fn run(
        mut self,
        mut latest: watch::Receiver<Option<Arc<ReportFile>>>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = latest.changed() => if changed.is_err() { return },
            }
            let Some(file) = latest.borrow_and_update().clone() else {
                continue;
            };
            if let Err(e) = self.round(&file).await {
                warn!(error = %e, "cannot write the compliance reports to the API server; retrying");
                latest.mark_changed();
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.min_interval) => {}
            }
        }
    }

    /// One round: every changed report written, every report of this node not in `file`
    /// deleted. A report that cannot be written does not stop the others; a report deleted
    /// behind nodeguard's back is written again.
    ///
    /// # Errors
    /// The API server's: the first failure of the round (the round went on past it).
    pub async fn round(&mut self, file: &ReportFile) -> Result<(), kube::Error> {
        let owner = match &self.owner {
            Some(owner) => owner.clone(),
            None => {
                let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
                let node = nodes.get(&self.node).await?;
                let owner = Owner {
                    name: self.node.clone(),
                    uid: node.metadata.uid.unwrap_or_default(),
                };
                self.owner = Some(owner.clone());
                owner
            }
        };
        let (namespaced, cluster) = self.format.resources();
        let objects = objects(file, &owner, self.format, MAX_OBJECT_BYTES);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut keep: Vec<(String, String)> = Vec::new();
        let mut wrote = 0;
        let mut first_error = None;
        // This node's reports as they are now: what was deleted meanwhile is written again,
        // what is not ours to keep is deleted below.
        let selector = ListParams::default().labels(&format!("{NODE_LABEL}={}", self.node));
        let mut present: Vec<(ApiResource, String, String)> = Vec::new();
        for resource in [&namespaced, &cluster] {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
            for found in api.list(&selector).await?.items {
                present.push((
                    resource.clone(),
                    found.metadata.namespace.clone().unwrap_or_default(),
                    found.metadata.name.clone().unwrap_or_default(),
                ));
            }
        }
        self.written.retain(|(namespace, name), _| {
            present.iter().any(|(_, n, m)| n == namespace && m == name)
        });
        for object in &objects {
            let key = (object.namespace.clone(), object.name.clone());
            keep.push(key.clone());
            let print = fingerprint(&object.object);
            if self.written.get(&key) == Some(&print) {
                continue;
            }
            let api: Api<DynamicObject> = if object.namespace.is_empty() {
                Api::all_with(self.client.clone(), &cluster)
            } else {
                Api::namespaced_with(self.client.clone(), &object.namespace, &namespaced)
            };
            match api
                .patch(&object.name, &params, &Patch::Apply(&object.object))
                .await
            {
                Ok(_) => {
                    self.written.insert(key, print);
                    wrote += 1;
                }
                Err(e) => {
                    warn!(namespace = %object.namespace, name = %object.name, error = %e, "cannot write a compliance report");
                    // The Node may have been registered again (another UID): asked again.
                    self.owner = None;
                    first_error.get_or_insert(e);
                }
            }
        }
        // This node's reports the round did not write: gone.
        let mut deleted = 0;
        for (resource, namespace, name) in present {
            if keep.contains(&(namespace.clone(), name.clone())) {
                continue;
            }
            let api: Api<DynamicObject> = if namespace.is_empty() {
                Api::all_with(self.client.clone(), &resource)
            } else {
                Api::namespaced_with(self.client.clone(), &namespace, &resource)
            };
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => deleted += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            self.written.remove(&(namespace, name));
        }
        if wrote > 0 || deleted > 0 {
            info!(
                written = wrote,
                deleted, "compliance reports written to the API server"
            );
        } else {
            debug!("compliance reports unchanged");
        }
        first_error.map_or(Ok(()), Err)
    }
}
