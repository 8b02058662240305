//! The cluster-connected mode against an in-memory API server ([`FakeApi`]): NodePolicy
//! objects and constraints followed with list and watch, kept on disk, merged with the files;
//! the API server's loss never stops enforcement.

use std::sync::Arc;
use std::time::Duration;

use nodeguard::cluster::ClusterPolicy;
use nodeguard::cluster::watch;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fake_api::FakeApi;
use super::harness::wait_until;

fn node_policy(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "nodeguard.io/v1alpha1",
        "kind": "NodePolicy",
        "metadata": {"name": name},
        "spec": {"rules": rules}
    })
}

fn allowed_repos(name: &str, repos: &[&str]) -> Value {
    json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sAllowedRepos",
        "metadata": {"name": name},
        "spec": {"parameters": {"repos": repos}}
    })
}

/// Serves Namespaces and the K8sAllowedRepos kind, with no object.
fn serve_namespaces_and_repo_kind(api: &FakeApi) {
    api.serve("", "v1", "Namespace", "namespaces");
    api.serve(
        "constraints.gatekeeper.sh",
        "v1beta1",
        "K8sAllowedRepos",
        "k8sallowedrepos",
    );
}

/// Serves the K8sAllowedRepos kind (Gatekeeper with its template) and one constraint of it.
fn serve_allowed_repos(api: &FakeApi) {
    api.serve(
        "constraints.gatekeeper.sh",
        "v1beta1",
        "K8sAllowedRepos",
        "k8sallowedrepos",
    );
    api.apply(allowed_repos("repos", &["registry.corp/"]));
}

fn api() -> FakeApi {
    let api = FakeApi::default();
    api.serve("nodeguard.io", "v1alpha1", "NodePolicy", "nodepolicies");
    api
}

/// The objects in force, as `Kind/name@generation`.
fn in_force(policy: &ClusterPolicy) -> Vec<String> {
    policy
        .in_force()
        .into_iter()
        .map(|(key, generation)| format!("{key}@{generation}"))
        .collect()
}

/// Follows `api` into a fresh [`ClusterPolicy`] (cached in `cache`, if any), discovering the
/// constraint kinds every 100 ms.
fn follow(
    api: &FakeApi,
    cache: Option<std::path::PathBuf>,
) -> (Arc<ClusterPolicy>, Arc<Notify>, CancellationToken) {
    let changed = Arc::new(Notify::new());
    let policy = Arc::new(ClusterPolicy::from_cache(
        cache,
        Arc::clone(&changed),
        false,
    ));
    let shutdown = CancellationToken::new();
    tokio::spawn(watch::run(
        api.client(),
        Arc::clone(&policy),
        Duration::from_millis(100),
        shutdown.clone(),
    ));
    (policy, changed, shutdown)
}

