//! How the kubelet and containerd encode a pod for the runtime, read back on the node: the
//! annotations they write, the directories they mount from, the cgroup values they set. The
//! one place in nodeguard that knows these encodings.

use std::collections::BTreeMap;

use policy_core::quantity::Millicores;
use policy_core::view::{ImageVolume, MountSource, VolumeType};
use serde::Deserialize;

/// The container annotation where the kubelet lists the container's ports.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
/// containerd's annotation naming the image a CRI container runs (what the pod asked for on
/// containerd 2.x; the image record's first name on 1.7).
pub const IMAGE_ANNOTATION: &str = "io.kubernetes.cri.image-name";
/// containerd's annotation telling a sandbox (`sandbox`) from a container (`container`).
pub const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";
/// containerd's annotation with the container's name in its pod.
pub const CONTAINER_NAME_ANNOTATION: &str = "io.kubernetes.cri.container-name";
/// containerd's annotation with the pod sandbox's id.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// containerd's annotation with the pod's name.
pub const SANDBOX_NAME_ANNOTATION: &str = "io.kubernetes.cri.sandbox-name";
/// containerd's annotation with the pod's namespace.
pub const SANDBOX_NAMESPACE_ANNOTATION: &str = "io.kubernetes.cri.sandbox-namespace";
/// containerd's annotation with the pod's UID.
pub const SANDBOX_UID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-uid";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    #[serde(default)]
    host_port: i64,
}

/// Host ports the container binds, from the kubelet's ports annotation. An absent or
/// unreadable annotation means no ports (the kubelet writes it whenever ports are declared).
pub fn host_ports(annotations: &BTreeMap<String, String>) -> Vec<u16> {
    annotations
        .get(PORTS_ANNOTATION)
        .and_then(|json| serde_json::from_str::<Vec<Port>>(json).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| u16::try_from(p.host_port).ok())
        .filter(|p| *p != 0)
        .collect()
}

/// The CPU request behind cgroup CPU shares (the kubelet sets `millis * 1024 / 1000`, and
/// the minimum, 2, when there is no request).
pub fn shares_to_millicores(shares: u64) -> Option<Millicores> {
    (shares > 2).then(|| Millicores(per_mille_ceil(shares, 1024)))
}

/// The CPU limit behind a CFS quota and period (no limit when the quota is unset or -1).
pub fn quota_to_millicores(quota: Option<i64>, period: Option<u64>) -> Option<Millicores> {
    let quota = u64::try_from(quota?).ok().filter(|q| *q > 0)?;
    let period = period.filter(|p| *p > 0).unwrap_or(100_000);
    Some(Millicores(per_mille_ceil(quota, period)))
}

/// `mount` with a kubelet `subPath` source replaced by what the node's mount table (`table`)
/// says is mounted there, classified as any bind mount (a host path, a volume of the pod);
/// unchanged when the table does not tell.
pub fn resolve_sub_path(
    mount: &mut policy_core::view::Mount,
    table: &[crate::mountinfo::MountEntry],
    pod_uid: &str,
    sandbox_id: &str,
) {
    if let MountSource::KubeletSubPath { path, .. } = &mount.source
        && let Some(source) = crate::mountinfo::source_of(table, path)
    {
        let resolved = mount_source(&source, "bind", pod_uid, sandbox_id);
        if !matches!(resolved, MountSource::KubeletSubPath { .. }) {
            mount.source = resolved;
        }
    }
}

/// The type of a kubelet-managed volume directory, from the plugin directory name under
/// `.../pods/<uid>/volumes/` (`kubernetes.io~configmap`, `kubernetes.io~csi`, ...).
pub fn volume_type_of_plugin_dir(dir: &str) -> VolumeType {
    match dir.strip_prefix("kubernetes.io~").unwrap_or(dir) {
        "configmap" => VolumeType::ConfigMap,
        "secret" => VolumeType::Secret,
        "empty-dir" => VolumeType::EmptyDir,
        "projected" => VolumeType::Projected,
        "downward-api" => VolumeType::DownwardApi,
        "csi" => VolumeType::Csi,
        "nfs" => VolumeType::Nfs,
        "local-volume" => VolumeType::PersistentVolumeClaim,
        // A FlexVolume driver `vendor/driver` is the plugin `flexvolume-vendor~driver`.
        flex if flex.starts_with("flexvolume-") => VolumeType::FlexVolume,
        _ => VolumeType::Other,
    }
}

