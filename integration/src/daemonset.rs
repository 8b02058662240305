//! nodeguard's DaemonSet pod, run as a kubelet runs it.
//!
//! The install manifests are rendered with `kustomize build` (the testbed's kustomize) and
//! nodeguard's pod template is read **from the rendered output**, so a change to the manifests
//! is what the test runs. The template is turned into CRI calls field by field, as the kubelet
//! does: the sandbox (its own network namespace on a bridge CNI network, or the node's, as the
//! manifest says), the container's args and env (downward-API values included), its full
//! security context, its hostPath and ConfigMap volumes, and the probes, which a [`Prober`]
//! calls on the pod's IP at the manifest's periods. The image is the archive
//! `scripts/build-image.sh` writes, imported as `ctr images import` would.
//!
//! Every field of the pod spec, container, security context, probe, volume and volume mount
//! is read into a type that refuses fields it does not know: a manifest change this
//! translation does not cover fails the test instead of being silently dropped.
//!
//! Host paths map to folders of the containerd instance laid out like a node's:
//!
//! | on a node | here |
//! |---|---|
//! | `/var/run/nri` | the instance's `nri/` (holds `nri.sock`) |
//! | `/run/containerd` | the instance folder (holds `containerd.sock` and the containers' state) |
//! | `/var/lib/kubelet` | the harness kubelet's folder |
//! | anything else, e.g. `/var/log/nodeguard` | `node/<path>` in the instance folder |
//!
//! containerd refuses a `HostToContainer` mount whose source is not on a shared or slave
//! mount; systemd makes `/` shared, this machine kind does not: [`Node::prepare`] bind-mounts
//! the instance folder on itself and makes it `rshared`. The bind goes with the instance's
//! teardown (every mount under its folder is unmounted); the CNI bridge is deleted when the
//! [`Node`] is dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use k8s_cri::v1 as cri;
use serde::Deserialize;

use crate::kubelet::{self, ContainerSpec, HostMount, KubeletPaths, PodSpec, Profile, QosClass};
use crate::testbed::Testbed;
use crate::{Containerd, CriClient, CriError, Pod, http};

/// Environment variable naming the image archive to run (default
/// `<workspace>/target/image/nodeguard.tar`, what `scripts/build-image.sh` writes).
pub const IMAGE_ARCHIVE_ENV: &str = "NODEGUARD_IMAGE_ARCHIVE";

/// The node name the harness kubelet gives its pods (`spec.nodeName`).
pub const NODE_NAME: &str = "e2e-node";

/// The workspace folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The image archive built by `scripts/build-image.sh`: `$NODEGUARD_IMAGE_ARCHIVE`, else
/// `target/image/nodeguard.tar`.
///
/// # Errors
/// When there is none; the message says how to build it.
pub fn image_archive() -> Result<PathBuf> {
    let path = match std::env::var_os(IMAGE_ARCHIVE_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace().join("target/image/nodeguard.tar"),
    };
    ensure!(
        path.is_file(),
        "no nodeguard image archive at {}: build it with `scripts/build-image.sh` (scripts/test.sh \
         does), or point {IMAGE_ARCHIVE_ENV} at one",
        path.display()
    );
    Ok(path)
}

/// The testbed's kustomize (`scripts/testbed/setup.sh` unpacks it).
///
/// # Errors
/// When the testbed has none.
pub fn kustomize() -> Result<PathBuf> {
    let testbed = Testbed::locate()?;
    let path = testbed.root().join("kustomize/usr/bin/kustomize");
    ensure!(
        path.is_file(),
        "{} is missing: run `sudo scripts/testbed/setup.sh` again (it now installs kustomize)",
        path.display()
    );
    Ok(path)
}

/// Every object `kustomize build` rendered.
#[derive(Debug, Clone)]
pub struct Manifests {
    objects: Vec<yaml_serde::Value>,
}

