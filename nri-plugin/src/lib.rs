//! nodeguard: the NRI plugin daemon and command-line tool.
//!
//! The binary (`src/main.rs`) only parses arguments; everything it runs lives here so tests
//! can drive it. The modules are layers; each uses only those below it:
//!
//! - [`housekeeping`]: the daemon's periodic duties and readiness;
//! - [`nri`]: the NRI wire protocol, connection and `Plugin` service;
//! - [`compliance`]: audits of what runs, and the compliance report;
//! - [`enforce`]: judging a container, recording and answering the decision;
//! - [`runtime`]: containerd's own API;
//! - [`ops`]: audit log, metrics, health endpoints, policy files and reload, logging;
//! - [`cli`]: `check`, judging files as the node would;
//! - [`views`]: NRI requests, OCI specs and manifests as `policy_core` container views.

pub mod cli;
pub mod compliance;
pub mod enforce;
pub mod housekeeping;
pub mod nri;
pub mod ops;
pub mod runtime;
pub mod views;
