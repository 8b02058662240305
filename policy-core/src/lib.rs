//! nodeguard's policy engine: the pure core shared by the NRI plugin, the CLI and any future
//! admission webhook.
//!
//! A policy is a set of `NodePolicy` YAML documents ([`document`]). [`Policy::parse`] reads,
//! validates (reporting every mistake with file, line and field) and compiles them once;
//! [`evaluate`] then judges a [`view::ContainerView`] — everything a node can learn about one
//! container — and returns a [`Decision`] listing every violation with its rule id, effect
//! and a message a person can act on. Nothing here does I/O, blocks or knows about protobuf.

pub mod capabilities;
pub mod decision;
pub mod document;
mod findings;
mod gatekeeper;
pub mod image;
pub mod matcher;
pub mod policy;
pub mod pss;
pub mod quantity;
mod rules;
#[cfg(feature = "schema")]
pub mod schema;
pub mod view;
pub mod yaml;

pub use decision::{Decision, Effect, Remediation, Undecided, Verdict, Violation};
pub use document::PssLevel;
pub use policy::{
    AppliedCheck, CheckOutcome, CheckResult, KUBERNETES_CONTAINERD_NAMESPACE, Policy, PolicyError,
    PolicyErrors, PolicyNote, applicable_checks, evaluate, evaluate_pod, results,
};
pub use view::ContainerView;
