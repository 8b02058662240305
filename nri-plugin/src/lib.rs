//! nodeguard: the NRI plugin daemon and command-line tool.
//!
//! The binary (`src/main.rs`) only parses arguments; everything it runs lives here so tests
//! can drive it. The modules are layers; each uses only those below it:
//!
//! - [`daemon`]: `nodeguard serve` put together: validation, wiring, periodic duties;
//! - [`nri`]: the NRI wire protocol, connection and `Plugin` service;
//! - [`compliance`]: audits of what runs, and the compliance report;
//! - [`enforce`]: judging a container, recording and answering the decision;
//! - [`runtime`]: containerd's own API;
//! - [`ops`]: audit log, metrics, health endpoints, policy files and reload, logging;
//! - [`cli`]: `check`, `policy validate` and `report`, which judge files, not a runtime.
//!
//! What requests, specs and manifests say becomes a container view in the `nodeguard-views`
//! crate.

pub mod cli;
pub mod cluster;
pub mod compliance;
pub mod daemon;
pub mod enforce;
pub mod nri;
pub mod ops;
pub mod runtime;
