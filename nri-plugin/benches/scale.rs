//! A node with many containers, in memory: `Synchronize` of 1,000 and 10,000 containers split
//! as containerd's NRI (`pkg/adaptation`, v0.8 to v0.12.2) splits it, then a compliance audit of
//! all of them, with nodeguard's resident memory.
//!
//! `cargo bench -p nodeguard --bench scale` runs each size in a child process of its own (so
//! that one size's memory does not count in the next) and prints a table. Each child builds the
//! runtime's messages, drops them once sent (what stays is nodeguard's), and reads its VmRSS.
//!
//! The split: containerd first sends everything in one message; a message over ttrpc's 4 MiB
//! is refused (ResourceExhausted) and it retries with both counts scaled by
//! `min(0.9, max / rejected length)`, then sends parts of that size with `more` set. The whole
//! exchange runs under one request timeout (2 s). Here the sizes are computed the same way
//! from the encoded lengths, without the refused first attempt.
//!
//! `NODEGUARD_SCALE_READ_US=500` makes every spec read wait 500 µs, as a read from containerd
//! over gRPC does, to show how an audit overlaps its reads. `--parts N DIR` only writes the
//! parts, so that one child (`--child N DIR`) can be run alone, under a profiler.
//!
//! Targets (issue 12): the Synchronize exchange well inside 2 s, the audit of 10,000 in
//! <= 200 ms, resident memory <= 16 MiB with 1,000 containers and <= 64 MiB with 10,000.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodeguard::compliance::{Auditor, ComplianceConfig, Trigger};
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::service::PluginService;
use nodeguard::ops::audit::Discard;
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::Loaded;
use nodeguard::runtime::containerd::{
    ContainerRecord, ContainerdApi, ContainerdError, ImageRecord,
};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use nodeguard_views::oci::RuntimeSpec;
use prost::Message as _;

const POLICY: &str = include_str!("../../policy-core/benches/policies/twelve-rules.yaml");
const SPEC: &[u8] = include_bytes!("../testdata/oci/config.json");
/// ttrpc's largest message.
const MAX_MESSAGE: usize = 4 << 20;
/// Containers per pod on the simulated node.
const PER_POD: usize = 2;

/// containerd's records: every container has the fixture spec (parsed at each read, as the
/// gRPC client parses what containerd sends) and a running task.
struct Records {
    ids: HashSet<String>,
    /// How long each spec read waits, as containerd's gRPC answer takes (none by default:
    /// `NODEGUARD_SCALE_READ_US` sets it, in microseconds).
    latency: Option<Duration>,
}

impl ContainerdApi for Records {
    async fn record(&self, _id: &str) -> Result<ContainerRecord, ContainerdError> {
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
        Ok(ContainerRecord {
            spec: RuntimeSpec::from_json(SPEC).expect("the OCI fixture parses"),
            image: String::new(),
        })
    }

    /// No image records.
    async fn images(&self, _namespace: &str) -> Result<Vec<ImageRecord>, ContainerdError> {
        Ok(Vec::new())
    }

    async fn kill(&self, _id: &str, _signal: i32) -> Result<bool, ContainerdError> {
        Ok(false)
    }

    async fn live_tasks(&self) -> Result<HashSet<String>, ContainerdError> {
        Ok(self.ids.clone())
    }
}

fn ns(t: &str) -> nri::LinuxNamespace {
    nri::LinuxNamespace {
        r#type: t.into(),
        path: format!("/proc/1/ns/{t}"),
    }
}

