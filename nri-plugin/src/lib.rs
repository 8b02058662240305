//! nodeguard: the NRI plugin daemon and command-line tool.
//!
//! The binary (`src/main.rs`) only parses arguments; everything it runs lives here so tests
//! can drive it: [`check`] judges manifests and runtime specs, [`manifest`] and [`oci`] turn
//! them into `policy_core` container views, [`policy_files`] loads policies from disk, and
//! [`transport`] speaks the NRI wire protocol.

pub mod check;
pub mod kubernetes;
pub mod manifest;
pub mod oci;
pub mod policy_files;
pub mod transport;
