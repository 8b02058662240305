//! The cluster-connected mode: policy documents from the API server (`NodePolicy` objects,
//! Gatekeeper and Azure Policy constraints), merged with the policy files and kept on disk
//! for when the API server is away.
//!
//! - [`documents`]: each object validated on its own, the last good generation kept (pure);
//! - [`cache`]: the accepted objects on the node's disk;
//! - [`crd`]: the `NodePolicy` custom resource and its generated CRD;
//! - [`shared`]: the accepted documents shared by the watchers, the reloader and the cache;
//! - [`watch`]: the API server's objects followed with kube-rs watchers;
//! - [`reports`]: the compliance reports written back to the API server;
//! - [`events`]: Events on pods and policy objects, deduplicated and rate-limited;
//! - [`mode`]: the mode put together: how the API server is reached, and the watchers run.

pub mod cache;
pub mod crd;
pub mod documents;
pub mod events;
pub mod mode;
pub mod reports;
pub mod shared;
pub mod watch;

pub use mode::{ClusterMode, Connection};
pub use shared::ClusterPolicy;
