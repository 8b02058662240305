//! What nodeguard adds to a container creation on its own side: `CreateContainer` round trips
//! through the real wire format (mux + ttrpc + NRI messages over a unix socket pair), the
//! 12-rule policy evaluated and an audit record written to a file for each call. Prints
//! p50/p99/p99.9 per call; see docs/performance.md.
//!
//! Then the load case: bursts of 200 creations issued at once on the connection (half of them
//! refused), each call timed from its issue to its answer, against containerd's 2 s budget.
//!
//! `cargo bench -p nodeguard --bench roundtrip [-- N]`

#[allow(dead_code, missing_docs, unreachable_pub)]
#[path = "../tests/daemon/fake_runtime.rs"]
mod fake_runtime;

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_runtime::{FakeRuntime, RegisterReply};
use nodeguard::compliance::{Auditor, ComplianceConfig};
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::connection::{self, Registration};
use nodeguard::nri::service::PluginService;
use nodeguard::ops::audit::{AuditFile, Rotation};
use nodeguard::ops::metrics::Metrics;
use nodeguard::ops::reload::Loaded;
use nodeguard::runtime::containerd::{
    ContainerRecord, ContainerdApi, ContainerdError, ImageRecord,
};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service};

const POLICY: &str = include_str!("../../policy-core/benches/policies/twelve-rules.yaml");

/// Create-phase calls never read a spec.
struct NoSpecs;

impl ContainerdApi for NoSpecs {
    async fn record(&self, id: &str) -> Result<ContainerRecord, ContainerdError> {
        Err(ContainerdError::NoSpec(id.to_string()))
    }

    /// The image records of a node that pulled the benchmark's images (two names of the
    /// web image's content): the policy's allow and deny lists read them (ADR 0020), and a
    /// node has the image of a container it creates.
    async fn images(&self, _namespace: &str) -> Result<Vec<ImageRecord>, ContainerdError> {
        let record = |name: &str, digest: &str| ImageRecord {
            name: name.into(),
            digest: digest.into(),
        };
        Ok(vec![
            record("registry.corp/shop/web:1.4.2", "sha256:0a"),
            record("mirror.corp/shop/web:1.4.2", "sha256:0a"),
            record("docker.io/library/nginx:latest", "sha256:0b"),
        ])
    }

    async fn kill(&self, _id: &str, _signal: i32) -> Result<bool, ContainerdError> {
        Ok(false)
    }

    /// No task is ever running.
    async fn live_tasks(&self) -> Result<HashSet<String>, ContainerdError> {
        Ok(HashSet::new())
    }
}