fn pod(i: usize) -> nri::PodSandbox {
    nri::PodSandbox {
        id: format!("{i:064x}"),
        name: format!("web-{i}-7d4b9c"),
        uid: format!("0b7f5a9e-0000-4000-8000-{i:012}"),
        namespace: format!("team-{}", i % 40),
        labels: [
            ("app".to_string(), format!("web-{i}")),
            ("pod-template-hash".to_string(), "7d4b9c".to_string()),
        ]
        .into(),
        annotations: [(
            "kubernetes.io/config.seen".to_string(),
            "2026-12-01T10:00:00.000000000Z".to_string(),
        )]
        .into(),
        linux: Some(nri::LinuxPodSandbox {
            namespaces: vec![ns("ipc"), ns("uts"), ns("network")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_id(i: usize) -> String {
    format!("c{i:063x}")
}

fn container(i: usize, pod: &nri::PodSandbox) -> nri::Container {
    nri::Container {
        id: container_id(i),
        pod_sandbox_id: pod.id.clone(),
        name: format!("app-{}", i % PER_POD),
        state: nri::ContainerState::ContainerRunning as i32,
        labels: [
            ("io.kubernetes.pod.name".to_string(), pod.name.clone()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                pod.namespace.clone(),
            ),
        ]
        .into(),
        annotations: [
            (
                "io.kubernetes.cri.image-name".to_string(),
                "registry.corp/shop/web:1.4.2".to_string(),
            ),
            (
                "io.kubernetes.cri.container-type".to_string(),
                "container".to_string(),
            ),
            ("io.kubernetes.cri.sandbox-id".to_string(), pod.id.clone()),
        ]
        .into(),
        args: vec!["/server".into(), "--port=8080".into()],
        // PATH, and the variables the kubelet adds for every Service of the namespace (four
        // here, six variables each).
        env: std::iter::once(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        )
        .chain(
            ["KUBERNETES", "WEB", "CART", "REDIS"]
                .iter()
                .flat_map(|svc| {
                    [
                        format!("{svc}_SERVICE_HOST=10.96.0.1"),
                        format!("{svc}_SERVICE_PORT=443"),
                        format!("{svc}_PORT=tcp://10.96.0.1:443"),
                        format!("{svc}_PORT_443_TCP=tcp://10.96.0.1:443"),
                        format!("{svc}_PORT_443_TCP_PROTO=tcp"),
                        format!("{svc}_PORT_443_TCP_ADDR=10.96.0.1"),
                    ]
                }),
        )
        .collect(),
        mounts: vec![nri::Mount {
            destination: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            r#type: "bind".into(),
            source: format!(
                "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~projected/kube-api-access",
                pod.uid
            ),
            options: vec!["rbind".into(), "ro".into()],
        }],
        linux: Some(nri::LinuxContainer {
            resources: Some(common::half_cpu_256_mib()),
            cgroups_path: format!("kubepods-burstable-pod{}.slice:cri-containerd:{i}", pod.uid),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The parts containerd sends: everything if it fits in one message, else both lists cut by
/// `min(0.9, max / length)` until a part fits.
fn split(
    pods: Vec<nri::PodSandbox>,
    containers: Vec<nri::Container>,
) -> Vec<nri::SynchronizeRequest> {
    let (mut pods_per, mut ctrs_per) = (pods.len(), containers.len());
    loop {
        let probe = nri::SynchronizeRequest {
            pods: pods[..pods_per].to_vec(),
            containers: containers[..ctrs_per].to_vec(),
            more: true,
        };
        let length = probe.encoded_len();
        if length <= MAX_MESSAGE {
            break;
        }
        let factor = (MAX_MESSAGE as f64 / length as f64).min(0.9);
        pods_per = (pods_per as f64 * factor) as usize;
        ctrs_per = (ctrs_per as f64 * factor) as usize;
    }
    let (mut pods, mut containers) = (pods.as_slice(), containers.as_slice());
    let mut parts = Vec::new();
    loop {
        let (p, c) = (pods_per.min(pods.len()), ctrs_per.min(containers.len()));
        let more = pods.len() > p || containers.len() > c;
        parts.push(nri::SynchronizeRequest {
            pods: pods[..p].to_vec(),
            containers: containers[..c].to_vec(),
            more,
        });
        (pods, containers) = (&pods[p..], &containers[c..]);
        if !more {
            return parts;
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Writes the encoded `Synchronize` parts of a node with `n` containers into `dir`
/// (`part-000.pb`, ...), so that the measuring process holds one part's bytes at a time, as
/// nodeguard holds the message it reads off the socket.
fn write_parts(n: usize, dir: &std::path::Path) {
    let pods: Vec<nri::PodSandbox> = (0..n.div_ceil(PER_POD)).map(pod).collect();
    let containers: Vec<nri::Container> =
        (0..n).map(|i| container(i, &pods[i / PER_POD])).collect();
    for (i, part) in split(pods, containers).iter().enumerate() {
        std::fs::write(dir.join(format!("part-{i:03}.pb")), part.encode_to_vec())
            .expect("part written");
    }
}

/// One size, in this process, from the parts in `dir`: prints one tab-separated line.
async fn run(n: usize, dir: &std::path::Path) {
    let rss_start = rss_kib();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("parts")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .collect();
    files.sort();
    let parts = files.len();
    let bytes: usize = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("part").len() as usize)
        .sum();
    // containerd's task list: the ids `container` gives.
    let ids = (0..n).map(container_id).collect();
    let policy = policy_core::Policy::parse("twelve-rules.yaml", POLICY).expect("policy");
    let enforcer = Arc::new(Enforcer::new(
        Loaded::first(policy),
        Records {
            ids,
            latency: std::env::var("NODEGUARD_SCALE_READ_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_micros),
        },
        Arc::new(Discard),
        Arc::new(Metrics::default()),
        "bench".into(),
        UndecidedAtStart::Deny,
    ));
    let auditor = Arc::new(Auditor::new(
        enforcer,
        ComplianceConfig {
            report_path: Some(dir.join("report.json")),
            ..ComplianceConfig::default()
        },
    ));
    let service = PluginService::new(Arc::clone(&auditor));

    // The exchange as containerd times it, from the first part sent to the last reply, but for
    // reading the parts' files: each part is read just before it is sent, so the process holds
    // one message's bytes at a time, as nodeguard holds the one it reads off the socket. The
    // registration audit it spawns is waited for below, as its own figure.
    let mut sync = Duration::ZERO;
    for file in &files {
        let payload = std::fs::read(file).expect("part read");
        let started = Instant::now();
        service
            .call(method::NAME, method::SYNCHRONIZE, &payload)
            .await
            .expect("Synchronize answered");
        sync += started.elapsed();
    }
    // The registration audit runs in a task of its own; wait for it (it writes the report).
    while !dir.join("report.json").exists() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let summary = auditor.compliance_audit(Trigger::Periodic).await;
    let audit = started.elapsed();
    assert_eq!(summary.containers, n, "every container audited");
    let rss_end = rss_kib();
    println!(
        "{n}\t{parts}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
        bytes as f64 / (1 << 20) as f64,
        sync.as_secs_f64() * 1e3,
        audit.as_secs_f64() * 1e3,
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--parts N DIR`: only write the parts, for profiling one child (`--child N DIR`) alone.
    if let Some(i) = args.iter().position(|a| a == "--parts") {
        let n: usize = args[i + 1].parse().expect("a container count");
        let dir = std::path::PathBuf::from(&args[i + 2]);
        std::fs::create_dir_all(&dir).expect("parts dir");
        write_parts(n, &dir);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args[i + 1].parse().expect("a container count");
        let dir = std::path::PathBuf::from(&args[i + 2]);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(run(n, &dir));
        return;
    }
    println!(
        "containers\tsync parts\tsync MiB\tsync exchange ms\taudit ms\tRSS before MiB\tRSS after MiB"
    );
    let exe = std::env::current_exe().expect("own path");
    for n in [1_000usize, 10_000] {
        let dir = std::env::temp_dir().join(format!("nodeguard-scale-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_parts(n, &dir);
        let out = std::process::Command::new(&exe)
            .args([
                "--child",
                &n.to_string(),
                dir.to_str().expect("a UTF-8 path"),
            ])
            .output()
            .expect("the child runs");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
