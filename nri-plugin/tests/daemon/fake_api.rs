//! An in-memory Kubernetes API server, as far as nodeguard's cluster mode uses one: discovery
//! (`/api`, `/apis`, `/apis/<group>/<version>`), and for cluster-scoped custom resources, list
//! and watch with the API server's semantics: a list answers with the collection's
//! resourceVersion; a watch from a resourceVersion replays what changed since then, then
//! streams changes as they happen (with bookmarks when asked); a watch from a resourceVersion
//! older than the kept history gets a `410 Gone` (`Expired`) ERROR event, and the client must
//! list again. The server can be taken down (every request fails with 503, open watches end)
//! and brought back. Every request is recorded (`VERB path?query`).
//!
//! Written from the API conventions (api-concepts: efficient detection of changes, resource
//! versions, watch bookmarks); nodeguard's client logic (kube-rs) is what is tested against it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A response body: whole, or a watch stream.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One resource the server serves (cluster-scoped).
#[derive(Debug, Clone)]
struct Resource {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    /// By `name`, or `namespace/name` when namespaced.
    objects: BTreeMap<String, Value>,
}

/// A change, as a watch reports it.
#[derive(Debug, Clone)]
struct Change {
    resource_version: u64,
    plural: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug)]
struct State {
    resources: Vec<Resource>,
    /// The last resourceVersion given out.
    resource_version: u64,
    /// Every change after `compacted`, in order.
    history: Vec<Change>,
    /// Changes at or before this resourceVersion are forgotten: watching from there is `410`.
    compacted: u64,
    /// Down: every request fails.
    down: bool,
    /// How long each answer takes.
    delay: std::time::Duration,
    requests: Vec<String>,
    writes: Vec<(String, Value)>,
    /// The field manager that last applied each object (`kind`, key).
    managers: BTreeMap<(String, String), String>,
}

/// The fake API server; clone it to keep a handle while a client uses it.
#[derive(Debug, Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Option<Change>>,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi {
            state: Arc::new(Mutex::new(State {
                resources: Vec::new(),
                resource_version: 100,
                history: Vec::new(),
                compacted: 0,
                down: false,
                delay: std::time::Duration::ZERO,
                requests: Vec::new(),
                writes: Vec::new(),
                managers: BTreeMap::new(),
            })),
            changes: broadcast::channel(1024).0,
        }
    }
}

