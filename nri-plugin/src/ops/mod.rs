//! Operations: what makes nodeguard run well on a node, independent of NRI and containerd.
//!
//! - [`audit`]: the audit log of decisions;
//! - [`metrics`] and [`http`]: Prometheus metrics, health and readiness endpoints;
//! - [`policy_files`] and [`reload`]: the policy from disk, and its hot reload;
//! - [`telemetry`]: the diagnostic log;
//! - [`size`]: sizes as flags and messages write them;
//! - [`instance_lock`]: one `serve` per node, a lock on the state folder;
//! - [`namespaces`]: the namespaces' labels the API server reports (cluster mode);
//! - [`events`]: Kubernetes Events about findings (sent in the cluster mode).

pub mod audit;
pub mod events;
pub mod http;
pub mod instance_lock;
pub mod metrics;
pub mod namespaces;
pub mod policy_files;
pub mod reload;
pub mod size;
pub mod telemetry;
