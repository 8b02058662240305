//! Container lifecycle latency through a real containerd, with no plugin, with nodeguard and
//! with a do-nothing plugin on the upstream Go stub (the "Go peer"), in one run; each
//! plugin's own cost per NRI event, side by side; memory; and bursts of concurrent creations
//! (half refused) against containerd's 2 s plugin budget. Prints figures (no timing
//! assertions: see docs/performance.md).
//!
//! `cargo bench -p nodeguard-integration --bench create_latency -- [1.7|2.1] [N] [notap]
//! [nospecs]` as root, after `scripts/testbed/setup.sh`, `scripts/testbed/go-nri-peer.sh` (the
//! Go peer; without it the bench says so and runs the rest) and `cargo build --release -p
//! nodeguard` (set `NODEGUARD_BIN=target/release/nodeguard`).
//!
//! Each cycle creates a container (timed), starts it (timed), updates its resources (timed),
//! then kills and removes it: the three events nodeguard subscribes to. Blocks of cycles
//! alternate between the configurations, in a rotating order, so that drift in the machine's
//! load falls on all alike. Both plugins connect as external plugins (name index 10, the same
//! containerd timeouts) through a tap on the NRI socket ([`latency::tap`]) that times every
//! call from containerd's request to the plugin's reply; `notap` connects them directly and
//! leaves the per-event wire table out. nodeguard's own time per event is read from its
//! `/metrics` (`nodeguard_request_duration_seconds{phase}`), scraped around each block; the
//! Go peer's from its own per-call log (a ttrpc interceptor). Each nodeguard block also starts
//! a few containers whose specs nodeguard cannot have read ahead, which gives the spec-read
//! time: created before it connected (so not read ahead after their create) and updated
//! (`UpdateContainerResources`) after it connected, before their start. nodeguard reads the
//! specs of the containers `Synchronize` lists as created right after registering; the update
//! drops what it read (the record's spec changes with an update), so each start reads the spec
//! inside the request, as after any update between create and start. The report checks it:
//! `start_specs_total{source="on_demand"}` counts every one of those starts ("early containers
//! on_demand N of N"). `nospecs` (a diagnostic) gives nodeguard no containerd to read specs
//! from: no read-ahead after a create or at registration, no read at a start.

mod latency;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use latency::plugin::{self, Plugin};
use latency::stats::{Histogram, ms, percentiles, us};
use latency::tap::{Call, Tap};
use nodeguard_integration::http::{self, Metrics};
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Pod, PodSpec, Testbed, cri_api,
    images, nodeguard,
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

/// Containers per nodeguard block created before nodeguard connected, updated and started
/// after: their starts read the spec on demand.
const ON_DEMAND_PER_BLOCK: usize = 4;

/// One cycle's CRI round trips.
#[derive(Debug, Default, Clone)]
struct Lifecycle {
    create: Vec<Duration>,
    start: Vec<Duration>,
    update: Vec<Duration>,
}

impl Lifecycle {
    fn extend(&mut self, other: Lifecycle) {
        self.create.extend(other.create);
        self.start.extend(other.start);
        self.update.extend(other.update);
    }
}

fn spec(tag: &str) -> ContainerSpec {
    ContainerSpec::new(tag, images::BUSYBOX)
        .sleep_forever()
        .limits(250, 64 << 20)
}

/// The update every cycle makes: new CPU and memory limits, inside the policy's maxima.
fn update_request(id: &str) -> cri_api::UpdateContainerResourcesRequest {
    cri_api::UpdateContainerResourcesRequest {
        container_id: id.to_string(),
        linux: Some(cri_api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 30_000,
            cpu_shares: 307,
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn discard(cri: &CriClient, id: &str) {
    let _ = cri.stop_container(id, 0).await;
    let _ = cri.remove_container(id).await;
}

/// `n` cycles: create, start, update (each timed), kill, remove.
async fn cycles(cri: &CriClient, pod: &Pod, n: usize, tag: &str) -> Result<Lifecycle> {
    let mut times = Lifecycle::default();
    for i in 0..n {
        let started = Instant::now();
        let id = cri
            .create_container(pod, &spec(&format!("{tag}-{i}")))
            .await?;
        times.create.push(started.elapsed());
        let outcome = async {
            let started = Instant::now();
            cri.start_container(&id).await?;
            times.start.push(started.elapsed());
            let started = Instant::now();
            cri.runtime_service()
                .update_container_resources(update_request(&id))
                .await?;
            times.update.push(started.elapsed());
            anyhow::Ok(())
        }
        .await;
        discard(cri, &id).await;
        outcome?;
    }
    Ok(times)
}

/// The configurations compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Config {
    None,
    Nodeguard,
    GoPeer,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::None => "no plugin",
            Config::Nodeguard => "nodeguard (12 rules)",
            Config::GoPeer => "Go peer (do-nothing stub)",
        }
    }
}