fn request() -> nri::CreateContainerRequest {
    let ns = |t: &str| nri::LinuxNamespace {
        r#type: t.into(),
        path: String::new(),
    };
    nri::CreateContainerRequest {
        pod: Some(nri::PodSandbox {
            id: "sb1".into(),
            name: "web-7d4b9c".into(),
            uid: "0b7f5a9e".into(),
            namespace: "shop".into(),
            labels: [
                ("app".to_string(), "web".to_string()),
                ("team".to_string(), "storefront".to_string()),
            ]
            .into(),
            linux: Some(nri::LinuxPodSandbox {
                namespaces: vec![ns("pid"), ns("ipc"), ns("uts"), ns("network")],
                ..Default::default()
            }),
            ..Default::default()
        }),
        container: Some(nri::Container {
            id: "c1".into(),
            pod_sandbox_id: "sb1".into(),
            name: "app".into(),
            annotations: [
                (
                    "io.kubernetes.cri.image-name".to_string(),
                    "registry.corp/shop/web:1.4.2".to_string(),
                ),
                (
                    "io.kubernetes.cri.container-type".to_string(),
                    "container".to_string(),
                ),
            ]
            .into(),
            mounts: vec![nri::Mount {
                destination: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                r#type: "bind".into(),
                source:
                    "/var/lib/kubelet/pods/0b7f5a9e/volumes/kubernetes.io~projected/kube-api-access"
                        .into(),
                options: vec!["rbind".into(), "ro".into()],
            }],
            linux: Some(nri::LinuxContainer {
                resources: Some(common::half_cpu_256_mib()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("nodeguard-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let audit = Arc::new(
        AuditFile::open(&dir.join("audit.jsonl"), Rotation::default()).expect("audit log"),
    );
    let policy = policy_core::Policy::parse("twelve-rules.yaml", POLICY).expect("policy");
    let enforcer = Arc::new(Enforcer::new(
        Loaded::first(policy),
        NoSpecs,
        audit,
        Arc::new(Metrics::default()),
        "bench".into(),
        UndecidedAtStart::Deny,
    ));
    let (ours, theirs) = tokio::net::UnixStream::pair().expect("socket pair");
    let auditor = Arc::new(Auditor::new(enforcer, ComplianceConfig::default()));
    let service = Arc::new(PluginService::new(auditor));
    tokio::spawn(async move {
        let registration = Registration {
            name: "nodeguard".into(),
            index: "10".into(),
        };
        let _ = connection::serve(
            ours,
            service,
            &registration,
            Duration::from_secs(5),
            std::future::pending(),
            || {},
        )
        .await;
    });
    let runtime = Arc::new(FakeRuntime::new(theirs, RegisterReply::Ok));
    let req = request();
    // Warm up (and check the call is allowed: a refusal would measure the wrong path).
    for _ in 0..500 {
        runtime
            .call(plugin_service::CREATE_CONTAINER, &req)
            .await
            .expect("the compliant container is allowed");
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let _ = runtime.call(plugin_service::CREATE_CONTAINER, &req).await;
        times.push(start.elapsed());
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "CreateContainer round trip through nodeguard (wire + 12-rule policy + audit record), n={n}:\n  p50={:.1} µs  p99={:.1} µs  p99.9={:.1} µs  max={:.1} µs",
        us(percentile(&times, 0.50)),
        us(percentile(&times, 0.99)),
        us(percentile(&times, 0.999)),
        us(*times.last().expect("samples"))
    );
    burst(&runtime, &req).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bursts of 200 concurrent creations, half of them noncompliant (refused).
async fn burst(runtime: &Arc<FakeRuntime>, compliant: &nri::CreateContainerRequest) {
    const CONCURRENT: usize = 200;
    const BURSTS: usize = 25;
    let mut refused_req = compliant.clone();
    if let Some(c) = refused_req.container.as_mut() {
        c.annotations.insert(
            "io.kubernetes.cri.image-name".into(),
            "docker.io/evil/miner:latest".into(),
        );
    }
    let mut times = Vec::with_capacity(CONCURRENT * BURSTS);
    let mut walls = Vec::with_capacity(BURSTS);
    let mut refused = 0;
    for _ in 0..BURSTS {
        let wall = Instant::now();
        let calls: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let runtime = Arc::clone(runtime);
                let req = if i % 2 == 0 {
                    compliant.clone()
                } else {
                    refused_req.clone()
                };
                tokio::spawn(async move {
                    let start = Instant::now();
                    let result = runtime.call(plugin_service::CREATE_CONTAINER, &req).await;
                    (start.elapsed(), result.is_err())
                })
            })
            .collect();
        for call in calls {
            let (took, was_refused) = call.await.expect("call task");
            times.push(took);
            refused += usize::from(was_refused);
        }
        walls.push(wall.elapsed());
    }
    assert_eq!(
        refused,
        CONCURRENT * BURSTS / 2,
        "every noncompliant creation refused"
    );
    times.sort();
    walls.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let over_budget = times
        .iter()
        .filter(|t| **t > Duration::from_secs(2))
        .count();
    println!(
        "{BURSTS} bursts of {CONCURRENT} concurrent CreateContainer calls (half refused), n={}:\n  per call p50={:.2} ms  p99={:.2} ms  max={:.2} ms  over 2 s: {over_budget}\n  whole burst p50={:.1} ms  max={:.1} ms",
        times.len(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("samples")),
        ms(percentile(&walls, 0.50)),
        ms(*walls.last().expect("bursts")),
    );
}