#[tokio::test]
async fn node_policies_are_listed_then_watched_and_each_change_is_taken_in() {
    let api = api();
    api.apply(node_policy("first", json!({"privileged": {}})));
    let (policy, changed, shutdown) = follow(&api, None);
    wait_until("the listed object is in force", || {
        in_force(&policy) == ["NodePolicy/first@1"]
    })
    .await;
    // Changes arrive through the watch, each waking the reloader.
    let woken = changed.notified();
    api.apply(node_policy("second", json!({"hostPorts": {}})));
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("the reloader is woken");
    api.apply(node_policy(
        "first",
        json!({"privileged": {}, "procMount": {}}),
    ));
    wait_until("the added and the changed object", || {
        in_force(&policy) == ["NodePolicy/first@2", "NodePolicy/second@1"]
    })
    .await;
    // An invalid generation keeps the last good one in force.
    api.apply(node_policy("first", json!({"privilegd": {}})));
    api.delete("NodePolicy", "second");
    wait_until("the deletion", || {
        in_force(&policy) == ["NodePolicy/first@2"]
    })
    .await;
    // The requests are kube-rs's list-then-watch from the list's resourceVersion.
    let requests = api.requests();
    let list = requests
        .iter()
        .position(|r| {
            r.starts_with("GET /apis/nodeguard.io/v1alpha1/nodepolicies?")
                && !r.contains("watch=true")
        })
        .expect("a list of the NodePolicies");
    let watch_request = requests[list..]
        .iter()
        .find(|r| {
            r.starts_with("GET /apis/nodeguard.io/v1alpha1/nodepolicies?")
                && r.contains("watch=true")
        })
        .expect("then a watch");
    assert!(
        watch_request.contains("resourceVersion=101")
            && watch_request.contains("allowWatchBookmarks=true"),
        "{watch_request}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn constraint_kinds_are_discovered_and_followed() {
    let api = api();
    let (policy, _, shutdown) = follow(&api, None);
    // Gatekeeper installed later, with a template: its kind is found at the next discovery.
    serve_allowed_repos(&api);
    wait_until("the constraint is in force", || {
        in_force(&policy) == ["K8sAllowedRepos/repos@1"]
    })
    .await;
    // The template deleted: the kind is no longer served, its constraints go.
    api.unserve("k8sallowedrepos");
    wait_until("the kind's constraints are forgotten", || {
        in_force(&policy).is_empty()
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_watch_too_old_lists_again_and_nothing_changed_meanwhile_is_missed() {
    let api = api();
    api.apply(node_policy("a", json!({"privileged": {}})));
    let (policy, _, shutdown) = follow(&api, None);
    wait_until("a", || in_force(&policy) == ["NodePolicy/a@1"]).await;
    // The API server goes away; meanwhile `a` is deleted, `b` created, the history compacted.
    api.set_down(true);
    api.apply(node_policy("b", json!({"privileged": {}})));
    api.delete("NodePolicy", "a");
    api.compact();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        in_force(&policy),
        ["NodePolicy/a@1"],
        "kept while the API server is away"
    );
    api.set_down(false);
    wait_until("the relist after 410 Gone", || {
        in_force(&policy) == ["NodePolicy/b@1"]
    })
    .await;
    let lists = api
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/nodeguard.io/v1alpha1/nodepolicies?")
                && !r.contains("watch=true")
        })
        .count();
    assert!(lists >= 2, "listed again: {:#?}", api.requests());
    shutdown.cancel();
}

#[tokio::test]
async fn the_policy_kept_on_disk_is_in_force_before_the_api_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cluster-policy.json");
    {
        let api = api();
        api.apply(node_policy("kept", json!({"privileged": {}})));
        let (policy, _, shutdown) = follow(&api, Some(cache.clone()));
        wait_until("kept", || in_force(&policy) == ["NodePolicy/kept@1"]).await;
        shutdown.cancel();
    }
    // A restart with the API server down: the cached object is in force at once.
    let api = api();
    api.set_down(true);
    let (policy, _, shutdown) = follow(&api, Some(cache));
    assert_eq!(in_force(&policy), ["NodePolicy/kept@1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        in_force(&policy),
        ["NodePolicy/kept@1"],
        "kept while the API server is away"
    );
    // Back, with the object deleted meanwhile: the list says so.
    api.set_down(false);
    wait_until("the list forgets it", || in_force(&policy).is_empty()).await;
    shutdown.cancel();
}

/// A kubeconfig that parses (the test then hands the daemon the in-memory server's client).
const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: 'https://127.0.0.1:1'}}]
users: [{name: fake, user: {token: t}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
";

/// A policy file that refuses nothing a test container does.
const FILE_POLICY: &str = "apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: from-file}
spec:
  rules:
    hostPorts: {}
";

/// `nodeguard serve --cluster` through `daemon::run`, its API server `api`, its cache in
/// `dir`: the daemon's task, its control and the runtime it registered with.
async fn serve(
    api: &FakeApi,
    dir: &std::path::Path,
    running: Vec<nodeguard_proto::nri::v1alpha1::Container>,
) -> (
    tokio::task::JoinHandle<()>,
    nodeguard::daemon::Control,
    super::fake_runtime::FakeRuntime,
) {
    use clap::Parser as _;
    #[derive(Debug, clap::Parser)]
    struct Serve {
        #[command(flatten)]
        flags: nodeguard::daemon::ServeFlags,
    }
    let listener = super::fake_runtime::RuntimeListener::bind();
    std::fs::write(dir.join("policy.yaml"), FILE_POLICY).unwrap();
    std::fs::write(dir.join("kubeconfig"), KUBECONFIG).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let args = [
        "serve".to_string(),
        "--policy".into(),
        path("policy.yaml"),
        "--nri-socket".into(),
        listener.path().display().to_string(),
        "--report-file".into(),
        path("report.json"),
        "--state-file".into(),
        String::new(),
        "--cluster".into(),
        "--kubeconfig".into(),
        path("kubeconfig"),
        "--cluster-policy-cache".into(),
        path("cluster-policy.json"),
    ];
    let (mut config, endpoint) = nodeguard::daemon::DaemonConfig::validate(
        Serve::try_parse_from(args).unwrap().flags,
        |_| None,
        || Some("node-9".into()),
    )
    .expect("valid flags");
    config.cluster.as_mut().expect("cluster mode").connection =
        nodeguard::cluster::Connection::Client(api.client());
    let control = nodeguard::daemon::Control::default();
    let task = tokio::spawn(nodeguard::daemon::run(
        config,
        endpoint,
        super::harness::MemorySpecs::default(),
        control.clone(),
    ));
    let runtime = listener
        .accept(super::fake_runtime::RegisterReply::Ok)
        .await;
    runtime.registration().await;
    super::harness::synchronize(&runtime, vec![super::harness::pod()], running).await;
    (task, control, runtime)
}

/// Serves with the objects `setup` puts in the API server until `evil.example/x:1` is refused,
/// stops, then serves again from the same folder with the API server down: that second daemon.
async fn restarted_without_the_api_server(
    dir: &std::path::Path,
    setup: impl FnOnce(&FakeApi),
) -> (
    tokio::task::JoinHandle<()>,
    nodeguard::daemon::Control,
    super::fake_runtime::FakeRuntime,
) {
    {
        let api = api();
        setup(&api);
        let (task, control, runtime) = serve(&api, dir, Vec::new()).await;
        refused_within_seconds(&runtime, "c1", "evil.example/x:1").await;
        control.shutdown.cancel();
        task.await.unwrap();
    }
    let api = api();
    api.set_down(true);
    serve(&api, dir, Vec::new()).await
}

/// Creates containers of `image` (as `id`) until one is refused, within 5 s: its refusal.
async fn refused_within_seconds(
    runtime: &super::fake_runtime::FakeRuntime,
    id: &str,
    image: &str,
) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Some(refusal) = create(runtime, id, image).await {
            return refusal;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{image} not refused within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a container of `image`: its refusal, if refused.
async fn create(
    runtime: &super::fake_runtime::FakeRuntime,
    id: &str,
    image: &str,
) -> Option<String> {
    use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
    runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(super::harness::pod()),
                container: Some(super::harness::container_with_image(id, image)),
            },
        )
        .await
        .err()
        .map(|e| e.message)
}

/// The refusal of container `id` of `image`, created again every 20 ms until it is refused;
/// panics with `what` when it is not within 5 s of `since`.
async fn refused_within_5s(
    runtime: &super::fake_runtime::FakeRuntime,
    id: &str,
    image: &str,
    since: std::time::Instant,
    what: &str,
) -> String {
    loop {
        if let Some(refusal) = create(runtime, id, image).await {
            return refusal;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_node_policy_applied_in_the_api_is_enforced_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let api = api();
    let (task, control, runtime) = serve(&api, dir.path(), Vec::new()).await;
    assert_eq!(create(&runtime, "c1", "evil.example/x:1").await, None);
    let applied = std::time::Instant::now();
    api.apply(node_policy(
        "registries",
        json!({"images": {"allowed": ["^registry\\.corp/"]}}),
    ));
    let refusal = refused_within_5s(
        &runtime,
        "c2",
        "evil.example/x:1",
        applied,
        "not enforced within 5 s",
    )
    .await;
    assert!(
        refusal.contains(r#"image "evil.example/x:1" does not match any allowed pattern"#),
        "{refusal}"
    );
    // The file's policy stays in force beside it; the API's is kept on disk.
    let cache = std::fs::read_to_string(dir.path().join("cluster-policy.json")).unwrap();
    assert!(cache.contains("\"registries\""), "{cache}");
    // Deleted in the API: no longer enforced.
    api.delete("NodePolicy", "registries");
    let deleted = std::time::Instant::now();
    while create(&runtime, "c3", "evil.example/x:1").await.is_some() {
        assert!(deleted.elapsed() < Duration::from_secs(5), "still enforced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn after_a_restart_without_the_api_server_its_last_policy_refuses_from_the_first_container() {
    let dir = tempfile::tempdir().unwrap();
    let (task, control, runtime) = restarted_without_the_api_server(dir.path(), |api| {
        api.apply(node_policy(
            "registries",
            json!({"images": {"allowed": ["^registry\\.corp/"]}}),
        ));
    })
    .await;
    let refusal = create(&runtime, "c2", "evil.example/x:1")
        .await
        .expect("refused by the cached policy at once");
    assert!(refusal.contains("[images.allowed]"), "{refusal}");
    assert_eq!(create(&runtime, "c3", "registry.corp/app:1").await, None);
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_namespace_selector_is_matched_against_the_labels_the_api_server_reports() {
    let dir = tempfile::tempdir().unwrap();
    let api = api();
    serve_namespaces_and_repo_kind(&api);
    let namespace = |env: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "default", "labels": {"env": env}}, "spec": {}})
    };
    api.apply(namespace("prod"));
    let mut constraint = allowed_repos("prod-repos", &["registry.corp/"]);
    constraint["spec"]["match"] = json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}});
    api.apply(constraint);
    let (task, control, runtime) = serve(&api, dir.path(), Vec::new()).await;
    let started = std::time::Instant::now();
    let refusal = refused_within_5s(
        &runtime,
        "c1",
        "evil.example/x:1",
        started,
        "not enforced in env=prod",
    )
    .await;
    assert!(refusal.contains("K8sAllowedRepos"), "{refusal}");
    // The namespace relabelled: out of the constraint's scope.
    api.apply(namespace("dev"));
    let relabelled = std::time::Instant::now();
    while create(&runtime, "c2", "evil.example/x:1").await.is_some() {
        assert!(
            relabelled.elapsed() < Duration::from_secs(5),
            "still judged in env=dev"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn each_audit_s_reports_reach_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let api = api();
    api.serve_reports("node-9");
    let (task, control, _runtime) =
        serve(&api, dir.path(), vec![super::harness::running("c1")]).await;
    wait_until("the registration audit's report in the API server", || {
        api.objects("PolicyReport")
            .contains_key("default/nodeguard-node-9")
    })
    .await;
    let report = &api.objects("PolicyReport")["default/nodeguard-node-9"];
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["uid"],
        "uid-node-9"
    );
    assert_eq!(report["results"][0]["resources"][0]["name"], "web");
    // Where each document in force comes from.
    let sources: Value = serde_json::from_str(
        report["metadata"]["annotations"]["nodeguard.io/policy-sources"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        sources["from-file"]
            .as_str()
            .unwrap()
            .ends_with("policy.yaml"),
        "{sources}"
    );
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn warnings_and_rejected_objects_become_events_once() {
    let dir = tempfile::tempdir().unwrap();
    let api = api();
    api.serve_namespaced("events.k8s.io", "v1", "Event", "events");
    api.apply(json!({
        "apiVersion": "nodeguard.io/v1alpha1", "kind": "NodePolicy",
        "metadata": {"name": "registries"},
        "spec": {"effect": "warn", "rules": {"images": {"allowed": ["^registry\\.corp/"]}}}
    }));
    api.apply(node_policy("broken", json!({"privilegd": {}})));
    let (task, control, runtime) = serve(&api, dir.path(), Vec::new()).await;
    let events = || -> Vec<Value> { api.objects("Event").into_values().collect() };
    let reason = |e: &Value| e["reason"].as_str().unwrap_or_default().to_string();
    // The rejected object: an Event on it.
    wait_until("the rejection's Event", || {
        events().iter().any(|e| reason(e) == "PolicyRejected")
    })
    .await;
    let rejected = events()
        .into_iter()
        .find(|e| reason(e) == "PolicyRejected")
        .unwrap();
    assert_eq!(rejected["regarding"]["kind"], "NodePolicy");
    assert_eq!(rejected["regarding"]["name"], "broken");
    assert_eq!(rejected["type"], "Warning");
    assert!(
        rejected["note"]
            .as_str()
            .unwrap()
            .contains("spec.rules.privilegd"),
        "{rejected}"
    );
    // A warn-effect finding: allowed, and an Event on the pod.
    let started = std::time::Instant::now();
    loop {
        assert_eq!(
            create(&runtime, "c1", "evil.example/x:1").await,
            None,
            "warn never refuses"
        );
        if events().iter().any(|e| reason(e) == "PolicyWarning") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no warning Event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warning = events()
        .into_iter()
        .find(|e| reason(e) == "PolicyWarning")
        .unwrap();
    assert_eq!(warning["regarding"]["kind"], "Pod");
    assert_eq!(warning["regarding"]["namespace"], "default");
    assert_eq!(warning["regarding"]["name"], "web");
    assert!(
        warning["note"]
            .as_str()
            .unwrap()
            .contains(r#"image "evil.example/x:1" does not match any allowed pattern"#),
        "{warning}"
    );
    // The same finding again: no second Event.
    create(&runtime, "c2", "evil.example/x:1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warnings = events()
        .iter()
        .filter(|e| reason(e) == "PolicyWarning")
        .count();
    assert_eq!(warnings, 1, "deduplicated");
    // Another finding about the same pod is an Event of its own, with its own note.
    create(&runtime, "c3", "evil.example/y:1").await;
    wait_until("the second finding's Event", || {
        events().iter().any(|e| {
            reason(e) == "PolicyWarning"
                && e["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("evil.example/y:1")
        })
    })
    .await;
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_slow_api_server_never_slows_enforcement() {
    let dir = tempfile::tempdir().unwrap();
    let api = api();
    api.apply(node_policy(
        "registries",
        json!({"images": {"allowed": ["^registry\\.corp/"]}}),
    ));
    let (task, control, runtime) = serve(&api, dir.path(), Vec::new()).await;
    refused_within_seconds(&runtime, "c1", "evil.example/x:1").await;
    // Every answer of the API server now takes 3 s: decisions do not wait for it.
    api.set_delay(Duration::from_secs(3));
    let asked = std::time::Instant::now();
    assert!(create(&runtime, "c2", "evil.example/x:1").await.is_some());
    assert_eq!(create(&runtime, "c3", "registry.corp/app:1").await, None);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "decisions took {:?}",
        asked.elapsed()
    );
    control.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn cached_constraints_of_a_kind_no_longer_served_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cluster-policy.json");
    {
        let api = api();
        serve_allowed_repos(&api);
        let (policy, _, shutdown) = follow(&api, Some(cache.clone()));
        wait_until("the constraint", || {
            in_force(&policy) == ["K8sAllowedRepos/repos@1"]
        })
        .await;
        shutdown.cancel();
    }
    // Gatekeeper removed while the node was away: the cached constraint goes at discovery.
    let api = api();
    let (policy, _, shutdown) = follow(&api, Some(cache));
    wait_until("the constraint forgotten", || in_force(&policy).is_empty()).await;
    shutdown.cancel();
}

#[tokio::test]
async fn after_a_restart_without_the_api_server_namespace_selectors_still_judge() {
    let dir = tempfile::tempdir().unwrap();
    let prod = json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "default", "labels": {"env": "prod"}}, "spec": {}});
    let mut constraint = allowed_repos("prod-repos", &["registry.corp/"]);
    constraint["spec"]["match"] = json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}});
    let (task, control, runtime) = restarted_without_the_api_server(dir.path(), |api| {
        serve_namespaces_and_repo_kind(api);
        api.apply(prod);
        api.apply(constraint);
    })
    .await;
    let refusal = create(&runtime, "c2", "evil.example/x:1")
        .await
        .expect("refused from the first container: the policy and the labels were kept");
    // The only constraint is prod-repos, and only its namespaceSelector scopes it.
    assert!(refusal.contains("[K8sAllowedRepos]"), "{refusal}");
    control.shutdown.cancel();
    task.await.unwrap();
}
