//! `nodeguard-demo`: shows nodeguard's main job on this machine. Starts a private containerd
//! with NRI and nodeguard with a sample policy, plays the kubelet for one compliant and several
//! noncompliant containers, and prints what was allowed and refused, and why.
//!
//! Run it through `scripts/demo.sh` (which prepares the testbed and builds nodeguard).

use std::time::Duration;

use anyhow::{Context, Result};
use nodeguard_integration::cri_api::ContainerState;
use nodeguard_integration::{
    ContainerSpec, Containerd, ContainerdVersion, CriClient, Nodeguard, Pod, PodSpec, images,
};

/// The sample policy the demo enforces.
const POLICY: &str = r"# nodeguard demo policy
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata:
  name: demo
spec:
  rules:
    images:
      allowed: ['^registry\.local/']
      forbiddenTags: [latest]
    privileged: {}
    resources:
      requireLimits: [cpu, memory]
    hostNamespaces:
      allowed: [network]   # the demo's pods use the host network (no CNI here)
";

const MIB: i64 = 1 << 20;

struct Case {
    what: &'static str,
    pod: PodSpec,
    container: ContainerSpec,
}

fn cases() -> Vec<Case> {
    let ok = |name: &str| {
        ContainerSpec::new(name, images::BUSYBOX)
            .sleep_forever()
            .limits(250, 64 * MIB)
    };
    vec![
        Case {
            what: "compliant: allowed registry, limits set",
            pod: PodSpec::new("web", "shop"),
            container: ok("app"),
        },
        Case {
            what: "image from a registry that is not allowed",
            pod: PodSpec::new("web", "shop"),
            container: ContainerSpec::new("miner", images::EVIL_BUSYBOX)
                .sleep_forever()
                .limits(250, 64 * MIB),
        },
        Case {
            what: "image tagged latest",
            pod: PodSpec::new("web", "shop"),
            container: ContainerSpec::new("floating", images::BUSYBOX_LATEST)
                .sleep_forever()
                .limits(250, 64 * MIB),
        },
        Case {
            what: "no CPU or memory limit",
            pod: PodSpec::new("web", "shop"),
            container: ContainerSpec::new("greedy", images::BUSYBOX).sleep_forever(),
        },
        Case {
            what: "pod shares the host's PID namespace",
            pod: PodSpec {
                host_pid: true,
                ..PodSpec::new("debug", "shop")
            },
            container: ok("nsenter"),
        },
        Case {
            what: "privileged container (seen at start)",
            pod: PodSpec {
                privileged: true,
                ..PodSpec::new("admin", "shop")
            },
            container: ok("root").privileged(),
        },
    ]
}

async fn try_case(cri: &CriClient, pod: &Pod, container: &ContainerSpec) -> Result<String, String> {
    let id = cri
        .create_container(pod, container)
        .await
        .map_err(|e| format!("refused at create: {}", reason(&e.message)))?;
    cri.start_container(&id)
        .await
        .map_err(|e| format!("refused at start: {}", reason(&e.message)))?;
    cri.wait_container_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| format!("did not run: {e}"))?;
    Ok("running".to_string())
}

/// nodeguard's own words, without containerd's prefixes.
fn reason(message: &str) -> &str {
    message
        .find("nodeguard: ")
        .map_or(message, |i| &message[i..])
}

#[tokio::main]
async fn main() -> Result<()> {
    let version = match std::env::args().nth(1).as_deref() {
        Some("1.7") => ContainerdVersion::V1_7,
        _ => ContainerdVersion::V2_1,
    };
    println!(
        "Starting a private containerd {} with NRI ...",
        version.major_minor()
    );
    let containerd = Containerd::start(version).await?;
    println!("Starting nodeguard with this policy:\n\n{POLICY}");
    let nodeguard = Nodeguard::start(&containerd, POLICY).await?;
    let cri = containerd.cri().await.context("CRI client")?;
    println!("Creating containers through CRI, as the kubelet would:\n");
    let mut pods: Vec<(String, Pod)> = Vec::new();
    for case in cases() {
        let key = case.pod.name.clone();
        let pod = match pods.iter().find(|(k, _)| *k == key) {
            Some((_, pod)) => pod.clone(),
            None => {
                let pod = cri.run_pod(&case.pod).await?;
                pods.push((key, pod.clone()));
                pod
            }
        };
        let result = try_case(&cri, &pod, &case.container).await;
        let (mark, text) = match &result {
            Ok(text) => ("ALLOWED", text.as_str()),
            Err(text) => ("REFUSED", text.as_str()),
        };
        println!(
            "  {mark}  {:<8} {:<42}\n           {}\n",
            case.container.name, case.what, text
        );
    }
    println!("nodeguard's audit log (one JSON line per decision):\n");
    for record in nodeguard.audit_records() {
        println!(
            "  {} {:<5} {:<8} {:<8} {}",
            record["time"].as_str().unwrap_or_default(),
            record["phase"].as_str().unwrap_or_default(),
            record["outcome"].as_str().unwrap_or_default(),
            record["container"]["name"].as_str().unwrap_or_default(),
            record["violations"]
                .as_array()
                .map(|v| v
                    .iter()
                    .filter_map(|v| v["rule"].as_str())
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default()
        );
    }
    println!("\nStopping nodeguard and containerd, and cleaning up.");
    drop(nodeguard);
    containerd.shutdown()?;
    Ok(())
}