/// Renders the kustomization in `dir` with `kustomize build`.
///
/// # Errors
/// When kustomize fails or prints something that is not YAML.
pub fn render(dir: &Path) -> Result<Manifests> {
    let output = Command::new(kustomize()?)
        .arg("build")
        .arg(dir)
        .output()
        .context("running kustomize")?;
    ensure!(
        output.status.success(),
        "kustomize build {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).context("kustomize printed non-UTF-8")?;
    let mut objects = Vec::new();
    for document in yaml_serde::Deserializer::from_str(&text) {
        let value =
            yaml_serde::Value::deserialize(document).context("reading kustomize's output")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(Manifests { objects })
}

impl Manifests {
    fn find(&self, kind: &str, name: &str) -> Result<&yaml_serde::Value> {
        self.objects
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
            })
            .with_context(|| format!("the rendered manifests have no {kind} {name}"))
    }

    /// The DaemonSet `name`.
    ///
    /// # Errors
    /// When there is none, or it has a field this harness does not translate.
    pub fn daemonset(&self, name: &str) -> Result<DaemonSet> {
        let value = self.find("DaemonSet", name)?.clone();
        yaml_serde::from_value(value).with_context(|| format!("reading DaemonSet {name}"))
    }

    /// The data of the ConfigMap `name`.
    ///
    /// # Errors
    /// When there is none.
    pub fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let value = &self.find("ConfigMap", name)?["data"];
        yaml_serde::from_value(value.clone()).with_context(|| format!("reading ConfigMap {name}"))
    }
}

/// A DaemonSet, as far as running its pod goes.
#[derive(Debug, Clone, Deserialize)]
pub struct DaemonSet {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: DaemonSetSpec,
}

/// `metadata` of an object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ObjectMeta {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `namespace`.
    #[serde(default)]
    pub namespace: String,
    /// `labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A DaemonSet's `spec`; only the template matters here.
#[derive(Debug, Clone, Deserialize)]
pub struct DaemonSetSpec {
    /// `template`.
    pub template: PodTemplate,
}

/// `spec.template`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodTemplate {
    /// The pod's labels and annotations.
    pub metadata: ObjectMeta,
    /// The pod spec.
    pub spec: K8sPodSpec,
}

/// A pod spec: the fields the DaemonSet uses. Others fail the parse.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sPodSpec {
    /// Scheduling and API-side fields: no CRI counterpart, read to be known.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// No token is mounted either way here (there is no API server).
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
    /// Service links are environment variables of other services; none exist here.
    #[serde(default)]
    pub enable_service_links: Option<bool>,
    /// Scheduling only.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Scheduling only.
    #[serde(default)]
    pub tolerations: Vec<yaml_serde::Value>,
    /// Scheduling and eviction only.
    #[serde(default)]
    pub priority_class_name: Option<String>,
    /// The grace period of `StopContainer`.
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    /// `hostNetwork`.
    #[serde(default)]
    pub host_network: bool,
    /// `hostPID`.
    #[serde(default, rename = "hostPID")]
    pub host_pid: bool,
    /// `hostIPC`.
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: bool,
    /// The pod's security context.
    #[serde(default)]
    pub security_context: PodSecurityContext,
    /// The containers.
    pub containers: Vec<K8sContainer>,
    /// The volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// A pod's `securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    /// `seccompProfile`.
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
    /// `runAsUser`.
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    #[serde(default)]
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot` (the kubelet checks it against the image's user).
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
}

/// A `seccompProfile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// `RuntimeDefault`, `Unconfined` or `Localhost`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `Localhost`.
    #[serde(default)]
    pub localhost_profile: Option<String>,
}

impl SeccompProfile {
    fn to_profile(&self) -> Result<Profile> {
        Ok(match self.kind.as_str() {
            "RuntimeDefault" => Profile::RuntimeDefault,
            "Unconfined" => Profile::Unconfined,
            "Localhost" => Profile::Localhost(self.localhost_profile.clone().unwrap_or_default()),
            other => bail!("unknown seccomp profile type {other:?}"),
        })
    }
}

/// A container of the pod spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sContainer {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `imagePullPolicy`: nothing is pulled here; the image must be on the node.
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    /// `command` (replaces the image's entrypoint).
    #[serde(default)]
    pub command: Vec<String>,
    /// `args`.
    #[serde(default)]
    pub args: Vec<String>,
    /// `env`.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// `ports`.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    /// `livenessProbe`.
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    /// `readinessProbe`.
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    /// `resources`.
    #[serde(default)]
    pub resources: Resources,
    /// `securityContext`.
    #[serde(default)]
    pub security_context: SecurityContext,
    /// `volumeMounts`.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
}