impl FakeApi {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves the cluster-scoped resource `kind` (`plural`) of `group/version` (group `""`: the
    /// core group, under `/api`).
    pub fn serve(&self, group: &str, version: &str, kind: &str, plural: &str) -> &Self {
        self.serve_scoped(group, version, kind, plural, false)
    }

    /// Serves the namespaced resource `kind` (`plural`) of `group/version`.
    pub fn serve_namespaced(&self, group: &str, version: &str, kind: &str, plural: &str) -> &Self {
        self.serve_scoped(group, version, kind, plural, true)
    }

    fn serve_scoped(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> &Self {
        self.lock().resources.push(Resource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            objects: BTreeMap::new(),
        });
        self
    }

    /// Serves Nodes (with node `node`) and the PolicyReport kinds, as a cluster with the
    /// PolicyReport CRD installed does.
    pub fn serve_reports(&self, node: &str) -> &Self {
        self.serve("", "v1", "Node", "nodes");
        self.serve_namespaced(
            "wgpolicyk8s.io",
            "v1alpha2",
            "PolicyReport",
            "policyreports",
        );
        self.serve(
            "wgpolicyk8s.io",
            "v1alpha2",
            "ClusterPolicyReport",
            "clusterpolicyreports",
        );
        self.apply(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}, "spec": {}}),
        );
        self
    }

    /// The objects of `kind`, by `name` (or `namespace/name`).
    pub fn objects(&self, kind: &str) -> BTreeMap<String, Value> {
        self.lock()
            .resources
            .iter()
            .find(|r| r.kind == kind)
            .map(|r| r.objects.clone())
            .unwrap_or_default()
    }

    /// Every write so far (PATCH, DELETE), as `VERB path?query` and the body.
    pub fn writes(&self) -> Vec<(String, Value)> {
        self.lock().writes.clone()
    }

    /// Stops serving `plural` (its CRD, or ConstraintTemplate, was deleted).
    pub fn unserve(&self, plural: &str) {
        self.lock().resources.retain(|r| r.plural != plural);
    }

    /// A client of this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Creates or replaces `object` (of a served kind): a new resourceVersion and, when its
    /// spec changed, a new generation; watchers see ADDED or MODIFIED.
    pub fn apply(&self, mut object: Value) {
        let kind = object["kind"].as_str().unwrap().to_string();
        let name = match object["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", object["metadata"]["name"].as_str().unwrap()),
            None => object["metadata"]["name"].as_str().unwrap().to_string(),
        };
        let mut state = self.lock();
        state.resource_version += 1;
        let rv = state.resource_version;
        let resource = state
            .resources
            .iter_mut()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("{kind} is not served"));
        let previous = resource.objects.get(&name).cloned();
        let generation = match &previous {
            Some(p) if p["spec"] == object["spec"] => p["metadata"]["generation"].as_i64().unwrap(),
            Some(p) => p["metadata"]["generation"].as_i64().unwrap() + 1,
            None => 1,
        };
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.insert("resourceVersion".into(), rv.to_string().into());
        meta.insert("generation".into(), generation.into());
        meta.insert(
            "uid".into(),
            format!("uid-{}", name.replace('/', "-")).into(),
        );
        resource.objects.insert(name, object.clone());
        let change = Change {
            resource_version: rv,
            plural: resource.plural.clone(),
            kind: if previous.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            object,
        };
        state.history.push(change.clone());
        drop(state);
        let _ = self.changes.send(Some(change));
    }

    /// Deletes object `name` of `kind`; watchers see DELETED.
    pub fn delete(&self, kind: &str, name: &str) {
        let mut state = self.lock();
        state.resource_version += 1;
        let rv = state.resource_version;
        let resource = state.resources.iter_mut().find(|r| r.kind == kind).unwrap();
        let Some(mut object) = resource.objects.remove(name) else {
            return;
        };
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let change = Change {
            resource_version: rv,
            plural: resource.plural.clone(),
            kind: "DELETED",
            object,
        };
        state.history.push(change.clone());
        drop(state);
        let _ = self.changes.send(Some(change));
    }

    /// Forgets the history so far (etcd compaction): a watch from before now is `410 Gone`.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.compacted = state.resource_version;
        state.history.clear();
    }

    /// Takes the server down (requests fail with 503, open watches end) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
        if down {
            let _ = self.changes.send(None);
        }
    }

    /// Makes every answer take `delay` (a slow API server).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.lock().delay = delay;
    }

    /// Records that field manager `manager` applied object `key` (`name`, or `namespace/name`)
    /// of `kind`: another manager's apply then conflicts unless forced.
    pub fn managed_by(&self, kind: &str, key: &str, manager: &str) {
        self.lock()
            .managers
            .insert((kind.to_string(), key.to_string()), manager.to_string());
    }

    /// Every request so far, as `VERB path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn respond(&self, request: &Request<()>, body: &[u8]) -> Response<Body> {
        let line = format!(
            "{} {}",
            request.method(),
            request.uri().path_and_query().map_or("", |p| p.as_str())
        );
        let mut state = self.lock();
        state.requests.push(line);
        if state.down {
            return status(StatusCode::SERVICE_UNAVAILABLE, "the API server is down");
        }
        let path = request.uri().path().to_string();
        if request.method() == http::Method::PATCH
            || request.method() == http::Method::DELETE
            || request.method() == http::Method::POST
        {
            let line = state.requests.last().cloned().unwrap_or_default();
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            state.writes.push((line, body.clone()));
            drop(state);
            return self.write(request.method(), &path, request, body);
        }
        if request.method() != http::Method::GET {
            return status(StatusCode::METHOD_NOT_ALLOWED, "not served by this fake");
        }
        let query: BTreeMap<String, String> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["api"] => whole(
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
            ["apis"] => {
                let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for r in state.resources.iter().filter(|r| !r.group.is_empty()) {
                    groups.entry(&r.group).or_default().push(&r.version);
                }
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(group, versions)| {
                        let versions: Vec<Value> = versions
                            .iter()
                            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                            .collect();
                        json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
                    })
                    .collect();
                whole(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }
            ["apis", group, version] => {
                let resources: Vec<Value> = state
                    .resources
                    .iter()
                    .filter(|r| r.group == *group && r.version == *version)
                    .map(|r| {
                        json!({"name": r.plural, "singularName": "", "namespaced": false,
                               "kind": r.kind, "verbs": ["get", "list", "watch"]})
                    })
                    .collect();
                if resources.is_empty() {
                    return status(StatusCode::NOT_FOUND, "no such group version");
                }
                whole(json!({"kind": "APIResourceList", "apiVersion": "v1",
                             "groupVersion": format!("{group}/{version}"), "resources": resources}))
            }
            ["api", version, plural, name] | ["apis", _, version, plural, name] => {
                let group = if parts[0] == "api" { "" } else { parts[1] };
                match state
                    .resources
                    .iter()
                    .find(|r| r.group == group && r.version == *version && r.plural == *plural)
                    .and_then(|r| r.objects.get(*name))
                {
                    Some(object) => whole(object.clone()),
                    None => status(StatusCode::NOT_FOUND, "no such object"),
                }
            }
            ["api", version, plural] | ["apis", _, version, plural] => {
                let group = if parts[0] == "api" { "" } else { parts[1] };
                let Some(resource) = state
                    .resources
                    .iter()
                    .find(|r| r.group == group && r.version == *version && r.plural == *plural)
                    .cloned()
                else {
                    return status(StatusCode::NOT_FOUND, "no such resource");
                };
                if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                    let from: u64 = query
                        .get("resourceVersion")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(state.resource_version);
                    let bookmarks = query
                        .get("allowWatchBookmarks")
                        .is_some_and(|b| b == "true");
                    let api_version = api_version(group, version);
                    if from < state.compacted {
                        let gone = json!({"type": "ERROR", "object": {
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "Expired", "code": 410,
                            "message": format!("too old resource version: {from} ({})", state.compacted)}});
                        return lines(vec![gone]);
                    }
                    let replay: Vec<Value> = state
                        .history
                        .iter()
                        .filter(|c| c.plural == resource.plural && c.resource_version > from)
                        .map(event)
                        .collect();
                    let current = state.resource_version;
                    let receiver = self.changes.subscribe();
                    drop(state);
                    watch(
                        replay,
                        receiver,
                        resource.plural,
                        api_version,
                        bookmarks.then_some(current),
                    )
                } else {
                    let selector = query
                        .get("labelSelector")
                        .map(|s| s.replace("%3D", "=").replace("%2F", "/"));
                    let items: Vec<Value> = resource
                        .objects
                        .values()
                        .filter(|o| {
                            selector.as_deref().is_none_or(|s| {
                                s.split(',').all(|kv| match kv.split_once('=') {
                                    Some((k, v)) => o["metadata"]["labels"][k].as_str() == Some(v),
                                    // A key alone: the label exists.
                                    None => o["metadata"]["labels"][kv].is_string(),
                                })
                            })
                        })
                        .cloned()
                        .collect();
                    whole(json!({
                        "apiVersion": api_version(group, version),
                        "kind": format!("{}List", resource.kind),
                        "metadata": {"resourceVersion": state.resource_version.to_string()},
                        "items": items
                    }))
                }
            }
            _ => status(StatusCode::NOT_FOUND, "not served by this fake"),
        }
    }
}

