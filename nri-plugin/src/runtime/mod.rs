//! The container runtime's own API (containerd's gRPC services): what nodeguard reads from
//! containerd beyond NRI, and the few things it asks containerd to do.

pub mod containerd;
pub mod images;
