//! What the benches' simulated containers share.

use nodeguard_proto::nri::v1alpha1 as nri;

/// What the kubelet sets for a container with requests of 0.5 CPU and limits of 0.5 CPU and
/// 256 MiB: CPU shares 512, quota 50 ms per 100 ms, memory limit 256 MiB.
pub fn half_cpu_256_mib() -> nri::LinuxResources {
    nri::LinuxResources {
        cpu: Some(nri::LinuxCpu {
            shares: Some(nri::OptionalUInt64 { value: 512 }),
            quota: Some(nri::OptionalInt64 { value: 50_000 }),
            period: Some(nri::OptionalUInt64 { value: 100_000 }),
            ..Default::default()
        }),
        memory: Some(nri::LinuxMemory {
            limit: Some(nri::OptionalInt64 { value: 256 << 20 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