/// Where a mount's content comes from, by its source path and filesystem type as found in an
/// NRI request or OCI spec. `pod_uid` and `sandbox_id` name the container's pod when known:
/// only the kubelet's and the runtime's directories of *that* pod count as its volumes and
/// runtime files (another pod's directory mounted by hostPath is a host path).
///
/// ```
/// use nodeguard_views::kubelet::mount_source;
/// use policy_core::view::{MountSource, VolumeType};
/// let src = "/var/lib/kubelet/pods/1b2c/volumes/kubernetes.io~secret/token";
/// assert_eq!(mount_source(src, "bind", "1b2c", "sb1"),
///            MountSource::KubeletVolume { kind: VolumeType::Secret, name: "token".into() });
/// assert_eq!(mount_source(src, "bind", "other-pod", "sb1"),
///            MountSource::HostPath(src.into()));
/// let hosts = "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/hosts";
/// assert_eq!(mount_source(hosts, "bind", "1b2c", "sb1"), MountSource::Runtime);
/// assert_eq!(mount_source(hosts, "bind", "1b2c", "sb2"), MountSource::HostPath(hosts.into()));
/// assert_eq!(mount_source("/etc", "bind", "", ""), MountSource::HostPath("/etc".into()));
/// assert_eq!(mount_source("proc", "proc", "", ""), MountSource::Runtime);
/// ```
pub fn mount_source(source: &str, fs_type: &str, pod_uid: &str, sandbox_id: &str) -> MountSource {
    if !source.starts_with('/') || !matches!(fs_type, "bind" | "rbind" | "") {
        return MountSource::Runtime;
    }
    if source.split('/').any(|c| c == "..") {
        return MountSource::HostPath(source.to_string());
    }
    // The kubelet keeps pod data under <root-dir>/pods/<uid>/; its root dir is configurable,
    // so look for the shape rather than a fixed prefix.
    if let Some(at) = source.find("/pods/") {
        let rest = &source[at + "/pods/".len()..];
        let mut parts = rest.split('/');
        let uid = parts.next().unwrap_or_default();
        let ours = pod_uid.is_empty() || uid == pod_uid;
        match parts.next() {
            Some("volumes") if ours => {
                let plugin = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default().to_string();
                return MountSource::KubeletVolume {
                    kind: volume_type_of_plugin_dir(plugin),
                    name,
                };
            }
            Some("volume-subpaths") if ours => {
                return MountSource::KubeletSubPath {
                    volume: parts.next().unwrap_or_default().to_string(),
                    path: source.to_string(),
                };
            }
            Some("etc-hosts" | "containers") if ours => return MountSource::Runtime,
            _ => {}
        }
    }
    // containerd's per-sandbox files (hostname, resolv.conf, hosts, shm) under its root and
    // state directories (wherever those are configured), and its image volumes.
    const CRI_PLUGIN: &str = "/io.containerd.grpc.v1.cri/";
    if let Some(at) = source.find(CRI_PLUGIN) {
        let rest = &source[at + CRI_PLUGIN.len()..];
        if let Some(sandbox) = rest.strip_prefix("sandboxes/") {
            let id = sandbox.split('/').next().unwrap_or_default();
            if sandbox_id.is_empty() || id == sandbox_id {
                return MountSource::Runtime;
            }
        } else if let Some(volume) = rest.strip_prefix("image-volumes/") {
            let id = volume.split('/').next().unwrap_or_default();
            if sandbox_id.is_empty() || id == sandbox_id {
                return MountSource::KubeletVolume {
                    kind: VolumeType::Image,
                    name: String::new(),
                };
            }
        }
    }
    // CRI-O's per-container storage.
    if ["/run/containers/storage/", "/var/run/containers/storage/"]
        .iter()
        .any(|p| source.starts_with(p))
    {
        return MountSource::Runtime;
    }
    MountSource::HostPath(source.to_string())
}