impl FakeApi {
    /// PATCH (server-side apply: the body is the object) or DELETE of one object, under
    /// `/apis/<group>/<version>/[namespaces/<ns>/]<plural>/<name>`.
    fn write(
        &self,
        method: &http::Method,
        path: &str,
        request: &Request<()>,
        body: Value,
    ) -> Response<Body> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let posted = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (group, version, namespace, plural, name) = match parts.as_slice() {
            ["apis", g, v, "namespaces", ns, plural] if *method == http::Method::POST => {
                (*g, *v, Some(*ns), *plural, posted.as_str())
            }
            ["apis", g, v, "namespaces", ns, plural, name] => (*g, *v, Some(*ns), *plural, *name),
            ["apis", g, v, plural, name] => (*g, *v, None, *plural, *name),
            _ => return status(StatusCode::NOT_FOUND, "not served by this fake"),
        };
        let kind = {
            let state = self.lock();
            let Some(resource) = state
                .resources
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
            else {
                return status(StatusCode::NOT_FOUND, "no such resource");
            };
            if resource.namespaced != namespace.is_some() {
                return status(StatusCode::NOT_FOUND, "wrong scope");
            }
            resource.kind.clone()
        };
        let key = namespace.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"));
        if *method == http::Method::DELETE {
            let existed = self
                .lock()
                .resources
                .iter()
                .any(|r| r.kind == kind && r.objects.contains_key(&key));
            if !existed {
                return status(StatusCode::NOT_FOUND, "no such object");
            }
            let mut state = self.lock();
            let resource = state.resources.iter_mut().find(|r| r.kind == kind).unwrap();
            let object = resource.objects.remove(&key).unwrap();
            drop(state);
            return whole(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": object["metadata"]["name"]}}),
            );
        }
        if *method == http::Method::POST {
            if self
                .lock()
                .resources
                .iter()
                .any(|r| r.kind == kind && r.objects.contains_key(&key))
            {
                return status(StatusCode::CONFLICT, "already exists");
            }
            let mut body = body;
            body["kind"] = kind.clone().into();
            if let Some(ns) = namespace {
                body["metadata"]["namespace"] = ns.into();
            }
            self.apply(body);
            return whole(self.stored(&kind, &key));
        }
        let apply = request
            .headers()
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
        let query = request.uri().query().unwrap_or_default();
        let manager = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldManager="))
            .map(str::to_string);
        let forced = query.split('&').any(|kv| kv == "force=true");
        let Some(manager) = manager.filter(|_| apply) else {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "only server-side apply with a field manager",
            );
        };
        // Server-side apply: fields another manager owns conflict, unless forced.
        let owner = self
            .lock()
            .managers
            .get(&(kind.clone(), key.clone()))
            .cloned();
        if let Some(owner) = owner.filter(|o| *o != manager)
            && !forced
        {
            return status(
                StatusCode::CONFLICT,
                &format!("Apply failed with 1 conflict: conflict with \"{owner}\""),
            );
        }
        self.lock()
            .managers
            .insert((kind.clone(), key.clone()), manager);
        if body["metadata"]["name"] != name || body["kind"] != kind.as_str() {
            return status(StatusCode::BAD_REQUEST, "the body names another object");
        }
        self.apply(body);
        whole(self.stored(&kind, &key))
    }

    /// Object `key` of `kind`, as stored.
    fn stored(&self, kind: &str, key: &str) -> Value {
        self.lock()
            .resources
            .iter()
            .find(|r| r.kind == kind)
            .and_then(|r| r.objects.get(key).cloned())
            .unwrap()
    }
}