/// What one configuration gathered over the run.
#[derive(Debug, Default)]
struct Gathered {
    cri: Lifecycle,
    /// Wire time per call (through the tap).
    wire: BTreeMap<String, Vec<Duration>>,
    /// The plugin's own time per call (the Go peer's log).
    own: BTreeMap<String, Vec<Duration>>,
    rss_kib: Option<u64>,
}

fn add_calls(into: &mut BTreeMap<String, Vec<Duration>>, calls: Vec<Call>) {
    for call in calls {
        into.entry(call.call).or_default().push(call.took);
    }
}

/// nodeguard's own histograms, summed over its blocks.
#[derive(Debug, Default)]
struct Own {
    request: BTreeMap<&'static str, Histogram>,
    evaluation: BTreeMap<&'static str, Histogram>,
    /// Start requests of the containers created before nodeguard connected and updated after.
    on_demand_start: Histogram,
    /// Specs judged in the timed cycles, by source.
    prefetched: f64,
    on_demand: f64,
    /// Specs read on demand for the containers created before nodeguard connected and updated
    /// after.
    early_on_demand: f64,
    on_demand_cri: Vec<Duration>,
    on_demand_wire: Vec<Duration>,
}

const PHASES: [&str; 3] = ["create", "start", "update"];

async fn scrape(addr: std::net::SocketAddr) -> Result<Metrics> {
    let response = http::get(addr, "/metrics").await?;
    Metrics::parse(&response.body)
}

fn request_hist(m: &Metrics, phase: &str) -> Histogram {
    Histogram::read(m, "nodeguard_request_duration_seconds", &[("phase", phase)])
}

fn evaluation_hist(m: &Metrics, phase: &str) -> Histogram {
    Histogram::read(
        m,
        "nodeguard_evaluation_duration_seconds",
        &[("phase", phase)],
    )
}