/// The content digest (`sha256:...`) of the image a container mounts from `source`, when
/// `source` is one of containerd's image volumes (containerd 2.1+ mounts a Kubernetes image
/// volume from `<CRI state dir>/image-volumes/<sandbox id>/<manifest digest, hex>[/<subPath>]`)
/// of sandbox `sandbox_id` (any sandbox when empty).
///
/// ```
/// use nodeguard_views::kubelet::image_volume_digest;
/// let hex = "a".repeat(64);
/// let src = format!("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/sb1/{hex}/etc");
/// assert_eq!(image_volume_digest(&src, "bind", "sb1"), Some(format!("sha256:{hex}")));
/// assert_eq!(image_volume_digest(&src, "bind", "sb2"), None);
/// assert_eq!(image_volume_digest("/etc", "bind", ""), None);
/// ```
pub fn image_volume_digest(source: &str, fs_type: &str, sandbox_id: &str) -> Option<String> {
    if !matches!(
        mount_source(source, fs_type, "", sandbox_id),
        MountSource::KubeletVolume {
            kind: VolumeType::Image,
            ..
        }
    ) {
        return None;
    }
    const DIR: &str = "/io.containerd.grpc.v1.cri/image-volumes/";
    let rest = &source[source.find(DIR)? + DIR.len()..];
    let hex = rest.split('/').nth(1)?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("sha256:{hex}"))
}

/// The image volumes among a container's mounts (`(destination, source, type)`), their
/// names not yet read (see [`image_volume_digest`]).
pub fn image_volumes<'a>(
    mounts: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    sandbox_id: &str,
) -> Vec<ImageVolume> {
    mounts
        .into_iter()
        .filter_map(|(destination, source, fs_type)| {
            Some(ImageVolume {
                destination: destination.to_string(),
                digest: image_volume_digest(source, fs_type, sandbox_id)?,
                names: None,
            })
        })
        .collect()
}

/// `value * 1000 / divisor`, rounded up, without overflow: the cgroup values come from the
/// runtime unchecked, and `u64::MAX` shares or quota must not wrap to a small CPU figure
/// (reproduced by the `oci_spec` fuzz target, see docs/fuzzing.md). Saturates at `u64::MAX`.
fn per_mille_ceil(value: u64, divisor: u64) -> u64 {
    u64::try_from((u128::from(value) * 1000).div_ceil(u128::from(divisor))).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_ports_from_the_kubelet_annotation() {
        let a: BTreeMap<String, String> = [(
            PORTS_ANNOTATION.to_string(),
            r#"[{"containerPort":80,"hostPort":8080,"protocol":"TCP"},{"containerPort":9090}]"#
                .to_string(),
        )]
        .into();
        assert_eq!(host_ports(&a), vec![8080]);
        assert!(host_ports(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn huge_cgroup_values_do_not_wrap_to_a_small_cpu_figure() {
        let huge = shares_to_millicores(u64::MAX).unwrap();
        assert!(huge.0 > u64::MAX / 2, "{huge:?}");
        assert_eq!(
            quota_to_millicores(Some(i64::MAX), Some(1)),
            Some(Millicores(u64::MAX))
        );
    }

    #[test]
    fn converts_cgroup_cpu_settings_back() {
        assert_eq!(shares_to_millicores(512), Some(Millicores(500)));
        assert_eq!(shares_to_millicores(102), Some(Millicores(100)));
        assert_eq!(shares_to_millicores(2), None);
        assert_eq!(
            quota_to_millicores(Some(50_000), Some(100_000)),
            Some(Millicores(500))
        );
        assert_eq!(quota_to_millicores(Some(-1), Some(100_000)), None);
        assert_eq!(quota_to_millicores(None, None), None);
    }
}