/// An `env` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value`.
    #[serde(default)]
    pub value: Option<String>,
    /// `valueFrom` (the downward API's `fieldRef` only).
    #[serde(default)]
    pub value_from: Option<EnvVarSource>,
}

/// `valueFrom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// `fieldRef`.
    pub field_ref: FieldRef,
}

/// `fieldRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldRef {
    /// `fieldPath`, e.g. `metadata.name`.
    pub field_path: String,
}

/// A `ports` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `containerPort`.
    pub container_port: u16,
    /// `protocol`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A probe (HTTP only).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// `httpGet`.
    pub http_get: HttpGet,
    /// `initialDelaySeconds`.
    #[serde(default)]
    pub initial_delay_seconds: u64,
    /// `periodSeconds` (the API server's default is 10).
    #[serde(default = "ten")]
    pub period_seconds: u64,
    /// `timeoutSeconds` (default 1).
    #[serde(default = "one")]
    pub timeout_seconds: u64,
    /// `failureThreshold` (default 3).
    #[serde(default = "three")]
    pub failure_threshold: u32,
}

fn ten() -> u64 {
    10
}
fn one() -> u64 {
    1
}
fn three() -> u32 {
    3
}

/// `httpGet`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGet {
    /// `path`.
    pub path: String,
    /// `port`: a number or a container port's name.
    pub port: yaml_serde::Value,
}

/// `resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `requests`.
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// `limits`.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// A container's `securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// `runAsUser`.
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    #[serde(default)]
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot`.
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    /// `privileged`.
    #[serde(default)]
    pub privileged: Option<bool>,
    /// `allowPrivilegeEscalation`.
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    /// `readOnlyRootFilesystem`.
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
    /// `capabilities`.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// `seccompProfile`.
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// `capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `add`.
    #[serde(default)]
    pub add: Vec<String>,
    /// `drop`.
    #[serde(default)]
    pub drop: Vec<String>,
}

/// A `volumeMounts` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// `name`.
    pub name: String,
    /// `mountPath`.
    pub mount_path: String,
    /// `readOnly`.
    #[serde(default)]
    pub read_only: bool,
    /// `mountPropagation`: `None`, `HostToContainer` or `Bidirectional`.
    #[serde(default)]
    pub mount_propagation: Option<String>,
}

/// A `volumes` entry: hostPath or ConfigMap.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// `name`.
    pub name: String,
    /// `hostPath`.
    #[serde(default)]
    pub host_path: Option<HostPathSource>,
    /// `configMap`.
    #[serde(default)]
    pub config_map: Option<ConfigMapSource>,
}

/// `hostPath`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathSource {
    /// `path` on the node.
    pub path: String,
    /// `type`: `Directory`, `DirectoryOrCreate`, ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `configMap`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapSource {
    /// The ConfigMap's name (kustomize's hashed one, once rendered).
    pub name: String,
}

/// A CPU quantity (`50m`, `1`, `0.5`) in millicores.
fn millicores(quantity: &str) -> Result<i64> {
    if let Some(m) = quantity.strip_suffix('m') {
        return m
            .parse()
            .with_context(|| format!("bad CPU quantity {quantity:?}"));
    }
    let cores: f64 = quantity
        .parse()
        .with_context(|| format!("bad CPU quantity {quantity:?}"))?;
    Ok((cores * 1000.0).round() as i64)
}