fn specs(m: &Metrics, source: &str) -> f64 {
    m.count("nodeguard_start_specs_total", &[("source", source)])
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
    let use_tap = !args.iter().any(|a| a == "notap");
    // A diagnostic: nodeguard gets no containerd to read specs from (nothing listens on its
    // --containerd-socket), so it neither reads ahead after a create nor at a start, and lets
    // the starts it cannot judge through (--undecided-at-start allow).
    let no_specs = args.iter().any(|a| a == "nospecs");
    let testbed = Testbed::locate()?;
    let peer = plugin::go_peer(testbed.root());
    let containerd = Containerd::start(version).await?;
    println!(
        "Container lifecycle through CRI, containerd {} ({}), {n} cycles per configuration",
        version.major_minor(),
        containerd.runtime_version()
    );
    let mut configs = vec![Config::None, Config::Nodeguard];
    match &peer {
        Ok((bin, info)) => {
            println!("Go peer: {}", bin.display());
            for line in info.lines().filter(|l| !l.starts_with("fetched=")) {
                println!("  {line}");
            }
            configs.push(Config::GoPeer);
        }
        Err(why) => println!("GO PEER NOT RUN: {why}. Measuring no plugin and nodeguard only."),
    }
    let cri = containerd.cri().await?;
    let pod = cri
        .run_pod(&PodSpec::new("bench", "default").label("app", "bench"))
        .await?;
    cycles(&cri, &pod, 10, "warmup").await?;

    let dir = containerd.dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let tap = if use_tap {
        Some(Tap::start(
            dir.join("nri-tap.sock"),
            containerd.nri_socket(),
        )?)
    } else {
        None
    };
    let plugin_socket = tap
        .as_ref()
        .map_or_else(|| containerd.nri_socket(), |t| t.path().to_path_buf());
    let metrics_addr = http::free_loopback_addr()?;
    let mut ng_args = vec![
        "serve".to_string(),
        "--policy".into(),
        write_policy(&dir)?.display().to_string(),
        "--nri-socket".into(),
        plugin_socket.display().to_string(),
        "--containerd-socket".into(),
        if no_specs {
            dir.join("nothing-listens.sock").display().to_string()
        } else {
            containerd.socket().display().to_string()
        },
        "--audit-log".into(),
        dir.join("audit.jsonl").display().to_string(),
        "--node-name".into(),
        "bench-node".into(),
        "--metrics-addr".into(),
        metrics_addr.to_string(),
    ];
    if no_specs {
        println!("nospecs: nodeguard reads no spec from containerd (diagnostic)");
        ng_args.extend(["--undecided-at-start".into(), "allow".into()]);
    }
    ng_args.extend(nodeguard::state_args(
        &dir.join("report.json"),
        &dir.join("containers.json"),
    ));
    let mut ng = Plugin::new(
        "nodeguard",
        nodeguard::binary()?,
        ng_args,
        dir.join("nodeguard.log"),
    );
    let mut go = peer.as_ref().ok().map(|(bin, _)| {
        Plugin::new(
            "go-nri-peer",
            bin.clone(),
            vec![
                "-socket".into(),
                plugin_socket.display().to_string(),
                "-name".into(),
                "go-peer".into(),
                "-idx".into(),
                "10".into(),
            ],
            dir.join("go-nri-peer.log"),
        )
    });

    let rounds = 10;
    let block = n.div_ceil(rounds);
    let mut gathered: BTreeMap<Config, Gathered> = BTreeMap::new();
    let mut own = Own::default();
    for round in 0..rounds {
        // Rotate the order so that no configuration always follows another.
        let mut order = configs.clone();
        order.rotate_left(round % configs.len());
        for config in order {
            let tag = format!("r{round}-{config:?}");
            let g = gathered.entry(config).or_default();
            match config {
                Config::None => {
                    g.cri.extend(cycles(&cri, &pod, block, &tag).await?);
                }
                Config::Nodeguard => {
                    // Containers created while no plugin is connected: not read ahead after
                    // their create. nodeguard reads them ahead once registered (Synchronize
                    // lists them as created); the update below drops that, as any update
                    // between create and start does, so their starts read the spec on demand.
                    let mut early = Vec::new();
                    for i in 0..ON_DEMAND_PER_BLOCK {
                        early.push(
                            cri.create_container(&pod, &spec(&format!("{tag}-early{i}")))
                                .await?,
                        );
                    }
                    ng.start(&[]).await?;
                    cycles(&cri, &pod, 2, &format!("{tag}-warm")).await?;
                    for id in &early {
                        cri.runtime_service()
                            .update_container_resources(update_request(id))
                            .await?;
                    }
                    let m0 = scrape(metrics_addr).await?;
                    drop(tap.as_ref().map(Tap::take));
                    for id in &early {
                        let started = Instant::now();
                        cri.start_container(id).await?;
                        own.on_demand_cri.push(started.elapsed());
                    }
                    let m1 = scrape(metrics_addr).await?;
                    if let Some(t) = &tap {
                        own.on_demand_wire.extend(
                            t.take()
                                .into_iter()
                                .filter(|c| c.call.contains("START_CONTAINER"))
                                .map(|c| c.took),
                        );
                    }
                    own.on_demand_start
                        .add(&request_hist(&m1, "start").since(&request_hist(&m0, "start")));
                    for id in &early {
                        discard(&cri, id).await;
                    }
                    let m2 = scrape(metrics_addr).await?;
                    drop(tap.as_ref().map(Tap::take));
                    g.cri.extend(cycles(&cri, &pod, block, &tag).await?);
                    let m3 = scrape(metrics_addr).await?;
                    if let Some(t) = &tap {
                        add_calls(&mut g.wire, t.take());
                    }
                    for phase in PHASES {
                        own.request
                            .entry(phase)
                            .or_default()
                            .add(&request_hist(&m3, phase).since(&request_hist(&m2, phase)));
                        own.evaluation
                            .entry(phase)
                            .or_default()
                            .add(&evaluation_hist(&m3, phase).since(&evaluation_hist(&m2, phase)));
                    }
                    own.prefetched += specs(&m3, "prefetched") - specs(&m2, "prefetched");
                    own.on_demand += specs(&m3, "on_demand") - specs(&m2, "on_demand");
                    own.early_on_demand += specs(&m1, "on_demand") - specs(&m0, "on_demand");
                    g.rss_kib = ng.rss_kib().or(g.rss_kib);
                    ng.kill().await?;
                    // containerd drops a killed plugin at its next call: one settling cycle.
                    let _ = cycles(&cri, &pod, 1, &format!("{tag}-settle")).await;
                }
                Config::GoPeer => {
                    let Some(go) = go.as_mut() else { continue };
                    let timings = dir.join(format!("go-peer-timings-{round}.txt"));
                    go.start(&["-timings".into(), timings.display().to_string()])
                        .await?;
                    cycles(&cri, &pod, 2, &format!("{tag}-warm")).await?;
                    let skip = plugin::read_timings(&timings).len();
                    drop(tap.as_ref().map(Tap::take));
                    g.cri.extend(cycles(&cri, &pod, block, &tag).await?);
                    if let Some(t) = &tap {
                        add_calls(&mut g.wire, t.take());
                    }
                    g.rss_kib = go.rss_kib().or(g.rss_kib);
                    go.stop().await?;
                    for (call, took) in plugin::read_timings(&timings).into_iter().skip(skip) {
                        g.own.entry(call).or_default().push(took);
                    }
                    let _ = cycles(&cri, &pod, 1, &format!("{tag}-settle")).await;
                }
            }
        }
    }
    report(&gathered, &own);

    // Bursts: no plugin, then nodeguard.
    burst(&cri, &pod, false).await?;
    ng.start(&[]).await?;
    burst(&cri, &pod, true).await?;
    ng.kill().await?;
    drop(tap);
    containerd.shutdown()?;
    Ok(())
}