/// `group/version`, or `version` for the core group.
fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn event(change: &Change) -> Value {
    json!({"type": change.kind, "object": change.object})
}

fn whole(value: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed_unsync())
        .unwrap()
}

fn status(code: StatusCode, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .unwrap()
}

/// A finished watch: `events`, one JSON object per line.
fn lines(events: Vec<Value>) -> Response<Body> {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)).boxed_unsync())
        .unwrap()
}

/// An open watch: `replay`, a bookmark at `bookmark` if asked, then each change of `plural`
/// as it happens, until the server goes down.
fn watch(
    replay: Vec<Value>,
    receiver: broadcast::Receiver<Option<Change>>,
    plural: String,
    api_version: String,
    bookmark: Option<u64>,
) -> Response<Body> {
    let mut first = replay;
    if let Some(rv) = bookmark {
        first.push(json!({"type": "BOOKMARK", "object": {
            "apiVersion": api_version, "kind": "Bookmark",
            "metadata": {"resourceVersion": rv.to_string()}}}));
    }
    let head = futures::stream::iter(first);
    let tail = futures::stream::unfold((receiver, plural), |(mut receiver, plural)| async move {
        loop {
            match receiver.recv().await {
                Ok(Some(change)) if change.plural == plural => {
                    return Some((event(&change), (receiver, plural)));
                }
                Ok(Some(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(None) | Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let frames = head
        .chain(tail)
        .map(|e| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{e}\n")))));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap()
}

impl tower::Service<Request<kube::client::Body>> for FakeApi {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        let delay = self.lock().delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let request = Request::from_parts(parts, ());
            Ok(this.respond(&request, &body))
        })
    }
}
