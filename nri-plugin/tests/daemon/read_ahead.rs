//! The spec read ahead: after a create nodeguard allows (once its reply is written), and after
//! `Synchronize` for the containers it lists as created and not started, the container's spec
//! is read from containerd off the request path, and StartContainer is answered from memory.
//! Never a stale or foreign spec: an update in between, a spec naming another pod or a read
//! that has not landed yet make the start read on demand, as before.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::fake_runtime::{FakeRuntime, RegisterReply};
use super::harness::{
    Daemon, MemorySpecs, Plugin, compliant_spec, configure, container, container_with_image,
    handshake, limits, pod, privileged_spec, running, synchronize, wait_until,
};

async fn create(runtime: &FakeRuntime, id: &str) {
    let _: nri::CreateContainerResponse = runtime
        .call_ok(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container(id)),
            },
        )
        .await;
}

async fn start(runtime: &FakeRuntime, id: &str) -> Result<(), String> {
    runtime
        .call(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(container(id)),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

/// An update of `container`'s resources, which nodeguard allows.
async fn update(runtime: &FakeRuntime, container: nri::Container) {
    let _: nri::UpdateContainerResponse = runtime
        .call_ok(
            method::UPDATE_CONTAINER,
            &nri::UpdateContainerRequest {
                pod: Some(pod()),
                container: Some(container),
                linux_resources: Some(limits(500, 256 << 20)),
            },
        )
        .await;
}

/// `nodeguard_start_specs_total{source}` of `daemon`.
fn start_specs(daemon: &Daemon, source: &str) -> u64 {
    plugin_start_specs(&daemon.plugin, source)
}

/// `nodeguard_start_specs_total{source}` of `plugin`.
fn plugin_start_specs(plugin: &Plugin, source: &str) -> u64 {
    let metrics = plugin.metrics.encode();
    let prefix = format!("nodeguard_start_specs_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Waits until the read-ahead of `id` has read the spec `reads` times and is no longer waiting.
async fn read_ahead_done(daemon: &Daemon, id: &str, reads: usize) {
    let specs = &daemon.plugin.specs;
    wait_until("the read-ahead", || specs.reads(id) >= reads).await;
    // The read is stored right after it returns; give that instant its turn.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn start_is_answered_from_the_spec_read_after_create() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("ok", &compliant_spec());
    specs.insert("priv", &privileged_spec());
    for id in ["ok", "priv"] {
        create(&runtime, id).await;
        read_ahead_done(&daemon, id, 1).await;
    }
    assert_eq!(daemon.plugin.auditor.enforcer().read_ahead_pending(), 2);

    start(&runtime, "ok").await.expect("compliant");
    let refused = start(&runtime, "priv").await.expect_err("privileged");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("ok"), 1, "no read inside StartContainer");
    assert_eq!(specs.reads("priv"), 1);
    assert_eq!(start_specs(&daemon, "prefetched"), 2);
    assert_eq!(start_specs(&daemon, "on_demand"), 0);
    assert_eq!(
        daemon.plugin.auditor.enforcer().read_ahead_pending(),
        0,
        "each spec is taken once"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_read_ahead_waits_for_the_record_containerd_makes_after_the_create() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.not_yet("late");
    create(&runtime, "late").await;
    wait_until("a first attempt", || specs.reads("late") >= 1).await;
    // containerd makes the record once every plugin answered: a privileged one, here.
    specs.insert("late", &privileged_spec());
    let before = specs.reads("late");
    read_ahead_done(&daemon, "late", before + 1).await;
    let reads = specs.reads("late");

    let refused = start(&runtime, "late").await.expect_err("privileged");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("late"), reads, "judged on the spec read ahead");
    assert_eq!(start_specs(&daemon, "prefetched"), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn an_update_between_create_and_start_makes_the_start_read_again() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("c1", &compliant_spec());
    create(&runtime, "c1").await;
    read_ahead_done(&daemon, "c1", 1).await;

    update(&runtime, container("c1")).await;
    // What the record says after the update is what counts.
    specs.insert("c1", &privileged_spec());
    let refused = start(&runtime, "c1").await.expect_err("privileged now");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(specs.reads("c1"), 2, "read again inside the start");
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    assert_eq!(start_specs(&daemon, "prefetched"), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn a_spec_naming_another_pod_is_never_judged_for_this_one() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    let mut foreign = privileged_spec();
    foreign["annotations"]["io.kubernetes.cri.sandbox-id"] = json!("sandbox-2");
    specs.insert("c1", &foreign);
    create(&runtime, "c1").await;
    read_ahead_done(&daemon, "c1", 1).await;

    specs.insert("c1", &compliant_spec());
    start(&runtime, "c1")
        .await
        .expect("judged on the spec read now");
    assert_eq!(specs.reads("c1"), 2);
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_refused_create_reads_nothing_ahead_and_a_failed_read_leaves_the_start_to_read() {
    let (daemon, runtime) = Daemon::connected().await;
    let specs = &daemon.plugin.specs;
    specs.insert("evil", &compliant_spec());
    let refused = runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container_with_image("evil", "evil.example/x:1")),
            },
        )
        .await;
    assert!(refused.is_err());

    specs.fail("flaky", "containerd is restarting");
    create(&runtime, "flaky").await;
    wait_until("the failed read-ahead", || specs.reads("flaky") >= 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(specs.reads("evil"), 0, "nothing read for a refused create");
    assert_eq!(
        specs.reads("flaky"),
        1,
        "no retry on an error other than NotFound"
    );
    assert_eq!(daemon.plugin.auditor.enforcer().read_ahead_pending(), 0);

    specs.insert("flaky", &compliant_spec());
    start(&runtime, "flaky").await.expect("read on demand");
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    daemon.stop().await;
}

/// The plugin's end of the socket, noting at every write how many times the specs of `ids` had
/// been read by then: what containerd could have received before the read-ahead began.
struct Journaled {
    inner: DuplexStream,
    specs: MemorySpecs,
    ids: Vec<String>,
    writes: Arc<Mutex<Vec<usize>>>,
    /// Once set, every write fails (a runtime gone mid-call).
    broken: Arc<AtomicBool>,
}

impl AsyncRead for Journaled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Journaled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.broken.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        // Held across the write, so that nobody sees the bytes arrive before they are noted.
        let mut writes = this.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            writes.push(this.ids.iter().map(|id| this.specs.reads(id)).sum());
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Creates `n` compliant containers one after the other on a connection whose every write is
/// journaled, and checks that no read-ahead read a spec before the reply to its create was
/// written; then starts them all, each on the spec read ahead.
async fn replies_come_before_read_ahead(n: usize) {
    let plugin = Plugin::new();
    let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    for id in &ids {
        plugin.specs.insert(id, &compliant_spec());
    }
    let writes = Arc::new(Mutex::new(Vec::new()));
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let ours = Journaled {
        inner: ours,
        specs: plugin.specs.clone(),
        ids: ids.clone(),
        writes: Arc::clone(&writes),
        broken: Arc::default(),
    };
    let runtime = FakeRuntime::new(theirs, RegisterReply::Ok);
    let served = plugin.serve_on(ours);
    runtime.registration().await;
    handshake(&runtime).await;
    let journal = || {
        writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    for (i, id) in ids.iter().enumerate() {
        let before = journal().len();
        create(&runtime, id).await;
        let during = journal()[before..].to_vec();
        assert!(!during.is_empty(), "the reply to create {id} was written");
        assert!(
            during.iter().all(|&reads| reads == i),
            "create {id}: specs read by each write of its reply {during:?}, {i} before it: \
             the read-ahead ran before the reply was out"
        );
        wait_until("the read-ahead", || plugin.specs.reads(id) >= 1).await;
    }
    // The read is stored right after it returns; give that instant its turn.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for id in &ids {
        start(&runtime, id).await.expect("compliant");
        assert_eq!(plugin.specs.reads(id), 1, "no read inside StartContainer");
    }
    assert_eq!(plugin_start_specs(&plugin, "prefetched"), n as u64);
    assert_eq!(plugin_start_specs(&plugin, "on_demand"), 0);
    served.abort();
}

#[tokio::test]
async fn the_registration_audit_runs_even_when_the_synchronize_reply_cannot_be_written() {
    let plugin = Plugin::new();
    plugin.specs.insert("c1", &compliant_spec());
    let broken = Arc::new(AtomicBool::new(false));
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let ours = Journaled {
        inner: ours,
        specs: plugin.specs.clone(),
        ids: Vec::new(),
        writes: Arc::default(),
        broken: Arc::clone(&broken),
    };
    let runtime = FakeRuntime::new(theirs, RegisterReply::Ok);
    let served = plugin.serve_on(ours);
    runtime.registration().await;
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    // The runtime goes away as nodeguard answers its Synchronize: the inventory was taken,
    // and the audit of it must still run (on the next registration it is what nodeguard knew).
    broken.store(true, Ordering::SeqCst);
    let request = nri::SynchronizeRequest {
        pods: vec![pod()],
        containers: vec![running("c1")],
        more: false,
    };
    let synchronize = runtime.call(method::SYNCHRONIZE, &request);
    let _ = tokio::time::timeout(Duration::from_millis(500), synchronize).await;
    wait_until("the registration audit's record", || {
        plugin.records("sync").len() == 1
    })
    .await;
    served.abort();
}

#[tokio::test]
async fn the_read_ahead_begins_after_the_create_reply_is_written() {
    // One thread: a task spawned before the reply would run before the writer does.
    replies_come_before_read_ahead(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_ahead_begins_after_the_create_reply_is_written_on_two_workers() {
    // Two workers, as `nodeguard serve` runs on a two-core node: a task spawned before the
    // reply would be stolen by the other worker and race the writer.
    replies_come_before_read_ahead(200).await;
}

#[tokio::test(start_paused = true)]
async fn a_start_before_the_read_ahead_lands_reads_on_demand_and_drops_it() {
    let plugin = Plugin::new();
    let enforcer = plugin.auditor.enforcer();
    plugin.specs.insert("c1", &compliant_spec());
    // Begun, its task not run yet (one thread, no await in between).
    enforcer.read_ahead("sandbox-1", "c1");
    assert_eq!(enforcer.read_ahead_pending(), 1);
    enforcer
        .start(&pod(), &container("c1"))
        .await
        .expect("compliant");
    assert_eq!(plugin.specs.reads("c1"), 1, "read inside the start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        plugin.specs.reads("c1"),
        1,
        "the read-ahead, no longer wanted, read nothing"
    );
    assert_eq!(enforcer.read_ahead_pending(), 0, "nothing left behind");
    assert_eq!(plugin_start_specs(&plugin, "on_demand"), 1);
}

/// [`container`] as `Synchronize` lists it when it is created and not started.
fn created(id: &str) -> nri::Container {
    let mut c = container(id);
    c.state = nri::ContainerState::ContainerCreated as i32;
    c
}

#[tokio::test]
async fn a_container_created_before_registration_is_started_on_the_spec_read_after_synchronize() {
    let daemon = Daemon::start(Plugin::new());
    let specs = &daemon.plugin.specs;
    specs.insert("early", &compliant_spec());
    specs.insert("up", &compliant_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, vec![pod()], vec![created("early"), running("up")]).await;
    // The registration audit reads both once; the read-ahead reads the created one again.
    wait_until("the audit and the read-ahead", || {
        specs.reads("early") >= 2 && specs.reads("up") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        daemon.plugin.auditor.enforcer().read_ahead_pending(),
        1,
        "only the container not started is read ahead"
    );
    let reads = specs.reads("early");

    start(&runtime, "early").await.expect("compliant");
    assert_eq!(specs.reads("early"), reads, "no read inside StartContainer");
    assert_eq!(start_specs(&daemon, "prefetched"), 1);
    assert_eq!(start_specs(&daemon, "on_demand"), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn an_update_after_synchronize_makes_the_start_read_again() {
    let daemon = Daemon::start(Plugin::new());
    let specs = &daemon.plugin.specs;
    specs.insert("early", &compliant_spec());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    synchronize(&runtime, vec![pod()], vec![created("early")]).await;
    wait_until("the audit and the read-ahead", || specs.reads("early") >= 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    update(&runtime, created("early")).await;
    specs.insert("early", &privileged_spec());
    let refused = start(&runtime, "early").await.expect_err("privileged now");
    assert!(refused.contains("[privileged]"), "{refused}");
    assert_eq!(start_specs(&daemon, "on_demand"), 1);
    assert_eq!(start_specs(&daemon, "prefetched"), 0);
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_read_ahead_of_existing_containers_skips_what_changed_or_started_meanwhile() {
    let plugin = Plugin::new();
    let enforcer = plugin.auditor.enforcer();
    for id in ["a", "b", "c", "gone"] {
        plugin.specs.insert(id, &compliant_spec());
    }
    plugin.specs.remove("gone");
    plugin.specs.insert("orphan", &compliant_spec());
    let mut listed = ["a", "b", "c", "gone"]
        .map(|id| ("sandbox-1".to_string(), id.to_string()))
        .to_vec();
    // Listed without its sandbox: read ahead, no sandbox spec asked for.
    listed.push((String::new(), "orphan".to_string()));
    let read = enforcer
        .read_ahead_existing(listed)
        .expect("containers to read");
    assert!(
        enforcer.read_ahead_existing(Vec::new()).is_none(),
        "nothing to do for none"
    );
    // Between the Synchronize request and its reply going out: b is updated, c started.
    enforcer
        .update(&pod(), &container("b"), Some(&limits(500, 256 << 20)))
        .expect("within the limits");
    enforcer
        .start(&pod(), &container("c"))
        .await
        .expect("compliant");
    read();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(plugin.specs.reads("a"), 1, "read ahead");
    assert_eq!(plugin.specs.reads("b"), 0, "updated: dropped unread");
    assert_eq!(
        plugin.specs.reads("c"),
        1,
        "started: read by the start only"
    );
    assert_eq!(plugin.specs.reads("gone"), 1, "tried once");
    assert_eq!(plugin.specs.reads("orphan"), 1, "read ahead");
    assert_eq!(plugin.specs.reads(""), 0, "no sandbox to read for it");
    assert_eq!(enforcer.read_ahead_pending(), 2, "a and orphan are kept");

    enforcer
        .start(&pod(), &container("a"))
        .await
        .expect("compliant");
    assert_eq!(plugin.specs.reads("a"), 1, "taken from memory");
    assert_eq!(plugin_start_specs(&plugin, "prefetched"), 1);
    assert_eq!(plugin_start_specs(&plugin, "on_demand"), 1);
}
