//! How the kubelet encodes pod settings for the runtime, read back on the node.

use std::collections::BTreeMap;

use policy_core::quantity::Millicores;
use serde::Deserialize;

/// The container annotation where the kubelet lists the container's ports.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

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
