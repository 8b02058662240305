//! What newer containerd versions send, and that nodeguard judges it as the older ones'
//! requests: the create-time and start-time views agree on what the node can know.
//!
//! containerd 2.2.1+ (NRI v0.11) fills `LinuxContainer.seccomp_profile` at CreateContainer
//! with the profile the kubelet sent in the CRI request. A kubelet with its default
//! `seccompDefault: false` sends `Unconfined` for a container whose pod sets no profile; with
//! `seccompDefault: true` it sends `RuntimeDefault`. containerd then writes no seccomp filter
//! into the OCI spec for `Unconfined`, and its default filter for `RuntimeDefault`.

use nodeguard::enforce::UndecidedAtStart;
use nodeguard::nri::transport::status::Code;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use serde_json::{Value, json};

use super::fake_runtime::FakeRuntime;
use super::harness::{Daemon, Plugin, compliant_spec, container, create_and_validate, pod};

const BASELINE: &str = "
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: pss}
spec:
  effect: enforce
  podSecurity: {level: baseline}
";

const RESTRICTED: &str = "
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: pss}
spec:
  effect: enforce
  podSecurity: {level: restricted}
";

/// containerd 2.3.4's Configure (NRI v0.12).
fn configure_2_3() -> nri::ConfigureRequest {
    nri::ConfigureRequest {
        runtime_name: "containerd".into(),
        runtime_version: "v2.3.4".into(),
        registration_timeout: 5000,
        request_timeout: 2000,
        ..Default::default()
    }
}

/// The kubelet's setting that decides which profile a pod without one gets.
#[derive(Debug, Clone, Copy)]
enum SeccompDefault {
    /// `seccompDefault: false` (the kubelet's default): `Unconfined`.
    Off,
    /// `seccompDefault: true`: `RuntimeDefault`.
    On,
}

impl SeccompDefault {
    /// The profile containerd 2.2.1+ passes at CreateContainer for a pod that sets none.
    fn profile(self) -> nri::SecurityProfile {
        let profile_type = match self {
            SeccompDefault::Off => nri::security_profile::ProfileType::Unconfined,
            SeccompDefault::On => nri::security_profile::ProfileType::RuntimeDefault,
        };
        nri::SecurityProfile {
            profile_type: profile_type as i32,
            localhost_ref: String::new(),
        }
    }

    /// The OCI spec containerd commits: no filter for Unconfined, its default one otherwise.
    fn spec(self, mut spec: Value) -> Value {
        if let SeccompDefault::On = self {
            spec["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
            });
        }
        spec
    }
}

/// [`container`] as containerd 2.2.1+ describes it at create for a pod without a profile.
fn container_2_2(id: &str, seccomp_default: SeccompDefault) -> nri::Container {
    let mut c = container(id);
    c.linux.as_mut().expect("linux").seccomp_profile = Some(seccomp_default.profile());
    c
}

/// A spec that passes every restricted control but seccomp: capabilities dropped but
/// NET_BIND_SERVICE, no privilege escalation, non-root, /proc masked.
fn restricted_spec() -> Value {
    let mut spec = compliant_spec();
    let caps = json!(["CAP_NET_BIND_SERVICE"]);
    spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    spec
}

/// Connected to a plugin enforcing `policy`, configured as containerd 2.3 configures it; the
/// pod's sandbox (whose spec holds the pod's sysctls) sets none.
async fn connected(policy: &str) -> (Daemon, FakeRuntime) {
    let (daemon, runtime) =
        Daemon::connected_with(Plugin::with(policy, UndecidedAtStart::Deny)).await;
    daemon
        .plugin
        .specs
        .insert("sandbox-1", &json!({"ociVersion": "1.1.0", "linux": {}}));
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure_2_3()).await;
    (daemon, runtime)
}

/// What containerd 2.2+ does for a creation, no other plugin adjusting anything. `Err`: the
/// reason of a rejection.
async fn create(runtime: &FakeRuntime, c: nri::Container) -> Result<(), String> {
    create_and_validate(runtime, c, nri::ContainerAdjustment::default()).await
}

async fn start(runtime: &FakeRuntime, c: nri::Container) -> Result<bytes::Bytes, (Code, String)> {
    runtime
        .call(
            method::START_CONTAINER,
            &nri::StartContainerRequest {
                pod: Some(pod()),
                container: Some(c),
            },
        )
        .await
        .map_err(|e| (e.code, e.message))
}

#[tokio::test]
async fn baseline_allows_a_pod_without_a_profile_at_create_and_start_on_2_2_1_and_later() {
    // PSA's baseline `base.yaml`, run as a kubelet runs it with either setting.
    for seccomp_default in [SeccompDefault::Off, SeccompDefault::On] {
        let (daemon, runtime) = connected(BASELINE).await;
        daemon
            .plugin
            .specs
            .insert("c1", &seccomp_default.spec(compliant_spec()));
        let c = container_2_2("c1", seccomp_default);
        assert!(
            create(&runtime, c.clone()).await.is_ok(),
            "{seccomp_default:?}: created"
        );
        assert!(
            start(&runtime, c).await.is_ok(),
            "{seccomp_default:?}: started"
        );
        // At create the controls NRI cannot show wait for start (undecided), seccomp not
        // among them; at start only what no node can know (probe hosts) stays undecided.
        let create = daemon.plugin.records("create");
        assert_eq!(create.len(), 1);
        assert_eq!(create[0]["violations"], json!([]), "{create:#?}");
        assert!(!create[0].to_string().contains("seccomp"), "{create:#?}");
        let start = daemon.plugin.records("start");
        assert_eq!(start[0]["violations"], json!([]), "{start:#?}");
        // Nothing the node can see is left: the verdict is final, and what only admission can
        // judge is listed apart.
        assert_eq!(start[0]["outcome"], "allowed", "{start:#?}");
        assert_eq!(start[0]["undecided"], json!([]), "{start:#?}");
        let admission_only: Vec<&Value> = start[0]["admissionOnly"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| &u["rule"])
            .collect();
        assert_eq!(admission_only, [&json!("pss.baseline.probeHosts")]);
        daemon.stop().await;
    }
}

