//! Translations of what nodeguard reads into `policy_core` container views: NRI requests,
//! OCI runtime specs, and Kubernetes manifests, with the kubelet's encodings they share.

pub mod kubernetes;
pub mod manifest;
pub mod nri_view;
pub mod oci;
