//! What nodeguard reads, as `policy_core` container views. Pure: no I/O, no async.
//!
//! Three sources, one shape: each translation is a conversion trait with a typed error.
//!
//! - [`manifest`]: a Kubernetes object (`Pod`, a workload template) →
//!   [`manifest::PodManifest`] with a view per container
//!   (`PodManifest::try_from(&serde_json::Value)`, [`manifest::ManifestError`]);
//! - [`oci`]: an OCI runtime spec (`config.json`, what containerd commits at start) →
//!   `ContainerView::try_from(&RuntimeSpec)` ([`oci::OciError`]);
//! - [`nri`] (feature `nri`): an NRI request at create, or with the OCI spec at start →
//!   `ContainerView::from(Create { .. })`, `ContainerView::from(Start { .. })`; a request
//!   without its pod or container is refused by [`nri::subject`] ([`nri::NriError`]);
//! - [`kubelet`]: how the kubelet and containerd encode a pod for the runtime (annotation
//!   keys, kubelet and containerd directories, CPU shares and quota), the one place that
//!   knows.

pub mod kubelet;
pub mod manifest;
pub mod mountinfo;
#[cfg(feature = "nri")]
pub mod nri;
pub mod oci;
