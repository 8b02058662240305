//! nodeguard's policy engine.
pub mod yaml;
