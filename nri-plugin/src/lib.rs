//! nodeguard: the NRI plugin daemon and command-line tool.
//!
//! The binary (`src/main.rs`) only parses arguments; everything it runs lives here so tests
//! can drive it: [`check`] judges manifests and runtime specs, [`manifest`] and [`oci`] turn
//! them into `policy_core` container views, [`policy_files`] loads policies from disk, and
//! [`transport`] speaks the NRI wire protocol.

pub mod audit;
pub mod check;
pub mod compliance;
pub mod connection;
pub mod containerd;
pub mod enforce;
pub mod housekeeping;
pub mod http;
pub mod inherited;
pub mod kubernetes;
pub mod manifest;
pub mod metrics;
pub mod nri_view;
pub mod oci;
pub mod plugin;
pub mod policy_files;
pub mod reload;
pub mod report;
pub mod serve;
pub mod size;
pub mod telemetry;
pub mod transport;