/// A memory quantity (`32Mi`, `1Gi`, `500M`, `1000`) in bytes.
fn bytes(quantity: &str) -> Result<i64> {
    const UNITS: &[(&str, i64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in UNITS {
        if let Some(n) = quantity.strip_suffix(suffix) {
            let n: i64 = n
                .parse()
                .with_context(|| format!("bad memory quantity {quantity:?}"))?;
            return Ok(n * factor);
        }
    }
    quantity
        .parse()
        .with_context(|| format!("bad memory quantity {quantity:?}"))
}

/// A node for DaemonSet pods: a containerd instance with the image imported, the instance
/// folder a shared mount, a bridge CNI network, and host folders laid out like a node's.
/// Dropping it deletes the bridge; the containerd instance tears down the rest.
#[derive(Debug)]
pub struct Node {
    containerd: Containerd,
    bridge: String,
    pods: Vec<String>,
}

impl Node {
    /// Prepares `containerd` (freshly started, nothing running yet) as a node: imports the
    /// image archive, makes the instance folder a shared mount, installs the bridge network.
    ///
    /// # Errors
    /// When any of that fails.
    pub async fn prepare(containerd: Containerd) -> Result<Node> {
        let dir = containerd.dir().to_path_buf();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A bridge name is at most 15 bytes; the instance folder's random suffix names it.
        let suffix: String = name
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let node = Node {
            containerd,
            bridge: format!("ngbr{suffix}"),
            pods: Vec::new(),
        };
        // The folder holding containerd's socket must be a shared mount (systemd hosts have
        // a shared `/`): bind it on itself, recursively, and make it shared.
        run_command("mount", &["--rbind", path_str(&dir)?, path_str(&dir)?])?;
        run_command("mount", &["--make-rshared", path_str(&dir)?])?;
        node.install_cni()?;
        node.containerd.import_image(&image_archive()?).await?;
        Ok(node)
    }

    /// The containerd instance.
    pub fn containerd(&self) -> &Containerd {
        &self.containerd
    }

    /// The containerd instance, mutably (to restart it).
    pub fn containerd_mut(&mut self) -> &mut Containerd {
        &mut self.containerd
    }

    /// Where host path `path` of a node is here (see the module's table).
    pub fn host_path(&self, path: &str) -> PathBuf {
        let dir = self.containerd.dir();
        let trimmed = path.trim_end_matches('/');
        match trimmed {
            "/var/run/nri" | "/run/nri" => dir.join("nri"),
            "/run/containerd" | "/var/run/containerd" => dir.to_path_buf(),
            "/var/lib/kubelet" => dir.join("kubelet"),
            _ => dir.join("node").join(trimmed.trim_start_matches('/')),
        }
    }

    fn install_cni(&self) -> Result<()> {
        let dir = self.containerd.dir();
        for plugin in ["bridge", "host-local", "loopback", "portmap"] {
            let source = Path::new("/usr/lib/cni").join(plugin);
            ensure!(
                source.is_file(),
                "{} is missing: run `sudo scripts/testbed/setup.sh` (it installs \
                 containernetworking-plugins)",
                source.display()
            );
            std::fs::copy(&source, dir.join("cni/bin").join(plugin))?;
        }
        // A subnet of 10.128.0.0/9 from the instance's name, unlikely to meet another's.
        let hash = self
            .bridge
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let subnet = format!("10.{}.{}.0/24", 128 + (hash % 120), (hash >> 8) % 250);
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("nodeguard-e2e-{}", self.bridge),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": subnet }]],
                        "dataDir": dir.join("cni/ipam"),
                    },
                },
                { "type": "loopback" },
            ],
        });
        std::fs::write(
            dir.join("cni/conf/10-nodeguard-e2e.conflist"),
            serde_json::to_vec_pretty(&conflist)?,
        )?;
        Ok(())
    }

    /// Waits until CRI reports the pod network ready (containerd read the CNI configuration).
    async fn wait_network_ready(&self, cri: &CriClient) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = cri.status().await?;
            let ready = status
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .any(|c| c.r#type == "NetworkReady" && c.status);
            if ready {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "containerd does not report the CNI network ready: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the pod of `template` (a DaemonSet's) named `pod_name` as the kubelet would, with
    /// `config_maps` the data of the ConfigMaps its volumes name.
    ///
    /// # Errors
    /// When a step fails; a refusal by the runtime comes back as a [`CriError`] in the chain.
    pub async fn run_pod(
        &mut self,
        template: &PodTemplate,
        namespace: &str,
        pod_name: &str,
        config_maps: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<RunningPod> {
        let cri = self.containerd.cri().await?;
        let spec = &template.spec;
        ensure!(
            spec.containers.len() == 1,
            "the harness runs pods of one container; {pod_name} has {}",
            spec.containers.len()
        );
        let container = &spec.containers[0];
        if !spec.host_network {
            self.wait_network_ready(&cri).await?;
        }
        let uid = kubelet::new_uid();
        let paths = KubeletPaths {
            root: self.host_path("/var/lib/kubelet"),
            cgroup_root: self.containerd.cgroup_root().to_owned(),
        };

        // Volumes: hostPath folders (created for DirectoryOrCreate, checked for Directory),
        // ConfigMaps written as the kubelet's atomic writer lays them out.
        let mut volumes: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
        let mut policy_volumes = Vec::new();
        for volume in &spec.volumes {
            if let Some(host) = &volume.host_path {
                let path = self.host_path(&host.path);
                match host.kind.as_deref() {
                    Some("DirectoryOrCreate") => std::fs::create_dir_all(&path)?,
                    Some("Directory") => ensure!(
                        path.is_dir(),
                        "hostPath type check failed: {} is not a directory",
                        host.path
                    ),
                    None | Some("") => {}
                    Some(other) => bail!("hostPath type {other} is not handled by the harness"),
                }
                volumes.insert(volume.name.clone(), (path, false));
            } else if let Some(source) = &volume.config_map {
                let data = config_maps
                    .get(&source.name)
                    .with_context(|| format!("no data for ConfigMap {}", source.name))?;
                let path = paths
                    .root
                    .join("pods")
                    .join(&uid)
                    .join("volumes/kubernetes.io~configmap")
                    .join(&volume.name);
                write_config_map(&path, data)?;
                policy_volumes.push(path.clone());
                // The kubelet mounts ConfigMap volumes read-only, whatever the mount says.
                volumes.insert(volume.name.clone(), (path, true));
            } else {
                bail!("volume {} is neither hostPath nor configMap", volume.name);
            }
        }
        let mut mounts = Vec::new();
        let mut propagation = BTreeMap::new();
        for mount in &container.volume_mounts {
            let (path, forced_ro) = volumes
                .get(&mount.name)
                .with_context(|| format!("volumeMount {} names no volume", mount.name))?;
            mounts.push(HostMount {
                host_path: path.clone(),
                container_path: mount.mount_path.clone(),
                readonly: mount.read_only || *forced_ro,
            });
            let mode = match mount.mount_propagation.as_deref() {
                None | Some("None") => cri::MountPropagation::PropagationPrivate,
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
                Some(other) => bail!("unknown mountPropagation {other}"),
            };
            propagation.insert(mount.mount_path.clone(), mode as i32);
        }

        // The downward API's values.
        let mut env = Vec::new();
        for var in &container.env {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(source)) => match source.field_ref.field_path.as_str() {
                    "metadata.name" => pod_name.to_owned(),
                    "metadata.namespace" => namespace.to_owned(),
                    "metadata.uid" => uid.clone(),
                    "spec.nodeName" => NODE_NAME.to_owned(),
                    other => bail!("env {}: fieldPath {other} is not handled", var.name),
                },
                _ => bail!("env {} has neither a value nor a fieldRef", var.name),
            };
            env.push((var.name.clone(), value));
        }

        let sc = &container.security_context;
        let pod_seccomp = match &spec.security_context.seccomp_profile {
            Some(p) => p.to_profile()?,
            None => Profile::Unconfined,
        };
        let seccomp = match &sc.seccomp_profile {
            Some(p) => p.to_profile()?,
            None => pod_seccomp.clone(),
        };
        let limits = &container.resources.limits;
        let requests = &container.resources.requests;
        let quantity = |map: &BTreeMap<String, String>, key: &str, f: fn(&str) -> Result<i64>| {
            map.get(key).map(|q| f(q)).transpose()
        };
        let cpu_limit = quantity(limits, "cpu", millicores)?;
        let memory_limit = quantity(limits, "memory", bytes)?;
        let cpu_request = quantity(requests, "cpu", millicores)?.or(cpu_limit);
        let memory_request = quantity(requests, "memory", bytes)?.or(memory_limit);
        let qos = if cpu_limit.is_none() && memory_limit.is_none() && requests.is_empty() {
            QosClass::BestEffort
        } else if cpu_limit.is_some()
            && memory_limit.is_some()
            && cpu_request == cpu_limit
            && memory_request == memory_limit
        {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        };

        let mut pod_spec = PodSpec {
            name: pod_name.to_owned(),
            namespace: namespace.to_owned(),
            uid: Some(uid.clone()),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            host_network: spec.host_network,
            host_pid: spec.host_pid,
            host_ipc: spec.host_ipc,
            privileged: sc.privileged == Some(true),
            run_as_user: spec.security_context.run_as_user,
            run_as_group: spec.security_context.run_as_group,
            seccomp: pod_seccomp,
            qos,
            ..PodSpec::default()
        };
        // The API server and the controller add these to every DaemonSet pod.
        pod_spec
            .labels
            .insert("controller-revision-hash".into(), "e2e".into());
        pod_spec
            .labels
            .insert("pod-template-generation".into(), "1".into());
        let container_spec = ContainerSpec {
            name: container.name.clone(),
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone(),
            env,
            privileged: sc.privileged == Some(true),
            cpu_limit_millis: cpu_limit,
            cpu_request_millis: cpu_request,
            memory_limit_bytes: memory_limit,
            memory_request_bytes: memory_request,
            run_as_user: sc.run_as_user.or(spec.security_context.run_as_user),
            run_as_group: sc.run_as_group.or(spec.security_context.run_as_group),
            read_only_root_filesystem: sc.read_only_root_filesystem == Some(true),
            allow_privilege_escalation: sc.allow_privilege_escalation,
            capabilities_add: sc.capabilities.iter().flat_map(|c| c.add.clone()).collect(),
            capabilities_drop: sc
                .capabilities
                .iter()
                .flat_map(|c| c.drop.clone())
                .collect(),
            mounts,
            seccomp,
            ..ContainerSpec::default()
        };

        let pod = cri
            .run_pod(&pod_spec)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("RunPodSandbox of {namespace}/{pod_name}"))?;
        self.pods.push(pod.id.clone());
        let container_id = create_container(
            &cri,
            &paths,
            &pod,
            &container_spec,
            &propagation,
            spec.termination_grace_period_seconds.unwrap_or(30),
        )
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("CreateContainer of {namespace}/{pod_name}"))?;
        cri.start_container(&container_id)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("StartContainer of {namespace}/{pod_name}"))?;

        let ip = if spec.host_network {
            IpAddr::from([127, 0, 0, 1])
        } else {
            pod_ip(&cri, &pod.id).await?
        };
        let port_of = |probe: &Probe| -> Result<u16> {
            match &probe.http_get.port {
                yaml_serde::Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .context("probe port out of range"),
                yaml_serde::Value::String(name) => container
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .map(|p| p.container_port)
                    .with_context(|| format!("probe port {name} names no container port")),
                other => bail!("probe port {other:?}"),
            }
        };
        let mut probes = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Readiness, &container.readiness_probe),
            (ProbeKind::Liveness, &container.liveness_probe),
        ] {
            if let Some(probe) = probe {
                probes.push((kind, probe.clone(), SocketAddr::new(ip, port_of(probe)?)));
            }
        }
        let log_path =
            PathBuf::from(&pod.config.log_directory).join(format!("{}/0.log", container.name));
        Ok(RunningPod {
            prober: Prober::start(probes),
            cri,
            pod,
            container_id,
            ip,
            log_path,
            policy_volumes,
            grace: spec.termination_grace_period_seconds.unwrap_or(30),
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The bridge outlives the pods; the instance's teardown (after this) removes the rest.
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `CreateContainer` as the kubelet sends it for `spec` in `pod`, mounts propagated as
/// `propagation` says (container path → CRI propagation), with a termination-log file.
async fn create_container(
    cri: &CriClient,
    paths: &KubeletPaths,
    pod: &Pod,
    spec: &ContainerSpec,
    propagation: &BTreeMap<String, i32>,
    grace_seconds: i64,
) -> Result<String, CriError> {
    let local = |e: std::io::Error| CriError {
        call: "CreateContainer",
        code: tonic::Code::Internal,
        message: format!("harness: {e}"),
    };
    let dir = paths.container_dir(&pod.uid, &spec.name);
    std::fs::create_dir_all(&dir).map_err(local)?;
    let termination_log = dir.join(kubelet::random_hex(8));
    std::fs::write(&termination_log, b"").map_err(local)?;
    let image = cri
        .image_status(&spec.image)
        .await?
        .ok_or_else(|| CriError {
            call: "CreateContainer",
            code: tonic::Code::NotFound,
            message: format!("image {:?} is not on the node", spec.image),
        })?;
    let ids = kubelet::ImageIds {
        image: image.id,
        volumes: Vec::new(),
    };
    let mut config = kubelet::container_config(&pod.config, pod.qos, spec, &ids, &termination_log);
    for mount in &mut config.mounts {
        if let Some(mode) = propagation.get(&mount.container_path) {
            mount.propagation = *mode;
        }
    }
    config.annotations.insert(
        "io.kubernetes.pod.terminationGracePeriod".into(),
        grace_seconds.to_string(),
    );
    let request = cri::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    };
    cri.runtime_service()
        .create_container(request)
        .await
        .map(|r| r.into_inner().container_id)
        .map_err(|s| CriError {
            call: "CreateContainer",
            code: s.code(),
            message: s.message().to_owned(),
        })
}

/// The pod's IP, from `PodSandboxStatus`.
async fn pod_ip(cri: &CriClient, pod_id: &str) -> Result<IpAddr> {
    let status = cri
        .runtime_service()
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.to_owned(),
            verbose: false,
        })
        .await
        .context("PodSandboxStatus")?
        .into_inner();
    let ip = status
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    ip.parse()
        .with_context(|| format!("the pod sandbox has no IP ({ip:?})"))
}

