//! CreateContainer latency through a real containerd, without and with nodeguard, in one run;
//! nodeguard's memory; and bursts of concurrent creations (half refused) against containerd's
//! 2 s plugin budget. Prints figures (no timing assertions: see docs/performance.md).
//!
//! `cargo bench -p nodeguard-integration --bench create_latency -- [1.7|2.1] [N]` as root,
//! after `scripts/testbed/setup.sh` and `cargo build --release -p nodeguard` (set
//! `NODEGUARD_BIN=target/release/nodeguard`).

use std::time::{Duration, Instant};

use anyhow::Result;
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Nodeguard, Pod, PodSpec, images,
};

const POLICY: &str = r"
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: bench}
spec:
  rules:
    images: {allowed: ['^registry\.local/'], forbiddenTags: [latest]}
    privileged: {}
    privilegeEscalation: {effect: audit}
    capabilities: {allowedAdd: [NET_BIND_SERVICE], effect: audit}
    resources: {requireLimits: [cpu, memory], maxLimits: {cpu: '4', memory: 8Gi}}
    hostNamespaces: {allowed: [network]}
    hostPorts: {allowed: ['8000-9000']}
    hostPath: {allowed: [{pathPrefix: /var/log, readOnly: true}]}
    runAsNonRoot: {effect: audit}
    readOnlyRootFilesystem: {effect: audit}
    seccomp: {effect: audit}
    requiredLabels: {effect: warn, labels: [{key: app}]}
";

/// Creates and removes `n` containers; returns each CreateContainer round trip.
async fn creates(cri: &CriClient, pod: &Pod, n: usize, tag: &str) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let spec = ContainerSpec::new(format!("{tag}-{i}"), images::BUSYBOX)
            .sleep_forever()
            .limits(250, 64 << 20);
        let start = Instant::now();
        let id = cri.create_container(pod, &spec).await?;
        times.push(start.elapsed());
        cri.remove_container(&id).await?;
    }
    Ok(times)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(label: &str, mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
    println!(
        "  {label:<28} n={:<4} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    (p50, p99)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let version = if args.iter().any(|a| a == "1.7") {
        ContainerdVersion::V1_7
    } else {
        ContainerdVersion::V2_1
    };
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200);
    println!(
        "CreateContainer through CRI, containerd {}, {n} creations per phase",
        version.major_minor()
    );
    let containerd = Containerd::start(version).await?;
    let cri = containerd.cri().await?;
    let pod = cri
        .run_pod(&PodSpec::new("bench", "default").label("app", "bench"))
        .await?;
    creates(&cri, &pod, 20, "warmup").await?;

    // Alternate short blocks with and without the plugin so that drift in the machine's load
    // falls on both alike. containerd drops a killed plugin at its next call: one settling
    // creation after each kill is not counted.
    let rounds = 10;
    let block = n.div_ceil(rounds);
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut nodeguard = Nodeguard::start(&containerd, POLICY).await?;
    let mut rss = None;
    for round in 0..rounds {
        if round > 0 {
            nodeguard.restart().await?;
        }
        creates(&cri, &pod, 2, &format!("w{round}-warm")).await?;
        with.extend(creates(&cri, &pod, block, &format!("w{round}")).await?);
        rss = nodeguard.rss_kib().or(rss);
        nodeguard.kill().await?;
        let _ = creates(&cri, &pod, 1, &format!("s{round}")).await;
        without.extend(creates(&cri, &pod, block, &format!("o{round}")).await?);
    }
    let (base50, base99) = summary("without nodeguard", without);
    let (with50, with99) = summary("with nodeguard (12 rules)", with);
    let added = |with: Duration, base: Duration| (with.as_secs_f64() - base.as_secs_f64()) * 1e3;
    println!(
        "  added by nodeguard:          p50={:+.3} ms  p99={:+.3} ms",
        added(with50, base50),
        added(with99, base99)
    );
    if let Some(kib) = rss {
        println!(
            "  nodeguard RSS (VmRSS):       {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    burst(&cri, &pod, false).await?;
    nodeguard.restart().await?;
    burst(&cri, &pod, true).await?;
    containerd.shutdown()?;
    Ok(())
}

/// Bursts of concurrent creations through CRI, half of them without limits (refused at create
/// when nodeguard runs): each call's latency, and how many exceeded containerd's 2 s plugin
/// timeout.
async fn burst(cri: &CriClient, pod: &Pod, with_nodeguard: bool) -> Result<()> {
    const CONCURRENT: usize = 50;
    const BURSTS: usize = 6;
    let mut times = Vec::new();
    let mut refused = 0;
    for b in 0..BURSTS {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..CONCURRENT {
            let mut spec =
                ContainerSpec::new(format!("burst{b}-{i}"), images::BUSYBOX).sleep_forever();
            if i % 2 == 0 {
                spec = spec.limits(250, 64 << 20);
            }
            let (cri, pod) = (cri.clone(), pod.clone());
            calls.spawn(async move {
                let start = Instant::now();
                let result = cri.create_container(&pod, &spec).await;
                (start.elapsed(), result)
            });
        }
        while let Some(joined) = calls.join_next().await {
            let (took, result) = joined?;
            times.push(took);
            match result {
                Ok(id) => cri.remove_container(&id).await?,
                Err(e) if e.to_string().contains("nodeguard: refused") => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let expected = if with_nodeguard {
        CONCURRENT * BURSTS / 2
    } else {
        0
    };
    assert_eq!(
        refused, expected,
        "containers without limits refused, by nodeguard only"
    );
    let over = times
        .iter()
        .filter(|t| **t > Duration::from_secs(2))
        .count();
    println!("  {BURSTS} bursts of {CONCURRENT} concurrent creations, over 2 s: {over}");
    let label = if with_nodeguard {
        "burst, with nodeguard"
    } else {
        "burst, without nodeguard"
    };
    summary(label, times);
    Ok(())
}