#[tokio::test]
async fn restricted_refuses_a_pod_without_a_profile_at_create_on_2_2_1_and_later() {
    let (daemon, runtime) = connected(RESTRICTED).await;
    let message = create(&runtime, container_2_2("c1", SeccompDefault::Off))
        .await
        .expect_err("refused at create: the profile is known to be unset");
    assert!(message.contains("[pss.restricted.seccomp]"), "{message}");
    daemon.stop().await;
}

#[tokio::test]
async fn restricted_allows_runtime_default_at_create_and_start_on_2_2_1_and_later() {
    let (daemon, runtime) = connected(RESTRICTED).await;
    daemon
        .plugin
        .specs
        .insert("c1", &SeccompDefault::On.spec(restricted_spec()));
    let c = container_2_2("c1", SeccompDefault::On);
    assert!(create(&runtime, c.clone()).await.is_ok());
    let started = start(&runtime, c).await;
    assert!(started.is_ok(), "{started:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn the_same_pod_gets_the_same_verdict_with_and_without_the_profile_at_create() {
    // Before 2.2.1 the create request carries no profile, and the start decides; from 2.2.1
    // the create request carries it. Per policy and kubelet setting, both end alike.
    for (policy, spec) in [
        (BASELINE, compliant_spec()),
        (RESTRICTED, restricted_spec()),
    ] {
        for seccomp_default in [SeccompDefault::Off, SeccompDefault::On] {
            let mut verdicts = Vec::new();
            for with_profile in [false, true] {
                let (daemon, runtime) = connected(policy).await;
                daemon
                    .plugin
                    .specs
                    .insert("c1", &seccomp_default.spec(spec.clone()));
                let c = if with_profile {
                    container_2_2("c1", seccomp_default)
                } else {
                    container("c1")
                };
                let allowed =
                    create(&runtime, c.clone()).await.is_ok() && start(&runtime, c).await.is_ok();
                verdicts.push(allowed);
                daemon.stop().await;
            }
            assert_eq!(
                verdicts[0], verdicts[1],
                "{seccomp_default:?} under {policy}: before 2.2.1 {} but from 2.2.1 {}",
                verdicts[0], verdicts[1]
            );
        }
    }
}

/// [`container`] as containerd 2.3 describes it at create: the seccomp profile, the user and
/// the container's sysctls.
fn container_2_3(id: &str, uid: u32, sysctls: &[(&str, &str)]) -> nri::Container {
    let mut c = container_2_2(id, SeccompDefault::On);
    c.user = Some(nri::User {
        uid,
        gid: uid,
        additional_gids: vec![],
    });
    c.linux.as_mut().expect("linux").sysctl = sysctls
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    c
}

#[tokio::test]
async fn on_2_3_the_user_and_sysctls_are_decided_at_create() {
    // Root under restricted: refused at create, before containerd commits anything, without a
    // spec to read (none is stored for these containers).
    let (daemon, runtime) = connected(RESTRICTED).await;
    let reason = create(&runtime, container_2_3("root", 0, &[]))
        .await
        .expect_err("root is known at create on 2.3");
    assert!(reason.contains("[pss.restricted.runAsNonRoot]"), "{reason}");
    assert_eq!(
        daemon.plugin.specs.reads("root"),
        0,
        "decided without the spec"
    );
    daemon.stop().await;

    // An unsafe sysctl under baseline: refused at create.
    let (daemon, runtime) = connected(BASELINE).await;
    let reason = create(
        &runtime,
        container_2_3("sysctl", 1000, &[("kernel.msgmax", "65536")]),
    )
    .await
    .expect_err("an unsafe sysctl");
    assert!(reason.contains("[pss.baseline.sysctls]"), "{reason}");
    // A safe one passes create; the create record no longer waits on the user or sysctls.
    create(
        &runtime,
        container_2_3("safe", 1000, &[("net.ipv4.ping_group_range", "0 0")]),
    )
    .await
    .expect("a safe sysctl");
    let records = daemon.plugin.records("create");
    let safe = records
        .iter()
        .find(|r| r["container"]["id"] == "safe")
        .expect("a record");
    assert!(!safe.to_string().contains("sysctl"), "{safe:#}");
    daemon.stop().await;

    // The same root container on 2.1 (no user at create): undecided at create, refused at start.
    let (daemon, runtime) =
        Daemon::connected_with(Plugin::with(RESTRICTED, UndecidedAtStart::Deny)).await;
    let _: nri::CreateContainerResponse = runtime
        .call_ok(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(pod()),
                container: Some(container("root")),
            },
        )
        .await;
    let create_record = &daemon.plugin.records("create")[0];
    assert_eq!(create_record["outcome"], "undecided", "{create_record:#}");
    let mut root = restricted_spec();
    root["process"]["user"] = json!({"uid": 0, "gid": 0});
    daemon.plugin.specs.insert("root", &root);
    let (_, message) = start(&runtime, container("root"))
        .await
        .expect_err("refused at start");
    assert!(
        message.contains("[pss.restricted.runAsNonRoot]"),
        "{message}"
    );
    daemon.stop().await;
}