fn write_policy(dir: &std::path::Path) -> Result<PathBuf> {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, POLICY)?;
    Ok(path)
}

fn report(gathered: &BTreeMap<Config, Gathered>, own: &Own) {
    println!("\nCRI round trips (p50 / p99, ms):");
    println!(
        "  {:<28} {:>5}  {:>17}  {:>17}  {:>17}",
        "configuration", "n", "CreateContainer", "StartContainer", "UpdateContainer"
    );
    let base = gathered.get(&Config::None);
    for (config, g) in gathered {
        let cell = |t: &[Duration]| {
            let (p50, p99, _) = percentiles(t);
            format!("{:>7.3} / {:>7.3}", ms(p50), ms(p99))
        };
        println!(
            "  {:<28} {:>5}  {}  {}  {}",
            config.label(),
            g.cri.create.len(),
            cell(&g.cri.create),
            cell(&g.cri.start),
            cell(&g.cri.update)
        );
        if let (Some(base), true) = (base, *config != Config::None) {
            let delta = |t: &[Duration], b: &[Duration]| {
                let (a50, a99, _) = percentiles(t);
                let (b50, b99, _) = percentiles(b);
                format!("{:>+7.3} / {:>+7.3}", ms(a50) - ms(b50), ms(a99) - ms(b99))
            };
            println!(
                "  {:<28} {:>5}  {}  {}  {}",
                "  added to no plugin",
                "",
                delta(&g.cri.create, &base.cri.create),
                delta(&g.cri.start, &base.cri.start),
                delta(&g.cri.update, &base.cri.update)
            );
        }
        if let Some(kib) = g.rss_kib {
            println!("  {:<28} VmRSS {:.1} MiB", "", kib as f64 / 1024.0);
        }
    }

    let ng = gathered.get(&Config::Nodeguard);
    let go = gathered.get(&Config::GoPeer);
    let wire_calls: std::collections::BTreeSet<&String> = ng
        .iter()
        .chain(go.iter())
        .flat_map(|g| g.wire.keys())
        .collect();
    if !wire_calls.is_empty() {
        println!(
            "\nPer NRI call, on the wire (tap: containerd's request to the plugin's reply), µs p50 / p99 (n):"
        );
        println!("  {:<30} {:>26}  {:>26}", "call", "nodeguard", "Go peer");
        let cell = |g: Option<&Gathered>, call: &String| {
            g.and_then(|g| g.wire.get(call)).map_or_else(
                || format!("{:>26}", "-"),
                |t| {
                    let (p50, p99, _) = percentiles(t);
                    format!("{:>7.0} / {:>7.0} ({:>5})", us(p50), us(p99), t.len())
                },
            )
        };
        for call in wire_calls {
            println!("  {:<30} {}  {}", call, cell(ng, call), cell(go, call));
        }
    }

    println!("\nPer event, each plugin's own time, µs:");
    println!(
        "  nodeguard: nodeguard_request_duration_seconds (view, evaluation, audit record, metrics; spec read when on demand), mean / p50~ / p99~ (interpolated in buckets), n"
    );
    for phase in PHASES {
        if let Some(h) = own.request.get(phase) {
            let eval = own.evaluation.get(phase).and_then(Histogram::mean);
            println!(
                "    {:<28} {:>7.1} / {:>7.1} / {:>7.1}  n={:<5} (evaluation alone: mean {:.1})",
                phase,
                h.mean().map_or(f64::NAN, us),
                h.quantile(0.5).map_or(f64::NAN, us),
                h.quantile(0.99).map_or(f64::NAN, us),
                h.count,
                eval.map_or(f64::NAN, us)
            );
        }
    }
    let h = &own.on_demand_start;
    println!(
        "    {:<28} {:>7.1} / {:>7.1} / {:>7.1}  n={:<5}",
        "start, spec read on demand",
        h.mean().map_or(f64::NAN, us),
        h.quantile(0.5).map_or(f64::NAN, us),
        h.quantile(0.99).map_or(f64::NAN, us),
        h.count
    );
    if let (Some(demand), Some(ahead)) =
        (h.mean(), own.request.get("start").and_then(Histogram::mean))
    {
        println!(
            "    spec read inside the request (on-demand start mean - prefetched start mean): {:.1} µs",
            us(demand) - us(ahead)
        );
    }
    println!(
        "    start_specs_total: timed cycles prefetched {}, on_demand {}; early containers on_demand {} of {}",
        own.prefetched,
        own.on_demand,
        own.early_on_demand,
        own.on_demand_cri.len()
    );
    let (c50, c99, _) = percentiles(&own.on_demand_cri);
    let (w50, w99, _) = percentiles(&own.on_demand_wire);
    println!(
        "    on-demand starts: CRI {:.3} / {:.3} ms, wire {:.0} / {:.0} µs (p50 / p99)",
        ms(c50),
        ms(c99),
        us(w50),
        us(w99)
    );
    if let Some(go) = go {
        println!(
            "  Go peer: its interceptor (ttrpc dispatch to reply object: request decoding and the empty handler), p50 / p99 / max, n"
        );
        for (call, t) in &go.own {
            let (p50, p99, max) = percentiles(t);
            println!(
                "    {:<28} {:>7.1} / {:>7.1} / {:>7.1}  n={}",
                call,
                us(p50),
                us(p99),
                us(max),
                t.len()
            );
        }
    }
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
    let (p50, p99, max) = percentiles(&times);
    println!(
        "  {BURSTS} bursts of {CONCURRENT} concurrent creations, {}: p50={:.3} ms p99={:.3} ms max={:.3} ms, over 2 s: {over}",
        if with_nodeguard {
            "with nodeguard"
        } else {
            "without a plugin"
        },
        ms(p50),
        ms(p99),
        ms(max)
    );
    Ok(())
}