/// Writes a ConfigMap volume as the kubelet's atomic writer does: the files in a
/// timestamped hidden folder, `..data` a symlink to it, each key a symlink through `..data`.
/// Called again, it swaps `..data` to a new folder in one rename (what a ConfigMap update
/// looks like in the pod) and removes the old folder.
pub fn write_config_map(dir: &Path, data: &BTreeMap<String, String>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let folder = format!("..{stamp}");
    std::fs::create_dir(dir.join(&folder))?;
    for (key, value) in data {
        std::fs::write(dir.join(&folder).join(key), value)?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&folder, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    for key in data.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(key), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !data.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

/// Which probe a result is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `readinessProbe`.
    Readiness,
    /// `livenessProbe`.
    Liveness,
}

/// One probe call.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// Which probe.
    pub kind: ProbeKind,
    /// When it was made.
    pub at: Instant,
    /// The status code, or why there was none.
    pub outcome: Result<u16, String>,
}

impl ProbeResult {
    /// Whether the kubelet counts it a success (2xx or 3xx).
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Ok(code) if (200..400).contains(&code))
    }
}

/// Calls a pod's probes as the kubelet does: after `initialDelaySeconds`, every
/// `periodSeconds`, each call bounded by `timeoutSeconds`. Stopped when dropped.
#[derive(Debug)]
pub struct Prober {
    results: Arc<Mutex<Vec<ProbeResult>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Prober {
    fn start(probes: Vec<(ProbeKind, Probe, SocketAddr)>) -> Prober {
        let results = Arc::new(Mutex::new(Vec::new()));
        let tasks = probes
            .into_iter()
            .map(|(kind, probe, addr)| {
                let results = Arc::clone(&results);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(probe.initial_delay_seconds)).await;
                    let mut tick = tokio::time::interval(Duration::from_secs(probe.period_seconds));
                    loop {
                        tick.tick().await;
                        let timeout = Duration::from_secs(probe.timeout_seconds);
                        let outcome = match tokio::time::timeout(
                            timeout,
                            http::get(addr, &probe.http_get.path),
                        )
                        .await
                        {
                            Ok(Ok(response)) => Ok(response.status),
                            Ok(Err(e)) => Err(format!("{e:#}")),
                            Err(_) => Err(format!("no answer within {timeout:?}")),
                        };
                        results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(ProbeResult {
                                kind,
                                at: Instant::now(),
                                outcome,
                            });
                    }
                })
            })
            .collect();
        Prober { results, tasks }
    }

    /// Every result so far, oldest first.
    pub fn results(&self) -> Vec<ProbeResult> {
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A pod the harness kubelet runs, with its prober.
#[derive(Debug)]
pub struct RunningPod {
    /// The probes' calls.
    pub prober: Prober,
    cri: CriClient,
    /// The sandbox.
    pub pod: Pod,
    /// The container's id.
    pub container_id: String,
    /// The pod's IP (loopback for a host-network pod).
    pub ip: IpAddr,
    /// The container's log file (CRI format).
    pub log_path: PathBuf,
    policy_volumes: Vec<PathBuf>,
    grace: i64,
}

impl RunningPod {
    /// The container's output so far (the CRI log's message parts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .map(|line| line.splitn(4, ' ').nth(3).unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the readiness probe succeeds.
    ///
    /// # Errors
    /// When it does not within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .prober
                .results()
                .iter()
                .find(|r| r.kind == ProbeKind::Readiness && r.ok())
            {
                return Ok(r.at);
            }
            ensure!(
                Instant::now() < deadline,
                "{} is not ready after {timeout:?}; probes: {:?}; its log:\n{}",
                self.pod.name,
                self.prober.results(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The container's CRI state.
    ///
    /// # Errors
    /// When `ContainerStatus` fails.
    pub async fn status(&self) -> Result<cri::ContainerStatus> {
        Ok(self.cri.container_status(&self.container_id).await?)
    }

    /// Replaces the data of the pod's ConfigMap volumes as the kubelet does on an update.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn update_config_map(&self, data: &BTreeMap<String, String>) -> Result<()> {
        for dir in &self.policy_volumes {
            write_config_map(dir, data)?;
        }
        Ok(())
    }

    /// Deletes the pod as the kubelet does: `StopContainer` with the grace period, then
    /// `StopPodSandbox` and `RemovePodSandbox`.
    ///
    /// # Errors
    /// When a call fails.
    pub async fn delete(self) -> Result<()> {
        drop(self.prober);
        self.cri
            .stop_container(&self.container_id, self.grace)
            .await?;
        self.cri.stop_pod(&self.pod.id).await?;
        self.cri.remove_pod(&self.pod.id).await?;
        Ok(())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn run_command(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(millicores("50m").unwrap(), 50);
        assert_eq!(millicores("1").unwrap(), 1000);
        assert_eq!(millicores("0.5").unwrap(), 500);
        assert_eq!(bytes("32Mi").unwrap(), 32 << 20);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1000").unwrap(), 1000);
        assert!(bytes("12Xi").is_err());
    }

    #[test]
    fn a_config_map_update_swaps_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let first = BTreeMap::from([("a.yaml".to_string(), "one".to_string())]);
        write_config_map(dir.path(), &first).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
            "one"
        );
        let second = BTreeMap::from([("b.yaml".to_string(), "two".to_string())]);
        write_config_map(dir.path(), &second).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.yaml")).unwrap(),
            "two"
        );
        assert!(std::fs::symlink_metadata(dir.path().join("a.yaml")).is_err());
        let folders = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().starts_with("..")
                    && e.path().is_dir()
                    && !e.file_type().unwrap().is_symlink()
            })
            .count();
        assert_eq!(folders, 1, "the old data folder is gone");
    }

    #[test]
    fn unknown_fields_of_a_container_are_refused() {
        let text = "name: c\nimage: i\nstdin: true\n";
        assert!(yaml_serde::from_str::<K8sContainer>(text).is_err());
    }
}

#[cfg(test)]
mod prober_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_are_called_at_their_period() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        let probe: Probe = yaml_serde::from_str(
            "httpGet: {path: /readyz, port: 1}\nperiodSeconds: 1\ntimeoutSeconds: 1\n",
        )
        .unwrap();
        let prober = Prober::start(vec![(ProbeKind::Readiness, probe, addr)]);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let results = prober.results();
        assert!(results.len() >= 3, "{results:?}");
        assert!(results.iter().all(ProbeResult::ok), "{results:?}");
    }
}
